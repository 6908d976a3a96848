// idp CAEP: the device-compliance-change SET (header, claims in both subject formats), its
// signature checked against the public key rebuilt from make_jwks() (so the SET and the JWKS
// agree), refused keys and settings, and caep_client::send() against a one-file HTTPS receiver
// on 127.0.0.1 (status handling, RFC 8935 error bodies, the 429 resend).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "idp/idp.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace idp = tunnelgate::idp;
using json = nlohmann::json;
using tunnelgate::testing::temp_dir;

// --- keys -----------------------------------------------------------------------------------

struct key_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using key_ptr = std::unique_ptr<EVP_PKEY, key_free>;

key_ptr make_key(const char* type, const char* curve_or_null, unsigned rsa_bits = 2048) {
  if (curve_or_null != nullptr)
    return key_ptr(EVP_PKEY_Q_keygen(nullptr, nullptr, type, curve_or_null));
  return key_ptr(EVP_PKEY_Q_keygen(nullptr, nullptr, type, static_cast<size_t>(rsa_bits)));
}

/// PEM (PKCS#8) of a private key, encrypted with `pass` when given.
std::string pem_of(EVP_PKEY* k, const char* pass = nullptr) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PKCS8PrivateKey(bio.get(), k, pass != nullptr ? EVP_aes_256_cbc() : nullptr,
                                nullptr, 0, nullptr, const_cast<char*>(pass));
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio.get(), &mem);
  return {mem->data, mem->length};
}

std::string b64(const json& j, const char* member) {
  const auto v = idp::base64url_decode(j.at(member).get<std::string>());
  EXPECT_TRUE(v.has_value()) << member;
  return v.value_or("");
}

BIGNUM* bn(const std::string& bytes) {
  return BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                   static_cast<int>(bytes.size()), nullptr);
}

/// The public key of the JWKS's single key, rebuilt from n/e or crv/x/y only.
key_ptr public_key_from_jwks(const std::string& jwks_text) {
  const auto jwks = json::parse(jwks_text);
  EXPECT_EQ(jwks.at("keys").size(), 1U);
  const auto& k = jwks.at("keys").at(0);
  std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(),
                                                                      OSSL_PARAM_BLD_free);
  std::vector<std::unique_ptr<BIGNUM, decltype(&BN_free)>> keep;
  std::string point;  // must outlive the build
  const char* type = nullptr;
  if (k.at("kty") == "RSA") {
    type = "RSA";
    keep.emplace_back(bn(b64(k, "n")), BN_free);
    keep.emplace_back(bn(b64(k, "e")), BN_free);
    OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, keep[0].get());
    OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, keep[1].get());
  } else {
    type = "EC";
    EXPECT_EQ(k.at("crv"), "P-256");
    const auto x = b64(k, "x");
    const auto y = b64(k, "y");
    EXPECT_EQ(x.size(), 32U);
    EXPECT_EQ(y.size(), 32U);
    point = std::string(1, '\x04') + x + y;  // uncompressed SEC1 point
    OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                     point.size());
  }
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld.get());
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* out = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &out, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    ADD_FAILURE() << "cannot rebuild the public key from the JWKS";
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  return key_ptr(out);
}

// --- JWS ------------------------------------------------------------------------------------

struct jws {  // NOLINT(bugprone-exception-escape): json's default constructor does not throw
  json header;
  json claims;
  std::string signed_part;
  std::string signature;
};

jws decode(const std::string& compact) {
  jws out;
  const auto first = compact.find('.');
  const auto last = compact.rfind('.');
  EXPECT_NE(first, last);
  out.header = json::parse(idp::base64url_decode(compact.substr(0, first)).value_or("null"));
  out.claims = json::parse(
      idp::base64url_decode(compact.substr(first + 1, last - first - 1)).value_or("null"));
  out.signed_part = compact.substr(0, last);
  out.signature = idp::base64url_decode(compact.substr(last + 1)).value_or("");
  return out;
}

/// Verifies a JWS signature as a receiver does: RS256 PKCS#1 v1.5, or ES256 whose 64-byte r||s
/// is turned back into the DER OpenSSL verifies.
bool signature_ok(EVP_PKEY* pub, const jws& t) {
  std::string sig = t.signature;
  if (t.header.value("alg", "") == "ES256") {
    if (sig.size() != 64) return false;
    ECDSA_SIG* es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, bn(sig.substr(0, 32)), bn(sig.substr(32)));
    unsigned char* der = nullptr;
    const int n = i2d_ECDSA_SIG(es, &der);
    sig.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pub) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(t.signed_part.data()),
                          t.signed_part.size()) == 1;
}

