// Parsing and formatting helpers shared by the trust store, verifier and dev CA. Internal.
#pragma once

#include <ctime>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "certauth/ossl.hpp"

namespace tunnelgate::certauth::detail {

struct parsed_certificates {
  bool ok = true;
  std::string error;                      // when !ok: what is wrong (log-safe)
  std::vector<ossl::x509_ptr> certs;      // in input order
  std::vector<std::string> other_blocks;  // PEM block names that are not certificates
};

/// PEM (any number of blocks, text around them ignored) or concatenated DER certificates.
/// Every certificate must decode completely; a truncated PEM block makes the whole input bad.
parsed_certificates parse_certificates(std::string_view data);

struct parsed_crls {
  bool ok = true;
  std::string error;
  std::vector<ossl::x509_crl_ptr> crls;
};

/// PEM "X509 CRL" blocks (other block types are an error) or one DER CRL.
parsed_crls parse_crls(std::string_view data);

/// Reads a whole file; throws std::system_error(errc::file_unreadable) naming it and the OS error.
std::string read_file(const std::filesystem::path& path, std::string_view what);

/// Writes `data` to `path` atomically (temp file + rename) with the given mode.
void write_file_atomic(const std::filesystem::path& path, std::string_view data, unsigned mode);

/// RFC 2253 form of a name with control and non-ASCII characters escaped, cut at 256 chars.
std::string name_text(const X509_NAME* name);

/// Seconds since the epoch for an ASN1_TIME; false when it cannot be interpreted.
bool to_time_t(const ASN1_TIME* t, std::time_t& out);

/// "2025-01-31T12:00:00Z".
std::string iso8601(std::time_t t);

/// Upper-case hex of a serial number ("00" for zero).
std::string serial_hex(const ASN1_INTEGER* serial);

/// Lower-case hex SHA-256 of the DER encoding.
std::string fingerprint_sha256(const X509* cert);

}  // namespace tunnelgate::certauth::detail
