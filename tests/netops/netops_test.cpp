// gateway/netops against the real kernel, as root, inside network namespaces each test creates
// (tests/netops/netns.hpp); skipped with a message without root, /dev/net/tun or nf_tables.
// The first tests are pure (the ruleset text and the sysctl restore record) and always run.
#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "gateway/netops/detail.hpp"
#include "gateway/netops/netops.hpp"
#include "netops/netns.hpp"

namespace {

using namespace tunnelgate::netops;
using namespace tunnelgate::testing::netns;
using nlohmann::json;
using namespace std::chrono_literals;

ip::address_v4 v4(const char* s) {
  return ip::make_address_v4(s);
}
ip::address_v6 v6(const char* s) {
  return ip::make_address_v6(s);
}

// The addresses of every test: the TUN, the client pools and the mapped pool; the egress
// interface gw0 (192.0.2.1, 2001:db8:1::1) on a veth to the peer namespace (192.0.2.2,
// 2001:db8:1::2), which also holds the "real" destinations 198.51.100.7 and 2001:db8:99::7.
tun_spec test_tun() {
  tun_spec t;
  t.mtu = 1400;
  t.address4 = ip::make_network_v4("10.10.0.1/24");
  t.address6 = ip::make_network_v6("fd00:10::1/64");
  t.routes4 = {ip::make_network_v4("10.10.0.0/24"), ip::make_network_v4("10.20.0.0/16")};
  t.routes6 = {ip::make_network_v6("fd00:20::/64")};
  return t;
}

nat_spec test_nat() {
  nat_spec n;
  n.pool4 = ip::make_network_v4("10.10.0.0/24");
  n.pool6 = ip::make_network_v6("fd00:10::/64");
  n.mapped_pool4 = ip::make_network_v4("100.64.0.0/16");
  n.egress4 = v4("192.0.2.1");
  n.egress6 = v6("2001:db8:1::1");
  // Inside a test namespace the global switch harms nothing; on kernels with
  // force_forwarding it is not used anyway (see ipv6_forwarding_mode_follows_the_kernel).
  n.allow_global_ipv6_forwarding = true;
  return n;
}

bool kernel_has_force_forwarding() {
  return ::access("/proc/sys/net/ipv6/conf/all/force_forwarding", F_OK) == 0;
}

// ---- pure -----------------------------------------------------------------------------------

TEST(ruleset, lists_every_rule) {
  detail::ruleset_params p;
  p.guard4 = {"eth0"};
  p.guard6 = {"eth0"};
  p.comment = "tunnelgate restore: 4/eth0/f=0 6/eth0/F=0";
  auto s = test_nat();
  s.pool4 = ip::make_network_v4("10.10.0.1/24");  // host bits are dropped
  const auto r = detail::ruleset(s, p);
  for (const char* line : {
           "table inet tunnelgate\ndelete table inet tunnelgate\ntable inet tunnelgate {\n",
           "comment \"tunnelgate restore: 4/eth0/f=0 6/eth0/F=0\"",
           "type ipv4_addr : ipv4_addr",
           "type nat hook prerouting priority dstnat; policy accept;",
           "iifname \"tunnelgate0\" ip daddr 100.64.0.0/16 dnat ip to ip daddr map @mapped4",
           "type nat hook postrouting priority srcnat; policy accept;",
           "oifname != \"tunnelgate0\" ip saddr 10.10.0.0/24 snat ip to 192.0.2.1",
           "oifname != \"tunnelgate0\" ip6 saddr fd00:10::/64 snat ip6 to 2001:db8:1::1",
           "type filter hook forward priority filter; policy accept;",
           "iifname \"tunnelgate0\" oifname \"tunnelgate0\" counter drop comment "
           "\"device-to-device\"",
           "iifname \"tunnelgate0\" ip daddr 100.64.0.0/16 counter drop comment \"unmapped\"",
           "iifname \"tunnelgate0\" ip saddr 10.10.0.0/24 accept",
           "iifname \"tunnelgate0\" ip6 saddr fd00:10::/64 accept",
           "iifname \"tunnelgate0\" counter drop comment \"spoofed\"",
           "oifname \"tunnelgate0\" ct state established,related accept",
           "oifname \"tunnelgate0\" counter drop comment \"unsolicited\"",
           "iifname \"eth0\" meta nfproto ipv4 counter drop comment \"not-ours\"",
           "iifname \"eth0\" meta nfproto ipv6 counter drop comment \"not-ours\"",
       })
    EXPECT_NE(r.find(line), std::string::npos) << "missing: " << line << "\nin:\n" << r;
  EXPECT_EQ(r.find("masquerade"), std::string::npos);
}

TEST(ruleset, without_ipv6_has_no_ipv6_rules_and_refuses_odd_names) {
  auto s = test_nat();
  s.pool6.reset();
  s.egress6.reset();
  const auto r = detail::ruleset(s, {});
  EXPECT_EQ(r.find("ip6"), std::string::npos) << r;
  EXPECT_EQ(r.find("not-ours"), std::string::npos) << r;
  s.tun_name = "tun\" accept";
  EXPECT_THROW(detail::ruleset(s, {}), std::invalid_argument);
  detail::ruleset_params p;
  p.comment = std::string(200, 'x');
  EXPECT_THROW(detail::ruleset(test_nat(), p), std::runtime_error);
}

TEST(ruleset, map_scripts) {
  EXPECT_EQ(detail::map_add_script(v4("100.64.0.9"), v4("198.51.100.7")),
            "add element inet tunnelgate mapped4 { 100.64.0.9 : 198.51.100.7 }\n");
  EXPECT_EQ(detail::map_remove_script(v4("100.64.0.9")),
            "delete element inet tunnelgate mapped4 { 100.64.0.9 }\n");
  EXPECT_EQ(detail::map_replace_script(v4("100.64.0.9"), v4("198.51.100.7"), v4("198.51.100.8")),
            "delete element inet tunnelgate mapped4 { 100.64.0.9 : 198.51.100.7 }\n"
            "add element inet tunnelgate mapped4 { 100.64.0.9 : 198.51.100.8 }\n");
}

TEST(restore_record, round_trips_and_ignores_junk) {
  const std::vector<sysctl_change> changes = {
      {"/proc/sys/net/ipv4/conf/eth0/forwarding", "0", "1"},
      {"/proc/sys/net/ipv6/conf/eth0/force_forwarding", "0", "1"},
      {"/proc/sys/net/ipv6/conf/default/forwarding", "0", "1"},
      {"/proc/sys/net/ipv6/conf/all/forwarding", "0", "1"},
  };
  const auto text = detail::encode_restore(changes);
  EXPECT_EQ(text, "tunnelgate restore: 4/eth0/f=0 6/eth0/F=0 6/default/f=0 6/all/f=0");
  const auto back = detail::decode_restore(text);
  ASSERT_EQ(back.size(), changes.size());
  for (std::size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].path, changes[i].path);
    EXPECT_EQ(back[i].previous, changes[i].previous);
  }
  // As nft lists it: the record ends at the closing quote.
  const auto listed = detail::decode_restore(
      "table inet tunnelgate {\n\tcomment \"tunnelgate restore: 4/eth0/f=0\"\n}\n");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].path, "/proc/sys/net/ipv4/conf/eth0/forwarding");
  // Someone else's comment, paths outside conf/<if>/forwarding, odd values: all ignored.
  EXPECT_TRUE(detail::decode_restore("hello").empty());
  EXPECT_TRUE(detail::decode_restore("tunnelgate restore: 4/../../f=0 4/eth0/x=1 4/eth0/f=9 "
                                     "5/eth0/f=0 4/eth0/f=01 4/a\"b/f=0")
                  .empty());
}

