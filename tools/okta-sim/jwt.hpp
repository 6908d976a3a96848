// Signature check of a compact JWS (RS256 or ES256) for okta-sim's private_key_jwt client
// authentication. Pure: no I/O, no clock; the claims are checked by the caller.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace okta {

using key_ptr = std::shared_ptr<EVP_PKEY>;

/// Loads a PEM public key (SubjectPublicKeyInfo): RSA, or EC on P-256. Throws on error.
key_ptr load_public_key(const std::string& path);

/// Verifies `token` ("header.payload.signature", base64url) against any of `keys` whose type
/// matches the header's `alg` (RS256: RSA PKCS#1 v1.5 + SHA-256; ES256: ECDSA P-256 + SHA-256
/// with the JOSE signature encoding, raw r||s of 64 bytes). Any other alg is refused. Returns
/// the empty string and sets `claims` (an object) when valid; else why not, in words fit for an
/// OAuth error_description.
std::string verify_jws(std::string_view token, const std::vector<key_ptr>& keys,
                       nlohmann::json& claims);

}  // namespace okta
