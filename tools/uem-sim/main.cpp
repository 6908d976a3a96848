// uem-sim — serves the subset of the Workspace ONE UEM REST API that tunnelgate uses, from an
// inventory file, over HTTPS; injects faults on request; sends Event Notifications to a
// webhook as the UEM would. See docs/uem-sim.md. Single-threaded: one io_context.
#include <utility>  // before Asio (STYLE P1)

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/program_options.hpp>

#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "sim-common/sim_common.hpp"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
namespace po = boost::program_options;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

constexpr auto io_timeout = std::chrono::seconds(30);

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// EventTime as the current UEM sends it: ISO-8601 UTC with 7 fractional digits.
std::string event_time() {
  return sim::iso_now(7);
}

struct options {
  std::string inventory, listen = "127.0.0.1:0", port_file, cert, key;
  std::string tenant_code, basic_user, basic_password, client_id, client_secret;
  long token_ttl = 3600;
  std::string webhook_url, webhook_user, webhook_password, webhook_ca;
};

struct faults {
  long latency_ms = 0;
  // none, status, rate_limit, garbage, bad_record, wrong_device, truncated, reset
  std::string kind = "none";
  int status = 500;
  long retry_after = 1;
  long count = 0;  // API requests still to fault; 0 = until cleared
  json to_json() const {
    return {{"latency_ms", latency_ms},
            {"fault", kind},
            {"status", status},
            {"retry_after", retry_after},
            {"count", count}};
  }
};

struct url {
  bool tls = false;
  std::string host, port, target, host_header;
};

url parse_url(const std::string& s) {
  url u;
  std::string_view rest = s;
  if (rest.rfind("https://", 0) == 0) {
    u.tls = true;
    rest.remove_prefix(8);
  } else if (rest.rfind("http://", 0) == 0) {
    rest.remove_prefix(7);
  } else {
    throw std::runtime_error("--webhook-url must start with http:// or https://");
  }
  const auto slash = rest.find('/');
  const auto auth = rest.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  u.host_header = std::string(auth);
  const auto colon = auth.rfind(':');
  if (!auth.empty() && auth.front() == '[') {
    const auto close = auth.find(']');
    u.host = std::string(auth.substr(1, close - 1));
    u.port = close + 2 <= auth.size() ? std::string(auth.substr(close + 2)) : "";
  } else if (colon != std::string_view::npos) {
    u.host = std::string(auth.substr(0, colon));
    u.port = std::string(auth.substr(colon + 1));
  } else {
    u.host = std::string(auth);
  }
  if (u.port.empty()) u.port = u.tls ? "443" : "80";
  return u;
}

class simulator : public std::enable_shared_from_this<simulator> {
 public:
  simulator(net::io_context& ioc, options o)
      : ioc_(ioc),
        opt_(std::move(o)),
        acceptor_(ioc),
        tls_(ssl::context::tls_server),
        client_tls_(ssl::context::tls_client) {
    load_inventory();
    tls_.use_certificate_chain_file(opt_.cert);
    tls_.use_private_key_file(opt_.key, ssl::context::pem);
    if (!opt_.webhook_ca.empty()) {
      client_tls_.load_verify_file(opt_.webhook_ca);
      client_tls_.set_verify_mode(ssl::verify_peer);
    } else {
      client_tls_.set_verify_mode(ssl::verify_none);
    }
    const auto colon = opt_.listen.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("--listen must be IP:PORT");
    auto host = opt_.listen.substr(0, colon);
    if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
    const tcp::endpoint ep(net::ip::make_address(host),
                           static_cast<unsigned short>(std::stoi(opt_.listen.substr(colon + 1))));
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    event_id_ = 1000 + static_cast<long long>(std::time(nullptr) % 100000) * 10;
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }

  void start() { net::co_spawn(ioc_, accept_loop(shared_from_this()), report("accept loop")); }

  void stop() {
    stopped_ = true;
    boost::system::error_code ec;
    acceptor_.close(ec);
    for (auto* s : open_)
      s->close();
  }

