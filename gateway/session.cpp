// One device connection, top to bottom: handshake (certauth) → compliance (uem) → requests
// (CONNECT with a DTR decision, profile and PAC downloads) → tunnel → orderly close.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <chrono>

#include "gateway/relay.hpp"
#include "gateway/state.hpp"
#include "gateway/target.hpp"
#include "gateway/tls.hpp"
#include "gateway/watchdog.hpp"

namespace tunnelgate::gateway {

namespace {

using std::chrono::steady_clock;
using tls_stream = ssl::stream<tcp::socket>;

std::string endpoint_text(const tcp::endpoint& ep) {
  const auto a = ep.address().to_string();
  return (ep.address().is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(ep.port());
}

/// A response with X-Tunnel-Reason and a one-line human body.
http::response<http::string_body> refusal(unsigned status, std::string_view reason,
                                          std::string text, bool keep_alive) {
  http::response<http::string_body> res{static_cast<http::status>(status), 11};
  res.set(http::field::server, "tunnelgate");
  res.set("X-Tunnel-Reason", bsv(reason));
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.keep_alive(keep_alive);
  res.body() = std::move(text) + "\n";
  res.prepare_payload();
  return res;
}

std::string admission_text(const admission& a) {
  if (a.reason == "unknown_device") return "this device is not known to the UEM; enroll it first";
  if (a.reason == "not_enrolled") return "this device is not enrolled in the UEM";
  if (a.reason == "noncompliant")
    return "this device is not compliant; fix it in the UEM and retry";
  if (a.reason == "compromised") return "this device is marked compromised in the UEM";
  if (a.reason == "uem_unavailable")
    return "the compliance service cannot be reached; try again later";
  if (a.reason == "unknown_platform")
    return "the UEM reports a platform the traffic rules do not cover";
  return "access refused: " + a.reason;
}

class connection {
 public:
  connection(std::shared_ptr<shared_state> st, std::shared_ptr<const runtime> rt, tcp::socket sock)
      : st_(std::move(st)),
        rt_(std::move(rt)),
        limits_(rt_->cfg->limits),
        tls_(std::move(sock), *rt_->tls) {}

  awaitable<void> run() {
    ex_ = co_await net::this_coro::executor;
    boost::system::error_code ec;
    peer_ = tls_.next_layer().remote_endpoint(ec);
    if (!co_await handshake()) co_return;
    st_->registry.begin_admission(identity_.udid);
    admission adm = co_await admit();
    if (!adm.admitted) {
      st_->registry.end_admission(identity_.udid);
      co_await refuse_first_request(adm);
      co_return;
    }
    platform_ = *adm.platform;
    const bool registered = register_session();
    st_->registry.end_admission(identity_.udid);
    if (!registered) {
      // Reuse `adm` rather than a block-scoped local: GCC 12 destroyed a block-scoped object
      // twice when the block ended in co_return after a co_await (seen as a double free).
      adm.reason = "session-limit";
      adm.detail = "this device has too many open sessions";
      co_await refuse_first_request(adm);
      co_return;
    }
    std::exception_ptr failure;
    try {
      co_await serve();
    } catch (...) {
      failure = std::current_exception();
    }
    unregister();
    if (failure) std::rethrow_exception(failure);
    co_await close_tls();
  }

 private:
  // ---- 1. TLS with certauth inside the handshake --------------------------------------------
  awaitable<bool> handshake() {
    boost::system::error_code ec;
    watchdog guard(ex_, limits_.handshake_timeout, [this] { close_socket(); });
    co_await tls_.async_handshake(ssl::stream_base::server, net::redirect_error(use_awaitable, ec));
    const auto* verdict = handshake_verdict(tls_.native_handle());
    if (!ec && verdict != nullptr && verdict->ok()) {
      guard.disarm();
      identity_ = *verdict->identity;
      st_->stats.handshakes.inc({"ok", "ok"});
      log_warnings(*verdict);
      co_return true;
    }
    std::string reason;
    std::string detail;
    if (guard.fired()) {
      reason = "handshake_timeout";
      detail = "no complete TLS handshake within the handshake timeout";
    } else if (verdict != nullptr && !verdict->ok()) {
      reason = std::string(certauth::to_string(verdict->code));
      detail = verdict->detail;
    } else if (ec.category() == net::error::get_ssl_category() &&
               ERR_GET_REASON(static_cast<unsigned long>(ec.value())) ==
                   SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
      reason = "no_certificate";
      detail = "the device presented no client certificate";
    } else {
      reason = "tls_error";
      detail = ec.message();
    }
    st_->stats.handshakes.inc({"refused", reason});
    st_->log->event(spdlog::level::warn, "handshake_refused",
                    {{"peer", endpoint_text(peer_)}, {"reason", reason}, {"detail", detail}});
    close_socket();
    co_return false;
  }

  void log_warnings(const certauth::verify_result& v) {
    for (const auto& w : v.warnings) {
      st_->log->event(spdlog::level::warn, "certificate_warning",
                      {{"udid", v.identity->udid}, {"warning", w}});
    }
  }

  // ---- 2. compliance -------------------------------------------------------------------------
  awaitable<admission> admit() {
    const auto t0 = steady_clock::now();
    admission a = co_await st_->comp->check(identity_);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - t0);
    st_->stats.uem_latency_us_sum += static_cast<std::uint64_t>(us.count());
    ++st_->stats.uem_latency_count;
    st_->stats.uem_lookups.inc({a.reason == "uem_unavailable" ? "error" : "ok"});
    if (a.admitted && !a.platform)
      a = {false, "unknown_platform", {}, "no DTR platform for this device"};
    st_->stats.admissions.inc({a.admitted ? "admitted" : "refused", a.admitted ? "ok" : a.reason});
    st_->log->event(a.admitted ? spdlog::level::info : spdlog::level::warn,
                    a.admitted ? "admitted" : "refused",
                    {{"udid", identity_.udid},
                     {"user", identity_.user},
                     {"serial", identity_.serial},
                     {"peer", endpoint_text(peer_)},
                     {"platform", a.platform ? std::string(dtr::to_string(*a.platform)) : "-"},
                     {"reason", a.admitted ? "ok" : a.reason},
                     {"detail", a.detail}});
    co_return a;
  }

  /// HTTP etiquette: read the device's first request (bounded), then answer 403 and close.
  awaitable<void> refuse_first_request(const admission& a) {
    beast::flat_buffer buf(limits_.header_limit);
    http::response<http::string_body> res;  // function scope: see run()
    http::request_parser<http::empty_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits_.header_limit));
    boost::system::error_code ec;
    {
      watchdog guard(ex_, limits_.header_timeout, [this] { close_socket(); });
      co_await http::async_read_header(tls_, buf, parser, net::redirect_error(use_awaitable, ec));
    }
    if (!ec) {
      const unsigned status = a.reason == "session-limit"     ? 429
                              : a.reason == "uem_unavailable" ? 503
                                                              : 403;
      res = refusal(status, a.reason, admission_text(a), false);
      co_await write(res);
    }
    co_await close_tls();
  }

