// certauth — decide whether a device's client certificate chain is acceptable and who it names.
//
// The one public header of the library (DESIGN.md §4). Three parts:
//   * trust_store: the device CA bundle and CRL files, loaded into immutable snapshots that are
//     swapped atomically when the files change (reload_if_changed()).
//   * verifier: checks a peer chain against the current snapshot and a verify_policy and returns
//     either a device_identity or a refusal with a reason code.
//   * dev_ca: a small file-backed development CA (root, gateway server certificate, device
//     certificates shaped like UEM-issued ones, CRL) for demos and tests; `tunnelctl ca` wraps it.
//
// Errors that are not a verdict on a certificate (unreadable file, bad bundle, bad
// configuration) are reported as std::system_error carrying a certauth::errc.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include <openssl/types.h>

struct stack_st_X509;  // STACK_OF(X509); declared here so the header needs no <openssl/x509.h>

namespace tunnelgate::certauth {

// ---------------------------------------------------------------------------------------------
// Reason codes and errors
// ---------------------------------------------------------------------------------------------

/// The verdict on a certificate chain. Every value but `ok` is a refusal; the names (see
/// to_string) are stable and reach logs, metrics and the client's error message. New values are
/// added at the end, so the numbers of the others stay the same.
enum class reason : int {
  ok = 0,              ///< accepted; an identity was extracted
  no_certificate,      ///< the peer presented no certificate (or the input held none)
  unknown_ca,          ///< no chain to a trusted device CA (also: an issuer that is not a CA)
  expired,             ///< a certificate in the chain is past notAfter (+ clock skew)
  not_yet_valid,       ///< a certificate in the chain is before notBefore (- clock skew)
  revoked,             ///< the leaf or an intermediate is listed in its issuer's CRL
  crl_expired,         ///< the applicable CRL is past nextUpdate and policy says refuse
  bad_eku,             ///< extendedKeyUsage present without clientAuth (or keyUsage unfit)
  weak_key,            ///< RSA < 2048 bits, EC < 256 bits, or a key type not allowed
  weak_signature,      ///< MD5/SHA-1 (or weaker) signature somewhere in the chain
  no_udid,             ///< the field mapped to the UDID is absent
  no_user,             ///< the field mapped to the user is absent
  bad_identity_value,  ///< a mapped value is too long, has bad characters or is ambiguous
  malformed,           ///< the input is not a parseable certificate
  no_crl,              ///< CRLs required, and a chain certificate has no CRL of its issuer in scope
};

/// Stable lower-case name, e.g. "unknown_ca".
std::string_view to_string(reason r) noexcept;
/// Parses a name produced by to_string; nullopt for anything else.
std::optional<reason> reason_from_string(std::string_view name) noexcept;
/// One sentence for administrators: what the code means and the typical fix.
std::string_view describe(reason r) noexcept;

/// Failures that are not a verdict on a certificate.
enum class errc : int {
  file_unreadable = 1,  ///< a configured file cannot be read (missing, permissions)
  bad_ca_bundle,        ///< the CA bundle is empty, unparseable or holds a non-CA certificate
  incomplete_bundle,    ///< an intermediate's issuer is missing and partial chains are not allowed
  bad_crl,              ///< a CRL file is unparseable, unsupported or not signed by a bundle CA
  bad_config,           ///< an invalid identity mapping or policy value, or crl_required
                        ///< without any CRL file
  bad_argument,         ///< an invalid argument to a dev_ca operation (udid, user, key size…)
  ca_exists,            ///< dev_ca::init on a directory that already holds a CA
  ca_not_found,         ///< dev_ca::open on a directory without a (valid) CA
  no_match,             ///< dev_ca::revoke found no certificate with that serial or UDID
  crypto_failure,       ///< OpenSSL failed (out of memory, key generation, signing)
};

const std::error_category& reason_category() noexcept;
const std::error_category& error_category() noexcept;
std::error_code make_error_code(reason r) noexcept;
std::error_code make_error_code(errc e) noexcept;

// ---------------------------------------------------------------------------------------------
// Identity mapping
// ---------------------------------------------------------------------------------------------

/// Where one identity value comes from.
///
/// `source` is one of
///   "subject.<attr>"  a subject attribute by short name, long name or dotted OID
///                     ("subject.CN", "subject.serialNumber", "subject.UID", "subject.2.5.4.45")
///   "san.email"       subjectAltName rfc822Name
///   "san.uri"         subjectAltName uniformResourceIdentifier
///   "san.dns"         subjectAltName dNSName
///   "san.upn"         subjectAltName otherName Microsoft UPN (1.3.6.1.4.1.311.20.2.3)
/// `prefix`, when not empty, selects only values starting with it (ASCII case-insensitive) and
/// is stripped from the result, e.g. source "san.uri", prefix "urn:udid:".
/// Exactly one value must remain: none means the field is absent (no_udid / no_user), more than
/// one is ambiguous (bad_identity_value). There is never a fallback to another field.
struct field_mapping {
  std::string source;
  std::string prefix;
};

/// Defaults: UDID = subject CN, user = SAN email, serial = subject serialNumber.
/// The serial is informational: when its field is absent the identity's serial is empty (there
/// is no refusal code for it); set serial.source to "" to ignore it entirely.
struct identity_mapping {
  field_mapping udid{"subject.CN", ""};
  field_mapping user{"san.email", ""};
  field_mapping serial{"subject.serialNumber", ""};
};

/// Value rules applied before anything reaches a log or URL (bad_identity_value otherwise):
///   udid   1..128 chars of [A-Za-z0-9._:-]
///   user   1..254 chars of [A-Za-z0-9._+@-], at most one '@' and text on both sides of it
///   serial 1..64 chars of [A-Za-z0-9._-]
/// They return an empty string when the value is acceptable, else what is wrong with it.
std::string check_udid_value(std::string_view v);
std::string check_user_value(std::string_view v);
std::string check_serial_value(std::string_view v);

// ---------------------------------------------------------------------------------------------
// Verification results
// ---------------------------------------------------------------------------------------------

/// Who an accepted certificate names. All strings are validated ASCII.
struct device_identity {
  std::string udid;
  std::string user;
  std::string serial;              ///< device serial number; empty when not present
  std::string fingerprint_sha256;  ///< lower-case hex SHA-256 of the leaf DER (the "thumbprint")
  std::string certificate_serial;  ///< upper-case hex serial number of the leaf certificate
  std::string subject;             ///< RFC 2253, non-ASCII escaped
  std::string issuer;              ///< RFC 2253, non-ASCII escaped
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
};

struct verify_result {
  reason code = reason::malformed;
  /// For a refusal: a specific, log-safe explanation naming the certificate and the fix.
  std::string detail;
  /// Set exactly when code == reason::ok.
  std::optional<device_identity> identity;
  /// Conditions accepted by policy but worth logging (e.g. a stale CRL under `warn`).
  std::vector<std::string> warnings;

