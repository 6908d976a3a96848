// Identity mapping: which certificate field yields the UDID, user and serial. Internal.
//
// Certificate fields are untrusted input until validated here, even on a chain that verified:
// a CA template can put anything in a CN.
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "certauth/certauth.hpp"
#include "certauth/ossl.hpp"

namespace tunnelgate::certauth::detail {

struct compiled_field {
  enum class kind { none, subject, san_email, san_uri, san_dns, san_upn };
  kind type = kind::none;
  std::string source;  // as configured, for messages
  std::string prefix;
  std::shared_ptr<ASN1_OBJECT> attribute;  // kind::subject only
};

/// Parses one field_mapping; throws std::system_error(errc::bad_config) naming `which`.
/// An empty source is allowed only when `optional` (it then maps to kind::none).
compiled_field compile_field(const field_mapping& m, std::string_view which, bool optional);

struct extraction {
  enum class status { found, absent, ambiguous, bad_encoding };
  status result = status::absent;
  std::string value;   // found: the value with the prefix stripped (not yet charset-checked)
  std::string detail;  // ambiguous / bad_encoding: what was seen (log-safe)
};

/// Extracts the field from `cert`. `sans` is the decoded subjectAltName (may be null).
extraction extract_field(X509* cert, const GENERAL_NAMES* sans, const compiled_field& f);

/// Makes an arbitrary byte string safe to quote in a log line: printable ASCII kept,
/// everything else as \xNN, cut at `max` characters.
std::string log_safe(std::string_view raw, std::size_t max = 128);

}  // namespace tunnelgate::certauth::detail

namespace tunnelgate::certauth {
struct verifier::compiled_mapping {
  detail::compiled_field udid, user, serial;
};
}  // namespace tunnelgate::certauth

namespace tunnelgate::certauth::detail {

/// The last step of verification, on a leaf whose chain passed every other check: its
/// subjectAltName decoded once, the mapped fields extracted and checked (no_udid, no_user,
/// bad_identity_value, malformed), and the device_identity filled in (`not_before`/`not_after`
/// are the leaf's validity). Pure: the leaf is untrusted bytes decoded, nothing else is read
/// (tests/fuzz calls it on arbitrary DER).
verify_result check_identity(X509* leaf, const verifier::compiled_mapping& mapping,
                             std::time_t not_before, std::time_t not_after,
                             std::vector<std::string> warnings);

}  // namespace tunnelgate::certauth::detail
