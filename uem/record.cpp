// Device records, the posture policy and the pure parsers (inventory, webhook body).
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <set>

#include "support/yaml.hpp"
#include "uem/internal.hpp"

namespace tunnelgate::uem {

using json = nlohmann::json;

std::string device_key::to_string() const {
  switch (kind) {
    case key_kind::udid:
      return "udid:" + value;
    case key_kind::serial:
      return "serial:" + value;
    case key_kind::device_id:
      return "device_id:" + value;
  }
  return value;
}

namespace {

constexpr std::string_view reason_names[] = {"ok",          "unknown_device", "not_enrolled",
                                             "compromised", "noncompliant",   "uem_unavailable"};

/// Keeps the summary line one line of space-separated fields whatever the UEM sends.
std::string field(std::string_view v) {
  if (v.empty()) return "-";
  std::string out(v);
  for (auto& c : out) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '\x7f') c = '_';
  }
  return out;
}

const char* type_name(const json& j) {
  return j.type_name();
}

}  // namespace

std::string_view to_string(reason r) noexcept {
  const auto i = static_cast<std::size_t>(r);
  return i < std::size(reason_names) ? reason_names[i] : std::string_view("unknown");
}

std::optional<reason> reason_from_string(std::string_view s) noexcept {
  for (std::size_t i = 0; i < std::size(reason_names); ++i) {
    if (reason_names[i] == s) return static_cast<reason>(i);
  }
  return std::nullopt;
}

std::string_view map_platform(std::string_view p) noexcept {
  // The UEM's Platform strings are fixed names; compare exactly but forgive case.
  if (detail::iequals(p, "Apple")) return "ios";
  if (detail::iequals(p, "AppleOsX")) return "macos";
  if (detail::iequals(p, "Android")) return "android";
  if (detail::iequals(p, "WinRT")) return "windows";
  if (detail::iequals(p, "Linux")) return "linux";
  return {};
}

decision evaluate(const posture_policy& policy, const std::optional<device_record>& record) {
  decision d;
  if (!record) {
    d.code = reason::unknown_device;
    return d;
  }
  d.device = record;
  d.platform = std::string(map_platform(record->platform));
  if (policy.require_enrolled && !detail::iequals(record->enrollment_status, "Enrolled")) {
    d.code = reason::not_enrolled;
  } else if (policy.require_not_compromised && record->compromised) {
    d.code = reason::compromised;
  } else if (policy.require_compliant && !detail::iequals(record->compliance_status, "Compliant")) {
    d.code = reason::noncompliant;
  } else {
    d.code = reason::ok;
  }
  return d;
}

std::string decision::summary_line() const {
  std::string s = admitted() ? "admit" : "refuse";
  s += " reason=";
  s += to_string(code);
  s += " platform=" + field(platform);
  if (device) {
    s += " enrollment=" + field(device->enrollment_status);
    s += " compliance=" + field(device->compliance_status);
    s += std::string(" compromised=") + (device->compromised ? "true" : "false");
  } else {
    s += " enrollment=- compliance=- compromised=-";
  }
  return s;
}

namespace detail {

/// One record from a JSON value; appends "<where>.<Field>: problem" to errors.
std::optional<device_record> record_from_json(const json& j, const std::string& where,
                                              std::vector<std::string>& errors) {
  const auto prefix = where.empty() ? std::string() : where + ".";
  if (!j.is_object()) {
    errors.push_back((where.empty() ? std::string("device record") : where) +
                     ": expected an object, got " + type_name(j));
    return std::nullopt;
  }
  const auto before = errors.size();
  device_record r;
  auto str = [&](const char* name, std::string& out) {
    const auto it = j.find(name);
    if (it == j.end()) {
      errors.push_back(prefix + name + ": missing");
    } else if (!it->is_string()) {
      errors.push_back(prefix + name + ": expected a string, got " + type_name(*it));
    } else {
      out = it->get<std::string>();
    }
  };
  str("Udid", r.udid);
  str("SerialNumber", r.serial);
  str("Platform", r.platform);
  str("EnrollmentStatus", r.enrollment_status);
  str("ComplianceStatus", r.compliance_status);
  if (const auto it = j.find("CompromisedStatus"); it == j.end()) {
    errors.push_back(prefix + "CompromisedStatus: missing");
  } else if (!it->is_boolean()) {
    errors.push_back(prefix + "CompromisedStatus: expected true or false, got " + type_name(*it));
  } else {
    r.compromised = it->get<bool>();
  }
  // Optional text fields: absent or null is empty; another type is an error.
  const auto optional_text = [&](const char* key, std::string& out) {
    if (const auto it = j.find(key); it != j.end() && !it->is_null()) {
      if (!it->is_string()) {
        errors.push_back(prefix + key + ": expected a string, got " + type_name(*it));
      } else {
        out = it->get<std::string>();
      }
    }
  };
  optional_text("UserEmailAddress", r.user_email);
  optional_text("UserName", r.user_name);
  if (const auto it = j.find("Id"); it != j.end() && !it->is_null()) {
    const auto v = it->is_object() ? it->find("Value") : it->end();
    if (!it->is_object() || v == it->end() || !v->is_number_integer()) {
      errors.push_back(prefix + "Id: expected {\"Value\": <integer>}");
    } else {
      r.device_id = std::to_string(v->get<std::int64_t>());
    }
  }
  if (r.udid.empty() && r.serial.empty() && errors.size() == before) {
    errors.push_back(prefix + "Udid, SerialNumber: both empty; a device needs one of them");
  }
  if (errors.size() != before) return std::nullopt;
  return r;
}

namespace {

/// YAML → JSON with the YAML core schema for plain scalars (true/false, null, integers);
/// quoted scalars stay strings, so `Udid: "0123"` keeps its leading zero. Recursive: only for
/// a tree read_yaml has bounded (depth, and nodes and text with every alias followed).
json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& e : n)
        a.push_back(yaml_to_json(e));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n)
        o[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return o;
    }
    case YAML::NodeType::Scalar: {
      const auto& s = n.Scalar();
      if (n.Tag() == "?") {
        if (s == "true" || s == "True" || s == "TRUE") return true;
        if (s == "false" || s == "False" || s == "FALSE") return false;
        if (s == "null" || s == "~" || s == "Null" || s == "NULL") return nullptr;
        if (!s.empty() && s.find_first_not_of("-0123456789") == std::string::npos &&
            (s.size() < 2 || s[0] != '0') && s.size() < 19) {
          try {
            return std::stoll(s);
          } catch (const std::exception&) {
            return s;
          }
        }
      }
      return s;
    }
    default:
      return nullptr;
  }
}

}  // namespace

}  // namespace detail

