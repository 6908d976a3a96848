// Internal: structured log lines (text `event key=value ...` or one JSON object per line),
// through spdlog. Values are log-safe: certauth validates identities before they get here, and
// the text form quotes anything with spaces, quotes or control characters.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <spdlog/spdlog.h>

#include "gateway/config.hpp"

namespace tunnelgate::gateway {

/// One field's value: text, or a number or boolean that JSON lines write as such (text lines
/// write all alike). Characters are text, never numbers.
class log_value {
 public:
  using number = std::variant<std::string, std::int64_t, std::uint64_t, double, bool>;
  log_value(std::string s) : v_(std::move(s)) {}         // NOLINT(google-explicit-constructor)
  log_value(const char* s) : v_(std::string(s)) {}       // NOLINT(google-explicit-constructor)
  log_value(std::string_view s) : v_(std::string(s)) {}  // NOLINT(google-explicit-constructor)
  log_value(bool b) : v_(b) {}                           // NOLINT(google-explicit-constructor)
  template <class T>
  requires(std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char> &&
           std::is_signed_v<T>) log_value(T n)
      : v_(static_cast<std::int64_t>(n)) {}  // NOLINT(google-explicit-constructor)
  template <class T>
  requires(std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char> &&
           std::is_unsigned_v<T>) log_value(T n)
      : v_(static_cast<std::uint64_t>(n)) {}  // NOLINT(google-explicit-constructor)
  log_value(double d) : v_(d) {}              // NOLINT(google-explicit-constructor)

  /// The text form ("42", "true", "0.25", or the string itself).
  std::string text() const;
  const number& value() const noexcept { return v_; }

 private:
  number v_;
};

using log_fields = std::vector<std::pair<std::string, log_value>>;

/// A log budget for lines a hostile client can cause at will (one per refused DNS query, per
/// new flow): at most `per_second` lines, in bursts of up to `per_second`; the lines over it
/// are counted and the next line that passes says how many were suppressed. One owner thread.
class log_budget {
 public:
  explicit log_budget(double per_second) : rate_(per_second), tokens_(per_second) {}
  /// True when a line may be written now; then `suppressed` is how many were dropped before.
  bool take(std::uint64_t& suppressed);

 private:
  double rate_;
  double tokens_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  std::uint64_t dropped_ = 0;
};

class reopenable_file_sink;

/// The gateway's logs: events (stderr, for the journal), the access log (a file, or the event
/// stream), and every line the libraries write through spdlog's default logger, which this
/// installs: with `log.format: json` every line on stderr is one JSON object.
class event_log {
 public:
  /// Sets up the loggers. Throws std::runtime_error (naming the file and the fix) when the
  /// access log cannot be opened.
  explicit event_log(const log_config& cfg);
  ~event_log();
  event_log(const event_log&) = delete;
  event_log& operator=(const event_log&) = delete;

  void event(spdlog::level::level_enum level, std::string_view name, const log_fields& fields);
  void access(const log_fields& fields);
  bool json() const noexcept { return json_.load(std::memory_order_relaxed); }

  /// Applies a reloaded `log:` section: level, format and access_log take effect now (a new
  /// access log file is opened before the old one is let go). Returns what could not be
  /// applied (empty: all of it); throws nothing.
  std::vector<std::string> reconfigure(const log_config& cfg);
  /// Reopens the access log file under its name (after logrotate moved it); a no-op without
  /// one. Returns an error text, empty on success.
  std::string reopen_access_log();

  /// Opens (creating) an access log the way event_log does: folder 0750 and file 0640 when
  /// created, never world-readable. Throws std::runtime_error naming the file and the fix.
  static void prepare_access_log(const std::filesystem::path& file);

 private:
  std::string format(spdlog::level::level_enum level, std::string_view name,
                     const log_fields& fields) const;
  void set_format(bool json);
  std::atomic<bool> json_{false};
  std::shared_ptr<spdlog::logger> main_;
  std::shared_ptr<spdlog::logger> library_;  ///< spdlog's default logger while this lives
  mutable std::mutex access_mutex_;          ///< guards access_, access_sink_, access_file_
  std::shared_ptr<spdlog::logger> access_;
  std::shared_ptr<reopenable_file_sink> access_sink_;
  std::filesystem::path access_file_;
};

}  // namespace tunnelgate::gateway
