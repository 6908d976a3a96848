// parse_proxy_v2: the PROXY protocol v2 header in front of a device's TLS bytes.
// Also listen entries with proxy_protocol in the configuration, and the sender check.
#include "gateway/proxy_protocol.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gateway/accept_control.hpp"
#include "gateway/config.hpp"
#include "gateway/proxy_accept.hpp"
#include "support/temp_dir.hpp"

namespace tunnelgate::gateway {
namespace {

using bytes = std::vector<std::uint8_t>;
using status = proxy_header::status;

const bytes sig = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/// A header: signature, ver_cmd, family, the length of `rest`, then `rest`.
bytes header(std::uint8_t ver_cmd, std::uint8_t family, const bytes& rest) {
  bytes b = sig;
  b.push_back(ver_cmd);
  b.push_back(family);
  b.push_back(static_cast<std::uint8_t>(rest.size() >> 8));
  b.push_back(static_cast<std::uint8_t>(rest.size() & 0xFF));
  b.insert(b.end(), rest.begin(), rest.end());
  return b;
}

/// 192.0.2.44:5555 -> 198.51.100.1:443
const bytes v4_block = {192, 0, 2, 44, 198, 51, 100, 1, 0x15, 0xB3, 0x01, 0xBB};

bytes v6_block() {
  bytes b = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x44};  // 2001:db8::44
  const bytes dst = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
  b.insert(b.end(), dst.begin(), dst.end());
  b.insert(b.end(), {0xD9, 0x03, 0x01, 0xBB});  // 55555 -> 443
  return b;
}

proxy_header parse(const bytes& b) {
  return parse_proxy_v2(b);
}

TEST(proxy_v2, tcp4_gives_the_device_and_front_end_addresses_and_leaves_the_tls_bytes) {
  auto b = header(0x21, 0x11, v4_block);
  const auto len = b.size();
  b.insert(b.end(), {0x16, 0x03, 0x01});  // a ClientHello follows
  const auto h = parse(b);
  ASSERT_EQ(h.state, status::ok);
  EXPECT_EQ(h.consumed, len);
  EXPECT_EQ(h.cmd, proxy_header::command::proxy);
  ASSERT_TRUE(h.source);
  EXPECT_EQ(h.source->address().to_string(), "192.0.2.44");
  EXPECT_EQ(h.source->port(), 5555);
  ASSERT_TRUE(h.destination);
  EXPECT_EQ(h.destination->address().to_string(), "198.51.100.1");
  EXPECT_EQ(h.destination->port(), 443);
}

TEST(proxy_v2, tcp6_gives_the_device_address) {
  const auto h = parse(header(0x21, 0x21, v6_block()));
  ASSERT_EQ(h.state, status::ok);
  EXPECT_EQ(h.consumed, 16U + 36U);
  ASSERT_TRUE(h.source);
  EXPECT_EQ(h.source->address().to_string(), "2001:db8::44");
  EXPECT_EQ(h.source->port(), 55555);
  EXPECT_EQ(h.destination->address().to_string(), "2001:db8::1");
}

TEST(proxy_v2, local_is_a_health_check_without_addresses_whatever_the_family) {
  for (std::uint8_t fam : {0x00, 0x11, 0x31}) {
    const auto h = parse(header(0x20, fam, fam == 0x11 ? v4_block : bytes{}));
    ASSERT_EQ(h.state, status::ok) << int(fam);
    EXPECT_EQ(h.cmd, proxy_header::command::local);
    EXPECT_FALSE(h.source);
    EXPECT_FALSE(h.destination);
  }
}

TEST(proxy_v2, unspec_proxies_without_addresses) {
  const auto h = parse(header(0x21, 0x00, {}));
  ASSERT_EQ(h.state, status::ok);
  EXPECT_EQ(h.consumed, 16U);
  EXPECT_EQ(h.cmd, proxy_header::command::proxy);
  EXPECT_FALSE(h.source);
}

TEST(proxy_v2, tlvs_after_the_addresses_are_skipped) {
  auto rest = v4_block;
  rest.insert(rest.end(), {0x05, 0x00, 0x04, 'a', 'b', 'c', 'd'});  // UNIQUE_ID
  rest.insert(rest.end(), {0x04, 0x00, 0x00});                      // NOOP, empty
  auto b = header(0x21, 0x11, rest);
  const auto len = b.size();
  b.push_back(0x16);
  const auto h = parse(b);
  ASSERT_EQ(h.state, status::ok);
  EXPECT_EQ(h.consumed, len);
  EXPECT_EQ(h.source->address().to_string(), "192.0.2.44");
}

TEST(proxy_v2, every_refusal_has_its_one_spelling) {
  const auto refused = [](const bytes& b) {
    const auto h = parse(b);
    EXPECT_EQ(h.state, status::refused);
    EXPECT_FALSE(h.detail.empty());
    return std::string(to_string(h.refusal));
  };
  EXPECT_EQ(refused(header(0x11, 0x11, v4_block)), "bad-version");
  EXPECT_EQ(refused(header(0x22, 0x11, v4_block)), "unsupported-command");
  EXPECT_EQ(refused(header(0x21, 0x12, v4_block)), "unsupported-family");    // UDP/IPv4
  EXPECT_EQ(refused(header(0x21, 0x31, bytes(216))), "unsupported-family");  // UNIX stream
  EXPECT_EQ(refused(header(0x21, 0x11, bytes(521))), "too-long");            // 16 + 521 = 537
  EXPECT_EQ(refused(header(0x21, 0x11, bytes(4))), "truncated");             // too short for IPv4
  EXPECT_EQ(refused(header(0x21, 0x21, v4_block)), "truncated");             // too short for IPv6
  auto tlv = v4_block;
  tlv.insert(tlv.end(), {0x05, 0x00, 0x09, 'a'});  // says 9 bytes, has 1
  EXPECT_EQ(refused(header(0x21, 0x11, tlv)), "truncated");
  EXPECT_EQ(refused({0x16, 0x03, 0x01, 0x02, 0x00}), "bad-signature");
}

TEST(proxy_v2, the_longest_header_accepted_is_536_bytes) {
  auto rest = v4_block;
  const bytes pad(536 - 16 - 12 - 3, 0);
  rest.insert(rest.end(), {0x04, static_cast<std::uint8_t>(pad.size() >> 8),
                           static_cast<std::uint8_t>(pad.size() & 0xFF)});
  rest.insert(rest.end(), pad.begin(), pad.end());
  const auto h = parse(header(0x21, 0x11, rest));
  ASSERT_EQ(h.state, status::ok);
  EXPECT_EQ(h.consumed, proxy_v2_max_header);
}

TEST(proxy_v2, a_version_1_header_is_refused_and_named) {
  const std::string v1 = "PROXY TCP4 192.0.2.44 198.51.100.1 5555 443\r\n";
  const auto h = parse(bytes(v1.begin(), v1.end()));
  ASSERT_EQ(h.state, status::refused);
  EXPECT_EQ(h.refusal, proxy_refusal::bad_signature);
  EXPECT_NE(h.detail.find("version 1"), std::string_view::npos);
}

TEST(proxy_v2, garbage_is_refused_at_its_first_wrong_byte) {
  EXPECT_EQ(parse({'G'}).state, status::refused);
  EXPECT_EQ(parse({0x0D, 0x0A, 0x0D, 0x0B}).state, status::refused);
  const std::string get = "GET / HTTP/1.1\r\n\r\n";
  EXPECT_EQ(parse(bytes(get.begin(), get.end())).refusal, proxy_refusal::bad_signature);
}

TEST(proxy_v2, a_header_split_across_reads_asks_for_exactly_what_is_missing) {
  const auto whole = header(0x21, 0x11, v4_block);
  EXPECT_EQ(parse({}).state, status::need_more);
  EXPECT_EQ(parse({}).needed, 16U);
  for (std::size_t n = 1; n < whole.size(); ++n) {
    const auto h = parse(bytes(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n)));
    ASSERT_EQ(h.state, status::need_more) << n;
    EXPECT_EQ(h.needed, n < 16 ? 16U : whole.size()) << n;
  }
  EXPECT_EQ(parse(whole).state, status::ok);
}

