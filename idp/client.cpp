// okta_client and entra_client: find the zone / named location, plan, write; verify.
//
// Both build on the authenticated sessions of idp/session.hpp (okta_api, entra_api).
#include <algorithm>
#include <cctype>
#include <set>

#include "idp/session.hpp"

namespace tunnelgate::idp {

namespace detail {

namespace {

constexpr const char* locations_path = "/v1.0/identity/conditionalAccess/namedLocations";
constexpr std::size_t max_pages = 100;

bool all_of_chars(std::string_view s, bool (*ok)(unsigned char)) {
  return std::all_of(s.begin(), s.end(),
                     [ok](char c) { return ok(static_cast<unsigned char>(c)); });
}

/// Okta ids look like `nzo1a2b3c4D5e6F7g8h9`: try them as an id first, then as a name.
bool looks_like_okta_id(std::string_view s) {
  return s.size() >= 6 && s.substr(0, 3) == "nzo" &&
         all_of_chars(s, [](unsigned char c) { return std::isalnum(c) != 0; });
}

/// Graph ids are GUIDs: 8-4-4-4-12 hex digits.
bool looks_like_guid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : std::isxdigit(static_cast<unsigned char>(s[i])) == 0) return false;
  }
  return true;
}

/// The target (path and query) of a pagination link, when it points at the same server;
/// empty otherwise (a link elsewhere is not followed: it would get our token).
std::string same_server_target(const std::string& link, const url& base) {
  try {
    const auto u = parse_https_url(link, "link");
    if (u.host_header != base.host_header) return {};
    return u.path.empty() ? "/" : u.path;
  } catch (const error&) {
    return {};
  }
}

/// `<https://...>; rel="next"` from an Okta Link header (several links may be comma-joined).
std::string next_link(const std::string& header) {
  std::size_t pos = 0;
  while ((pos = header.find('<', pos)) != std::string::npos) {
    const auto close = header.find('>', pos);
    if (close == std::string::npos) return {};
    const auto end = header.find('<', close);
    const auto params = header.substr(close, end == std::string::npos ? end : end - close);
    if (params.find("rel=\"next\"") != std::string::npos) {
      return header.substr(pos + 1, close - pos - 1);
    }
    pos = close;
  }
  return {};
}

std::string zone_label(const std::string& name, const std::string& id) {
  return "zone \"" + name + "\" (" + id + ")";
}

std::string location_label(const std::string& name, const std::string& id) {
  return "named location \"" + name + "\" (" + id + ")";
}

void fill(publish_result& r, const plan& p) {
  r.diff = p.diff;
  r.changed = p.changed;
  r.added = p.added;
  r.removed = p.removed;
  r.entries = p.entries;
}

}  // namespace

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Okta
// ---------------------------------------------------------------------------------------------

struct okta_client::impl final : detail::okta_api {
  explicit impl(okta_settings s)
      : okta_api(s.org_url, s.auth, s.http), settings(std::move(s)), base(okta_api::base()) {
    if (settings.zone.empty()) throw error(errc::bad_argument, "no zone id or name given");
  }

  /// The zone named by settings.zone (as an id, then as a name); nullopt when none.
  std::optional<detail::json> find_zone() {
    const auto& z = settings.zone;
    if (looks_like_id(z)) {
      const std::string what = "reading zone " + z + " from " + base.text;
      const auto res = api(what, "GET", "/api/v1/zones/" + detail::url_encode(z));
      if (res.status == 200) return detail::parse_object(what, res);
      if (res.status != 404) detail::throw_http_error(what, res);
    }
    const std::string what = "listing the zones of " + base.text;
    std::vector<detail::json> matches;
    std::set<std::string> seen;
    std::string target = base.path + "/api/v1/zones?limit=200";
    for (std::size_t page = 0; page < detail::max_pages && seen.insert(target).second; ++page) {
      detail::request r;
      r.method = "GET";
      r.target = target;
      const auto res = call(what, base, r);
      if (res.status != 200) detail::throw_http_error(what, res);
      const auto list = detail::json::parse(res.body, nullptr, false);
      if (list.is_discarded() || !list.is_array()) {
        throw error(errc::bad_response, what + ": the answer is not a JSON array", res.status);
      }
      for (const auto& zone : list) {
        if (detail::str(zone, "id") == z) return zone;
        if (detail::str(zone, "name") == z) matches.push_back(zone);
      }
      const auto next = detail::same_server_target(detail::next_link(res.header("link")), base);
      if (next.empty()) break;
      target = next;
    }
    if (matches.size() > 1) {
      throw error(errc::ambiguous, std::to_string(matches.size()) + " zones in " + base.text +
                                       " are named \"" + z + "\": give the zone id instead");
    }
    if (matches.empty()) return std::nullopt;
    return matches.front();
  }

