// `revoke`: D devices, each with its own certificate (made here from the dev CA's key) and one
// tunnel held open; then R rounds of: flip one device to NonCompliant in uem-sim (its admin API,
// without uem-sim's own notification), POST the Workspace ONE "Compliance Status Changed" event
// to the gateway's webhook (uem.webhook: Basic auth), and time from that POST to the close of
// the device's tunnel (the read returns EOF or an error). The device is then flipped back
// (uem-sim and a second event) and reconnected, so D sessions stay up. Finally one GET through
// every tunnel shows that no other device lost its tunnel.
#include <openssl/evp.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "bench.hpp"
#include "devcerts.hpp"

namespace bench {

namespace {

// ---- a small HTTP/1.1 client (uem-sim's admin API, the gateway's webhook) ----------------

struct web_url {
  bool tls = false;
  tcp::endpoint ep;
  std::string authority;  ///< Host header
  std::string path;       ///< "/..." (the webhook's path; "" for the admin base)
};

web_url parse_url(const std::string& s, const std::string& option) {
  web_url u;
  std::string rest;
  if (s.rfind("https://", 0) == 0) {
    u.tls = true;
    rest = s.substr(8);
  } else if (s.rfind("http://", 0) == 0) {
    rest = s.substr(7);
  } else {
    throw std::runtime_error(option + " '" + s + "': expected http://IP:PORT/... or https://...");
  }
  const auto slash = rest.find('/');
  u.authority = rest.substr(0, slash);
  u.path = slash == std::string::npos ? "/" : rest.substr(slash);
  u.ep = parse_endpoint(u.authority);
  return u;
}

std::string base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

/// One kept-alive connection to one server, opened on first use and once more when the server
/// closed it between requests.
class http_client {
 public:
  http_client(net::any_io_executor ex, ssl::context& tls, web_url u, std::string authorization)
      : ex_(std::move(ex)),
        tls_(tls),
        url_(std::move(u)),
        authorization_(std::move(authorization)) {}

  const web_url& url() const { return url_; }

  /// Sends one request and reads its answer. `sent_at` (when given) is set just before the
  /// request's first byte is written.
  net::awaitable<failure> call(const std::string& method, const std::string& path,
                               const std::string& body, http_answer& a, std::string& answer,
                               clock_type::time_point* sent_at) {
    failure f;
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool fresh = !stream_;
      if (!stream_) f = co_await open();
      if (!f.empty()) co_return f;
      f = co_await exchange(method, path, body, a, answer, sent_at);
      if (f.empty()) co_return f;
      stream_.reset();
      if (fresh) break;  // a new connection that fails is a failure, not a stale keep-alive
    }
    co_return f;
  }

