// The egress policy: ranges (cidr), the normalisation of IPv4 inside IPv6, and check() /
// check_upstream() on every class of address. Pure function calls: no traffic is sent, so the
// public addresses below (documentation ranges, 8.8.8.8) are never contacted.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dtr/dtr.hpp"
#include "gateway/egress_policy.hpp"

namespace tunnelgate::gateway {

// Readable failures: the names, not the numbers (found by ADL, internal to this test).
[[maybe_unused]] static void PrintTo(egress_block b, std::ostream* os) {
  *os << to_string(b);
}

namespace {

net::ip::address ip(const char* text) {
  return net::ip::make_address(text);
}

tcp::endpoint ep(const char* text, std::uint16_t port = 443) {
  return {ip(text), port};
}

cidr must_parse(std::string_view text) {
  std::string error;
  auto c = cidr::parse(text, error);
  EXPECT_TRUE(c.has_value()) << text << ": " << error;
  return c.value_or(cidr{});
}

std::string parse_error(std::string_view text) {
  std::string error;
  auto c = cidr::parse(text, error);
  EXPECT_FALSE(c.has_value()) << text << " parsed as " << (c ? c->text() : "");
  return error;
}

// ---- cidr::parse -----------------------------------------------------------------------------

TEST(CidrParse, ValidRangesAndBareAddresses) {
  const struct {
    const char* in;
    const char* network;
    unsigned prefix;
    const char* text;
  } cases[] = {
      {"10.0.0.0/8", "10.0.0.0", 8, "10.0.0.0/8"},
      {"172.16.0.0/12", "172.16.0.0", 12, "172.16.0.0/12"},
      {"0.0.0.0/0", "0.0.0.0", 0, "0.0.0.0/0"},
      {"192.0.2.7", "192.0.2.7", 32, "192.0.2.7/32"},
      {"192.0.2.7/32", "192.0.2.7", 32, "192.0.2.7/32"},
      {"2001:db8::/32", "2001:db8::", 32, "2001:db8::/32"},
      {"2001:DB8::/32", "2001:db8::", 32, "2001:db8::/32"},
      {"fd00::/8", "fd00::", 8, "fd00::/8"},
      {"::/0", "::", 0, "::/0"},
      {"::1", "::1", 128, "::1/128"},
      {"::", "::", 128, "::/128"},
      {"2001:db8::1/128", "2001:db8::1", 128, "2001:db8::1/128"},
  };
  for (const auto& c : cases) {
    const auto got = must_parse(c.in);
    EXPECT_EQ(got.network, ip(c.network)) << c.in;
    EXPECT_EQ(got.prefix, c.prefix) << c.in;
    EXPECT_EQ(got.text(), c.text) << c.in;
  }
}

TEST(CidrParse, Ipv4InsideIpv6BecomesIpv4) {
  // A mapped range counts its prefix in IPv6 bits: /104 is the IPv4 /8.
  auto c = must_parse("::ffff:10.0.0.0/104");
  EXPECT_TRUE(c.network.is_v4());
  EXPECT_EQ(c, must_parse("10.0.0.0/8"));
  EXPECT_EQ(c.text(), "10.0.0.0/8");
  // A bare mapped or IPv4-compatible address is the IPv4 /32.
  EXPECT_EQ(must_parse("::ffff:192.0.2.7"), must_parse("192.0.2.7/32"));
  EXPECT_EQ(must_parse("::ffff:192.0.2.7/128"), must_parse("192.0.2.7/32"));
  EXPECT_EQ(must_parse("::10.0.0.0/104"), must_parse("10.0.0.0/8"));
  // ::ffff:0:0/96 is every mapped address: all of IPv4.
  EXPECT_EQ(must_parse("::ffff:0.0.0.0/96"), must_parse("0.0.0.0/0"));
  // The mapped range still contains the IPv4 addresses it names, and nothing IPv6.
  EXPECT_TRUE(c.contains(ip("10.255.0.1")));
  EXPECT_FALSE(c.contains(ip("11.0.0.0")));
  EXPECT_FALSE(c.contains(ip("::ffff:10.0.0.1")));  // contains() does not normalise: check() does
}

TEST(CidrParse, Garbage) {
  for (const char* bad : {"", "not-an-ip", "10.0.0", "10.0.0.0.0/8", "/8", "10.0.0.0x",
                          "2001:db8:::/32", "example.com"}) {
    const auto e = parse_error(bad);
    EXPECT_EQ(e, "'" + std::string(bad) + "' is not an address or CIDR (e.g. 10.0.0.0/8, fd00::/8)")
        << bad;
  }
}

TEST(CidrParse, PrefixOutOfRangeOrMalformed) {
  EXPECT_EQ(parse_error("10.0.0.0/33"), "'10.0.0.0/33': the prefix length must be 0-32");
  EXPECT_EQ(parse_error("2001:db8::/129"), "'2001:db8::/129': the prefix length must be 0-128");
  for (const char* bad : {"10.0.0.0/", "10.0.0.0/x", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8 ",
                          "10.0.0.0/ 8", "10.0.0.0/8/8", "10.0.0.0/99999999999999999999"}) {
    EXPECT_EQ(parse_error(bad), "'" + std::string(bad) + "': the prefix length must be 0-32")
        << bad;
  }
  // A mapped range's prefix is in IPv6 bits, so below 96 it cannot name IPv4 networks.
  EXPECT_EQ(parse_error("::ffff:10.0.0.0/64"),
            "'::ffff:10.0.0.0/64': an IPv4-mapped range needs a prefix of 96 or more");
  EXPECT_EQ(parse_error("::ffff:10.0.0.0/129"),
            "'::ffff:10.0.0.0/129': the prefix length must be 0-32");
}

TEST(CidrParse, HostBitsSetSuggestsTheNetwork) {
  EXPECT_EQ(parse_error("10.0.0.1/8"), "'10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?");
  EXPECT_EQ(parse_error("172.20.0.0/11"),
            "'172.20.0.0/11' has host bits set; did you mean 172.0.0.0/11?");
  EXPECT_EQ(parse_error("192.0.2.1/0"), "'192.0.2.1/0' has host bits set; did you mean 0.0.0.0/0?");
  EXPECT_EQ(parse_error("2001:db8::1/32"),
            "'2001:db8::1/32' has host bits set; did you mean 2001:db8::/32?");
  EXPECT_EQ(parse_error("fe80::1/10"), "'fe80::1/10' has host bits set; did you mean fe80::/10?");
  // Mapped: the suggestion is the IPv4 network the range stands for.
  EXPECT_EQ(parse_error("::ffff:10.0.0.1/104"),
            "'::ffff:10.0.0.1/104' has host bits set; did you mean 10.0.0.0/8?");
}

TEST(CidrParse, ZoneIndexRefused) {
  // A numeric zone, or the name of an interface that exists (lo is always there).
  for (const char* bad : {"fe80::%1/10", "fe80::1%1", "fe80::1%lo", "2001:db8::1%5"}) {
    EXPECT_EQ(parse_error(bad), "'" + std::string(bad) + "': no zone index (%...) in a range")
        << bad;
  }
}

// Regression: Asio's make_address() silently drops a zone it cannot resolve (an interface name
// that does not exist on this host, "%0", an empty "%", any name on a global address), so the
// text itself is refused, not only a parsed scope id.
TEST(CidrParse, ZoneIndexRefusedEvenWhenAsioDropsIt) {
  for (const char* bad : {"fe80::1%nosuchif0", "fe80::1%0", "fe80::1%", "2001:db8::1%nosuchif0",
                          "fe80::%nosuchif0/10"}) {
    std::string error;
    const auto c = cidr::parse(bad, error);
    EXPECT_FALSE(c.has_value()) << bad << " parsed as " << (c ? c->text() : "");
    EXPECT_NE(error.find("no zone index"), std::string::npos) << bad << ": " << error;
  }
}

// ---- cidr::contains --------------------------------------------------------------------------

TEST(CidrContains, PrefixZeroHoldsTheWholeFamilyOnly) {
  const auto v4 = must_parse("0.0.0.0/0");
  EXPECT_TRUE(v4.contains(ip("0.0.0.0")));
  EXPECT_TRUE(v4.contains(ip("255.255.255.255")));
  EXPECT_TRUE(v4.contains(ip("192.0.2.1")));
  EXPECT_FALSE(v4.contains(ip("::")));
  EXPECT_FALSE(v4.contains(ip("2001:db8::1")));
  const auto v6 = must_parse("::/0");
  EXPECT_TRUE(v6.contains(ip("::")));
  EXPECT_TRUE(v6.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(v6.contains(ip("0.0.0.0")));
  EXPECT_FALSE(v6.contains(ip("10.0.0.1")));
}

TEST(CidrContains, FullLengthHoldsOneAddress) {
  const auto h4 = must_parse("192.0.2.7/32");
  EXPECT_TRUE(h4.contains(ip("192.0.2.7")));
  EXPECT_FALSE(h4.contains(ip("192.0.2.6")));
  EXPECT_FALSE(h4.contains(ip("192.0.2.8")));
  EXPECT_FALSE(h4.contains(ip("::ffff:192.0.2.7")));
  const auto h6 = must_parse("2001:db8::7/128");
  EXPECT_TRUE(h6.contains(ip("2001:db8::7")));
  EXPECT_FALSE(h6.contains(ip("2001:db8::6")));
  EXPECT_FALSE(h6.contains(ip("2001:db8::7:0")));
  EXPECT_FALSE(h6.contains(ip("2001:db8:0:0:0:0:0:8")));
}

TEST(CidrContains, OddPrefixes) {
  const auto p12 = must_parse("172.16.0.0/12");
  EXPECT_TRUE(p12.contains(ip("172.16.0.0")));
  EXPECT_TRUE(p12.contains(ip("172.31.255.255")));
  EXPECT_FALSE(p12.contains(ip("172.15.255.255")));
  EXPECT_FALSE(p12.contains(ip("172.32.0.0")));
  const auto p10 = must_parse("100.64.0.0/10");
  EXPECT_TRUE(p10.contains(ip("100.64.0.0")));
  EXPECT_TRUE(p10.contains(ip("100.127.255.255")));
  EXPECT_FALSE(p10.contains(ip("100.63.255.255")));
  EXPECT_FALSE(p10.contains(ip("100.128.0.0")));
  const auto v6p10 = must_parse("fe80::/10");
  EXPECT_TRUE(v6p10.contains(ip("fe80::1")));
  EXPECT_TRUE(v6p10.contains(ip("febf:ffff::1")));
  EXPECT_FALSE(v6p10.contains(ip("fec0::1")));
  EXPECT_FALSE(v6p10.contains(ip("fe7f::1")));
  const auto p7 = must_parse("fc00::/7");
  EXPECT_TRUE(p7.contains(ip("fc00::")));
  EXPECT_TRUE(p7.contains(ip("fdff:ffff::1")));
  EXPECT_FALSE(p7.contains(ip("fbff:ffff::1")));
  EXPECT_FALSE(p7.contains(ip("fe00::1")));
  const auto p23 = must_parse("198.51.100.0/23");
  EXPECT_TRUE(p23.contains(ip("198.51.101.255")));
  EXPECT_FALSE(p23.contains(ip("198.51.102.0")));
  const auto p65 = must_parse("2001:db8:0:0:8000::/65");
  EXPECT_TRUE(p65.contains(ip("2001:db8::ffff:0:0:1")));
  EXPECT_FALSE(p65.contains(ip("2001:db8::7fff:0:0:1")));
}

// ---- egress_policy::normalize ----------------------------------------------------------------

TEST(EgressNormalize, Ipv4InsideIpv6BecomesIpv4) {
  EXPECT_EQ(egress_policy::normalize(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
  EXPECT_EQ(egress_policy::normalize(ip("::ffff:127.0.0.1")), ip("127.0.0.1"));
  EXPECT_EQ(egress_policy::normalize(ip("::192.0.2.1")), ip("192.0.2.1"));
  EXPECT_EQ(egress_policy::normalize(ip("::127.0.0.1")), ip("127.0.0.1"));
  EXPECT_EQ(egress_policy::normalize(ip("::0.0.0.2")), ip("0.0.0.2"));
  EXPECT_TRUE(egress_policy::normalize(ip("::ffff:0.0.0.0")).is_v4());
}

TEST(EgressNormalize, OtherAddressesUnchanged) {
  for (const char* same : {"::", "::1", "2001:db8::1", "fe80::1", "64:ff9b::7f00:1", "ff02::1",
                           "::1:0:0:1", "192.0.2.1", "0.0.0.0"}) {
    const auto a = ip(same);
    EXPECT_EQ(egress_policy::normalize(a), a) << same;
    EXPECT_EQ(egress_policy::normalize(a).is_v4(), a.is_v4()) << same;
  }
}

// ---- egress_policy::check --------------------------------------------------------------------

// Line numbers matter: verdicts report them.
constexpr std::string_view rules_yaml = R"(proxies:
  corp: http://proxy.example:3128
rule_sets:
  - name: app-set
    platforms: [ios]
    mode: per-app
    apps: [com.example.app]
    default: tunnel
    rules:
      - action: block
        destinations: ["10.9.0.0/16"]
      - action: tunnel
        destinations: ["10.5.0.0/16"]
  - name: device
    platforms: [ios, android]
    mode: full-device
    default: tunnel
    rules:
      - action: block
        destinations: ["198.51.100.0/24"]
      - action: bypass
        destinations: ["203.0.113.0/24"]
      - action: tunnel
        destinations: ["10.1.0.0/16"]
      - action: proxy
        proxy: corp
        destinations: ["172.20.0.0/16:8080"]
)";

constexpr std::string_view default_tunnel_yaml = R"(rule_sets:
  - name: all
    platforms: [ios, android, macos, windows, linux]
    mode: full-device
    default: tunnel
)";

std::shared_ptr<const dtr::policy> load(std::string_view yaml) {
  auto r = dtr::load_rules(yaml, "rules.yaml");
  EXPECT_TRUE(r) << (r.errors.empty() ? "" : r.errors.front().to_string());
  return r.value;
}

class EgressCheck : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rules_ = load(rules_yaml);
    open_ = load(default_tunnel_yaml);
  }
  static void TearDownTestSuite() {
    rules_.reset();
    open_.reset();
  }

