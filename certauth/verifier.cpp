#include <openssl/ssl.h>

#include <algorithm>
#include <ctime>
#include <limits>

#include "certauth/certauth.hpp"
#include "certauth/codec.hpp"
#include "certauth/error.hpp"
#include "certauth/identity.hpp"
#include "certauth/ossl.hpp"
#include "certauth/trust_store.hpp"
#include "certauth/verify_cache.hpp"

namespace tunnelgate::certauth {

namespace {

using detail::name_text;

std::string_view fix_of(reason r) {
  const std::string_view d = describe(r);
  const auto semi = d.find("; ");
  return semi == std::string_view::npos ? d : d.substr(semi + 2);
}

verify_result refuse(reason r, std::string specific) {
  verify_result v;
  v.code = r;
  v.detail = std::move(specific);
  if (const auto fix = fix_of(r); !fix.empty() && r != reason::malformed) {
    v.detail += "; ";
    v.detail += fix;
  }
  return v;
}

std::string cert_label(X509* x, int depth) {
  return "certificate '" + name_text(X509_get_subject_name(x)) + "' (depth " +
         std::to_string(depth) + ")";
}

bool is_weak_digest(int mdnid) {
  return mdnid == NID_md5 || mdnid == NID_sha1 || mdnid == NID_md4 || mdnid == NID_md2 ||
         mdnid == NID_md5_sha1 || mdnid == NID_mdc2;
}

// Empty when the key is acceptable, else what is wrong with it.
std::string key_problem(X509* x) {
  EVP_PKEY* k = X509_get0_pubkey(x);
  if (k == nullptr) return "has a public key OpenSSL cannot decode";
  const int bits = EVP_PKEY_get_bits(k);
  switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
      if (bits < 2048) return "has an RSA key of " + std::to_string(bits) + " bits (minimum 2048)";
      return {};
    case EVP_PKEY_EC:
      // The group order size: 256 for P-256 (and brainpoolP256r1), 224 for P-224, ...
      if (bits < 256) return "has an EC key of " + std::to_string(bits) + " bits (minimum P-256)";
      return {};
    case EVP_PKEY_ED25519:
    case EVP_PKEY_ED448:
      return {};
    default:
      return std::string("has a key of type ") + OBJ_nid2sn(EVP_PKEY_get_base_id(k)) +
             ", which is not allowed (use EC P-256 or better, or RSA 2048 or better)";
  }
}

// Empty when the signature algorithm is acceptable. OpenSSL's own table gives the digest and
// its security strength (SHA-1 counts as 63 bits since OpenSSL 3), RSA-PSS included.
std::string signature_problem(const X509* x) {
  int mdnid = NID_undef, pknid = NID_undef, secbits = 0;
  uint32_t flags = 0;
  if (X509_get_signature_info(const_cast<X509*>(x), &mdnid, &pknid, &secbits, &flags) != 1) {
    return std::string("is signed with an unsupported algorithm (") +
           OBJ_nid2sn(X509_get_signature_nid(x)) + ")";
  }
  if (is_weak_digest(mdnid) || secbits < 112) {
    return std::string("is signed with ") + OBJ_nid2ln(X509_get_signature_nid(x)) +
           " (MD5 and SHA-1 are not accepted)";
  }
  return {};
}

std::chrono::system_clock::time_point to_tp(std::time_t t) {
  return std::chrono::system_clock::from_time_t(t);
}

// What OpenSSL found during X509_verify_cert that chain_callback let pass, to be turned into a
// verdict at its place in the documented order. Lives on run()'s stack (the context's app data).
struct chain_notes {
  int purpose_depth = -1;  // the first certificate unfit for the SSL client purpose, if any
};

// OpenSSL checks validity times (so that its issuer search prefers a CA certificate valid now
// over an expired one of the same name and key) and the SSL client purpose (so that a CA's
// extendedKeyUsage limits what it may issue). Neither decides here: times are judged in run()
// with the configured clock skew, and a purpose failure is reported as bad_eku after the
// revocation checks, so that one chain always gets the same single code.
int chain_callback(int ok, X509_STORE_CTX* ctx) {
  if (ok == 1) return 1;
  switch (X509_STORE_CTX_get_error(ctx)) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return 1;
    case X509_V_ERR_INVALID_PURPOSE: {
      auto* notes = static_cast<chain_notes*>(X509_STORE_CTX_get_app_data(ctx));
      if (notes == nullptr) return 0;
      if (notes->purpose_depth < 0) notes->purpose_depth = X509_STORE_CTX_get_error_depth(ctx);
      return 1;
    }
    default:
      return 0;
  }
}

