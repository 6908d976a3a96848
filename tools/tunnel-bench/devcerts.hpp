// Device certificates made in memory from the dev CA's certificate and key, in the form
// `tunnelctl ca issue` gives them (certauth/devca.cpp): EC P-256 key; subject O=tunnelgate dev
// devices, OU=platform, CN=UDID, serialNumber=device serial; SAN email:user and
// URI:urn:udid:UDID; clientAuth; signed with SHA-256. Unlike tunnelctl nothing is written to
// the CA's state (the serials are random, so none can be revoked by CRL): thousands of devices
// for `revoke` in a second or two, with no files.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace bench {

struct x509_free {
  void operator()(X509* x) const { X509_free(x); }
};
struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using x509_ptr = std::unique_ptr<X509, x509_free>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

/// One device: what goes into the UEM inventory and what it presents in the handshake.
struct device_credential {
  std::string udid, serial, user;
  long long uem_id = 0;  ///< the UEM's numeric device id (Id.Value, DeviceId in events)
  x509_ptr cert;
  pkey_ptr key;
};

class device_issuer {
 public:
  /// Reads the CA certificate and key (PEM); throws std::runtime_error.
  device_issuer(const std::string& ca_cert_file, const std::string& ca_key_file);
  /// A certificate valid from five minutes ago for `days` days.
  device_credential issue(const std::string& udid, const std::string& serial,
                          const std::string& user, const std::string& platform, int days = 7);

 private:
  x509_ptr ca_;
  pkey_ptr ca_key_;
};

}  // namespace bench
