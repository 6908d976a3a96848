// okta_client and entra_client: find the zone / named location, plan, write; verify.
//
// Both build on the authenticated sessions of idp/session.hpp (okta_api, entra_api).
#include <algorithm>
#include <cctype>
#include <random>
#include <set>
#include <thread>

#include "idp/session.hpp"

namespace tunnelgate::idp {

namespace detail {

namespace {

constexpr const char* locations_path = "/v1.0/identity/conditionalAccess/namedLocations";

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

/// The next code point of UTF-8 `s` at `i` (advanced); a byte that does not start a valid
/// sequence stands for itself, mapped out of the Unicode range so it only equals itself.
char32_t next_code_point(std::string_view s, std::size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  const auto raw = [&] {
    ++i;
    return static_cast<char32_t>(0x110000 + b);
  };
  int extra = 0;
  char32_t cp = 0;
  if (b < 0x80) {
    ++i;
    return b;
  }
  if ((b & 0xE0) == 0xC0) {
    extra = 1;
    cp = b & 0x1F;
  } else if ((b & 0xF0) == 0xE0) {
    extra = 2;
    cp = b & 0x0F;
  } else if ((b & 0xF8) == 0xF0) {
    extra = 3;
    cp = b & 0x07;
  } else {
    return raw();
  }
  if (i + static_cast<std::size_t>(extra) >= s.size()) return raw();
  for (int k = 1; k <= extra; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) return raw();
    cp = (cp << 6) | (c & 0x3F);
  }
  i += static_cast<std::size_t>(extra) + 1;
  return cp;
}

/// Simple lower-casing of the letters an IdP name is likely to use: ASCII, Latin-1, Latin
/// Extended-A, Greek and Cyrillic. Other characters are compared as they are.
char32_t fold(char32_t c) {
  if (c >= U'A' && c <= U'Z') return c + 32;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  // Latin Extended-A alternates upper/lower; İ and ı (0x130, 0x131) do not pair.
  if ((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) {
    return c | 1;
  }
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) != 0 ? c + 1 : c;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c == 0x3C2) return 0x3C3;  // final sigma
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

/// "2 zones ... : nzoA ("Egress"), nzoB ("egress")": the candidates a user can choose from.
std::string candidates(const std::vector<json>& matches, const char* name_key) {
  std::string out;
  for (const auto& m : matches) {
    out += (out.empty() ? "" : ", ") + str(m, "id") + " (\"" + str(m, name_key) + "\")";
  }
  return out;
}

/// The addresses whose owned entry is missing from `current` (the '+' of a non-exclusive
/// plan): what a write must be confirmed against.
std::vector<std::string> missing_owned(const plan& non_exclusive) {
  std::vector<std::string> out;
  for (const auto& c : non_exclusive.diff) {
    if (c.kind == change_kind::add) out.push_back(c.value);
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ", ") + s;
  return out;
}

/// The pause before write `attempt + 1`: write_backoff doubled per attempt, capped at
/// max_write_backoff, with "equal jitter" (uniform in [d/2, d]) so two gateways that
/// collided once do not collide again in lockstep.
duration backoff(std::size_t attempt) {
  auto d = write_backoff;
  for (std::size_t i = 1; i < attempt && d < max_write_backoff; ++i)
    d *= 2;
  d = std::min(d, max_write_backoff);
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<duration::rep> half(d.count() / 2, d.count());
  return duration(half(rng));
}

}  // namespace

bool same_name(std::string_view a, std::string_view b) {
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < a.size() && j < b.size()) {
    if (fold(next_code_point(a, i)) != fold(next_code_point(b, j))) return false;
  }
  return i == a.size() && j == b.size();
}

