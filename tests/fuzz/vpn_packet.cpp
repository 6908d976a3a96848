// Fuzz target: one IP packet from a VPN device (a CSTP DATA payload) as the data path parses it
// before any policy decision (gateway/vpn/packet.hpp parse, key_of): IPv4 options, IPv6
// extension header chains, fragments, transport headers.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "gateway/vpn/packet.hpp"

namespace packet = tunnelgate::gateway::vpn::packet;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  packet::info p;
  if (packet::parse(std::span<const std::uint8_t>(data, size), p) != packet::error::none) return 0;
  // What was parsed lies within the packet.
  if (p.length != size || p.transport_offset > size || (p.version != 4 && p.version != 6) ||
      (p.has_ports && !p.first_fragment))
    std::abort();
  (void)packet::key_of(p);
  return 0;
}
