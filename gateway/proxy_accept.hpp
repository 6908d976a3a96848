// Internal: a device connection on a listener with proxy_protocol (config listen[i] as a
// mapping): the sender check, the PROXY protocol v2 header read under limits.first_byte_timeout,
// then the accept-time limits and the session with the device's address from the header.
#pragma once

#include <memory>

#include "gateway/accept_control.hpp"
#include "gateway/config.hpp"
#include "gateway/net.hpp"

namespace tunnelgate::gateway {

struct shared_state;

/// True if `peer` (IPv4-mapped IPv6 counts as IPv4) is inside one of `pp.senders`.
bool proxy_sender_allowed(const proxy_protocol_config& pp, const net::ip::address& peer);

/// Serves one connection accepted on a proxy_protocol listener, from `sender` (the TCP peer):
///  * a sender outside pp.senders is reset at once (accept refusal proxy-sender-not-allowed);
///  * the header is read exactly (never a byte of the TLS that follows), within
///    limits.first_byte_timeout, holding one of the thread's handshake slots; a bad or missing
///    header resets the connection (proxy-header-invalid, proxy-header-timeout), logged once
///    per sender per accept_control::log_interval;
///  * LOCAL (the balancer's health check) closes quietly after the header;
///  * PROXY: accept_control::admit with the device's address (per-source limits count
///    devices, not the balancer), then run_connection with that address as the peer (UNSPEC:
///    the sender's own address, as the specification says).
/// Runs on the accepting thread's executor; `handshakes` is that thread's counter.
awaitable<void> run_proxied_connection(std::shared_ptr<shared_state> st, tcp::socket sock,
                                       tcp::endpoint sender,
                                       std::shared_ptr<const proxy_protocol_config> pp,
                                       std::shared_ptr<handshake_counter> handshakes);

}  // namespace tunnelgate::gateway
