// JSON Web Key Sets (RFC 7517) for okta-sim's SSF receiver: RSA and EC P-256 public keys from
// their JWK members, and a small blocking HTTP(S) GET that fetches a transmitter's JWKS from a
// loopback address only.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "okta-sim/jwt.hpp"

namespace okta {

/// One key of a JWKS. Either `key` is set, or `error` says why the member could not be used
/// (so a SET naming that kid is refused with the reason rather than "unknown kid").
struct jwk {
  key_ptr key;
  std::string alg;  ///< the JWK's "alg" when present ("RS256", "ES256"), else empty
  std::string error;
};

/// Parses a JWKS document `{"keys":[…]}`: kty RSA (n, e) and kty EC with crv P-256 (x, y, 32
/// bytes each, a point on the curve), each with a kid; `use`, when present, must be "sig".
/// Keyed by kid. Throws std::runtime_error when the document itself is not a JWKS.
std::map<std::string, jwk> parse_jwks(std::string_view text);

/// The parts of an http:// or https:// URL whose host is an IPv4 address in 127.0.0.0/8, [::1]
/// or `localhost`. Throws std::runtime_error saying what is wrong otherwise.
struct loopback_url {
  bool tls = false;
  std::string host;  ///< without brackets
  std::string port;  ///< "80"/"443" when not given
  std::string target;
};
loopback_url parse_loopback_url(const std::string& url);

/// GET `url` and return the body of a 200 answer. HTTPS verifies the server against `ca_file`
/// (PEM; the system store when empty) and the URL's host. Connects only to loopback addresses
/// (`localhost` must resolve to one); the whole exchange is bounded by 5 s; the body by 1 MiB.
/// Throws std::runtime_error naming the URL and the failure.
std::string fetch_loopback(const std::string& url, const std::string& ca_file);

}  // namespace okta
