// okta-sim's Shared Signals receiver: POST /security/api/v1/security-events takes one Security
// Event Token (RFC 8417) pushed as application/secevent+jwt (RFC 8935) and checks it the way a
// receiver must, then records it for the tests. Only the CAEP device-compliance-change event is
// understood. Runs on the server's thread; a JWKS fetch blocks it for at most 5 s.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>

#include "okta-sim/jwks.hpp"

namespace okta {

inline constexpr auto device_compliance_change =
    "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change";

struct ssf_options {
  std::string issuer;     ///< the transmitter's iss; empty = receiver off
  std::string jwks_url;   ///< http(s) on loopback; or
  std::string jwks_file;  ///< a local JWKS file (exactly one of the two)
  std::string ca_file;    ///< verifies an https jwks_url
};

class ssf_receiver {
 public:
  /// `audience`: the org URL a SET must be addressed to. Throws on inconsistent options.
  ssf_receiver(ssf_options o, std::string audience);

  bool enabled() const { return !opt_.issuer.empty(); }

  struct answer {
    unsigned status = 202;  ///< 202 (empty body) or 400
    nlohmann::json body;    ///< RFC 8935 {"err","description"} on 400
  };
  /// Checks and records one pushed SET. `now_ms`: epoch milliseconds.
  answer receive(std::string_view content_type, std::string_view body, std::int64_t now_ms);

  const nlohmann::json& accepted() const { return accepted_; }
  const nlohmann::json& rejected() const { return rejected_; }
  /// Forgets accepted and rejected SETs (used jtis stay used).
  void clear();

 private:
  answer reject(const std::string& err, const std::string& description);
  /// The key for `kid`, (re)loading the JWKS when the kid is not known yet; nullptr with `why`.
  const jwk* find_key(const std::string& kid, std::string& why);

  ssf_options opt_;
  std::string audience_;
  std::map<std::string, jwk> keys_;
  std::set<std::string> seen_jti_;
  nlohmann::json accepted_ = nlohmann::json::array();
  nlohmann::json rejected_ = nlohmann::json::array();
};

}  // namespace okta
