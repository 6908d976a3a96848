#include "certauth/trust_store.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "certauth/codec.hpp"
#include "certauth/error.hpp"

namespace tunnelgate::certauth {

namespace {

using detail::fail;
using detail::name_text;

bool is_weak_digest(int mdnid) {
  return mdnid == NID_md5 || mdnid == NID_sha1 || mdnid == NID_md4 || mdnid == NID_md2 ||
         mdnid == NID_md5_sha1 || mdnid == NID_mdc2;
}

// One CA for revocation purposes: the same subject and key. Covers the peer's copy of a bundle
// certificate and a CA renewed with its old key (the CRLs it signs verify under both).
bool same_ca(X509* a, X509* b) {
  if (a == b) return true;
  return X509_NAME_cmp(X509_get_subject_name(a), X509_get_subject_name(b)) == 0 &&
         EVP_PKEY_eq(X509_get0_pubkey(a), X509_get0_pubkey(b)) == 1;
}

std::vector<ossl::x509_ptr> load_bundle(const std::filesystem::path& path) {
  const std::string data = detail::read_file(path, "CA bundle");
  auto parsed = detail::parse_certificates(data);
  const std::string where = "CA bundle " + path.string() + ": ";
  if (!parsed.ok) fail(errc::bad_ca_bundle, where + parsed.error);
  for (const auto& name : parsed.other_blocks) {
    // A key (or anything else) in a trust bundle is a deployment mistake worth stopping for.
    fail(errc::bad_ca_bundle,
         where + "contains a '" + name + "' PEM block; a CA bundle holds certificates only");
  }
  if (parsed.certs.empty()) {
    fail(errc::bad_ca_bundle, where + "holds no certificate; put the UEM device root (PEM) in it");
  }
  for (const auto& x : parsed.certs) {
    const uint32_t flags = X509_get_extension_flags(x.get());
    if ((flags & EXFLAG_INVALID) != 0) {
      fail(errc::bad_ca_bundle, where + "certificate '" +
                                    name_text(X509_get_subject_name(x.get())) +
                                    "' has invalid extensions");
    }
    // Only explicit basicConstraints cA=TRUE: a v1 certificate or a leaf pasted into the bundle
    // by mistake must not become an issuer of device identities.
    if ((flags & EXFLAG_CA) == 0) {
      fail(errc::bad_ca_bundle, where + "certificate '" +
                                    name_text(X509_get_subject_name(x.get())) +
                                    "' is not a CA (no basicConstraints cA=TRUE); remove it from "
                                    "the bundle, device certificates do not belong there");
    }
  }
  return std::move(parsed.certs);
}

// An intermediate whose issuer is absent would only work as a partial-chain anchor; say so
// instead of letting every device fail with unknown_ca.
void check_complete(const std::vector<ossl::x509_ptr>& cas, const trust_options& options) {
  for (const auto& x : cas) {
    if ((X509_get_extension_flags(x.get()) & EXFLAG_SS) != 0) continue;
    bool found = false;
    for (const auto& y : cas) {
      if (X509_check_issued(y.get(), x.get()) == X509_V_OK) found = true;
    }
    if (!found && !options.allow_partial_chain) {
      fail(errc::incomplete_bundle,
           "CA bundle " + options.ca_bundle.string() + ": intermediate '" +
               name_text(X509_get_subject_name(x.get())) + "' has no issuer in the bundle; add '" +
               name_text(X509_get_issuer_name(x.get())) +
               "' (the root) to the bundle, or allow partial chains to trust the intermediate as "
               "an anchor");
    }
  }
}

trust_snapshot::crl_entry load_crl(ossl::x509_crl_ptr crl, const std::vector<ossl::x509_ptr>& cas,
                                   const std::string& file, std::vector<std::string>& warnings) {
  const std::string where =
      "CRL " + file + " (issuer '" + name_text(X509_CRL_get_issuer(crl.get())) + "'): ";
  trust_snapshot::crl_entry e;
  e.file = file;
  for (const auto& ca : cas) {
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(ca.get())) != 0)
      continue;
    if (X509_CRL_verify(crl.get(), X509_get0_pubkey(ca.get())) == 1) {
      e.issuer = ca.get();
      break;
    }
  }
  ERR_clear_error();
  if (e.issuer == nullptr) {
    fail(errc::bad_crl, where +
                            "not signed by any CA in the bundle; add the issuing CA (root or "
                            "intermediate) to the CA bundle, or remove this CRL");
  }
  int mdnid = NID_undef, pknid = NID_undef;
  if (OBJ_find_sigid_algs(X509_CRL_get_signature_nid(crl.get()), &mdnid, &pknid) == 1 &&
      is_weak_digest(mdnid)) {
    fail(errc::bad_crl, where + "signed with " + OBJ_nid2sn(mdnid) + "; re-issue it with SHA-256");
  }
  if (X509_CRL_get_ext_by_NID(crl.get(), NID_delta_crl, -1) >= 0) {
    fail(errc::bad_crl, where + "is a delta CRL; configure the full (base) CRL instead");
  }
  int crit = 0;
  auto* idp = static_cast<ISSUING_DIST_POINT*>(
      X509_CRL_get_ext_d2i(crl.get(), NID_issuing_distribution_point, &crit, nullptr));
  if (idp != nullptr) {
    const bool unsupported =
        idp->onlysomereasons != nullptr || idp->indirectCRL != 0 || idp->onlyattr != 0;
    e.only_user_certs = idp->onlyuser != 0;
    e.only_ca_certs = idp->onlyCA != 0;
    ISSUING_DIST_POINT_free(idp);
    if (unsupported) {
      fail(errc::bad_crl, where +
                              "is a partitioned or indirect CRL (issuingDistributionPoint with "
                              "onlySomeReasons, indirectCRL or onlyContainsAttributeCerts), "
                              "which is not supported; use a full CRL");
    }
  } else if (crit != -1) {
    fail(errc::bad_crl, where + "has an unreadable issuingDistributionPoint extension");
  }
  // Any other critical extension we do not understand makes the CRL unusable (RFC 5280 5.2).
  for (int i = 0; i < X509_CRL_get_ext_count(crl.get()); ++i) {
    X509_EXTENSION* ext = X509_CRL_get_ext(crl.get(), i);
    const int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
    if (X509_EXTENSION_get_critical(ext) && nid != NID_issuing_distribution_point &&
        nid != NID_crl_number && nid != NID_authority_key_identifier) {
      fail(errc::bad_crl, where + "has an unsupported critical extension");
    }
  }
  std::time_t next_update = 0;
  if (!detail::to_time_t(X509_CRL_get0_lastUpdate(crl.get()), e.this_update)) {
    fail(errc::bad_crl, where + "has an invalid thisUpdate time");
  }
  const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl.get());
  if (next == nullptr) {
    warnings.push_back(where + "has no nextUpdate; it is treated as never stale");
  } else if (!detail::to_time_t(next, next_update)) {
    fail(errc::bad_crl, where + "has an invalid nextUpdate time");
  } else if (next_update < std::time(nullptr)) {
    warnings.push_back(where + "is past its nextUpdate (" + detail::iso8601(next_update) +
                       "); publish a fresh CRL");
  }
  // Sorting the revoked list now means lookups during verification only take the CRL's read
  // path (OpenSSL sorts lazily under a write lock on first lookup otherwise).
  ossl::x509_revoked_ptr probe(X509_REVOKED_new());
  X509_REVOKED* found = nullptr;
  X509_CRL_get0_by_serial(crl.get(), &found, X509_REVOKED_get0_serialNumber(probe.get()));
  e.crl = std::move(crl);
  return e;
}

