// okta_directory and entra_directory: the device, user and session calls of posture_sync
// (issue 15). Built on the same authenticated sessions as the zone clients (session.hpp).
#include <set>

#include "idp/session.hpp"

namespace tunnelgate::idp {

namespace {

/// A value for an Okta search expression: inside double quotes, so a quote, a backslash or a
/// control character could change the expression; refused rather than escaped (UDIDs, serial
/// numbers, logins and addresses never contain them).
std::string search_value(std::string_view v, std::string_view what) {
  if (v.empty()) throw error(errc::bad_argument, std::string(what) + " is empty");
  for (const char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\' || u < 0x20 || u == 0x7f) {
      throw error(errc::bad_argument,
                  std::string(what) + " contains a quote, backslash or control character");
    }
  }
  return std::string(v);
}

/// An id in a path: non-empty and url-encoded.
std::string path_id(std::string_view id, std::string_view what) {
  if (id.empty()) throw error(errc::bad_argument, std::string(what) + " is empty");
  return detail::url_encode(id);
}

okta_device to_device(const detail::json& j) {
  okta_device d;
  d.id = detail::str(j, "id");
  d.status = detail::str(j, "status");
  if (const auto p = j.find("profile"); p != j.end() && p->is_object()) {
    d.display_name = detail::str(*p, "displayName");
    d.platform = detail::str(*p, "platform");
    d.udid = detail::str(*p, "udid");
    d.serial = detail::str(*p, "serialNumber");
  }
  return d;
}

okta_user to_user(const detail::json& j) {
  okta_user u;
  u.id = detail::str(j, "id");
  u.status = detail::str(j, "status");
  if (const auto p = j.find("profile"); p != j.end() && p->is_object()) {
    u.login = detail::str(*p, "login");
    u.email = detail::str(*p, "email");
  }
  return u;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Okta
// ---------------------------------------------------------------------------------------------

struct okta_directory::impl final : detail::okta_api {
  explicit impl(okta_directory_settings s) : okta_api(s.org_url, std::move(s.auth), s.http) {}

  /// Every element of a paged JSON array listing starting at `target` (under the org URL).
  std::vector<detail::json> list(const std::string& what, const std::string& target) {
    std::vector<detail::json> out;
    std::set<std::string> seen;
    std::string next = base().path + target;
    for (std::size_t page = 0; page < detail::max_pages && seen.insert(next).second; ++page) {
      detail::request r;
      r.method = "GET";
      r.target = next;
      const auto res = call(what, base(), r);
      if (res.status != 200) detail::throw_http_error(what, res);
      const auto arr = detail::json::parse(res.body, nullptr, false);
      if (arr.is_discarded() || !arr.is_array()) {
        throw error(errc::bad_response, what + ": the answer is not a JSON array", res.status);
      }
      for (const auto& e : arr) {
        if (e.is_object()) out.push_back(e);
      }
      next = detail::same_server_target(detail::next_link(res.header("link")), base());
      if (next.empty()) break;
    }
    return out;
  }

  std::vector<okta_device> find_devices(const std::string& field, std::string_view value,
                                        std::string_view what_value) {
    const auto v = search_value(value, what_value);
    const std::string what =
        "searching the devices of " + base().text + " for " + field + " \"" + v + "\"";
    const auto expr = "profile." + field + " eq \"" + v + "\"";
    std::vector<okta_device> out;
    for (const auto& j : list(what, "/api/v1/devices?search=" + detail::url_encode(expr))) {
      auto d = to_device(j);
      // The search is Okta's; keep only exact matches, whatever else it returns.
      if ((field == "udid" ? d.udid : d.serial) == v && !d.id.empty()) out.push_back(std::move(d));
    }
    return out;
  }

  void lifecycle(std::string_view id, const char* action) {
    const std::string what =
        std::string(action) + " of device " + std::string(id) + " in " + base().text;
    const auto res = api(
        what, "POST", "/api/v1/devices/" + path_id(id, "the device id") + "/lifecycle/" + action);
    if (res.status != 204 && res.status != 200) detail::throw_http_error(what, res);
  }
};

okta_directory::okta_directory(okta_directory_settings settings)
    : impl_(std::make_unique<impl>(std::move(settings))) {}
okta_directory::~okta_directory() = default;

std::vector<okta_device> okta_directory::find_devices_by_udid(std::string_view udid) {
  impl_->begin();
  return impl_->find_devices("udid", udid, "the UDID");
}

std::vector<okta_device> okta_directory::find_devices_by_serial(std::string_view serial) {
  impl_->begin();
  return impl_->find_devices("serialNumber", serial, "the serial number");
}

std::optional<okta_device> okta_directory::get_device(std::string_view id) {
  auto& s = *impl_;
  s.begin();
  const std::string what = "reading device " + std::string(id) + " from " + s.base().text;
  const auto res = s.api(what, "GET", "/api/v1/devices/" + path_id(id, "the device id"));
  if (res.status == 404) return std::nullopt;
  if (res.status != 200) detail::throw_http_error(what, res);
  auto d = to_device(detail::parse_object(what, res));
  if (d.id.empty() || d.status.empty()) {
    throw error(errc::bad_response, what + ": the device has no id or status", res.status);
  }
  return d;
}

void okta_directory::suspend_device(std::string_view id) {
  impl_->begin();
  impl_->lifecycle(id, "suspend");
}

void okta_directory::unsuspend_device(std::string_view id) {
  impl_->begin();
  impl_->lifecycle(id, "unsuspend");
}

std::vector<okta_user> okta_directory::find_users(std::string_view login_or_email) {
  auto& s = *impl_;
  s.begin();
  const auto v = search_value(login_or_email, "the user name");
  const std::string what = "searching the users of " + s.base().text + " for \"" + v + "\"";
  const auto expr = "profile.login eq \"" + v + "\" or profile.email eq \"" + v + "\"";
  std::vector<okta_user> out;
  for (const auto& j : s.list(what, "/api/v1/users?search=" + detail::url_encode(expr))) {
    auto u = to_user(j);
    if (!u.id.empty()) out.push_back(std::move(u));
  }
  return out;
}

void okta_directory::clear_user_sessions(std::string_view user_id) {
  auto& s = *impl_;
  s.begin();
  const std::string what =
      "clearing the sessions of user " + std::string(user_id) + " in " + s.base().text;
  const auto res = s.api(what, "DELETE",
                         "/api/v1/users/" + path_id(user_id, "the user id") +
                             "/sessions?oauthTokens=true&forgetDevices=false");
  if (res.status != 204 && res.status != 200) detail::throw_http_error(what, res);
}

// ---------------------------------------------------------------------------------------------
// Entra
// ---------------------------------------------------------------------------------------------

struct entra_directory::impl final : detail::entra_api {
  explicit impl(entra_directory_settings s)
      : entra_api(s.tenant, s.client_id, std::move(s.client_secret), s.login_url, s.graph_url,
                  s.http) {}
};

entra_directory::entra_directory(entra_directory_settings settings)
    : impl_(std::make_unique<impl>(std::move(settings))) {}
entra_directory::~entra_directory() = default;

void entra_directory::revoke_sign_in_sessions(std::string_view user) {
  auto& s = *impl_;
  s.begin();
  const std::string what =
      "revoking the sign-in sessions of " + std::string(user) + " at " + s.graph().text;
  const auto res =
      s.api(what, "POST",
            s.graph().path + "/v1.0/users/" + path_id(user, "the user") + "/revokeSignInSessions");
  if (res.status == 404) {
    const auto body = parse_error_body(res.body);
    throw error(errc::not_found,
                what + ": Graph does not know the user" +
                    (body.summary.empty() ? "" : " (" + body.summary + ")"),
                res.status, body.code, body.summary);
  }
  if (res.status != 200 && res.status != 204) detail::throw_http_error(what, res);
  if (res.status == 200) {
    const auto j = detail::parse_object(what, res);
    const auto v = j.find("value");
    if (v != j.end() && v->is_boolean() && !v->get<bool>()) {
      throw error(errc::bad_response, what + ": Graph answered value false", res.status);
    }
  }
}

}  // namespace tunnelgate::idp
