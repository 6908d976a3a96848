// Internal: asks a "what is my IP" service which address it sees, from the egress address.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "gateway/net.hpp"

namespace tunnelgate::gateway {

/// GETs `url` (http:// or https://; an IP literal or a name) with the socket bound to
/// `source`, and returns the address in the answer: a plain-text body (trimmed) or a JSON
/// object's "ip" member, normalized. TLS is verified (host name included) against `ca_file`
/// or the system store. Blocking, each step bounded by `timeout`; runs its own io_context (call
/// it from a background thread). Throws std::runtime_error naming the step that failed.
std::string fetch_seen_address(const std::string& url, const net::ip::address& source,
                               const std::filesystem::path& ca_file,
                               std::chrono::milliseconds timeout);

/// The address in a check service's answer body, normalized; empty when there is none.
std::string parse_seen_address(std::string_view body);

}  // namespace tunnelgate::gateway
