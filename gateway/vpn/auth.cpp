#include "gateway/vpn/auth.hpp"

#include <expat.h>

#include <memory>
#include <stdexcept>

#include "gateway/vpn/text.hpp"

namespace tunnelgate::gateway::vpn::auth {

namespace {

// The fields kept from a body. Everything else is skipped.
enum class field : std::uint8_t {
  none,
  version,
  device_id,
  group_access,
  group_select,
  session_token,
  auth_method,
};

// The parse, driven by expat's callbacks. Handlers return early once `err` is set: expat may
// deliver a few more events after XML_StopParser().
struct parse_state {
  XML_Parser parser = nullptr;
  error err = error::none;
  request req;
  int depth = 0;
  bool root_seen = false;
  bool in_capabilities = false;
  field current = field::none;
  int field_depth = 0;
  std::string text;
  unsigned seen = 0;  // bit per field: duplicates are refused

  void stop(error e) {
    if (err == error::none) err = e;
    XML_StopParser(parser, XML_FALSE);
  }

  // Stores an attribute or text value after the checks every kept field gets.
  bool keep(std::string& into, std::string_view value) {
    value = detail::trim(value);
    if (value.size() > max_field_size || !detail::no_controls(value)) {
      stop(error::bad_field);
      return false;
    }
    into.assign(value);
    return true;
  }

  bool once(field f) {
    const unsigned bit = 1u << static_cast<unsigned>(f);
    if (seen & bit) {
      stop(error::duplicate_field);
      return false;
    }
    seen |= bit;
    return true;
  }

  void start_field(field f) {
    current = f;
    field_depth = depth;
    text.clear();
  }

  void on_root(const XML_Char** attrs) {
    root_seen = true;
    bool client_ok = false, type_ok = false;
    for (std::size_t i = 0; attrs[i] != nullptr; i += 2) {
      const std::string_view name = attrs[i], value = attrs[i + 1];
      if (name == "client") {
        client_ok = value == "vpn";
      } else if (name == "type") {
        type_ok = true;
        if (value == "init") {
          req.type = request_type::init;
        } else if (value == "auth-reply") {
          req.type = request_type::auth_reply;
        } else if (value == "logout") {
          req.type = request_type::logout;
        } else {
          type_ok = false;
        }
      } else if (name == "aggregate-auth-version") {
        if (!keep(req.aggregate_auth_version, value)) return;
      }
    }
    if (!client_ok) return stop(error::bad_client);
    if (!type_ok) return stop(error::bad_type);
  }

  void on_start(std::string_view name, const XML_Char** attrs) {
    if (err != error::none) return;
    if (++depth > max_depth) return stop(error::too_deep);
    // A kept field holds text only: child elements would make its value ambiguous.
    if (current != field::none) return stop(error::bad_field);
    if (depth == 1) {
      if (name != "config-auth") return stop(error::not_config_auth);
      return on_root(attrs);
    }
    if (depth == 3 && in_capabilities && name == "auth-method") {
      if (req.auth_methods.size() < max_auth_methods) start_field(field::auth_method);
      return;
    }
    if (depth != 2) return;
    if (name == "version") {
      if (!once(field::version)) return;
      for (std::size_t i = 0; attrs[i] != nullptr; i += 2) {
        if (std::string_view(attrs[i]) == "who" && !keep(req.version_who, attrs[i + 1])) return;
      }
      start_field(field::version);
    } else if (name == "device-id") {
      if (!once(field::device_id)) return;
      for (std::size_t i = 0; attrs[i] != nullptr; i += 2) {
        const std::string_view attr = attrs[i];
        std::string* into = attr == "platform-version" ? &req.device.platform_version
                            : attr == "device-type"    ? &req.device.device_type
                            : attr == "unique-id"      ? &req.device.unique_id
                                                       : nullptr;
        if (into && !keep(*into, attrs[i + 1])) return;
      }
      start_field(field::device_id);
    } else if (name == "group-access") {
      if (once(field::group_access)) start_field(field::group_access);
    } else if (name == "group-select") {
      if (once(field::group_select)) start_field(field::group_select);
    } else if (name == "session-token") {
      if (once(field::session_token)) start_field(field::session_token);
    } else if (name == "client-cert-fail") {
      req.client_cert_fail = true;
    } else if (name == "capabilities") {
      in_capabilities = true;
    }
  }