 private:
  net::awaitable<failure> open() {
    const auto& ex = ex_;
    stream_ = std::make_unique<tls_stream>(ex, tls_);
    buf_.clear();
    error_code ec;
    const guard g(ex, stream_->next_layer(), io_timeout);
    co_await stream_->next_layer().async_connect(url_.ep,
                                                 net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return url_.authority + ": connect: " + ec.message();
    if (url_.tls) {
      co_await stream_->async_handshake(ssl::stream_base::client,
                                        net::redirect_error(net::use_awaitable, ec));
      if (ec) co_return url_.authority + ": TLS: " + ec.message();
    }
    co_return "";
  }

  net::awaitable<failure> exchange(const std::string& method, const std::string& path,
                                   const std::string& body, http_answer& a, std::string& answer,
                                   clock_type::time_point* sent_at) {
    const auto& ex = ex_;
    error_code ec;
    failure f;
    std::string req =
        method + " " + path + " HTTP/1.1\r\nHost: " + url_.authority +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n";
    if (!authorization_.empty()) req += "Authorization: " + authorization_ + "\r\n";
    req += "\r\n" + body;
    const guard g(ex, stream_->next_layer(), io_timeout);
    if (sent_at != nullptr) *sent_at = clock_type::now();
    if (url_.tls) {
      co_await net::async_write(*stream_, net::buffer(req),
                                net::redirect_error(net::use_awaitable, ec));
      if (!ec) f = co_await read_answer(*stream_, buf_, a, &answer);
    } else {
      co_await net::async_write(stream_->next_layer(), net::buffer(req),
                                net::redirect_error(net::use_awaitable, ec));
      if (!ec) f = co_await read_answer(stream_->next_layer(), buf_, a, &answer);
    }
    if (ec) f = "write: " + ec.message();
    if (!f.empty()) co_return url_.authority + " " + method + " " + path + ": " + f;
    co_return "";
  }

  net::any_io_executor ex_;
  ssl::context& tls_;
  web_url url_;
  std::string authorization_;
  std::unique_ptr<tls_stream> stream_;  ///< its TLS layer unused for http://
  std::string buf_;
};

// ---- devices and their tunnels ------------------------------------------------------------

struct device_tunnel {
  std::unique_ptr<tls_stream> s;
  std::string buf;
  bool up = false;
};

/// Set by the coroutine that waits for a revoked device's tunnel to close.
struct close_watch {
  explicit close_watch(const net::any_io_executor& ex) : wake(ex) {}
  bool closed = false;
  bool data = false;  ///< bytes arrived instead of a close
  clock_type::time_point at{};
  net::steady_timer wake;  ///< cancelled when `closed` is set: an event for the round
};

net::awaitable<void> watch_close(tls_stream* s, std::shared_ptr<close_watch> w) {
  std::array<char, 512> scratch{};
  error_code ec;
  const std::size_t n = co_await s->async_read_some(net::buffer(scratch),
                                                    net::redirect_error(net::use_awaitable, ec));
  w->at = clock_type::now();
  w->data = !ec && n > 0;
  w->closed = true;
  w->wake.cancel();
}

struct revoke_stats {
  std::uint64_t opened = 0, open_errors = 0, rounds = 0, closed = 0, not_closed = 0;
  std::uint64_t webhook_errors = 0, uem_errors = 0, reconnected = 0, reconnect_errors = 0;
  std::uint64_t verified = 0, verify_errors = 0, body_bytes = 0;
  std::vector<double> close_us, webhook_us, open_us;
  std::map<std::string, std::uint64_t> error_kinds;
  std::map<int, std::uint64_t> webhook_statuses;
};

struct revoke_run {
  net::any_io_executor ex;  ///< the one io_context every coroutine runs on
  const options* o = nullptr;
  ssl::context* device_ctx = nullptr;
  tcp::endpoint gw;
  std::string connect_req, get_req;
  source_pool* sources = nullptr;
  std::vector<device_credential>* devices = nullptr;
  std::vector<device_tunnel>* tunnels = nullptr;
  http_client* uem = nullptr;
  http_client* hook = nullptr;
  std::size_t next = 0;
  long long event_base = 0;
  std::uint64_t events = 0;
  revoke_stats st;
  std::optional<double> cpu_s;
  double seconds = 0;
};

void count_error(revoke_run& rr, const std::string& what) {
  ++rr.st.error_kinds[what];
}

net::awaitable<failure> open_device(revoke_run& rr, std::size_t i) {
  const auto& ex = rr.ex;
  auto& t = (*rr.tunnels)[i];
  const auto& d = (*rr.devices)[i];
  t.s = std::make_unique<tls_stream>(ex, *rr.device_ctx);
  t.buf.clear();
  t.up = false;
  SSL* ssl = t.s->native_handle();
  if (SSL_use_certificate(ssl, d.cert.get()) != 1 || SSL_use_PrivateKey(ssl, d.key.get()) != 1) {
    co_return "cannot set the device certificate";
  }
  const auto from = rr.sources->next();
  const auto t0 = clock_type::now();
  const guard g(ex, t.s->next_layer(), io_timeout);
  failure f = co_await open_tunnel(*t.s, rr.gw, from, rr.connect_req, t.buf);
  if (!f.empty()) co_return g.fired() ? "timeout (" + f + ")" : f;
  t.up = true;
  rr.st.open_us.push_back(
      std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  co_return "";
}

net::awaitable<void> open_worker(revoke_run* rr) {
  while (rr->next < rr->tunnels->size()) {
    const std::size_t i = rr->next++;
    const failure f = co_await open_device(*rr, i);
    if (f.empty()) {
      ++rr->st.opened;
    } else {
      ++rr->st.open_errors;
      count_error(*rr, "open: " + f);
    }
  }
}

net::awaitable<void> verify_one(revoke_run& rr, device_tunnel& t) {
  const auto& ex = rr.ex;
  error_code ec;
  http_answer a;
  failure f;
  const guard g(ex, t.s->next_layer(), io_timeout);
  co_await net::async_write(*t.s, net::buffer(rr.get_req),
                            net::redirect_error(net::use_awaitable, ec));
  f = ec ? "write: " + ec.message() : std::string();
  if (f.empty()) f = co_await read_answer(*t.s, t.buf, a);
  if (f.empty() && (a.status != 200 || a.body_bytes != answer_body_size)) {
    f = "GET answered " + std::to_string(a.status);
  }
  if (f.empty()) {
    ++rr.st.verified;
    rr.st.body_bytes += a.body_bytes;
  } else {
    ++rr.st.verify_errors;
    count_error(rr, "verify: " + (g.fired() ? "timeout" : f));
  }
}

net::awaitable<void> verify_worker(revoke_run* rr) {
  while (rr->next < rr->tunnels->size()) {
    auto& t = (*rr->tunnels)[rr->next++];
    if (t.up) co_await verify_one(*rr, t);
  }
}

std::string inventory_record(const device_credential& d, const char* compliance) {
  std::ostringstream s;
  s << R"({"Id":{"Value":)" << d.uem_id << R"(},"Udid":")" << d.udid << R"(","SerialNumber":")"
    << d.serial << R"(","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":")"
    << compliance << R"(","CompromisedStatus":false,"UserEmailAddress":")" << d.user
    << R"(","_notify":false})";
  return s.str();
}