TEST(ifnames, valid_ifname) {
  EXPECT_TRUE(detail::valid_ifname("tunnelgate0"));
  EXPECT_TRUE(detail::valid_ifname("eth0.100"));
  EXPECT_TRUE(detail::valid_ifname("a-b_c"));
  EXPECT_FALSE(detail::valid_ifname(""));
  EXPECT_FALSE(detail::valid_ifname("sixteen-chars-xx"));
  EXPECT_FALSE(detail::valid_ifname(".."));
  EXPECT_FALSE(detail::valid_ifname("a/b"));
  EXPECT_FALSE(detail::valid_ifname("a\"b"));
  EXPECT_FALSE(detail::valid_ifname("a b"));
}

// ---- in a namespace -------------------------------------------------------------------------

class in_netns : public netns_test {
 protected:
  /// gw0 <-> dst0 in the peer namespace, addresses and routes as in test_nat().
  void make_uplink() {
    ASSERT_EQ(sh("ip link add name gw0 type veth peer name dst0 netns " + peer_path()).status, 0);
    auto r =
        sh("ip addr add 192.0.2.1/24 dev gw0 && ip addr add 2001:db8:1::1/64 dev gw0 nodad"
           " && ip link set gw0 up && ip route add default via 192.0.2.2"
           " && ip -6 route add default via 2001:db8:1::2");
    ASSERT_EQ(r.status, 0) << r.out;
    r = in_peer([] {
      return sh(
          "ip addr add 192.0.2.2/24 dev dst0 && ip addr add 2001:db8:1::2/64 dev dst0 nodad"
          " && ip link set dst0 up && ip addr add 198.51.100.7/32 dev lo"
          " && ip addr add 2001:db8:99::7/128 dev lo nodad");
    });
    ASSERT_EQ(r.status, 0) << r.out;
  }

  static bool link_exists(const std::string& name) {
    return sh("ip link show dev " + name).status == 0;
  }
  static bool table_exists() { return sh("nft list table inet tunnelgate").status == 0; }

  /// The map's elements, mapped -> real.
  static std::map<std::string, std::string> map_elements() {
    std::map<std::string, std::string> out;
    const auto j = sh_json("nft -j list map inet tunnelgate mapped4");
    for (const auto& o : j["nftables"])
      if (o.contains("map") && o["map"].contains("elem"))
        for (const auto& e : o["map"]["elem"])
          out[e[0].get<std::string>()] = e[1].get<std::string>();
    return out;
  }

  /// Packets counted by the forward-chain rule with this comment.
  static std::uint64_t drop_counter(const std::string& comment) {
    std::uint64_t n = 0;
    const auto j = sh_json("nft -j list chain inet tunnelgate forward");
    for (const auto& o : j["nftables"]) {
      if (!o.contains("rule") || o["rule"].value("comment", "") != comment) continue;
      for (const auto& e : o["rule"]["expr"])
        if (e.contains("counter")) n += e["counter"]["packets"].get<std::uint64_t>();
    }
    return n;
  }
};

