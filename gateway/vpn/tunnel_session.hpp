// Internal: one device's CSTP tunnel, after the `200 CONNECTED` answer: frames from the device
// (DATA through the per-flow decision into the TUN; DPD answered; DISCONNECT ends it) and
// packets from the TUN to the device, each frame in its own TLS record (openconnect reads one
// frame per record). Ends on the device leaving, a dead peer (no frame for three DPD periods),
// the idle timeout, a malformed frame, or terminate() (revocation, admin, shutdown), which sends
// TERMINATE first and closes within a second.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "gateway/net.hpp"
#include "gateway/registry.hpp"
#include "gateway/tls_socket.hpp"
#include "gateway/vpn/hub.hpp"

namespace tunnelgate::gateway {

struct vpn_tunnel_context {
  tls_socket* tls = nullptr;
  beast::flat_buffer* leftover = nullptr;  ///< bytes read after the CONNECT head
  std::shared_ptr<shared_state> st;
  std::shared_ptr<vpn_hub> hub;
  std::shared_ptr<vpn_link> link;  ///< address, platform, identity; `deliver` is set here
  session_entry* entry = nullptr;  ///< counters and the kill flag
  std::uint32_t mtu = 1400;
  /// Set by run_vpn_tunnel while it runs: call it (on the session's executor) to end the
  /// tunnel with TERMINATE. Cleared when the tunnel ends.
  std::function<void()>* terminate_hook = nullptr;
};

/// Runs the tunnel to its end on the caller's executor; returns why it ended (for the log:
/// device-disconnect, device-closed, dpd-timeout, idle-timeout, malformed-frame:<reason>,
/// terminated, write-failed).
awaitable<std::string> run_vpn_tunnel(vpn_tunnel_context* ctx);

}  // namespace tunnelgate::gateway