  static bool looks_like_id(const std::string& z) { return detail::looks_like_okta_id(z); }

  okta_settings settings;
  const detail::url& base;
};

okta_client::okta_client(okta_settings settings)
    : impl_(std::make_unique<impl>(std::move(settings))) {}
okta_client::~okta_client() = default;

publish_result okta_client::publish(const std::vector<std::string>& addresses,
                                    const publish_options& options) {
  auto& s = *impl_;
  const auto addrs = detail::normalize_all(addresses);
  s.begin();
  publish_result r;
  r.dry_run = options.dry_run;
  const auto zone = s.find_zone();
  if (!zone) {
    if (!options.create) {
      throw error(errc::not_found,
                  "no zone in " + s.base.text + " has the id or name \"" + s.settings.zone + "\"");
    }
    if (detail::looks_like_okta_id(s.settings.zone)) {
      // An id cannot be chosen: creating would make a zone *named* like the missing id.
      throw error(errc::not_found, "no zone in " + s.base.text + " has the id " + s.settings.zone +
                                       "; to create a zone, give its name");
    }
    const auto p = plan_okta_create(s.settings.zone, addrs);
    detail::fill(r, p);
    r.name = s.settings.zone;
    r.created = true;
    if (options.dry_run) return r;
    const std::string what = "creating zone \"" + s.settings.zone + "\" in " + s.base.text;
    const auto res = s.api(what, "POST", "/api/v1/zones", p.body);
    if (res.status != 200 && res.status != 201) detail::throw_http_error(what, res);
    const auto created = detail::parse_object(what, res);
    r.id = detail::str(created, "id");
    r.name = detail::str(created, "name");
    return r;
  }
  r.id = detail::str(*zone, "id");
  r.name = detail::str(*zone, "name");
  const auto label = detail::zone_label(r.name, r.id);
  const auto type = detail::str(*zone, "type");
  if (!type.empty() && type != "IP") {
    throw error(errc::not_usable,
                label + " is of type " + type + ": only IP zones list gateway addresses");
  }
  if (detail::str(*zone, "usage") == "BLOCKLIST") {
    throw error(errc::not_usable, label +
                                      " has usage BLOCKLIST: the egress addresses there would "
                                      "block every sign-in through the gateway");
  }
  if (const auto status = detail::str(*zone, "status"); status != "ACTIVE") {
    throw error(errc::inactive, label + " is " + (status.empty() ? "not ACTIVE" : status) +
                                    ": publishing never changes a zone's status; activate it (POST "
                                    "/api/v1/zones/" +
                                    r.id + "/lifecycle/activate) and run again");
  }
  const auto p = detail::okta_plan(*zone, addrs, options.exclusive);
  detail::fill(r, p);
  if (!p.changed || options.dry_run) return r;
  const std::string what = "updating " + label;
  const auto res = s.api(what, "PUT", "/api/v1/zones/" + detail::url_encode(r.id), p.body);
  if (res.status != 200) detail::throw_http_error(what, res);
  return r;
}

verify_result okta_client::verify(const std::vector<std::string>& addresses) {
  auto& s = *impl_;
  const auto addrs = detail::normalize_all(addresses);
  s.begin();
  const auto zone = s.find_zone();
  if (!zone) {
    throw error(errc::not_found,
                "no zone in " + s.base.text + " has the id or name \"" + s.settings.zone + "\"");
  }
  return detail::okta_check(*zone, addrs);
}

// ---------------------------------------------------------------------------------------------
// Entra
// ---------------------------------------------------------------------------------------------

struct entra_client::impl final : detail::entra_api {
  explicit impl(entra_settings s)
      : entra_api(s.tenant, s.client_id, s.client_secret, s.login_url, s.graph_url, s.http),
        settings(std::move(s)),
        graph(entra_api::graph()) {
    if (settings.location.empty()) {
      throw error(errc::bad_argument, "no named location id or name given");
    }
  }