// --- fixtures -------------------------------------------------------------------------------

constexpr const char* event_uri =
    "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change";

idp::caep_settings settings(idp::caep_subject_format f = idp::caep_subject_format::okta) {
  idp::caep_settings s;
  s.receiver_url = "https://127.0.0.1:1/security/api/v1/security-events";
  s.issuer = "https://gw.example.com";
  s.audience = "https://acme.okta.com";
  s.key_id = "gw-key-1";
  s.subject_format = f;
  return s;
}

idp::caep_change change() {
  idp::caep_change c;
  c.device_id = "UDID-0001";
  c.user_email = "alice@example.com";
  c.compliant = false;
  c.when = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  c.reason_admin = "Compliance Status Changed: passcode policy";
  c.txn = "uem-event-42";
  return c;
}

long long now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Checks and removes jti and iat, which differ on every call.
void strip_volatile(json& claims) {
  ASSERT_TRUE(claims.at("jti").is_string());
  EXPECT_EQ(claims.at("jti").get<std::string>().size(), 32U);  // 128 bits in hex
  ASSERT_TRUE(claims.at("iat").is_number_integer());
  EXPECT_LE(std::abs(claims.at("iat").get<long long>() - now_seconds()), 5);
  claims.erase("jti");
  claims.erase("iat");
}

// --- the SET --------------------------------------------------------------------------------

TEST(CaepSubjectFormat, Names) {
  EXPECT_EQ(idp::to_string(idp::caep_subject_format::okta), "okta");
  EXPECT_EQ(idp::to_string(idp::caep_subject_format::caep_final), "caep-final");
  EXPECT_EQ(idp::caep_subject_format_from_string("okta"), idp::caep_subject_format::okta);
  EXPECT_EQ(idp::caep_subject_format_from_string("caep-final"),
            idp::caep_subject_format::caep_final);
  EXPECT_FALSE(idp::caep_subject_format_from_string("caep_final"));
  EXPECT_FALSE(idp::caep_subject_format_from_string("OKTA"));
  EXPECT_FALSE(idp::caep_subject_format_from_string(""));
}

TEST(CaepSet, SignatureVerifiesWithTheJwksKeyBothKeyTypes) {
  for (const bool rsa : {true, false}) {
    SCOPED_TRACE(rsa ? "RSA" : "P-256");
    const auto key = rsa ? make_key("RSA", nullptr) : make_key("EC", "P-256");
    const auto pem = pem_of(key.get());
    const auto jwks_text = idp::make_jwks(pem, "gw-key-1");
    const auto jwks = json::parse(jwks_text);
    const auto& k = jwks.at("keys").at(0);
    EXPECT_EQ(k.at("kid"), "gw-key-1");
    EXPECT_EQ(k.at("use"), "sig");
    EXPECT_EQ(k.at("kty"), rsa ? "RSA" : "EC");
    EXPECT_EQ(k.at("alg"), rsa ? "RS256" : "ES256");
    EXPECT_FALSE(k.contains("d"));  // never the private part
    EXPECT_FALSE(k.contains("p"));
    if (rsa) {
      EXPECT_EQ(b64(k, "e"), std::string("\x01\x00\x01", 3));
    }

    const auto pub = public_key_from_jwks(jwks_text);
    ASSERT_TRUE(pub);
    const auto set = decode(idp::make_caep_set(pem, settings(), change()));
    EXPECT_EQ(
        set.header,
        (json{{"alg", rsa ? "RS256" : "ES256"}, {"typ", "secevent+jwt"}, {"kid", "gw-key-1"}}));
    EXPECT_EQ(set.signature.size(), rsa ? 256U : 64U);
    EXPECT_TRUE(signature_ok(pub.get(), set));
    // The check can fail: another key, or a changed payload, does not verify.
    const auto other = public_key_from_jwks(idp::make_jwks(
        pem_of((rsa ? make_key("RSA", nullptr) : make_key("EC", "P-256")).get()), "x"));
    EXPECT_FALSE(signature_ok(other.get(), set));
    auto tampered = set;
    tampered.signed_part += "x";
    EXPECT_FALSE(signature_ok(pub.get(), tampered));
  }
}