// An expired CA certificate is either a leftover next to its renewal (harmless: the verifier
// prefers the valid one) or a CA that has to be renewed; say which.
void warn_expired_cas(const std::vector<ossl::x509_ptr>& cas, std::vector<std::string>& warnings) {
  const std::time_t now = std::time(nullptr);
  const auto not_after = [](X509* x) {
    std::time_t t = 0;
    return detail::to_time_t(X509_get0_notAfter(x), t) ? t : std::time_t{0};
  };
  for (const auto& x : cas) {
    const std::time_t na = not_after(x.get());
    if (na >= now) continue;
    const bool renewed = std::any_of(cas.begin(), cas.end(), [&](const auto& y) {
      return same_ca(x.get(), y.get()) && not_after(y.get()) >= now;
    });
    std::string w = "CA bundle: certificate '" + name_text(X509_get_subject_name(x.get())) +
                    "' (serial " + detail::serial_hex(X509_get0_serialNumber(x.get())) +
                    ") expired at " + detail::iso8601(na);
    if (renewed) {
      w += "; a renewed certificate of the same CA (same name and key) is in the bundle and is "
           "used instead: remove the expired one";
    } else {
      w += "; devices whose chain runs through it are refused (expired): renew the CA";
    }
    warnings.push_back(std::move(w));
  }
}

