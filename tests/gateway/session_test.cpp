// The connection coroutine (run_connection) end to end on loopback, with the production
// config loader, runtime, registry, TLS and certauth, and a fake compliance source standing in
// for the UEM (the seam in gateway/compliance.hpp), so that the moments that race in
// production can be placed exactly: a refusal between the lookup and the registration, a
// device turning non-compliant between two requests, a CRL revoking an open session.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <functional>
#include <optional>

#include "gateway/state.hpp"
#include "support/temp_dir.hpp"

namespace tunnelgate::gateway {
namespace {

using tunnelgate::testing::temp_dir;

/// The UEM as the test wants it. check() decides first, then runs `during_check` (the race
/// window: the answer is already made when the state changes behind it).
class fake_compliance final : public compliance {
 public:
  bool admitted = true;
  int checks = 0;
  std::function<void()> during_check;

  awaitable<admission> check(const certauth::device_identity&) override {
    admission a;
    a.admitted = admitted;
    a.reason = admitted ? "ok" : "noncompliant";
    a.platform = dtr::platform::ios;
    ++checks;
    if (during_check) {
      auto f = std::move(during_check);
      during_check = nullptr;
      f();
    }
    co_return a;
  }
  void on_refused(std::function<void(const std::string&, const std::string&)> f) override {
    callbacks_.push_back(std::move(f));
  }
  bool ready() const override { return true; }

  /// The device turns non-compliant and the source tells its subscribers (as a webhook would).
  void refuse(const std::string& udid) {
    admitted = false;
    for (const auto& f : callbacks_)
      f(udid, "noncompliant");
  }

 private:
  std::vector<std::function<void(const std::string&, const std::string&)>> callbacks_;
};

constexpr const char* rules_text = R"(rule_sets:
  - name: ios
    platforms: [ios]
    mode: full-device
    default: tunnel
    rules:
      - action: block
        destinations: ["*.blocked.test"]
)";

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_.emplace(certauth::dev_ca::init(dir_ / "ca"));
    // The certificate spells the UDID in lower case: the gateway keys it as DEV-1.
    certauth::device_request req;
    req.udid = "dev-1";
    req.user = "dev1@example.com";
    ca_->issue(req);
    dir_.write("rules.yaml", rules_text);
    write_config(8);
    load();
    st_ = std::make_shared<shared_state>();
    st_->log = std::make_unique<event_log>(rt_->cfg->log);
    st_->comp = comp_;
    st_->set_current(rt_);
    std::weak_ptr<shared_state> weak = st_;
    comp_->on_refused([weak](const std::string& udid, const std::string& reason) {
      if (auto st = weak.lock()) revoke_device(*st, udid, reason);
    });
    // Devices connect here; each accepted connection runs the production coroutine.
    gateway_.open(tcp::v4());
    gateway_.bind({net::ip::make_address("127.0.0.1"), 0});
    gateway_.listen();
    net::co_spawn(io_, accept_loop(st_, &gateway_), net::detached);
    // A destination that accepts and holds connections open.
    sink_.open(tcp::v4());
    sink_.bind({net::ip::make_address("127.0.0.1"), 0});
    sink_.listen();
    net::co_spawn(io_, hold_loop(&sink_, &held_), net::detached);

