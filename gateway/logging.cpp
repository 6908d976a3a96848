#include "gateway/logging.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/details/file_helper.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace tunnelgate::gateway {

namespace {

constexpr const char* text_pattern = "%Y-%m-%dT%H:%M:%S.%e%z %l %v";
constexpr const char* access_text_pattern = "%Y-%m-%dT%H:%M:%S.%e%z %v";

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

double unix_seconds(std::chrono::system_clock::time_point t) {
  return static_cast<double>(
             std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count()) /
         1000.0;
}

std::string level_name(spdlog::level::level_enum level) {
  const auto v = spdlog::level::to_string_view(level);
  return std::string(v.data(), v.size());
}

/// JSON for the libraries' free-text lines ("uem: inventory ... loaded, 3 devices"): the
/// prefix before the first ": " (a short lower-case word or two) is the source.
class json_line_formatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    std::string source = "tunnelgate";
    if (const auto colon = text.find(": ");
        colon != std::string_view::npos && colon <= 24 && colon > 0 &&
        std::all_of(text.begin(), text.begin() + colon,
                    [](char c) { return (c >= 'a' && c <= 'z') || c == ' ' || c == '-'; })) {
      source = std::string(text.substr(0, colon));
      text.remove_prefix(colon + 2);
    }
    nlohmann::ordered_json j;
    j["ts"] = unix_seconds(msg.time);
    j["level"] = level_name(msg.level);
    j["event"] = "log";
    j["source"] = source;
    j["message"] = std::string(text);
    const auto line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_line_formatter>();
  }
};

}  // namespace

std::string log_value::text() const {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return v;
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, double>) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.6g", v);
          return buf;
        } else {
          return std::to_string(v);
        }
      },
      v_);
}

/// A file sink that can reopen its file under the same name (logrotate's move-and-signal).
class reopenable_file_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit reopenable_file_sink(std::filesystem::path file) : file_(std::move(file)) {
    event_log::prepare_access_log(file_);
    helper_.open(file_.string(), false);
  }
  /// Empty on success, else what failed (the old file stays in use).
  std::string reopen() {
    std::lock_guard lock(mutex_);
    try {
      event_log::prepare_access_log(file_);
      helper_.reopen(false);
    } catch (const std::exception& e) {
      return e.what();
    }
    return {};
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t out;
    formatter_->format(msg, out);
    helper_.write(out);
  }
  void flush_() override { helper_.flush(); }

 private:
  std::filesystem::path file_;
  spdlog::details::file_helper helper_;
};

void event_log::prepare_access_log(const std::filesystem::path& file) {
  const auto fail = [&file](const std::string& what) {
    return std::runtime_error(
        file.string() + ": cannot open the access log (log.access_log): " + what +
        "; make its folder writable by the gateway's user (the Debian package makes "
        "/var/log/tunnelgate for it) or choose another path");
  };
  const auto dir = file.parent_path();
  std::error_code ec;
  if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
    if (!std::filesystem::create_directories(dir, ec) || ec)
      throw fail("creating " + dir.string() + ": " + ec.message());
    std::filesystem::permissions(dir, std::filesystem::perms(0750), ec);
  }
  // Created 0640 whatever the umask (the lines name users); an existing file keeps its mode.
  int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd >= 0) {
    (void)::fchmod(fd, 0640);
  } else if (errno == EEXIST) {
    fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  }
  if (fd < 0) throw fail(std::strerror(errno));
  ::close(fd);
}

event_log::event_log(const log_config& cfg) {
  main_ = std::make_shared<spdlog::logger>("tunnelgate",
                                           std::make_shared<spdlog::sinks::stderr_sink_mt>());
  main_->flush_on(spdlog::level::trace);
  library_ = std::make_shared<spdlog::logger>("library",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
  library_->flush_on(spdlog::level::trace);
  access_ = main_;
  set_format(cfg.format == "json");
  main_->set_level(spdlog::level::from_str(cfg.level));
  library_->set_level(spdlog::level::from_str(cfg.level));
  if (!cfg.access_log.empty()) {
    access_sink_ = std::make_shared<reopenable_file_sink>(cfg.access_log);
    access_ = std::make_shared<spdlog::logger>("access", access_sink_);
    access_->set_pattern(json() ? "%v" : access_text_pattern);
    access_->flush_on(spdlog::level::trace);
    access_file_ = cfg.access_log;
  }
  spdlog::set_default_logger(library_);
}

event_log::~event_log() {
  // The libraries may log after this object is gone (tests make several): back to spdlog's
  // own default rather than a logger that outlives its owner's settings.
  if (spdlog::default_logger() == library_) {
    spdlog::set_default_logger(
        std::make_shared<spdlog::logger>("", std::make_shared<spdlog::sinks::stderr_sink_mt>()));
  }
}

void event_log::set_format(bool json) {
  json_.store(json, std::memory_order_relaxed);
  main_->set_pattern(json ? "%v" : text_pattern);
  if (json) {
    library_->set_formatter(std::make_unique<json_line_formatter>());
  } else {
    library_->set_pattern(text_pattern);
  }
}

std::vector<std::string> event_log::reconfigure(const log_config& cfg) {
  std::vector<std::string> not_applied;
  const auto level = spdlog::level::from_str(cfg.level);
  main_->set_level(level);
  library_->set_level(level);
  if ((cfg.format == "json") != json()) set_format(cfg.format == "json");
  std::lock_guard lock(access_mutex_);
  if (cfg.access_log != access_file_) {
    if (cfg.access_log.empty()) {
      access_ = main_;
      access_sink_.reset();
      access_file_.clear();
    } else {
      try {
        auto sink = std::make_shared<reopenable_file_sink>(cfg.access_log);
        auto logger = std::make_shared<spdlog::logger>("access", sink);
        logger->flush_on(spdlog::level::trace);
        access_ = std::move(logger);
        access_sink_ = std::move(sink);
        access_file_ = cfg.access_log;
      } catch (const std::exception& e) {
        not_applied.push_back(std::string("log.access_log: ") + e.what() +
                              " (the previous access log stays in use)");
      }
    }
  }
  if (access_ != main_) access_->set_pattern(json() ? "%v" : access_text_pattern);
  return not_applied;
}

std::string event_log::reopen_access_log() {
  std::shared_ptr<reopenable_file_sink> sink;
  {
    std::lock_guard lock(access_mutex_);
    sink = access_sink_;
  }
  return sink ? sink->reopen() : std::string();
}

std::string event_log::format(spdlog::level::level_enum level, std::string_view name,
                              const log_fields& fields) const {
  if (json()) {
    nlohmann::ordered_json j;
    j["ts"] = unix_seconds(std::chrono::system_clock::now());
    j["level"] = level_name(level);
    j["event"] = std::string(name);
    for (const auto& [k, v] : fields)
      std::visit([&j, &key = k](const auto& x) { j[key] = x; }, v.value());
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string s(name);
  for (const auto& [k, v] : fields)
    s += " " + k + "=" + quote_if_needed(v.text());
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
  std::shared_ptr<spdlog::logger> a;
  {
    std::lock_guard lock(access_mutex_);
    a = access_;
  }
  a->info("{}", format(spdlog::level::info, "access", fields));
}

}  // namespace tunnelgate::gateway
