// support — plumbing shared by every library of ours: reading files with a clear error and a
// size limit, secrets read from files, base64 and https:// URLs. It knows no domain and depends
// on nothing of ours (DESIGN.md §2); dtr, certauth, uem, idp and gateway may all use it.
//
// Two public headers: this one (std and OpenSSL only) and "support/yaml.hpp" (the bounded YAML
// reader), kept apart so that libraries that read no YAML do not compile against yaml-cpp.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace tunnelgate::support {

/// Errors of the support library, raised as std::system_error with a message that names the
/// file (or value) and the fix. Callers with an error enum of their own rethrow under it.
enum class errc {
  file_unreadable = 1,  ///< the file cannot be opened or read (the OS error is in the message)
  file_too_large,       ///< the file holds more bytes than the caller's limit
  secret_empty,         ///< a secret file is empty (or only line breaks)
  bad_url,              ///< not https://HOST[:PORT][/PATH]
};
const std::error_category& support_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

/// What the functions below throw: a std::system_error whose what() is the message alone (no
/// category text appended), so callers can show it or rethrow it under their own code.
class error : public std::system_error {
 public:
  error(errc code, std::string message)
      : std::system_error(make_error_code(code)), message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }
  const std::string& message() const noexcept { return message_; }

 private:
  std::string message_;
};

// ---------------------------------------------------------------------------------------------
// Files

/// A cap for files no caller has a better limit for: CA bundles, CRLs, keys, state files. It
/// stops a mistake such as /dev/zero from eating the memory; it is no policy.
inline constexpr std::size_t default_max_file_bytes = std::size_t{256} << 20;

/// Reads a whole file of at most `max_bytes` bytes. Throws support::error:
/// errc::file_unreadable "cannot read <what> <path>: <OS error>", or errc::file_too_large
/// "<what> <path> is N bytes, more than the <limit> allowed; ..." without reading past the limit
/// (FIFOs and /proc files included). An empty `what` leaves the path alone in the messages.
std::string read_file(const std::filesystem::path& path, std::string_view what,
                      std::size_t max_bytes = default_max_file_bytes);

/// "4 MiB", "512 KiB", "100 bytes": sizes as errors show them.
std::string size_text(std::size_t bytes);

// ---------------------------------------------------------------------------------------------
// Secrets

/// Secrets (tokens, passwords, client secrets) are short: a file larger than this is a mistake.
inline constexpr std::size_t max_secret_bytes = 64 * 1024;

/// Reads a secret: the whole file (at most `max_bytes`) without trailing CR/LF. Throws
/// support::error: file_unreadable, file_too_large, or secret_empty "<what> <path> is empty".
/// The value never appears in a message.
std::string read_secret(const std::filesystem::path& path, std::string_view what,
                        std::size_t max_bytes = max_secret_bytes);

// ---------------------------------------------------------------------------------------------
// Base64 (RFC 4648)

/// Standard alphabet with '=' padding.
std::string base64_encode(std::string_view in);
/// Standard alphabet, padded to a multiple of 4; nullopt for anything else (whitespace, bad
/// characters, bad padding, non-zero pad bits).
std::optional<std::string> base64_decode(std::string_view in);
/// URL-safe alphabet ('-', '_') without padding, as JWTs use it.
std::string base64url_encode(std::string_view in);
/// Unpadded base64url; nullopt for anything else.
std::optional<std::string> base64url_decode(std::string_view in);

// ---------------------------------------------------------------------------------------------
// URLs

/// An https:// URL split for a client: connect to host:port, send Host: host_header, prefix
/// request targets with path.
struct https_url {
  std::string host;          ///< without brackets
  std::string port = "443";  ///< digits, 1-65535
  std::string host_header;   ///< the authority as written
  std::string path;          ///< path prefix (and query) as written, no trailing '/'; may be empty
  std::string text;          ///< the URL as given, without trailing '/'
};

/// Parses https://HOST[:PORT][/PATH][?QUERY] (IPv6 as [ADDR]); trailing '/'s are dropped.
/// No user info (credentials never go in a URL), no fragment, no blanks or control characters.
/// Throws support::error(errc::bad_url) "<what> '<url>': <problem>; expected
/// https://HOST[:PORT][/PATH]".
https_url parse_https_url(std::string_view text, std::string_view what);

/// The project's version (CMake's project(VERSION)), for --version and tunnelgate_build_info.
const char* version() noexcept;

}  // namespace tunnelgate::support

template <>
struct std::is_error_code_enum<tunnelgate::support::errc> : std::true_type {};