TEST(CaepSet, OktaFormatSubjectInsideTheEvent) {
  const auto pem = pem_of(make_key("EC", "P-256").get());
  auto claims = decode(idp::make_caep_set(pem, settings(), change())).claims;
  strip_volatile(claims);
  const json expected = {
      {"iss", "https://gw.example.com"},
      {"aud", "https://acme.okta.com"},
      {"txn", "uem-event-42"},
      {"events",
       {{event_uri,
         {{"subject",
           {{"device",
             {{"format", "iss_sub"}, {"iss", "https://gw.example.com"}, {"sub", "UDID-0001"}}},
            {"user", {{"format", "email"}, {"email", "alice@example.com"}}}}},
          {"current_status", "not-compliant"},
          {"previous_status", "compliant"},
          {"event_timestamp", 1700000000},
          {"initiating_entity", "policy"},
          {"reason_admin", {{"en", "Compliance Status Changed: passcode policy"}}}}}}}};
  EXPECT_EQ(claims, expected) << claims.dump(2);
}

TEST(CaepSet, CaepFinalFormatTopLevelComplexSubId) {
  const auto pem = pem_of(make_key("EC", "P-256").get());
  auto c = change();
  c.tenant = "tenant-7";
  auto claims =
      decode(idp::make_caep_set(pem, settings(idp::caep_subject_format::caep_final), c)).claims;
  strip_volatile(claims);
  const json expected = {
      {"iss", "https://gw.example.com"},
      {"aud", "https://acme.okta.com"},
      {"txn", "uem-event-42"},
      {"sub_id",
       {{"format", "complex"},
        {"device",
         {{"format", "iss_sub"}, {"iss", "https://gw.example.com"}, {"sub", "UDID-0001"}}},
        {"user", {{"format", "email"}, {"email", "alice@example.com"}}},
        {"tenant", {{"format", "opaque"}, {"id", "tenant-7"}}}}},
      {"events",
       {{event_uri,
         {{"current_status", "not-compliant"},
          {"previous_status", "compliant"},
          {"event_timestamp", 1700000000},
          {"initiating_entity", "policy"},
          {"reason_admin", {{"en", "Compliance Status Changed: passcode policy"}}}}}}}};
  EXPECT_EQ(claims, expected) << claims.dump(2);
}

TEST(CaepSet, StatusesBothWays) {
  const auto pem = pem_of(make_key("EC", "P-256").get());
  for (const bool compliant : {true, false}) {
    auto c = change();
    c.compliant = compliant;
    const auto ev =
        decode(idp::make_caep_set(pem, settings(), c)).claims.at("events").at(event_uri);
    EXPECT_EQ(ev.at("current_status"), compliant ? "compliant" : "not-compliant");
    EXPECT_EQ(ev.at("previous_status"), compliant ? "not-compliant" : "compliant");
  }
}

TEST(CaepSet, OptionalMembersOmittedWhenEmpty) {
  const auto pem = pem_of(make_key("EC", "P-256").get());
  for (const auto f : {idp::caep_subject_format::okta, idp::caep_subject_format::caep_final}) {
    SCOPED_TRACE(std::string(idp::to_string(f)));
    auto c = change();
    c.user_email.clear();
    c.reason_admin.clear();
    c.txn.clear();
    c.initiating_entity.clear();
    const auto claims = decode(idp::make_caep_set(pem, settings(f), c)).claims;
    EXPECT_FALSE(claims.contains("txn"));
    const auto& ev = claims.at("events").at(event_uri);
    EXPECT_FALSE(ev.contains("reason_admin"));
    EXPECT_FALSE(ev.contains("initiating_entity"));
    const auto& subject =
        f == idp::caep_subject_format::okta ? ev.at("subject") : claims.at("sub_id");
    EXPECT_TRUE(subject.contains("device"));
    EXPECT_FALSE(subject.contains("user"));
    EXPECT_FALSE(subject.contains("tenant"));
    EXPECT_EQ(claims.contains("sub_id"), f == idp::caep_subject_format::caep_final);
    EXPECT_EQ(ev.contains("subject"), f == idp::caep_subject_format::okta);
    EXPECT_EQ(claims.at("events").size(), 1U);
  }
}