  // ---- 3. the session ------------------------------------------------------------------------
  bool register_session() {
    entry_ = std::make_shared<session_entry>();
    entry_->executor = ex_;
    auto& i = entry_->info;
    i.id = st_->registry.next_id();
    i.udid = identity_.udid;
    i.user = identity_.user;
    i.serial = identity_.serial;
    i.platform = std::string(dtr::to_string(platform_));
    i.peer = endpoint_text(peer_);
    i.start = std::chrono::system_clock::now();
    entry_->kill = [this] {
      close_socket();
      if (upstream_ != nullptr) {
        boost::system::error_code ignored;
        upstream_->close(ignored);
      }
    };
    if (!st_->registry.add(entry_, limits_.max_sessions_per_device)) {
      entry_.reset();
      return false;
    }
    ++st_->stats.active_sessions;
    return true;
  }

  void unregister() {
    if (!entry_) return;
    entry_->alive = false;
    entry_->kill = nullptr;
    st_->registry.remove(entry_->info.id);
    --st_->stats.active_sessions;
    if (entry_->killed) {
      st_->stats.kills.inc({entry_->kill_reason});
      st_->log->event(spdlog::level::warn, "session_closed",
                      {{"id", std::to_string(entry_->info.id)},
                       {"udid", identity_.udid},
                       {"reason", entry_->kill_reason}});
    }
  }

  bool killed() const { return entry_ && entry_->killed; }