// Maps X509_verify_cert's failure to our codes. Time and purpose failures are passed over by
// chain_callback and revocation is not checked by OpenSSL (we do it with our CRL index and
// policy), so what remains is chain construction.
reason map_chain_error(int err, X509* at) {
  switch (err) {
    case X509_V_ERR_CA_MD_TOO_WEAK:
      return reason::weak_signature;
    case X509_V_ERR_EE_KEY_TOO_SMALL:
    case X509_V_ERR_CA_KEY_TOO_SMALL:
      return reason::weak_key;
    case X509_V_ERR_INVALID_PURPOSE:
      return reason::bad_eku;
    case X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION:
    case X509_V_ERR_INVALID_EXTENSION:
    case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
    case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
    case X509_V_ERR_INVALID_NON_CA:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
      return reason::malformed;
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      // A weak algorithm the provider refuses to verify is still a weak signature.
      if (at != nullptr && !signature_problem(at).empty()) return reason::weak_signature;
      return reason::unknown_ca;
    default:
      return reason::unknown_ca;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

verifier::verifier(std::shared_ptr<trust_store> store, verify_policy policy,
                   std::shared_ptr<const revocation_checker> extra_revocation)
    : store_(std::move(store)), policy_(std::move(policy)), extra_(std::move(extra_revocation)) {
  if (!store_) detail::fail(errc::bad_config, "verifier needs a trust store");
  if (policy_.clock_skew < std::chrono::seconds(0) || policy_.clock_skew > std::chrono::hours(24)) {
    detail::fail(errc::bad_config, "clock skew must be between 0 and 86400 seconds");
  }
  auto m = std::make_unique<compiled_mapping>();
  m->udid = detail::compile_field(policy_.identity.udid, "udid", false);
  m->user = detail::compile_field(policy_.identity.user, "user", false);
  m->serial = detail::compile_field(policy_.identity.serial, "serial", true);
  mapping_ = std::move(m);
  if (policy_.cache_ttl < std::chrono::seconds(0) || policy_.cache_ttl > std::chrono::hours(24)) {
    detail::fail(errc::bad_config, "cache TTL must be between 0 and 86400 seconds");
  }
  // A revocation_checker answers from its own, changing, state (OCSP responses), which the
  // cache's bounds know nothing about: with one, every verification runs in full.
  if (policy_.cache_ttl > std::chrono::seconds(0) && policy_.cache_size > 0 && !extra_) {
    cache_ = std::make_unique<detail::verify_cache>(policy_.cache_size);
  }
}

verifier::~verifier() = default;

namespace {

struct run_context {
  const trust_snapshot& snap;
  const verify_policy& policy;
  const verifier::compiled_mapping& mapping;
  const revocation_checker* extra;
  std::chrono::system_clock::time_point now;
};

// The last second at which a verdict reached at `now` still holds as far as time goes: each
// time-dependent check in run() narrows it to the moment that check would answer otherwise.
// Only an accepted verdict uses it (for the cache), so every check it saw had passed.
class time_bound {
 public:
  explicit time_bound(std::time_t now) : now_(now) {}
  /// The verdict holds while now <= t.
  void until(std::time_t t) { last_ = std::min(last_, t); }
  /// Something changes at time t (>= t is different from < t), if that is still ahead.
  void event(std::time_t t) {
    if (t > now_) until(t - 1);
  }
  std::time_t last() const { return last_; }

 private:
  std::time_t now_;
  std::time_t last_ = std::numeric_limits<std::time_t>::max();
};

// OpenSSL prefers an issuer valid at the verification time, so the chain it builds can change
// when any certificate it may pick (a bundle CA, one the peer sent) starts or stops being
// valid, without skew. Conservative: the entry ends at the first such moment.
void bound_issuer_choice(const trust_snapshot& snap, X509* leaf, STACK_OF(X509) * untrusted,
                         std::time_t now, time_bound& bound) {
  const auto next = std::upper_bound(snap.validity_events.begin(), snap.validity_events.end(), now);
  if (next != snap.validity_events.end()) bound.event(*next);
  const auto add = [&bound](X509* x) {
    std::time_t t = 0;
    if (detail::to_time_t(X509_get0_notBefore(x), t)) bound.event(t);
    if (detail::to_time_t(X509_get0_notAfter(x), t)) bound.event(t);
  };
  add(leaf);
  for (int i = 0; i < sk_X509_num(untrusted); ++i)
    add(sk_X509_value(untrusted, i));
}

}  // namespace

verify_result detail::check_identity(X509* leaf, const verifier::compiled_mapping& mapping,
                                     std::time_t nb, std::time_t na,
                                     std::vector<std::string> warnings) {
  int crit = -1;
  ossl::general_names_ptr sans(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, nullptr)));
  if (!sans && crit != -1) {
    return refuse(reason::malformed, crit == -2
                                         ? "the leaf has more than one subjectAltName extension"
                                         : "the leaf's subjectAltName extension cannot be decoded");
  }

  struct wanted {
    const detail::compiled_field& field;
    const char* name;
    reason absent;
    std::string (*check)(std::string_view);
    std::string value;
  };
  wanted fields[] = {
      {mapping.udid, "udid", reason::no_udid, &check_udid_value, {}},
      {mapping.user, "user", reason::no_user, &check_user_value, {}},
      {mapping.serial, "serial", reason::ok, &check_serial_value, {}},
  };
  // Absence first for all fields, then values: "no_user" is the more useful message when a
  // certificate both lacks the user and has an odd CN.
  std::vector<detail::extraction> got;
  for (auto& w : fields) {
    got.push_back(detail::extract_field(leaf, sans.get(), w.field));
    if (got.back().result == detail::extraction::status::absent && w.absent != reason::ok) {
      return refuse(
          w.absent,
          "the leaf has no " + w.field.source +
              (w.field.prefix.empty() ? "" : " value starting with '" + w.field.prefix + "'") +
              " (mapped to the " + w.name + ")");
    }
  }
  for (std::size_t i = 0; i < std::size(fields); ++i) {
    auto& w = fields[i];
    auto& g = got[i];
    if (g.result == detail::extraction::status::absent) continue;
    if (g.result != detail::extraction::status::found) {
      return refuse(reason::bad_identity_value, std::string(w.name) + ": " + g.detail);
    }
    if (auto problem = w.check(g.value); !problem.empty()) {
      return refuse(reason::bad_identity_value,
                    std::string(w.name) + " from " + w.field.source + ": " + problem);
    }
    w.value = std::move(g.value);
  }

  verify_result v;
  v.code = reason::ok;
  v.warnings = std::move(warnings);
  device_identity& id = v.identity.emplace();
  id.udid = std::move(fields[0].value);
  id.user = std::move(fields[1].value);
  id.serial = std::move(fields[2].value);
  id.fingerprint_sha256 = detail::fingerprint_sha256(leaf);
  id.certificate_serial = detail::serial_hex(X509_get0_serialNumber(leaf));
  id.subject = name_text(X509_get_subject_name(leaf));
  id.issuer = name_text(X509_get_issuer_name(leaf));
  id.not_before = to_tp(nb);
  id.not_after = to_tp(na);
  return v;
}