TEST(CaepSet, FreshJtiEveryCall) {
  const auto pem = pem_of(make_key("EC", "P-256").get());
  const auto a = decode(idp::make_caep_set(pem, settings(), change())).claims.at("jti");
  const auto b = decode(idp::make_caep_set(pem, settings(), change())).claims.at("jti");
  EXPECT_NE(a, b);
}

template <class F>
idp::errc error_of(F f) {
  try {
    f();
  } catch (const idp::error& e) {
    return e.value();
  }
  ADD_FAILURE() << "no idp::error thrown";
  return idp::errc::http_error;
}

TEST(CaepSet, RefusedKeys) {
  const auto rsa = make_key("RSA", nullptr);
  const std::vector<std::pair<const char*, std::string>> bad = {
      {"encrypted", pem_of(rsa.get(), "secret-pass")},
      {"RSA 1024", pem_of(make_key("RSA", nullptr, 1024).get())},
      {"P-384", pem_of(make_key("EC", "P-384").get())},
      {"Ed25519", pem_of(key_ptr(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")).get())},
      {"garbage", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
      {"empty", ""}};
  for (const auto& entry : bad) {
    SCOPED_TRACE(entry.first);
    const auto& pem = entry.second;  // a plain reference: clang cannot capture bindings
    EXPECT_EQ(error_of([&] { idp::make_caep_set(pem, settings(), change()); }), idp::errc::bad_key);
    EXPECT_EQ(error_of([&] { idp::make_jwks(pem, "kid"); }), idp::errc::bad_key);
  }
}

TEST(CaepSet, RefusedArguments) {
  const auto pem = pem_of(make_key("EC", "P-256").get());
  const auto with = [&](auto edit) {
    auto s = settings();
    auto c = change();
    edit(s, c);
    return error_of([&] { idp::make_caep_set(pem, s, c); });
  };
  EXPECT_EQ(with([](auto& s, auto&) { s.issuer.clear(); }), idp::errc::bad_argument);
  EXPECT_EQ(with([](auto& s, auto&) { s.audience.clear(); }), idp::errc::bad_argument);
  EXPECT_EQ(with([](auto& s, auto&) { s.key_id.clear(); }), idp::errc::bad_argument);
  EXPECT_EQ(with([](auto&, auto& c) { c.device_id.clear(); }), idp::errc::bad_argument);
  EXPECT_EQ(with([](auto&, auto& c) { c.initiating_entity = "robot"; }), idp::errc::bad_argument);
  EXPECT_EQ(error_of([&] { idp::make_jwks(pem, ""); }), idp::errc::bad_argument);
  for (const char* e : {"admin", "user", "policy", "system"}) {
    auto c = change();
    c.initiating_entity = e;
    EXPECT_NO_THROW(idp::make_caep_set(pem, settings(), c)) << e;
  }
}

// --- caep_client ----------------------------------------------------------------------------

TEST(CaepClient, ConstructorChecks) {
  const temp_dir dir;
  const auto good = dir.write("key.pem", pem_of(make_key("RSA", nullptr).get()));
  const auto with = [&](auto edit) {
    auto s = settings();
    s.private_key = good;
    edit(s);
    return error_of([&] { idp::caep_client c(s); });
  };
  EXPECT_EQ(with([](auto& s) { s.receiver_url = "http://127.0.0.1/x"; }), idp::errc::bad_argument);
  EXPECT_EQ(with([](auto& s) { s.receiver_url = ""; }), idp::errc::bad_argument);
  EXPECT_EQ(with([](auto& s) { s.issuer.clear(); }), idp::errc::bad_argument);
  EXPECT_EQ(with([](auto& s) { s.audience.clear(); }), idp::errc::bad_argument);
  EXPECT_EQ(with([](auto& s) { s.key_id.clear(); }), idp::errc::bad_argument);
  EXPECT_EQ(with([](auto& s) { s.private_key.clear(); }), idp::errc::bad_argument);
  EXPECT_EQ(with([&](auto& s) { s.private_key = dir / "missing.pem"; }),
            idp::errc::file_unreadable);
  const auto p384 = dir.write("p384.pem", pem_of(make_key("EC", "P-384").get()));
  EXPECT_EQ(with([&](auto& s) { s.private_key = p384; }), idp::errc::bad_key);

  auto s = settings();
  s.private_key = good;
  const idp::caep_client client(s);
  std::ifstream in(good);
  const std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(client.jwks(), idp::make_jwks(pem, "gw-key-1"));
}

/// A TLS receiver on 127.0.0.1 that answers each connection with the next canned answer and
/// records the requests. Its certificate (P-256, IP SAN 127.0.0.1) is the client's CA file.
class receiver {
 public:
  struct answer {
    int status;
    std::string body;
    std::string extra_headers;  // "Name: value\r\n" lines
  };
  struct seen {
    std::string head;  // request line and headers
    std::string body;
  };

  receiver(const temp_dir& dir, std::vector<answer> answers) : answers_(std::move(answers)) {
    make_cert(dir);
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 8) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("cannot listen on 127.0.0.1");
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~receiver() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    SSL_CTX_free(ctx_);
  }
  receiver(const receiver&) = delete;
  receiver& operator=(const receiver&) = delete;

  std::string url() const {
    return "https://127.0.0.1:" + std::to_string(port_) + "/security/api/v1/security-events";
  }
  const std::filesystem::path& ca() const { return ca_; }
  std::vector<seen> requests() {
    const std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  void make_cert(const temp_dir& dir) {
    key_ = make_key("EC", "P-256");
    std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("caep-test"), -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);
    X509_set_pubkey(cert.get(), key_.get());
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
    for (const auto& [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1"},
                                     std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
      X509_add_ext(cert.get(), ext, -1);
      X509_EXTENSION_free(ext);
    }
    X509_sign(cert.get(), key_.get(), EVP_sha256());
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    PEM_write_bio_X509(bio.get(), cert.get());
    BUF_MEM* mem = nullptr;
    BIO_get_mem_ptr(bio.get(), &mem);
    ca_ = dir.write("receiver-ca.pem", std::string(mem->data, mem->length));
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx_, cert.get());
    SSL_CTX_use_PrivateKey(ctx_, key_.get());
  }

  void serve() {
    std::size_t next = 0;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      const timeval tv{5, 0};  // a stuck client cannot hang the test
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, c);
      if (SSL_accept(ssl) == 1) {
        seen req;
        if (read_request(ssl, req)) {
          const auto& a = answers_.at(std::min(next++, answers_.size() - 1));
          {
            const std::lock_guard lock(mu_);
            seen_.push_back(std::move(req));
          }
          const std::string res = "HTTP/1.1 " + std::to_string(a.status) +
                                  " X\r\nContent-Type: application/json\r\nContent-Length: " +
                                  std::to_string(a.body.size()) + "\r\n" + a.extra_headers +
                                  "Connection: close\r\n\r\n" + a.body;
          SSL_write(ssl, res.data(), static_cast<int>(res.size()));
          SSL_shutdown(ssl);
        }
      }
      SSL_free(ssl);
      ::close(c);
    }
  }

  static bool read_request(SSL* ssl, seen& out) {
    std::string data;
    char buf[4096];
    std::size_t want = std::string::npos;
    while (want == std::string::npos || data.size() < want) {
      const int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0) return false;
      data.append(buf, static_cast<std::size_t>(n));
      const auto end = data.find("\r\n\r\n");
      if (want == std::string::npos && end != std::string::npos) {
        out.head = data.substr(0, end + 2);
        std::size_t length = 0;
        std::string lower = out.head;
        for (auto& ch : lower)
          ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (const auto at = lower.find("\r\ncontent-length:"); at != std::string::npos) {
          length = std::stoul(lower.substr(at + 17));
        }
        want = end + 4 + length;
      }
    }
    out.body = data.substr(out.head.size() + 2);
    return true;
  }

  std::vector<answer> answers_;
  key_ptr key_;
  std::filesystem::path ca_;
  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  unsigned short port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<seen> seen_;
  std::thread thread_;
};

