// Plans (what publishing changes) and checks (what verify reports), from the IdPs' JSON only.
#include "idp/internal.hpp"

namespace tunnelgate::idp {

namespace detail {

namespace {

constexpr const char* odata_type = "@odata.type";
constexpr const char* ip_named_location = "#microsoft.graph.ipNamedLocation";

std::vector<ip> parse_addresses(const std::vector<std::string>& addresses) {
  if (addresses.empty()) throw error(errc::bad_argument, "no egress address given");
  std::vector<ip> out;
  for (const auto& a : addresses) {
    auto p = parse_ip(a);
    if (!p || normalize_address(a) != a) {
      throw error(errc::bad_argument, "'" + a + "' is not a normalized IPv4 or IPv6 address");
    }
    out.push_back(*p);
  }
  return out;
}

/// The list an entry array holds, or an empty array for null / missing. `where` names it.
json entry_list(const json& obj, const char* key, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return json::array();
  if (!it->is_array()) {
    throw error(errc::bad_response, where + ": `" + key + "` is not an array");
  }
  return *it;
}

/// How one list entry is shown and whether it is the owned entry of an address.
struct entry_view {
  std::string value;    // shown in the diff
  std::string matched;  // CIDR text used for ownership; empty when it cannot be owned
  std::string contain;  // text for contains(): CIDR, range or address
};

entry_view okta_entry(const json& e) {
  entry_view v;
  v.value = str(e, "value");
  if (v.value.empty()) v.value = e.dump();
  v.contain = str(e, "value");
  if (str(e, "type") == "CIDR") v.matched = v.contain;
  return v;
}

entry_view entra_entry(const json& e) {
  entry_view v;
  const auto c = str(e, "cidrAddress");
  if (!c.empty()) {
    v.value = v.matched = v.contain = c;
  } else if (!str(e, "lowerAddress").empty()) {  // beta iPv4Range / iPv6Range
    v.value = v.contain = str(e, "lowerAddress") + "-" + str(e, "upperAddress");
  } else {
    v.value = e.dump();
  }
  return v;
}

/// The merge shared by both IdPs: keeps every owned entry once (a duplicate is dropped only
/// under `exclusive`), adds the missing ones at the end and, under `exclusive`, drops the rest.
template <class View, class Make>
json merge(const json& current, const std::vector<std::string>& addresses, bool exclusive,
           View view, Make make, plan& p) {
  const auto ips = parse_addresses(addresses);
  std::vector<bool> have(ips.size(), false);
  std::vector<change> keeps, adds, removes;
  json out = json::array();
  for (const auto& e : current) {
    const auto v = view(e);
    std::size_t owner = ips.size();
    for (std::size_t i = 0; i < ips.size() && !v.matched.empty(); ++i) {
      if (is_host_entry(v.matched, ips[i])) owner = i;
    }
    if (owner < ips.size() && !have[owner]) {
      have[owner] = true;
      keeps.push_back({change_kind::keep, host_cidr(addresses[owner])});
      out.push_back(e);
    } else if (exclusive) {
      removes.push_back({change_kind::remove, v.value});
    } else {
      out.push_back(e);
    }
  }
  for (std::size_t i = 0; i < ips.size(); ++i) {
    if (have[i]) continue;
    out.push_back(make(addresses[i]));
    adds.push_back({change_kind::add, host_cidr(addresses[i])});
  }
  p.added = adds.size();
  p.removed = removes.size();
  p.changed = p.added + p.removed > 0;
  p.diff = std::move(keeps);
  p.diff.insert(p.diff.end(), adds.begin(), adds.end());
  p.diff.insert(p.diff.end(), removes.begin(), removes.end());
  return out;
}

json okta_gateway(const std::string& address) {
  json e = json::object();
  e["type"] = "CIDR";
  e["value"] = host_cidr(address);
  return e;
}

json entra_range(const std::string& address) {
  json e = json::object();
  e[odata_type] = address.find(':') == std::string::npos ? "#microsoft.graph.iPv4CidrRange"
                                                         : "#microsoft.graph.iPv6CidrRange";
  e["cidrAddress"] = host_cidr(address);
  return e;
}

std::string okta_label(const json& zone) {
  const auto id = str(zone, "id");
  return "zone \"" + str(zone, "name") + "\" (" + (id.empty() ? "new" : id) + ")";
}

std::string entra_label(const json& loc) {
  const auto id = str(loc, "id");
  return "named location \"" + str(loc, "displayName") + "\" (" + (id.empty() ? "new" : id) + ")";
}

void check_limit(const plan& p, std::size_t limit, const std::string& label,
                 const std::string& counted, const std::string& idp) {
  if (!p.changed || p.entries <= limit) return;
  throw error(errc::too_many_entries,
              label + " would have " + std::to_string(p.entries) + " entries (" + counted + "); " +
                  idp + " allows at most " + std::to_string(limit) + ": nothing written");
}

json parse_json_object(std::string_view text, const char* what) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw error(errc::bad_response, std::string(what) + " is not a JSON object");
  }
  return j;
}

template <class View>
void check_entries(const json& list, const std::vector<std::string>& addresses, View view,
                   verify_result& r) {
  parse_addresses(addresses);
  for (const auto& a : addresses) {
    bool in = false;
    if (r.active) {
      for (const auto& e : list) {
        if (contains(view(e).contain, a)) {
          in = true;
          break;
        }
      }
    }
    (in ? r.present : r.missing).push_back(a);
  }
}

}  // namespace