// Names each bundle CA that no loaded CRL belongs to, required or not: its certificates are
// either refused (no_crl) or accepted unchecked, and neither should come as a surprise.
// Certificates of one CA (same name and key, e.g. a renewal) share CRLs and one warning.
void warn_missing_crls(const trust_snapshot& snap, std::vector<std::string>& warnings) {
  for (auto it = snap.cas.begin(); it != snap.cas.end(); ++it) {
    X509* ca = it->get();
    if (snap.has_crl(ca)) continue;
    if (std::any_of(snap.cas.begin(), it, [&](const auto& y) { return same_ca(ca, y.get()); }))
      continue;
    std::string w = "CA '" + name_text(X509_get_subject_name(ca)) +
                    "' has no CRL (no configured CRL is signed by its key";
    // Otherwise the warning reads as wrong to whoever configured "its" CRL for the old key.
    const bool rekeyed = std::any_of(snap.cas.begin(), snap.cas.end(), [&](const auto& y) {
      return X509_NAME_cmp(X509_get_subject_name(ca), X509_get_subject_name(y.get())) == 0 &&
             !same_ca(ca, y.get());
    });
    if (rekeyed) w += "; another CA certificate of that name has a different key: re-keyed?";
    w += "): ";
    if (snap.crl_required) {
      w += "certificates it issued are refused (no_crl); add its CRL, or remove the CA from the "
           "bundle if it issues no device or intermediate certificates";
    } else {
      w += "certificates it issued are accepted without a revocation check";
    }
    warnings.push_back(std::move(w));
  }
}

// One line per file: identity and state. A change in any field means "reload".
std::string file_signature(const trust_options& options) {
  std::string sig;
  const auto add = [&sig](const std::filesystem::path& p) {
    struct stat st {};
    sig += p.string();
    if (::stat(p.c_str(), &st) != 0) {
      sig += " missing:" + std::to_string(errno) + "\n";
      return;
    }
    sig += " " + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + " " +
           std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec) + " " + std::to_string(st.st_ctim.tv_sec) + "." +
           std::to_string(st.st_ctim.tv_nsec) + "\n";
  };
  add(options.ca_bundle);
  for (const auto& p : options.crls)
    add(p);
  return sig;
}

}  // namespace

