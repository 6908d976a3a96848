// The immutable trust snapshot: CA certificates and CRLs as loaded at one moment. Internal.
#pragma once

#include <string>
#include <vector>

#include "certauth/certauth.hpp"
#include "certauth/ossl.hpp"

namespace tunnelgate::certauth {

class trust_snapshot {
 public:
  struct crl_entry {
    ossl::x509_crl_ptr crl;
    X509* issuer = nullptr;  // the bundle CA whose key verified the CRL (owned by cas)
    std::string file;
    bool only_user_certs = false;  // issuingDistributionPoint scope
    bool only_ca_certs = false;
  };

  /// Loads and validates everything; throws std::system_error(errc::...) on any problem.
  static std::shared_ptr<const trust_snapshot> load(const trust_options& options);

  /// The newest CRL issued by `issuer` (matched by name and key), or null.
  const crl_entry* crl_for(X509* issuer) const;

  ossl::x509_store_ptr store;       // trusted certificates for chain building
  std::vector<ossl::x509_ptr> cas;  // the same certificates, in bundle order
  std::vector<crl_entry> crls;      // at most one per issuer (the newest)
  bool partial_chain = false;
  trust_summary summary;
};

}  // namespace tunnelgate::certauth
