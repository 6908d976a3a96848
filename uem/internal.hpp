// Library-private declarations shared by the uem translation units.
#pragma once

#include <algorithm>
#include <cctype>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

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

/// Reads a whole file; throws std::system_error(errc::file_unreadable) naming it.
std::string read_file(const std::filesystem::path& path, std::string_view what);

/// Base64 (RFC 4648, with padding); decode returns nullopt for anything malformed.
std::string base64_encode(std::string_view in);
std::optional<std::string> base64_decode(std::string_view in);

/// Constant-time comparison of two secrets (lengths may differ; compares digests).
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

std::unique_ptr<source> make_file_source(const std::filesystem::path& path,
                                         const net::any_io_executor& ex);
std::unique_ptr<source> make_ws1_source(const ws1_config& cfg, net::any_io_executor ex);

/// The webhook HTTP(S) listener (webhook_server.cpp). Handlers run on the listener's
/// executor (the service worker).
struct webhook_handlers {
  /// An authenticated, well-formed event; returns false for a duplicate EventId.
  std::function<bool(const webhook_event&)> on_event;
  /// A refused request (401, 400, 413, 405).
  std::function<void()> on_rejected;
};

class webhook_server {
 public:
  virtual ~webhook_server() = default;
  virtual net::ip::tcp::endpoint local_endpoint() const = 0;
  /// Closes the acceptor and every open connection. Call on the executor's thread.
  virtual void stop() = 0;
};

/// Binds and starts accepting; throws std::system_error naming the address or the
/// certificate file when it cannot.
std::shared_ptr<webhook_server> start_webhook_server(const webhook_config& cfg,
                                                     const net::any_io_executor& ex,
                                                     webhook_handlers handlers);

}  // namespace tunnelgate::uem::detail
