#include "gateway/metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "support/support.hpp"

namespace tunnelgate::gateway {

namespace {

/// Label values are escaped per the exposition format: backslash, quote, newline.
std::string escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::atomic<std::uint64_t>& counter_family::at(const std::vector<std::string>& values) {
  std::lock_guard lock(mutex_);
  auto& slot = series_[values];
  if (!slot) slot = std::make_unique<std::atomic<std::uint64_t>>(0);
  return *slot;
}

std::uint64_t counter_family::value(const std::vector<std::string>& values) const {
  std::lock_guard lock(mutex_);
  auto it = series_.find(values);
  return it == series_.end() ? 0 : it->second->load();
}

void counter_family::render(std::string& out, const char* type) const {
  out += "# HELP " + name_ + " " + help_ + "\n# TYPE " + name_ + " " + type + "\n";
  std::lock_guard lock(mutex_);
  for (const auto& [values, v] : series_) {
    out += name_;
    if (!labels_.empty()) {
      out += "{";
      for (std::size_t i = 0; i < labels_.size(); ++i) {
        out +=
            (i ? "," : "") + labels_[i] + "=\"" + escape(i < values.size() ? values[i] : "") + "\"";
      }
      out += "}";
    }
    out += " " + std::to_string(v->load()) + "\n";
  }
}

histogram::histogram(std::string name, std::string help, std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size())) {}

void histogram::observe(double seconds) {
  if (!(seconds >= 0)) seconds = 0;  // NaN and clock steps count as 0
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (seconds <= bounds_[i]) {
      buckets_[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(std::llround(seconds * 1e9)),
                    std::memory_order_relaxed);
}

void histogram::render(std::string& out) const {
  render(out, {}, true);
}

void histogram::render(std::string& out, std::string_view labels, bool header) const {
  if (header) out += "# HELP " + name_ + " " + help_ + "\n# TYPE " + name_ + " histogram\n";
  const std::string prefix = labels.empty() ? std::string() : std::string(labels) + ",";
  const std::string own = labels.empty() ? std::string() : "{" + std::string(labels) + "}";
  std::uint64_t cumulative = 0;
  char le[32];
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    std::snprintf(le, sizeof le, "%g", bounds_[i]);
    out += name_ + "_bucket{" + prefix + "le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  const auto count = count_.load(std::memory_order_relaxed);
  out += name_ + "_bucket{" + prefix + "le=\"+Inf\"} " + std::to_string(count) + "\n";
  std::snprintf(le, sizeof le, "%.9f", static_cast<double>(sum_ns_.load()) / 1e9);
  out += name_ + "_sum" + own + " " + le + "\n" + name_ + "_count" + own + " " +
         std::to_string(count) + "\n";
}

std::string render_process_metrics() {
  std::string out;
  auto one = [&out](const char* name, const char* type, const char* help, double v) {
    char num[64];
    std::snprintf(num, sizeof num, "%.17g", v);
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " " + num + "\n";
  };
  // /proc/self/stat: utime (14), stime (15), starttime (22) in clock ticks, vsize (23) bytes,
  // rss (24) pages. The command name (2) is in parentheses and may hold spaces.
  std::ifstream stat("/proc/self/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  if (close != std::string::npos && tick > 0 && page > 0) {
    std::istringstream fields(line.substr(close + 2));
    std::vector<std::string> f;  // f[0] is field 3 (state)
    for (std::string x; fields >> x;)
      f.push_back(x);
    if (f.size() > 21) {
      one("process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds",
          (std::stod(f[11]) + std::stod(f[12])) / tick);
      // The boot time as a Unix time, from the clocks (the unit's ProcSubset=pid hides
      // /proc/stat and its btime).
      timespec real{}, boot_clock{};
      ::clock_gettime(CLOCK_REALTIME, &real);
      ::clock_gettime(CLOCK_BOOTTIME, &boot_clock);
      const double boot = (static_cast<double>(real.tv_sec) + real.tv_nsec / 1e9) -
                          (static_cast<double>(boot_clock.tv_sec) + boot_clock.tv_nsec / 1e9);
      one("process_start_time_seconds", "gauge",
          "Start time of the process since the Unix epoch in seconds",
          boot + std::stod(f[19]) / tick);
      one("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes",
          std::stod(f[20]));
      one("process_resident_memory_bytes", "gauge", "Resident memory size in bytes",
          std::stod(f[21]) * page);
    }
  }
  std::size_t fds = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++fds;
    }
    ::closedir(d);
    if (fds > 0) --fds;  // the directory stream's own descriptor
  }
  one("process_open_fds", "gauge", "Number of open file descriptors", static_cast<double>(fds));
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    one("process_max_fds", "gauge", "Maximum number of open file descriptors",
        static_cast<double>(rl.rlim_cur));
  }
  return out;
}

