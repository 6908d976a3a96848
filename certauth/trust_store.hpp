// The immutable trust snapshot: CA certificates and CRLs as loaded at one moment. Internal.
#pragma once

#include <cstdint>
#include <ctime>
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
    std::time_t this_update = 0;
    bool only_user_certs = false;  // issuingDistributionPoint scope
    bool only_ca_certs = false;

    /// Whether the CRL's scope includes a certificate that is (is_ca) or is not a CA.
    bool covers(bool is_ca) const noexcept { return is_ca ? !only_user_certs : !only_ca_certs; }
  };

  /// Loads and validates everything; throws std::system_error(errc::...) on any problem.
  static std::shared_ptr<const trust_snapshot> load(const trust_options& options);

  /// The newest CRL of `issuer` whose scope includes a certificate that is (`is_ca`) or is not
  /// a CA, or null. The issuer is matched by subject and key, so the peer's copy of a bundle CA
  /// and a CA renewed with the same key find the same CRLs.
  const crl_entry* crl_for(X509* issuer, bool is_ca) const;
  /// Whether any CRL of `issuer` (same matching) is loaded, whatever its scope.
  bool has_crl(X509* issuer) const;

  ossl::x509_store_ptr store;       // trusted certificates for chain building
  std::vector<ossl::x509_ptr> cas;  // the same certificates, in bundle order
  std::vector<crl_entry> crls;      // at most one per issuer and scope (the newest)
  bool partial_chain = false;
  bool crl_required = false;  // trust_options::requires_crl(): no CRL in scope means no_crl
  trust_summary summary;
  /// Unique in the process and increasing with each load: a snapshot's identity for the
  /// verifier's cache that, unlike its address, is never reused after the snapshot is freed.
  std::uint64_t generation = 0;
  /// Every notBefore and notAfter of the bundle CAs, sorted: the moments at which OpenSSL's
  /// choice of issuer (it prefers one valid at the verification time) may change.
  std::vector<std::time_t> validity_events;
};

}  // namespace tunnelgate::certauth
