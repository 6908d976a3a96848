// Internal: outbound connections from the egress address, with time-bounded resolution and
// connection, and CONNECT through an upstream proxy.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "gateway/net.hpp"

namespace tunnelgate::gateway {

struct egress_options {
  std::optional<net::ip::address> v4;  ///< source address for IPv4 destinations
  std::optional<net::ip::address> v6;  ///< source address for IPv6 destinations
  std::chrono::milliseconds resolve_timeout{5000};
  std::chrono::milliseconds connect_timeout{10000};
  /// Name servers to ask (egress.resolver); empty: the system resolver (getaddrinfo).
  std::vector<net::ip::udp::endpoint> resolver;
  /// Endpoints nobody may tunnel to (the gateway's own listeners); an unspecified address
  /// (0.0.0.0 / ::) in here stands for every local address on that port.
  std::vector<tcp::endpoint> forbidden;
  /// Addresses assigned to this host (for the unspecified entries above).
  std::vector<net::ip::address> local_addresses;
};

/// Why an outbound connection failed. The text names reach X-Tunnel-Reason and the logs.
enum class dial_status {
  ok,
  resolve_failed,    ///< 502: the name does not resolve
  resolve_timeout,   ///< 504
  no_egress_family,  ///< 502: only addresses of a family without an egress address
  forbidden,         ///< 403: the destination is the gateway itself
  connect_failed,    ///< 502: refused / unreachable
  connect_timeout,   ///< 504
  proxy_failed,      ///< 502: upstream proxy refused the CONNECT or broke the protocol
  proxy_timeout,     ///< 504
};
std::string_view to_string(dial_status s) noexcept;
/// The HTTP status a client gets for a failed dial.
unsigned http_status(dial_status s) noexcept;

struct dial_result {
  dial_status status = dial_status::ok;
  std::string detail;    ///< human text for logs and the response body
  tcp::endpoint remote;  ///< the endpoint connected to
  tcp::endpoint local;   ///< the local (egress) endpoint used
};

/// Checks that each configured egress address is assigned to this host by binding to it.
/// Returns an empty string when fine, else the error naming the address and the fix.
std::string check_egress_addresses(const egress_options& o);

/// All addresses assigned to local interfaces (getifaddrs), for egress_options.
std::vector<net::ip::address> local_interface_addresses();

/// Resolves `host` (a name or IP literal) and connects `sock` from the egress address of the
/// endpoint's family, trying each endpoint in turn (bind before connect, P5).
/// Arguments are references to the caller's named locals (see session.cpp on GCC 12).
awaitable<dial_result> dial(const egress_options& o, const std::string& host, std::uint16_t port,
                            tcp::socket& sock);

/// Sends `CONNECT authority` on an established stream to an upstream proxy and reads the
/// response head. `leftover` receives any bytes the proxy sent after the head.
/// `basic_credentials` is "user:password" or empty.
template <class Stream>
awaitable<dial_result> proxy_connect(Stream& s, const std::string& authority,
                                     const std::string& basic_credentials,
                                     beast::flat_buffer& leftover,
                                     std::chrono::milliseconds timeout);

}  // namespace tunnelgate::gateway