namespace {

// The full verification. When `valid_until` is not null and the verdict is ok, it receives the
// last second at which this verdict still holds (time_bound).
verify_result run(const run_context& rc, X509* leaf, STACK_OF(X509) * untrusted,
                  std::time_t* valid_until) {
  const auto now_tp = rc.now;
  const std::time_t now = std::chrono::system_clock::to_time_t(now_tp);
  const std::time_t skew = static_cast<std::time_t>(rc.policy.clock_skew.count());
  time_bound bound(now);

  if ((X509_get_extension_flags(leaf) & EXFLAG_INVALID) != 0) {
    return refuse(reason::malformed, "the leaf certificate has invalid or duplicate extensions");
  }

  ossl::x509_store_ctx_ptr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), rc.snap.store.get(), leaf, untrusted) != 1) {
    return refuse(reason::unknown_ca, "internal error: cannot set up chain verification");
  }
  // OpenSSL builds and signature-checks the chain, choosing issuers valid at our clock and
  // checking the SSL client purpose; chain_callback defers its time and purpose verdicts to
  // the checks below. Revocation is ours too (CRL index, crl_required, stale-CRL policy).
  // X509_VERIFY_PARAM_set_purpose rather than X509_STORE_CTX_set_purpose: the latter would
  // also switch the trust setting from the default to SSL client, which is not what we ask.
  X509_STORE_CTX_set_time(ctx.get(), 0, now);
  X509_VERIFY_PARAM_set_purpose(X509_STORE_CTX_get0_param(ctx.get()), X509_PURPOSE_SSL_CLIENT);
  if (rc.snap.partial_chain) X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_PARTIAL_CHAIN);
  chain_notes notes;
  X509_STORE_CTX_set_app_data(ctx.get(), &notes);
  X509_STORE_CTX_set_verify_cb(ctx.get(), chain_callback);
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    const int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    X509* at = X509_STORE_CTX_get_current_cert(ctx.get());
    if (at == nullptr) at = leaf;
    const reason r = map_chain_error(err, at);
    std::string what = cert_label(at, depth) + ": " + X509_verify_cert_error_string(err);
    if (r == reason::unknown_ca) what += " (issuer '" + name_text(X509_get_issuer_name(at)) + "')";
    return refuse(r, what);
  }
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
  const int n = sk_X509_num(chain);

  for (int i = 0; i < n; ++i) {
    X509* x = sk_X509_value(chain, i);
    if ((X509_get_extension_flags(x) & EXFLAG_INVALID) != 0) {
      return refuse(reason::malformed, cert_label(x, i) + " has invalid extensions");
    }
  }
  // Key and signature strength over the whole chain, trust anchor included (the issue asks
  // for "no MD5/SHA-1 anywhere"; a root with a SHA-1 self-signature is a CA to replace).
  for (int i = 0; i < n; ++i) {
    X509* x = sk_X509_value(chain, i);
    if (auto p = key_problem(x); !p.empty())
      return refuse(reason::weak_key, cert_label(x, i) + " " + p);
  }
  for (int i = 0; i < n; ++i) {
    X509* x = sk_X509_value(chain, i);
    if (auto p = signature_problem(x); !p.empty()) {
      return refuse(reason::weak_signature, cert_label(x, i) + " " + p);
    }
  }

  std::time_t leaf_nb = 0, leaf_na = 0;
  for (int i = 0; i < n; ++i) {
    X509* x = sk_X509_value(chain, i);
    std::time_t nb = 0, na = 0;
    if (!detail::to_time_t(X509_get0_notBefore(x), nb) ||
        !detail::to_time_t(X509_get0_notAfter(x), na)) {
      return refuse(reason::malformed, cert_label(x, i) + " has an invalid validity time");
    }
    if (i == 0) {
      leaf_nb = nb;
      leaf_na = na;
    }
    // notBefore needs no bound: a cache entry is used only at its verification time or later.
    bound.until(na + skew);
    if (na < now - skew) {
      return refuse(reason::expired, cert_label(x, i) + " expired at " + detail::iso8601(na) +
                                         " (now " + detail::iso8601(now) + ", clock skew " +
                                         std::to_string(skew) + " s)");
    }
    if (nb > now + skew) {
      return refuse(reason::not_yet_valid,
                    cert_label(x, i) + " is valid only from " + detail::iso8601(nb) + " (now " +
                        detail::iso8601(now) + ", clock skew " + std::to_string(skew) + " s)");
    }
  }

  // Revocation of every certificate below the trust anchor. A revocation entry outranks a
  // missing or stale CRL elsewhere in the chain: a list that names the certificate is evidence
  // against it, a missing or stale one only the absence of evidence.
  std::vector<std::string> warnings;
  const int checked = n - 1;  // chain[n-1] is the anchor
  std::vector<const trust_snapshot::crl_entry*> crls(
      static_cast<std::size_t>(std::max(checked, 0)));
  int without_crl = -1;  // the first certificate with no CRL of its issuer in scope
  for (int i = 0; i < checked; ++i) {
    X509* x = sk_X509_value(chain, i);
    X509* issuer = sk_X509_value(chain, i + 1);
    const bool is_ca = (X509_get_extension_flags(x) & EXFLAG_CA) != 0;
    const auto* e = rc.snap.crl_for(issuer, is_ca);
    crls[static_cast<std::size_t>(i)] = e;
    if (e == nullptr) {
      if (without_crl < 0) without_crl = i;
      continue;
    }
    X509_REVOKED* entry = nullptr;
    if (X509_CRL_get0_by_cert(e->crl.get(), &entry, x) == 1) {
      std::string when;
      std::time_t t = 0;
      if (detail::to_time_t(X509_REVOKED_get0_revocationDate(entry), t))
        when = " on " + detail::iso8601(t);
      return refuse(reason::revoked, cert_label(x, i) + " serial " +
                                         detail::serial_hex(X509_get0_serialNumber(x)) +
                                         " was revoked" + when + " (CRL " + e->file + ")");
    }
  }
  // The one place no_crl is decided: a certificate we could not check for revocation, with
  // CRLs required (trust_options::crl_required). Otherwise it passes unchecked, as the load
  // warnings announced for its issuer.
  if (without_crl >= 0 && rc.snap.crl_required) {
    X509* x = sk_X509_value(chain, without_crl);
    X509* issuer = sk_X509_value(chain, without_crl + 1);
    const std::string issuer_name = "'" + name_text(X509_get_subject_name(issuer)) + "'";
    const bool is_ca = (X509_get_extension_flags(x) & EXFLAG_CA) != 0;
    std::string why = rc.snap.has_crl(issuer)
                          ? "the CRLs of its issuer " + issuer_name + " cover only " +
                                (is_ca ? "end-entity" : "CA") + " certificates"
                          : "no configured CRL is signed by its issuer " + issuer_name;
    return refuse(reason::no_crl,
                  cert_label(x, without_crl) + " cannot be checked for revocation: " + why);
  }
  for (int i = 0; i < checked; ++i) {
    const auto* e = crls[static_cast<std::size_t>(i)];
    if (e == nullptr) continue;
    std::string stale;
    std::time_t t = 0;
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(e->crl.get());
    const bool has_next = next != nullptr && detail::to_time_t(next, t);
    if (has_next && t < now - skew) {
      stale = "past its nextUpdate " + detail::iso8601(t);  // and stays so: no bound
    } else {
      // Fresh now; stale (refused, or a warning to add) after nextUpdate + skew.
      if (has_next) bound.until(t + skew);
      if (detail::to_time_t(X509_CRL_get0_lastUpdate(e->crl.get()), t) && t > now + skew) {
        stale = "not valid until " + detail::iso8601(t) + " (check the clocks)";
        bound.until(t - skew - 1);  // under `warn`: the warning goes away then
      }
    }
    if (stale.empty()) continue;
    X509* x = sk_X509_value(chain, i);
    std::string what = "the CRL for " + cert_label(x, i) + " (" + e->file + ") is " + stale;
    if (rc.policy.stale_crl == stale_crl_policy::refuse) return refuse(reason::crl_expired, what);
    warnings.push_back(what + "; accepted because the stale-CRL policy is 'warn'");
  }
  if (rc.extra != nullptr) {
    for (int i = 0; i < checked; ++i) {
      X509* x = sk_X509_value(chain, i);
      auto v = rc.extra->check(x, sk_X509_value(chain, i + 1), now_tp);
      if (v.code != reason::ok) return refuse(v.code, cert_label(x, i) + ": " + v.detail);
      if (!v.detail.empty()) warnings.push_back(std::move(v.detail));
    }
  }

  // The leaf must be fit for TLS client authentication. An absent EKU means "any" (RFC 5280).
  const uint32_t leaf_flags = X509_get_extension_flags(leaf);
  if ((leaf_flags & EXFLAG_XKUSAGE) != 0 &&
      (X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT) == 0) {
    return refuse(reason::bad_eku,
                  cert_label(leaf, 0) + " has extendedKeyUsage without clientAuth");
  }
  if ((leaf_flags & EXFLAG_KUSAGE) != 0 && (X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE) == 0) {
    return refuse(reason::bad_eku, cert_label(leaf, 0) + " has keyUsage without digitalSignature");
  }
  if ((leaf_flags & EXFLAG_CA) != 0) {
    // A CA certificate (e.g. the device root itself) presented as a device certificate.
    return refuse(reason::bad_eku, cert_label(leaf, 0) + " is a CA certificate, not a device one");
  }
  // What OpenSSL's SSL client purpose refused beyond the checks above: mostly a CA whose
  // extendedKeyUsage does not include clientAuth, which may not vouch for client certificates
  // (for the leaf, what is left is e.g. a Netscape certificate type without SSL client).
  if (notes.purpose_depth >= 0 && notes.purpose_depth < n) {
    const int depth = notes.purpose_depth;
    X509* x = sk_X509_value(chain, depth);
    const bool no_client_eku = (X509_get_extension_flags(x) & EXFLAG_XKUSAGE) != 0 &&
                               (X509_get_extended_key_usage(x) & XKU_SSL_CLIENT) == 0;
    return refuse(reason::bad_eku,
                  cert_label(x, depth) +
                      (depth > 0 && no_client_eku
                           ? " has extendedKeyUsage without clientAuth, so it may not issue "
                             "device certificates"
                           : " is not valid for TLS client authentication (OpenSSL's SSL "
                             "client purpose check)"));
  }
  auto v = detail::check_identity(leaf, rc.mapping, leaf_nb, leaf_na, std::move(warnings));
  if (valid_until != nullptr && v.ok()) {
    bound_issuer_choice(rc.snap, leaf, untrusted, now, bound);
    *valid_until = bound.last();
  }
  return v;
}

}  // namespace

