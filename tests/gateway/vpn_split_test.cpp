// What a VPN client is told to route and resolve through the tunnel, for a given rules file:
// vpn_hub::split_for on inline rules, each case a lookup (STYLE: config tests as YAML literals).
#include <gtest/gtest.h>

#include <set>

#include "gateway/vpn/hub.hpp"

namespace tunnelgate::gateway {
namespace {

std::shared_ptr<const dtr::policy> rules(const std::string& yaml) {
  auto r = dtr::load_rules(yaml, "rules.yaml");
  EXPECT_TRUE(r) << (r.errors.empty() ? "" : r.errors.front().to_string());
  return r.value;
}

cidr mapped() {
  return {net::ip::make_address("100.64.0.0"), 16};
}

std::vector<std::string> texts(const std::vector<net::ip::network_v4>& v) {
  std::vector<std::string> out;
  for (const auto& n : v)
    out.push_back(n.to_string());
  return out;
}

constexpr const char* windows = R"(proxies:
  corp: http://10.0.0.8:3128
rule_sets:
  - name: windows
    platforms: [windows]
    mode: full-device
    default: block
    rules:
      - action: block
        destinations: ["blocked.okta.com", "10.9.0.0/16"]
      - action: tunnel
        destinations: ["*.okta.com", "login.microsoftonline.com", "*msauth.net", "10.20.0.0/16",
                       "10.30.0.5:443", "[2001:db8::/32]:443", "*.okta.com"]
      - action: proxy
        proxy: corp
        destinations: ["*.corp.example"]
      - action: bypass
        destinations: ["*.bypass.example", "192.0.2.0/24"]
  - name: macos
    platforms: [macos]
    mode: full-device
    default: tunnel
)";

TEST(VpnSplit, TunnelCidrsAndTheMappedPoolAreRouted) {
  const auto p = rules(windows);
  const auto s = vpn_hub::split_for(*p, dtr::platform::windows, mapped());
  EXPECT_FALSE(s.full_tunnel);
  EXPECT_EQ(texts(s.include_v4),
            (std::vector<std::string>{"100.64.0.0/16", "10.20.0.0/16", "10.30.0.5/32"}))
      << "block and bypass CIDRs are not routed; a port-limited CIDR is routed whole (each "
         "flow is decided on its port)";
  ASSERT_EQ(s.include_v6.size(), 1u);
  EXPECT_EQ(s.include_v6[0].to_string(), "2001:db8::/32");
}

TEST(VpnSplit, TunnelAndProxyHostRulesGiveSplitDnsDomainsOnce) {
  const auto p = rules(windows);
  const auto s = vpn_hub::split_for(*p, dtr::platform::windows, mapped());
  EXPECT_EQ(s.dns, (std::vector<std::string>{"okta.com", "login.microsoftonline.com", "msauth.net",
                                             "corp.example"}))
      << "block and bypass names resolve outside the tunnel; duplicates once";
}

TEST(VpnSplit, DefaultTunnelRoutesEverything) {
  const auto p = rules(windows);
  const auto s = vpn_hub::split_for(*p, dtr::platform::macos, mapped());
  EXPECT_TRUE(s.full_tunnel);
}

TEST(VpnSplit, NoFullDeviceSetNothing) {
  const auto p = rules(windows);
  const auto s = vpn_hub::split_for(*p, dtr::platform::linux, mapped());
  EXPECT_FALSE(s.full_tunnel);
  EXPECT_TRUE(s.include_v4.empty());
  EXPECT_TRUE(s.dns.empty());
}

TEST(VpnDrop, OneSpellingEach) {
  std::set<std::string_view> seen;
  for (int i = 0; i <= static_cast<int>(vpn_drop::flow_table_full); ++i) {
    const auto name = to_string(static_cast<vpn_drop>(i));
    EXPECT_FALSE(name.empty());
    EXPECT_TRUE(seen.insert(name).second) << name;
  }
  EXPECT_EQ(to_string(vpn_drop::egress_policy), "forbidden-destination");
  EXPECT_EQ(to_string(vpn_drop::spoofed), "spoofed-source");
}

}  // namespace
}  // namespace tunnelgate::gateway
