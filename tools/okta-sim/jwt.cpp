// RS256/ES256 signature check with the OpenSSL 3 EVP API.
#include "okta-sim/jwt.hpp"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/pem.h>

#include <cstdio>
#include <stdexcept>

#include "sim-common/sim_common.hpp"

namespace okta {

namespace {

struct md_ctx_free {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct sig_free {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};
struct bn_free {
  void operator()(BIGNUM* b) const { BN_free(b); }
};

/// JOSE ES256 signature (r||s, 32 bytes each) to the DER ECDSA-Sig-Value EVP expects.
std::string es256_to_der(std::string_view raw) {
  if (raw.size() != 64) return {};
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  std::unique_ptr<BIGNUM, bn_free> r(BN_bin2bn(p, 32, nullptr));
  std::unique_ptr<BIGNUM, bn_free> s(BN_bin2bn(p + 32, 32, nullptr));
  std::unique_ptr<ECDSA_SIG, sig_free> sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return {};
  (void)r.release();  // owned by sig now
  (void)s.release();
  const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return {};
  std::string der(static_cast<std::size_t>(len), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &out) != len) return {};
  return der;
}

bool verify_with(EVP_PKEY* key, std::string_view data, std::string_view sig) {
  std::unique_ptr<EVP_MD_CTX, md_ctx_free> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
}

bool is_p256(EVP_PKEY* key) {
  char name[64] = {};
  std::size_t len = 0;
  return EVP_PKEY_get_group_name(key, name, sizeof name, &len) == 1 &&
         std::string_view(name, len) == "prime256v1";
}

}  // namespace

key_ptr load_public_key(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error("cannot read " + path);
  EVP_PKEY* key = PEM_read_PUBKEY(f, nullptr, nullptr, nullptr);
  (void)std::fclose(f);
  if (key == nullptr) throw std::runtime_error(path + ": not a PEM public key");
  key_ptr out(key, EVP_PKEY_free);
  const int id = EVP_PKEY_get_base_id(key);
  if (id != EVP_PKEY_RSA && !(id == EVP_PKEY_EC && is_p256(key))) {
    throw std::runtime_error(path + ": only RSA and EC P-256 public keys are supported");
  }
  return out;
}

std::optional<jws> parse_jws(std::string_view token) {
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  const auto header_text = sim::base64url_decode(token.substr(0, dot1));
  const auto claims_text = sim::base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto sig = sim::base64url_decode(token.substr(dot2 + 1));
  if (!header_text || !claims_text || !sig) return std::nullopt;
  jws out;
  out.header = nlohmann::json::parse(*header_text, nullptr, false);
  out.claims = nlohmann::json::parse(*claims_text, nullptr, false);
  if (!out.header.is_object() || !out.claims.is_object()) return std::nullopt;
  out.signing_input = std::string(token.substr(0, dot2));
  out.signature = std::move(*sig);
  return out;
}

bool verify_signature(std::string_view alg, EVP_PKEY* key, std::string_view input,
                      std::string_view signature) {
  if (alg == "RS256") {
    return EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA && verify_with(key, input, signature);
  }
  if (alg == "ES256") {
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC || !is_p256(key)) return false;
    const auto der = es256_to_der(signature);
    return !der.empty() && verify_with(key, input, der);
  }
  return false;
}

std::string verify_jws(std::string_view token, const std::vector<key_ptr>& keys,
                       nlohmann::json& claims) {
  auto t = parse_jws(token);
  if (!t) return "The client_assertion token is malformed.";
  const auto alg = t->header.contains("alg") && t->header["alg"].is_string()
                       ? t->header["alg"].get<std::string>()
                       : std::string();
  if (alg != "RS256" && alg != "ES256") {
    return "The client_assertion token has an unsupported alg '" + alg + "'.";
  }
  for (const auto& k : keys) {
    if (verify_signature(alg, k.get(), t->signing_input, t->signature)) {
      claims = std::move(t->claims);
      return {};
    }
  }
  return "The client_assertion signature is invalid.";
}

}  // namespace okta
