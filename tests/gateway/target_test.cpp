// CONNECT targets (authority form) and the refusal vocabulary the gateway answers with.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "gateway/refusal.hpp"
#include "gateway/target.hpp"

namespace tunnelgate::gateway {

[[maybe_unused]] static void PrintTo(refusal r, std::ostream* os) {
  *os << to_string(r);
}

namespace {

connect_target ok(std::string_view authority) {
  connect_target t;
  EXPECT_EQ(parse_connect_target(authority, t), refusal::none) << authority;
  return t;
}

refusal why(std::string_view authority) {
  connect_target t;
  return parse_connect_target(authority, t);
}

// ---- parse_connect_target --------------------------------------------------------------------

TEST(ConnectTarget, NamesNormalised) {
  const struct {
    const char* in;
    const char* host;
    std::uint16_t port;
  } cases[] = {
      {"example.com:443", "example.com", 443},
      {"Example.COM:443", "example.com", 443},
      {"example.com.:8443", "example.com", 8443},
      {"WWW.Example.Com.:80", "www.example.com", 80},
      {"bücher.example:443", "xn--bcher-kva.example", 443},
      {"BÜCHER.example:443", "xn--bcher-kva.example", 443},
      {"xn--bcher-kva.example:443", "xn--bcher-kva.example", 443},
      {"a-b_c.example:1", "a-b_c.example", 1},
      {"localhost:65535", "localhost", 65535},
      {"host.example:00443", "host.example", 443},
  };
  for (const auto& c : cases) {
    const auto t = ok(c.in);
    EXPECT_EQ(t.host, c.host) << c.in;
    EXPECT_EQ(t.port, c.port) << c.in;
    EXPECT_FALSE(t.is_ip) << c.in;
  }
}

TEST(ConnectTarget, Ipv4) {
  const auto t = ok("192.0.2.1:443");
  EXPECT_TRUE(t.is_ip);
  EXPECT_EQ(t.host, "192.0.2.1");
  EXPECT_EQ(t.port, 443);
  EXPECT_EQ(ok("0.0.0.0:1").host, "0.0.0.0");
  EXPECT_TRUE(ok("255.255.255.255:65535").is_ip);
}

TEST(ConnectTarget, Ipv6InBrackets) {
  auto t = ok("[2001:DB8::1]:443");
  EXPECT_TRUE(t.is_ip);
  EXPECT_EQ(t.host, "2001:db8::1");
  EXPECT_EQ(t.port, 443);
  t = ok("[::1]:8443");
  EXPECT_EQ(t.host, "::1");
  EXPECT_EQ(t.port, 8443);
  EXPECT_EQ(ok("[2001:0db8:0000:0000:0000:0000:0000:0001]:1").host, "2001:db8::1");
  // Mapped addresses stay as written here (the egress policy decides them as IPv4).
  t = ok("[::ffff:192.0.2.1]:443");
  EXPECT_TRUE(t.is_ip);
  EXPECT_EQ(t.host, "::ffff:192.0.2.1");
}

TEST(ConnectTarget, MissingPort) {
  for (const char* a : {"example.com", "192.0.2.1", "[::1]", "[2001:db8::1]", ""})
    EXPECT_EQ(why(a), refusal::missing_port) << a;
}

TEST(ConnectTarget, BadPorts) {
  for (const char* a :
       {"example.com:0", "example.com:65536", "example.com:99999", "example.com:+1",
        "example.com:-1", "example.com:", "example.com: 443", "example.com:443 ", "example.com:44a",
        "example.com:0x1bb", "example.com:000443", "example.com:4294967297", "[::1]:0",
        "[::1]:", "[::1]:65536", "192.0.2.1:0", "192.0.2.1:"}) {
    EXPECT_EQ(why(a), refusal::bad_port) << a;
  }
}

TEST(ConnectTarget, BadHosts) {
  for (const char* a : {// bare IPv6 (ambiguous with the port)
                        "::1:443", "2001:db8::1:443", ":::443",
                        // IPv4 in brackets is no form
                        "[192.0.2.1]:443", "[example.com]:443",
                        // malformed brackets
                        "[::1:443", "[::1]x:443", "[::1]443", "[]:443", "[:::]:443",
                        // a zone is not an address a device may ask for
                        "[fe80::1%25eth0]:443", "[fe80::1%eth0]:443",
                        // numeric-looking names are addresses to resolvers
                        "127.1:443", "0x7f.1:443", "0x7F.1:443", "2130706433:443", "127.0.0.1.:443",
                        "010.0.0.1:443", "1.2.3.4.5:443", "example.123:443",
                        // not names
                        ":443", ".:443", "a..b:443", "-:443x:1", "a b.example:443", "a/b:443",
                        "a@b:443", "exa\tmple.com:443", "ex%41mple.com:443"}) {
    EXPECT_EQ(why(a), refusal::bad_host) << a;
  }
}

TEST(ConnectTarget, AuthorityRoundTrip) {
  const struct {
    const char* in;
    const char* authority;
  } cases[] = {
      {"Example.COM.:443", "example.com:443"},
      {"bücher.example:8080", "xn--bcher-kva.example:8080"},
      {"192.0.2.1:80", "192.0.2.1:80"},
      {"[2001:DB8::1]:443", "[2001:db8::1]:443"},
      {"[::1]:65535", "[::1]:65535"},
      {"[::ffff:192.0.2.1]:443", "[::ffff:192.0.2.1]:443"},
  };
  for (const auto& c : cases) {
    const auto t = ok(c.in);
    EXPECT_EQ(t.authority(), c.authority) << c.in;
    const auto again = ok(t.authority());
    EXPECT_EQ(again.host, t.host) << c.in;
    EXPECT_EQ(again.port, t.port) << c.in;
    EXPECT_EQ(again.is_ip, t.is_ip) << c.in;
    EXPECT_EQ(again.authority(), t.authority()) << c.in;
  }
}

// ---- refusal ---------------------------------------------------------------------------------

constexpr auto last_refusal = refusal::session_limit;

TEST(Refusal, EveryValueHasAUniqueNameAStatusAndAText) {
  std::set<std::string_view> names;
  for (unsigned i = 0; i <= static_cast<unsigned>(last_refusal); ++i) {
    const auto r = static_cast<refusal>(i);
    const auto name = to_string(r);
    EXPECT_FALSE(name.empty()) << i;
    EXPECT_TRUE(names.insert(name).second) << "duplicate name " << name;
    EXPECT_EQ(name.find_first_of(" _ABCDEFGHIJKLMNOPQRSTUVWXYZ"), std::string_view::npos)
        << "one spelling: lower-case-with-dashes, got " << name;
    const auto status = http_status(r);
    EXPECT_GE(status, 200U) << name;
    EXPECT_LT(status, 600U) << name;
    EXPECT_FALSE(device_text(r).empty()) << name;
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(last_refusal) + 1);
}

TEST(Refusal, StatusesAsDocumented) {
  const struct {
    refusal r;
    const char* name;
    unsigned status;
  } cases[] = {
      {refusal::none, "ok", 200},
      {refusal::bad_request, "bad-request", 400},
      {refusal::bad_line_ending, "bad-line-ending", 400},
      {refusal::obs_fold, "obs-fold", 400},
      {refusal::header_too_large, "header-too-large", 431},
      {refusal::too_many_headers, "too-many-headers", 431},
      {refusal::target_too_long, "target-too-long", 414},
      {refusal::body_not_allowed, "body-not-allowed", 400},
      {refusal::duplicate_host, "duplicate-host", 400},
      {refusal::host_mismatch, "host-mismatch", 400},
      {refusal::use_connect, "use-connect", 400},
      {refusal::method_not_allowed, "method-not-allowed", 405},
      {refusal::not_found, "not-found", 404},
      {refusal::missing_port, "missing-port", 400},
      {refusal::bad_port, "bad-port", 400},
      {refusal::bad_host, "bad-host", 400},
      {refusal::bad_app, "bad-app", 400},
      {refusal::no_rule_set, "no-rule-set", 403},
      {refusal::bypass, "bypass", 403},
      {refusal::blocked, "blocked", 403},
      {refusal::forbidden_destination, "forbidden-destination", 403},
      {refusal::resolve_failed, "resolve-failed", 502},
      {refusal::resolve_timeout, "resolve-timeout", 504},
      {refusal::no_egress_family, "no-egress-family", 502},
      {refusal::connect_failed, "connect-failed", 502},
      {refusal::connect_timeout, "connect-timeout", 504},
      {refusal::proxy_failed, "proxy-failed", 502},
      {refusal::proxy_timeout, "proxy-timeout", 504},
      {refusal::session_limit, "session-limit", 429},
  };
  ASSERT_EQ(std::size(cases), static_cast<std::size_t>(last_refusal) + 1)
      << "a new refusal needs a row here";
  for (const auto& c : cases) {
    EXPECT_EQ(to_string(c.r), c.name);
    EXPECT_EQ(http_status(c.r), c.status) << c.name;
  }
}

TEST(Refusal, DeviceTextCarriesNoNetworkDetail) {
  for (unsigned i = 0; i <= static_cast<unsigned>(last_refusal); ++i) {
    const auto text = device_text(static_cast<refusal>(i));
    // No addresses or port numbers (port ranges such as 1-65535 are advice, not detail).
    EXPECT_EQ(text.find("127."), std::string_view::npos) << text;
    EXPECT_EQ(text.find('\n'), std::string_view::npos) << text;
    EXPECT_EQ(text.find('\r'), std::string_view::npos) << text;
  }
}

TEST(Refusal, OutOfRangeValueIsABadRequest) {
  const auto bogus = static_cast<refusal>(200);
  EXPECT_EQ(to_string(bogus), "bad-request");
  EXPECT_EQ(http_status(bogus), 400U);
  EXPECT_FALSE(device_text(bogus).empty());
}

}  // namespace
}  // namespace tunnelgate::gateway
