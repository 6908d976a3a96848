// The SET checks, in the order a receiver can make them: transport (content type), form (three
// parts, header), key and signature, then the claims (iss, aud, iat, jti, events), and the
// replay check last so a refused SET does not use up its jti.
#include "okta-sim/ssf.hpp"

#include <stdexcept>

#include "sim-common/sim_common.hpp"

namespace okta {

namespace {

using nlohmann::json;

constexpr std::int64_t skew_s = 60;

std::string str(const json& j, const char* k) {
  const auto it = j.find(k);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

/// A Subject Identifier (RFC 9493 section 3) of a simple format: empty when fine, else why not.
/// Formats it does not know are accepted as long as `format` is a string.
std::string check_identifier(const json& id, const std::string& where) {
  if (!id.is_object()) return where + " must be an object";
  const auto format = str(id, "format");
  if (format.empty()) return where + ".format is missing";
  static const std::map<std::string, std::vector<const char*>> needs{
      {"email", {"email"}}, {"iss_sub", {"iss", "sub"}},
      {"opaque", {"id"}},   {"phone_number", {"phone_number"}},
      {"account", {"uri"}}, {"uri", {"uri"}},
      {"did", {"url"}}};
  const auto it = needs.find(format);
  if (it == needs.end()) return {};
  for (const char* m : it->second) {
    if (str(id, m).empty()) {
      return where + " of format \"" + format + "\" needs a string member \"" + m + "\"";
    }
  }
  return {};
}

/// The members of a complex subject (user, device, ...): at least one of user/device.
std::string check_members(const json& s, const std::string& where) {
  if (!s.contains("user") && !s.contains("device")) {
    return where + " names neither a user nor a device";
  }
  for (const char* m :
       {"user", "device", "session", "tenant", "application", "org_unit", "group"}) {
    if (!s.contains(m)) continue;
    if (auto bad = check_identifier(s[m], where + "." + m); !bad.empty()) return bad;
  }
  return {};
}

}  // namespace

ssf_receiver::ssf_receiver(ssf_options o, std::string audience)
    : opt_(std::move(o)), audience_(std::move(audience)) {
  if (!enabled()) {
    if (!opt_.jwks_url.empty() || !opt_.jwks_file.empty()) {
      throw std::runtime_error("--ssf-jwks-url/--ssf-jwks-file need --ssf-issuer");
    }
    return;
  }
  if (opt_.jwks_url.empty() == opt_.jwks_file.empty()) {
    throw std::runtime_error(
        "--ssf-issuer needs exactly one of --ssf-jwks-url and --ssf-jwks-file");
  }
  if (!opt_.jwks_url.empty()) (void)parse_loopback_url(opt_.jwks_url);  // fail at start
  if (!opt_.jwks_file.empty()) keys_ = parse_jwks(sim::read_file(opt_.jwks_file));
}

void ssf_receiver::clear() {
  accepted_ = json::array();
  rejected_ = json::array();
}

ssf_receiver::answer ssf_receiver::reject(const std::string& err, const std::string& description) {
  rejected_.push_back({{"err", err}, {"description", description}});
  return {400, {{"err", err}, {"description", description}}};
}

const jwk* ssf_receiver::find_key(const std::string& kid, std::string& why) {
  auto it = keys_.find(kid);
  if (it == keys_.end()) {
    // Unknown kid: the transmitter may have rotated its keys, so read the JWKS again.
    const auto source = opt_.jwks_url.empty() ? opt_.jwks_file : opt_.jwks_url;
    try {
      keys_ = parse_jwks(opt_.jwks_url.empty() ? sim::read_file(opt_.jwks_file)
                                               : fetch_loopback(opt_.jwks_url, opt_.ca_file));
    } catch (const std::exception& e) {
      why = "kid \"" + kid + "\" is not known and the JWKS could not be read again: " + e.what();
      return nullptr;
    }
    it = keys_.find(kid);
    if (it == keys_.end()) {
      why = "kid \"" + kid + "\" is not in the transmitter's JWKS (" + source + ")";
      return nullptr;
    }
  }
  if (!it->second.key) {
    why = "the JWKS key with kid \"" + kid + "\" is unusable: " + it->second.error;
    return nullptr;
  }
  return &it->second;
}

ssf_receiver::answer ssf_receiver::receive(std::string_view content_type, std::string_view body,
                                           std::int64_t now_ms) {
  if (!enabled()) {
    return reject("invalid_issuer",
                  "no security events provider is configured (start okta-sim with --ssf-issuer "
                  "and --ssf-jwks-url or --ssf-jwks-file)");
  }
  auto type = std::string(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && type.back() == ' ')
    type.pop_back();
  if (type != "application/secevent+jwt") {
    return reject("invalid_request",
                  "Content-Type must be application/secevent+jwt (RFC 8935 "
                  "section 2), got \"" +
                      std::string(content_type) + "\"");
  }
  std::string token(body);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
    token.pop_back();
  auto set = parse_jws(token);
  if (!set) {
    return reject("invalid_request",
                  "the body is not a compact JWS: expected three base64url parts, the first two "
                  "JSON objects");
  }
  const auto& h = set->header;
  const auto& c = set->claims;
  if (str(h, "typ") != "secevent+jwt") {
    return reject("invalid_request",
                  "the JWS header's typ must be \"secevent+jwt\" (RFC 8417 "
                  "section 2.3), got " +
                      (h.contains("typ") ? h["typ"].dump() : "none"));
  }
  const auto alg = str(h, "alg");
  if (alg != "RS256" && alg != "ES256") {
    return reject("invalid_request", "the JWS header's alg must be RS256 or ES256, got " +
                                         (h.contains("alg") ? h["alg"].dump() : "none"));
  }
  const auto kid = str(h, "kid");
  if (kid.empty()) return reject("invalid_key", "the JWS header has no kid");
  std::string why;
  const jwk* key = find_key(kid, why);
  if (key == nullptr) return reject("invalid_key", why);
  if (!key->alg.empty() && key->alg != alg) {
    return reject("invalid_key", "the JWKS key \"" + kid + "\" is for alg " + key->alg +
                                     ", the SET is signed with " + alg);
  }
  if (!verify_signature(alg, key->key.get(), set->signing_input, set->signature)) {
    return reject("invalid_key", "the " + alg + " signature does not verify with key \"" + kid +
                                     "\" of the transmitter's JWKS");
  }
  if (str(c, "iss") != opt_.issuer) {
    return reject("invalid_issuer", "iss " + (c.contains("iss") ? c["iss"].dump() : "(none)") +
                                        " is not the configured transmitter \"" + opt_.issuer +
                                        "\"");
  }
  bool aud_ok = false;
  const auto aud_match = [&](const json& a) {
    return a.is_string() && (a == audience_ || a == audience_ + "/");
  };
  if (c.contains("aud") && c["aud"].is_array()) {
    for (const auto& a : c["aud"])
      aud_ok = aud_ok || aud_match(a);
  } else if (c.contains("aud")) {
    aud_ok = aud_match(c["aud"]);
  }
  if (!aud_ok) {
    return reject("invalid_audience", "aud " + (c.contains("aud") ? c["aud"].dump() : "(none)") +
                                          " does not name this org, \"" + audience_ + "\"");
  }
  const auto now_s = now_ms / 1000;
  if (!c.contains("iat") || !c["iat"].is_number()) {
    return reject("invalid_request", "iat is missing or not a number (RFC 8417 section 2.2)");
  }
  if (c["iat"].get<double>() > static_cast<double>(now_s + skew_s)) {
    return reject("invalid_request", "iat " + c["iat"].dump() + " is in the future (now " +
                                         std::to_string(now_s) + ", 60 s skew allowed)");
  }
  if (c.contains("exp") &&
      (!c["exp"].is_number() || c["exp"].get<double>() < static_cast<double>(now_s - skew_s))) {
    return reject("invalid_request", "exp " + c["exp"].dump() + " has passed");
  }
  const auto jti = str(c, "jti");
  if (jti.empty()) return reject("invalid_request", "jti is missing (RFC 8417 section 2.2)");
  if (!c.contains("events") || !c["events"].is_object() || c["events"].size() != 1) {
    return reject("invalid_request",
                  "events must be an object with exactly one member (one event per SET)");
  }
  const auto& events = c["events"];
  const std::string event_type = events.begin().key();
  const json& event = events.begin().value();
  if (event_type != device_compliance_change) {
    return reject("invalid_request", "event type \"" + event_type +
                                         "\" is not supported by okta-sim (only " +
                                         device_compliance_change + ")");
  }
  if (!event.is_object()) return reject("invalid_request", "the event must be an object");
  for (const char* k : {"current_status", "previous_status"}) {
    const auto v = str(event, k);
    if (v != "compliant" && v != "not-compliant") {
      return reject("invalid_request", std::string(k) +
                                           " must be \"compliant\" or "
                                           "\"not-compliant\", got " +
                                           (event.contains(k) ? event[k].dump() : "nothing"));
    }
  }
  if (event.contains("event_timestamp")) {
    const auto& ts = event["event_timestamp"];
    if (!ts.is_number()) return reject("invalid_request", "event_timestamp must be a number");
    if (ts.get<double>() > static_cast<double>(now_s + skew_s)) {
      return reject("invalid_request",
                    "event_timestamp " + ts.dump() + " is in the future: it is in seconds, not ms");
    }
  }
  std::string format;
  json subject;
  if (event.contains("subject")) {  // Okta's documented shape (CAEP drafts)
    format = "event";
    subject = event["subject"];
    if (!subject.is_object())
      return reject("invalid_request", "events[…].subject must be an object");
    if (!event.contains("event_timestamp")) {
      return reject("invalid_request",
                    "event_timestamp (seconds) is required beside the event's subject");
    }
    if (auto bad = subject.contains("format") ? check_identifier(subject, "subject")
                                              : check_members(subject, "subject");
        !bad.empty()) {
      return reject("invalid_request", bad);
    }
  } else if (c.contains("sub_id")) {  // CAEP 1.0 Final
    format = "sub_id";
    subject = c["sub_id"];
    if (!subject.is_object() || str(subject, "format") != "complex") {
      return reject("invalid_request",
                    "sub_id must be a subject identifier of format \"complex\" with a device "
                    "and/or a user");
    }
    if (auto bad = check_members(subject, "sub_id"); !bad.empty()) {
      return reject("invalid_request", bad);
    }
  } else {
    return reject("invalid_request",
                  "the SET has no subject: neither a top-level sub_id nor a subject in the event");
  }
  if (!seen_jti_.insert(jti).second) {
    return reject("invalid_request", "jti \"" + jti + "\" was already received (replay)");
  }
  accepted_.push_back({{"received_ms", now_ms},
                       {"kid", kid},
                       {"alg", alg},
                       {"claims", c},
                       {"event_type", event_type},
                       {"current_status", event["current_status"]},
                       {"previous_status", event["previous_status"]},
                       {"subject_format", format},
                       {"subject", subject}});
  return {202, nullptr};
}

}  // namespace okta
