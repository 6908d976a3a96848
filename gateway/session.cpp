// One device connection, top to bottom: handshake (certauth) → compliance (uem) → requests
// (CONNECT with a DTR decision, profile and PAC downloads) → tunnel → orderly close.
//
// GCC 12 and coroutines (STYLE P2, P6): no capturing coroutine lambdas; one co_await per
// statement and never inside ?:; no temporaries with destructors inside a co_await expression
// (messages are members or named locals); no block-scoped object with a destructor alive
// across a co_await in a block that ends in co_return (GCC 12 destroyed such objects twice).
// Early exits are therefore written as `if (...) co_return co_await answer();` with nothing
// declared inside the if.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <chrono>
#include <optional>
#include <sstream>

#include "gateway/refusal.hpp"
#include "gateway/relay.hpp"
#include "gateway/request.hpp"
#include "gateway/state.hpp"
#include "gateway/target.hpp"
#include "gateway/tls.hpp"
#include "gateway/tls_socket.hpp"
#include "gateway/vpn/auth.hpp"
#include "gateway/vpn/hub.hpp"
#include "gateway/vpn/tunnel.hpp"
#include "gateway/vpn/tunnel_session.hpp"
#include "gateway/watchdog.hpp"

namespace tunnelgate::gateway {

namespace {

using std::chrono::steady_clock;
using request_parser = http::request_parser<http::string_body>;

/// SHA-256 of the device certificate (DER), hex: what a VPN cookie is bound to.
std::string certificate_fingerprint(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (cert == nullptr || X509_digest(cert, EVP_sha256(), md.data(), &len) != 1) return {};
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += digits[md[i] >> 4];
    out += digits[md[i] & 0x0f];
  }
  return out;
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
  if (a.reason == "session-limit") return std::string(device_text(refusal::session_limit));
  return "access refused: " + a.reason;
}

unsigned admission_status(const admission& a) {
  if (a.reason == "session-limit") return 429;
  if (a.reason == "uem_unavailable") return 503;
  return 403;
}

/// Refusals about the shape of the request head end the connection: after a head two parsers
/// could read differently, nothing that follows on the stream can be trusted.
bool ends_connection(refusal r) {
  switch (r) {
    case refusal::bad_request:
    case refusal::bad_line_ending:
    case refusal::obs_fold:
    case refusal::header_too_large:
    case refusal::too_many_headers:
    case refusal::target_too_long:
    case refusal::body_not_allowed:
    case refusal::duplicate_host:
    case refusal::host_mismatch:
    case refusal::session_limit:
      return true;
    default:
      return false;
  }
}

std::string refused_addresses(const dial_result& r) {
  std::string out;
  for (const auto& [ep, v] : r.refused) {
    out += (out.empty() ? "" : ", ") + endpoint_text(ep) + " (" + std::string(to_string(v.block)) +
           ")";
  }
  return out;
}

/// A response as bytes (heads and bodies here are small: one write, one or two TLS records).
template <class Message>
std::string serialize(const Message& msg) {
  std::ostringstream os;
  os << msg;
  return std::move(os).str();
}

class connection {
 public:
  connection(std::shared_ptr<shared_state> st, std::shared_ptr<const runtime> rt, tcp::socket sock,
             accept_ticket ticket, std::optional<tcp::endpoint> peer = std::nullopt)
      : st_(std::move(st)),
        rt_(std::move(rt)),
        now_(rt_),
        ticket_(std::move(ticket)),
        tls_(std::move(sock), *rt_->tls),
        proxied_peer_(peer) {}

  ~connection() {
    if (entry_) {
      // Posted kills and rechecks may still run after this object is gone: they must find
      // the session dead and touch nothing.
      entry_->alive = false;
      entry_->kill = nullptr;
      entry_->recheck = nullptr;
    }
  }

  awaitable<void> run() {
    ex_ = co_await net::this_coro::executor;
    boost::system::error_code ec;
    peer_ = proxied_peer_ ? *proxied_peer_ : tls_.next_layer().remote_endpoint(ec);
    if (!co_await handshake()) co_return;
    tls_.on_renegotiation([this] { renegotiation_refused(); });
    auto ticket = st_->registry.begin_admission(identity_.udid);
    const auto asked = std::chrono::steady_clock::now();
    admission adm = co_await st_->comp->check(identity_);
    st_->stats.admission_seconds.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count());
    if (adm.admitted && !adm.platform)
      adm = {false, "unknown_platform", {}, "no DTR platform for this device"};
    if (adm.admitted) {
      platform_ = *adm.platform;
      if (!register_session()) {
        adm = {false, "session-limit", adm.platform,
               "the device has limits.max_sessions_per_device sessions open"};
      }
    }
    ticket.end();
    audit(adm);
    if (!adm.admitted) {
      co_await refuse_first_request(adm);
      co_return;
    }
    // A refusal that arrived between the lookup and add() found no session to close (and the
    // cache already says so): ask again now that the session is registered.
    adm = co_await st_->comp->check(identity_);
    if (!adm.admitted) session_registry::kill_here(*entry_, "compliance:" + adm.reason);
    // Likewise a CA or CRL change between the handshake and add().
    if (st_->trust_generation.load() != trust_generation_) recheck_certificate();
    co_await serve();
    session_ended();
    co_await close_tls();
  }

 private:
  const limits_config& limits() const { return now_->cfg->limits; }