plan okta_plan(const json& zone, const std::vector<std::string>& addresses, bool exclusive) {
  if (!zone.is_object()) throw error(errc::bad_response, "the zone is not a JSON object");
  const auto label = okta_label(zone);
  plan p;
  const auto gateways =
      merge(entry_list(zone, "gateways", label), addresses, exclusive, okta_entry, okta_gateway, p);
  p.entries = gateways.size() + entry_list(zone, "proxies", label).size();
  check_limit(p, str(zone, "usage") == "BLOCKLIST" ? okta_blocklist_limit : okta_zone_limit, label,
              "gateways + proxies", "Okta");
  if (p.changed) {
    json body = zone;  // a full replace: everything else goes back as it came
    body["gateways"] = gateways;
    p.body = body.dump();
  }
  return p;
}

plan entra_plan(const json& location, const std::vector<std::string>& addresses, bool exclusive) {
  if (!location.is_object()) {
    throw error(errc::bad_response, "the named location is not a JSON object");
  }
  const auto label = entra_label(location);
  plan p;
  const auto ranges = merge(entry_list(location, "ipRanges", label), addresses, exclusive,
                            entra_entry, entra_range, p);
  p.entries = ranges.size();
  check_limit(p, entra_location_limit, label, "ipRanges", "this client");
  if (p.changed) {
    // PATCH changes only what it names; Graph requires @odata.type in it.
    json body = json::object();
    body[odata_type] = ip_named_location;
    body["ipRanges"] = ranges;
    p.body = body.dump();
  }
  return p;
}

verify_result okta_check(const json& zone, const std::vector<std::string>& addresses) {
  verify_result r;
  r.id = str(zone, "id");
  r.name = str(zone, "name");
  r.status = str(zone, "status");
  const auto type = str(zone, "type");
  const auto usage = str(zone, "usage");
  r.active = r.status == "ACTIVE" && (type.empty() || type == "IP") && usage != "BLOCKLIST";
  if (r.status == "ACTIVE" && !r.active) {
    r.status += usage == "BLOCKLIST" ? ", usage BLOCKLIST" : ", type " + type;
  }
  check_entries(entry_list(zone, "gateways", okta_label(zone)), addresses, okta_entry, r);
  return r;
}

verify_result entra_check(const json& location, const std::vector<std::string>& addresses) {
  verify_result r;
  r.id = str(location, "id");
  r.name = str(location, "displayName");
  const auto trusted = location.find("isTrusted");
  const bool is_trusted =
      trusted != location.end() && trusted->is_boolean() && trusted->get<bool>();
  r.status = is_trusted ? "trusted" : "untrusted";
  const auto type = str(location, odata_type);
  r.active = is_trusted && (type.empty() || type == ip_named_location);
  if (is_trusted && !r.active) r.status += ", " + type;
  check_entries(entry_list(location, "ipRanges", entra_label(location)), addresses, entra_entry, r);
  return r;
}

}  // namespace detail

plan plan_okta_zone(std::string_view zone_json, const std::vector<std::string>& addresses,
                    bool exclusive) {
  return detail::okta_plan(detail::parse_json_object(zone_json, "the zone"), addresses, exclusive);
}

plan plan_okta_create(std::string_view name, const std::vector<std::string>& addresses) {
  detail::json zone = detail::json::object();
  zone["type"] = "IP";
  zone["name"] = std::string(name);
  zone["status"] = "ACTIVE";
  zone["usage"] = "POLICY";
  zone["gateways"] = detail::json::array();
  auto p = detail::okta_plan(zone, addresses, false);
  // okta_plan's body is the zone with gateways; drop nothing else (there is nothing else).
  return p;
}

plan plan_entra_location(std::string_view location_json, const std::vector<std::string>& addresses,
                         bool exclusive) {
  return detail::entra_plan(detail::parse_json_object(location_json, "the named location"),
                            addresses, exclusive);
}

plan plan_entra_create(std::string_view name, const std::vector<std::string>& addresses) {
  detail::json loc = detail::json::object();
  loc[detail::odata_type] = detail::ip_named_location;
  loc["displayName"] = std::string(name);
  loc["isTrusted"] = true;
  loc["ipRanges"] = detail::json::array();
  auto p = detail::entra_plan(loc, addresses, false);
  auto body = detail::json::parse(p.body);
  loc["ipRanges"] = body["ipRanges"];
  p.body = loc.dump();
  return p;
}

verify_result check_okta_zone(std::string_view zone_json,
                              const std::vector<std::string>& addresses) {
  return detail::okta_check(detail::parse_json_object(zone_json, "the zone"), addresses);
}

verify_result check_entra_location(std::string_view location_json,
                                   const std::vector<std::string>& addresses) {
  return detail::entra_check(detail::parse_json_object(location_json, "the named location"),
                             addresses);
}

}  // namespace tunnelgate::idp