  bool ok() const noexcept { return code == reason::ok; }
};

// ---------------------------------------------------------------------------------------------
// Trust store
// ---------------------------------------------------------------------------------------------

struct trust_options {
  /// PEM bundle of device CAs: the root(s) and any intermediates. Required. Every certificate
  /// must be a CA (basicConstraints cA=TRUE).
  std::filesystem::path ca_bundle;
  /// CRL files, PEM (one or more CRLs) or DER. Each CRL must be signed by a CA in the bundle.
  std::vector<std::filesystem::path> crls;
  /// When false (default) every chain must end at a self-signed root in the bundle, and a
  /// bundle with an intermediate whose issuer is missing is refused (errc::incomplete_bundle).
  /// When true, any bundle certificate is a trust anchor and a chain may stop there; the CA
  /// above it (and its CRL) is then not consulted.
  bool allow_partial_chain = false;
  /// Whether every certificate whose revocation is checked (the leaf and each intermediate;
  /// not the trust anchor) must have a CRL of its issuer whose scope includes it. Without one
  /// it is refused with reason::no_crl instead of being accepted unchecked: a CA added without
  /// its CRL, a re-keyed CA, a CRL scoped to other certificates. Unset (the default) means
  /// "required when `crls` is not empty"; use requires_crl() for the value that applies.
  /// true with no CRL configured is refused at load (errc::bad_config): it refuses every device.
  std::optional<bool> crl_required;