TEST_F(in_netns, create_tun_configures_the_device) {
  auto n = make_system_netops();
  auto fd = n->create_tun(test_tun());
  ASSERT_TRUE(fd);
  EXPECT_EQ(fd.name(), "tunnelgate0");

  const auto link = sh_json("ip -j -d link show dev tunnelgate0").at(0);
  EXPECT_EQ(link["ifindex"].get<int>(), fd.ifindex());
  EXPECT_EQ(link["mtu"].get<int>(), 1400);
  const auto flags = link["flags"].get<std::vector<std::string>>();
  EXPECT_NE(std::find(flags.begin(), flags.end(), "UP"), flags.end());
  EXPECT_EQ(link["operstate"], "UNKNOWN");  // a TUN with a reader attached: carrier on
  EXPECT_EQ(link["linkinfo"]["info_kind"], "tun");
  EXPECT_EQ(link["linkinfo"]["info_data"]["type"], "tun");
  EXPECT_EQ(link["linkinfo"]["info_data"]["pi"], false);

  std::set<std::string> addrs;
  // Named locals: a range-for over a member of a temporary would dangle (before C++23).
  const auto addr_json = sh_json("ip -j addr show dev tunnelgate0");
  for (const auto& a : addr_json.at(0)["addr_info"])
    addrs.insert(a["local"].get<std::string>() + "/" + std::to_string(a["prefixlen"].get<int>()));
  EXPECT_TRUE(addrs.count("10.10.0.1/24"));
  EXPECT_TRUE(addrs.count("fd00:10::1/64"));

  std::set<std::string> routes;
  for (const auto& r : sh_json("ip -j route show dev tunnelgate0"))
    routes.insert(r["dst"].get<std::string>());
  for (const auto& r : sh_json("ip -j -6 route show dev tunnelgate0"))
    routes.insert(r["dst"].get<std::string>());
  EXPECT_TRUE(routes.count("10.10.0.0/24"));  // the kernel's, from the address
  EXPECT_TRUE(routes.count("10.20.0.0/16"));
  EXPECT_TRUE(routes.count("fd00:10::/64"));
  EXPECT_TRUE(routes.count("fd00:20::/64"));

  EXPECT_THROW(n->create_tun(test_tun()), std::logic_error);
}

TEST_F(in_netns, closing_the_tun_fd_removes_the_device) {
  auto n = make_system_netops();
  {
    auto fd = n->create_tun(test_tun());
    EXPECT_TRUE(link_exists("tunnelgate0"));
  }
  EXPECT_FALSE(link_exists("tunnelgate0"));  // not persistent: gone with its last descriptor
  EXPECT_TRUE(n->teardown().empty());
}

