// Test-time PKI built with OpenSSL's API directly, for certificate shapes the dev CA refuses
// to make (weak keys, SHA-1/MD5, missing fields, odd extensions, stale CRLs).
#pragma once

#include "support/temp_dir.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <openssl/evp.h>
#include <openssl/x509.h>

namespace pki {

struct pkey_free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct x509_free {
  void operator()(X509* p) const { X509_free(p); }
};
struct crl_free {
  void operator()(X509_CRL* p) const { X509_CRL_free(p); }
};
using key = std::shared_ptr<EVP_PKEY>;
using cert = std::shared_ptr<X509>;
using crl = std::shared_ptr<X509_CRL>;

key ec_key(const char* curve = "P-256");
key rsa_key(int bits);

struct cert_spec {
  std::vector<std::pair<std::string, std::string>> subject{{"CN", "dev-1"}};
  std::vector<std::string> san{"email:alice@example.com"};  // OpenSSL config syntax
  std::string eku = "clientAuth";                           // "" = no extension
  std::string key_usage = "critical,digitalSignature";      // "" = no extension
  std::string basic_constraints = "critical,CA:FALSE";      // "" = no extension
  long not_before = -3600;                                  // seconds from now
  long not_after = 30L * 86400;
  const EVP_MD* md = EVP_sha256();
  unsigned long serial = 0;    // 0 = next from a global counter
  bool duplicate_eku = false;  // adds the EKU extension twice (invalid)
};

/// A CA-shaped spec (CA:TRUE, keyCertSign/cRLSign, no EKU, no SAN).
cert_spec ca_spec(const std::string& cn);

/// Issues `spec` for `subject_key`, signed by issuer/issuer_key (self-signed when issuer null).
cert issue(const cert_spec& spec, const key& subject_key, const cert& issuer,
           const key& issuer_key);

/// A CRL of `issuer` listing `revoked`; times are seconds from now. `idp`, when not empty, is
/// an issuingDistributionPoint extension in OpenSSL config syntax ("critical,onlyuser:TRUE").
crl make_crl(const cert& issuer, const key& issuer_key, const std::vector<cert>& revoked,
             long this_update = -60, long next_update = 7L * 86400, const EVP_MD* md = EVP_sha256(),
             const std::string& idp = "");

std::string pem(const cert& c);
std::string pem(const std::vector<cert>& cs);
std::string pem(const crl& c);
std::string der(const cert& c);
std::string der(const crl& c);

/// Writes data to path atomically (write to a temp file, rename over).
void write_atomic(const std::filesystem::path& path, const std::string& data);

/// A fresh directory, removed by the destructor (shared with the other test suites).
using temp_dir = tunnelgate::testing::temp_dir;

}  // namespace pki
