// Library-private declarations shared by the uem translation units.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "support/support.hpp"
#include "uem/uem.hpp"

namespace tunnelgate::uem::detail {

inline std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

inline bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

/// The cache key of a device key: kind prefix + ASCII-lower-cased value.
inline std::string cache_key(const device_key& k) {
  const char* prefix = k.kind == key_kind::udid ? "u:" : k.kind == key_kind::serial ? "s:" : "i:";
  return prefix + lower(k.value);
}

/// Whether `record` is the device `key` names (case-insensitive).
inline bool matches(const device_record& record, const device_key& key) noexcept {
  switch (key.kind) {
    case key_kind::udid:
      return !record.udid.empty() && iequals(record.udid, key.value);
    case key_kind::serial:
      return !record.serial.empty() && iequals(record.serial, key.value);
    case key_kind::device_id:
      return !record.device_id.empty() && record.device_id == key.value;
  }
  return false;
}

/// Reads a whole file of at most `max_bytes` (support::read_file); throws
/// std::system_error(errc::file_unreadable) naming it, and the limit when it is larger.
std::string read_file(const std::filesystem::path& path, std::string_view what,
                      std::size_t max_bytes = support::default_max_file_bytes);

/// Base64 (RFC 4648, with padding; support/); decode returns nullopt for anything malformed,
/// empty, or longer than 4096 characters (a Basic credential, never more).
inline std::string base64_encode(std::string_view in) {
  return support::base64_encode(in);
}
inline std::optional<std::string> base64_decode(std::string_view in) {
  if (in.empty() || in.size() > 4096) return std::nullopt;
  return support::base64_decode(in);
}

/// Constant-time comparison of two secrets (lengths may differ; compares digests).
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

/// SHA-256 of `in` as 64 lower-case hex digits.
std::string sha256_hex(std::string_view in);

std::unique_ptr<source> make_file_source(const std::filesystem::path& path,
                                         const net::any_io_executor& ex);
std::unique_ptr<source> make_ws1_source(const ws1_config& cfg, net::any_io_executor ex);

/// What became of a webhook event; decides the HTTP answer.
enum class event_outcome : std::uint8_t {
  acted,      ///< the device was re-read (200 accepted)
  ignored,    ///< a type that cannot change a decision (200 ignored)
  duplicate,  ///< the same event was acted on a short while ago (200 duplicate)
  failed,     ///< the re-read failed; not remembered, so a retry is acted on (503)
};

/// The webhook HTTP(S) listener (webhook_server.cpp). It runs on its own executor (the
/// service's webhook thread), never on the worker.
struct webhook_handlers {
  /// An authenticated, well-formed event. Called on the listener's executor; must not block.
  /// `done` is called exactly once, from any thread, with the outcome; the connection waits
  /// for it before answering, so a 200 means the device was re-read and subscribers told.
  std::function<void(webhook_event ev, std::function<void(event_outcome)> done)> on_event;
  /// A refused request (401, 400, 405, 413).
  std::function<void()> on_rejected;
  /// A connection closed at accept because max_connections were open.
  std::function<void()> on_refused_connection;
};

class webhook_server {
 public:
  virtual ~webhook_server() = default;
  virtual net::ip::tcp::endpoint local_endpoint() const = 0;
  /// Closes the acceptor and every open connection. Call on the listener executor's thread.
  virtual void stop() = 0;
};

/// Binds and starts accepting on `ex`; throws std::system_error naming the address or the
/// certificate file when it cannot.
std::shared_ptr<webhook_server> start_webhook_server(const webhook_config& cfg,
                                                     const net::any_io_executor& ex,
                                                     webhook_handlers handlers);

}  // namespace tunnelgate::uem::detail