  // ---- 1. TLS with certauth inside the handshake --------------------------------------------
  awaitable<bool> handshake() {
    boost::system::error_code ec;
    trust_generation_ = st_->trust_generation.load();
    set_handshake_generation(tls_.native_handle(), trust_generation_);
    // Both deadlines count from accept: the ClientHello's first byte within the short one, the
    // whole handshake within handshake_timeout. Either way the handshake slots are given back
    // when this returns (the ticket's end is tied to this scope).
    struct slots_back {
      accept_ticket& t;
      histogram& h;
      std::chrono::steady_clock::time_point start;
      ~slots_back() {
        t.handshake_done();
        h.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
    } back{ticket_, st_->stats.handshake_seconds, std::chrono::steady_clock::now()};
    watchdog guard(ex_, limits().handshake_timeout, [this] { close_socket(); });
    bool silent = false;
    {
      watchdog first(ex_, limits().first_byte_timeout, [this] { close_socket(); });
      co_await tls_.next_layer().async_wait(tcp::socket::wait_read,
                                            net::redirect_error(use_awaitable, ec));
      silent = first.fired();
    }
    if (!silent && !ec) co_await tls_.handshake(ec);
    if (!silent && !ec && SSL_session_reused(tls_.native_handle()) == 1) {
      guard.disarm();
      co_return resumed();
    }
    const auto* verdict = handshake_verdict(tls_.native_handle());
    if (!ec && verdict != nullptr && verdict->ok()) {
      guard.disarm();
      identity_ = *verdict->identity;
      identity_.udid = canonical_udid(identity_.udid);
      fingerprint_ = certificate_fingerprint(tls_.native_handle());
      st_->stats.handshakes.inc({"ok", "ok"});
      log_warnings(*verdict);
      co_return true;
    }
    std::string reason;
    std::string detail;
    if (silent) {
      reason = "first_byte_timeout";
      detail = "no byte of a TLS ClientHello within limits.first_byte_timeout";
    } else if (guard.fired()) {
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

  /// A resumed TLS session: the device is who the session remembers, provided no CA or CRL
  /// changed since that handshake; otherwise (or when the session remembers nothing) its
  /// certificate is verified now against the current trust store, as a full handshake would.
  /// Compliance is decided afresh either way (run()).
  bool resumed() {
    SSL* ssl = tls_.native_handle();
    const auto* remembered = resumed_identity(ssl);
    const auto gen = st_->trust_generation.load();
    if (remembered != nullptr && remembered->trust_generation == gen &&
        std::chrono::system_clock::now() < remembered->identity.not_after) {
      identity_ = remembered->identity;
    } else {
      const auto v = st_->current()->verifier->verify(ssl);
      if (!v.ok() || !v.identity) {
        const std::string reason(certauth::to_string(v.code));
        st_->stats.handshakes.inc({"refused", reason});
        st_->log->event(spdlog::level::warn, "handshake_refused",
                        {{"peer", endpoint_text(peer_)},
                         {"reason", reason},
                         {"detail", "resumed session: " + v.detail}});
        close_socket();
        return false;
      }
      identity_ = *v.identity;
      trust_generation_ = gen;
    }
    identity_.udid = canonical_udid(identity_.udid);
    fingerprint_ = certificate_fingerprint(ssl);
    st_->stats.handshakes.inc({"ok", "resumed"});
    return true;
  }

  /// OpenSSL refused a renegotiation the device asked for (tls_socket::on_renegotiation):
  /// counted each time, logged once per connection (a device repeating it cannot flood the log).
  void renegotiation_refused() {
    st_->stats.renegotiations_refused.fetch_add(1, std::memory_order_relaxed);
    if (renegotiation_logged_) return;
    renegotiation_logged_ = true;
    st_->log->event(spdlog::level::warn, "renegotiation_refused",
                    {{"udid", identity_.udid},
                     {"peer", endpoint_text(peer_)},
                     {"detail",
                      "the device asked for a TLS renegotiation: refused with a no_renegotiation "
                      "alert, the connection goes on (later attempts are only counted)"}});
  }

  void log_warnings(const certauth::verify_result& v) {
    for (const auto& w : v.warnings) {
      st_->log->event(spdlog::level::warn, "certificate_warning",
                      {{"udid", identity_.udid}, {"warning", w}});
    }
  }

  // ---- 2. compliance -------------------------------------------------------------------------
  /// The audit line and counter of an admission, once, after the session limit was applied:
  /// a device over its limit is refused, never "admitted" and then turned away.
  void audit(const admission& a) {
    st_->stats.uem_lookups.inc({a.reason == "uem_unavailable" ? "error" : "ok"});
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
  }

  /// HTTP etiquette: read the device's first request (bounded), then answer and close.
  awaitable<void> refuse_first_request(const admission& a) {
    request_parser parser;
    head_read h = co_await read_head(parser);
    if (!h.gone) {
      res_ = response(admission_status(a), a.reason, admission_text(a), false);
      (void)co_await write(res_);
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
      if (vpn_terminate_) {
        vpn_terminate_();  // a VPN tunnel says TERMINATE before it closes
        return;
      }
      close_socket();
      if (upstream_ != nullptr) {
        boost::system::error_code ignored;
        upstream_->close(ignored);
      }
    };
    entry_->recheck = [this] { recheck_certificate(); };
    registration_ = st_->registry.add(entry_, limits().max_sessions_per_device);
    if (!registration_) {
      entry_.reset();
      return false;
    }
    return true;
  }

  /// The certificate against the trust store as it is now (a CRL reload may have revoked it,
  /// a CA bundle change may have dropped its issuer): on the session's executor.
  void recheck_certificate() {
    if (!entry_ || !entry_->alive || entry_->killed) return;
    const auto rt = st_->current();
    const auto v = rt->verifier->verify(tls_.native_handle());
    if (!v.ok()) session_registry::kill_here(*entry_, std::string(certauth::to_string(v.code)));
  }

  void session_ended() {
    if (!entry_) return;
    entry_->alive = false;
    entry_->kill = nullptr;
    entry_->recheck = nullptr;
    registration_.reset();
    if (entry_->killed) {
      st_->stats.kills.inc({entry_->kill_reason});
      st_->log->event(
          spdlog::level::warn, "session_closed",
          {{"id", entry_->info.id}, {"udid", identity_.udid}, {"reason", entry_->kill_reason}});
    }
  }

  bool killed() const { return entry_ && entry_->killed; }

  // ---- 4. requests ---------------------------------------------------------------------------
  struct head_read {
    refusal why = refusal::none;
    bool gone = false;  ///< the device closed, timed out or was killed: nothing to answer
  };

  /// Reads one request head into `parser`: raw bytes until scan_request_head() decides (the
  /// whole head within limits.header_timeout), then exactly those bytes through Beast. Only the
  /// VPN's `POST /` carries a body (at most vpn::auth::max_body_size, read in the same time).
  awaitable<head_read> read_head(request_parser& parser) {
    head_read h;
    const auto& lim = limits();
    parser.header_limit(static_cast<std::uint32_t>(lim.header_limit));
    parser.body_limit(0);
    head_scan scan;
    boost::system::error_code ec;
    watchdog guard(ex_, lim.header_timeout, [this] { close_socket(); });
    for (;;) {
      const auto* p = static_cast<const char*>(buf_.data().data());
      scan = scan_request_head({p, buf_.size()}, lim.header_limit, lim.target_limit);
      if (scan.st != head_scan::state::incomplete) break;
      const auto space = buf_.prepare(lim.header_limit + 1 - buf_.size());
      const std::size_t n = co_await tls_.read_some(space, ec);
      buf_.commit(n);
      if (ec) break;
    }
    boost::system::error_code parse_ec;
    if (scan.st == head_scan::state::complete) {
      const std::string_view raw(static_cast<const char*>(buf_.data().data()), scan.length);
      if (raw.starts_with("POST ") && st_->vpn) parser.body_limit(vpn::auth::max_body_size);
      parser.put(net::buffer(buf_.data().data(), scan.length), parse_ec);
      buf_.consume(scan.length);
      if (!parse_ec && parser.is_header_done() && !parser.is_done()) {
        if (parser.chunked() || !parser.content_length()) {
          parse_ec = http::error::bad_transfer_encoding;
        } else {
          const auto want = static_cast<std::size_t>(*parser.content_length());
          while (buf_.size() < want && !ec) {
            const auto space = buf_.prepare(want - buf_.size());
            const std::size_t n = co_await tls_.read_some(space, ec);
            buf_.commit(n);
          }
          if (!ec) {
            parser.put(net::buffer(buf_.data().data(), want), parse_ec);
            buf_.consume(want);
          }
        }
      }
    }
    const bool timed_out = guard.fired();
    guard.disarm();
    if (timed_out && !killed()) {
      // Slow or silent after the handshake (slowloris, an idle keep-alive): closed, and said so.
      st_->stats.requests.inc({"header-timeout"});
      st_->log->event(buf_.size() > 0 ? spdlog::level::warn : spdlog::level::info,
                      "request_timeout",
                      {{"udid", identity_.udid},
                       {"peer", endpoint_text(peer_)},
                       {"bytes_received", buf_.size()},
                       {"detail", "no complete request head within limits.header_timeout"}});
    }
    if (scan.st == head_scan::state::refused) {
      h.why = scan.why;
    } else if (scan.st == head_scan::state::incomplete || ec) {
      // EOF, reset, timeout or kill before a whole request: a device that went away. A TLS
      // error in the middle of a head is answered (it is the device's bytes that were wrong).
      h.gone = !(ec.category() == net::error::get_ssl_category() && buf_.size() > 0);
      if (!h.gone) h.why = refusal::bad_request;
    } else if (parse_ec == http::error::body_limit || parse_ec == http::error::bad_content_length ||
               parse_ec == http::error::bad_transfer_encoding) {
      h.why = refusal::body_not_allowed;
    } else if (parse_ec || !parser.is_done()) {
      h.why = refusal::bad_request;
      parse_error_ = parse_ec ? parse_ec.message() : "incomplete request";
    }
    co_return h;
  }

  awaitable<void> serve() {
    std::optional<request_parser> parser;  // a new one per request
    connect_target target;
    bool keep = true;
    while (keep) {
      // Idle first, then the stop check: a draining shutdown (kill_idle, posted here after
      // `stopping` is set) either finds this session idle or it sees `stopping` below.
      entry_->idle = true;
      if (killed() || st_->stopping) break;
      parser.emplace();
      parse_error_.clear();
      head_read h = co_await read_head(*parser);
      entry_->idle = false;
      if (h.gone || killed()) break;
      now_ = st_->current();  // each request is decided by the configuration in force now
      if (h.why != refusal::none) {
        refuse(h.why, parse_error_);
        keep = co_await answer();
        continue;
      }
      auto& req = parser->get();
      // The first request tells the paths apart (DESIGN §1): openconnect's CONNECT names the
      // CSTP tunnel, a per-app CONNECT names HOST:PORT.
      const bool is_vpn_tunnel =
          req.method() == http::verb::connect && req.target() == "/CSCOSSLC/tunnel";
      const bool is_connect = req.method() == http::verb::connect && !is_vpn_tunnel;
      // Without a `vpn:` section a POST is just a method this gateway does not serve (405).
      const bool is_vpn_auth =
          st_->vpn != nullptr && req.method() == http::verb::post && req.target() == "/";
      refusal why = refusal::none;
      if (is_connect) why = parse_connect_target(sv(req.target()), target);
      if (why == refusal::none) {
        why = check_request_fields(req, limits().max_headers, is_connect ? &target : nullptr,
                                   is_vpn_auth);
      }
      if (why != refusal::none) {
        refuse(why, "target " + std::string(req.target()));
        keep = co_await answer();
        continue;
      }
      if (is_vpn_tunnel) {
        keep = co_await handle_vpn_tunnel(req);
      } else if (is_vpn_auth) {
        keep = co_await handle_vpn_auth(req);
      } else if (is_connect) {
        keep = co_await handle_connect(req, target);
      } else if (!req.target().starts_with("/")) {
        // An absolute-form request (a client using us as a plain HTTP proxy): say what to do.
        refuse(refusal::use_connect, "absolute-form target " + std::string(req.target()));
        keep = co_await answer();
      } else if (req.method() == http::verb::get || req.method() == http::verb::head) {
        keep = co_await handle_get(req);
      } else {
        refuse(refusal::method_not_allowed, std::string(req.method_string()));
        res_.set(http::field::allow, st_->vpn ? "CONNECT, GET, POST" : "CONNECT, GET");
        keep = co_await answer();
      }
      keep = keep && req.keep_alive();
    }
  }

  /// The one place a request is refused: one log line, one count, one answer (in res_, sent by
  /// answer()). `detail` and `extra` go to the log only, never to the device.
  void refuse(refusal r, const std::string& detail = {}, const log_fields& extra = {}) {
    refuse_as(to_string(r), http_status(r), std::string(device_text(r)), !ends_connection(r),
              detail, extra);
  }

  void refuse_as(std::string_view reason, unsigned status, std::string text, bool keep_alive,
                 const std::string& detail, const log_fields& extra) {
    count(reason);
    log_fields f{{"udid", identity_.udid}, {"reason", std::string(reason)}};
    f.insert(f.end(), extra.begin(), extra.end());
    if (!detail.empty()) f.emplace_back("detail", detail);
    st_->log->event(spdlog::level::info, "request_refused", f);
    res_ = response(status, reason, std::move(text), keep_alive);
  }

  /// Sends res_; true when the connection goes on (written and keep-alive).
  awaitable<bool> answer() {
    const bool ok = co_await write(res_);
    co_return ok&& res_.keep_alive();
  }

  void count(std::string_view outcome) { st_->stats.requests.inc({std::string(outcome)}); }

  static http::response<http::string_body> response(unsigned status, std::string_view reason,
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

  awaitable<bool> handle_get(const http::request<http::string_body>& req) {
    const auto target = std::string(req.target());
    const auto& rules = *now_->cfg->rules;
    const auto app = std::string(req["X-Tunnel-App"]);
    res_ = {http::status::ok, 11};
    res_.set(http::field::server, "tunnelgate");
    res_.keep_alive(req.keep_alive());
    bool found = true;
    if (target == "/dtr/profile") {
      res_.set(http::field::content_type, "application/json");
      res_.body() = dtr::to_profile_json(rules, platform_);
    } else if (target == "/proxy.pac") {
      std::string host(req[http::field::host]);
      if (!dtr::valid_pac_gateway(host)) {  // the Host header is the device's: hostile
        boost::system::error_code ec;
        host = endpoint_text(tls_.next_layer().local_endpoint(ec));
      }
      res_.body() = dtr::to_pac(rules, platform_, host, app);
      res_.set(http::field::content_type, "application/x-ns-proxy-autoconfig");
      if (res_.body().empty()) refuse(refusal::no_rule_set, "PAC for app " + app);
      found = !res_.body().empty();
    } else {
      refuse(refusal::not_found, target);
      found = false;
    }
    if (found) {
      count("download");
      res_.prepare_payload();
      if (req.method() == http::verb::head) res_.body().clear();
    }
    co_return co_await answer();
  }

  // ---- 5. CONNECT ----------------------------------------------------------------------------
  awaitable<bool> handle_connect(const http::request<http::string_body>& req,
                                 const connect_target& t) {
    const std::string app(req["X-Tunnel-App"]);
    const std::string destination = t.authority();
    if (app.size() > 256) {
      refuse(refusal::bad_app, "X-Tunnel-App of " + std::to_string(app.size()) + " bytes");
      co_return co_await answer();
    }
    // The device's state now, not when the connection started (from the cache: cheap).
    const admission now = co_await st_->comp->check(identity_);
    if (!now.admitted) {
      refuse_as(now.reason, admission_status(now), admission_text(now), false, now.detail,
                {{"destination", destination}});
      co_return co_await answer();
    }
    const auto& rules = *now_->cfg->rules;
    const auto d = rules.evaluate({t.host, t.port, platform_, app});
    const log_fields where = decision_fields(app, destination, d.set, d.rank, d.line);
    if (d.refused()) {
      refuse(d.refusal == "no-rule-set" ? refusal::no_rule_set : refusal::bad_host, {}, where);
      co_return co_await answer();
    }
    if (d.act == dtr::action::bypass || d.act == dtr::action::block) {
      refuse(d.act == dtr::action::bypass ? refusal::bypass : refusal::blocked, {}, where);
      co_return co_await answer();
    }

    // tunnel or proxy: every address passes the egress policy, then connect from the egress
    // address.
    const bool via_proxy = d.act == dtr::action::proxy;
    const std::string dial_host = via_proxy ? d.proxy->host : t.host;
    const std::uint16_t dial_port = via_proxy ? d.proxy->port : t.port;
    const auto policy = now_->policy;
    const address_check check = [&](const tcp::endpoint& ep) {
      return via_proxy ? policy->check_upstream(ep) : policy->check(ep, rules, platform_, app);
    };
    tcp::socket sock(ex_);
    upstream_ = &sock;
    dial_result r = co_await dial(now_->egress, dial_host, dial_port, check, sock);
    for (const auto& [ep, v] : r.refused)
      st_->stats.egress_refusals.inc({std::string(to_string(v.block))});
    if (via_proxy) {
      // The proxy could not be reached: the device hears that the proxy failed, not that its
      // destination did (the destination was never tried).
      if (r.status == refusal::connect_failed || r.status == refusal::resolve_failed) {
        r.status = refusal::proxy_failed;
        r.detail = "upstream proxy " + d.proxy->name + ": " + r.detail;
      } else if (r.status == refusal::connect_timeout || r.status == refusal::resolve_timeout) {
        r.status = refusal::proxy_timeout;
        r.detail = "upstream proxy " + d.proxy->name + ": " + r.detail;
      }
    }
    beast::flat_buffer upstream_leftover;
    std::unique_ptr<ssl::stream<tcp::socket&>> upstream_tls;
    if (r.status == refusal::none && via_proxy) {
      const auto creds_it = now_->cfg->proxy_credentials.find(d.proxy->name);
      const std::string creds =
          creds_it == now_->cfg->proxy_credentials.end() ? "" : creds_it->second;
      // The CONNECT's outcome; the endpoints stay the dial's (egress address, the proxy).
      const tcp::endpoint local = r.local;
      const tcp::endpoint remote = r.remote;
      if (d.proxy->tls) {
        r = co_await proxy_over_tls(sock, *d.proxy, destination, creds, upstream_leftover,
                                    upstream_tls);
      } else {
        r = co_await proxy_connect(sock, destination, creds, upstream_leftover,
                                   limits().upstream_timeout);
      }
      r.local = local;
      r.remote = remote;
    }
    if (killed()) {
      upstream_ = nullptr;
      co_return false;
    }
    if (r.status != refusal::none) {
      upstream_ = nullptr;
      refuse_dial(r, app, destination, d);
      co_return co_await answer();
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
    const bool written = co_await write(ok);
    relay_end end = relay_end::error;
    const auto t0 = steady_clock::now();
    ++st_->stats.active_tunnels;
    if (written) {
      if (upstream_tls) {
        end = co_await relay(tls_, *upstream_tls, buf_, upstream_leftover, entry_->counters,
                             limits().idle_timeout, entry_->killed);
      } else {
        end = co_await relay(tls_, sock, buf_, upstream_leftover, entry_->counters,
                             limits().idle_timeout, entry_->killed);
      }
    }
    --st_->stats.active_tunnels;
    upstream_ = nullptr;
    const auto up = entry_->counters.up.load();
    const auto down = entry_->counters.down.load();
    st_->stats.bytes.inc({"up"}, up);
    st_->stats.bytes.inc({"down"}, down);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - t0);
    st_->log->access({{"udid", identity_.udid},
                      {"user", identity_.user},
                      {"peer", endpoint_text(peer_)},
                      {"platform", std::string(dtr::to_string(platform_))},
                      {"app", app.empty() ? "-" : app},
                      {"destination", destination},
                      {"action", action},
                      {"set", d.set->name},
                      {"rank", d.rank == 0 ? "default" : std::to_string(d.rank)},
                      {"line", d.line},
                      {"egress", endpoint_text(r.local)},
                      {"remote", endpoint_text(r.remote)},
                      {"bytes_up", up},
                      {"bytes_down", down},
                      {"duration_ms", ms.count()},
                      {"result", !written   ? std::string("device-write-failed")
                                 : killed() ? "killed:" + entry_->kill_reason
                                            : std::string(to_string(end))}});
    boost::system::error_code ignored;
    sock.close(ignored);
    co_return false;
  }

  // ---- 6. the full-device VPN (OpenConnect protocol, docs/vpn.md) ----------------------------
  /// `POST /` with the XML auth body: the certificate already proved the device and the UEM
  /// admitted it, so the answer is at once `complete` with a session cookie bound to this
  /// device and certificate. openconnect then opens a new connection for the tunnel.
  awaitable<bool> handle_vpn_auth(const http::request<http::string_body>& req) {
    // The device's state now (from the cache), as for every request.
    const admission now = co_await st_->comp->check(identity_);
    if (!now.admitted) {
      refuse_as(now.reason, admission_status(now), admission_text(now), false, now.detail, {});
      co_return co_await answer();
    }
    const auto parsed = vpn::auth::parse_request(req.body());
    const auto* set = now_->cfg->rules->select(platform_, {});
    if (parsed.err != vpn::auth::error::none) {
      refuse(refusal::vpn_bad_request,
             "auth body: " + std::string(vpn::auth::to_string(parsed.err)) + " at line " +
                 std::to_string(parsed.line));
      co_return co_await answer();
    }
    if (set == nullptr || set->m != dtr::mode::full_device) {
      // openconnect shows the message of a failed auth document and exits cleanly.
      refuse(refusal::no_rule_set, "no full-device rule set for the VPN");
      set_auth_answer(
          vpn::auth::failure(to_string(refusal::no_rule_set),
                             "no full-device traffic rules apply to this device's platform"));
      co_return co_await answer();
    }
    const auto cookie = st_->vpn->cookies().issue({identity_.udid, fingerprint_});
    if (cookie.empty()) {
      refuse(refusal::vpn_full, "the cookie store is full");
      co_return co_await answer();
    }
    set_auth_answer(vpn::auth::success(cookie));
    count("vpn-auth");
    st_->log->event(
        spdlog::level::info, "vpn_auth",
        {{"udid", identity_.udid},
         {"client", parsed.value.version.empty() ? "-" : parsed.value.version},
         {"device", parsed.value.device.platform.empty() ? "-" : parsed.value.device.platform}});
    co_return co_await answer();
  }

  void set_auth_answer(const vpn::auth::answer& a) {
    res_ = {static_cast<http::status>(a.status), 11};
    res_.set(http::field::server, "tunnelgate");
    for (const auto& [k, v] : a.headers)
      res_.insert(bsv(k), bsv(v));
    res_.keep_alive(true);
    res_.body() = a.body;
    res_.prepare_payload();
  }

  /// `CONNECT /CSCOSSLC/tunnel` with the cookie: an address, the X-CSTP-* answer, then the
  /// tunnel until it ends. The connection ends with it.
  awaitable<bool> handle_vpn_tunnel(const http::request<http::string_body>& req) {
    if (!st_->vpn) {
      refuse(refusal::vpn_not_configured);
      co_return co_await answer();
    }
    // The device's state now (from the cache), as for every request.
    const admission now = co_await st_->comp->check(identity_);
    if (!now.admitted) {
      refuse_as(now.reason, admission_status(now), admission_text(now), false, now.detail, {});
      co_return co_await answer();
    }
    auto& hub = *st_->vpn;
    const auto& vpn = hub.settings();
    const auto found = vpn::auth::find_session_cookie(sv(req[http::field::cookie]));
    std::uint64_t replaces = 0;
    auto redeemed = cookie_store::refusal::unknown;
    if (found.state == vpn::auth::cookie_result::status::found) {
      redeemed = hub.cookies().redeem(found.value, {identity_.udid, fingerprint_}, &replaces);
    } else if (found.state == vpn::auth::cookie_result::status::missing) {
      redeemed = cookie_store::refusal::missing;
    }
    const std::string cookie(found.value);
    if (redeemed != cookie_store::refusal::none) {
      // 401: openconnect says "Cookie was rejected by server" and stops retrying.
      refuse_as(cookie_store::to_string(redeemed), 401,
                "the VPN session cookie is not valid: authenticate again", false, {}, {});
      co_return co_await answer();
    }
    vpn::tunnel::client_request creq;
    std::string bad_header;
    for (const auto& f : req) {
      const auto name = sv(f.name_string());
      if (!name.starts_with("X-CSTP-") && !name.starts_with("x-cstp-")) continue;
      if (vpn::tunnel::apply_header(creq, name, sv(f.value())) != vpn::tunnel::request_error::none)
        bad_header = std::string(name);
    }
    if (!bad_header.empty()) {
      refuse(refusal::vpn_bad_request, "header " + bad_header);
      co_return co_await answer();
    }
    if (replaces != 0) {
      // The device reconnects while its old tunnel is still up (openconnect gives up on a
      // silent connection sooner than the gateway): the old one goes, the device keeps its
      // address.
      st_->registry.kill(replaces, "replaced");
      st_->log->event(spdlog::level::info, "vpn_tunnel_replaced",
                      {{"udid", identity_.udid}, {"old_session", replaces}});
    }
    // A device holds at most vpn.max_tunnels_per_device tunnels (the ticket holds one).
    auto ticket = hub.take_tunnel(identity_.udid);
    for (int i = 0; i < 40 && !ticket && replaces != 0; ++i) {
      co_await pause(std::chrono::milliseconds(50));  // the replaced tunnel is ending
      ticket = hub.take_tunnel(identity_.udid);
    }
    if (!ticket) {
      hub.cookies().release(cookie, true);  // not the cookie's fault: it may be used again
      refuse(refusal::vpn_device_limit,
             std::to_string(vpn.max_tunnels_per_device) + " tunnels of this device are open");
      co_return co_await answer();
    }
    // A reconnecting client asks for its previous address (and refuses another one).
    vpn::address_pool::lease lease;
    for (int i = 0; i < 40 && hub.pool().in_use() < vpn.max_sessions; ++i) {
      if (creq.previous_v4) lease = hub.pool().allocate(*creq.previous_v4);
      if (lease || !creq.previous_v4 || replaces == 0) break;
      co_await pause(std::chrono::milliseconds(50));  // the replaced tunnel still holds it
    }
    if (!lease && hub.pool().in_use() < vpn.max_sessions) lease = hub.pool().allocate();
    if (!lease) {
      hub.cookies().release(cookie, true);
      refuse(refusal::vpn_full, std::to_string(hub.pool().in_use()) + " addresses in use");
      res_.set("X-Reason", "no VPN address is free");
      co_return co_await answer();
    }
    const auto mtu = vpn::tunnel::negotiate_mtu(vpn.mtu, 1500, creq, vpn.pool6.has_value());
    vpn::tunnel::settings ts;
    ts.ipv4 = net::ip::network_v4(lease.v4(), static_cast<unsigned short>(vpn.pool.prefix));
    if (lease.v6() && mtu.ipv6) {
      ts.ipv6 = net::ip::network_v6(*lease.v6(), static_cast<unsigned short>(vpn.pool6->prefix));
    }
    ts.mtu = mtu.mtu;
    ts.base_mtu = mtu.base_mtu;
    ts.dpd = std::chrono::duration_cast<std::chrono::seconds>(vpn.dpd);
    ts.keepalive = std::chrono::duration_cast<std::chrono::seconds>(vpn.keepalive);
    ts.idle_timeout = std::chrono::duration_cast<std::chrono::seconds>(vpn.idle_timeout);
    if (vpn.dns) ts.dns.emplace_back(hub.tunnel_address());
    const auto split = vpn_hub::split_for(*now_->cfg->rules, platform_, vpn.mapped_pool);
    if (!split.full_tunnel) {
      ts.split_include_v4 = split.include_v4;
      ts.split_include_v6 = split.include_v6;
      if (vpn.dns) ts.split_dns = split.dns;
    }
    ts.default_domain = vpn.default_domain;
    http::response<http::empty_body> ok{http::status::ok, 11};
    ok.reason("CONNECTED");
    ok.set(http::field::server, "tunnelgate");
    std::vector<vpn::tunnel::header> headers;
    try {
      headers = vpn::tunnel::response_headers(ts);
    } catch (const std::exception& e) {
      // The configuration and split_for only pass valid values; if one slips through, the
      // tunnel is refused with the reason in the log rather than with a silent close.
      hub.cookies().release(cookie, true);
      refuse(refusal::vpn_bad_request, std::string("X-CSTP answer: ") + e.what());
    }
    if (headers.empty()) co_return co_await answer();
    for (const auto& [k, v] : headers)
      ok.insert(bsv(k), bsv(v));
    // Each frame leaves at once, as ocserv does: a tunnel carries interactive traffic, and
    // Nagle would hold a frame back until the device acknowledged the one before.
    boost::system::error_code nodelay_ec;
    tls_.next_layer().set_option(tcp::no_delay(true), nodelay_ec);
    const bool written = co_await write(ok);
    if (!written || killed()) co_return false;
    count("vpn");
    st_->registry.update(entry_->info.id, [&](session_info& i) {
      i.action = "vpn";
      i.destination = lease.v4().to_string();
      i.rule_set = split.full_tunnel ? "full-tunnel" : "split";
      i.egress = now_->cfg->egress.v4 ? now_->cfg->egress.v4->to_string() : "-";
    });
    auto link = std::make_shared<vpn_link>();
    link->executor = ex_;
    link->udid = identity_.udid;
    link->user = identity_.user;
    link->platform = platform_;
    link->address = lease.v4();
    vpn_tunnel_context ctx;
    ctx.tls = &tls_;
    ctx.leftover = &buf_;
    ctx.st = st_;
    ctx.hub = st_->vpn;
    ctx.link = link;
    ctx.entry = entry_.get();
    ctx.mtu = mtu.mtu;
    ctx.terminate_hook = &vpn_terminate_;
    st_->log->event(spdlog::level::info, "vpn_connected",
                    {{"udid", identity_.udid},
                     {"address", lease.v4().to_string()},
                     {"mtu", mtu.mtu},
                     {"split_include", ts.split_include_v4.size()},
                     {"split_dns", ts.split_dns.size()},
                     {"client", creq.hostname.empty() ? "-" : creq.hostname}});
    const auto t0 = steady_clock::now();
    hub.cookies().bind(cookie, entry_->info.id);
    ++st_->stats.active_tunnels;
    const std::string why = co_await run_vpn_tunnel(&ctx);
    --st_->stats.active_tunnels;
    // A lost connection (not a kill, not the device leaving) may be resumed with the same
    // cookie, as openconnect does after a network drop.
    const bool lost =
        !killed() && (why == "device-closed" || why == "read-failed" || why == "write-failed" ||
                      why == "write-stalled" || why == "dpd-timeout");
    hub.cookies().release(cookie, lost);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - t0).count();
    st_->stats.bytes.inc({"up"}, entry_->counters.up.load());
    st_->stats.bytes.inc({"down"}, entry_->counters.down.load());
    st_->log->access({{"kind", "vpn_session"},
                      {"udid", identity_.udid},
                      {"user", identity_.user},
                      {"peer", endpoint_text(peer_)},
                      {"platform", std::string(dtr::to_string(platform_))},
                      {"address", lease.v4().to_string()},
                      {"bytes_up", entry_->counters.up.load()},
                      {"bytes_down", entry_->counters.down.load()},
                      {"duration_ms", ms},
                      {"result", killed() ? "killed:" + entry_->kill_reason : why}});
    co_return false;
  }

  /// Log fields naming the rule that decided a flow.
  static log_fields decision_fields(const std::string& app, const std::string& destination,
                                    const dtr::rule_set* set, int rank, int line) {
    return {{"app", app.empty() ? "-" : app},
            {"destination", destination},
            {"set", set != nullptr ? set->name : "-"},
            {"rank", set == nullptr ? "-"
                     : rank == 0    ? "default"
                                    : std::to_string(rank)},
            {"line", set != nullptr ? line : 0}};  // a number in JSON; 0: no rule set
  }

  /// A failed dial: the log names every address the egress policy refused and why, and the
  /// rule that refused an address when one did; the device hears only the reason.
  void refuse_dial(const dial_result& r, const std::string& app, const std::string& destination,
                   const dtr::decision& d) {
    auto f = r.rule.set != nullptr
                 ? decision_fields(app, destination, r.rule.set, r.rule.rank, r.rule.line)
                 : decision_fields(app, destination, d.set, d.rank, d.line);
    if (d.act == dtr::action::proxy) f.emplace_back("proxy", d.proxy->name);
    if (!r.refused.empty()) f.emplace_back("refused_addresses", refused_addresses(r));
    if (r.status == refusal::gateway_overloaded) {
      st_->stats.exhausted.inc({"egress", std::string(r.exhausted)});
    }
    refuse(r.status, r.detail, f);
  }

  awaitable<dial_result> proxy_over_tls(tcp::socket& sock, const dtr::proxy_def& proxy,
                                        const std::string& destination, const std::string& creds,
                                        beast::flat_buffer& leftover,
                                        std::unique_ptr<ssl::stream<tcp::socket&>>& out) {
    auto s = std::make_unique<ssl::stream<tcp::socket&>>(sock, *now_->upstream_tls);
    dial_result r;
    // Verify the proxy's certificate for its name (or address).
    if (!dtr::parse_ip(proxy.host))
      SSL_set_tlsext_host_name(s->native_handle(), proxy.host.c_str());
    s->set_verify_mode(ssl::verify_peer);
    s->set_verify_callback(ssl::host_name_verification(proxy.host));
    boost::system::error_code ec;
    watchdog guard(ex_, limits().upstream_timeout, [&sock] {
      boost::system::error_code ignored;
      sock.close(ignored);
    });
    co_await s->async_handshake(ssl::stream_base::client, net::redirect_error(use_awaitable, ec));
    guard.disarm();
    if (guard.fired()) {
      r.status = refusal::proxy_timeout;
      r.detail = "TLS handshake with upstream proxy " + proxy.name + " timed out";
    } else if (ec) {
      r.status = refusal::proxy_failed;
      r.detail = "TLS handshake with upstream proxy " + proxy.name + " failed: " + ec.message();
    } else {
      r = co_await proxy_connect(*s, destination, creds, leftover, limits().upstream_timeout);
      if (r.status == refusal::none) out = std::move(s);
    }
    co_return r;
  }

  // ---- plumbing ------------------------------------------------------------------------------
  awaitable<void> pause(std::chrono::milliseconds d) {
    net::steady_timer t(ex_, d);
    boost::system::error_code ignored;
    co_await t.async_wait(net::redirect_error(use_awaitable, ignored));
  }

  /// Writes a message to the device within limits.header_timeout; true when written.
  /// `msg` must be a named local or member (no temporaries in a co_await expression).
  template <class Message>
  awaitable<bool> write(Message& msg) {
    boost::system::error_code ec;
    watchdog guard(ex_, limits().header_timeout, [this] { close_socket(); });
    out_ = serialize(msg);
    (void)co_await tls_.write_all(net::buffer(out_), ec);
    out_.clear();
    out_.shrink_to_fit();
    co_return !ec && !guard.fired();
  }

  void close_socket() {
    boost::system::error_code ignored;
    tls_.next_layer().close(ignored);
  }

  awaitable<void> close_tls() {
    if (!tls_.next_layer().is_open()) co_return;
    watchdog guard(ex_, std::chrono::seconds(2), [this] { close_socket(); });
    co_await tls_.shutdown();
    guard.disarm();
    close_socket();
  }

  std::shared_ptr<shared_state> st_;
  std::shared_ptr<const runtime> rt_;   ///< the generation the TLS context comes from
  std::shared_ptr<const runtime> now_;  ///< the generation deciding the current request
  accept_ticket ticket_;  ///< the connection's slot; handshake slots until handshake() ends
  tls_socket tls_;
  std::string out_;  ///< a response head (and body) being written
  net::any_io_executor ex_;
  tcp::endpoint peer_;
  /// The device's address from a PROXY protocol header (run_connection's `peer`), if any.
  std::optional<tcp::endpoint> proxied_peer_;
  certauth::device_identity identity_;  ///< udid in canonical_udid() form
  std::uint64_t trust_generation_ = 0;  ///< shared_state::trust_generation at the handshake
  dtr::platform platform_ = dtr::platform::ios;
  beast::flat_buffer buf_;                 ///< bytes from the device not yet consumed
  http::response<http::string_body> res_;  ///< the answer being sent (see the top comment)
  std::string parse_error_;                ///< Beast's message for a bad head (log only)
  std::string fingerprint_;                ///< SHA-256 of the device certificate, hex
  bool renegotiation_logged_ = false;      ///< renegotiation_refused() logged this connection
  /// Set while a VPN tunnel runs: ends it with TERMINATE (the kill hook calls it).
  std::function<void()> vpn_terminate_;
  std::shared_ptr<session_entry> entry_;
  session_registry::registration registration_;
  tcp::socket* upstream_ = nullptr;  ///< the tunnel's egress socket while one is open
};

}  // namespace

accept_limits accept_limits_of(const limits_config& l) {
  accept_limits a;
  a.max_connections = l.max_connections;
  a.max_handshakes_per_thread = l.max_handshakes_per_thread;
  a.max_pending_per_source = l.max_pending_per_source;
  a.rate_per_source = l.handshake_rate_per_source;
  a.burst_per_source = l.handshake_burst_per_source;
  return a;
}

awaitable<void> run_connection(std::shared_ptr<shared_state> st, tcp::socket sock,
                               accept_ticket ticket, std::optional<tcp::endpoint> peer) {
  auto rt = st->current();
  if (!ticket.holds_connection()) {
    // Only tests get here: no limits but the connection count, no thread counter.
    accept_limits unlimited;
    unlimited.max_connections = static_cast<std::size_t>(-1) / 2;
    unlimited.max_pending_per_source = 0;
    unlimited.rate_per_source = 0;
    boost::system::error_code ec;
    const auto from = peer ? *peer : sock.remote_endpoint(ec);
    ticket =
        st->accept->admit(from.address(), unlimited, nullptr, accept_control::clock::now()).ticket;
  }
  connection c(st, rt, std::move(sock), std::move(ticket), peer);
  co_await c.run();
}

}  // namespace tunnelgate::gateway
