// idp::errc as an error_code category, the exception type, and the parsing of the IdPs' error
// answers (Okta API, OAuth token endpoints, Microsoft Graph).
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "idp/internal.hpp"
#include "support/support.hpp"

namespace tunnelgate::idp {

namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "idp"; }
  std::string message(int v) const override {
    switch (static_cast<errc>(v)) {
      case errc::bad_argument:
        return "invalid argument";
      case errc::file_unreadable:
        return "file cannot be read";
      case errc::bad_key:
        return "unusable private key";
      case errc::unreachable:
        return "the identity provider cannot be reached";
      case errc::timeout:
        return "the identity provider did not answer in time";
      case errc::unauthorized:
        return "the identity provider refused our credentials";
      case errc::rate_limited:
        return "rate limited by the identity provider";
      case errc::http_error:
        return "unexpected HTTP status from the identity provider";
      case errc::bad_response:
        return "unexpected answer from the identity provider";
      case errc::ambiguous:
        return "more than one zone or named location has that name";
      case errc::not_found:
        return "zone or named location not found";
      case errc::not_usable:
        return "not an IP zone or IP named location that can trust addresses";
      case errc::inactive:
        return "zone inactive or named location not trusted";
      case errc::too_many_entries:
        return "too many entries";
      case errc::conflict:
        return "another writer kept replacing the zone or named location";
    }
    return "unknown idp error";
  }
};

/// Printable, single-line, bounded: the text comes from the network.
std::string clean(std::string_view s) {
  std::string out;
  bool space = false;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\r' || c == '\n' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c < 0x20 || c == 0x7f ? '?' : ch;
    if (out.size() >= 600) {
      out += "...";
      break;
    }
  }
  return out;
}

}  // namespace

const std::error_category& error_category() noexcept {
  static const category c;
  return c;
}

std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

bool is_refusal(errc e) noexcept {
  // errc::conflict is not one: the request was allowed, it could not be made to stick.
  return e == errc::not_found || e == errc::not_usable || e == errc::inactive ||
         e == errc::too_many_entries;
}

error::error(errc code, const std::string& message, int http_status, std::string idp_code,
             std::string idp_summary)
    : std::runtime_error(message),
      code_(code),
      http_status_(http_status),
      idp_code_(std::move(idp_code)),
      idp_summary_(std::move(idp_summary)) {}

error_body parse_error_body(std::string_view body) noexcept {
  error_body out;
  try {
    const auto j = detail::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return out;
    if (j.contains("errorSummary") || j.contains("errorCode")) {  // Okta API
      out.code = detail::str(j, "errorCode");
      std::string summary = detail::str(j, "errorSummary");
      if (const auto it = j.find("errorCauses"); it != j.end() && it->is_array()) {
        std::string causes;
        for (const auto& c : *it) {
          if (!c.is_object()) continue;
          const auto s = detail::str(c, "errorSummary");
          if (s.empty() || s == summary) continue;
          causes += (causes.empty() ? "" : "; ") + s;
        }
        if (!causes.empty()) summary += " (" + causes + ")";
      }
      out.summary = clean(summary);
      out.code = clean(out.code);
    } else if (const auto e = j.find("error"); e != j.end() && e->is_object()) {  // Graph
      out.code = clean(detail::str(*e, "code"));
      out.summary = clean(detail::str(*e, "message"));
    } else if (e != j.end() && e->is_string()) {  // OAuth 2 (Okta, Entra token endpoints)
      out.code = clean(e->get<std::string>());
      out.summary = clean(detail::str(j, "error_description"));
    }
  } catch (...) {
    return {};
  }
  return out;
}

secret read_secret_file(const std::filesystem::path& path, std::string_view what) {
  try {
    return secret(support::read_secret(path, what));
  } catch (const support::error& e) {
    const bool empty = e.code() == support::errc::secret_empty;
    throw error(empty ? errc::bad_argument : errc::file_unreadable, e.message());
  }
}

namespace detail {

std::string str(const json& j, const char* key) {
  if (!j.is_object()) return {};
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

void throw_http_error(const std::string& what, const response& res) {
  const auto body = parse_error_body(res.body);
  std::string msg = what + ": ";
  if (!body.summary.empty()) {
    msg += body.summary;
  } else if (!body.code.empty()) {
    msg += body.code;
  } else {
    msg += "no error details in the answer";
  }
  msg += " (HTTP " + std::to_string(res.status);
  if (!body.code.empty()) msg += " " + body.code;
  msg += ")";
  const errc e = res.status == 401 || res.status == 403 ? errc::unauthorized
                 : res.status == 429                    ? errc::rate_limited
                                                        : errc::http_error;
  throw error(e, msg, res.status, body.code, body.summary);
}

json parse_object(const std::string& what, const response& res) {
  auto j = json::parse(res.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw error(
        errc::bad_response,
        what + ": the answer (HTTP " + std::to_string(res.status) + ") is not a JSON object",
        res.status);
  }
  return j;
}

}  // namespace detail

}  // namespace tunnelgate::idp