verify_result verifier::verify(X509* leaf, STACK_OF(X509) * untrusted) const {
  ossl::error_mark mark;
  if (leaf == nullptr) return refuse(reason::no_certificate, "no certificate was presented");
  const auto snap = store_->snapshot();
  const auto now = policy_.clock ? policy_.clock() : std::chrono::system_clock::now();
  const run_context rc{*snap, policy_, *mapping_, extra_.get(), now};
  detail::cache_key key{};
  if (!cache_ || !cache_->key_of(leaf, untrusted, key)) return run(rc, leaf, untrusted, nullptr);
  if (auto hit = cache_->find(key, snap->generation, now)) return *hit;
  std::time_t valid_until = 0;
  auto result = run(rc, leaf, untrusted, &valid_until);
  if (result.ok() && std::chrono::system_clock::to_time_t(now) <= valid_until) {
    const detail::cache_validity validity{snap->generation, now, now + policy_.cache_ttl,
                                          valid_until};
    cache_->insert(key, validity, std::make_shared<const verify_result>(result));
  }
  return result;
}

verify_cache_stats verifier::cache_stats() const {
  return cache_ ? cache_->stats() : verify_cache_stats{};
}

verify_result verifier::verify(const SSL* ssl) const {
  if (ssl == nullptr) return refuse(reason::no_certificate, "no TLS connection");
  return verify(SSL_get0_peer_certificate(ssl), SSL_get_peer_cert_chain(ssl));
}