  std::optional<detail::json> find_location() {
    const auto& l = settings.location;
    const std::string collection = graph.path + detail::locations_path;
    if (detail::looks_like_guid(l)) {
      const std::string what = "reading named location " + l + " from " + graph.text;
      const auto res = api(what, "GET", collection + "/" + l);
      if (res.status == 200) return detail::parse_object(what, res);
      if (res.status != 404) detail::throw_http_error(what, res);
    }
    // Listed and matched here rather than with $filter: exact, case-sensitive, and the same
    // on every Graph version.
    const std::string what = "listing the named locations at " + graph.text;
    std::vector<detail::json> matches;
    std::set<std::string> seen;
    std::string target = collection;
    for (std::size_t page = 0; page < detail::max_pages && seen.insert(target).second; ++page) {
      const auto res = api(what, "GET", target);
      if (res.status != 200) detail::throw_http_error(what, res);
      const auto j = detail::parse_object(what, res);
      const auto value = j.find("value");
      if (value == j.end() || !value->is_array()) {
        throw error(errc::bad_response, what + ": the answer has no `value` array", res.status);
      }
      for (const auto& loc : *value) {
        if (detail::str(loc, "id") == l) return loc;
        if (detail::str(loc, "displayName") == l) matches.push_back(loc);
      }
      const auto next = detail::same_server_target(detail::str(j, "@odata.nextLink"), graph);
      if (next.empty()) break;
      target = next;
    }
    if (matches.size() > 1) {
      throw error(errc::ambiguous, std::to_string(matches.size()) + " named locations at " +
                                       graph.text + " are named \"" + l +
                                       "\": give the id instead");
    }
    if (matches.empty()) return std::nullopt;
    return matches.front();
  }

  entra_settings settings;
  const detail::url& graph;
};

entra_client::entra_client(entra_settings settings)
    : impl_(std::make_unique<impl>(std::move(settings))) {}
entra_client::~entra_client() = default;

publish_result entra_client::publish(const std::vector<std::string>& addresses,
                                     const publish_options& options) {
  auto& s = *impl_;
  const auto addrs = detail::normalize_all(addresses);
  s.begin();
  publish_result r;
  r.dry_run = options.dry_run;
  const auto loc = s.find_location();
  const std::string collection = s.graph.path + detail::locations_path;
  if (!loc) {
    if (!options.create) {
      throw error(errc::not_found, "no named location at " + s.graph.text +
                                       " has the id or name \"" + s.settings.location + "\"");
    }
    if (detail::looks_like_guid(s.settings.location)) {
      throw error(errc::not_found, "no named location at " + s.graph.text + " has the id " +
                                       s.settings.location + "; to create one, give its name");
    }
    const auto p = plan_entra_create(s.settings.location, addrs);
    detail::fill(r, p);
    r.name = s.settings.location;
    r.created = true;
    if (options.dry_run) return r;
    const std::string what = "creating named location \"" + s.settings.location + "\"";
    const auto res = s.api(what, "POST", collection, p.body);
    if (res.status != 201 && res.status != 200) detail::throw_http_error(what, res);
    const auto created = detail::parse_object(what, res);
    r.id = detail::str(created, "id");
    r.name = detail::str(created, "displayName");
    return r;
  }
  r.id = detail::str(*loc, "id");
  r.name = detail::str(*loc, "displayName");
  const auto label = detail::location_label(r.name, r.id);
  if (const auto type = detail::str(*loc, "@odata.type");
      !type.empty() && type != "#microsoft.graph.ipNamedLocation") {
    throw error(errc::not_usable,
                label + " is a " + type + ": only an ipNamedLocation lists IP ranges");
  }
  const auto trusted = loc->find("isTrusted");
  if (trusted == loc->end() || !trusted->is_boolean() || !trusted->get<bool>()) {
    throw error(errc::inactive, label +
                                    " is not marked trusted (isTrusted: false): publishing "
                                    "never changes that; mark it trusted and run again");
  }
  const auto p = detail::entra_plan(*loc, addrs, options.exclusive);
  detail::fill(r, p);
  if (!p.changed || options.dry_run) return r;
  const std::string what = "updating " + label;
  const auto res = s.api(what, "PATCH", collection + "/" + detail::url_encode(r.id), p.body);
  if (res.status != 204 && res.status != 200) detail::throw_http_error(what, res);
  return r;
}

verify_result entra_client::verify(const std::vector<std::string>& addresses) {
  auto& s = *impl_;
  const auto addrs = detail::normalize_all(addresses);
  s.begin();
  const auto loc = s.find_location();
  if (!loc) {
    throw error(errc::not_found, "no named location at " + s.graph.text + " has the id or name \"" +
                                     s.settings.location + "\"");
  }
  return detail::entra_check(*loc, addrs);
}

}  // namespace tunnelgate::idp