TEST_F(in_netns, bad_tun_specs_are_refused) {
  auto n = make_system_netops();
  auto t = test_tun();
  t.name = "eth0; rm";
  EXPECT_THROW(n->create_tun(t), std::invalid_argument);
  t = test_tun();
  t.mtu = 1200;  // with IPv6
  EXPECT_THROW(n->create_tun(t), std::invalid_argument);
  t = test_tun();
  t.routes4 = {ip::make_network_v4("10.30.0.0/16"), ip::make_network_v4("10.30.0.0/16")};
  try {
    (void)n->create_tun(t);
    ADD_FAILURE() << "a duplicate route was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("10.30.0.0/16"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(link_exists("tunnelgate0"));  // a failed create_tun leaves nothing
  EXPECT_NO_THROW(n->create_tun(test_tun()));
}

TEST_F(in_netns, stale_tun_from_a_crashed_run_is_replaced) {
  ASSERT_EQ(sh("ip tuntap add dev tunnelgate0 mode tun && ip addr add 192.168.77.1/24 dev "
               "tunnelgate0")
                .status,
            0);
  const int stale = sh_json("ip -j link show dev tunnelgate0").at(0)["ifindex"].get<int>();
  auto n = make_system_netops();
  auto fd = n->create_tun(test_tun());
  EXPECT_NE(fd.ifindex(), stale);
  const auto out = sh("ip addr show dev tunnelgate0").out;
  EXPECT_EQ(out.find("192.168.77.1"), std::string::npos) << out;
  EXPECT_NE(out.find("10.10.0.1/24"), std::string::npos) << out;
}

TEST_F(in_netns, an_interface_that_is_not_a_tun_is_left_alone) {
  ASSERT_EQ(sh("ip link add name tunnelgate0 type veth peer name tg-peer").status, 0);
  auto n = make_system_netops();
  try {
    n->cleanup_stale("tunnelgate0");
    ADD_FAILURE() << "cleanup_stale removed or accepted a veth interface";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not a TUN"), std::string::npos) << e.what();
  }
  EXPECT_THROW(n->create_tun(test_tun()), std::runtime_error);
  EXPECT_TRUE(link_exists("tunnelgate0"));
}

TEST_F(in_netns, install_nat_creates_the_table_and_forwarding) {
  make_uplink();
  auto n = make_system_netops();
  auto fd = n->create_tun(test_tun());
  n->install_nat(test_nat());

  std::map<std::string, json> chains;
  std::map<std::string, int> rules;
  bool map_ok = false;
  const auto table = sh_json("nft -j list table inet tunnelgate");
  for (const auto& o : table["nftables"]) {
    if (o.contains("chain")) chains[o["chain"]["name"].get<std::string>()] = o["chain"];
    if (o.contains("rule")) ++rules[o["rule"]["chain"].get<std::string>()];
    if (o.contains("map") && o["map"]["name"] == "mapped4")
      map_ok = o["map"]["type"] == "ipv4_addr" && o["map"]["map"] == "ipv4_addr";
  }
  EXPECT_TRUE(map_ok);
  ASSERT_EQ(chains.size(), 3u);
  EXPECT_EQ(chains["prerouting"]["type"], "nat");
  EXPECT_EQ(chains["prerouting"]["hook"], "prerouting");
  EXPECT_EQ(chains["prerouting"]["prio"], -100);
  EXPECT_EQ(chains["postrouting"]["type"], "nat");
  EXPECT_EQ(chains["postrouting"]["hook"], "postrouting");
  EXPECT_EQ(chains["postrouting"]["prio"], 100);
  EXPECT_EQ(chains["forward"]["type"], "filter");
  EXPECT_EQ(chains["forward"]["hook"], "forward");
  EXPECT_EQ(chains["forward"]["prio"], 0);
  for (const auto& c : {"prerouting", "postrouting", "forward"})
    EXPECT_EQ(chains[c]["policy"], "accept") << c;
  EXPECT_EQ(rules["prerouting"], 1);
  EXPECT_EQ(rules["postrouting"], 2);
  // F0-F6 and F7 for gw0 (IPv4; IPv6 too, per interface or global).
  EXPECT_EQ(rules["forward"], 9);

  const auto text = sh("nft list table inet tunnelgate").out;
  EXPECT_NE(text.find("dnat ip to ip daddr map @mapped4"), std::string::npos) << text;
  EXPECT_NE(text.find("snat ip to 192.0.2.1"), std::string::npos) << text;
  EXPECT_NE(text.find("snat ip6 to 2001:db8:1::1"), std::string::npos) << text;
  EXPECT_NE(text.find("comment \"tunnelgate restore: 4/gw0/f=0"), std::string::npos) << text;

  // IPv4: exactly the TUN and the egress interface, never the global switches.
  EXPECT_EQ(read_file(sysctl_path(4, "tunnelgate0", "forwarding")), "1");
  EXPECT_EQ(read_file(sysctl_path(4, "gw0", "forwarding")), "1");
  EXPECT_EQ(read_file(sysctl_path(4, "all", "forwarding")), "0");
  EXPECT_EQ(read_file("/proc/sys/net/ipv4/ip_forward"), "0");
  EXPECT_EQ(read_file(sysctl_path(4, "lo", "forwarding")), "0");
  std::vector<std::string> paths;
  for (const auto& c : n->sysctl_changes())
    paths.push_back(c.path);
  EXPECT_EQ(paths.at(0), sysctl_path(4, "tunnelgate0", "forwarding"));
  EXPECT_EQ(paths.at(1), sysctl_path(4, "gw0", "forwarding"));

  EXPECT_THROW(n->install_nat(test_nat()), std::logic_error);
}

TEST_F(in_netns, ipv6_forwarding_mode_follows_the_kernel) {
  make_uplink();
  auto n = make_system_netops();
  auto fd = n->create_tun(test_tun());
  auto s = test_nat();
  if (kernel_has_force_forwarding()) {
    s.allow_global_ipv6_forwarding = false;
    n->install_nat(s);
    EXPECT_EQ(read_file(sysctl_path(6, "tunnelgate0", "force_forwarding")), "1");
    EXPECT_EQ(read_file(sysctl_path(6, "gw0", "force_forwarding")), "1");
    EXPECT_EQ(read_file(sysctl_path(6, "all", "forwarding")), "0");
    EXPECT_EQ(read_file(sysctl_path(6, "gw0", "forwarding")), "0");  // gw0 still takes RAs
  } else {
    s.allow_global_ipv6_forwarding = false;
    try {
      n->install_nat(s);
      ADD_FAILURE() << "global IPv6 forwarding without permission";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("force_forwarding"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(table_exists());
    s.allow_global_ipv6_forwarding = true;
    n->install_nat(s);
    EXPECT_EQ(read_file(sysctl_path(6, "all", "forwarding")), "1");
  }
  EXPECT_TRUE(n->teardown().empty());
  EXPECT_EQ(read_file(sysctl_path(6, "all", "forwarding")), "0");
  EXPECT_EQ(read_file(sysctl_path(6, "default", "forwarding")), "0");
  EXPECT_EQ(read_file(sysctl_path(6, "gw0", "forwarding")), "0");
  if (kernel_has_force_forwarding()) {
    EXPECT_EQ(read_file(sysctl_path(6, "gw0", "force_forwarding")), "0");
  }
}

TEST_F(in_netns, forwarding_already_on_is_kept_and_not_guarded) {
  make_uplink();
  write_file(sysctl_path(4, "gw0", "forwarding"), "1");
  auto n = make_system_netops();
  auto fd = n->create_tun(test_tun());
  auto s = test_nat();
  s.pool6.reset();
  n->install_nat(s);
  const auto text = sh("nft list chain inet tunnelgate forward").out;
  EXPECT_EQ(text.find("not-ours"), std::string::npos) << text;  // the host routed before us
  ASSERT_EQ(n->sysctl_changes().size(), 1u);                    // only the TUN
  EXPECT_TRUE(n->teardown().empty());
  EXPECT_EQ(read_file(sysctl_path(4, "gw0", "forwarding")), "1");
}

TEST_F(in_netns, install_nat_errors_leave_nothing) {
  make_uplink();
  auto n = make_system_netops();
  auto s = test_nat();
  try {
    n->install_nat(s);
    ADD_FAILURE() << "install_nat without a TUN";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("create_tun must come before"), std::string::npos)
        << e.what();
  }
  auto fd = n->create_tun(test_tun());
  s.egress4 = v4("203.0.113.77");
  try {
    n->install_nat(s);
    ADD_FAILURE() << "an egress address the host does not have";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("203.0.113.77 is not assigned to any interface"),
              std::string::npos)
        << e.what();
  }
  ASSERT_EQ(sh("ip addr add 192.0.2.50/32 dev lo").status, 0);
  s = test_nat();
  s.egress4 = v4("192.0.2.50");
  try {
    n->install_nat(s);
    ADD_FAILURE() << "an egress address on lo without the uplink named";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("egress_interface4"), std::string::npos) << e.what();
  }
  s.egress_interface4 = "nosuch0";
  EXPECT_THROW(n->install_nat(s), std::runtime_error);
  s = test_nat();
  s.egress6.reset();
  EXPECT_THROW(n->install_nat(s), std::invalid_argument);
  EXPECT_FALSE(table_exists());
  EXPECT_EQ(read_file(sysctl_path(4, "gw0", "forwarding")), "0");
  EXPECT_THROW(n->map_add(v4("100.64.0.1"), v4("198.51.100.7")), std::logic_error);
  EXPECT_FALSE(n->map_remove(v4("100.64.0.1")));
}

