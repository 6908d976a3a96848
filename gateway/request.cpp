#include "gateway/request.hpp"

#include <iterator>

namespace tunnelgate::gateway {

namespace {

/// The target of a complete request line "METHOD SP target SP version".
std::string_view request_target(std::string_view line) {
  const auto a = line.find(' ');
  if (a == std::string_view::npos) return line;
  const auto b = line.find(' ', a + 1);
  return line.substr(a + 1, (b == std::string_view::npos ? line.size() : b) - a - 1);
}

head_scan refused(refusal why) {
  return {head_scan::state::refused, 0, why};
}

}  // namespace

head_scan scan_request_head(std::string_view d, std::size_t header_limit,
                            std::size_t target_limit) noexcept {
  // Room for the method and the version around the target ("CONNECT " + " HTTP/1.1").
  constexpr std::size_t line_slack = 32;
  std::size_t line_start = 0;
  bool first_line = true;
  for (std::size_t i = 0; i < d.size() && i < header_limit; ++i) {
    const char c = d[i];
    if (c == '\r') {
      if (i + 1 < d.size() && d[i + 1] != '\n') return refused(refusal::bad_line_ending);
      continue;
    }
    if (c != '\n') continue;
    if (i == 0 || d[i - 1] != '\r') return refused(refusal::bad_line_ending);
    const auto line = d.substr(line_start, i - 1 - line_start);
    if (first_line) {
      if (line.empty()) return refused(refusal::bad_request);
      if (request_target(line).size() > target_limit) return refused(refusal::target_too_long);
      first_line = false;
    } else if (line.empty()) {
      return {head_scan::state::complete, i + 1, refusal::none};
    } else if (line.front() == ' ' || line.front() == '\t') {
      return refused(refusal::obs_fold);
    }
    line_start = i + 1;
  }
  if (first_line) {
    const std::size_t seen = std::min(d.size(), header_limit);
    if (seen > target_limit + line_slack || seen >= header_limit)
      return refused(refusal::target_too_long);
  }
  if (d.size() >= header_limit) return refused(refusal::header_too_large);
  return {};
}

template <class Body>
refusal check_request_fields(const http::request<Body>& req, std::size_t max_headers,
                             const connect_target* target, bool body_allowed) {
  if (std::distance(req.begin(), req.end()) > static_cast<std::ptrdiff_t>(max_headers))
    return refusal::too_many_headers;
  if (req.count(http::field::transfer_encoding) > 0) return refusal::body_not_allowed;
  for (auto [it, end] = req.equal_range(http::field::content_length); it != end; ++it) {
    if (it->value() != "0" && !body_allowed) return refusal::body_not_allowed;
  }
  const auto hosts = req.count(http::field::host);
  if (hosts > 1) return refusal::duplicate_host;
  if (target != nullptr && hosts == 1) {
    // RFC 9110 §7.2: a CONNECT's Host is the target authority. A Host naming something else
    // is what a smuggling proxy chain would disagree about.
    const auto host = sv(req[http::field::host]);
    connect_target h;
    const auto r = parse_connect_target(host, h);
    if (r == refusal::none) {
      if (h.host != target->host || h.port != target->port) return refusal::host_mismatch;
    } else if (r == refusal::missing_port) {
      // Host without a port: the host part must still match.
      connect_target with_port;
      const std::string probe = std::string(host) + ":" + std::to_string(target->port);
      if (parse_connect_target(probe, with_port) != refusal::none ||
          with_port.host != target->host) {
        return refusal::host_mismatch;
      }
    } else {
      return refusal::host_mismatch;
    }
  }
  return refusal::none;
}

template refusal check_request_fields(const http::request<http::empty_body>&, std::size_t,
                                      const connect_target*, bool);
template refusal check_request_fields(const http::request<http::string_body>&, std::size_t,
                                      const connect_target*, bool);

}  // namespace tunnelgate::gateway
