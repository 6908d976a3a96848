#include "certauth/error.hpp"

#include <array>
#include <utility>

#include "certauth/ossl.hpp"

namespace tunnelgate::certauth {

namespace {

struct reason_info {
  reason code;
  std::string_view name;
  std::string_view text;
};

// One row per reason, in enum order; the texts are what `tunnelctl cert inspect` and the
// administrator documentation (docs/certauth.md) say, so keep them in step.
constexpr std::array<reason_info, 15> reasons{{
    {reason::ok, "ok", "the certificate chain is valid and names a device"},
    {reason::no_certificate, "no_certificate",
     "no client certificate was presented; install the device certificate (VPN profile) on the "
     "device"},
    {reason::unknown_ca, "unknown_ca",
     "the certificate does not chain to a trusted device CA; add the UEM device root and its "
     "intermediates to the CA bundle, or re-enrol the device"},
    {reason::expired, "expired",
     "a certificate in the chain has expired; re-issue the device certificate (re-push the VPN "
     "profile) or renew the CA, and check the clocks"},
    {reason::not_yet_valid, "not_yet_valid",
     "a certificate in the chain is not valid yet; check the clocks of the gateway and the CA"},
    {reason::revoked, "revoked",
     "the certificate (or an intermediate) is revoked by its CA; re-enrol the device if this is "
     "unexpected"},
    {reason::crl_expired, "crl_expired",
     "the CRL for this issuer is past its nextUpdate; publish a fresh CRL from the CA (or set the "
     "stale-CRL policy to warn)"},
    {reason::bad_eku, "bad_eku",
     "the certificate is not meant for client authentication (extendedKeyUsage without "
     "clientAuth, or keyUsage without digitalSignature); fix the UEM certificate template"},
    {reason::weak_key, "weak_key",
     "a key in the chain is too weak (RSA below 2048 bits, EC below P-256, or an unsupported "
     "type); re-issue with a stronger key"},
    {reason::weak_signature, "weak_signature",
     "a certificate in the chain is signed with MD5 or SHA-1; re-issue it with SHA-256 or better"},
    {reason::no_udid, "no_udid",
     "the certificate lacks the field mapped to the device UDID; fix the UEM certificate template "
     "or the identity mapping"},
    {reason::no_user, "no_user",
     "the certificate lacks the field mapped to the user; fix the UEM certificate template or the "
     "identity mapping"},
    {reason::bad_identity_value, "bad_identity_value",
     "an identity value is too long, has characters outside the allowed set, or is ambiguous; fix "
     "the UEM certificate template"},
    {reason::malformed, "malformed", "the input is not a well-formed X.509 certificate"},
    {reason::no_crl, "no_crl",
     "CRLs are required and no configured CRL of the issuing CA covers the certificate (or an "
     "intermediate); add that CA's CRL to the CRL files, or turn the CRL requirement off if its "
     "devices may go without a revocation check"},
}};

// A table row per reason, each at its enum value: a new reason without a row (or a row out of
// place) fails the build rather than printing "unknown" in logs.
constexpr bool rows_in_enum_order() {
  for (std::size_t i = 0; i < reasons.size(); ++i) {
    if (static_cast<std::size_t>(reasons[i].code) != i) return false;
  }
  return static_cast<std::size_t>(reason::no_crl) + 1 == reasons.size();
}
static_assert(rows_in_enum_order(), "certauth::reason and its table are out of step");

const reason_info* find(reason r) noexcept {
  const auto i = static_cast<std::size_t>(r);
  return i < reasons.size() ? &reasons[i] : nullptr;
}

class reason_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "certauth.reason"; }
  std::string message(int v) const override {
    const auto* info = find(static_cast<reason>(v));
    return info ? std::string(info->name) + ": " + std::string(info->text) : "unknown reason";
  }
};

class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "certauth"; }
  std::string message(int v) const override {
    switch (static_cast<errc>(v)) {
      case errc::file_unreadable:
        return "file cannot be read";
      case errc::bad_ca_bundle:
        return "invalid CA bundle";
      case errc::incomplete_bundle:
        return "CA bundle lacks an issuer";
      case errc::bad_crl:
        return "invalid CRL";
      case errc::bad_config:
        return "invalid certauth configuration";
      case errc::bad_argument:
        return "invalid argument";
      case errc::ca_exists:
        return "a CA already exists there";
      case errc::ca_not_found:
        return "no CA there";
      case errc::no_match:
        return "no matching certificate";
      case errc::crypto_failure:
        return "cryptographic operation failed";
    }
    return "unknown certauth error";
  }
};

}  // namespace

std::string_view to_string(reason r) noexcept {
  const auto* info = find(r);
  return info ? info->name : std::string_view("unknown");
}

std::optional<reason> reason_from_string(std::string_view name) noexcept {
  for (const auto& info : reasons) {
    if (info.name == name) return info.code;
  }
  return std::nullopt;
}

std::string_view describe(reason r) noexcept {
  const auto* info = find(r);
  return info ? info->text : std::string_view("unknown reason");
}

const std::error_category& reason_category() noexcept {
  static const reason_category_impl c;
  return c;
}

const std::error_category& error_category() noexcept {
  static const error_category_impl c;
  return c;
}

std::error_code make_error_code(reason r) noexcept {
  return {static_cast<int>(r), reason_category()};
}

std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

namespace detail {

namespace {

// std::system_error::what() appends the category text; our messages already say everything
// (file, problem, fix), so report them unchanged.
class certauth_error final : public std::system_error {
 public:
  certauth_error(errc e, std::string message)
      : std::system_error(make_error_code(e)), message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

}  // namespace

void fail(errc e, const std::string& message) {
  throw certauth_error(e, message);
}

void fail_openssl(errc e, const std::string& message) {
  std::string text = ossl::last_error_text();
  ERR_clear_error();
  fail(e, text.empty() ? message : message + " (" + text + ")");
}

}  // namespace detail

}  // namespace tunnelgate::certauth