 private:
  static std::function<void(std::exception_ptr)> report(const std::string& what) {
    return [what](const std::exception_ptr& e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        std::cerr << "uem-sim: " << what << " failed: " << x.what() << "\n";
      }
    };
  }

  void load_inventory() {
    const auto j = json::parse(sim::read_file(opt_.inventory));
    const json& list = j.is_object() && j.contains("Devices") ? j["Devices"] : j;
    if (!list.is_array()) throw std::runtime_error("inventory must be a JSON array of devices");
    devices_ = list.get<std::vector<json>>();
  }

  json* find_device(std::string_view field, std::string_view value) {
    for (auto& d : devices_) {
      if (!d.contains(std::string(field))) continue;
      const auto& v = d[std::string(field)];
      if (v.is_string() && lower(v.get<std::string>()) == lower(value)) return &d;
    }
    return nullptr;
  }

  json* find_by_id(std::string_view id) {
    for (auto& d : devices_) {
      if (d.contains("Id") && d["Id"].is_object() && d["Id"].contains("Value") &&
          std::to_string(d["Id"]["Value"].get<long long>()) == id) {
        return &d;
      }
    }
    return nullptr;
  }

  static net::awaitable<void> accept_loop(std::shared_ptr<simulator> self) {
    while (!self->stopped_) {
      tcp::socket socket(self->ioc_);
      boost::system::error_code ec;
      co_await self->acceptor_.async_accept(socket, net::redirect_error(net::use_awaitable, ec));
      if (ec || self->stopped_) continue;
      net::co_spawn(self->ioc_, connection(self, std::move(socket)), report("connection"));
    }
  }

  static net::awaitable<void> connection(std::shared_ptr<simulator> self, tcp::socket socket) {
    beast::tcp_stream tcp_stream(std::move(socket));
    self->open_.insert(&tcp_stream);
    beast::ssl_stream<beast::tcp_stream&> stream(tcp_stream, self->tls_);
    boost::system::error_code ec;
    tcp_stream.expires_after(io_timeout);
    co_await stream.async_handshake(ssl::stream_base::server,
                                    net::redirect_error(net::use_awaitable, ec));
    beast::flat_buffer buffer;
    while (!ec && !self->stopped_) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(std::uint64_t{1024} * 1024);
      tcp_stream.expires_after(io_timeout);
      co_await http::async_read(stream, buffer, parser,
                                net::redirect_error(net::use_awaitable, ec));
      if (ec) break;
      auto req = parser.release();
      fault_action act;
      auto res = co_await self->handle(req, act);
      if (act.reset) {
        // Injected fault: drop the connection with a TCP RST, no answer.
        tcp_stream.socket().set_option(net::socket_base::linger(true, 0), ec);
        break;
      }
      res.keep_alive(act.truncate ? false : req.keep_alive());
      res.prepare_payload();
      if (act.truncate) {
        // Injected fault: the header promises the whole body (Content-Length), half of it is
        // sent, then the connection closes without a TLS close_notify (a crashed server or
        // proxy).
        res.body().resize(res.body().size() / 2);
        tcp_stream.expires_after(io_timeout);
        co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
        break;
      }
      tcp_stream.expires_after(io_timeout);
      co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
      if (!res.keep_alive()) break;
    }
    self->open_.erase(&tcp_stream);
    tcp_stream.close();
  }

  static response reply(unsigned status, const json& body) {
    response res{static_cast<http::status>(status), 11};
    res.set(http::field::server, "uem-sim");
    res.set(http::field::content_type, "application/json; charset=utf-8");
    res.body() = body.dump();
    return res;
  }

  /// What connection() does with an answer besides sending it (injected faults).
  struct fault_action {
    bool reset = false;     ///< no answer: TCP RST
    bool truncate = false;  ///< half the body, then close
  };

  net::awaitable<response> handle(const request& req, fault_action& act) {
    const std::string target(req.target());
    const auto q = target.find('?');
    const std::string path = target.substr(0, q);
    const auto query = q == std::string::npos ? std::string() : target.substr(q + 1);
    if (path.rfind("/_sim/", 0) == 0) co_return co_await admin(req, path);
    ++counts_[path];
    ++total_;
    if (faults_.latency_ms > 0) {
      net::steady_timer t(ioc_, std::chrono::milliseconds(faults_.latency_ms));
      boost::system::error_code ec;
      co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    if (faults_.kind != "none") {
      const auto kind = faults_.kind;
      if (faults_.count > 0 && --faults_.count == 0) faults_.kind = "none";
      if (kind == "reset") {
        act.reset = true;
        co_return response{};
      }
      if (kind == "truncated") {
        act.truncate = true;  // the real answer, cut in half by connection()
        if (path == "/connect/token") co_return token(req);
        co_return api(req, path, query);
      }
      if (kind == "wrong_device") {
        // A well-formed record of a device nobody asked for (a UEM bug or a mix-up in a
        // proxy's cache): the client must notice that it names another device.
        co_return reply(200, {{"Udid", "UEM-SIM-OTHER-DEVICE"},
                              {"SerialNumber", "UEM-SIM-OTHER-SERIAL"},
                              {"Id", {{"Value", 999999}}},
                              {"Platform", "Apple"},
                              {"EnrollmentStatus", "Enrolled"},
                              {"ComplianceStatus", "Compliant"},
                              {"CompromisedStatus", false}});
      }
      if (kind == "status") {
        co_return reply(static_cast<unsigned>(faults_.status), {{"message", "injected fault"}});
      }
      if (kind == "rate_limit") {
        auto res = reply(429, {{"message", "rate limit exceeded"}});
        res.set(http::field::retry_after, std::to_string(faults_.retry_after));
        res.set("X-RateLimit-Limit", "5000");
        res.set("X-RateLimit-Remaining", "0");
        res.set("X-RateLimit-Reset", std::to_string(std::time(nullptr) + faults_.retry_after));
        co_return res;
      }
      if (kind == "garbage") {
        response res{http::status::ok, 11};
        res.set(http::field::content_type, "application/json");
        res.body() = "<html>\x01\x02 not json {";
        co_return res;
      }
      if (kind == "bad_record") {
        co_return reply(200, {{"Udid", "X"},
                              {"SerialNumber", "Y"},
                              {"Platform", "Apple"},
                              {"EnrollmentStatus", "Enrolled"},
                              {"CompromisedStatus", "false"}});
      }
    }
    if (path == "/connect/token") co_return token(req);
    co_return api(req, path, query);
  }

  response token(const request& req) {
    if (req.method() != http::verb::post) return reply(405, {{"error", "invalid_request"}});
    auto form = sim::parse_form(req.body());
    if (auto it = req.find(http::field::authorization); it != req.end()) {
      // client_secret_basic is accepted too
      const std::string v(it->value());
      if (v.rfind("Basic ", 0) == 0) {
        const auto want = sim::base64(opt_.client_id + ":" + opt_.client_secret);
        if (v.substr(6) == want) {
          form["client_id"] = opt_.client_id;
          form["client_secret"] = opt_.client_secret;
        }
      }
    }
    if (form["grant_type"] != "client_credentials") {
      return reply(400, {{"error", "unsupported_grant_type"}});
    }
    if (opt_.client_id.empty() || form["client_id"] != opt_.client_id ||
        form["client_secret"] != opt_.client_secret) {
      return reply(401, {{"error", "invalid_client"}});
    }
    auto tok = sim::random_hex(24);
    tokens_[tok] = std::chrono::steady_clock::now() + std::chrono::seconds(opt_.token_ttl);
    return reply(200, {{"access_token", tok},
                       {"token_type", "Bearer"},
                       {"expires_in", opt_.token_ttl},
                       {"scope", "api"}});
  }

  bool authorized(const request& req) {
    const auto tc = req.find("aw-tenant-code");
    if (!opt_.tenant_code.empty() && (tc == req.end() || tc->value() != opt_.tenant_code)) {
      return false;
    }
    const auto a = req.find(http::field::authorization);
    if (a == req.end()) return false;
    const std::string v(a->value());
    if (v.rfind("Basic ", 0) == 0) {
      return !opt_.basic_user.empty() &&
             v.substr(6) == sim::base64(opt_.basic_user + ":" + opt_.basic_password);
    }
    if (v.rfind("Bearer ", 0) == 0) {
      const auto it = tokens_.find(v.substr(7));
      return it != tokens_.end() && std::chrono::steady_clock::now() < it->second;
    }
    return false;
  }

  response api(const request& req, const std::string& path, const std::string& query) {
    if (!authorized(req)) {
      auto res = reply(401, {{"errorCode", 1005}, {"message", "User credentials are invalid"}});
      res.set(http::field::www_authenticate, "Basic realm=\"AirWatch\"");
      return res;
    }
    const auto accept = req.find(http::field::accept);
    if (accept == req.end() || accept->value().find("application/json") != 0) {
      return reply(406, {{"message", "Accept must be application/json;version=N"}});
    }
    if (req.method() != http::verb::get) return reply(405, {{"message", "method not allowed"}});
    json* dev = nullptr;
    if (path == "/API/mdm/devices") {
      auto qs = sim::parse_form(query);
      const auto by = lower(qs["searchby"]);
      const std::string field = by == "udid"           ? "Udid"
                                : by == "serialnumber" ? "SerialNumber"
                                : by == "macaddress"   ? "MacAddress"
                                : by == "imeinumber"   ? "Imei"
                                                       : "";
      if (field.empty() || qs["id"].empty()) {
        return reply(400, {{"errorCode", 400}, {"message", "Invalid searchby or id"}});
      }
      dev = find_device(field, qs["id"]);
    } else if (path.rfind("/API/mdm/devices/", 0) == 0) {
      dev = find_by_id(path.substr(17));
    } else {
      return reply(404, {{"message", "no such endpoint"}});
    }
    if (dev == nullptr) return reply(404, {{"errorCode", 404}, {"message", "Device not found"}});
    auto res = reply(200, *dev);
    res.set("X-RateLimit-Limit", "5000");
    res.set("X-RateLimit-Remaining", std::to_string(std::max<long long>(1, 5000 - total_)));
    res.set("X-RateLimit-Reset", std::to_string(std::time(nullptr) + 3600));
    return res;
  }

  net::awaitable<response> admin(const request& req, const std::string& path) {
    const auto body = req.body().empty() ? json::object() : json::parse(req.body(), nullptr, false);
    if (body.is_discarded()) co_return reply(400, {{"error", "body is not JSON"}});
    if (path == "/_sim/stats") {
      if (req.method() == http::verb::delete_ || req.method() == http::verb::post) {
        counts_.clear();
        total_ = 0;
      }
      co_return reply(
          200, {{"requests", counts_}, {"total", total_}, {"webhooks_sent", webhooks_sent_}});
    }
    if (path == "/_sim/faults") {
      if (req.method() == http::verb::delete_) faults_ = {};
      if (req.method() == http::verb::post) {
        faults f;
        f.latency_ms = body.value("latency_ms", 0L);
        f.kind = body.value("fault", std::string("none"));
        f.status = body.value("status", 500);
        f.retry_after = body.value("retry_after", 1L);
        f.count = body.value("count", 0L);
        static const std::set<std::string> kinds{"none",      "status",     "rate_limit",
                                                 "garbage",   "bad_record", "wrong_device",
                                                 "truncated", "reset"};
        if (!kinds.count(f.kind)) co_return reply(400, {{"error", "unknown fault " + f.kind}});
        faults_ = f;
      }
      co_return reply(200, faults_.to_json());
    }
    if (path == "/_sim/tokens/revoke") {
      tokens_.clear();
      co_return reply(200, {{"revoked", true}});
    }
    if (path == "/_sim/webhook/replay") {
      if (last_event_.is_null()) co_return reply(409, {{"error", "no event sent yet"}});
      auto status = co_await send_webhook(last_event_);
      co_return reply(200, {{"webhook", {{"status", status}, {"event", last_event_}}}});
    }
    if (path.rfind("/_sim/devices/", 0) == 0) {
      const auto udid = sim::url_decode(path.substr(14));
      json* dev = find_device("Udid", udid);
      if (req.method() == http::verb::get) {
        if (dev == nullptr) co_return reply(404, {{"error", "no such device"}});
        co_return reply(200, *dev);
      }
      if (req.method() != http::verb::post && req.method() != http::verb::delete_) {
        co_return reply(405, {{"error", "use GET, POST or DELETE"}});
      }
      if (!body.is_object()) co_return reply(400, {{"error", "expected a JSON object"}});
      json overrides = body.value("_event", json::object());
      const bool notify = body.value("_notify", true);
      std::string type;
      json snapshot;
      if (req.method() == http::verb::delete_) {
        if (dev == nullptr) co_return reply(404, {{"error", "no such device"}});
        snapshot = *dev;
        snapshot["EnrollmentStatus"] = "Unenrolled";
        devices_.erase(devices_.begin() + (dev - devices_.data()));
        type = "Break MDM Confirmed";
      } else {
        if (dev == nullptr) {
          devices_.push_back(json{{"Udid", udid}});
          dev = &devices_.back();
        }
        for (const auto& [k, v] : body.items()) {
          if (k.empty() || k[0] == '_') continue;
          if (type.empty()) {
            if (k == "ComplianceStatus") type = "Compliance Status Changed";
            if (k == "CompromisedStatus") type = "Compromised Status Changed";
            if (k == "EnrollmentStatus") {
              type = v == "Enrolled" ? "MDM Enrollment Complete" : "Break MDM Confirmed";
            }
          }
          (*dev)[k] = v;
        }
        if (type.empty()) type = "Device Operating System Changed";
        snapshot = *dev;
      }
      json out{{"device", snapshot}, {"webhook", nullptr}};
      if (notify && !opt_.webhook_url.empty()) {
        auto ev = make_event(snapshot, type);
        for (const auto& [k, v] : overrides.items())
          ev[k] = v;
        last_event_ = ev;
        auto status = co_await send_webhook(ev);
        out["webhook"] = {{"status", status}, {"event", ev}};
      }
      co_return reply(200, out);
    }
    co_return reply(404, {{"error", "unknown admin endpoint"}});
  }

  json make_event(const json& d, const std::string& type) {
    auto s = [&](const char* k) { return d.contains(k) && d[k].is_string() ? d[k] : json(""); };
    const bool compromised = d.contains("CompromisedStatus") && d["CompromisedStatus"].is_boolean()
                                 ? d["CompromisedStatus"].get<bool>()
                                 : false;
    json id = d.contains("Id") && d["Id"].is_object() ? d["Id"].value("Value", json(0)) : json(0);
    return {{"EventId", ++event_id_},
            {"EventType", type},
            {"DeviceId", id},
            {"DeviceUUID", s("Uuid")},
            {"EventTime", event_time()},
            {"EnrollmentStatus", s("EnrollmentStatus")},
            {"ComplianceStatus", s("ComplianceStatus")},
            {"CompromisedStatus", compromised ? "true" : "false"},
            {"CompromisedTimeStamp", event_time()},
            {"Udid", s("Udid")},
            {"SerialNumber", s("SerialNumber")},
            {"MACAddress", s("MacAddress")},
            {"DeviceIMEI", s("Imei")},
            {"EnrollmentEmailAddress", s("UserEmailAddress")},
            {"EnrollmentUserName", s("UserName")},
            {"Platform", s("Platform")},
            {"OperatingSystem", s("OperatingSystem")},
            {"Ownership", s("Ownership")},
            {"OrganizationGroupName", "Global"},
            {"AssetNumber", s("Udid")},
            {"PhoneNumber", ""},
            {"SIMMCC", ""},
            {"CurrentMCC", ""}};
  }

  /// POSTs an Event Notification with Basic auth, as the UEM does; returns the HTTP status
  /// (0 when the webhook could not be reached).
  net::awaitable<int> send_webhook(json ev) {
    ++webhooks_sent_;
    const auto u = parse_url(opt_.webhook_url);
    request req{http::verb::post, u.target, 11};
    req.set(http::field::host, u.host_header);
    req.set(http::field::user_agent, "AirWatch-EventNotifications (uem-sim)");
    req.set(http::field::content_type, "application/json");
    if (!opt_.webhook_user.empty()) {
      req.set(http::field::authorization,
              "Basic " + sim::base64(opt_.webhook_user + ":" + opt_.webhook_password));
    }
    req.body() = ev.dump();
    req.prepare_payload();
    req.keep_alive(false);
    boost::system::error_code ec;
    beast::tcp_stream stream(ioc_);
    const tcp::endpoint ep(net::ip::make_address(u.host, ec),
                           static_cast<unsigned short>(std::stoi(u.port)));
    if (ec) co_return 0;
    stream.expires_after(std::chrono::seconds(10));
    co_await stream.async_connect(ep, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return 0;
    beast::flat_buffer buffer;
    response res;
    if (u.tls) {
      beast::ssl_stream<beast::tcp_stream&> tls(stream, client_tls_);
      co_await tls.async_handshake(ssl::stream_base::client,
                                   net::redirect_error(net::use_awaitable, ec));
      if (!ec) co_await http::async_write(tls, req, net::redirect_error(net::use_awaitable, ec));
      if (!ec) {
        co_await http::async_read(tls, buffer, res, net::redirect_error(net::use_awaitable, ec));
      }
    } else {
      co_await http::async_write(stream, req, net::redirect_error(net::use_awaitable, ec));
      if (!ec) {
        co_await http::async_read(stream, buffer, res, net::redirect_error(net::use_awaitable, ec));
      }
    }
    if (ec) co_return 0;
    co_return static_cast<int>(res.result_int());
  }

  net::io_context& ioc_;
  options opt_;
  tcp::acceptor acceptor_;
  ssl::context tls_;
  ssl::context client_tls_;
  std::vector<json> devices_;
  std::map<std::string, long long> counts_;
  long long total_ = 0;
  long long webhooks_sent_ = 0;
  faults faults_;
  std::map<std::string, std::chrono::steady_clock::time_point> tokens_;
  long long event_id_ = 0;
  json last_event_;
  std::set<beast::tcp_stream*> open_;
  bool stopped_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  options o;
  std::string tenant_file, basic_pw_file, secret_file, webhook_pw_file;
  po::options_description desc(
      "uem-sim — Workspace ONE UEM API simulator (see docs/uem-sim.md)\noptions");
  desc.add_options()("help,h", "show this help")("inventory", po::value(&o.inventory)->required(),
                                                 "device inventory (JSON array)")(
      "listen", po::value(&o.listen)->default_value(o.listen), "IP:PORT (port 0 = any free)")(
      "port-file", po::value(&o.port_file), "write the bound port here once listening")(
      "cert", po::value(&o.cert)->required(), "server certificate chain (PEM)")(
      "key", po::value(&o.key)->required(), "server private key (PEM)")(
      "tenant-code-file", po::value(&tenant_file), "expected aw-tenant-code (file)")(
      "basic-user", po::value(&o.basic_user), "API user for Basic auth")(
      "basic-password-file", po::value(&basic_pw_file), "its password (file)")(
      "client-id", po::value(&o.client_id), "OAuth client ID")(
      "client-secret-file", po::value(&secret_file), "OAuth client secret (file)")(
      "token-ttl", po::value(&o.token_ttl)->default_value(3600), "OAuth token lifetime, s")(
      "webhook-url", po::value(&o.webhook_url), "where to POST Event Notifications")(
      "webhook-user", po::value(&o.webhook_user), "Basic auth user for the webhook")(
      "webhook-password-file", po::value(&webhook_pw_file), "its password (file)")(
      "webhook-ca", po::value(&o.webhook_ca), "CA bundle to verify an https webhook");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    po::notify(vm);
    if (!tenant_file.empty()) o.tenant_code = sim::read_secret(tenant_file);
    if (!basic_pw_file.empty()) o.basic_password = sim::read_secret(basic_pw_file);
    if (!secret_file.empty()) o.client_secret = sim::read_secret(secret_file);
    if (!webhook_pw_file.empty()) o.webhook_password = sim::read_secret(webhook_pw_file);
    if (!o.webhook_url.empty()) (void)parse_url(o.webhook_url);

    net::io_context ioc(1);
    auto sim = std::make_shared<simulator>(ioc, o);
    sim->start();
    net::signal_set signals(ioc, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code&, int) { sim->stop(); });
    if (!o.port_file.empty()) {
      // Write then rename, so a reader never sees a half-written port.
      const auto tmp = o.port_file + ".tmp";
      std::ofstream(tmp) << sim->port() << "\n";
      if (std::rename(tmp.c_str(), o.port_file.c_str()) != 0) {
        throw std::runtime_error("cannot write --port-file " + o.port_file);
      }
    }
    std::cout << "uem-sim listening on https://127.0.0.1:" << sim->port() << std::endl;
    ioc.run();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "uem-sim: " << e.what() << "\n";
    return 2;
  }
}