  /// crl_required as it applies: its value when set, else whether any CRL is configured.
  bool requires_crl() const noexcept { return crl_required.value_or(!crls.empty()); }
};

class trust_snapshot;  // immutable; defined in the library

/// What a loaded snapshot holds, for logs and `tunnelctl`.
struct trust_summary {
  std::size_t ca_count = 0;
  std::size_t crl_count = 0;
  std::chrono::system_clock::time_point loaded_at;
  /// trust_options::requires_crl() of the options it was loaded with.
  bool crl_required = false;
  /// Load-time observations, one log-safe sentence each, naming the CA or file: a CRL already
  /// past nextUpdate or without one, each bundle CA that has no CRL (whether or not CRLs are
  /// required), an expired CA certificate. Meant to be logged at every (re)load.
  std::vector<std::string> warnings;
  /// When each bundle CA certificate expires (notAfter), by subject name.
  std::vector<std::pair<std::string, std::chrono::system_clock::time_point>> ca_expiry;
  /// When each CRL in use is next due (nextUpdate), by file; CRLs without one are left out.
  std::vector<std::pair<std::string, std::chrono::system_clock::time_point>> crl_next_update;
};

struct reload_result {
  bool changed = false;   ///< a new snapshot is in use
  std::error_code error;  ///< set when the files changed but could not be loaded
  std::string message;    ///< the error, naming the file; empty on success
  /// When `changed`: the new snapshot's load warnings (its trust_summary::warnings), so the
  /// caller can log them.
  std::vector<std::string> warnings;
};

/// The CA bundle and CRLs as an immutable snapshot, replaced whole on reload.
///
/// Thread safety: snapshot(), summary() and verification may run on any number of threads
/// while one thread calls reload()/reload_if_changed(). A reader always gets a complete
/// snapshot, the old or the new, never an empty or half-loaded one.
class trust_store {
 public:
  /// Loads the files; throws std::system_error (errc::file_unreadable, bad_ca_bundle,
  /// incomplete_bundle, bad_crl, bad_config) with a message naming the file and the fix.
  /// Log summary().warnings afterwards.
  explicit trust_store(trust_options options);
  ~trust_store();
  trust_store(const trust_store&) = delete;
  trust_store& operator=(const trust_store&) = delete;

  /// The snapshot in use. Cheap (a shared_ptr copy under a short lock).
  std::shared_ptr<const trust_snapshot> snapshot() const;
  trust_summary summary() const;

  /// Reloads when any file's (inode, size, mtime) differs from the last attempt. Meant to be
  /// called periodically (e.g. every few seconds, and on SIGHUP). A failed load keeps the old
  /// snapshot and is reported once per distinct file state; later calls on the same state
  /// return {changed=false} without retrying until a file changes again.
  reload_result reload_if_changed();
  /// Reloads unconditionally (same failure semantics).
  reload_result reload();

  const trust_options& options() const noexcept { return options_; }

 private:
  reload_result load_and_swap(std::string signature);