TEST(proxy_v2, a_bad_header_is_refused_before_its_end_arrives) {
  // The command is wrong at byte 13: no need to wait for the rest.
  auto b = header(0x2F, 0x11, v4_block);
  b.resize(13);
  EXPECT_EQ(parse(b).refusal, proxy_refusal::unsupported_command);
  EXPECT_EQ(parse(b).state, status::refused);
  // Too long is known from the fixed part.
  auto l = header(0x21, 0x11, bytes(1000));
  l.resize(16);
  EXPECT_EQ(parse(l).refusal, proxy_refusal::too_long);
}

// ---- accept refusals of proxy_protocol listeners ----------------------------------------------

TEST(proxy_accept_refusal, each_reason_has_one_spelling_and_a_remedy) {
  EXPECT_EQ(to_string(accept_refusal::proxy_sender_not_allowed), "proxy-sender-not-allowed");
  EXPECT_EQ(to_string(accept_refusal::proxy_header_invalid), "proxy-header-invalid");
  EXPECT_EQ(to_string(accept_refusal::proxy_header_timeout), "proxy-header-timeout");
  EXPECT_NE(remedy(accept_refusal::proxy_sender_not_allowed).find("proxy_protocol.senders"),
            std::string_view::npos);
  EXPECT_NE(remedy(accept_refusal::proxy_header_timeout).find("limits.first_byte_timeout"),
            std::string_view::npos);
  EXPECT_NE(remedy(accept_refusal::proxy_header_invalid).find("version 2"), std::string_view::npos);
}

