// Fuzz target: certificate identity extraction (certauth), DER in (PEM too: the same decoder
// reads both). The certificates are decoded as the verifier decodes what a peer sent
// (detail::parse_certificates), then the identity step runs on each with the default mapping
// and two others (SAN URI with a prefix, subject UID, SAN UPN, SAN DNS): chain checks do not
// protect it, since a CA template can put anything in a field. What reaches logs must be
// log-safe (no control or non-ASCII bytes).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <string_view>

#include "certauth/codec.hpp"
#include "certauth/identity.hpp"

namespace ca = tunnelgate::certauth;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool log_safe(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

ca::verifier::compiled_mapping compile(const ca::identity_mapping& m) {
  return {ca::detail::compile_field(m.udid, "udid", false),
          ca::detail::compile_field(m.user, "user", false),
          ca::detail::compile_field(m.serial, "serial", true)};
}

const std::array<ca::verifier::compiled_mapping, 3>& mappings() {
  static const std::array<ca::verifier::compiled_mapping, 3> all{
      compile({}),
      compile({{"san.uri", "urn:udid:"}, {"san.email", ""}, {"subject.serialNumber", ""}}),
      compile({{"subject.UID", ""}, {"san.upn", ""}, {"san.dns", "device-"}}),
  };
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto parsed = ca::detail::parse_certificates(in);
  if (!parsed.ok) {
    check(parsed.certs.empty() || !parsed.error.empty());
    return 0;
  }
  for (const auto& cert : parsed.certs) {
    X509* x = cert.get();
    check(log_safe(ca::detail::name_text(X509_get_subject_name(x))));
    check(log_safe(ca::detail::name_text(X509_get_issuer_name(x))));
    std::time_t nb = 0, na = 0;
    (void)ca::detail::to_time_t(X509_get0_notBefore(x), nb);
    (void)ca::detail::to_time_t(X509_get0_notAfter(x), na);
    for (const auto& m : mappings()) {
      const auto v = ca::detail::check_identity(x, m, nb, na, {});
      check(v.ok() == v.identity.has_value());
      check(log_safe(v.detail));
      if (!v.ok()) continue;
      check(ca::check_udid_value(v.identity->udid).empty());
      check(ca::check_user_value(v.identity->user).empty());
      check(v.identity->serial.empty() || ca::check_serial_value(v.identity->serial).empty());
      check(v.identity->fingerprint_sha256.size() == 64);
      check(log_safe(v.identity->subject) && log_safe(v.identity->issuer));
    }
  }
  return 0;
}
