#include "gateway/metrics.hpp"

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

std::string metrics::render(std::size_t sessions) const {
  std::string out;
  handshakes.render(out);
  admissions.render(out);
  requests.render(out);
  tunnels.render(out);
  bytes.render(out);
  kills.render(out);
  egress_refusals.render(out);
  exhausted.render(out);
  accept_refusals.render(out);
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
  return out;
}

}  // namespace tunnelgate::gateway