TEST(proxy_accept_refusal, logged_once_per_sender_and_reason_per_interval_holding_nothing) {
  std::atomic<std::int64_t> connections{0};
  std::atomic<std::int64_t> pending{0};
  auto ctl = std::make_shared<accept_control>(connections, pending);
  const auto t0 = accept_control::clock::now();
  const auto a = net::ip::make_address("10.0.0.1");
  const auto b = net::ip::make_address("10.0.0.2");
  EXPECT_TRUE(ctl->refuse(a, accept_refusal::proxy_header_invalid, t0).log);
  EXPECT_FALSE(ctl->refuse(a, accept_refusal::proxy_header_invalid, t0).log);
  EXPECT_TRUE(ctl->refuse(a, accept_refusal::proxy_sender_not_allowed, t0).log)
      << "another reason from the same sender is not hidden";
  EXPECT_TRUE(ctl->refuse(b, accept_refusal::proxy_header_invalid, t0).log);
  const auto later =
      ctl->refuse(a, accept_refusal::proxy_header_invalid, t0 + accept_control::log_interval);
  EXPECT_TRUE(later.log);
  EXPECT_EQ(later.quiet, 1U) << "the line says how many were not logged";
  EXPECT_EQ(later.refusal, accept_refusal::proxy_header_invalid);
  EXPECT_FALSE(later.ticket.holds_connection());
  EXPECT_EQ(connections.load(), 0);
  EXPECT_EQ(pending.load(), 0);
  EXPECT_EQ(ctl->sources(), 0U) << "the per-source limits' table is not touched";
}

// ---- configuration: listen entries as mappings ----------------------------------------------

class ProxyListenConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* f : {"server.pem", "server.key", "ca.pem"})
      dir_.write(f, "");
    dir_.write("rules.yaml",
               "rule_sets:\n  - name: all\n    platforms: [ios]\n    mode: full-device\n"
               "    default: tunnel\n");
  }
  config_result load(const std::string& listen) {
    return load_config(dir_.write("gateway.yaml", listen +
                                                      "tls: {cert: server.pem, key: server.key, "
                                                      "client_ca: ca.pem}\n"
                                                      "dtr: rules.yaml\n"
                                                      "egress: {address: 127.0.0.2}\n"));
  }
  std::string at(int line, int column) const {
    return (dir_ / "gateway.yaml").string() + ":" + std::to_string(line) + ":" +
           std::to_string(column) + ": ";
  }
  tunnelgate::testing::temp_dir dir_;
};

TEST_F(ProxyListenConfig, strings_and_mappings_mix_and_options_stay_parallel) {
  const auto r = load(R"(listen:
  - "127.0.0.1:8443"
  - address: "0.0.0.0:443"
    proxy_protocol: {senders: ["10.0.0.0/24", "2001:db8::/64", "192.0.2.7"]}
  - {address: "[::1]:9443"}
)");
  ASSERT_TRUE(r) << (r.errors.empty() ? "" : r.errors[0]);
  const auto& c = *r.value;
  ASSERT_EQ(c.listen.size(), 3U);
  ASSERT_EQ(c.listen_options.size(), 3U);
  EXPECT_FALSE(c.listen_options[0].proxy_protocol);
  ASSERT_TRUE(c.listen_options[1].proxy_protocol);
  EXPECT_EQ(c.listen[1].port(), 443);
  const auto& pp = *c.listen_options[1].proxy_protocol;
  ASSERT_EQ(pp.senders.size(), 3U);
  EXPECT_TRUE(proxy_sender_allowed(pp, net::ip::make_address("10.0.0.200")));
  EXPECT_TRUE(proxy_sender_allowed(pp, net::ip::make_address("::ffff:10.0.0.1")));
  EXPECT_TRUE(proxy_sender_allowed(pp, net::ip::make_address("2001:db8::99")));
  EXPECT_TRUE(proxy_sender_allowed(pp, net::ip::make_address("192.0.2.7")));
  EXPECT_FALSE(proxy_sender_allowed(pp, net::ip::make_address("10.0.1.1")));
  EXPECT_FALSE(proxy_sender_allowed(pp, net::ip::make_address("192.0.2.8")));
  EXPECT_FALSE(proxy_sender_allowed(pp, net::ip::make_address("2001:db8:0:1::1")));
  EXPECT_FALSE(c.listen_options[2].proxy_protocol);
}

TEST_F(ProxyListenConfig, senders_are_required_and_checked_where_written) {
  const auto r = load(R"(listen:
  - address: "0.0.0.0:443"
    proxy_protocol: {}
  - address: "0.0.0.0:444"
    proxy_protocol: {senders: []}
  - address: "0.0.0.0:445"
    proxy_protocol: {senders: ["10.0.0.1/8", "nonsense"], trust: all}
  - proxy_protocol: {senders: ["10.0.0.0/8"]}
)");
  ASSERT_FALSE(r);
  std::string all;
  for (const auto& e : r.errors)
    all += e + "\n";
  EXPECT_NE(all.find(at(3, 21) + "listen[0].proxy_protocol.senders: expected a non-empty list"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find(at(5, 31) + "listen[1].proxy_protocol.senders: expected a non-empty list"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find(at(7, 32) + "listen[2].proxy_protocol.senders[0]: "), std::string::npos)
      << all;
  EXPECT_NE(all.find(at(7, 46) + "listen[2].proxy_protocol.senders[1]: "), std::string::npos)
      << all;
  EXPECT_NE(all.find(at(7, 59) + "listen[2].proxy_protocol.trust: unknown key"), std::string::npos)
      << all;
  EXPECT_NE(all.find(at(8, 5) + "listen[3].address: missing"), std::string::npos) << all;
}

}  // namespace
}  // namespace tunnelgate::gateway
