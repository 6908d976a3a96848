// nftables through libnftables: the `inet tunnelgate` table and its run-time map.
//
// The table tunnelgate installs (install_nat), shown for a typical configuration: TUN
// tunnelgate0, pool4 10.10.0.0/24, pool6 fd00:10::/64, mapped_pool4 100.64.0.0/16, egress
// 192.0.2.10 and 2001:db8::10 on eth0, kernel with IPv6 force_forwarding. docs/vpn.md carries
// the same listing; keep both in step with ruleset() below.
//
//   table inet tunnelgate {
//     comment "tunnelgate restore: 4/eth0/f=0 6/eth0/F=0"
//     map mapped4 {                                    # mapped address -> real address
//       type ipv4_addr : ipv4_addr
//     }
//     chain prerouting {
//       type nat hook prerouting priority dstnat; policy accept;
//       iifname "tunnelgate0" ip daddr 100.64.0.0/16 dnat ip to ip daddr map @mapped4  # P1
//     }
//     chain postrouting {
//       type nat hook postrouting priority srcnat; policy accept;
//       oifname != "tunnelgate0" ip saddr 10.10.0.0/24 snat ip to 192.0.2.10          # S1
//       oifname != "tunnelgate0" ip6 saddr fd00:10::/64 snat ip6 to 2001:db8::10      # S2
//     }
//     chain forward {
//       type filter hook forward priority filter; policy accept;
//       iifname "tunnelgate0" oifname "tunnelgate0" counter drop comment "device-to-device"  # F0
//       iifname "tunnelgate0" ip daddr 100.64.0.0/16 counter drop comment "unmapped"  # F1
//       iifname "tunnelgate0" ip saddr 10.10.0.0/24 accept                             # F2
//       iifname "tunnelgate0" ip6 saddr fd00:10::/64 accept                            # F3
//       iifname "tunnelgate0" counter drop comment "spoofed"                           # F4
//       oifname "tunnelgate0" ct state established,related accept                     # F5
//       oifname "tunnelgate0" counter drop comment "unsolicited"                       # F6
//       iifname "eth0" meta nfproto ipv4 counter drop comment "not-ours"               # F7
//       iifname "eth0" meta nfproto ipv6 counter drop comment "not-ours"               # F7
//     }
//   }
//
// P1  A new flow from a device to a mapped address goes to the real address the DNS mapping
//     chose (map_add). NAT chains only see a flow's first packet: later packets, replies
//     included, follow conntrack, so map_remove never cuts a flow in progress. An address
//     with no entry is left alone here and dropped by F1.
// S1  Client traffic leaving through any interface but the TUN takes the egress address as
//     its source (snat to a fixed address rather than masquerade, so it is always the address
//     published to the identity provider, whatever the route says). Replies are translated
//     back by conntrack. S2 (only with pool6): the same for IPv6.
// F0  Devices never reach each other through the gateway (behind the gateway's own decision,
//     which refuses the VPN's ranges as destinations), whatever a `tunnel` CIDR rule covers.
// F1  Defence in depth behind the gateway's own per-packet policy: a mapped address without a
//     live mapping is never forwarded untranslated (after P1 only those still carry a mapped
//     destination here).
// F2  What comes from the TUN with a source in the client pool is forwarded (the gateway has
//     already decided per packet which destinations a device may reach). F3: IPv6, only with
//     pool6.
// F4  Anything else from the TUN (a source outside the pools) is dropped.
// F5  Towards the TUN: replies of flows the devices started, and related ICMP errors
//     (e.g. fragmentation needed).
// F6  Nothing else enters the client pool from outside (no new inbound flow to a device).
// F7  Present only for an interface whose forwarding install_nat turned on: Linux decides
//     IPv4 forwarding on the interface a packet arrives on, so turning it on for the egress
//     interface would also let the host route anything else arriving there. F7 drops that,
//     so the host forwards exactly what it forwarded before plus the VPN. With global IPv6
//     forwarding (old kernels, allow_global_ipv6_forwarding) F7 is `meta nfproto ipv6 counter
//     drop` without an interface.
// The counters of F0, F1, F4, F6 and F7 count dropped packets (`nft list table inet tunnelgate`).
// The chains accept by default and tunnelgate touches no other table: an accept here cannot
// override a drop elsewhere (a host firewall with a forward policy of drop must allow the VPN
// itself), and traffic that does not concern the VPN passes as before.
#include <nftables/libnftables.h>

#include <stdexcept>

#include "gateway/netops/detail.hpp"

namespace tunnelgate::netops::detail {

namespace {

/// The limit nft puts on comments (NFTNL_UDATA_COMMENT_MAXLEN).
constexpr std::size_t comment_max = 128;

std::string hint_for(const std::string& err) {
  if (err.find("Operation not permitted") != std::string::npos)
    return " (CAP_NET_ADMIN missing: run as root or grant the capability)";
  if (err.find("Protocol not supported") != std::string::npos)
    return " (the kernel lacks nf_tables: `modprobe nf_tables`)";
  if (err.find("No such file or directory") != std::string::npos &&
      err.find("chain") != std::string::npos)
    return " (the kernel may lack NAT for nf_tables: `modprobe nft_chain_nat nf_nat`)";
  return {};
}

std::string quoted(const std::string& ifname) {
  if (!valid_ifname(ifname))
    throw std::invalid_argument("netops: interface name '" + ifname +
                                "' is not 1-15 characters of [A-Za-z0-9_.-]");
  return "\"" + ifname + "\"";
}

std::string table_ref() {
  return std::string(table_family) + " " + table_name;
}

}  // namespace

nft::nft() {
  ctx_ = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!ctx_) throw std::runtime_error("netops: nft_ctx_new failed (libnftables)");
  // Everything nft prints goes into buffers: output for listings, errors into exceptions.
  nft_ctx_buffer_output(ctx_);
  nft_ctx_buffer_error(ctx_);
}