std::shared_ptr<const trust_snapshot> trust_snapshot::load(const trust_options& options) {
  ossl::error_mark mark;
  if (options.crl_required.value_or(false) && options.crls.empty()) {
    fail(errc::bad_config,
         "CRLs are required (crl_required) but no CRL file is configured, so every device would "
         "be refused (no_crl); configure the CAs' CRLs, or set crl_required to false");
  }
  auto snap = std::make_shared<trust_snapshot>();
  snap->cas = load_bundle(options.ca_bundle);
  check_complete(snap->cas, options);
  snap->partial_chain = options.allow_partial_chain;
  snap->crl_required = options.requires_crl();
  snap->store.reset(X509_STORE_new());
  if (!snap->store) detail::fail_openssl(errc::crypto_failure, "cannot create an X509_STORE");
  for (const auto& x : snap->cas) {
    if (X509_STORE_add_cert(snap->store.get(), x.get()) != 1) {
      // Duplicates are harmless (OpenSSL 3 ignores them); anything else is not.
      detail::fail_openssl(
          errc::bad_ca_bundle,
          "cannot add '" + name_text(X509_get_subject_name(x.get())) + "' to the trust store");
    }
  }
  for (const auto& path : options.crls) {
    const std::string data = detail::read_file(path, "CRL");
    auto parsed = detail::parse_crls(data);
    if (!parsed.ok) fail(errc::bad_crl, "CRL " + path.string() + ": " + parsed.error);
    for (auto& c : parsed.crls) {
      auto entry = load_crl(std::move(c), snap->cas, path.string(), snap->summary.warnings);
      // Keep only the newest CRL per issuer and scope (latest thisUpdate): which of several
      // files configured for one CA decides must not depend on the order they are listed in.
      // The scope is part of the key because a CA may split its CRL into one for end-entity
      // and one for CA certificates; keeping only the newer would leave the other kind without.
      const auto same = std::find_if(snap->crls.begin(), snap->crls.end(), [&](const auto& e) {
        return same_ca(e.issuer, entry.issuer) && e.only_user_certs == entry.only_user_certs &&
               e.only_ca_certs == entry.only_ca_certs;
      });
      if (same == snap->crls.end()) {
        snap->crls.push_back(std::move(entry));
      } else if (entry.this_update > same->this_update) {
        *same = std::move(entry);
      }
    }
  }
  warn_missing_crls(*snap, snap->summary.warnings);
  warn_expired_cas(snap->cas, snap->summary.warnings);
  snap->summary.ca_count = snap->cas.size();
  snap->summary.crl_count = snap->crls.size();
  snap->summary.crl_required = snap->crl_required;
  snap->summary.loaded_at = std::chrono::system_clock::now();
  for (const auto& x : snap->cas) {
    std::time_t t = 0;
    if (detail::to_time_t(X509_get0_notBefore(x.get()), t)) snap->validity_events.push_back(t);
    if (detail::to_time_t(X509_get0_notAfter(x.get()), t)) {
      snap->validity_events.push_back(t);
      snap->summary.ca_expiry.emplace_back(name_text(X509_get_subject_name(x.get())),
                                           std::chrono::system_clock::from_time_t(t));
    }
  }
  for (const auto& c : snap->crls) {
    std::time_t t = 0;
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(c.crl.get());
    if (next != nullptr && detail::to_time_t(next, t))
      snap->summary.crl_next_update.emplace_back(c.file, std::chrono::system_clock::from_time_t(t));
  }
  std::sort(snap->validity_events.begin(), snap->validity_events.end());
  static std::atomic<std::uint64_t> last_generation{0};
  snap->generation = last_generation.fetch_add(1, std::memory_order_relaxed) + 1;
  return snap;
}

const trust_snapshot::crl_entry* trust_snapshot::crl_for(X509* issuer, bool is_ca) const {
  const crl_entry* best = nullptr;
  for (const auto& e : crls) {
    if (!e.covers(is_ca) || !same_ca(e.issuer, issuer)) continue;
    if (best == nullptr || e.this_update > best->this_update) best = &e;
  }
  return best;
}

bool trust_snapshot::has_crl(X509* issuer) const {
  return std::any_of(crls.begin(), crls.end(),
                     [&](const crl_entry& e) { return same_ca(e.issuer, issuer); });
}

trust_store::trust_store(trust_options options) : options_(std::move(options)) {
  attempted_signature_ = file_signature(options_);
  current_ = trust_snapshot::load(options_);
}

trust_store::~trust_store() = default;

std::shared_ptr<const trust_snapshot> trust_store::snapshot() const {
  std::lock_guard lock(mutex_);
  return current_;
}

trust_summary trust_store::summary() const {
  return snapshot()->summary;
}

reload_result trust_store::reload_if_changed() {
  std::lock_guard reload_lock(reload_mutex_);
  std::string sig = file_signature(options_);
  {
    std::lock_guard lock(mutex_);
    if (sig == attempted_signature_) return {};
  }
  return load_and_swap(std::move(sig));
}

reload_result trust_store::reload() {
  std::lock_guard reload_lock(reload_mutex_);
  return load_and_swap(file_signature(options_));
}

reload_result trust_store::load_and_swap(std::string signature) {
  reload_result r;
  std::shared_ptr<const trust_snapshot> next;
  try {
    // Loading runs outside mutex_: verifiers keep using the old snapshot meanwhile.
    next = trust_snapshot::load(options_);
  } catch (const std::system_error& e) {
    r.error = e.code();
    r.message = e.what();
  }
  std::shared_ptr<const trust_snapshot> old;
  {
    std::lock_guard lock(mutex_);
    attempted_signature_ = std::move(signature);
    if (next) {
      r.warnings = next->summary.warnings;
      old = std::move(current_);
      current_ = std::move(next);
      r.changed = true;
    }
  }
  // `old` is released here, outside the lock; verifiers still holding it keep it alive.
  return r;
}

}  // namespace tunnelgate::certauth
