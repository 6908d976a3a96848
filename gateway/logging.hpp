// Internal: structured log lines (text `event key=value ...` or one JSON object per line),
// through spdlog. Values are log-safe: certauth validates identities before they get here, and
// the text form quotes anything with spaces, quotes or control characters.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "gateway/config.hpp"

namespace tunnelgate::gateway {

using log_fields = std::vector<std::pair<std::string, std::string>>;

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