TEST_F(in_netns, stale_table_from_a_crashed_run_is_replaced) {
  make_uplink();
  // What a run killed after install_nat leaves: its table (with the restore record) and
  // forwarding on for gw0.
  const auto r =
      sh("nft 'table inet tunnelgate { comment \"tunnelgate restore: 4/gw0/f=0\"; "
         "set stale { type ipv4_addr; elements = { 192.0.2.99 }; }; "
         "chain junk { type filter hook input priority 0; policy accept; }; }'");
  ASSERT_EQ(r.status, 0) << r.out;
  write_file(sysctl_path(4, "gw0", "forwarding"), "1");

  auto n = make_system_netops();
  auto fd = n->create_tun(test_tun());
  n->install_nat(test_nat());
  const auto text = sh("nft list table inet tunnelgate").out;
  EXPECT_EQ(text.find("junk"), std::string::npos) << text;
  EXPECT_EQ(text.find("stale"), std::string::npos) << text;
  EXPECT_NE(text.find("chain forward"), std::string::npos) << text;
  // The dead run's "previous" value (0), not the 1 it left behind, is what we restore to.
  EXPECT_NE(text.find("4/gw0/f=0"), std::string::npos) << text;
  EXPECT_TRUE(n->teardown().empty());
  EXPECT_EQ(read_file(sysctl_path(4, "gw0", "forwarding")), "0");
}

TEST_F(in_netns, cleanup_stale_removes_leftovers) {
  make_uplink();
  ASSERT_EQ(sh("ip tuntap add dev tunnelgate0 mode tun").status, 0);
  ASSERT_EQ(sh("nft 'table inet tunnelgate { comment \"tunnelgate restore: 4/gw0/f=0\"; }'").status,
            0);
  write_file(sysctl_path(4, "gw0", "forwarding"), "1");
  auto n = make_system_netops();
  n->cleanup_stale("tunnelgate0");
  EXPECT_FALSE(link_exists("tunnelgate0"));
  EXPECT_FALSE(table_exists());
  EXPECT_EQ(read_file(sysctl_path(4, "gw0", "forwarding")), "0");
  EXPECT_NO_THROW(n->cleanup_stale("tunnelgate0"));  // nothing left: nothing to do
  EXPECT_TRUE(n->teardown().empty());
}

TEST_F(in_netns, map_add_and_map_remove_change_the_map) {
  make_uplink();
  auto n = make_system_netops();
  auto fd = n->create_tun(test_tun());
  n->install_nat(test_nat());
  EXPECT_TRUE(map_elements().empty());

  n->map_add(v4("100.64.0.9"), v4("198.51.100.7"));
  n->map_add(v4("100.64.0.10"), v4("198.51.100.8"));
  n->map_add(v4("100.64.0.10"), v4("198.51.100.8"));  // same pair: nothing to do
  EXPECT_EQ(map_elements(), (std::map<std::string, std::string>{{"100.64.0.9", "198.51.100.7"},
                                                                {"100.64.0.10", "198.51.100.8"}}));

  n->map_add(v4("100.64.0.9"), v4("198.51.100.9"));  // replaced in one transaction
  EXPECT_EQ(map_elements().at("100.64.0.9"), "198.51.100.9");

  EXPECT_TRUE(n->map_remove(v4("100.64.0.10")));
  EXPECT_FALSE(n->map_remove(v4("100.64.0.10")));
  EXPECT_EQ(map_elements(), (std::map<std::string, std::string>{{"100.64.0.9", "198.51.100.9"}}));

  EXPECT_THROW(n->map_add(v4("10.1.2.3"), v4("198.51.100.7")), std::invalid_argument);
}