verify_result verifier::verify(X509_STORE_CTX* ctx) const {
  if (ctx == nullptr) return refuse(reason::no_certificate, "no verification context");
  return verify(X509_STORE_CTX_get0_cert(ctx), X509_STORE_CTX_get0_untrusted(ctx));
}

verify_result verifier::verify_encoded(std::string_view data) const {
  const std::string_view parts[] = {data};
  return verify_encoded(parts);
}

verify_result verifier::verify_encoded(std::span<const std::string_view> parts) const {
  ossl::error_mark mark;
  std::vector<ossl::x509_ptr> certs;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    auto parsed = detail::parse_certificates(parts[i]);
    if (!parsed.ok) {
      return refuse(reason::malformed,
                    (parts.size() > 1 ? "input " + std::to_string(i + 1) + ": " : std::string()) +
                        parsed.error);
    }
    for (auto& c : parsed.certs)
      certs.push_back(std::move(c));
  }
  if (certs.empty()) return refuse(reason::no_certificate, "the input holds no certificate");
  ossl::x509_stack_ptr rest(sk_X509_new_null());
  for (std::size_t i = 1; i < certs.size(); ++i) {
    if (!rest || sk_X509_push(rest.get(), certs[i].get()) <= 0) {
      return refuse(reason::malformed, "internal error: out of memory");
    }
    (void)certs[i].release();  // now owned by `rest`
  }
  return verify(certs.front().get(), rest.get());
}

}  // namespace tunnelgate::certauth
