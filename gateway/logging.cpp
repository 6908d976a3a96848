#include "gateway/logging.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <utility>

namespace tunnelgate::gateway {

namespace {

std::string quote_if_needed(const std::string& v) {
  bool plain = !v.empty();
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '\\' || c == '=' || c >= 0x7f) plain = false;
  }
  if (plain) return v;
  std::string out = "\"";
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < ' ' || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace

event_log::event_log(const log_config& cfg) : json_(cfg.format == "json") {
  main_ = std::make_shared<spdlog::logger>("tunnelgate",
                                           std::make_shared<spdlog::sinks::stderr_sink_mt>());
  main_->set_level(spdlog::level::from_str(cfg.level));
  main_->set_pattern(json_ ? "%v" : "%Y-%m-%dT%H:%M:%S.%e%z %l %v");
  main_->flush_on(spdlog::level::trace);
  if (cfg.access_log.empty()) {
    access_ = main_;
  } else {
    access_ = std::make_shared<spdlog::logger>(
        "access", std::make_shared<spdlog::sinks::basic_file_sink_mt>(cfg.access_log.string()));
    access_->set_pattern(json_ ? "%v" : "%Y-%m-%dT%H:%M:%S.%e%z %v");
    access_->flush_on(spdlog::level::trace);
  }
}

std::string event_log::format(spdlog::level::level_enum level, std::string_view name,
                              const log_fields& fields) const {
  if (json_) {
    nlohmann::ordered_json j;
    const auto now = std::chrono::system_clock::now();
    j["ts"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() /
        1000.0;
    j["level"] = std::string(spdlog::level::to_string_view(level).data());
    j["event"] = std::string(name);
    for (const auto& [k, v] : fields)
      j[k] = v;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string s(name);
  for (const auto& [k, v] : fields)
    s += " " + k + "=" + quote_if_needed(v);
  return s;
}

void event_log::event(spdlog::level::level_enum level, std::string_view name,
                      const log_fields& fields) {
  if (!main_->should_log(level)) return;
  main_->log(level, "{}", format(level, name, fields));
}

bool log_budget::take(std::uint64_t& suppressed) {
  const auto now = std::chrono::steady_clock::now();
  tokens_ = std::min(rate_, tokens_ + rate_ * std::chrono::duration<double>(now - last_).count());
  last_ = now;
  if (tokens_ < 1.0) {
    ++dropped_;
    return false;
  }
  tokens_ -= 1.0;
  suppressed = std::exchange(dropped_, 0);
  return true;
}

void event_log::access(const log_fields& fields) {
  access_->info("{}", format(spdlog::level::info, "access", fields));
}

}  // namespace tunnelgate::gateway
