// Internal: structured log lines (text `event key=value ...` or one JSON object per line),
// through spdlog. Values are log-safe: certauth validates identities before they get here, and
// the text form quotes anything with spaces, quotes or control characters.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "gateway/config.hpp"

namespace tunnelgate::gateway {

using log_fields = std::vector<std::pair<std::string, std::string>>;

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

class event_log {
 public:
  /// Sets up the main logger (stderr) and the access logger (file or the main logger).
  explicit event_log(const log_config& cfg);
  void event(spdlog::level::level_enum level, std::string_view name, const log_fields& fields);
  void access(const log_fields& fields);
  bool json() const noexcept { return json_; }

 private:
  std::string format(spdlog::level::level_enum level, std::string_view name,
                     const log_fields& fields) const;
  bool json_ = false;
  std::shared_ptr<spdlog::logger> main_;
  std::shared_ptr<spdlog::logger> access_;
};

}  // namespace tunnelgate::gateway