std::string header_value(const std::string& head, const std::string& lower_name) {
  std::string lower = head;
  for (auto& ch : lower)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const auto at = lower.find("\r\n" + lower_name + ":");
  if (at == std::string::npos) return {};
  const auto start = head.find_first_not_of(' ', at + 3 + lower_name.size());
  return head.substr(start, head.find("\r\n", start) - start);
}

idp::caep_settings client_settings(const temp_dir& dir, const receiver& r) {
  auto s = settings();
  s.receiver_url = r.url();
  s.private_key = dir.write("gw.pem", pem_of(make_key("EC", "P-256").get()));
  s.http.ca_file = r.ca();
  s.http.timeout = std::chrono::seconds(5);
  s.http.max_rate_limit_wait = std::chrono::seconds(5);
  return s;
}

TEST(CaepClient, SendPostsTheSetAndAccepts202And204) {
  const temp_dir dir;
  receiver r(dir, {{202, "", ""}, {204, "", ""}});
  const auto s = client_settings(dir, r);
  idp::caep_client client(s);
  client.send(change());
  client.send(change());
  const auto seen = r.requests();
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[0].head.substr(0, seen[0].head.find("\r\n")),
            "POST /security/api/v1/security-events HTTP/1.1");
  EXPECT_EQ(header_value(seen[0].head, "content-type"), "application/secevent+jwt");
  EXPECT_EQ(header_value(seen[0].head, "authorization"), "");  // the signature authenticates
  const auto set = decode(seen[0].body);
  EXPECT_EQ(set.claims.at("aud"), "https://acme.okta.com");
  EXPECT_TRUE(signature_ok(public_key_from_jwks(client.jwks()).get(), set));
  EXPECT_NE(decode(seen[1].body).claims.at("jti"), set.claims.at("jti"));
}

