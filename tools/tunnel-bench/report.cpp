// The server process's figures from /proc, and the report: one JSON object (--json) or an
// aligned two-column table of the same fields.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "bench.hpp"

namespace bench {

namespace {

std::string read_proc(int pid, const char* file) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  if (!in) return {};
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::optional<double> cpu_seconds(int pid) {
  if (pid <= 0) return std::nullopt;
  const std::string stat = read_proc(pid, "stat");
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(stat.substr(close + 1));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // After ')': state (3), ppid (4) ... utime is field 14, stime field 15.
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  if (!in) return std::nullopt;
  const long ticks = ::sysconf(_SC_CLK_TCK);
  return static_cast<double>(utime + stime) / static_cast<double>(ticks > 0 ? ticks : 100);
}

std::optional<long> rss_kib(int pid) {
  if (pid <= 0) return std::nullopt;
  std::istringstream in(read_proc(pid, "status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return std::nullopt;
}

std::optional<long> open_files_limit(int pid) {
  if (pid <= 0) return std::nullopt;
  std::istringstream in(read_proc(pid, "limits"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Max open files", 0) == 0) {
      std::istringstream f(line.substr(14));
      std::string soft;
      f >> soft;
      if (soft == "unlimited") return std::nullopt;
      return std::stol(soft);
    }
  }
  return std::nullopt;
}

long raise_open_files_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return 1024;
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &r);
    (void)::getrlimit(RLIMIT_NOFILE, &r);
  }
  return r.rlim_cur == RLIM_INFINITY ? 1L << 20 : static_cast<long>(r.rlim_cur);
}

void cpu_meter::start() {
  before_ = cpu_seconds(pid_);
}

std::optional<double> cpu_meter::stop() {
  const auto after = cpu_seconds(pid_);
  if (!before_ || !after) return std::nullopt;
  return *after - *before_;
}

json num(const std::optional<double>& v) {
  if (!v || !std::isfinite(*v)) return nullptr;
  return std::round(*v * 1000) / 1000;
}

json latency_json(std::vector<double> micros) {
  json j;
  j["count"] = micros.size();
  if (micros.empty()) {
    for (const char* k : {"p50", "p90", "p99", "max"})
      j[k] = nullptr;
    return j;
  }
  std::sort(micros.begin(), micros.end());
  // Nearest rank: the smallest sample with at least p% of the samples at or below it.
  const auto pct = [&](double p) {
    auto rank = static_cast<std::size_t>(std::ceil(p / 100 * static_cast<double>(micros.size())));
    rank = std::clamp<std::size_t>(rank, 1, micros.size());
    return num(micros[rank - 1] / 1000);
  };
  j["p50"] = pct(50);
  j["p90"] = pct(90);
  j["p99"] = pct(99);
  j["max"] = num(micros.back() / 1000);
  return j;
}

json per_cpu(double count, const std::optional<double>& cpu) {
  if (!cpu || *cpu <= 0) return nullptr;
  return num(count / *cpu);
}

json report_head(const options& o) {
  json j;
  j["mode"] = o.mode;
  j["gateway"] = o.gateway;
  j["tls"] = o.tls;
  j["connect"] = !o.no_connect;
  j["target_pid"] = o.target_pid > 0 ? json(o.target_pid) : json(nullptr);
  return j;
}

namespace {

void flatten(const json& j, const std::string& prefix,
             std::vector<std::pair<std::string, std::string>>& rows) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items())
      flatten(v, prefix.empty() ? k : prefix + "." + k, rows);
    return;
  }
  std::string text;
  if (j.is_null()) {
    text = "-";
  } else if (j.is_string()) {
    text = j.get<std::string>();
  } else if (j.is_number_float()) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(3) << j.get<double>();
    text = s.str();
  } else {
    text = j.dump();
  }
  rows.emplace_back(prefix, text);
}

}  // namespace

void print_report(const options& o, const json& r) {
  if (o.json) {
    std::cout << r.dump() << std::endl;
    return;
  }
  std::vector<std::pair<std::string, std::string>> rows;
  flatten(r, "", rows);
  std::size_t w = 0;
  for (const auto& row : rows)
    w = std::max(w, row.first.size());
  for (const auto& [k, v] : rows)
    std::cout << "  " << std::left << std::setw(static_cast<int>(w)) << k << "  " << v << "\n";
  std::cout.flush();
}

}  // namespace bench
