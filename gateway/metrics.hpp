// Internal: counters for /metrics (Prometheus text format 0.0.4). A labelled counter is found
// under a short mutex (once per handshake, request or tunnel — never per byte relayed) and
// incremented atomically.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace tunnelgate::gateway {

class counter_family {
 public:
  counter_family(std::string name, std::string help, std::vector<std::string> labels)
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)) {}
  /// The counter for these label values (same order as the labels given at construction).
  std::atomic<std::uint64_t>& at(const std::vector<std::string>& values);
  void inc(const std::vector<std::string>& values, std::uint64_t n = 1) { at(values) += n; }
  void render(std::string& out, const char* type = "counter") const;
  std::uint64_t value(const std::vector<std::string>& values) const;

 private:
  std::string name_, help_;
  std::vector<std::string> labels_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<std::atomic<std::uint64_t>>> series_;
};

/// A Prometheus histogram of seconds with fixed buckets; observe() is lock-free.
class histogram {
 public:
  histogram(std::string name, std::string help, std::vector<double> bounds);
  void observe(double seconds);
  void render(std::string& out) const;
  /// One series of a labelled family: `labels` like `provider="okta",action="x"`; the HELP and
  /// TYPE lines only when `header` (once per family).
  void render(std::string& out, std::string_view labels, bool header) const;

 private:
  std::string name_, help_;
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  ///< per bound, not cumulative
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_ns_{0};
};

/// What the last configuration reload did (SIGHUP or POST /api/v1/reload).
struct reload_stats {
  std::atomic<bool> last_ok{true};
  std::atomic<double> last_success_unix{0};  ///< the start counts as the first success
  counter_family total{
      "tunnelgate_config_reloads_total", "Configuration reloads, by result", {"result"}};
};

/// process_* metrics of the running process (/proc/self), as the Prometheus client libraries
/// name them.
std::string render_process_metrics();

struct metrics {
  counter_family handshakes{
      "tunnelgate_handshakes_total",
      "TLS handshakes with device certificates, by result and certauth reason",
      {"result", "reason"}};
  counter_family admissions{"tunnelgate_admissions_total",
                            "Compliance decisions after the handshake, by result and reason",
                            {"result", "reason"}};
  counter_family requests{"tunnelgate_requests_total",
                          "Requests on admitted connections, by outcome (action or refusal reason)",
                          {"outcome"}};
  counter_family tunnels{"tunnelgate_tunnels_total", "Tunnels opened, by action", {"action"}};
  counter_family bytes{
      "tunnelgate_tunnel_bytes_total", "Bytes relayed, by direction", {"direction"}};
  counter_family kills{
      "tunnelgate_sessions_closed_total", "Sessions closed from outside, by reason", {"reason"}};
  counter_family egress_refusals{
      "tunnelgate_egress_refusals_total",
      "Destination addresses the egress policy refused, by reason (loopback, link-local, "
      "private-range, rule-block, ...)",
      {"reason"}};
  counter_family exhausted{
      "tunnelgate_resource_exhausted_total",
      "Connections or tunnels turned away because the gateway ran out of a local resource, by "
      "where (accept, egress) and resource (descriptors, ports, memory)",
      {"where", "resource"}};
  counter_family accept_refusals{
      "tunnelgate_accept_refusals_total",
      "Device connections closed at accept, before any TLS work, by reason (max-connections, "
      "handshakes-busy, source-pending-limit, source-rate-limit, proxy-sender-not-allowed, "
      "proxy-header-invalid, proxy-header-timeout)",
      {"reason"}};
  counter_family proxy_headers{
      "tunnelgate_proxy_headers_total",
      "PROXY protocol v2 headers accepted on device listeners, by command (proxy: a device's "
      "connection; local: the load balancer's health check, closed after the header)",
      {"command"}};
  counter_family uem_lookups{
      "tunnelgate_uem_lookups_total", "Compliance lookups, by result", {"result"}};
  std::atomic<std::uint64_t> uem_latency_us_sum{0};
  std::atomic<std::uint64_t> uem_latency_count{0};
  std::atomic<std::int64_t> active_tunnels{0};
  std::atomic<std::int64_t> active_connections{0};
  std::atomic<std::int64_t> pending_handshakes{0};  ///< admitted, handshake not finished
  std::atomic<std::uint64_t> devices_forgotten{0};  ///< idle devices dropped from the UEM cache
  /// TLS 1.2 renegotiations devices asked for (each refused with a no_renegotiation alert).
  std::atomic<std::uint64_t> renegotiations_refused{0};
  std::atomic<std::int64_t> descriptor_limit{0};  ///< RLIMIT_NOFILE soft limit after start
  std::atomic<std::int64_t> tunnel_capacity{0};   ///< tunnels that limit allows (2 fds each)
  /// From accept to the end of the TLS handshake (refused handshakes included).
  histogram handshake_seconds{
      "tunnelgate_handshake_seconds",
      "Device TLS handshakes, from accept to their end",
      {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}};
  /// The compliance decision of a new session (cache hits and UEM requests alike).
  histogram admission_seconds{"tunnelgate_admission_seconds",
                              "Admission decisions of new sessions (compliance lookup included)",
                              {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                               0.1, 0.25, 0.5, 1, 2.5, 5, 10}};
  reload_stats reloads;

  /// The exposition text; `sessions` is the registry's size (the active_sessions gauge).
  std::string render(std::size_t sessions) const;
};

}  // namespace tunnelgate::gateway
