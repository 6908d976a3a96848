// Signature check of a compact JWS (RS256 or ES256) for okta-sim's private_key_jwt client
// authentication and its SSF receiver. Pure: no I/O, no clock; the claims are checked by the
// caller.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace okta {

using key_ptr = std::shared_ptr<EVP_PKEY>;

/// Loads a PEM public key (SubjectPublicKeyInfo): RSA, or EC on P-256. Throws on error.
key_ptr load_public_key(const std::string& path);

/// A compact JWS split at its dots and decoded. Nothing is verified yet.
struct jws {
  // Initialised so the implicit constructor is not noexcept (json's default one claims to be).
  nlohmann::json header = nlohmann::json::object();  ///< an object
  nlohmann::json claims = nlohmann::json::object();  ///< an object
  std::string signing_input;                         ///< "header.payload" as sent
  std::string signature;                             ///< raw bytes (ES256: r||s as sent)
};

/// Splits and decodes `token`; nullopt unless it has exactly three base64url parts whose first
/// two are JSON objects.
std::optional<jws> parse_jws(std::string_view token);

/// Whether `signature` over `input` verifies with `key` under `alg`: "RS256" (an RSA key) or
/// "ES256" (an EC P-256 key, JOSE r||s signature). Any other alg or a key of the other type is
/// false.
bool verify_signature(std::string_view alg, EVP_PKEY* key, std::string_view input,
                      std::string_view signature);

/// Verifies `token` ("header.payload.signature", base64url) against any of `keys` whose type
/// matches the header's `alg` (RS256: RSA PKCS#1 v1.5 + SHA-256; ES256: ECDSA P-256 + SHA-256
/// with the JOSE signature encoding, raw r||s of 64 bytes). Any other alg is refused. Returns
/// the empty string and sets `claims` (an object) when valid; else why not, in words fit for an
/// OAuth error_description.
std::string verify_jws(std::string_view token, const std::vector<key_ptr>& keys,
                       nlohmann::json& claims);

}  // namespace okta