namespace {

/// The write loop both clients share. `write` sends plan `p`; `read` reads the object again by
/// id (and refuses it when it is no longer usable); `plan_of(obj, exclusive)` plans. After
/// each write the object is read back: when every owned entry is there, done; else another
/// writer's full replace (built from an older read) landed meanwhile, so wait, re-read,
/// re-plan and write again, at most max_write_attempts times.
template <class Write, class Read, class PlanOf>
void write_confirmed(publish_result& r, plan p, bool exclusive, const std::string& label,
                     const notice_fn& notice, Write write, Read read, PlanOf plan_of) {
  for (std::size_t attempt = 1;; ++attempt) {
    write(p);
    fill(r, p);
    r.writes = attempt;
    auto missing = missing_owned(plan_of(read(), false));
    if (missing.empty()) return;
    if (attempt == max_write_attempts) {
      throw error(errc::conflict,
                  label + ": " + join(missing) + " still missing after " + std::to_string(attempt) +
                      " writes, each read back without it: another writer keeps replacing the "
                      "list (two gateways publishing with exclusive to one zone remove each "
                      "other's addresses; give each its own zone or drop exclusive), then run "
                      "again");
    }
    const auto pause = backoff(attempt);
    if (notice) {
      notice(label + ": " + join(missing) + " missing when read back after write " +
             std::to_string(attempt) + " (another writer replaced the list meanwhile); writing " +
             "again in " + std::to_string(pause.count()) + " ms");
    }
    std::this_thread::sleep_for(pause);
    p = plan_of(read(), exclusive);
    if (!p.changed) return;  // the other writer put our entries back: nothing to write
  }
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
        // Okta documents zone names as unique but not whether case counts: match without
        // case, so that --create never makes "Egress" next to "egress" (docs/idp.md).
        if (detail::same_name(detail::str(zone, "name"), z)) matches.push_back(zone);
      }
      const auto next = detail::same_server_target(detail::next_link(res.header("link")), base);
      if (next.empty()) break;
      target = next;
    }
    if (matches.size() > 1) {
      throw error(errc::ambiguous,
                  std::to_string(matches.size()) + " zones in " + base.text + " are named \"" + z +
                      "\" (names compared ignoring case): " + detail::candidates(matches, "name") +
                      "; give the zone id instead");
    }
    if (matches.empty()) return std::nullopt;
    return matches.front();
  }

  static bool looks_like_id(const std::string& z) { return detail::looks_like_okta_id(z); }
  const notice_fn& notice() const { return http().notice; }

  /// Refuses (is_refusal) a zone publishing must not write: not IP, BLOCKLIST, not ACTIVE.
  static void check_usable(const detail::json& zone, const std::string& label) {
    const auto type = detail::str(zone, "type");
    if (!type.empty() && type != "IP") {
      throw error(errc::not_usable,
                  label + " is of type " + type + ": only IP zones list gateway addresses");
    }
    if (detail::str(zone, "usage") == "BLOCKLIST") {
      throw error(errc::not_usable, label +
                                        " has usage BLOCKLIST: the egress addresses there would "
                                        "block every sign-in through the gateway");
    }
    if (const auto status = detail::str(zone, "status"); status != "ACTIVE") {
      throw error(errc::inactive, label + " is " + (status.empty() ? "not ACTIVE" : status) +
                                      ": publishing never changes a zone's status; activate it "
                                      "(POST /api/v1/zones/" +
                                      detail::str(zone, "id") +
                                      "/lifecycle/activate) and run again");
    }
  }

  /// The zone read again by id after a write, checked as before the first.
  detail::json reread(const std::string& id, const std::string& label) {
    const std::string what = "reading back " + label;
    const auto res = api(what, "GET", "/api/v1/zones/" + detail::url_encode(id));
    if (res.status == 404) {
      throw error(errc::not_found, label + " was deleted while publishing to it", 404);
    }
    if (res.status != 200) detail::throw_http_error(what, res);
    auto zone = detail::parse_object(what, res);
    check_usable(zone, label);
    return zone;
  }

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
    r.writes = 1;
    return r;
  }
  r.id = detail::str(*zone, "id");
  r.name = detail::str(*zone, "name");
  const auto label = detail::zone_label(r.name, r.id);
  impl::check_usable(*zone, label);
  const auto p = detail::okta_plan(*zone, addrs, options.exclusive);
  detail::fill(r, p);
  if (!p.changed || options.dry_run) return r;
  const std::string what = "updating " + label;
  const auto target = "/api/v1/zones/" + detail::url_encode(r.id);
  // PUT is a full replace built from our read: confirm by reading back (write_confirmed).
  detail::write_confirmed(
      r, p, options.exclusive, label, s.notice(),
      [&](const plan& w) {
        const auto res = s.api(what, "PUT", target, w.body);
        if (res.status != 200) detail::throw_http_error(what, res);
      },
      [&] { return s.reread(r.id, label); },
      [&](const detail::json& z, bool exclusive) {
        return detail::okta_plan(z, addrs, exclusive);
      });
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
    // Listed and matched here rather than with $filter, the same on every Graph version; names
    // compared without case, as Graph compares displayName (so --create never makes a second
    // location whose name differs only in case).
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
        if (detail::same_name(detail::str(loc, "displayName"), l)) matches.push_back(loc);
      }
      const auto next = detail::same_server_target(detail::str(j, "@odata.nextLink"), graph);
      if (next.empty()) break;
      target = next;
    }
    if (matches.size() > 1) {
      throw error(errc::ambiguous,
                  std::to_string(matches.size()) + " named locations at " + graph.text +
                      " are named \"" + l + "\" (names compared ignoring case): " +
                      detail::candidates(matches, "displayName") + "; give the id instead");
    }
    if (matches.empty()) return std::nullopt;
    return matches.front();
  }

  const notice_fn& notice() const { return http().notice; }

  /// Refuses a location publishing must not write: not an ipNamedLocation, not trusted.
  static void check_usable(const detail::json& loc, const std::string& label) {
    if (const auto type = detail::str(loc, "@odata.type");
        !type.empty() && type != "#microsoft.graph.ipNamedLocation") {
      throw error(errc::not_usable,
                  label + " is a " + type + ": only an ipNamedLocation lists IP ranges");
    }
    const auto trusted = loc.find("isTrusted");
    if (trusted == loc.end() || !trusted->is_boolean() || !trusted->get<bool>()) {
      throw error(errc::inactive, label +
                                      " is not marked trusted (isTrusted: false): publishing "
                                      "never changes that; mark it trusted and run again");
    }
  }

  /// The location read again by id after a write, checked as before the first.
  detail::json reread(const std::string& id, const std::string& label) {
    const std::string what = "reading back " + label;
    const auto res =
        api(what, "GET", graph.path + detail::locations_path + "/" + detail::url_encode(id));
    if (res.status == 404) {
      throw error(errc::not_found, label + " was deleted while publishing to it", 404);
    }
    if (res.status != 200) detail::throw_http_error(what, res);
    auto loc = detail::parse_object(what, res);
    check_usable(loc, label);
    return loc;
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
    r.writes = 1;
    return r;
  }
  r.id = detail::str(*loc, "id");
  r.name = detail::str(*loc, "displayName");
  const auto label = detail::location_label(r.name, r.id);
  impl::check_usable(*loc, label);
  const auto p = detail::entra_plan(*loc, addrs, options.exclusive);
  detail::fill(r, p);
  if (!p.changed || options.dry_run) return r;
  const std::string what = "updating " + label;
  const auto target = collection + "/" + detail::url_encode(r.id);
  // The PATCH replaces the whole ipRanges list built from our read: confirm by reading back.
  detail::write_confirmed(
      r, p, options.exclusive, label, s.notice(),
      [&](const plan& w) {
        const auto res = s.api(what, "PATCH", target, w.body);
        if (res.status != 204 && res.status != 200) detail::throw_http_error(what, res);
      },
      [&] { return s.reread(r.id, label); },
      [&](const detail::json& l, bool exclusive) {
        return detail::entra_plan(l, addrs, exclusive);
      });
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