nft::~nft() {
  if (ctx_) nft_ctx_free(ctx_);
}

void nft::set_terse(bool on) {
  auto flags = nft_ctx_output_get_flags(ctx_);
  flags =
      on ? (flags | NFT_CTX_OUTPUT_TERSE) : (flags & ~static_cast<unsigned>(NFT_CTX_OUTPUT_TERSE));
  nft_ctx_output_set_flags(ctx_, flags);
}

std::optional<std::string> nft::try_run(const std::string& commands, std::string* error) {
  const int rc = nft_run_cmd_from_buffer(ctx_, commands.c_str());
  // Reading a buffer also empties it for the next command.
  const char* o = nft_ctx_get_output_buffer(ctx_);
  const char* e = nft_ctx_get_error_buffer(ctx_);
  std::string out = o ? o : "";
  std::string err = e ? e : "";
  if (rc != 0) {
    if (error) *error = err.empty() ? "nft failed without a message" : err;
    return std::nullopt;
  }
  return out;
}

std::string nft::run(const std::string& commands, const std::string& what) {
  std::string err;
  auto out = try_run(commands, &err);
  if (!out) {
    while (!err.empty() && err.back() == '\n')
      err.pop_back();
    throw std::runtime_error("netops: nft: " + what + " failed" + hint_for(err) + ":\n" + err);
  }
  return *out;
}

std::string ruleset(const nat_spec& s, const ruleset_params& p) {
  const std::string tun = quoted(s.tun_name);
  const std::string pool4 = s.pool4.canonical().to_string();
  const std::string mapped = s.mapped_pool4.canonical().to_string();
  if (p.comment.size() > comment_max || p.comment.find('"') != std::string::npos)
    throw std::runtime_error("netops: the sysctl restore record does not fit an nft comment (" +
                             std::to_string(p.comment.size()) + " > " +
                             std::to_string(comment_max) + " characters): '" + p.comment + "'");

  std::string r;
  // Delete-if-exists then create, in the one transaction nft makes of a buffer: a stale table
  // from a killed run is replaced atomically, and no moment exists without the table.
  r += "table " + table_ref() + "\n";
  r += "delete table " + table_ref() + "\n";
  r += "table " + table_ref() + " {\n";
  if (!p.comment.empty()) r += "  comment \"" + p.comment + "\"\n";
  r += "  map mapped4 {\n    type ipv4_addr : ipv4_addr\n  }\n";

  r += "  chain prerouting {\n";
  r += "    type nat hook prerouting priority dstnat; policy accept;\n";
  r += "    iifname " + tun + " ip daddr " + mapped + " dnat ip to ip daddr map @mapped4\n";
  r += "  }\n";

  r += "  chain postrouting {\n";
  r += "    type nat hook postrouting priority srcnat; policy accept;\n";
  r += "    oifname != " + tun + " ip saddr " + pool4 + " snat ip to " + s.egress4.to_string() +
       "\n";
  if (s.pool6 && s.egress6)
    r += "    oifname != " + tun + " ip6 saddr " + s.pool6->canonical().to_string() +
         " snat ip6 to " + s.egress6->to_string() + "\n";
  r += "  }\n";

  r += "  chain forward {\n";
  r += "    type filter hook forward priority filter; policy accept;\n";
  r += "    iifname " + tun + " oifname " + tun + " counter drop comment \"device-to-device\"\n";
  r += "    iifname " + tun + " ip daddr " + mapped + " counter drop comment \"unmapped\"\n";
  r += "    iifname " + tun + " ip saddr " + pool4 + " accept\n";
  if (s.pool6)
    r += "    iifname " + tun + " ip6 saddr " + s.pool6->canonical().to_string() + " accept\n";
  r += "    iifname " + tun + " counter drop comment \"spoofed\"\n";
  r += "    oifname " + tun + " ct state established,related accept\n";
  r += "    oifname " + tun + " counter drop comment \"unsolicited\"\n";
  for (const auto& i : p.guard4)
    r += "    iifname " + quoted(i) + " meta nfproto ipv4 counter drop comment \"not-ours\"\n";
  for (const auto& i : p.guard6)
    r += "    iifname " + quoted(i) + " meta nfproto ipv6 counter drop comment \"not-ours\"\n";
  if (p.guard6_global) r += "    meta nfproto ipv6 counter drop comment \"not-ours\"\n";
  r += "  }\n";
  r += "}\n";
  return r;
}

std::string delete_table_script() {
  return "table " + table_ref() + "\ndelete table " + table_ref() + "\n";
}

std::string map_add_script(const ip::address_v4& mapped, const ip::address_v4& real) {
  return "add element " + table_ref() + " mapped4 { " + mapped.to_string() + " : " +
         real.to_string() + " }\n";
}

std::string map_replace_script(const ip::address_v4& mapped, const ip::address_v4& old_real,
                               const ip::address_v4& real) {
  // The kernel refuses to add a key that exists with another value, so delete and add in one
  // transaction: no packet ever sees the key missing.
  return "delete element " + table_ref() + " mapped4 { " + mapped.to_string() + " : " +
         old_real.to_string() + " }\n" + map_add_script(mapped, real);
}

std::string map_remove_script(const ip::address_v4& mapped) {
  return "delete element " + table_ref() + " mapped4 { " + mapped.to_string() + " }\n";
}

}  // namespace tunnelgate::netops::detail