TEST_F(in_netns, map_update_cost) {
  make_uplink();
  auto n = make_system_netops();
  auto fd = n->create_tun(test_tun());
  n->install_nat(test_nat());
  using clock = std::chrono::steady_clock;
  auto us_per = [](clock::duration d, int count) {
    return std::chrono::duration<double, std::micro>(d).count() / count;
  };
  auto addr = [](int i) { return ip::address_v4(0x64400000u + static_cast<std::uint32_t>(i)); };
  const auto real = v4("198.51.100.7");

  constexpr int batch = 1000;
  auto t0 = clock::now();
  for (int i = 0; i < batch; ++i)
    n->map_add(addr(i), real);
  const double add_empty = us_per(clock::now() - t0, batch);
  t0 = clock::now();
  for (int i = 0; i < batch; ++i)
    n->map_remove(addr(i));
  const double remove_empty = us_per(clock::now() - t0, batch);

  for (int i = 0; i < 20000; ++i)
    n->map_add(addr(i), real);
  t0 = clock::now();
  for (int i = 20000; i < 20000 + batch; ++i)
    n->map_add(addr(i), real);
  const double add_full = us_per(clock::now() - t0, batch);
  t0 = clock::now();
  for (int i = 20000; i < 20000 + batch; ++i)
    n->map_remove(addr(i));
  const double remove_full = us_per(clock::now() - t0, batch);
  t0 = clock::now();
  for (int i = 0; i < batch; ++i)
    n->map_add(addr(i), v4("198.51.100.8"));
  const double replace_full = us_per(clock::now() - t0, batch);

  std::printf(
      "map update cost, microseconds per call (mean of %d):\n"
      "  map_add    %8.1f (map nearly empty)  %8.1f (20000 entries)\n"
      "  map_remove %8.1f (map nearly empty)  %8.1f (20000 entries)\n"
      "  replace    %8.1f (20000 entries)\n",
      batch, add_empty, add_full, remove_empty, remove_full, replace_full);
  RecordProperty("map_add_us", std::to_string(add_full));
  RecordProperty("map_remove_us", std::to_string(remove_full));
  EXPECT_EQ(map_elements().size(), 20000u);
  EXPECT_LT(add_full, 20000.0);  // a sanity bound only; the numbers above are the result
  EXPECT_LT(remove_full, 20000.0);
}

TEST_F(in_netns, teardown_leaves_nothing_and_is_idempotent) {
  make_uplink();
  const auto before = sh("ip -d route show table all; ip -6 route show table all").out;
  {
    auto n = make_system_netops();
    auto fd = n->create_tun(test_tun());
    n->install_nat(test_nat());
    n->map_add(v4("100.64.0.9"), v4("198.51.100.7"));
    const auto problems = n->teardown();
    EXPECT_TRUE(problems.empty()) << problems.at(0);
    EXPECT_FALSE(link_exists("tunnelgate0"));  // deleted even though fd is still open
    EXPECT_FALSE(table_exists());
    EXPECT_TRUE(n->teardown().empty());
    EXPECT_TRUE(n->sysctl_changes().empty());
    EXPECT_FALSE(n->map_remove(v4("100.64.0.9")));
  }
  EXPECT_EQ(read_file(sysctl_path(4, "gw0", "forwarding")), "0");
  for (const char* s : {"all", "default", "gw0"}) {
    EXPECT_EQ(read_file(sysctl_path(6, s, "forwarding")), "0") << s;
    if (kernel_has_force_forwarding()) {
      EXPECT_EQ(read_file(sysctl_path(6, s, "force_forwarding")), "0") << s;
    }
  }
  EXPECT_EQ(sh("ip -d route show table all; ip -6 route show table all").out, before);
  EXPECT_EQ(sh("nft list ruleset").out, "");
}

TEST_F(in_netns, the_destructor_tears_down) {
  make_uplink();
  {
    auto n = make_system_netops();
    auto fd = n->create_tun(test_tun());
    n->install_nat(test_nat());
    fd.release();  // as if Asio owned it: the descriptor stays open, teardown still removes
  }
  EXPECT_FALSE(link_exists("tunnelgate0"));
  EXPECT_FALSE(table_exists());
  EXPECT_EQ(read_file(sysctl_path(4, "gw0", "forwarding")), "0");
}

// ---- packets --------------------------------------------------------------------------------

