// The admin listener: health, readiness, Prometheus metrics and the sessions API. Plain HTTP,
// loopback by default; a bearer token (from a file) is required whenever one is configured.
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <map>
#include <optional>

#include "gateway/admin.hpp"
#include "gateway/target.hpp"
#include "gateway/vpn/hub.hpp"
#include "gateway/watchdog.hpp"

namespace tunnelgate::gateway {

namespace {

std::string iso8601(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

http::response<http::string_body> reply(unsigned status, std::string body, std::string type,
                                        bool keep_alive) {
  http::response<http::string_body> res{static_cast<http::status>(status), 11};
  res.set(http::field::server, "tunnelgate-admin");
  res.set(http::field::content_type, std::move(type));
  res.set(http::field::cache_control, "no-store");
  res.keep_alive(keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

http::response<http::string_body> json_reply(unsigned status, const nlohmann::json& j,
                                             bool keep_alive) {
  return reply(status, j.dump() + "\n", "application/json", keep_alive);
}

bool token_ok(const std::string& want, std::string_view header) {
  constexpr std::string_view scheme = "Bearer ";
  if (!header.starts_with(scheme)) return false;
  header.remove_prefix(scheme.size());
  // Constant time over the expected length, whatever the length given.
  const bool same_len = header.size() == want.size();
  std::string cmp(want.size(), '\0');
  std::copy_n(header.data(), std::min(header.size(), want.size()), cmp.data());
  return (CRYPTO_memcmp(cmp.data(), want.data(), want.size()) == 0) && same_len;
}

/// The TLS caches of the configuration in force (their counters start again after a reload,
/// which builds new ones: Prometheus treats that as a counter reset).
std::string tls_metrics(const shared_state& st) {
  const auto rt = st.current();
  if (!rt) return {};
  std::string out;
  auto one = [&out](const char* name, const char* type, const char* help, std::uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " " + std::to_string(v) + "\n";
  };
  const auto c = rt->verifier->cache_stats();
  one("tunnelgate_verify_cache_hits_total", "counter",
      "Device chains accepted from the cache of verified chains (tls.verify_cache_ttl)", c.hits);
  one("tunnelgate_verify_cache_misses_total", "counter",
      "Device chains verified in full (not cached, expired, or the trust store changed)", c.misses);
  one("tunnelgate_verify_cache_entries", "gauge", "Verified chains remembered", c.entries);
  one("tunnelgate_tls_session_cache_entries", "gauge",
      "TLS sessions remembered for resumption (tls.session_tickets)",
      static_cast<std::uint64_t>(std::max(0L, SSL_CTX_sess_number(rt->tls->native_handle()))));
  return out;
}

/// Days left before each certificate the gateway depends on expires (its server certificate,
/// the device CAs) and before each CRL is due; negative once past. For alerting (docs/gateway.md
/// has example rules).
std::string expiry_metrics(const shared_state& st) {
  const auto rt = st.current();
  if (!rt) return {};
  const auto now = std::chrono::system_clock::now();
  const auto days = [now](std::chrono::system_clock::time_point t) {
    return std::chrono::duration<double>(t - now).count() / 86400.0;
  };
  const auto escape = [](const std::string& v) {
    std::string out;
    for (char c : v) {
      if (c == '\\' || c == '"') out += '\\';
      out += c == '\n' ? ' ' : c;
    }
    return out;
  };
  std::string out =
      "# HELP tunnelgate_certificate_expiry_days Days until a certificate the gateway uses "
      "expires (kind: server, device-ca)\n"
      "# TYPE tunnelgate_certificate_expiry_days gauge\n";
  char num[32];
  if (X509* cert = SSL_CTX_get0_certificate(rt->tls->native_handle())) {
    int d = 0, sec = 0;
    if (ASN1_TIME_diff(&d, &sec, nullptr, X509_get0_notAfter(cert)) == 1) {
      std::snprintf(num, sizeof num, "%.3f", d + sec / 86400.0);
      out += "tunnelgate_certificate_expiry_days{kind=\"server\",file=\"" +
             escape(rt->cfg->tls.cert.string()) + "\"} " + num + "\n";
    }
  }
  const auto summary = rt->trust->summary();
  for (const auto& [subject, t] : summary.ca_expiry) {
    std::snprintf(num, sizeof num, "%.3f", days(t));
    out += "tunnelgate_certificate_expiry_days{kind=\"device-ca\",subject=\"" + escape(subject) +
           "\"} " + num + "\n";
  }
  out +=
      "# HELP tunnelgate_crl_next_update_days Days until a CRL in use is due for renewal "
      "(nextUpdate); negative: stale\n"
      "# TYPE tunnelgate_crl_next_update_days gauge\n";
  for (const auto& [file, t] : summary.crl_next_update) {
    std::snprintf(num, sizeof num, "%.3f", days(t));
    out += "tunnelgate_crl_next_update_days{file=\"" + escape(file) + "\"} " + num + "\n";
  }
  return out;
}

}  // namespace

std::string readiness(const shared_state& st, bool& ready) {
  std::string missing;
  const auto rt = st.current();
  if (!rt) missing += "config ";
  if (rt && !rt->trust) missing += "ca ";
  if (rt && !rt->cfg->rules) missing += "dtr ";
  std::string uem_detail;
  if (!st.comp || !st.comp->ready()) {
    missing += "compliance-source ";
  } else if (uem_detail = st.comp->cannot_admit(); !uem_detail.empty()) {
    missing += "uem ";
  }
  if (st.stopping) missing += "stopping ";
  bool idp_ready = true;
  const std::string idp = st.idp ? st.idp->readiness(idp_ready) : std::string();
  if (!idp_ready) missing += "idp ";
  ready = missing.empty();
  return (ready ? "ready\n" : "not ready: " + missing + "\n") +
         (uem_detail.empty() ? std::string() : "uem: " + uem_detail + "\n") + idp;
}

namespace {

/// The query string's parameters, percent-decoded ('+' is a space). nullopt for a malformed
/// escape or a repeated key (ambiguous: refused rather than guessed).
std::optional<std::map<std::string, std::string>> query_params(std::string_view q) {
  std::map<std::string, std::string> out;
  auto decode = [](std::string_view in, std::string& to) {
    for (std::size_t i = 0; i < in.size(); ++i) {
      if (in[i] == '+') {
        to += ' ';
      } else if (in[i] == '%') {
        unsigned v = 0;
        if (in.size() - i < 3) return false;
        const auto [end, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, v, 16);
        if (ec != std::errc() || end != in.data() + i + 3) return false;
        to += static_cast<char>(v);
        i += 2;
      } else {
        to += in[i];
      }
    }
    return true;
  };
  while (!q.empty()) {
    const auto amp = q.find('&');
    const auto pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    std::string key;
    std::string value;
    if (!decode(pair.substr(0, eq), key)) return std::nullopt;
    if (eq != std::string_view::npos && !decode(pair.substr(eq + 1), value)) return std::nullopt;
    if (!out.emplace(std::move(key), std::move(value)).second) return std::nullopt;
  }
  return out;
}

/// GET /api/v1/dtr/eval?platform=P&destination=HOST:PORT[&app=ID]: the decision the running
/// rules make, in the shape of `tunnelctl dtr eval --json`.
http::response<http::string_body> dtr_eval(const shared_state& st, std::string_view query,
                                           bool ka) {
  const auto params = query_params(query);
  if (!params) {
    return json_reply(400, {{"error", "malformed query string (bad %-escape or a repeated key)"}},
                      ka);
  }
  for (const auto& [k, v] : *params) {
    if (k != "platform" && k != "destination" && k != "app") {
      return json_reply(400,
                        {{"error", "unknown parameter '" + k +
                                       "'; expected platform, "
                                       "destination and optionally app"}},
                        ka);
    }
  }
  const auto get = [&](const char* k) {
    auto it = params->find(k);
    return it == params->end() ? std::string() : it->second;
  };
  const auto plat_text = get("platform");
  const auto plat = dtr::parse_platform(plat_text);
  if (!plat) {
    return json_reply(
        400, {{"error", "platform must be one of ios, android, macos, windows, linux"}}, ka);
  }
  connect_target t;
  if (const auto e = parse_connect_target(get("destination"), t); e != refusal::none) {
    return json_reply(400,
                      {{"error", "destination must be HOST:PORT ([IPv6]:PORT), port 1-65535 (" +
                                     std::string(to_string(e)) + ")"}},
                      ka);
  }
  const auto app = get("app");
  const auto rt = st.current();
  if (!rt || !rt->cfg->rules) return json_reply(503, {{"error", "no rules loaded"}}, ka);
  const dtr::flow f{t.host, t.port, *plat, app};
  return reply(200, dtr::decision_json(rt->cfg->rules->evaluate(f), f) + "\n", "application/json",
               ka);
}

http::response<http::string_body> route(shared_state& st,
                                        const http::request<http::empty_body>& req) {
  const bool ka = req.keep_alive();
  const std::string target(req.target());
  const auto method = req.method();
  // Liveness carries nothing worth protecting, and load balancers probe it without a token.
  if (method == http::verb::get && target == "/healthz")
    return reply(200, "ok\n", "text/plain", ka);
  // The public key that verifies posture_sync's CAEP events: receivers fetch it without a token.
  if (method == http::verb::get && target == "/.well-known/jwks.json" && st.posture &&
      !st.posture->jwks().empty())
    return reply(200, st.posture->jwks(), "application/json", ka);
  const auto rt = st.current();
  if (rt && !rt->cfg->admin.token.empty() &&
      !token_ok(rt->cfg->admin.token, std::string(req[http::field::authorization]))) {
    auto res = reply(
        401, "a bearer token is required: Authorization: Bearer <token from admin.token_file>\n",
        "text/plain", ka);
    res.set(http::field::www_authenticate, "Bearer");
    return res;
  }
  if (method == http::verb::post && target == "/api/v1/reload") {
    // The same reload as SIGHUP, answered with its outcome (tunnelgate --reload, ExecReload).
    if (!st.reload) return json_reply(503, {{"error", "no daemon to reload in this process"}}, ka);
    const auto o = st.reload();
    nlohmann::ordered_json j;
    j["result"] = o.applied ? "applied" : "refused";
    j["errors"] = o.errors;
    j["warnings"] = o.warnings;
    return reply(o.applied ? 200 : 422, j.dump() + "\n", "application/json", ka);
  }
  if (method == http::verb::get && target == "/readyz") {
    bool ready = false;
    auto text = readiness(st, ready);
    return reply(ready ? 200 : 503, std::move(text), "text/plain", ka);
  }
  if (method == http::verb::get && target == "/metrics") {
    return reply(200,
                 st.stats.render(st.registry.size()) + render_process_metrics() + tls_metrics(st) +
                     expiry_metrics(st) + (st.comp ? st.comp->render_metrics() : std::string()) +
                     (st.idp ? st.idp->render_metrics() : std::string()) +
                     (st.posture ? st.posture->render_metrics() : std::string()) +
                     (st.vpn ? st.vpn->render_metrics() : std::string()),
                 "text/plain; version=0.0.4", ka);
  }
  if (method == http::verb::get && target == "/api/v1/sessions") {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& s : st.registry.list()) {
      arr.push_back({{"id", s.id},
                     {"udid", s.udid},
                     {"user", s.user},
                     {"serial", s.serial},
                     {"platform", s.platform},
                     {"peer", s.peer},
                     {"start", iso8601(s.start)},
                     {"app", s.app},
                     {"destination", s.destination},
                     {"action", s.action},
                     {"rule_set", s.rule_set},
                     {"rank", s.rank},
                     {"egress", s.egress},
                     {"bytes_up", s.bytes_up},
                     {"bytes_down", s.bytes_down}});
    }
    nlohmann::ordered_json body;
    body["sessions"] = std::move(arr);
    return reply(200, body.dump() + "\n", "application/json", ka);
  }
  constexpr std::string_view eval_path = "/api/v1/dtr/eval";
  if (method == http::verb::get &&
      (target == eval_path || target.starts_with(std::string(eval_path) + "?"))) {
    return dtr_eval(
        st, std::string_view(target).substr(std::min(target.size(), eval_path.size() + 1)), ka);
  }
  constexpr std::string_view sessions_prefix = "/api/v1/sessions/";
  constexpr std::string_view devices_prefix = "/api/v1/devices/";
  if (method == http::verb::delete_ && target.starts_with(sessions_prefix)) {
    const auto id_text = target.substr(sessions_prefix.size());
    std::uint64_t id = 0;
    auto [end, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
    if (id_text.empty() || ec != std::errc() || end != id_text.data() + id_text.size()) {
      return json_reply(400, {{"error", "session id must be a number"}}, ka);
    }
    if (!st.registry.kill(id, "admin"))
      return json_reply(404, {{"error", "no such session"}, {"id", id}}, ka);
    return json_reply(200, {{"closed", 1}, {"id", id}}, ka);
  }
  if (method == http::verb::delete_ && target.starts_with(devices_prefix) &&
      target.ends_with("/sessions")) {
    const auto udid =
        target.substr(devices_prefix.size(),
                      target.size() - devices_prefix.size() - std::string_view("/sessions").size());
    if (!certauth::check_udid_value(udid).empty()) {
      return json_reply(400, {{"error", "not a valid UDID"}}, ka);
    }
    const auto device = canonical_udid(udid);
    const auto n = st.registry.kill_device(device, "admin");
    return json_reply(200, {{"closed", n}, {"udid", device}}, ka);
  }
  return json_reply(
      404,
      {{"error", "no such endpoint"},
       {"endpoints",
        {"GET /healthz", "GET /readyz", "GET /metrics", "POST /api/v1/reload",
         "GET /api/v1/sessions", "GET /api/v1/dtr/eval?platform=P&destination=HOST:PORT[&app=ID]",
         "DELETE /api/v1/sessions/{id}", "DELETE /api/v1/devices/{udid}/sessions"}}},
      ka);
}

}  // namespace

namespace {

/// Requests and answers on one admin connection (plain or TLS) until it ends or idles 30 s.
template <class Stream>
awaitable<void> serve_admin(shared_state& st, Stream& stream) {
  auto ex = co_await net::this_coro::executor;
  auto& sock = beast::get_lowest_layer(stream);
  beast::flat_buffer buf(8192);
  for (;;) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(8192);
    parser.body_limit(0);
    boost::system::error_code ec;
    {
      watchdog guard(ex, std::chrono::seconds(30), [&sock] {
        boost::system::error_code ignored;
        sock.close(ignored);
      });
      co_await http::async_read_header(stream, buf, parser, net::redirect_error(use_awaitable, ec));
    }
    if (ec) break;
    auto res = route(st, parser.get());
    const bool keep = res.keep_alive();
    {
      watchdog guard(ex, std::chrono::seconds(30), [&sock] {
        boost::system::error_code ignored;
        sock.close(ignored);
      });
      co_await http::async_write(stream, res, net::redirect_error(use_awaitable, ec));
    }
    if (ec || !keep) break;
  }
}

/// The admin TLS handshake within 10 s; false when it failed (the client is not told more).
awaitable<bool> admin_handshake(ssl::stream<tcp::socket>& tls) {
  auto ex = co_await net::this_coro::executor;
  boost::system::error_code ec;
  {
    watchdog guard(ex, std::chrono::seconds(10), [&tls] {
      boost::system::error_code ignored;
      tls.next_layer().close(ignored);
    });
    co_await tls.async_handshake(ssl::stream_base::server, net::redirect_error(use_awaitable, ec));
  }
  co_return !ec;
}

}  // namespace

awaitable<void> run_admin_connection(std::shared_ptr<shared_state> st, tcp::socket sock) {
  boost::system::error_code ignored;
  if (st->admin_tls) {
    ssl::stream<tcp::socket> tls(std::move(sock), *st->admin_tls);
    const bool ok = co_await admin_handshake(tls);
    if (ok) co_await serve_admin(*st, tls);
    tls.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
    tls.next_layer().close(ignored);
  } else {
    co_await serve_admin(*st, sock);
    sock.shutdown(tcp::socket::shutdown_both, ignored);
    sock.close(ignored);
  }
}

}  // namespace tunnelgate::gateway
