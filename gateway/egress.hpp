// Internal: outbound connections from the egress address, with time-bounded resolution and
// connection, and CONNECT through an upstream proxy.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gateway/egress_policy.hpp"
#include "gateway/net.hpp"
#include "gateway/refusal.hpp"

namespace tunnelgate::gateway {

struct egress_options {
  std::optional<net::ip::address> v4;  ///< source address for IPv4 destinations
  std::optional<net::ip::address> v6;  ///< source address for IPv6 destinations
  std::chrono::milliseconds resolve_timeout{5000};
  std::chrono::milliseconds connect_timeout{10000};
  /// Name servers to ask (egress.resolver); empty: the system resolver (getaddrinfo).
  std::vector<net::ip::udp::endpoint> resolver;
};

struct dial_result {
  /// none, or why the dial failed: resolve_failed, resolve_timeout, no_egress_family,
  /// forbidden_destination (or blocked / bypass when every address hit such a CIDR rule),
  /// connect_failed, connect_timeout, proxy_failed, proxy_timeout; gateway_overloaded when
  /// the gateway itself ran out of descriptors, memory or source ports (`exhausted` says which).
  refusal status = refusal::none;
  std::string_view exhausted;  ///< "descriptors", "ports" or "memory" with gateway_overloaded
  std::string detail;          ///< what failed, for the log only (the device gets device_text())
  tcp::endpoint remote;        ///< the endpoint connected to
  tcp::endpoint local;         ///< the local (egress) endpoint used
  /// Every address the egress policy refused, with the reason (for the log).
  std::vector<std::pair<tcp::endpoint, egress_verdict>> refused;
  /// The rule that refused, when status is blocked or bypass (from the first such address).
  egress_verdict rule;
};

/// The gateway's own shortage behind a socket error (never the destination's fault):
/// "descriptors" (EMFILE, ENFILE), "memory" (ENOMEM, ENOBUFS), "ports" (EADDRNOTAVAIL), or
/// empty for any other error.
std::string_view local_shortage(const boost::system::error_code& e);

/// The egress policy applied to each address before connecting.
using address_check = std::function<egress_verdict(const tcp::endpoint&)>;

/// Checks that each configured egress address is assigned to this host by binding to it.
/// Returns an empty string when fine, else the error naming the address and the fix.
std::string check_egress_addresses(const egress_options& o);

struct resolved {
  refusal status = refusal::none;  ///< none, resolve_failed or resolve_timeout
  std::string detail;              ///< for the log
  std::vector<tcp::endpoint> endpoints;
};
/// Resolves `host` (a name or IP literal) within o.resolve_timeout, through o.resolver when
/// set (only the families with an egress address), else the system resolver.
awaitable<resolved> resolve_destination(const egress_options& o, const std::string& host,
                                        std::uint16_t port);

/// Resolves `host` (a name or IP literal), passes every address through `check` (addresses
/// it refuses are skipped and reported), and connects `sock` from the egress address of the
/// endpoint's family, trying each remaining endpoint in turn (bind before connect, P5).
/// Arguments are references to the caller's named locals (see session.cpp on GCC 12).
awaitable<dial_result> dial(const egress_options& o, const std::string& host, std::uint16_t port,
                            const address_check& check, tcp::socket& sock);

/// "a.b.c.d:port" / "[v6]:port".
std::string endpoint_text(const tcp::endpoint& ep);

/// Sends `CONNECT authority` on an established stream to an upstream proxy and reads the
/// response head. `leftover` receives any bytes the proxy sent after the head.
/// `basic_credentials` is "user:password" or empty.
template <class Stream>
awaitable<dial_result> proxy_connect(Stream& s, const std::string& authority,
                                     const std::string& basic_credentials,
                                     beast::flat_buffer& leftover,
                                     std::chrono::milliseconds timeout);

}  // namespace tunnelgate::gateway