    client_tls_.set_verify_mode(ssl::verify_peer);
    client_tls_.load_verify_file((dir_ / "ca" / "ca.pem").string());
    client_tls_.use_certificate_chain_file((dir_ / "ca" / "devices" / "dev-1.pem").string());
    client_tls_.use_private_key_file((dir_ / "ca" / "devices" / "dev-1.key").string(),
                                     ssl::context::pem);
  }

  void write_config(int max_sessions) {
    dir_.write("gateway.yaml", R"(listen: ["127.0.0.1:0"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem, crl: [ca/crl.pem]}
uem: {source: file, file: devices.json}
dtr: rules.yaml
egress: {address: 127.0.0.2, allow: ["127.0.0.1/32"], connect_timeout: 2s, resolve_timeout: 500ms,
         resolver: ["127.0.0.1:9"]}   # names never leave loopback (nothing answers there)
limits: {max_sessions_per_device: )" +
                                   std::to_string(max_sessions) +
                                   R"(, header_timeout: 2s}
log: {level: off}
)");
  }

  void load() {
    auto c = load_config(dir_ / "gateway.yaml");
    ASSERT_TRUE(c) << (c.errors.empty() ? "" : c.errors.front());
    auto host = std::make_shared<host_addresses>();
    host->refresh();
    rt_ = make_runtime(c.value, {}, host);
  }

  static awaitable<void> accept_loop(std::shared_ptr<shared_state> st, tcp::acceptor* acc) {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket s = co_await acc->async_accept(net::redirect_error(use_awaitable, ec));
      if (ec) co_return;
      net::co_spawn(acc->get_executor(), run_connection(st, std::move(s)), net::detached);
    }
  }

  static awaitable<void> hold_loop(tcp::acceptor* acc, std::vector<tcp::socket>* held) {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket s = co_await acc->async_accept(net::redirect_error(use_awaitable, ec));
      if (ec) co_return;
      held->push_back(std::move(s));
    }
  }

  /// One device connection, driven step by step from the test.
  struct device {
    explicit device(net::io_context& io, ssl::context& ctx) : s(io, ctx) {}
    ssl::stream<tcp::socket> s;
    beast::flat_buffer buf;
    bool handshake_ok = false;
    unsigned status = 0;  ///< of the last answer; 0: the connection closed instead
    std::string reason;   ///< its X-Tunnel-Reason
  };

  static awaitable<void> open(device* d, tcp::endpoint ep) {
    boost::system::error_code ec;
    co_await d->s.next_layer().async_connect(ep, net::redirect_error(use_awaitable, ec));
    if (!ec) {
      co_await d->s.async_handshake(ssl::stream_base::client,
                                    net::redirect_error(use_awaitable, ec));
    }
    d->handshake_ok = !ec;
  }

  /// Sends CONNECT `target` and reads the answer's head (and body unless it is a 200).
  static awaitable<void> request(device* d, std::string target) {
    d->status = 0;
    d->reason.clear();
    http::request<http::empty_body> req{http::verb::connect, target, 11};
    req.set(http::field::host, target);
    boost::system::error_code ec;
    co_await http::async_write(d->s, req, net::redirect_error(use_awaitable, ec));
    http::response_parser<http::string_body> p;
    if (!ec)
      co_await http::async_read_header(d->s, d->buf, p, net::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    d->status = p.get().result_int();
    d->reason = std::string(p.get()["X-Tunnel-Reason"]);
    if (d->status != 200)
      co_await http::async_read(d->s, d->buf, p, net::redirect_error(use_awaitable, ec));
  }

  /// Reads until the gateway closes the connection; true when it did.
  static awaitable<void> wait_closed(device* d, bool* closed) {
    boost::system::error_code ec;
    std::array<char, 256> b{};
    while (!ec)
      co_await d->s.async_read_some(net::buffer(b), net::redirect_error(use_awaitable, ec));
    *closed = true;
  }

  /// Runs `f` (a coroutine) to its end, failing the test after a deadline instead of hanging.
  void drive(awaitable<void> f) {
    bool done = false;
    net::co_spawn(io_, std::move(f), [&done](const std::exception_ptr&) { done = true; });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done && std::chrono::steady_clock::now() < deadline)
      io_.run_one_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(done) << "the step did not finish within 10 s";
  }

  /// Lets posted work (kills, rechecks) run.
  void settle() {
    for (int i = 0; i < 20; ++i)
      io_.poll();
  }

  tcp::endpoint gateway_endpoint() const { return gateway_.local_endpoint(); }
  std::string sink_target() const {
    return "127.0.0.1:" + std::to_string(sink_.local_endpoint().port());
  }

  temp_dir dir_;
  std::optional<certauth::dev_ca> ca_;
  net::io_context io_;
  tcp::acceptor gateway_{io_};
  tcp::acceptor sink_{io_};
  std::vector<tcp::socket> held_;
  ssl::context client_tls_{ssl::context::tls_client};
  std::shared_ptr<const runtime> rt_;
  std::shared_ptr<fake_compliance> comp_ = std::make_shared<fake_compliance>();
  std::shared_ptr<shared_state> st_;
};

TEST_F(SessionTest, TunnelToAnAllowedDestination) {
  device d(io_, client_tls_);
  drive(open(&d, gateway_endpoint()));
  ASSERT_TRUE(d.handshake_ok);
  drive(request(&d, sink_target()));
  EXPECT_EQ(d.status, 200u);
  settle();
  EXPECT_EQ(st_->registry.size(), 1u);
  ASSERT_EQ(st_->registry.list().size(), 1u);
  EXPECT_EQ(st_->registry.list().front().udid, "DEV-1") << "the canonical spelling";
}

TEST_F(SessionTest, RefusalBetweenLookupAndRegistrationClosesTheSession) {
  // The UEM answers "admitted", then turns the device non-compliant and tells its subscribers
  // before the session is in the registry: that kill finds nothing to close.
  comp_->during_check = [this] { comp_->refuse("dev-1"); };
  device d(io_, client_tls_);
  drive(open(&d, gateway_endpoint()));
  ASSERT_TRUE(d.handshake_ok);
  bool closed = false;
  drive(wait_closed(&d, &closed));
  EXPECT_TRUE(closed) << "the session must close once registered";
  settle();
  EXPECT_EQ(st_->registry.size(), 0u);
  EXPECT_EQ(st_->stats.kills.value({"compliance:noncompliant"}), 1u);
  EXPECT_GE(comp_->checks, 2) << "the state is asked again after registering";
}

