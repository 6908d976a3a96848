// The CONNECT exchange: the request headers of a real openconnect 9.01, the MTU rule, and the
// exact X-CSTP-* answer for a given configuration.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gateway/vpn/tunnel.hpp"

namespace tunnel = tunnelgate::gateway::vpn::tunnel;
using boost::asio::ip::make_address;
using boost::asio::ip::make_network_v4;
using boost::asio::ip::make_network_v6;
using namespace std::chrono_literals;

namespace {

// The header fields of Debian 12's openconnect 9.01-3 CONNECT, captured on loopback with
// --no-dtls (its TCP path MTU there is 65535, hence the MTUs).
const std::vector<std::pair<std::string, std::string>> openconnect_901_connect{
    {"Host", "127.0.0.1:18443"},
    {"User-Agent", "Open AnyConnect VPN Agent v9.01-3"},
    {"Cookie", "webvpn=AAAAAAAAAAAAAAAAAAAAAAAA"},
    {"X-CSTP-Version", "1"},
    {"X-CSTP-Hostname", "vm"},
    {"X-AnyConnect-STRAP-Verify", "MEQCIDlOgMa3O7nz+ZXena0dHgoO49yQPW8PfLHTKEr97tdFAiA78CHxi0w="},
    {"X-AnyConnect-STRAP-Pubkey", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENOmTptG0JKR++QyOftJJFG4="},
    {"X-CSTP-Accept-Encoding", "oc-lz4,lzs"},
    {"X-CSTP-Base-MTU", "65535"},
    {"X-CSTP-MTU", "65425"},
    {"X-CSTP-Address-Type", "IPv6,IPv4"},
    {"X-CSTP-Full-IPv6-Capability", "true"},
};

tunnel::client_request from(const std::vector<std::pair<std::string, std::string>>& fields) {
  tunnel::client_request req;
  for (const auto& [name, value] : fields) {
    EXPECT_EQ(tunnel::apply_header(req, name, value), tunnel::request_error::none) << name;
  }
  return req;
}

}  // namespace

TEST(TunnelRequest, Openconnect901Headers) {
  const auto req = from(openconnect_901_connect);
  EXPECT_EQ(req.version, 1);
  EXPECT_EQ(req.hostname, "vm");
  EXPECT_EQ(req.base_mtu, 65535u);
  EXPECT_EQ(req.mtu, 65425u);
  EXPECT_TRUE(req.wants_ipv4);
  EXPECT_TRUE(req.wants_ipv6);
  EXPECT_TRUE(req.full_ipv6);
  EXPECT_EQ(req.accept_encoding, (std::vector<std::string>{"oc-lz4", "lzs"}));
  EXPECT_FALSE(req.previous_v4);
  EXPECT_FALSE(req.dtls_offered);
}

TEST(TunnelRequest, ReconnectAndOptions) {
  // A reconnect after the TLS connection dropped: same cookie, previous addresses (captured).
  auto req = from({{"x-cstp-address-type", "IPv4"},
                   {"X-CSTP-Address", "10.8.0.7"},
                   {"X-CSTP-Address", "fd00::7"},
                   {"X-DTLS-Master-Secret", "00112233"}});
  EXPECT_TRUE(req.wants_ipv4);
  EXPECT_FALSE(req.wants_ipv6);
  EXPECT_FALSE(req.full_ipv6);
  ASSERT_TRUE(req.previous_v4);
  EXPECT_EQ(req.previous_v4->to_string(), "10.8.0.7");
  ASSERT_TRUE(req.previous_v6);
  EXPECT_EQ(req.previous_v6->to_string(), "fd00::7");
  EXPECT_TRUE(req.dtls_offered);
  // Without the header, both families are allowed (as ocserv reads it).
  EXPECT_TRUE(tunnel::client_request{}.wants_ipv6);
}

TEST(TunnelRequest, MalformedValuesAreReportedAndIgnored) {
  tunnel::client_request req;
  for (const auto* bad : {"", "abc", "-1", "65536", "1400x", "0x578", "99999999999"}) {
    EXPECT_EQ(tunnel::apply_header(req, "X-CSTP-MTU", bad), tunnel::request_error::bad_number)
        << bad;
  }
  EXPECT_EQ(req.mtu, 0u);
  EXPECT_EQ(tunnel::apply_header(req, "X-CSTP-MTU", " 1400 "), tunnel::request_error::none);
  EXPECT_EQ(req.mtu, 1400u);
  EXPECT_EQ(tunnel::apply_header(req, "X-CSTP-Version", "x"), tunnel::request_error::bad_number);
  for (const auto* bad : {"10.8.0", "fe80::1%eth0", "host.example", ""}) {
    EXPECT_EQ(tunnel::apply_header(req, "X-CSTP-Address", bad), tunnel::request_error::bad_address)
        << bad;
  }
  EXPECT_EQ(tunnel::apply_header(req, "X-CSTP-Hostname", "a\x01b"),
            tunnel::request_error::bad_value);
  EXPECT_EQ(tunnel::apply_header(req, "X-CSTP-Hostname", std::string(256, 'h')),
            tunnel::request_error::bad_value);
  EXPECT_EQ(tunnel::apply_header(req, "X-Unknown", "\x01"), tunnel::request_error::none);
  EXPECT_EQ(tunnel::to_string(tunnel::request_error::none), "ok");
  EXPECT_EQ(tunnel::to_string(tunnel::request_error::bad_number), "bad_number");
  EXPECT_EQ(tunnel::to_string(tunnel::request_error::bad_address), "bad_address");
  EXPECT_EQ(tunnel::to_string(tunnel::request_error::bad_value), "bad_value");
}

TEST(TunnelMtu, SmallerOfOursAndTheClients) {
  const auto oc = from(openconnect_901_connect);
  auto r = tunnel::negotiate_mtu(1400, 1500, oc, true);
  EXPECT_EQ(r.mtu, 1400u);
  EXPECT_EQ(r.base_mtu, 1500u);
  EXPECT_TRUE(r.ipv6);

  tunnel::client_request small;
  small.mtu = 1300;
  small.base_mtu = 1350;
  small.full_ipv6 = true;
  r = tunnel::negotiate_mtu(1400, 1500, small, false);
  EXPECT_EQ(r.mtu, 1300u);
  EXPECT_EQ(r.base_mtu, 1350u);
  EXPECT_FALSE(r.ipv6);
  // With IPv6 the floor is 1280; without, 576.
  small.mtu = 1000;
  EXPECT_EQ(tunnel::negotiate_mtu(1400, 1500, small, true).mtu, 1280u);
  EXPECT_EQ(tunnel::negotiate_mtu(1400, 1500, small, false).mtu, 1000u);
  small.mtu = 100;
  EXPECT_EQ(tunnel::negotiate_mtu(1400, 1500, small, false).mtu, 576u);
  // Never above ours, and IPv6 dropped when ours cannot carry it.
  r = tunnel::negotiate_mtu(1200, 1500, small, true);
  EXPECT_EQ(r.mtu, 576u);
  EXPECT_FALSE(r.ipv6);
  r = tunnel::negotiate_mtu(500, 1500, small, false);
  EXPECT_EQ(r.mtu, 500u);
  // A client that does not take X-CSTP-Address-IP6, or does not want IPv6, gets none.
  tunnel::client_request old;
  old.full_ipv6 = false;
  EXPECT_FALSE(tunnel::negotiate_mtu(1400, 1500, old, true).ipv6);
  tunnel::client_request v4only;
  v4only.full_ipv6 = true;
  v4only.wants_ipv6 = false;
  EXPECT_FALSE(tunnel::negotiate_mtu(1400, 1500, v4only, true).ipv6);
  // Without client MTUs, ours.
  tunnel::client_request none;
  r = tunnel::negotiate_mtu(1400, 1500, none, false);
  EXPECT_EQ(r.mtu, 1400u);
  EXPECT_EQ(r.base_mtu, 1500u);
}

TEST(TunnelAnswer, FullConfigurationIsExact) {
  tunnel::settings cfg;
  cfg.ipv4 = make_network_v4("10.8.0.7/16");
  cfg.ipv6 = make_network_v6("fd00::7/64");
  cfg.mtu = 1400;
  cfg.base_mtu = 1500;
  cfg.dpd = 30s;
  cfg.keepalive = 20s;
  cfg.idle_timeout = 600s;
  cfg.session_timeout = 86400s;
  cfg.dns = {make_address("10.8.0.1"), make_address("fd00::1")};
  cfg.split_include_v4 = {make_network_v4("100.64.0.0/16"), make_network_v4("10.20.0.0/14"),
                          make_network_v4("192.0.2.10/32")};
  cfg.split_include_v6 = {make_network_v6("2001:db8::/32")};
  cfg.split_dns = {"okta.com", "login.microsoftonline.com"};
  cfg.default_domain = "corp.example";
  EXPECT_EQ(tunnel::response_headers(cfg),
            (std::vector<tunnel::header>{
                {"X-CSTP-Version", "1"},
                {"X-CSTP-Address", "10.8.0.7"},
                {"X-CSTP-Netmask", "255.255.0.0"},
                {"X-CSTP-Address-IP6", "fd00::7/64"},
                {"X-CSTP-MTU", "1400"},
                {"X-CSTP-Base-MTU", "1500"},
                {"X-CSTP-DPD", "30"},
                {"X-CSTP-Keepalive", "20"},
                {"X-CSTP-Idle-Timeout", "600"},
                {"X-CSTP-Session-Timeout", "86400"},
                {"X-CSTP-Rekey-Method", "none"},
                {"X-CSTP-DNS", "10.8.0.1"},
                {"X-CSTP-DNS", "fd00::1"},
                {"X-CSTP-Default-Domain", "corp.example"},
                {"X-CSTP-Split-DNS", "okta.com"},
                {"X-CSTP-Split-DNS", "login.microsoftonline.com"},
                {"X-CSTP-Split-Include", "100.64.0.0/255.255.0.0"},
                {"X-CSTP-Split-Include", "10.20.0.0/255.252.0.0"},
                {"X-CSTP-Split-Include", "192.0.2.10/255.255.255.255"},
                {"X-CSTP-Split-Include-IP6", "2001:db8::/32"},
            }));
}

TEST(TunnelAnswer, MinimalIpv4OnlyConfiguration) {
  tunnel::settings cfg;
  cfg.ipv4 = make_network_v4("10.8.0.2/24");
  cfg.mtu = 1300;
  cfg.base_mtu = 1400;
  cfg.dpd = 0s;
  cfg.keepalive = 0s;
  cfg.dns = {make_address("fd00::1"), make_address("10.8.0.1")};  // no IPv6 address: v6 DNS out
  cfg.split_include_v6 = {make_network_v6("2001:db8::/32")};      // likewise
  cfg.split_include_v4 = {make_network_v4("10.1.2.3/8")};         // host bits dropped
  EXPECT_EQ(tunnel::response_headers(cfg), (std::vector<tunnel::header>{
                                               {"X-CSTP-Version", "1"},
                                               {"X-CSTP-Address", "10.8.0.2"},
                                               {"X-CSTP-Netmask", "255.255.255.0"},
                                               {"X-CSTP-MTU", "1300"},
                                               {"X-CSTP-Base-MTU", "1400"},
                                               {"X-CSTP-Idle-Timeout", "none"},
                                               {"X-CSTP-Session-Timeout", "none"},
                                               {"X-CSTP-Rekey-Method", "none"},
                                               {"X-CSTP-DNS", "10.8.0.1"},
                                               {"X-CSTP-Split-Include", "10.0.0.0/255.0.0.0"},
                                           }));
}

TEST(TunnelAnswer, DomainsThatWouldBreakAHeaderAreRefused) {
  tunnel::settings cfg;
  cfg.ipv4 = make_network_v4("10.8.0.2/24");
  for (const auto* bad :
       {"okta.com\r\nX-Evil: 1", "", "*.okta.com", "a..b", "okta.com.", "ok ta.com"}) {
    cfg.split_dns = {bad};
    EXPECT_THROW(tunnel::response_headers(cfg), std::invalid_argument) << bad;
  }
  cfg.split_dns = {};
  cfg.default_domain = "bad domain";
  EXPECT_THROW(tunnel::response_headers(cfg), std::invalid_argument);
  EXPECT_TRUE(tunnel::valid_domain("xn--bcher-kva.example"));
  EXPECT_FALSE(tunnel::valid_domain(std::string(64, 'a') + ".com"));
}
