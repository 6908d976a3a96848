// idp private_key_jwt: the assertion's header and claims, and its signature checked with
// OpenSSL (RS256 PKCS#1 v1.5, ES256 raw r||s converted back to DER).
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "idp/idp.hpp"

namespace {

namespace idp = tunnelgate::idp;
using json = nlohmann::json;

struct pkey_free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

std::string to_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return pem;
}

pkey_ptr rsa_key(unsigned bits = 2048) {
  return pkey_ptr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)));
}
pkey_ptr ec_key(const char* curve = "P-256") {
  return pkey_ptr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
}

// nlohmann::json's default constructor is noexcept in practice; clang-tidy cannot see it.
struct parts {  // NOLINT(bugprone-exception-escape)
  json header;
  json claims;
  std::string signing_input;
  std::string signature;
};

parts split(const std::string& jwt) {
  const auto a = jwt.find('.');
  const auto b = jwt.find('.', a + 1);
  EXPECT_NE(b, std::string::npos);
  parts p;
  p.header = json::parse(*idp::base64url_decode(jwt.substr(0, a)));
  p.claims = json::parse(*idp::base64url_decode(jwt.substr(a + 1, b - a - 1)));
  p.signing_input = jwt.substr(0, b);
  p.signature = *idp::base64url_decode(jwt.substr(b + 1));
  return p;
}

bool verify_sig(EVP_PKEY* key, const std::string& input, const std::string& sig) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

std::string raw_to_der(const std::string& raw) {
  ECDSA_SIG* sig = ECDSA_SIG_new();
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  ECDSA_SIG_set0(sig, BN_bin2bn(p, 32, nullptr), BN_bin2bn(p + 32, 32, nullptr));
  unsigned char* der = nullptr;
  const int n = i2d_ECDSA_SIG(sig, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);
  return out;
}

idp::assertion_claims claims() {
  idp::assertion_claims c;
  c.client_id = "0oa1service";
  c.audience = "https://127.0.0.1:8443/oauth2/v1/token";
  c.issued_at = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  return c;
}

TEST(Base64Url, RoundTripWithoutPadding) {
  EXPECT_EQ(idp::base64url_encode(""), "");
  EXPECT_EQ(idp::base64url_encode("f"), "Zg");
  EXPECT_EQ(idp::base64url_encode("fo"), "Zm8");
  EXPECT_EQ(idp::base64url_encode("foo"), "Zm9v");
  EXPECT_EQ(idp::base64url_encode("\xfb\xff"), "-_8");
  std::string all;
  for (int i = 0; i < 256; ++i)
    all += static_cast<char>(i);
  EXPECT_EQ(idp::base64url_decode(idp::base64url_encode(all)), all);
  EXPECT_FALSE(idp::base64url_decode("Zg=="));  // padding is not base64url in JWS
  EXPECT_FALSE(idp::base64url_decode("Z"));
  EXPECT_FALSE(idp::base64url_decode("Zm+v"));
}

TEST(ClientAssertion, Rs256ClaimsAndSignature) {
  const auto key = rsa_key();
  auto c = claims();
  c.key_id = "kid-1";
  const auto jwt = idp::make_client_assertion(to_pem(key.get()), c);
  const auto p = split(jwt);
  EXPECT_EQ(p.header, (json{{"alg", "RS256"}, {"typ", "JWT"}, {"kid", "kid-1"}}));
  EXPECT_EQ(p.claims["iss"], "0oa1service");
  EXPECT_EQ(p.claims["sub"], "0oa1service");
  EXPECT_EQ(p.claims["aud"], "https://127.0.0.1:8443/oauth2/v1/token");
  EXPECT_EQ(p.claims["iat"], 1700000000);
  EXPECT_EQ(p.claims["exp"], 1700000300);
  ASSERT_TRUE(p.claims["jti"].is_string());
  EXPECT_EQ(p.claims["jti"].get<std::string>().size(), 32U);
  EXPECT_EQ(p.signature.size(), 256U);
  EXPECT_TRUE(verify_sig(key.get(), p.signing_input, p.signature));
  EXPECT_FALSE(verify_sig(key.get(), p.signing_input + "x", p.signature));
  EXPECT_FALSE(verify_sig(rsa_key().get(), p.signing_input, p.signature));
  // A fresh jti every time: Okta refuses a replayed one.
  EXPECT_NE(split(idp::make_client_assertion(to_pem(key.get()), c)).claims["jti"], p.claims["jti"]);
}

TEST(ClientAssertion, Es256RawSignature) {
  const auto key = ec_key();
  const auto jwt = idp::make_client_assertion(to_pem(key.get()), claims());
  const auto p = split(jwt);
  EXPECT_EQ(p.header, (json{{"alg", "ES256"}, {"typ", "JWT"}}));  // no kid when none given
  ASSERT_EQ(p.signature.size(), 64U);                             // r||s, not DER
  EXPECT_TRUE(verify_sig(key.get(), p.signing_input, raw_to_der(p.signature)));
  EXPECT_FALSE(verify_sig(key.get(), p.signing_input, p.signature));  // DER verify of raw fails
  EXPECT_FALSE(verify_sig(ec_key().get(), p.signing_input, raw_to_der(p.signature)));
}

idp::errc error_of(const std::string& pem) {
  try {
    idp::make_client_assertion(pem, claims());
  } catch (const idp::error& e) {
    return e.value();
  }
  return idp::errc::bad_argument;
}

TEST(ClientAssertion, RefusedKeys) {
  EXPECT_EQ(error_of("not a key"), idp::errc::bad_key);
  EXPECT_EQ(error_of(to_pem(ec_key("P-384").get())), idp::errc::bad_key);
  EXPECT_EQ(error_of(to_pem(rsa_key(1024).get())), idp::errc::bad_key);
  pkey_ptr ed(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  EXPECT_EQ(error_of(to_pem(ed.get())), idp::errc::bad_key);
  // An encrypted key is refused without prompting on the terminal.
  const auto key = rsa_key();
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key.get(), EVP_aes_128_cbc(), nullptr, 0, nullptr,
                           const_cast<char*>("pass"));
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  const std::string enc(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  EXPECT_EQ(error_of(enc), idp::errc::bad_key);
}

}  // namespace