/// ISO-8601 UTC with 7 fractional digits, as Workspace ONE sends EventTime.
std::string event_time() {
  const auto now = std::chrono::system_clock::now();
  const auto secs = std::chrono::system_clock::to_time_t(now);
  const auto frac = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch() %
                                                                         std::chrono::seconds(1))
                        .count() /
                    100;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  (void)std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%07lldZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                      static_cast<long long>(frac));
  return buf;
}

std::string event_body(revoke_run& rr, const device_credential& d, const char* compliance) {
  std::ostringstream s;
  s << R"({"EventId":)" << rr.event_base + static_cast<long long>(++rr.events)
    << R"(,"EventType":"Compliance Status Changed","DeviceId":)" << d.uem_id << R"(,"Udid":")"
    << d.udid << R"(","SerialNumber":")" << d.serial << R"(","ComplianceStatus":")" << compliance
    << R"(","CompromisedStatus":"false","EnrollmentStatus":"Enrolled","Platform":"Apple","EventTime":")"
    << event_time() << R"("})";
  return s.str();
}

/// Sets the device's compliance in uem-sim (no notification from uem-sim itself).
net::awaitable<bool> set_compliance(revoke_run& rr, const device_credential& d,
                                    const char* compliance) {
  http_answer a;
  std::string answer;
  const std::string body = inventory_record(d, compliance);
  const std::string path = "/_sim/devices/" + d.udid;
  const std::string method = "POST";
  const failure f = co_await rr.uem->call(method, path, body, a, answer, nullptr);
  if (f.empty() && a.status == 200) co_return true;
  ++rr.st.uem_errors;
  count_error(rr, "uem-sim: " + (f.empty() ? "answered " + std::to_string(a.status) : f));
  co_return false;
}

/// POSTs the event to the gateway's webhook; true on a 2xx answer. `sent_at` as in call().
net::awaitable<bool> post_event(revoke_run& rr, const device_credential& d, const char* compliance,
                                clock_type::time_point& sent_at) {
  http_answer a;
  std::string answer;
  const std::string body = event_body(rr, d, compliance);
  const std::string method = "POST";
  const failure f = co_await rr.hook->call(method, rr.hook->url().path, body, a, answer, &sent_at);
  if (f.empty()) ++rr.st.webhook_statuses[a.status];
  if (f.empty() && a.status >= 200 && a.status < 300) co_return true;
  ++rr.st.webhook_errors;
  count_error(
      rr, "webhook: " + (f.empty() ? "answered " + std::to_string(a.status) + " " + answer : f));
  co_return false;
}

