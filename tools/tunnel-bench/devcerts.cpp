// Device certificates in memory, shaped as certauth/devca.cpp issues them (see devcerts.hpp).
#include "devcerts.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <stdexcept>
#include <utility>
#include <vector>

namespace bench {

namespace {

[[noreturn]] void fail(const std::string& what) {
  const unsigned long e = ERR_get_error();
  std::string detail;
  if (e != 0) {
    std::vector<char> buf(256);
    ERR_error_string_n(e, buf.data(), buf.size());
    detail = std::string(": ") + buf.data();
  }
  ERR_clear_error();
  throw std::runtime_error(what + detail);
}

struct bio_free {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct name_free {
  void operator()(X509_NAME* n) const { X509_NAME_free(n); }
};
struct ext_free {
  void operator()(X509_EXTENSION* e) const { X509_EXTENSION_free(e); }
};

std::unique_ptr<BIO, bio_free> open_file(const std::string& path) {
  std::unique_ptr<BIO, bio_free> b(BIO_new_file(path.c_str(), "r"));
  if (!b) fail("cannot read " + path);
  return b;
}

void add_entry(X509_NAME* name, const char* field, const std::string& value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                 0) != 1) {
    fail(std::string("cannot set subject ") + field + "='" + value + "'");
  }
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, ext_free> ext(
      X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    fail(std::string("cannot add extension ") + OBJ_nid2sn(nid) + "=" + value);
  }
}

}  // namespace

device_issuer::device_issuer(const std::string& ca_cert_file, const std::string& ca_key_file) {
  auto cb = open_file(ca_cert_file);
  ca_.reset(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
  if (!ca_) fail(ca_cert_file + " does not hold a PEM certificate");
  auto kb = open_file(ca_key_file);
  ca_key_.reset(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!ca_key_) fail(ca_key_file + " does not hold a PEM private key");
  if (X509_check_private_key(ca_.get(), ca_key_.get()) != 1) {
    fail(ca_key_file + " is not the key of " + ca_cert_file);
  }
}

device_credential device_issuer::issue(const std::string& udid, const std::string& serial,
                                       const std::string& user, const std::string& platform,
                                       int days) {
  device_credential d;
  d.udid = udid;
  d.serial = serial;
  d.user = user;
  d.key.reset(EVP_EC_gen("P-256"));
  if (!d.key) fail("key generation failed");
  d.cert.reset(X509_new());
  X509* x = d.cert.get();
  if (x == nullptr) fail("X509_new failed");
  X509_set_version(x, X509_VERSION_3);
  std::uint64_t sn = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&sn), sizeof sn) != 1) fail("RAND_bytes failed");
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), (sn >> 1) | (std::uint64_t{1} << 62));
  std::unique_ptr<X509_NAME, name_free> name(X509_NAME_new());
  add_entry(name.get(), "O", "tunnelgate dev devices");
  if (!platform.empty()) add_entry(name.get(), "OU", platform);
  add_entry(name.get(), "CN", udid);
  if (!serial.empty()) add_entry(name.get(), "serialNumber", serial);
  X509_set_subject_name(x, name.get());
  X509_set_issuer_name(x, X509_get_subject_name(ca_.get()));
  X509_gmtime_adj(X509_getm_notBefore(x), -300);
  X509_time_adj_ex(X509_getm_notAfter(x), days, 0, nullptr);
  X509_set_pubkey(x, d.key.get());
  add_ext(x, ca_.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(x, ca_.get(), NID_key_usage, "critical,digitalSignature");
  add_ext(x, ca_.get(), NID_ext_key_usage, "clientAuth");
  add_ext(x, ca_.get(), NID_subject_alt_name, "email:" + user + ",URI:urn:udid:" + udid);
  add_ext(x, ca_.get(), NID_subject_key_identifier, "hash");
  add_ext(x, ca_.get(), NID_authority_key_identifier, "keyid:always");
  if (X509_sign(x, ca_key_.get(), EVP_sha256()) <= 0) fail("signing failed");
  return d;
}

}  // namespace bench