std::string metrics::render(std::size_t sessions) const {
  std::string out;
  out += std::string(
             "# HELP tunnelgate_build_info The running tunnelgate's version\n"
             "# TYPE tunnelgate_build_info gauge\n"
             "tunnelgate_build_info{version=\"") +
         support::version() + "\"} 1\n";
  handshake_seconds.render(out);
  admission_seconds.render(out);
  reloads.total.render(out);
  {
    char t[64];
    std::snprintf(t, sizeof t, "%.3f", reloads.last_success_unix.load());
    out += std::string(
               "# HELP tunnelgate_config_last_reload_successful Whether the last configuration "
               "reload was applied (1) or refused (0)\n"
               "# TYPE tunnelgate_config_last_reload_successful gauge\n"
               "tunnelgate_config_last_reload_successful ") +
           (reloads.last_ok.load() ? "1" : "0") +
           "\n# HELP tunnelgate_config_last_reload_success_timestamp_seconds When the "
           "configuration in force was loaded (start or reload), Unix time\n"
           "# TYPE tunnelgate_config_last_reload_success_timestamp_seconds gauge\n"
           "tunnelgate_config_last_reload_success_timestamp_seconds " +
           t + "\n";
  }
  handshakes.render(out);
  admissions.render(out);
  requests.render(out);
  tunnels.render(out);
  bytes.render(out);
  kills.render(out);
  egress_refusals.render(out);
  exhausted.render(out);
  accept_refusals.render(out);
  proxy_headers.render(out);
  uem_lookups.render(out);
  out +=
      "# HELP tunnelgate_uem_lookup_seconds Latency of compliance lookups\n"
      "# TYPE tunnelgate_uem_lookup_seconds summary\n";
  out += "tunnelgate_uem_lookup_seconds_sum " +
         std::to_string(static_cast<double>(uem_latency_us_sum.load()) / 1e6) + "\n";
  out += "tunnelgate_uem_lookup_seconds_count " + std::to_string(uem_latency_count.load()) + "\n";
  auto gauge = [&](const char* name, const char* help, std::int64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name +
           " " + std::to_string(v) + "\n";
  };
  gauge("tunnelgate_active_connections", "Open device TLS connections", active_connections.load());
  gauge("tunnelgate_pending_handshakes",
        "Device connections accepted whose TLS handshake has not finished",
        pending_handshakes.load());
  gauge("tunnelgate_active_sessions", "Admitted device sessions",
        static_cast<std::int64_t>(sessions));
  gauge("tunnelgate_active_tunnels", "Open tunnels", active_tunnels.load());
  gauge("tunnelgate_descriptor_limit", "Open-file limit of the process (RLIMIT_NOFILE, soft)",
        descriptor_limit.load());
  gauge("tunnelgate_tunnel_capacity",
        "Tunnels the descriptor limit allows (two descriptors each, less a reserve)",
        tunnel_capacity.load());
  out +=
      "# HELP tunnelgate_uem_devices_forgotten_total Devices dropped from the compliance cache "
      "after a positive TTL without sessions\n"
      "# TYPE tunnelgate_uem_devices_forgotten_total counter\n"
      "tunnelgate_uem_devices_forgotten_total " +
      std::to_string(devices_forgotten.load()) + "\n";
  out +=
      "# HELP tunnelgate_tls_renegotiations_refused_total TLS 1.2 renegotiations devices asked "
      "for, each refused with a no_renegotiation alert (the connection goes on)\n"
      "# TYPE tunnelgate_tls_renegotiations_refused_total counter\n"
      "tunnelgate_tls_renegotiations_refused_total " +
      std::to_string(renegotiations_refused.load()) + "\n";
  return out;
}

}  // namespace tunnelgate::gateway