  const trust_options options_;
  mutable std::mutex mutex_;                       // guards current_ and attempted_signature_
  std::shared_ptr<const trust_snapshot> current_;  // never null after construction
  std::string attempted_signature_;                // file states of the last load attempt
  std::mutex reload_mutex_;                        // serialises reloads (loading runs unlocked)
};

// ---------------------------------------------------------------------------------------------
// Revocation extension point (OCSP later)
// ---------------------------------------------------------------------------------------------

/// An additional revocation source consulted after the CRL checks pass, for each certificate
/// of the verified chain except the trust anchor. It does not stand in for a CRL: with
/// trust_options::crl_required, a certificate without one is refused before it is consulted.
/// Implementations must be thread-safe and should answer from a cache (the verifier runs
/// inside the TLS handshake).
class revocation_checker {
 public:
  struct verdict {
    reason code = reason::ok;  ///< ok, or a refusal (normally revoked or crl_expired)
    std::string detail;        ///< explanation for a refusal, or a warning when code == ok
  };
  virtual ~revocation_checker() = default;
  /// `cert` and `issuer` are valid for the duration of the call only.
  virtual verdict check(X509* cert, X509* issuer,
                        std::chrono::system_clock::time_point now) const = 0;
};

// ---------------------------------------------------------------------------------------------
// Verifier
// ---------------------------------------------------------------------------------------------

/// What to do when the CRL for a certificate's issuer is past its nextUpdate.
enum class stale_crl_policy {
  refuse,  ///< reason::crl_expired (default: fail closed)
  warn,    ///< accept, and add a warning to verify_result::warnings
};

struct verify_policy {
  /// Tolerance applied to notBefore/notAfter and CRL thisUpdate/nextUpdate.
  std::chrono::seconds clock_skew{300};
  stale_crl_policy stale_crl = stale_crl_policy::refuse;
  identity_mapping identity;
  /// The time to verify at; empty means std::chrono::system_clock::now.
  std::function<std::chrono::system_clock::time_point()> clock;
  /// How long an accepted chain is remembered (0..86400 s; 0 disables the cache). A verdict is
  /// reused only for the same leaf and the same untrusted certificates (by SHA-256 of their
  /// DER), under the same trust snapshot (a reload forgets everything), and never beyond the
  /// moment the full verification would decide differently: the first notAfter (+ clock skew)
  /// in the chain, a CRL's nextUpdate (+ clock skew), a bundle or peer certificate becoming
  /// valid or expiring. Refusals are never remembered. No cache with a revocation_checker.
  std::chrono::seconds cache_ttl{60};
  /// The most entries the cache holds (0 disables it); the least recently used goes first.
  /// An entry takes about 0.8 KiB (100000: about 85 MB when full).
  std::size_t cache_size = 100000;
};

/// Counters of a verifier's cache since its construction (all zero when it is disabled).
struct verify_cache_stats {
  std::uint64_t hits = 0;       ///< verdicts answered from the cache
  std::uint64_t misses = 0;     ///< lookups that ran the full verification (expired entries too)
  std::uint64_t evictions = 0;  ///< entries dropped to stay within cache_size
  std::size_t entries = 0;      ///< entries held now
};

namespace detail {
class verify_cache;  // internal
}

/// Checks device certificate chains. All verify overloads are const and thread-safe; each uses
/// the trust snapshot current at its start. They never throw for bad certificates (that is a
/// verdict) and leave the calling thread's OpenSSL error queue as they found it.
///
/// Accepted verdicts are cached (verify_policy::cache_ttl, cache_size): a hit returns the
/// verify_result of the full verification of the same input under the same trust snapshot,
/// and only while that verification would still give it (see cache_ttl).
///
/// Order of checks, first failure wins: no_certificate, malformed, unknown_ca (chain building,
/// issuer basic constraints), weak_key, weak_signature, expired / not_yet_valid, revoked,
/// no_crl, crl_expired, revocation_checker, bad_eku (the leaf, then the CAs' extendedKeyUsage),
/// no_udid, no_user, bad_identity_value. Each refusal carries exactly one of these codes.
class verifier {
 public:
  /// Throws std::system_error(errc::bad_config) for an invalid mapping or policy.
  verifier(std::shared_ptr<trust_store> store, verify_policy policy = {},
           std::shared_ptr<const revocation_checker> extra_revocation = nullptr);
  ~verifier();
  verifier(const verifier&) = delete;
  verifier& operator=(const verifier&) = delete;

  /// `leaf` is the peer certificate (null means none was presented); `untrusted` the rest of
  /// what the peer sent (may be null, may contain the leaf). Neither is modified or retained.
  verify_result verify(X509* leaf, STACK_OF(X509) * untrusted) const;

  /// After a handshake: the peer certificate and chain of `ssl` (server or client side).
  verify_result verify(const SSL* ssl) const;

  /// From SSL_CTX_set_cert_verify_callback (the replacement for X509_verify_cert): uses the
  /// context's target certificate and untrusted chain; does not change `ctx`.
  verify_result verify(X509_STORE_CTX* ctx) const;

  /// Encoded input, leaf first. Each part is PEM (one or more CERTIFICATE blocks; other block
  /// types such as keys are ignored) or one DER certificate. No certificate at all gives
  /// no_certificate; bytes that do not parse give malformed.
  verify_result verify_encoded(std::span<const std::string_view> parts) const;
  verify_result verify_encoded(std::string_view data) const;

  const verify_policy& policy() const noexcept { return policy_; }
  const std::shared_ptr<trust_store>& store() const noexcept { return store_; }
  /// The cache's counters (verify_policy::cache_ttl); thread-safe, cheap (a short lock).
  verify_cache_stats cache_stats() const;