record_result parse_device_record(std::string_view text) {
  record_result out;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    out.error = "not valid JSON";
    return out;
  }
  std::vector<std::string> errors;
  out.record = detail::record_from_json(j, "", errors);
  if (!out.record) {
    out.error = errors.empty() ? std::string("invalid device record") : errors.front();
    for (std::size_t i = 1; i < errors.size(); ++i)
      out.error += "; " + errors[i];
  }
  return out;
}

inventory_result parse_inventory(std::string_view text, std::string_view origin) {
  inventory_result out;
  const std::string where(origin);
  const auto& limits = support::inventory_yaml_limits;
  if (text.size() > limits.max_bytes) {
    out.errors.push_back(where + ": the inventory is " + std::to_string(text.size()) +
                         " bytes, more than the " + support::size_text(limits.max_bytes) +
                         " allowed; remove devices no gateway needs");
    return out;
  }
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) {
    // YAML aliases are shared by yaml-cpp but copied by the conversion: read_yaml bounds what
    // the conversion can make (a billion-laughs file is refused here, located, not converted).
    auto y = support::read_yaml(text, where, "inventory", limits);
    if (!y) {
      auto e = *y.error;
      constexpr std::string_view syntax = "YAML syntax error: ";
      if (e.message.starts_with(syntax))
        e.message = "neither valid JSON nor YAML: " + e.message.substr(syntax.size());
      out.errors.push_back(e.to_string());
      return out;
    }
    try {
      doc = detail::yaml_to_json(y.root);
    } catch (const YAML::Exception& e) {
      // A key that is not a scalar (`? [a, b]: x`) cannot be a JSON member name.
      const support::yaml_error located{where, e.mark.is_null() ? 0 : e.mark.line + 1,
                                        e.mark.is_null() ? 0 : e.mark.column + 1,
                                        "neither valid JSON nor YAML: " + e.msg};
      out.errors.push_back(located.to_string());
      return out;
    }
  }
  std::string list_name = "devices";
  const json* list = &doc;
  if (doc.is_object() && doc.contains("Devices")) {
    list = &doc["Devices"];
    list_name = "Devices";
  }
  if (!list->is_array()) {
    out.errors.push_back(where +
                         ": expected an array of device records (or {\"Devices\": [...]}), got " +
                         list->type_name());
    return out;
  }
  std::set<std::string> udids;
  std::set<std::string> serials;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const auto item = list_name + "[" + std::to_string(i) + "]";
    std::vector<std::string> errors;
    auto r = detail::record_from_json((*list)[i], item, errors);
    for (auto& e : errors)
      out.errors.push_back(where + ": " + e);
    if (!r) continue;
    if (!r->udid.empty() && !udids.insert(detail::lower(r->udid)).second) {
      out.errors.push_back(where + ": " + item + ".Udid: '" + r->udid + "' appears twice");
    }
    if (!r->serial.empty() && !serials.insert(detail::lower(r->serial)).second) {
      out.errors.push_back(where + ": " + item + ".SerialNumber: '" + r->serial +
                           "' appears twice");
    }
    out.devices.push_back(std::move(*r));
  }
  if (!out.ok()) out.devices.clear();
  return out;
}