class packets : public in_netns {
 protected:
  void SetUp() override {
    in_netns::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    make_uplink();
    if (HasFatalFailure()) return;
    before_install();
    if (HasFatalFailure()) return;
    ops_ = make_system_netops();
    tun_ = ops_->create_tun(test_tun());
    ops_->install_nat(nat());
    peer4_.fd = in_peer([] { return udp_listen(ip::make_address("198.51.100.7"), 5353); });
    peer6_.fd = in_peer([] { return udp_listen(ip::make_address("2001:db8:99::7"), 5353); });
  }
  void TearDown() override {
    ::close(std::exchange(peer4_.fd, -1));
    ::close(std::exchange(peer6_.fd, -1));
    tun_ = tun_fd();
    ops_.reset();
    in_netns::TearDown();
  }

  virtual void before_install() {}
  virtual nat_spec nat() { return test_nat(); }

  void send_from_client(const udp_packet& u) {
    const auto b = build_udp(u);
    ASSERT_EQ(::write(tun_.get(), b.data(), b.size()), static_cast<ssize_t>(b.size()));
  }

  /// One request from a device through the TUN and, if it arrives, the reply back; returns
  /// what the destination saw and what came out of the TUN.
  std::pair<std::optional<datagram>, std::optional<udp_packet>> round_trip(
      const ip::address& client, const ip::address& dst, std::uint16_t sport, int peer_fd) {
    send_from_client({client, dst, sport, 5353, "ping"});
    auto got = udp_receive(peer_fd, 2s);
    if (!got) return {got, std::nullopt};
    udp_send(peer_fd, got->from, got->from_port, "pong");
    return {got, read_udp_from_tun(tun_.get(), sport, 2s)};
  }

  std::unique_ptr<netops> ops_;
  tun_fd tun_;
  fd_guard peer4_;
  fd_guard peer6_;
};

TEST_F(packets, ipv4_dnat_snat_forwarding_and_the_reply) {
  ops_->map_add(v4("100.64.0.9"), v4("198.51.100.7"));
  const auto [req, reply] =
      round_trip(ip::make_address("10.10.0.2"), ip::make_address("100.64.0.9"), 40000, peer4_.fd);
  ASSERT_TRUE(req) << "the packet written to the TUN did not reach the destination";
  EXPECT_EQ(req->from, ip::make_address("192.0.2.1"));   // SNAT to the egress address
  EXPECT_EQ(req->to, ip::make_address("198.51.100.7"));  // DNAT through @mapped4
  EXPECT_EQ(req->payload, "ping");
  ASSERT_TRUE(reply) << "the reply did not come out of the TUN";
  EXPECT_EQ(reply->src, ip::make_address("100.64.0.9"));  // the device sees its mapped address
  EXPECT_EQ(reply->dst, ip::make_address("10.10.0.2"));
  EXPECT_EQ(reply->sport, 5353);
  EXPECT_EQ(reply->payload, "pong");
}

TEST_F(packets, ipv6_snat_forwarding_and_the_reply) {
  const auto [req, reply] = round_trip(ip::make_address("fd00:10::2"),
                                       ip::make_address("2001:db8:99::7"), 40001, peer6_.fd);
  ASSERT_TRUE(req) << "the IPv6 packet written to the TUN did not reach the destination";
  EXPECT_EQ(req->from, ip::make_address("2001:db8:1::1"));
  EXPECT_EQ(req->to, ip::make_address("2001:db8:99::7"));
  ASSERT_TRUE(reply) << "the IPv6 reply did not come out of the TUN";
  EXPECT_EQ(reply->src, ip::make_address("2001:db8:99::7"));
  EXPECT_EQ(reply->dst, ip::make_address("fd00:10::2"));
  EXPECT_EQ(reply->payload, "pong");
}

TEST_F(packets, a_removed_mapping_stops_new_flows) {
  ops_->map_add(v4("100.64.0.9"), v4("198.51.100.7"));
  ASSERT_TRUE(ops_->map_remove(v4("100.64.0.9")));
  send_from_client(
      {ip::make_address("10.10.0.2"), ip::make_address("100.64.0.9"), 40002, 5353, "ping"});
  EXPECT_FALSE(udp_receive(peer4_.fd, 500ms));
  EXPECT_EQ(drop_counter("unmapped"), 1u);
}

TEST_F(packets, spoofed_sources_are_dropped) {
  ops_->map_add(v4("100.64.0.9"), v4("198.51.100.7"));
  send_from_client(
      {ip::make_address("172.16.0.5"), ip::make_address("198.51.100.7"), 40003, 5353, "ping"});
  EXPECT_FALSE(udp_receive(peer4_.fd, 500ms));
  EXPECT_EQ(drop_counter("spoofed"), 1u);
}

TEST_F(packets, nothing_new_enters_the_client_pool) {
  ASSERT_EQ(in_peer([] { return sh("ip route add 10.10.0.0/24 via 192.0.2.1").status; }), 0);
  in_peer([this] {
    udp_send(peer4_.fd, ip::make_address("10.10.0.2"), 40004, "knock");
    return 0;
  });
  EXPECT_FALSE(read_udp_from_tun(tun_.get(), 40004, 500ms));
  EXPECT_EQ(drop_counter("unsolicited"), 1u);
}