  struct compiled_mapping;  // internal

 private:
  std::shared_ptr<trust_store> store_;
  verify_policy policy_;
  std::shared_ptr<const revocation_checker> extra_;
  std::unique_ptr<const compiled_mapping> mapping_;
  std::unique_ptr<detail::verify_cache> cache_;  // null when disabled
};

// ---------------------------------------------------------------------------------------------
// Development CA
// ---------------------------------------------------------------------------------------------

struct key_spec {
  enum class kind { ec_p256, rsa };
  kind type = kind::ec_p256;
  int rsa_bits = 2048;  ///< 2048..8192, used when type == rsa
};

struct ca_init_options {
  key_spec key;                          ///< root and server key
  std::vector<std::string> server_sans;  ///< extra server SANs (DNS names or IP literals)
  int root_days = 3650;
  int server_days = 825;
  std::string name = "tunnelgate dev";  ///< organisation in the subjects
};

struct device_request {
  std::string udid;      ///< subject CN (and SAN URI urn:udid:<udid>)
  std::string user;      ///< SAN rfc822Name
  std::string serial;    ///< subject serialNumber; optional
  std::string platform;  ///< subject OU; optional: ios, android, macos, windows, linux
  int days = 365;
  key_spec key;
  std::string p12_password;  ///< empty: PKCS#12 without a password
};

struct issued_certificate {
  std::string serial;  ///< upper-case hex certificate serial
  std::string udid;
  std::string fingerprint_sha256;
  std::filesystem::path cert_path;  ///< PEM certificate
  std::filesystem::path key_path;   ///< PEM PKCS#8 private key, mode 0600
  std::filesystem::path p12_path;   ///< PKCS#12 with key, certificate and CA, mode 0600
  std::chrono::system_clock::time_point not_after;
};

struct ca_record {
  std::string serial;  ///< upper-case hex
  std::string kind;    ///< "device" or "server"
  std::string udid, user, device_serial;
  std::chrono::system_clock::time_point not_after;
  bool revoked = false;
  std::chrono::system_clock::time_point revoked_at;
};

/// A development CA kept in a directory:
///   ca.pem ca.key            device root (key 0600)
///   server.pem server.key    gateway server certificate (SAN localhost, 127.0.0.1, extras)
///   crl.pem                  CRL of the root, rewritten by revoke() and write_crl()
///   devices/<udid>.{pem,key,p12}
///   state.tsv                next serial and the index of issued certificates
/// Operations on one directory are serialised with a lock file, so concurrent tunnelctl runs
/// are safe. Errors are std::system_error with a certauth::errc and a message naming the fix.
class dev_ca {
 public:
  static dev_ca init(const std::filesystem::path& dir, const ca_init_options& options = {});
  static dev_ca open(const std::filesystem::path& dir);

  issued_certificate issue(const device_request& request);
  struct revoke_outcome {
    std::vector<ca_record> revoked;          ///< revoked by this call
    std::vector<ca_record> already_revoked;  ///< matched but revoked before (idempotent)
  };
  /// Revokes every certificate whose serial (hex, case-insensitive, leading zeros ignored),
  /// UDID or device serial equals `serial_or_udid` (case-insensitive), then rewrites the CRL.
  /// errc::no_match when nothing matches.
  revoke_outcome revoke(std::string_view serial_or_udid);
  /// Rewrites crl.pem, valid from now for `days`; returns its path.
  std::filesystem::path write_crl(int days = 7);
  std::vector<ca_record> records() const;

  const std::filesystem::path& dir() const noexcept { return dir_; }
  std::filesystem::path ca_cert_path() const { return dir_ / "ca.pem"; }
  std::filesystem::path ca_key_path() const { return dir_ / "ca.key"; }
  std::filesystem::path server_cert_path() const { return dir_ / "server.pem"; }
  std::filesystem::path server_key_path() const { return dir_ / "server.key"; }
  std::filesystem::path crl_path() const { return dir_ / "crl.pem"; }

 private:
  explicit dev_ca(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
};

}  // namespace tunnelgate::certauth

namespace std {
template <>
struct is_error_code_enum<tunnelgate::certauth::reason> : true_type {};
template <>
struct is_error_code_enum<tunnelgate::certauth::errc> : true_type {};
}  // namespace std
