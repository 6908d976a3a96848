// JWS signing with OpenSSL 3 (RS256 for RSA keys, ES256 for P-256 keys) and the public JWKS of
// a key, shared by the OAuth `private_key_jwt` client assertion (RFC 7523) and the CAEP
// Security Event Tokens (caep.cpp).
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <memory>

#include "idp/internal.hpp"
#include "support/support.hpp"

namespace tunnelgate::idp {

namespace {

template <class T, void (*F)(T*)>
struct deleter {
  void operator()(T* p) const noexcept { F(p); }
};
using bio_ptr = std::unique_ptr<BIO, deleter<BIO, BIO_free_all>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, deleter<EVP_PKEY, EVP_PKEY_free>>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using ecdsa_ptr = std::unique_ptr<ECDSA_SIG, deleter<ECDSA_SIG, ECDSA_SIG_free>>;

/// Refuses to prompt for a passphrase on the terminal: encrypted keys are not supported.
int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) {
  return -1;
}

std::string sign(EVP_PKEY* key, std::string_view input) {
  md_ctx_ptr ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, data, input.size()) != 1) {
    throw error(errc::bad_key, "cannot sign with the private key");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, data,
                     input.size()) != 1) {
    throw error(errc::bad_key, "cannot sign with the private key");
  }
  sig.resize(len);
  return sig;
}

/// OpenSSL gives ECDSA signatures as DER SEQUENCE{r, s}; JWS wants r||s, 32 bytes each.
std::string der_to_raw_p256(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ecdsa_ptr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) throw error(errc::bad_key, "OpenSSL returned an unreadable ECDSA signature");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string raw(64, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(r, out, 32) != 32 || BN_bn2binpad(s, out + 32, 32) != 32) {
    throw error(errc::bad_key, "OpenSSL returned an ECDSA signature too long for P-256");
  }
  return raw;
}

/// A private key checked for JWS use, with its algorithm: RS256 (RSA >= 2048) or ES256 (P-256).
struct jws_key {
  pkey_ptr pkey;
  std::string alg;
};

jws_key load_key(std::string_view private_key_pem) {
  bio_ptr bio(BIO_new_mem_buf(private_key_pem.data(), static_cast<int>(private_key_pem.size())));
  pkey_ptr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr) : nullptr);
  if (!key) {
    throw error(errc::bad_key,
                "not an unencrypted PEM private key (RSA or EC P-256; encrypted keys are not "
                "supported)");
  }
  if (EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_RSA) {
    if (EVP_PKEY_get_bits(key.get()) < 2048) {
      throw error(errc::bad_key, "the RSA key has " + std::to_string(EVP_PKEY_get_bits(key.get())) +
                                     " bits; RS256 needs at least 2048");
    }
    return {std::move(key), "RS256"};
  }
  if (EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_EC) {
    char group[64] = {};
    std::size_t glen = 0;
    if (EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &glen) != 1 ||
        std::string_view(group, glen) != "prime256v1") {
      throw error(errc::bad_key, std::string("the EC key is on curve ") + (glen > 0 ? group : "?") +
                                     "; ES256 needs P-256 (prime256v1)");
    }
    return {std::move(key), "ES256"};
  }
  throw error(errc::bad_key, "the private key is neither RSA nor EC P-256");
}

/// A big-number parameter of `key` as unsigned big-endian bytes, left-padded to `width` when
/// `width` > 0 (EC coordinates), minimal otherwise (RSA n and e).
std::string bn_param(const EVP_PKEY* key, const char* name, int width) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) {
    throw error(errc::bad_key, std::string("cannot read the public key parameter ") + name);
  }
  const std::unique_ptr<BIGNUM, deleter<BIGNUM, BN_free>> bn(raw);
  const int size = width > 0 ? width : BN_num_bytes(bn.get());
  std::string out(static_cast<std::size_t>(size), '\0');
  if (BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()), size) != size) {
    throw error(errc::bad_key, std::string("the public key parameter ") + name + " is too long");
  }
  return out;
}

}  // namespace

std::string base64url_encode(std::string_view data) {
  return support::base64url_encode(data);
}

std::optional<std::string> base64url_decode(std::string_view text) {
  return support::base64url_decode(text);
}

namespace detail {

std::string random_id() {
  unsigned char rnd[16];
  if (RAND_bytes(rnd, sizeof rnd) != 1) throw error(errc::bad_key, "OpenSSL has no random bytes");
  static constexpr char hex[] = "0123456789abcdef";
  std::string id;
  for (const unsigned char c : rnd) {
    id += hex[c >> 4];
    id += hex[c & 15];
  }
  return id;
}

std::string sign_jws(std::string_view private_key_pem, const json& header_fields,
                     const json& claims) {
  const auto key = load_key(private_key_pem);
  json header = {{"alg", key.alg}};
  for (const auto& [name, value] : header_fields.items())
    header[name] = value;
  const auto input = base64url_encode(header.dump()) + "." + base64url_encode(claims.dump());
  auto sig = sign(key.pkey.get(), input);
  if (key.alg == "ES256") sig = der_to_raw_p256(sig);
  return input + "." + base64url_encode(sig);
}

}  // namespace detail

std::string make_client_assertion(std::string_view private_key_pem,
                                  const assertion_claims& claims) {
  if (claims.client_id.empty() || claims.audience.empty()) {
    throw error(errc::bad_argument, "the client assertion needs a client id and an audience");
  }
  const auto iat =
      std::chrono::duration_cast<std::chrono::seconds>(claims.issued_at.time_since_epoch()).count();
  detail::json header = {{"typ", "JWT"}};
  if (!claims.key_id.empty()) header["kid"] = claims.key_id;
  const detail::json payload = {{"iss", claims.client_id},
                                {"sub", claims.client_id},
                                {"aud", claims.audience},
                                {"iat", iat},
                                {"exp", iat + claims.lifetime.count()},
                                {"jti", detail::random_id()}};
  return detail::sign_jws(private_key_pem, header, payload);
}

std::string make_jwks(std::string_view private_key_pem, std::string_view key_id) {
  if (key_id.empty()) throw error(errc::bad_argument, "a JWKS needs a key id (kid)");
  const auto key = load_key(private_key_pem);
  detail::json jwk = {{"kty", key.alg == "RS256" ? "RSA" : "EC"},
                      {"kid", std::string(key_id)},
                      {"use", "sig"},
                      {"alg", key.alg}};
  if (key.alg == "RS256") {
    jwk["n"] = base64url_encode(bn_param(key.pkey.get(), OSSL_PKEY_PARAM_RSA_N, 0));
    jwk["e"] = base64url_encode(bn_param(key.pkey.get(), OSSL_PKEY_PARAM_RSA_E, 0));
  } else {
    // RFC 7518 §6.2.1.2: x and y are exactly the coordinate size (32 bytes for P-256).
    jwk["crv"] = "P-256";
    jwk["x"] = base64url_encode(bn_param(key.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32));
    jwk["y"] = base64url_encode(bn_param(key.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32));
  }
  return detail::json{{"keys", detail::json::array({jwk})}}.dump();
}

}  // namespace tunnelgate::idp