TEST_F(packets, other_traffic_arriving_on_the_egress_interface_is_not_forwarded) {
  // A second network on the gateway: before netops, gw0 had forwarding off, so the host
  // never routed gw0 -> other0; turning gw0's forwarding on for the VPN must not change that.
  ASSERT_EQ(sh("ip link add name other0 type veth peer name other1 && ip link set other1 up "
               "&& ip addr add 203.0.113.1/24 dev other0 && ip link set other0 up")
                .status,
            0);
  ASSERT_EQ(in_peer([] { return sh("ip route add 203.0.113.0/24 via 192.0.2.1").status; }), 0);
  in_peer([this] {
    udp_send(peer4_.fd, ip::make_address("203.0.113.5"), 9, "x");
    return 0;
  });
  for (int i = 0; i < 20 && drop_counter("not-ours") == 0; ++i)
    std::this_thread::sleep_for(50ms);
  EXPECT_EQ(drop_counter("not-ours"), 1u);
}

// The egress address as a /32 on lo (as gateway/egress.cpp suggests for the proxy), the
// uplink named explicitly: forwarding goes on gw0, where the replies arrive, not on lo.
class packets_lo_egress : public packets {
 protected:
  void before_install() override { ASSERT_EQ(sh("ip addr add 192.0.2.50/32 dev lo").status, 0); }
  nat_spec nat() override {
    auto n = test_nat();
    n.egress4 = v4("192.0.2.50");
    n.egress_interface4 = "gw0";
    n.pool6.reset();
    n.egress6.reset();
    return n;
  }
};

TEST_F(packets_lo_egress, egress_address_on_loopback_with_the_uplink_named) {
  ops_->map_add(v4("100.64.0.9"), v4("198.51.100.7"));
  const auto [req, reply] =
      round_trip(ip::make_address("10.10.0.2"), ip::make_address("100.64.0.9"), 40010, peer4_.fd);
  ASSERT_TRUE(req);
  EXPECT_EQ(req->from, ip::make_address("192.0.2.50"));
  EXPECT_TRUE(reply);
  EXPECT_EQ(read_file(sysctl_path(4, "gw0", "forwarding")), "1");
  EXPECT_EQ(read_file(sysctl_path(4, "lo", "forwarding")), "0");
}

// The finding behind install_nat's choice of sysctls: Linux decides IPv4 forwarding on the
// interface a packet arrives on; conf.all.forwarding and ip_forward play no part.
TEST_F(packets, ipv4_forwarding_follows_the_input_interface) {
  ops_->map_add(v4("100.64.0.9"), v4("198.51.100.7"));
  const auto client = ip::make_address("10.10.0.2");
  const auto mapped = ip::make_address("100.64.0.9");
  ASSERT_EQ(read_file(sysctl_path(4, "all", "forwarding")), "0");
  ASSERT_EQ(read_file("/proc/sys/net/ipv4/ip_forward"), "0");
  {
    const auto [req, reply] = round_trip(client, mapped, 41000, peer4_.fd);
    EXPECT_TRUE(req && reply) << "both directions with forwarding on tunnelgate0 and gw0 only";
  }
  // Off on gw0 (where replies arrive): requests still leave, replies are not forwarded.
  write_file(sysctl_path(4, "gw0", "forwarding"), "0");
  {
    const auto [req, reply] = round_trip(client, mapped, 41001, peer4_.fd);
    EXPECT_TRUE(req) << "the request needs only tunnelgate0's forwarding";
    EXPECT_FALSE(reply) << "the reply arrives on gw0, whose forwarding is off";
  }
  // Off on the TUN (where requests arrive), on at gw0 (where they leave): nothing goes out.
  write_file(sysctl_path(4, "gw0", "forwarding"), "1");
  write_file(sysctl_path(4, "tunnelgate0", "forwarding"), "0");
  {
    const auto [req, reply] = round_trip(client, mapped, 41002, peer4_.fd);
    EXPECT_FALSE(req) << "forwarding on the outgoing interface does not matter";
  }
}

// IPv6 has no per-interface switch in net.ipv6.conf.<if>.forwarding: it forwards nothing
// while conf.all.forwarding is 0. Only force_forwarding (Linux 6.17+) is per interface, and it
// too is decided on the interface a packet arrives on.
TEST_F(packets, ipv6_forwarding_flag_per_interface_does_not_forward) {
  const auto client = ip::make_address("fd00:10::2");
  const auto dst = ip::make_address("2001:db8:99::7");
  write_file(sysctl_path(6, "all", "forwarding"), "0");  // also resets force_forwarding
  for (const char* i : {"tunnelgate0", "gw0"}) {
    if (kernel_has_force_forwarding()) write_file(sysctl_path(6, i, "force_forwarding"), "0");
    write_file(sysctl_path(6, i, "forwarding"), "1");
  }
  {
    const auto [req, reply] = round_trip(client, dst, 42000, peer6_.fd);
    EXPECT_FALSE(req) << "net.ipv6.conf.<if>.forwarding=1 on both interfaces forwarded";
  }
  if (!kernel_has_force_forwarding()) return;
  for (const char* i : {"tunnelgate0", "gw0"})
    write_file(sysctl_path(6, i, "forwarding"), "0");
  write_file(sysctl_path(6, "tunnelgate0", "force_forwarding"), "1");
  {
    const auto [req, reply] = round_trip(client, dst, 42001, peer6_.fd);
    EXPECT_TRUE(req) << "force_forwarding on the input interface forwards";
    EXPECT_FALSE(reply) << "the reply arrives on gw0, which has no force_forwarding";
  }
}

}  // namespace
