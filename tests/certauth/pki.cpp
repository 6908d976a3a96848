#include "pki.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

namespace pki {

namespace {

std::atomic<unsigned long> next_serial{0x5000};

[[noreturn]] void die(const std::string& what) {
  char buf[256] = "";
  ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
  throw std::runtime_error("test PKI: " + what + ": " + buf);
}

void add_ext(X509* x, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) die("extension " + value);
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
}

template <typename F>
std::string bio_text(F&& write) {
  BIO* b = BIO_new(BIO_s_mem());
  if (write(b) != 1) die("encoding");
  char* p = nullptr;
  const long n = BIO_get_mem_data(b, &p);
  std::string s(p, static_cast<std::size_t>(n));
  BIO_free(b);
  return s;
}

}  // namespace

key ec_key(const char* curve) {
  EVP_PKEY* k = EVP_EC_gen(curve);
  if (k == nullptr) die(std::string("EC key ") + curve);
  return key(k, pkey_free{});
}

key rsa_key(int bits) {
  EVP_PKEY* k = EVP_RSA_gen(static_cast<unsigned>(bits));
  if (k == nullptr) die("RSA key");
  return key(k, pkey_free{});
}

cert_spec ca_spec(const std::string& cn) {
  cert_spec s;
  s.subject = {{"O", "test"}, {"CN", cn}};
  s.san.clear();
  s.eku.clear();
  s.key_usage = "critical,keyCertSign,cRLSign";
  s.basic_constraints = "critical,CA:TRUE";
  s.not_after = 3650L * 86400;
  return s;
}

cert issue(const cert_spec& spec, const key& subject_key, const cert& issuer,
           const key& issuer_key) {
  X509* x = X509_new();
  X509_set_version(x, X509_VERSION_3);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), spec.serial ? spec.serial : next_serial++);
  X509_NAME* name = X509_NAME_new();
  for (const auto& [field, value] : spec.subject) {
    // Raw bytes, so tests can put NULs or UTF-8 in a value.
    if (X509_NAME_add_entry_by_txt(name, field.c_str(), MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0) != 1) {
      die("subject " + field);
    }
  }
  X509_set_subject_name(x, name);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer.get()) : name);
  X509_NAME_free(name);
  X509_gmtime_adj(X509_getm_notBefore(x), spec.not_before);
  X509_gmtime_adj(X509_getm_notAfter(x), spec.not_after);
  X509_set_pubkey(x, subject_key.get());
  X509* iss = issuer ? issuer.get() : x;
  if (!spec.basic_constraints.empty())
    add_ext(x, iss, NID_basic_constraints, spec.basic_constraints);
  if (!spec.key_usage.empty()) add_ext(x, iss, NID_key_usage, spec.key_usage);
  if (!spec.eku.empty()) add_ext(x, iss, NID_ext_key_usage, spec.eku);
  if (spec.duplicate_eku) add_ext(x, iss, NID_ext_key_usage, "clientAuth");
  if (!spec.san.empty()) {
    std::string san;
    for (const auto& s : spec.san)
      san += (san.empty() ? "" : ",") + s;
    add_ext(x, iss, NID_subject_alt_name, san);
  }
  add_ext(x, iss, NID_subject_key_identifier, "hash");
  if (issuer) add_ext(x, iss, NID_authority_key_identifier, "keyid:always");
  if (X509_sign(x, issuer_key.get(), spec.md) <= 0) die("sign");
  return cert(x, x509_free{});
}

crl make_crl(const cert& issuer, const key& issuer_key, const std::vector<cert>& revoked,
             long this_update, long next_update, const EVP_MD* md, const std::string& idp) {
  X509_CRL* c = X509_CRL_new();
  X509_CRL_set_version(c, X509_CRL_VERSION_2);
  X509_CRL_set_issuer_name(c, X509_get_subject_name(issuer.get()));
  ASN1_TIME* t = X509_gmtime_adj(nullptr, this_update);
  X509_CRL_set1_lastUpdate(c, t);
  ASN1_TIME_free(t);
  t = X509_gmtime_adj(nullptr, next_update);
  X509_CRL_set1_nextUpdate(c, t);
  for (const auto& r : revoked) {
    X509_REVOKED* e = X509_REVOKED_new();
    X509_REVOKED_set_serialNumber(e, X509_get_serialNumber(r.get()));
    X509_REVOKED_set_revocationDate(e, t);
    X509_CRL_add0_revoked(c, e);
  }
  ASN1_TIME_free(t);
  if (!idp.empty()) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer.get(), nullptr, nullptr, c, 0);
    X509_EXTENSION* ext =
        X509V3_EXT_nconf_nid(nullptr, &ctx, NID_issuing_distribution_point, idp.c_str());
    if (ext == nullptr) die("CRL extension " + idp);
    X509_CRL_add_ext(c, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_CRL_sort(c);
  if (X509_CRL_sign(c, issuer_key.get(), md) <= 0) die("CRL sign");
  return crl(c, crl_free{});
}

std::string pem(const cert& c) {
  return bio_text([&](BIO* b) { return PEM_write_bio_X509(b, c.get()); });
}
std::string pem(const std::vector<cert>& cs) {
  std::string s;
  for (const auto& c : cs)
    s += pem(c);
  return s;
}
std::string pem(const crl& c) {
  return bio_text([&](BIO* b) { return PEM_write_bio_X509_CRL(b, c.get()); });
}
std::string der(const cert& c) {
  return bio_text([&](BIO* b) { return i2d_X509_bio(b, c.get()); });
}
std::string der(const crl& c) {
  return bio_text([&](BIO* b) { return i2d_X509_CRL_bio(b, c.get()); });
}

void write_atomic(const std::filesystem::path& path, const std::string& data) {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << data;
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace pki