TEST_F(SessionTest, EachConnectIsDecidedByTheDevicesStateNow) {
  device d(io_, client_tls_);
  drive(open(&d, gateway_endpoint()));
  drive(request(&d, "x.blocked.test:443"));
  ASSERT_EQ(d.status, 403u);
  EXPECT_EQ(d.reason, "blocked");
  // The device turns non-compliant and the notification is lost: the cache says so.
  comp_->admitted = false;
  drive(request(&d, sink_target()));
  EXPECT_EQ(d.status, 403u);
  EXPECT_EQ(d.reason, "noncompliant");
  bool closed = false;
  drive(wait_closed(&d, &closed));
  EXPECT_TRUE(closed);
  EXPECT_TRUE(held_.empty()) << "nothing was connected for a non-compliant device";
}

TEST_F(SessionTest, EachConnectIsDecidedByTheRulesInForceNow) {
  device d(io_, client_tls_);
  drive(open(&d, gateway_endpoint()));
  drive(request(&d, "x.blocked.test:443"));
  ASSERT_EQ(d.reason, "blocked");
  // SIGHUP with new rules: the same connection's next CONNECT follows them.
  dir_.write("rules.yaml", std::string(rules_text) + R"(      - action: bypass
        destinations: ["*.other.test"]
)");
  load();
  st_->set_current(rt_);
  drive(request(&d, "y.other.test:443"));
  EXPECT_EQ(d.status, 403u);
  EXPECT_EQ(d.reason, "bypass");
}

TEST_F(SessionTest, RevokedCertificateClosesTheOpenTunnel) {
  device d(io_, client_tls_);
  drive(open(&d, gateway_endpoint()));
  drive(request(&d, sink_target()));
  ASSERT_EQ(d.status, 200u);
  settle();
  ASSERT_EQ(st_->registry.size(), 1u);
  // The CA revokes the device; the trust store reloads; the daemon asks every session.
  ca_->revoke("dev-1");
  const auto r = st_->current()->trust->reload();
  ASSERT_TRUE(r.changed) << r.message;
  ++st_->trust_generation;
  EXPECT_EQ(st_->registry.recheck_all(), 1u);
  bool closed = false;
  drive(wait_closed(&d, &closed));
  EXPECT_TRUE(closed);
  settle();
  EXPECT_EQ(st_->registry.size(), 0u);
  EXPECT_EQ(st_->stats.kills.value({"revoked"}), 1u);
}

TEST_F(SessionTest, SessionLimitIsARefusalNotAnAdmission) {
  write_config(1);
  load();
  st_->set_current(rt_);
  device first(io_, client_tls_);
  drive(open(&first, gateway_endpoint()));
  drive(request(&first, "x.blocked.test:443"));  // admitted and registered
  ASSERT_EQ(first.reason, "blocked");
  device second(io_, client_tls_);
  drive(open(&second, gateway_endpoint()));
  drive(request(&second, sink_target()));
  EXPECT_EQ(second.status, 429u);
  EXPECT_EQ(second.reason, "session-limit");
  EXPECT_EQ(st_->stats.admissions.value({"admitted", "ok"}), 1u);
  EXPECT_EQ(st_->stats.admissions.value({"refused", "session-limit"}), 1u);
  EXPECT_TRUE(held_.empty());
}

/// A TLS 1.2 device asks to renegotiate: OpenSSL refuses it with a no_renegotiation alert
/// (the client then gives up), and the gateway counts each such connection.
TEST_F(SessionTest, RenegotiationIsRefusedAndCounted) {
  for (int i = 1; i <= 2; ++i) {
    device d(io_, client_tls_);
    SSL_set_max_proto_version(d.s.native_handle(), TLS1_2_VERSION);
    drive(open(&d, gateway_endpoint()));
    ASSERT_TRUE(d.handshake_ok);
    ASSERT_STREQ(SSL_get_version(d.s.native_handle()), "TLSv1.2");
    ASSERT_EQ(SSL_renegotiate(d.s.native_handle()), 1);
    boost::system::error_code ec;
    drive([](device* dev, boost::system::error_code* out) -> awaitable<void> {
      co_await dev->s.async_handshake(ssl::stream_base::client,
                                      net::redirect_error(use_awaitable, *out));
    }(&d, &ec));
    EXPECT_TRUE(ec) << "the renegotiation must not succeed";
    EXPECT_EQ(ERR_GET_REASON(static_cast<unsigned long>(ec.value())), SSL_R_NO_RENEGOTIATION)
        << ec.message();
    settle();
    EXPECT_EQ(st_->stats.renegotiations_refused.load(), static_cast<std::uint64_t>(i));
  }
}

}  // namespace
}  // namespace tunnelgate::gateway