namespace {

/// Event types are compared on their letters and digits only, without case: the current
/// spelling (`Break MDM Confirmed`) and the legacy AirWatch one (`BreakMDMConfirmed`,
/// `COMPROMISEDSTATUSCHANGED`) are the same type. A substring match errs towards re-reading:
/// an extra re-read costs one UEM request, a missed one leaves a revoked device connected.
bool relevant_event(std::string_view type) {
  std::string t;
  for (unsigned char c : type) {
    if (std::isalnum(c)) t += static_cast<char>(std::tolower(c));
  }
  // compliance / compromised status; (MDM) enrollment complete, unenrollment; Break MDM
  // Confirmed (the device left management); device delete; (enterprise) wipe requested.
  for (std::string_view w : {"compliance", "compromised", "enrol", "breakmdm", "wipe", "delete"}) {
    if (t.find(w) != std::string::npos) return true;
  }
  return false;
}

/// Legacy AirWatch payloads serialise a byte array as its .NET type name instead of the value
/// (`"Udid": "System.Byte[]"`, seen with `BreakMDMConfirmed`): that is no identifier.
bool placeholder_id(std::string_view v) {
  return detail::iequals(v, "System.Byte[]");
}

/// Length-prefixed fields, so no choice of field values can make two tuples hash alike.
void add_field(std::string& out, std::string_view v) {
  out += std::to_string(v.size());
  out += ':';
  out += v;
  out += ',';
}

/// Identifiers reach URLs and logs: printable ASCII without spaces, bounded.
bool sane_id(std::string_view v) {
  if (v.size() > 256) return false;
  return std::all_of(v.begin(), v.end(), [](unsigned char c) { return c > ' ' && c < 0x7f; });
}

}  // namespace

webhook_result parse_webhook(std::string_view body) {
  webhook_result out;
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) {
    out.error = "body is not valid JSON";
    return out;
  }
  if (!j.is_object()) {
    out.error = std::string("expected a JSON object, got ") + j.type_name();
    return out;
  }
  webhook_event ev;
  // Text or number (the UEM sends numbers; some relays send strings). null = absent.
  auto id_field = [&](const char* name, std::string& to) -> bool {
    const auto it = j.find(name);
    if (it == j.end() || it->is_null()) return true;
    if (it->is_string()) {
      to = it->get<std::string>();
    } else if (it->is_number_integer()) {
      to = std::to_string(it->get<std::int64_t>());
    } else {
      out.error = std::string(name) + ": expected a string or an integer, got " + it->type_name();
      return false;
    }
    if (!sane_id(to)) {
      out.error = std::string(name) + ": not a printable identifier";
      return false;
    }
    return true;
  };
  auto str_field = [&](const char* name, std::string& to) -> bool {
    const auto it = j.find(name);
    if (it == j.end() || it->is_null()) return true;
    if (!it->is_string()) {
      out.error = std::string(name) + ": expected a string, got " + it->type_name();
      return false;
    }
    to = it->get<std::string>();
    if (!sane_id(to)) {
      out.error = std::string(name) + ": not a printable identifier";
      return false;
    }
    return true;
  };
  std::string udid, serial, device_id;
  if (!id_field("EventId", ev.event_id) || !str_field("Udid", udid) ||
      !str_field("SerialNumber", serial) || !id_field("DeviceId", device_id)) {
    return out;
  }
  // EventTime only feeds the event's identity (and is never logged), so any text will do:
  // ISO-8601 with 5-7 fractional digits today, `/Date(ms)/` in legacy payloads.
  if (const auto it = j.find("EventTime"); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      ev.event_time = it->get<std::string>();
    } else if (it->is_number_integer()) {
      ev.event_time = std::to_string(it->get<std::int64_t>());
    } else {
      out.error = std::string("EventTime: expected a string or a number, got ") + it->type_name();
      return out;
    }
    if (ev.event_time.size() > 256) {
      out.error = "EventTime: longer than 256 bytes";
      return out;
    }
  }
  if (const auto it = j.find("EventType"); it == j.end() || !it->is_string()) {
    out.error = it == j.end() ? "EventType: missing"
                              : std::string("EventType: expected a string, got ") + it->type_name();
    return out;
  } else {
    ev.event_type = it->get<std::string>();
  }
  if (!udid.empty() && !placeholder_id(udid)) {
    ev.key = device_key::udid(udid);
  } else if (!serial.empty()) {
    ev.key = device_key::serial(serial);
  } else if (!device_id.empty()) {
    if (device_id.find_first_not_of("0123456789") != std::string::npos) {
      out.error = "DeviceId: expected digits";
      return out;
    }
    ev.key = device_key::device_id(device_id);
  } else {
    out.error = "no device identifier: Udid, SerialNumber and DeviceId are all empty";
    return out;
  }
  ev.relevant = relevant_event(ev.event_type);
  // EventId names the kind of event, not the event (domain.md §3): the identity adds the
  // device and the time. Without a time, only a byte-identical body is the same event.
  std::string id;
  if (!ev.event_time.empty()) {
    id = "event:";
    for (std::string_view f :
         {std::string_view(ev.event_id), std::string_view(ev.event_type), std::string_view(udid),
          std::string_view(serial), std::string_view(device_id), std::string_view(ev.event_time)}) {
      add_field(id, f);
    }
  } else {
    id = "body:";
    id += body;
  }
  ev.identity = detail::sha256_hex(id);
  out.event = std::move(ev);
  return out;
}

}  // namespace tunnelgate::uem