  void on_end() {
    if (err != error::none) return;
    if (current != field::none && depth == field_depth) {
      switch (current) {
        case field::version:
          keep(req.version, text);
          break;
        case field::device_id:
          keep(req.device.platform, text);
          break;
        case field::group_access:
          keep(req.group_access, text);
          break;
        case field::group_select:
          keep(req.group_select, text);
          break;
        case field::session_token:
          keep(req.session_token, text);
          break;
        case field::auth_method: {
          std::string method;
          if (keep(method, text)) req.auth_methods.push_back(std::move(method));
          break;
        }
        case field::none:
          break;
      }
      current = field::none;
    }
    if (depth == 2) in_capabilities = false;
    --depth;
  }

  void on_text(std::string_view s) {
    if (err != error::none || current == field::none) return;
    // Checked as text arrives, so a huge text node never piles up (the body bound already
    // caps it; this keeps the per-field bound honest). Leading/trailing blanks count here.
    if (text.size() + s.size() > max_field_size * 2) return stop(error::bad_field);
    text.append(s);
  }
};

void XMLCALL start_handler(void* user, const XML_Char* name, const XML_Char** attrs) {
  static_cast<parse_state*>(user)->on_start(name, attrs);
}

void XMLCALL end_handler(void* user, const XML_Char* /*name*/) {
  static_cast<parse_state*>(user)->on_end();
}

void XMLCALL text_handler(void* user, const XML_Char* s, int len) {
  static_cast<parse_state*>(user)->on_text(std::string_view(s, static_cast<std::size_t>(len)));
}

void XMLCALL doctype_handler(void* user, const XML_Char* /*name*/, const XML_Char* /*sysid*/,
                             const XML_Char* /*pubid*/, int /*has_internal_subset*/) {
  static_cast<parse_state*>(user)->stop(error::doctype);
}

struct parser_deleter {
  void operator()(XML_Parser p) const noexcept { XML_ParserFree(p); }
};

void xml_escape(std::string& out, std::string_view s) {
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters are not allowed in XML 1.0 (tab and newlines are, but a message
        // has no use for them).
        if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out.push_back(c);
    }
  }
}

constexpr std::string_view xml_head =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<config-auth client=\"vpn\" type=\"";
constexpr std::string_view xml_version =
    "\" aggregate-auth-version=\"2\">\n"
    "<version who=\"sg\">tunnelgate</version>\n";

std::vector<header> common_headers() {
  // X-Transcend-Version is what ocserv and Cisco send with every auth answer; openconnect sends
  // it on its requests and AnyConnect clients check for it.
  return {{"Content-Type", "text/xml"}, {"X-Transcend-Version", "1"}};
}

bool reason_token(std::string_view s) noexcept {
  if (s.empty() || s.size() > 64) return false;
  for (const char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return true;
}

}  // namespace

std::string_view to_string(request_type t) noexcept {
  switch (t) {
    case request_type::init:
      return "init";
    case request_type::auth_reply:
      return "auth-reply";
    case request_type::logout:
      return "logout";
  }
  return "unknown";
}

std::string_view to_string(error e) noexcept {
  switch (e) {
    case error::none:
      return "ok";
    case error::empty:
      return "empty";
    case error::too_large:
      return "too_large";
    case error::not_xml:
      return "not_xml";
    case error::doctype:
      return "doctype";
    case error::too_deep:
      return "too_deep";
    case error::not_config_auth:
      return "not_config_auth";
    case error::bad_client:
      return "bad_client";
    case error::bad_type:
      return "bad_type";
    case error::bad_field:
      return "bad_field";
    case error::duplicate_field:
      return "duplicate_field";
  }
  return "unknown";
}

parse_result parse_request(std::string_view body) {
  parse_result r;
  if (detail::trim(body).empty()) {
    r.err = error::empty;
    return r;
  }
  if (body.size() > max_body_size) {
    r.err = error::too_large;
    return r;
  }
  // The encoding given here overrides the document's declaration: UTF-8 only.
  std::unique_ptr<XML_ParserStruct, parser_deleter> parser(XML_ParserCreate("UTF-8"));
  if (!parser) throw std::bad_alloc();
  parse_state st;
  st.parser = parser.get();
  XML_SetUserData(parser.get(), &st);
  XML_SetElementHandler(parser.get(), start_handler, end_handler);
  XML_SetCharacterDataHandler(parser.get(), text_handler);
  XML_SetStartDoctypeDeclHandler(parser.get(), doctype_handler);
  // Never read external entities or parameter entities (the default; stated for the reader).
  XML_SetParamEntityParsing(parser.get(), XML_PARAM_ENTITY_PARSING_NEVER);

  const auto status = XML_Parse(parser.get(), body.data(), static_cast<int>(body.size()), XML_TRUE);
  if (st.err != error::none) {
    r.err = st.err;
    return r;
  }
  if (status != XML_STATUS_OK || !st.root_seen) {
    r.err = error::not_xml;
    r.line = XML_GetCurrentLineNumber(parser.get());
    r.column = XML_GetCurrentColumnNumber(parser.get()) + 1;
    return r;
  }
  r.value = std::move(st.req);
  return r;
}

bool valid_token(std::string_view token) noexcept {
  if (token.size() < 16 || token.size() > 256) return false;
  for (const char c : token) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/' || c == '=' || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

answer success(std::string_view token, std::string_view message) {
  if (!valid_token(token)) throw std::invalid_argument("auth::success: invalid session token");
  answer a;
  a.headers = common_headers();
  a.headers.emplace_back("Set-Cookie", "webvpn=" + std::string(token) + "; Secure; HttpOnly");
  a.body.reserve(512);
  a.body.append(xml_head).append("complete").append(xml_version);
  a.body.append("<session-token>").append(token).append("</session-token>\n");
  a.body.append("<auth id=\"success\">\n<title>tunnelgate</title>\n");
  if (!message.empty()) {
    a.body.append("<message>");
    xml_escape(a.body, message);
    a.body.append("</message>\n");
  }
  a.body.append("</auth>\n</config-auth>\n");
  return a;
}

answer failure(std::string_view reason, std::string_view message) {
  if (!reason_token(reason)) throw std::invalid_argument("auth::failure: invalid reason");
  answer a;
  a.headers = common_headers();
  a.headers.emplace_back("X-Tunnel-Reason", std::string(reason));
  a.body.reserve(512);
  a.body.append(xml_head).append("auth-request").append(xml_version);
  a.body.append("<auth id=\"main\">\n<title>tunnelgate</title>\n<error>");
  xml_escape(a.body, message);
  a.body.append("</error>\n</auth>\n</config-auth>\n");
  return a;
}

cookie_result find_session_cookie(std::string_view header) noexcept {
  cookie_result r;
  bool found = false;
  while (!header.empty()) {
    const auto semi = header.find(';');
    const std::string_view part = detail::trim(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
    const auto eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    if (detail::trim(part.substr(0, eq)) != "webvpn") continue;
    if (found) {
      r.state = cookie_result::status::duplicate;
      r.value = {};
      return r;
    }
    found = true;
    r.value = detail::trim(part.substr(eq + 1));
  }
  if (!found) return r;
  r.state = valid_token(r.value) ? cookie_result::status::found : cookie_result::status::malformed;
  if (r.state != cookie_result::status::found) r.value = {};
  return r;
}

}  // namespace tunnelgate::gateway::vpn::auth