TEST(CaepClient, BearerTokenWhenConfigured) {
  const temp_dir dir;
  receiver r(dir, {{202, "", ""}});
  auto s = client_settings(dir, r);
  s.bearer_token = idp::secret("receiver-token");
  idp::caep_client(s).send(change());
  ASSERT_EQ(r.requests().size(), 1U);
  EXPECT_EQ(header_value(r.requests()[0].head, "authorization"), "Bearer receiver-token");
}

TEST(CaepClient, Rfc8935ErrorBodies) {
  const temp_dir dir;
  receiver r(
      dir,
      {{400, R"({"err":"authentication_failed","description":"Invalid signature\nin SET"})", ""},
       {400, R"({"err":"invalid_request","description":"bad events"})", ""},
       {200, "{}", ""},
       {500, "", ""}});
  idp::caep_client client(client_settings(dir, r));
  try {
    client.send(change());
    ADD_FAILURE() << "a 400 was taken as delivered";
  } catch (const idp::error& e) {
    EXPECT_EQ(e.value(), idp::errc::unauthorized);
    EXPECT_EQ(e.http_status(), 400);
    EXPECT_EQ(e.idp_code(), "authentication_failed");
    EXPECT_EQ(e.idp_summary(), "Invalid signature in SET");  // line break folded
    const std::string what = e.what();
    EXPECT_NE(what.find("(HTTP 400 authentication_failed)"), std::string::npos) << what;
    EXPECT_NE(what.find("kid gw-key-1"), std::string::npos) << what;  // names the fix
  }
  try {
    client.send(change());
    ADD_FAILURE() << "a 400 was taken as delivered";
  } catch (const idp::error& e) {
    EXPECT_EQ(e.value(), idp::errc::http_error);
    EXPECT_EQ(e.idp_code(), "invalid_request");
    EXPECT_EQ(e.idp_summary(), "bad events");
  }
  // Only 202 and 204 mean delivered.
  EXPECT_EQ(error_of([&] { client.send(change()); }), idp::errc::http_error);
  EXPECT_EQ(error_of([&] { client.send(change()); }), idp::errc::http_error);
}

TEST(CaepClient, RateLimitResendsTheSameSet) {
  const temp_dir dir;
  receiver r(dir, {{429, "", "Retry-After: 1\r\n"}, {202, "", ""}});
  idp::caep_client client(client_settings(dir, r));
  client.send(change());
  const auto seen = r.requests();
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[0].body, seen[1].body);  // not accepted, so the same jti is still unused
}

TEST(CaepClient, UnreachableReceiver) {
  const temp_dir dir;
  // A port that was just free: nothing listens there.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  auto s = settings();
  s.receiver_url = "https://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/events";
  s.private_key = dir.write("gw.pem", pem_of(make_key("EC", "P-256").get()));
  s.http.timeout = std::chrono::seconds(5);
  idp::caep_client client(s);
  EXPECT_EQ(error_of([&] { client.send(change()); }), idp::errc::unreachable);
}

}  // namespace