net::awaitable<void> one_round(revoke_run& rr, std::size_t i) {
  const auto& ex = rr.ex;
  const auto& d = (*rr.devices)[i];
  auto& t = (*rr.tunnels)[i];
  auto w = std::make_shared<close_watch>(ex);
  clock_type::time_point sent{};
  clock_type::time_point answered{};
  error_code ec;
  ++rr.st.rounds;
  if (!co_await set_compliance(rr, d, "NonCompliant")) co_return;
  net::co_spawn(ex, watch_close(t.s.get(), w), net::detached);
  const bool posted = co_await post_event(rr, d, "NonCompliant", sent);
  answered = clock_type::now();
  if (posted) {
    rr.st.webhook_us.push_back(std::chrono::duration<double, std::micro>(answered - sent).count());
  }
  if (!w->closed) {
    w->wake.expires_after(std::chrono::duration_cast<clock_type::duration>(
        std::chrono::duration<double>(rr.o->revoke_timeout)));
    co_await w->wake.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  const bool closed = w->closed && !w->data;
  if (closed) {
    ++rr.st.closed;
    rr.st.close_us.push_back(std::chrono::duration<double, std::micro>(w->at - sent).count());
  } else {
    ++rr.st.not_closed;
    count_error(rr, w->data ? "revoked tunnel got data instead of a close"
                            : "revoked tunnel still open after --revoke-timeout");
  }
  // Close our side, and let the watcher finish before the stream goes.
  t.s->next_layer().close(ec);
  t.up = false;
  if (!w->closed) {
    w->wake.expires_after(std::chrono::seconds(5));
    co_await w->wake.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  if (!rr.o->reconnect) co_return;
  if (!co_await set_compliance(rr, d, "Compliant")) co_return;
  clock_type::time_point ignored{};
  if (!co_await post_event(rr, d, "Compliant", ignored)) co_return;
  const failure f = co_await open_device(rr, i);
  if (f.empty()) {
    ++rr.st.reconnected;
  } else {
    ++rr.st.reconnect_errors;
    count_error(rr, "reconnect: " + f);
  }
}

net::awaitable<void> revoke_main(revoke_run* rr) {
  const options& o = *rr->o;
  // 1. the devices in the UEM (created or reset to compliant)
  for (const auto& d : *rr->devices) {
    if (!co_await set_compliance(*rr, d, "Compliant")) co_return;
  }
  // 2. one tunnel per device
  rr->next = 0;
  const auto& ex = rr->ex;
  net::steady_timer done(ex);
  error_code ec;
  for (unsigned i = 0; i < o.concurrency; ++i)
    net::co_spawn(ex, open_worker(rr), net::detached);
  // The workers run on; poll until all have been tried (no join primitive in Asio 1.18).
  while (rr->st.opened + rr->st.open_errors < rr->tunnels->size()) {
    done.expires_after(std::chrono::milliseconds(20));
    co_await done.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  if (rr->st.open_errors > 0) co_return;
  // 3. the rounds, measured
  cpu_meter cpu(o.target_pid);
  cpu.start();
  const auto start = clock_type::now();
  const std::size_t n = rr->tunnels->size();
  // Spread the rounds over the devices; skip a device whose tunnel is down.
  const std::size_t step = std::max<std::size_t>(1, n / std::max(1U, o.rounds));
  for (unsigned r = 0; r < o.rounds; ++r) {
    std::size_t i = (r * step) % n;
    for (std::size_t k = 0; k < n && !(*rr->tunnels)[i].up; ++k)
      i = (i + 1) % n;
    if (!(*rr->tunnels)[i].up) break;
    co_await one_round(*rr, i);
  }
  rr->seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  rr->cpu_s = cpu.stop();
}

}  // namespace

int run_revoke(const options& o) {
  if (o.origin.empty()) throw std::runtime_error("revoke: give --origin ADDR:PORT (the sink)");
  if (o.ca_key.empty()) throw std::runtime_error("revoke: give --ca-key (the dev CA's ca.key)");
  if (o.uem_admin.empty()) throw std::runtime_error("revoke: give --uem-admin https://IP:PORT");
  if (o.webhook.empty()) throw std::runtime_error("revoke: give --webhook http://IP:PORT/");
  if (o.devices == 0) throw std::runtime_error("revoke: --devices must be at least 1");
  const long files = raise_open_files_limit();
  if (static_cast<long>(o.devices) + 64 > files) {
    throw std::runtime_error("revoke: " + std::to_string(o.devices) +
                             " devices need more open files than this process may have (" +
                             std::to_string(files) + ")");
  }
  std::string password;
  if (!o.webhook_password_file.empty()) {
    std::ifstream in(o.webhook_password_file);
    if (!in)
      throw std::runtime_error("cannot read --webhook-password-file " + o.webhook_password_file);
    std::getline(in, password);
    while (!password.empty() && (password.back() == '\r' || password.back() == ' '))
      password.pop_back();
  }
  // The devices: certificates from the CA key, one UEM id each.
  device_issuer issuer(o.ca_cert.empty() ? o.ca : o.ca_cert, o.ca_key);
  std::vector<device_credential> devices;
  devices.reserve(o.devices);
  const auto gen_start = clock_type::now();
  for (unsigned i = 0; i < o.devices; ++i) {
    const std::string udid = o.udid_prefix + std::to_string(i + 1);
    auto d =
        issuer.issue(udid, "SN-" + udid, "rev" + std::to_string(i + 1) + "@example.com", "ios");
    d.uem_id = 700000 + i;
    devices.push_back(std::move(d));
  }
  const double gen_secs = std::chrono::duration<double>(clock_type::now() - gen_start).count();

  net::io_context io(1);
  options device_opts = o;
  device_opts.cert.clear();
  device_opts.key.clear();
  auto device_ctx = make_client_context(device_opts, false);
  ssl::context web_ctx(ssl::context::tls_client);
  web_ctx.load_verify_file(o.uem_ca.empty() ? o.ca : o.uem_ca);
  web_ctx.set_verify_mode(ssl::verify_peer);
  http_client uem(io.get_executor(), web_ctx, parse_url(o.uem_admin, "--uem-admin"), "");
  http_client hook(
      io.get_executor(), web_ctx, parse_url(o.webhook, "--webhook"),
      o.webhook_user.empty() ? std::string() : "Basic " + base64(o.webhook_user + ":" + password));
  source_pool sources(o.sources, o.devices);
  std::vector<device_tunnel> tunnels(o.devices);
  revoke_run rr;
  rr.ex = io.get_executor();
  rr.o = &o;
  rr.device_ctx = &device_ctx;
  rr.gw = parse_endpoint(o.gateway);
  rr.connect_req = o.no_connect ? std::string() : connect_request(o.origin);
  rr.get_req = get_request(o.origin, false);
  rr.sources = &sources;
  rr.devices = &devices;
  rr.tunnels = &tunnels;
  rr.uem = &uem;
  rr.hook = &hook;
  rr.event_base = static_cast<long long>(std::time(nullptr) % 1000000) * 100000;
  std::exception_ptr failed;
  net::co_spawn(io, revoke_main(&rr), [&failed](const std::exception_ptr& e) { failed = e; });
  io.run();
  if (failed) std::rethrow_exception(failed);
  // Every remaining tunnel still answers: no device but the revoked one lost its tunnel.
  rr.next = 0;
  for (unsigned i = 0; i < o.concurrency; ++i)
    net::co_spawn(io, verify_worker(&rr), net::detached);
  io.restart();
  io.run();
  std::uint64_t up = 0;
  for (auto& t : tunnels) {
    up += t.up ? 1 : 0;
    error_code ec;
    if (t.s) t.s->next_layer().close(ec);
  }

  const auto& st = rr.st;
  auto r = report_head(o);
  r["origin"] = o.origin;
  r["devices"] = o.devices;
  r["certificates_seconds"] = num(gen_secs);
  r["opened"] = st.opened;
  r["open_latency_ms"] = latency_json(st.open_us);
  r["rounds"] = st.rounds;
  r["closed"] = st.closed;
  r["not_closed"] = st.not_closed;
  r["close_latency_ms"] = latency_json(st.close_us);
  r["webhook_latency_ms"] = latency_json(st.webhook_us);
  json statuses = json::object();
  for (const auto& [status, n] : st.webhook_statuses)
    statuses[std::to_string(status)] = n;
  r["webhook_answers"] = statuses;
  r["reconnected"] = st.reconnected;
  r["verified"] = st.verified;
  r["sessions_up"] = up;
  r["body_bytes"] = st.body_bytes;
  r["body_bytes_expected"] = st.verified * answer_body_size;
  r["seconds"] = num(rr.seconds);
  r["server_cpu_s"] = num(rr.cpu_s);
  const std::uint64_t errors = st.open_errors + st.not_closed + st.webhook_errors + st.uem_errors +
                               st.reconnect_errors + st.verify_errors;
  r["errors"] = errors;
  r["error_kinds"] = st.error_kinds;
  print_report(o, r);
  const bool all_rounds = st.rounds == o.rounds && st.closed == o.rounds;
  const bool all_verified = st.verified == (o.reconnect ? o.devices : o.devices - st.closed);
  return errors == 0 && all_rounds && all_verified ? 0 : 1;
}

}  // namespace bench
