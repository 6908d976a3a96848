// Destination syntax: every form, its canonical text, and every way to get it wrong.
#include <gtest/gtest.h>

#include "dtr/dtr.hpp"

namespace tunnelgate::dtr {
namespace {

using kind = destination::kind;

destination ok(std::string_view text) {
  auto d = parse_destination(text);
  EXPECT_TRUE(d) << text << ": " << (d ? "" : d.error().message());
  return d ? d.value() : destination{};
}

std::error_code err(std::string_view text) {
  auto d = parse_destination(text);
  EXPECT_FALSE(d) << text << " parsed as " << (d ? d.value().text() : "");
  return d ? std::error_code{} : d.error();
}

TEST(Destination, ExactHostIsLowerCasedWithoutTrailingDot) {
  const auto d = ok("Login.MicrosoftOnline.COM.");
  EXPECT_EQ(d.k, kind::exact);
  EXPECT_EQ(d.value, "login.microsoftonline.com");
  EXPECT_TRUE(d.ports.all());
  EXPECT_EQ(d.text(), "login.microsoftonline.com");
}

TEST(Destination, WildcardForms) {
  EXPECT_EQ(ok("*acme.okta.com").k, kind::string_suffix);
  EXPECT_EQ(ok("*acme.okta.com").value, "acme.okta.com");
  EXPECT_EQ(ok("*.okta.com").k, kind::label_suffix);
  EXPECT_EQ(ok("*.okta.com").value, ".okta.com");
  EXPECT_EQ(ok("*").k, kind::any_host);
  EXPECT_EQ(ok("*:443").k, kind::any_host);
  EXPECT_EQ(ok("*:443").ports, (port_range{443, 443}));
  EXPECT_EQ(ok("*com").value, "com");
  EXPECT_EQ(ok("*-admin.okta.com").value, "-admin.okta.com");
}

TEST(Destination, PortsAndRanges) {
  EXPECT_EQ(ok("*.example.com:443").ports, (port_range{443, 443}));
  EXPECT_EQ(ok("host.example:1-1024").ports, (port_range{1, 1024}));
  EXPECT_EQ(ok("host.example:65535").ports, (port_range{65535, 65535}));
  EXPECT_EQ(ok("10.0.0.0/8:1-1024").text(), "10.0.0.0/8:1-1024");
  EXPECT_EQ(ok("*.example.com:80-80").text(), "*.example.com:80");
}

TEST(Destination, Ipv4LiteralsAndCidrs) {
  const auto a = ok("192.0.2.10");
  EXPECT_EQ(a.k, kind::cidr);
  EXPECT_EQ(a.prefix, 32U);
  EXPECT_FALSE(a.network.v6);
  EXPECT_EQ(a.text(), "192.0.2.10");
  const auto n = ok("10.0.0.0/8");
  EXPECT_EQ(n.prefix, 8U);
  EXPECT_EQ(n.text(), "10.0.0.0/8");
  EXPECT_EQ(ok("0.0.0.0/0").prefix, 0U);
  EXPECT_EQ(ok("192.0.2.10:8443").ports, (port_range{8443, 8443}));
}

TEST(Destination, Ipv6LiteralsCidrsAndPortsInBrackets) {
  const auto a = ok("2001:DB8::1");
  EXPECT_TRUE(a.network.v6);
  EXPECT_EQ(a.prefix, 128U);
  EXPECT_EQ(a.text(), "2001:db8::1");
  EXPECT_EQ(ok("2001:db8::/32").text(), "2001:db8::/32");
  EXPECT_EQ(ok("::/0").prefix, 0U);
  const auto p = ok("[2001:db8::/32]:443");
  EXPECT_EQ(p.prefix, 32U);
  EXPECT_EQ(p.ports, (port_range{443, 443}));
  EXPECT_EQ(p.text(), "[2001:db8::/32]:443");
  EXPECT_EQ(ok("[::1]:1-1024").text(), "[::1]:1-1024");
  EXPECT_EQ(ok("[::1]").text(), "::1");
}

TEST(Destination, InternationalNamesBecomeALabels) {
  EXPECT_EQ(ok("bücher.example").value, "xn--bcher-kva.example");
  EXPECT_EQ(ok("BÜCHER.example").value, "xn--bcher-kva.example");
  EXPECT_EQ(ok("*.bücher.example").value, ".xn--bcher-kva.example");
  EXPECT_EQ(ok("xn--bcher-kva.example").value, "xn--bcher-kva.example");
}

TEST(Destination, MappedAndCompatibleNetworksAreStoredAsIpv4) {
  const auto m = ok("::ffff:10.0.0.0/104");
  EXPECT_EQ(m.k, kind::cidr);
  EXPECT_FALSE(m.network.v6);
  EXPECT_EQ(m.prefix, 8U);
  EXPECT_EQ(m.text(), "10.0.0.0/8");
  EXPECT_EQ(m, ok("10.0.0.0/8"));
  EXPECT_EQ(ok("::FFFF:A00:0/104"), ok("10.0.0.0/8"));
  EXPECT_EQ(ok("0:0:0:0:0:ffff:10.0.0.0/104"), ok("10.0.0.0/8"));
  EXPECT_EQ(ok("::ffff:192.0.2.1").text(), "192.0.2.1");
  EXPECT_EQ(ok("::ffff:192.0.2.1").prefix, 32U);
  EXPECT_EQ(ok("::ffff:192.0.2.1/128").text(), "192.0.2.1");
  EXPECT_EQ(ok("[::ffff:192.0.2.1]:443").text(), "192.0.2.1:443");
  EXPECT_EQ(ok("[::ffff:10.0.0.0/104]:1-1024").text(), "10.0.0.0/8:1-1024");
  EXPECT_EQ(ok("::ffff:0:0/96").text(), "0.0.0.0/0");
  // IPv4-compatible: ::/96 without :: and ::1.
  EXPECT_EQ(ok("::10.0.0.0/104").text(), "10.0.0.0/8");
  EXPECT_EQ(ok("::a00:1").text(), "10.0.0.1");
  EXPECT_EQ(ok("::2").text(), "0.0.0.2");
  EXPECT_EQ(ok("::2/127").text(), "0.0.0.2/31");
  EXPECT_EQ(ok("::0.0.1.0/120").text(), "0.0.1.0/24");
  // What stays IPv6: the unspecified and loopback addresses, the pair of them, every network
  // shorter than /96, and the neighbours of the two ranges.
  for (auto t : {"::", "::1", "::/127", "::/0", "::/64", "::fffe:0:0/95", "::1:0:0/96",
                 "::ffff:1:0:0/96", "64:ff9b::/96", "64:ff9b::a00:1"}) {
    const auto d = ok(t);
    EXPECT_TRUE(d.network.v6) << t;
    EXPECT_EQ(d.text(), parse_destination(d.text()).value().text()) << t;
  }
  EXPECT_EQ(ok("::/127").prefix, 127U);
  EXPECT_EQ(ok("::1").text(), "::1");
}

TEST(Destination, NetworksMixingLoopbackAndIpv4CompatibleAreRefused) {
  // ::/96 .. ::/126 hold :: and ::1 (IPv6) and ::0.0.0.2 and up (decided as IPv4): no single
  // destination can say that.
  for (auto t : {"::/96", "::/104", "::/120", "::/126", "[::/96]:443", "0::0/100"}) {
    EXPECT_EQ(err(t), errc::mixed_ipv4_compatible) << t;
  }
  EXPECT_NE(make_error_code(errc::mixed_ipv4_compatible).message().find("::/127"),
            std::string::npos);
  // Host bits are checked on the address as written.
  EXPECT_EQ(err("::ffff:10.0.0.1/104"), errc::bad_cidr);
  EXPECT_EQ(err("::ffff:0:0/95"), errc::bad_cidr);
  EXPECT_EQ(err("::ffff:10.0.0.0/129"), errc::bad_cidr);
  EXPECT_EQ(err("[::ffff:10.0.0.0]/104"), errc::bad_port);
}

TEST(Destination, StringSuffixMustNotStartInsideAnInternationalLabel) {
  // The first label of `*suffix` is compared as text with the end of the host's label in A-label
  // form: a non-ASCII fragment would be the punycode of the fragment, which never matches.
  for (auto t : {"*ücher.de", "*ÜCHER.de", "*bücher.de", "*ü", "*ücher.de:443", "*ücher",
                 "*ｏkta.com", "*xn--bcher-kva.de", "*XN--BCHER-KVA.de", "*xn--cher-zra.de."}) {
    EXPECT_EQ(err(t), errc::idn_string_suffix) << t;
  }
  const auto m = make_error_code(errc::idn_string_suffix).message();
  EXPECT_NE(m.find("'*.bücher.de'"), std::string::npos) << m;
  EXPECT_NE(m.find("'bücher.de'"), std::string::npos) << m;
  // Label-boundary wildcards and exact names in either form keep working.
  EXPECT_EQ(ok("*.bücher.de").value, ".xn--bcher-kva.de");
  EXPECT_EQ(ok("*.xn--bcher-kva.de").value, ".xn--bcher-kva.de");
  EXPECT_EQ(ok("bücher.de").value, "xn--bcher-kva.de");
  EXPECT_EQ(ok("*.ÜBER.bücher.de").value, ".xn--ber-goa.xn--bcher-kva.de");
  // An ASCII partial label before whole IDN labels: only the whole labels are converted, so
  // fragments that IDNA would refuse as labels ("-admin", "ab--c") are fine.
  EXPECT_EQ(ok("*shop.bücher.de").value, "shop.xn--bcher-kva.de");
  EXPECT_EQ(ok("*SHOP.bücher.de").value, "shop.xn--bcher-kva.de");
  EXPECT_EQ(ok("*-admin.bücher.de").value, "-admin.xn--bcher-kva.de");
  EXPECT_EQ(ok("*ab--c.bücher.de").value, "ab--c.xn--bcher-kva.de");
  EXPECT_EQ(ok("*n--bcher-kva.de").value, "n--bcher-kva.de");  // ASCII: a string like any
  EXPECT_EQ(ok("*okta.com.").value, "okta.com");
  EXPECT_EQ(ok("*com").value, "com");
  EXPECT_EQ(ok("*a.10").value, "a.10");
  // The rest of the name is still checked.
  EXPECT_EQ(err("*shop..bücher.de"), errc::bad_host);
  EXPECT_EQ(err("*shop.\xff.de"), errc::bad_idn);
  EXPECT_EQ(err("*sh op.de"), errc::bad_host);
  EXPECT_EQ(err("*" + std::string(64, 'a') + ".bücher.de"), errc::bad_host);
}

TEST(Destination, Errors) {
  EXPECT_EQ(err(""), errc::empty_destination);
  EXPECT_EQ(err("   "), errc::empty_destination);
  EXPECT_EQ(err("host.example:0"), errc::port_out_of_range);
  EXPECT_EQ(err("host.example:65536"), errc::port_out_of_range);
  EXPECT_EQ(err("host.example:999999"), errc::port_out_of_range);
  EXPECT_EQ(err("host.example:http"), errc::bad_port);
  EXPECT_EQ(err("host.example:"), errc::bad_port);
  EXPECT_EQ(err("host.example:443-80"), errc::bad_port);
  EXPECT_EQ(err("10.0.0.0/33"), errc::bad_cidr);
  EXPECT_EQ(err("10.0.0.1/8"), errc::bad_cidr);  // host bits set
  EXPECT_EQ(err("10.0.0.0/"), errc::bad_cidr);
  EXPECT_EQ(err("10.0.0.0/x"), errc::bad_cidr);
  EXPECT_EQ(err("2001:db8::/129"), errc::bad_cidr);
  EXPECT_EQ(err("300.1.1.1"), errc::bad_host);     // all-numeric: never a name
  EXPECT_EQ(err("[10.0.0.1]:443"), errc::bad_ip);  // brackets are for IPv6
  EXPECT_EQ(err("[2001:db8::1"), errc::bad_ip);
  EXPECT_EQ(err("[::1]443"), errc::bad_port);
  EXPECT_EQ(err("2001:db8::zz"), errc::bad_ip);
  EXPECT_EQ(err("a.*.example.com"), errc::bad_wildcard);
  EXPECT_EQ(err("*."), errc::bad_wildcard);
  EXPECT_EQ(err("**.example.com"), errc::bad_wildcard);
  EXPECT_EQ(err("*..example.com"), errc::bad_host);
  EXPECT_EQ(err("bad host.example"), errc::bad_host);
  EXPECT_EQ(err("host..example"), errc::bad_host);
  EXPECT_EQ(err(std::string(64, 'a') + ".example"), errc::bad_host);
  EXPECT_EQ(err("127.1"), errc::bad_host);
  EXPECT_EQ(err("0x7f.1"), errc::bad_host);
  EXPECT_EQ(err("\xff\xfe.example"), errc::bad_idn);
}

TEST(Destination, ErrorMessagesSayWhatWasExpected) {
  EXPECT_NE(make_error_code(errc::port_out_of_range).message().find("1-65535"), std::string::npos);
  EXPECT_NE(make_error_code(errc::bad_cidr).message().find("prefix"), std::string::npos);
  EXPECT_STREQ(dtr_category().name(), "dtr");
}

TEST(NormalizeHost, AcceptsNamesRefusesAddressesAndJunk) {
  EXPECT_EQ(normalize_host("WWW.Example.COM.").value(), "www.example.com");
  EXPECT_EQ(normalize_host("_sip._tcp.example.com").value(), "_sip._tcp.example.com");
  EXPECT_EQ(normalize_host("123.example").value(), "123.example");
  EXPECT_EQ(normalize_host("Ünïcödé.example").value(), "xn--ncd-dma1a7bzb.example");
  EXPECT_FALSE(normalize_host(""));
  EXPECT_FALSE(normalize_host("."));
  EXPECT_FALSE(normalize_host("a..b"));
  EXPECT_FALSE(normalize_host("10.0.0.1"));
  EXPECT_FALSE(normalize_host("example.0x1f"));
  EXPECT_FALSE(normalize_host(std::string(254, 'a')));
  EXPECT_FALSE(normalize_host("host/path"));
}

TEST(NormalizeMapped, Ipv4InsideIpv6BecomesIpv4AndNothingElseChanges) {
  auto norm = [](std::string_view s) { return normalize_mapped(parse_ip(s).value()); };
  const auto v4 = parse_ip("192.0.2.1").value();
  // parse_ip keeps the address as written; normalize_mapped gives the one evaluate() decides on.
  EXPECT_TRUE(parse_ip("::ffff:192.0.2.1")->v6);
  EXPECT_EQ(norm("::ffff:192.0.2.1"), v4);
  EXPECT_EQ(norm("::ffff:c000:201"), v4);
  EXPECT_EQ(norm("[0:0:0:0:0:FFFF:192.0.2.1]"), v4);
  EXPECT_EQ(norm("::192.0.2.1"), v4);
  EXPECT_EQ(norm("::c000:201"), v4);
  EXPECT_EQ(norm("192.0.2.1"), v4);
  EXPECT_FALSE(norm("::2").v6);
  EXPECT_FALSE(norm("::ffff:0:0").v6);
  EXPECT_FALSE(norm("::ffff:0:1").v6);
  EXPECT_EQ(norm("::ffff:0:1"), parse_ip("0.0.0.1").value());
  EXPECT_EQ(norm("::ffff:ffff:ffff"), parse_ip("255.255.255.255").value());
  for (auto s : {"::", "::1", "::0.0.0.1", "2001:db8::1", "::fffe:c000:201", "::1:c000:201",
                 "::ffff:1:c000:201", "64:ff9b::c000:201", "2002:c000:201::", "fe80::ffff:c000:201",
                 "ffff::c000:201"}) {
    EXPECT_EQ(norm(s), parse_ip(s).value()) << s;
    EXPECT_TRUE(norm(s).v6) << s;
  }
  // The IPv4 result is a plain IPv4 address: compares equal to one parsed from dotted form.
  EXPECT_EQ(norm("::ffff:10.1.2.3").bits(), 32U);
  EXPECT_EQ(norm("::ffff:10.1.2.3"), parse_ip("10.1.2.3").value());
}

TEST(ParseIp, OnlyCanonicalLiterals) {
  EXPECT_TRUE(parse_ip("127.0.0.1"));
  EXPECT_TRUE(parse_ip("[::1]"));
  EXPECT_TRUE(parse_ip("::ffff:192.0.2.1"));
  EXPECT_FALSE(parse_ip("127.1"));
  EXPECT_FALSE(parse_ip("0x7f.0.0.1"));
  EXPECT_FALSE(parse_ip("fe80::1%eth0"));
  EXPECT_FALSE(parse_ip("example.com"));
  EXPECT_FALSE(parse_ip(""));
}

}  // namespace
}  // namespace tunnelgate::dtr