  // ---- 4. requests ---------------------------------------------------------------------------
  awaitable<void> serve() {
    beast::flat_buffer buf(limits_.header_limit);
    // Responses live at function scope: see run() on GCC 12 and block-scoped objects.
    http::response<http::string_body> res;
    for (;;) {
      if (killed() || st_->stopping) co_return;
      http::request_parser<http::empty_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits_.header_limit));
      parser.body_limit(0);
      boost::system::error_code ec;
      bool timed_out = false;
      {
        watchdog guard(ex_, limits_.header_timeout, [this] { close_socket(); });
        co_await http::async_read_header(tls_, buf, parser, net::redirect_error(use_awaitable, ec));
        timed_out = guard.fired();
      }
      if (ec) {
        if (ec == http::error::body_limit) {
          count("body-not-allowed");
          res = refusal(400, "body-not-allowed", "requests to the gateway carry no body", false);
          co_await write(res);
        } else if (ec == http::error::header_limit) {
          count("header-too-large");
          res =
              refusal(431, "header-too-large", "the request head exceeds the header limit", false);
          co_await write(res);
        } else if (ec != http::error::end_of_stream && ec != net::error::eof &&
                   ec != ssl::error::stream_truncated && !timed_out && !killed() &&
                   ec != net::error::operation_aborted && ec != net::error::bad_descriptor) {
          count("bad-request");
          res = refusal(400, "bad-request", "malformed request: " + ec.message(), false);
          co_await write(res);
        }
        co_return;
      }
      auto& req = parser.get();
      if (std::distance(req.begin(), req.end()) >
          static_cast<std::ptrdiff_t>(limits_.max_headers)) {
        count("too-many-headers");
        res = refusal(431, "too-many-headers", "the request has too many header fields", false);
        co_await write(res);
        co_return;
      }
      if (req.has_content_length() || req.chunked()) {
        if (req.payload_size().value_or(1) != 0) {
          count("body-not-allowed");
          res = refusal(400, "body-not-allowed", "requests to the gateway carry no body", false);
          co_await write(res);
          co_return;
        }
      }
      bool keep = true;
      if (req.method() == http::verb::connect) {
        keep = co_await handle_connect(req, buf);
      } else if (!req.target().starts_with("/")) {
        // An absolute-form request (a client using us as a plain HTTP proxy): say what to do.
        count("use-connect");
        res = refusal(400, "use-connect",
                      "this gateway only tunnels: send CONNECT host:port (curl: --proxytunnel)",
                      true);
        keep = co_await write(res);
      } else if (req.method() == http::verb::get || req.method() == http::verb::head) {
        keep = co_await handle_get(req);
      } else {
        count("method-not-allowed");
        res = refusal(405, "method-not-allowed", "only CONNECT and GET are served here", true);
        res.set(http::field::allow, "CONNECT, GET");
        keep = co_await write(res);
      }
      if (!keep || !req.keep_alive()) co_return;
    }
  }

  void count(std::string_view outcome) { st_->stats.requests.inc({std::string(outcome)}); }

  awaitable<bool> handle_get(const http::request<http::empty_body>& req) {
    const auto target = std::string(req.target());
    const auto& rules = *rt_->cfg->rules;
    const auto app = std::string(req["X-Tunnel-App"]);
    http::response<http::string_body> res{http::status::ok, 11};
    res.set(http::field::server, "tunnelgate");
    res.keep_alive(req.keep_alive());
    if (target == "/dtr/profile") {
      res.set(http::field::content_type, "application/json");
      res.body() = dtr::to_profile_json(rules, platform_);
    } else if (target == "/proxy.pac") {
      std::string host(req[http::field::host]);
      if (host.empty() || host.find_first_of(" \"'\\\r\n") != std::string::npos) {
        boost::system::error_code ec;
        host = endpoint_text(tls_.next_layer().local_endpoint(ec));
      }
      res.body() = dtr::to_pac(rules, platform_, host, app);
      if (res.body().empty()) {
        count("no-rule-set");
        res = refusal(404, "no-rule-set", "no rule set applies to this device and app", true);
        co_return co_await write(res);
      }
      res.set(http::field::content_type, "application/x-ns-proxy-autoconfig");
    } else {
      count("not-found");
      res = refusal(404, "not-found", "this gateway serves CONNECT, /dtr/profile and /proxy.pac",
                    true);
      co_return co_await write(res);
    }
    count("download");
    res.prepare_payload();
    if (req.method() == http::verb::head) res.body().clear();
    co_return co_await write(res);
  }

  // ---- 5. CONNECT ----------------------------------------------------------------------------
  awaitable<bool> handle_connect(const http::request<http::empty_body>& req,
                                 beast::flat_buffer& buf) {
    http::response<http::string_body> res;  // function scope: see run()
    connect_target t;
    if (const auto e = parse_connect_target(sv(req.target()), t); e != target_error::ok) {
      count(to_string(e));
      res = refusal(400, to_string(e),
                    "CONNECT needs HOST:PORT with a valid host and a port 1-65535", true);
      co_return co_await write(res);
    }
    const std::string app(req["X-Tunnel-App"]);
    if (app.size() > 256) {
      count("bad-app");
      res = refusal(400, "bad-app", "X-Tunnel-App is too long", true);
      co_return co_await write(res);
    }
    const auto& rules = *rt_->cfg->rules;
    const auto d = rules.evaluate({t.host, t.port, platform_, app});
    const std::string destination = t.authority();
    if (d.refused()) {
      count(d.refusal);
      log_decision(app, destination, d, std::string(d.refusal));
      res = refusal(403, d.refusal,
                    d.refusal == "no-rule-set"
                        ? "no traffic rule set applies to this app on this platform"
                        : "the destination is not a valid host",
                    true);
      co_return co_await write(res);
    }
    if (d.act == dtr::action::bypass || d.act == dtr::action::block) {
      const std::string reason = d.act == dtr::action::bypass ? "bypass" : "blocked";
      count(reason);
      log_decision(app, destination, d, reason);
      res = refusal(403, reason,
                    d.act == dtr::action::bypass
                        ? "connect to this destination directly, not through the tunnel"
                        : "this destination is blocked by the traffic rules",
                    true);
      co_return co_await write(res);
    }

    // tunnel or proxy: connect from the egress address
    const bool via_proxy = d.act == dtr::action::proxy;
    const std::string dial_host = via_proxy ? d.proxy->host : t.host;
    const std::uint16_t dial_port = via_proxy ? d.proxy->port : t.port;
    tcp::socket sock(ex_);
    upstream_ = &sock;
    dial_result r = co_await dial(rt_->egress, dial_host, dial_port, sock);  // named locals only
    beast::flat_buffer upstream_leftover;
    std::unique_ptr<ssl::stream<tcp::socket&>> upstream_tls;
    if (r.status == dial_status::ok && via_proxy) {
      const auto creds_it = rt_->cfg->proxy_credentials.find(d.proxy->name);
      const std::string creds =
          creds_it == rt_->cfg->proxy_credentials.end() ? "" : creds_it->second;
      if (d.proxy->tls) {
        r = co_await proxy_over_tls(sock, *d.proxy, destination, creds, upstream_leftover,
                                    upstream_tls);
      } else {
        r = co_await proxy_connect(sock, destination, creds, upstream_leftover,
                                   limits_.upstream_timeout);
      }
    }
    if (killed()) {
      upstream_ = nullptr;
      co_return false;
    }
    if (r.status != dial_status::ok) {
      upstream_ = nullptr;
      const auto reason = std::string(to_string(r.status));
      count(reason);
      log_decision(app, destination, d, reason, r.detail);
      res = refusal(http_status(r.status), reason, r.detail, true);
      co_return co_await write(res);
    }

    // 200, then the connection is the tunnel.
    const std::string action = via_proxy ? "proxy:" + d.proxy->name : "tunnel";
    st_->stats.tunnels.inc({via_proxy ? "proxy" : "tunnel"});
    count(via_proxy ? "proxy" : "tunnel");
    st_->registry.update(entry_->info.id, [&](session_info& i) {
      i.app = app;
      i.destination = destination;
      i.action = action;
      i.rule_set = d.set->name;
      i.rank = d.rank == 0 ? "default" : std::to_string(d.rank);
      i.egress = endpoint_text(r.local);
    });
    http::response<http::empty_body> ok{http::status::ok, 11};
    ok.reason("Connection Established");
    ok.set(http::field::server, "tunnelgate");
    boost::system::error_code ec;
    co_await http::async_write(tls_, ok, net::redirect_error(use_awaitable, ec));
    relay_end end = relay_end::error;
    const auto t0 = steady_clock::now();
    ++st_->stats.active_tunnels;
    if (!ec) {
      if (upstream_tls) {
        end = co_await relay(tls_, *upstream_tls, buf, upstream_leftover, entry_->counters,
                             limits_.idle_timeout, entry_->killed);
      } else {
        end = co_await relay(tls_, sock, buf, upstream_leftover, entry_->counters,
                             limits_.idle_timeout, entry_->killed);
      }
    }
    --st_->stats.active_tunnels;
    upstream_ = nullptr;
    const auto up = entry_->counters.up.load();
    const auto down = entry_->counters.down.load();
    st_->stats.bytes.inc({"up"}, up);
    st_->stats.bytes.inc({"down"}, down);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - t0);
    st_->log->access(
        {{"udid", identity_.udid},
         {"user", identity_.user},
         {"platform", std::string(dtr::to_string(platform_))},
         {"app", app.empty() ? "-" : app},
         {"destination", destination},
         {"action", action},
         {"set", d.set->name},
         {"rank", d.rank == 0 ? "default" : std::to_string(d.rank)},
         {"line", std::to_string(d.line)},
         {"egress", endpoint_text(r.local)},
         {"remote", endpoint_text(r.remote)},
         {"bytes_up", std::to_string(up)},
         {"bytes_down", std::to_string(down)},
         {"duration_ms", std::to_string(ms.count())},
         {"result", killed() ? "killed:" + entry_->kill_reason : std::string(to_string(end))}});
    boost::system::error_code ignored;
    sock.close(ignored);
    co_return false;
  }

  awaitable<dial_result> proxy_over_tls(tcp::socket& sock, const dtr::proxy_def& proxy,
                                        const std::string& destination, const std::string& creds,
                                        beast::flat_buffer& leftover,
                                        std::unique_ptr<ssl::stream<tcp::socket&>>& out) {
    auto s = std::make_unique<ssl::stream<tcp::socket&>>(sock, *rt_->upstream_tls);
    dial_result r;
    // Verify the proxy's certificate for its name (or address).
    if (!dtr::parse_ip(proxy.host))
      SSL_set_tlsext_host_name(s->native_handle(), proxy.host.c_str());
    s->set_verify_mode(ssl::verify_peer);
    s->set_verify_callback(ssl::host_name_verification(proxy.host));
    boost::system::error_code ec;
    {
      watchdog guard(ex_, limits_.upstream_timeout, [&sock] {
        boost::system::error_code ignored;
        sock.close(ignored);
      });
      co_await s->async_handshake(ssl::stream_base::client, net::redirect_error(use_awaitable, ec));
      if (guard.fired()) {
        r.status = dial_status::proxy_timeout;
        r.detail = "TLS handshake with upstream proxy " + proxy.name + " timed out";
        co_return r;
      }
    }
    if (ec) {
      r.status = dial_status::proxy_failed;
      r.detail = "TLS handshake with upstream proxy " + proxy.name + " failed: " + ec.message();
      co_return r;
    }
    r = co_await proxy_connect(*s, destination, creds, leftover, limits_.upstream_timeout);
    if (r.status == dial_status::ok) out = std::move(s);
    co_return r;
  }

  void log_decision(const std::string& app, const std::string& destination, const dtr::decision& d,
                    const std::string& outcome, const std::string& detail = {}) {
    st_->log->event(spdlog::level::info, "request_refused",
                    {{"udid", identity_.udid},
                     {"app", app.empty() ? "-" : app},
                     {"destination", destination},
                     {"reason", outcome},
                     {"set", d.set ? d.set->name : "-"},
                     {"rank", d.set ? (d.rank == 0 ? "default" : std::to_string(d.rank)) : "-"},
                     {"line", d.set ? std::to_string(d.line) : "-"},
                     {"detail", detail}});
  }

  // ---- plumbing ------------------------------------------------------------------------------
  /// `msg` must be a named local of the caller: GCC 12 mishandles temporaries with destructors
  /// inside a co_await expression (double destruction), so none may appear there.
  template <class Message>
  awaitable<bool> write(Message& msg) {
    boost::system::error_code ec;
    watchdog guard(ex_, limits_.header_timeout, [this] { close_socket(); });
    co_await http::async_write(tls_, msg, net::redirect_error(use_awaitable, ec));
    co_return !ec && msg.keep_alive();
  }

  void close_socket() {
    boost::system::error_code ignored;
    tls_.next_layer().close(ignored);
  }

  awaitable<void> close_tls() {
    if (!tls_.next_layer().is_open()) co_return;
    boost::system::error_code ec;
    {
      watchdog guard(ex_, std::chrono::seconds(2), [this] { close_socket(); });
      co_await tls_.async_shutdown(net::redirect_error(use_awaitable, ec));
    }
    close_socket();
  }

  std::shared_ptr<shared_state> st_;
  std::shared_ptr<const runtime> rt_;
  const limits_config& limits_;
  tls_stream tls_;
  net::any_io_executor ex_;
  tcp::endpoint peer_;
  certauth::device_identity identity_;
  dtr::platform platform_ = dtr::platform::ios;
  std::shared_ptr<session_entry> entry_;
  tcp::socket* upstream_ = nullptr;  ///< the tunnel's egress socket while one is open
};

}  // namespace

awaitable<void> run_connection(std::shared_ptr<shared_state> st, tcp::socket sock) {
  ++st->stats.active_connections;
  struct guard_t {
    shared_state* s;
    ~guard_t() { --s->stats.active_connections; }
  } guard{st.get()};
  auto rt = st->current();
  connection c(st, rt, std::move(sock));
  co_await c.run();
}

}  // namespace tunnelgate::gateway