  /// A flow of a full-device set that tunnels everything (only the policy can refuse).
  static egress_verdict open(const egress_policy& p, const char* a, std::uint16_t port = 443) {
    return p.check(ep(a, port), *open_, dtr::platform::ios, "");
  }
  static egress_block open_block(const egress_policy& p, const char* a, std::uint16_t port = 443) {
    return open(p, a, port).block;
  }
  static egress_verdict ruled(const egress_policy& p, const char* a, std::uint16_t port = 443,
                              std::string_view app = "", dtr::platform plat = dtr::platform::ios) {
    return p.check(ep(a, port), *rules_, plat, app);
  }

  static std::shared_ptr<const dtr::policy> rules_;
  static std::shared_ptr<const dtr::policy> open_;
};
std::shared_ptr<const dtr::policy> EgressCheck::rules_;
std::shared_ptr<const dtr::policy> EgressCheck::open_;

egress_policy plain_policy() {
  return egress_policy(egress_policy_options{});
}

egress_policy policy_with(const std::vector<const char*>& allow,
                          const std::vector<const char*>& deny = {},
                          std::vector<tcp::endpoint> own = {},
                          std::shared_ptr<const host_addresses> host = nullptr) {
  egress_policy_options o;
  for (auto* a : allow)
    o.allow.push_back(must_parse(a));
  for (auto* d : deny)
    o.deny.push_back(must_parse(d));
  o.own_endpoints = std::move(own);
  o.host = std::move(host);
  return egress_policy(std::move(o));
}

TEST_F(EgressCheck, PublicAddressAllowed) {
  const auto p = plain_policy();
  for (const char* a :
       {"192.0.2.10", "8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.0", "100.63.255.255",
        "100.128.0.0", "2001:db8::10", "2606:4700::1111", "fe00::1", "fbff::1"}) {
    const auto v = open(p, a);
    EXPECT_TRUE(v.allowed()) << a << ": " << to_string(v.block);
    EXPECT_EQ(v.block, egress_block::none) << a;
    EXPECT_EQ(v.address, ip(a)) << a;
    EXPECT_EQ(v.set, nullptr) << a;
  }
}

TEST_F(EgressCheck, VerdictCarriesTheNormalisedAddress) {
  const auto p = plain_policy();
  const auto v = open(p, "::ffff:192.0.2.10");
  EXPECT_TRUE(v.allowed());
  EXPECT_TRUE(v.address.is_v4());
  EXPECT_EQ(v.address, ip("192.0.2.10"));
  EXPECT_EQ(open(p, "::192.0.2.10").address, ip("192.0.2.10"));
}

TEST_F(EgressCheck, LoopbackRefused) {
  const auto p = plain_policy();
  for (const char* a : {"127.0.0.1", "127.0.0.0", "127.1.2.3", "127.255.255.254", "127.255.255.255",
                        "::1", "::ffff:127.0.0.1", "::127.0.0.1", "::ffff:127.255.255.254"}) {
    EXPECT_EQ(open_block(p, a), egress_block::loopback) << a;
  }
  // The verdict's address is the IPv4 one for the mapped forms.
  EXPECT_EQ(open(p, "::ffff:127.0.0.1").address, ip("127.0.0.1"));
  EXPECT_EQ(open_block(p, "128.0.0.1"), egress_block::none);
  EXPECT_EQ(open_block(p, "126.255.255.255"), egress_block::none);
}

TEST_F(EgressCheck, UnspecifiedRefused) {
  const auto p = plain_policy();
  for (const char* a :
       {"0.0.0.0", "0.1.2.3", "0.255.255.255", "::", "::ffff:0.0.0.0", "::ffff:0.1.2.3"}) {
    EXPECT_EQ(open_block(p, a), egress_block::unspecified) << a;
  }
  EXPECT_EQ(open_block(p, "1.0.0.0"), egress_block::none);
}

TEST_F(EgressCheck, LinkLocalRefused) {
  const auto p = plain_policy();
  for (const char* a : {"169.254.169.254", "169.254.0.0", "169.254.255.255", "fe80::1", "febf::1",
                        "::ffff:169.254.169.254", "::169.254.169.254"}) {
    EXPECT_EQ(open_block(p, a), egress_block::link_local) << a;
  }
  EXPECT_EQ(open_block(p, "169.253.255.255"), egress_block::none);
  EXPECT_EQ(open_block(p, "169.255.0.0"), egress_block::none);
}

TEST_F(EgressCheck, MulticastRefused) {
  const auto p = plain_policy();
  for (const char* a : {"224.0.0.1", "224.0.0.0", "239.255.255.250", "239.255.255.255", "ff02::1",
                        "ff0e::fb", "::ffff:224.0.0.251"}) {
    EXPECT_EQ(open_block(p, a), egress_block::multicast) << a;
  }
  EXPECT_EQ(open_block(p, "223.255.255.255"), egress_block::none);
}

TEST_F(EgressCheck, BroadcastRefused) {
  const auto p = plain_policy();
  EXPECT_EQ(open_block(p, "255.255.255.255"), egress_block::broadcast);
  EXPECT_EQ(open_block(p, "::ffff:255.255.255.255"), egress_block::broadcast);
  // A host interface's broadcast address, and its own addresses.
  auto host = std::make_shared<const host_addresses>(
      std::vector{ip("192.0.2.55"), ip("2001:db8::55")}, std::vector{ip("192.0.2.255")});
  const auto hp = policy_with({}, {}, {}, host);
  EXPECT_EQ(open_block(hp, "192.0.2.255"), egress_block::broadcast);
  EXPECT_EQ(open_block(hp, "::ffff:192.0.2.255"), egress_block::broadcast);
  EXPECT_EQ(open_block(hp, "255.255.255.255"), egress_block::broadcast);
  EXPECT_EQ(open_block(hp, "192.0.2.254"), egress_block::none);
  // Without the host's addresses, that is an ordinary address.
  EXPECT_EQ(open_block(p, "192.0.2.255"), egress_block::none);
}

TEST_F(EgressCheck, HostAddressesRefused) {
  auto host = std::make_shared<const host_addresses>(
      std::vector{ip("192.0.2.55"), ip("2001:db8::55"), ip("10.7.0.1")},
      std::vector{ip("192.0.2.255")});
  EXPECT_TRUE(host->is_local(ip("192.0.2.55")));
  EXPECT_TRUE(host->is_local(ip("2001:db8::55")));
  EXPECT_FALSE(host->is_local(ip("192.0.2.56")));
  EXPECT_TRUE(host->is_broadcast(ip("192.0.2.255")));
  EXPECT_FALSE(host->is_broadcast(ip("192.0.2.55")));
  const auto p = policy_with({}, {}, {}, host);
  EXPECT_EQ(open_block(p, "192.0.2.55"), egress_block::host_address);
  EXPECT_EQ(open_block(p, "::ffff:192.0.2.55"), egress_block::host_address);
  EXPECT_EQ(open_block(p, "2001:db8::55"), egress_block::host_address);
  // A private host address is refused as the host's, before the private range.
  EXPECT_EQ(open_block(p, "10.7.0.1"), egress_block::host_address);
  EXPECT_EQ(open_block(p, "192.0.2.56"), egress_block::none);
  EXPECT_EQ(open_block(p, "2001:db8::56"), egress_block::none);
  // egress.allow opens a host address (it is the admin's explicit word).
  const auto allowing = policy_with({"192.0.2.55"}, {}, {}, host);
  EXPECT_EQ(open_block(allowing, "192.0.2.55"), egress_block::none);
}

TEST_F(EgressCheck, Nat64IsCheckedAsTheEmbeddedIpv4) {
  const auto p = plain_policy();
  EXPECT_EQ(open_block(p, "64:ff9b::7f00:1"), egress_block::loopback);         // 127.0.0.1
  EXPECT_EQ(open_block(p, "64:ff9b::a9fe:a9fe"), egress_block::link_local);    // 169.254.169.254
  EXPECT_EQ(open_block(p, "64:ff9b::a00:1"), egress_block::private_range);     // 10.0.0.1
  EXPECT_EQ(open_block(p, "64:ff9b::c0a8:101"), egress_block::private_range);  // 192.168.1.1
  EXPECT_EQ(open_block(p, "64:ff9b::808:808"), egress_block::none);            // 8.8.8.8
  // The verdict keeps the NAT64 address: that is what is connected to.
  EXPECT_EQ(open(p, "64:ff9b::808:808").address, ip("64:ff9b::808:808"));
  // Only the well-known prefix /96.
  EXPECT_EQ(open_block(p, "64:ff9b:0:1::7f00:1"), egress_block::none);
  // egress.deny and own listeners apply to the embedded address too.
  const auto d = policy_with({}, {"8.8.8.0/24"}, {ep("192.0.2.20", 8443)});
  EXPECT_EQ(open_block(d, "64:ff9b::808:808"), egress_block::denied);
  EXPECT_EQ(open_block(d, "64:ff9b::c000:214", 8443), egress_block::own_listener);
  EXPECT_EQ(open_block(d, "64:ff9b::c000:214", 443), egress_block::none);
  // egress.allow of the IPv4 range opens the embedded address.
  const auto a = policy_with({"10.0.0.0/8", "127.0.0.0/8"});
  EXPECT_EQ(open_block(a, "64:ff9b::a00:1"), egress_block::none);
  EXPECT_EQ(open_block(a, "64:ff9b::7f00:1"), egress_block::none);
}

TEST_F(EgressCheck, PrivateRangesRefusedByDefault) {
  const auto p = plain_policy();
  for (const char* a :
       {"10.0.0.0", "10.0.0.1", "10.255.255.255", "172.16.0.0", "172.20.1.1", "172.31.255.255",
        "192.168.0.0", "192.168.255.255", "100.64.0.0", "100.100.100.100", "100.127.255.255",
        "::ffff:10.0.0.1", "::10.0.0.1", "fc00::", "fc00::1", "fd12:3456::1",
        "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fec0::1", "feff::1"}) {
    EXPECT_EQ(open_block(p, a), egress_block::private_range) << a;
  }
  for (const char* a :
       {"9.255.255.255", "11.0.0.0", "172.15.255.255", "172.32.0.0", "192.167.255.255",
        "192.169.0.0", "100.63.255.255", "100.128.0.0", "fbff:ffff::1", "fe00::1"}) {
    EXPECT_EQ(open_block(p, a), egress_block::none) << a;
  }
}

TEST_F(EgressCheck, AllowOpensSpecialAndPrivateRanges) {
  const auto p = policy_with({"127.0.0.0/8", "::1", "169.254.169.254", "10.0.0.0/8", "fd00::/8",
                              "224.0.0.251", "0.0.0.0/8", "255.255.255.255", "fe80::/10"});
  for (const char* a : {"127.0.0.1", "::ffff:127.0.0.1", "::127.0.0.1", "::1", "169.254.169.254",
                        "::ffff:169.254.169.254", "10.1.2.3", "fd00::1", "224.0.0.251", "0.0.0.0",
                        "255.255.255.255", "fe80::1"}) {
    EXPECT_EQ(open_block(p, a), egress_block::none) << a;
  }
  // Only what the entries list.
  EXPECT_EQ(open_block(p, "169.254.169.253"), egress_block::link_local);
  EXPECT_EQ(open_block(p, "224.0.0.1"), egress_block::multicast);
  EXPECT_EQ(open_block(p, "192.168.1.1"), egress_block::private_range);
  EXPECT_EQ(open_block(p, "fc00::1"), egress_block::private_range);
  EXPECT_EQ(open_block(p, "::"), egress_block::unspecified);
}

TEST_F(EgressCheck, AllowNeverOpensAnOwnListener) {
  const auto p = policy_with({"127.0.0.0/8", "192.0.2.0/24"}, {},
                             {ep("127.0.0.1", 8443), ep("192.0.2.20", 9443)});
  EXPECT_EQ(open_block(p, "127.0.0.1", 8443), egress_block::own_listener);
  EXPECT_EQ(open_block(p, "::ffff:127.0.0.1", 8443), egress_block::own_listener);
  EXPECT_EQ(open_block(p, "192.0.2.20", 9443), egress_block::own_listener);
  // Another port of the same address is not us.
  EXPECT_EQ(open_block(p, "127.0.0.1", 8080), egress_block::none);
  EXPECT_EQ(open_block(p, "192.0.2.20", 443), egress_block::none);
  // check_upstream too.
  EXPECT_EQ(p.check_upstream(ep("127.0.0.1", 8443)).block, egress_block::own_listener);
}

TEST_F(EgressCheck, OwnListenerOnlyOnItsPort) {
  // A public own endpoint makes the port, not the address, the difference.
  const auto p = policy_with({}, {}, {ep("192.0.2.20", 8443), ep("2001:db8::20", 8443)});
  EXPECT_EQ(open_block(p, "192.0.2.20", 8443), egress_block::own_listener);
  EXPECT_EQ(open_block(p, "::ffff:192.0.2.20", 8443), egress_block::own_listener);
  EXPECT_EQ(open_block(p, "2001:db8::20", 8443), egress_block::own_listener);
  EXPECT_EQ(open_block(p, "192.0.2.20", 8444), egress_block::none);
  EXPECT_EQ(open_block(p, "192.0.2.21", 8443), egress_block::none);
  EXPECT_EQ(open_block(p, "2001:db8::20", 443), egress_block::none);
  // An own endpoint written as a mapped address is the IPv4 one.
  const auto m = policy_with({}, {}, {ep("::ffff:192.0.2.30", 7443)});
  EXPECT_EQ(open_block(m, "192.0.2.30", 7443), egress_block::own_listener);
  EXPECT_EQ(m.options().own_endpoints.front().address(), ip("192.0.2.30"));
}

TEST_F(EgressCheck, UnspecifiedListenerStandsForEveryLocalAddress) {
  auto host = std::make_shared<const host_addresses>(std::vector{ip("192.0.2.55"), ip("fd00::55")});
  // Loopback allowed, so that the own-listener rule (not loopback) is what refuses.
  const auto p =
      policy_with({"127.0.0.0/8", "::1"}, {}, {ep("0.0.0.0", 9443), ep("::", 9444)}, host);
  EXPECT_EQ(open_block(p, "127.0.0.1", 9443), egress_block::own_listener);
  EXPECT_EQ(open_block(p, "127.0.0.2", 9443), egress_block::own_listener);
  EXPECT_EQ(open_block(p, "0.0.0.0", 9443), egress_block::own_listener);
  EXPECT_EQ(open_block(p, "192.0.2.55", 9443), egress_block::own_listener);
  EXPECT_EQ(open_block(p, "::ffff:192.0.2.55", 9443), egress_block::own_listener);
  EXPECT_EQ(open_block(p, "::1", 9444), egress_block::own_listener);
  EXPECT_EQ(open_block(p, "fd00::55", 9444), egress_block::own_listener);
  // Other ports: loopback is allowed here, the host address is refused as such.
  EXPECT_EQ(open_block(p, "127.0.0.1", 9445), egress_block::none);
  EXPECT_EQ(open_block(p, "192.0.2.55", 9445), egress_block::host_address);
  // A remote address on that port is not us.
  EXPECT_EQ(open_block(p, "192.0.2.10", 9443), egress_block::none);
  EXPECT_EQ(open_block(p, "2001:db8::10", 9444), egress_block::none);
  // The IPv4 wildcard does not stand for IPv6 addresses (the IPv6 listener is v6-only).
  EXPECT_EQ(open_block(p, "::1", 9443), egress_block::none);
  EXPECT_EQ(open_block(p, "127.0.0.1", 9444), egress_block::none);
}

TEST_F(EgressCheck, DenyRefusesEvenPublicAndAllowedAddresses) {
  const auto p =
      policy_with({"203.0.113.0/24", "10.0.0.0/8"}, {"8.8.8.0/24", "203.0.113.128/25", "fd00::/8"});
  EXPECT_EQ(open_block(p, "8.8.8.8"), egress_block::denied);
  EXPECT_EQ(open_block(p, "::ffff:8.8.8.8"), egress_block::denied);
  EXPECT_EQ(open_block(p, "8.8.4.4"), egress_block::none);
  EXPECT_EQ(open_block(p, "203.0.113.200"), egress_block::denied);  // allow lists it: deny wins
  EXPECT_EQ(open_block(p, "203.0.113.10"), egress_block::none);
  EXPECT_EQ(open_block(p, "fd00::1"), egress_block::denied);
  // Deny comes before the special ranges' own reasons (apart from own listeners).
  const auto q = policy_with({}, {"127.0.0.0/8"}, {ep("127.0.0.1", 8443)});
  EXPECT_EQ(open_block(q, "127.0.0.1"), egress_block::denied);
  EXPECT_EQ(open_block(q, "127.0.0.1", 8443), egress_block::own_listener);
  EXPECT_EQ(q.check_upstream(ep("127.0.0.1", 3128)).block, egress_block::denied);
}

// ---- the rules again, on the address ---------------------------------------------------------

TEST_F(EgressCheck, BlockRuleOnTheAddress) {
  const auto p = plain_policy();
  const auto v = ruled(p, "198.51.100.7");
  EXPECT_EQ(v.block, egress_block::rule_block);
  ASSERT_NE(v.set, nullptr);
  EXPECT_EQ(v.set->name, "device");
  EXPECT_EQ(v.rank, 1);
  EXPECT_EQ(v.line, 19);
  // The mapped form is decided as the IPv4 address.
  const auto m = ruled(p, "::ffff:198.51.100.7");
  EXPECT_EQ(m.block, egress_block::rule_block);
  EXPECT_EQ(m.address, ip("198.51.100.7"));
  EXPECT_EQ(m.line, 19);
  EXPECT_EQ(ruled(p, "::198.51.100.7").block, egress_block::rule_block);
  // Next door is fine.
  EXPECT_TRUE(ruled(p, "198.51.101.7").allowed());
  // egress.allow does not override a block rule.
  EXPECT_EQ(ruled(policy_with({"198.51.100.0/24"}), "198.51.100.7").block,
            egress_block::rule_block);
}

TEST_F(EgressCheck, BypassRuleOnTheAddress) {
  const auto p = plain_policy();
  const auto v = ruled(p, "203.0.113.9");
  EXPECT_EQ(v.block, egress_block::rule_bypass);
  ASSERT_NE(v.set, nullptr);
  EXPECT_EQ(v.set->name, "device");
  EXPECT_EQ(v.rank, 2);
  EXPECT_EQ(v.line, 21);
  EXPECT_EQ(ruled(p, "::ffff:203.0.113.9").block, egress_block::rule_bypass);
}

TEST_F(EgressCheck, PrivateAddressNamedByATunnelOrProxyRule) {
  const auto p = plain_policy();
  EXPECT_TRUE(ruled(p, "10.1.2.3").allowed());
  EXPECT_TRUE(ruled(p, "::ffff:10.1.2.3").allowed());
  EXPECT_EQ(ruled(p, "10.2.0.1").block, egress_block::private_range);
  EXPECT_EQ(ruled(p, "10.2.0.1").set, nullptr);
  // The proxy rule names 172.20.0.0/16 on port 8080 only.
  EXPECT_TRUE(ruled(p, "172.20.1.1", 8080).allowed());
  EXPECT_EQ(ruled(p, "172.20.1.1", 443).block, egress_block::private_range);
  // A rule never opens the special ranges (only egress.allow does).
  EXPECT_EQ(p.check(ep("127.0.0.1"), *rules_, dtr::platform::ios, "").block,
            egress_block::loopback);
  // egress.allow opens a private range no rule names.
  EXPECT_TRUE(ruled(policy_with({"10.2.0.0/16"}), "10.2.0.1").allowed());
}

TEST_F(EgressCheck, PerAppSetDecidesForItsApp) {
  const auto p = plain_policy();
  // The app's set blocks 10.9.0.0/16 and tunnels 10.5.0.0/16; the device set names neither.
  const auto blocked = ruled(p, "10.9.0.1", 443, "com.example.app");
  EXPECT_EQ(blocked.block, egress_block::rule_block);
  ASSERT_NE(blocked.set, nullptr);
  EXPECT_EQ(blocked.set->name, "app-set");
  EXPECT_EQ(blocked.rank, 1);
  EXPECT_EQ(blocked.line, 10);
  EXPECT_EQ(ruled(p, "10.9.0.1", 443, "org.other").block, egress_block::private_range);
  EXPECT_EQ(ruled(p, "10.9.0.1").block, egress_block::private_range);
  EXPECT_TRUE(ruled(p, "10.5.0.1", 443, "com.example.app").allowed());
  EXPECT_EQ(ruled(p, "10.5.0.1", 443, "org.other").block, egress_block::private_range);
  // The device set's rules do not apply to the app.
  EXPECT_TRUE(ruled(p, "198.51.100.7", 443, "com.example.app").allowed());
  EXPECT_EQ(ruled(p, "10.1.2.3", 443, "com.example.app").block, egress_block::private_range);
}

TEST_F(EgressCheck, NoRuleSetForThePlatformRefuses) {
  const auto p = plain_policy();
  const auto v = ruled(p, "192.0.2.10", 443, "", dtr::platform::windows);
  EXPECT_EQ(v.block, egress_block::rule_block);
  EXPECT_EQ(v.set, nullptr);
}

TEST_F(EgressCheck, TheVpnRangesAreNeverDestinations) {
  // A `tunnel 10.0.0.0/8` rule and even egress.allow cover the client pool: devices still
  // never reach each other, nor a mapped address as a real destination.
  egress_policy_options o;
  o.allow.push_back(must_parse("10.0.0.0/8"));
  o.never.push_back(must_parse("10.77.0.0/24"));
  o.never.push_back(must_parse("100.64.0.0/16"));
  const egress_policy p(std::move(o));
  EXPECT_EQ(open(p, "10.77.0.3").block, egress_block::vpn_range);
  EXPECT_EQ(open(p, "::ffff:10.77.0.3").block, egress_block::vpn_range);
  EXPECT_EQ(open(p, "100.64.0.9").block, egress_block::vpn_range);
  EXPECT_EQ(p.check_upstream(tcp::endpoint(net::ip::make_address("10.77.0.9"), 3128)).block,
            egress_block::vpn_range);
  EXPECT_TRUE(open(p, "10.78.0.1").allowed());
  EXPECT_EQ(to_string(egress_block::vpn_range), "vpn-range");
}

TEST_F(EgressCheck, PolicyRefusalsComeBeforeTheRules) {
  const auto p = policy_with({}, {"198.51.100.0/25"});
  EXPECT_EQ(ruled(p, "198.51.100.7").block, egress_block::denied);
  EXPECT_EQ(ruled(p, "198.51.100.7").set, nullptr);
  EXPECT_EQ(ruled(p, "198.51.100.200").block, egress_block::rule_block);
}

// Regression: a NAT64 address is decided by the rules as the IPv4 address it carries its flow
// to, so 64:ff9b::c633:6407 cannot reach 198.51.100.7 past `block 198.51.100.0/24`.
TEST_F(EgressCheck, Nat64AddressIsDecidedByTheRulesAsTheEmbeddedIpv4) {
  const auto p = plain_policy();
  EXPECT_EQ(ruled(p, "64:ff9b::c633:6407").block, egress_block::rule_block);   // 198.51.100.7
  EXPECT_EQ(ruled(p, "64:ff9b::cb00:7109").block, egress_block::rule_bypass);  // 203.0.113.9
}

// ---- check_upstream --------------------------------------------------------------------------

TEST(EgressUpstream, PrivateAllowedSpecialRefused) {
  const auto p = policy_with({}, {}, {ep("192.0.2.20", 8443)});
  EXPECT_TRUE(p.check_upstream(ep("10.0.0.1", 3128)).allowed());
  EXPECT_TRUE(p.check_upstream(ep("192.168.1.1", 3128)).allowed());
  EXPECT_TRUE(p.check_upstream(ep("fd00::1", 3128)).allowed());
  EXPECT_TRUE(p.check_upstream(ep("192.0.2.10", 3128)).allowed());
  EXPECT_EQ(p.check_upstream(ep("127.0.0.1", 3128)).block, egress_block::loopback);
  EXPECT_EQ(p.check_upstream(ep("::ffff:127.0.0.1", 3128)).block, egress_block::loopback);
  EXPECT_EQ(p.check_upstream(ep("::1", 3128)).block, egress_block::loopback);
  EXPECT_EQ(p.check_upstream(ep("169.254.169.254", 80)).block, egress_block::link_local);
  EXPECT_EQ(p.check_upstream(ep("192.0.2.20", 8443)).block, egress_block::own_listener);
  EXPECT_TRUE(p.check_upstream(ep("192.0.2.20", 3128)).allowed());
  EXPECT_EQ(p.check_upstream(ep("::ffff:10.0.0.1", 3128)).address, ip("10.0.0.1"));
  // Loopback upstreams need egress.allow.
  const auto a = policy_with({"127.0.0.1"}, {}, {ep("127.0.0.1", 8443)});
  EXPECT_TRUE(a.check_upstream(ep("127.0.0.1", 3128)).allowed());
  EXPECT_EQ(a.check_upstream(ep("127.0.0.2", 3128)).block, egress_block::loopback);
  EXPECT_EQ(a.check_upstream(ep("127.0.0.1", 8443)).block, egress_block::own_listener);
}

// ---- host_addresses --------------------------------------------------------------------------

TEST(HostAddresses, RefreshFindsLoopback) {
  auto host = std::make_shared<host_addresses>();
  EXPECT_FALSE(host->is_local(ip("127.0.0.1")));
  EXPECT_TRUE(host->refresh()) << "the first refresh fills an empty set";
  EXPECT_TRUE(host->is_local(ip("127.0.0.1")));
  EXPECT_FALSE(host->is_local(ip("192.0.2.222")));  // TEST-NET-1, .222: not ours
  const auto all = host->addresses();
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  EXPECT_EQ(std::set<net::ip::address>(all.begin(), all.end()).size(), all.size())
      << "no duplicates";
  // Every address of this host is refused by a policy that knows them, whatever the range.
  const auto p = policy_with({}, {}, {}, host);
  const auto open = load(default_tunnel_yaml);
  for (const auto& a : all) {
    const auto v = p.check({a, 443}, *open, dtr::platform::ios, "");
    EXPECT_FALSE(v.allowed()) << a.to_string();
  }
}

TEST(HostAddresses, ExplicitListsAreSortedForLookup) {
  // Given unsorted: lookups still work.
  const host_addresses h({ip("192.0.2.9"), ip("10.0.0.1"), ip("2001:db8::1"), ip("192.0.2.1")},
                         {ip("192.0.2.255"), ip("10.255.255.255")});
  for (const char* a : {"192.0.2.9", "10.0.0.1", "2001:db8::1", "192.0.2.1"})
    EXPECT_TRUE(h.is_local(ip(a))) << a;
  EXPECT_FALSE(h.is_local(ip("192.0.2.2")));
  EXPECT_TRUE(h.is_broadcast(ip("10.255.255.255")));
  EXPECT_TRUE(h.is_broadcast(ip("192.0.2.255")));
  EXPECT_FALSE(h.is_broadcast(ip("192.0.2.9")));
}

TEST(EgressBlock, NamesAreUniqueAndNonEmpty) {
  std::set<std::string_view> names;
  for (auto b = static_cast<unsigned>(egress_block::none);
       b <= static_cast<unsigned>(egress_block::private_range); ++b) {
    const auto name = to_string(static_cast<egress_block>(b));
    EXPECT_FALSE(name.empty()) << b;
    EXPECT_TRUE(names.insert(name).second) << name;
  }
  EXPECT_EQ(to_string(egress_block::none), "allowed");
  EXPECT_EQ(to_string(egress_block::private_range), "private-range");
}

}  // namespace
}  // namespace tunnelgate::gateway
