// idp addresses: normalization and containment in CIDRs and ranges, IPv4 and IPv6 edges.
#include <gtest/gtest.h>

#include "idp/idp.hpp"

namespace {

namespace idp = tunnelgate::idp;

TEST(Address, Normalize) {
  EXPECT_EQ(idp::normalize_address("127.0.0.2"), "127.0.0.2");
  EXPECT_EQ(idp::normalize_address("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
  EXPECT_EQ(idp::normalize_address("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
  EXPECT_EQ(idp::normalize_address("::"), "::");
  for (const char* bad : {"", "127.0.0.256", "1.2.3", "1.2.3.4/32", "[::1]", "fe80::1%eth0",
                          "example.com", " 1.2.3.4", "1.2.3.4 ", "01.2.3.4", "1:2:3:4:5:6:7:8:9",
                          "0000000000000000000000000000000000000000000001"}) {
    EXPECT_FALSE(idp::normalize_address(bad)) << bad;
  }
}

TEST(Address, HostCidr) {
  EXPECT_EQ(idp::host_cidr("127.0.0.2"), "127.0.0.2/32");
  EXPECT_EQ(idp::host_cidr("2001:db8::1"), "2001:db8::1/128");
}

TEST(Contains, Ipv4Cidr) {
  EXPECT_TRUE(idp::contains("127.0.0.2/32", "127.0.0.2"));
  EXPECT_FALSE(idp::contains("127.0.0.2/32", "127.0.0.3"));
  EXPECT_TRUE(idp::contains("10.0.0.0/8", "10.255.255.255"));
  EXPECT_FALSE(idp::contains("10.0.0.0/8", "11.0.0.0"));
  EXPECT_TRUE(idp::contains("0.0.0.0/0", "203.0.113.7"));
  EXPECT_TRUE(idp::contains("192.0.2.128/25", "192.0.2.255"));
  EXPECT_FALSE(idp::contains("192.0.2.128/25", "192.0.2.127"));
  EXPECT_TRUE(idp::contains("192.0.2.0/23", "192.0.3.1"));  // prefix not on a byte boundary
  EXPECT_TRUE(idp::contains("10.1.2.3/8", "10.9.9.9"));     // host bits ignored
  EXPECT_TRUE(idp::contains("127.0.0.2", "127.0.0.2"));     // bare address
}

TEST(Contains, Ipv6Cidr) {
  EXPECT_TRUE(idp::contains("2001:db8::/32", "2001:db8:ffff::1"));
  EXPECT_FALSE(idp::contains("2001:db8::/32", "2001:db9::1"));
  EXPECT_TRUE(idp::contains("2001:db8::1/128", "2001:DB8::1"));
  EXPECT_FALSE(idp::contains("2001:db8::1/128", "2001:db8::2"));
  EXPECT_TRUE(idp::contains("::/0", "::1"));
  EXPECT_TRUE(idp::contains("2001:db8::/127", "2001:db8::1"));
  EXPECT_FALSE(idp::contains("2001:db8::/127", "2001:db8::2"));
}

TEST(Contains, Ranges) {
  EXPECT_TRUE(idp::contains("10.0.0.1-10.0.0.9", "10.0.0.1"));
  EXPECT_TRUE(idp::contains("10.0.0.1-10.0.0.9", "10.0.0.9"));
  EXPECT_FALSE(idp::contains("10.0.0.1-10.0.0.9", "10.0.0.10"));
  EXPECT_FALSE(idp::contains("10.0.0.1-10.0.0.9", "10.0.0.0"));
  EXPECT_TRUE(idp::contains("10.0.0.250-10.0.1.5", "10.0.1.0"));  // across a byte boundary
  EXPECT_TRUE(idp::contains("9.255.255.255-10.0.0.0", "10.0.0.0"));
  EXPECT_TRUE(idp::contains("127.0.0.2-127.0.0.2", "127.0.0.2"));
  EXPECT_FALSE(idp::contains("10.0.0.9-10.0.0.1", "10.0.0.5"));  // low > high: malformed
  EXPECT_TRUE(idp::contains("2001:db8::1-2001:db8::ff", "2001:db8::80"));
  EXPECT_FALSE(idp::contains("2001:db8::1-2001:db8::ff", "2001:db8::100"));
  EXPECT_TRUE(idp::contains("2001:db8::ffff-2001:db8::1:0", "2001:db8::1:0"));
}

TEST(Contains, FamiliesNeverMix) {
  EXPECT_FALSE(idp::contains("0.0.0.0/0", "::1"));
  EXPECT_FALSE(idp::contains("::/0", "127.0.0.1"));
  EXPECT_FALSE(idp::contains("::ffff:0:0/96", "1.2.3.4"));  // v4-mapped is not v4
  EXPECT_FALSE(idp::contains("10.0.0.1-2001:db8::1", "10.0.0.5"));
}

TEST(Contains, MalformedContainsNothing) {
  for (const char* bad : {"", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/", "10.0.0.0/-1",
                          "10.0.0.0/8x", "10.0.0.0/0008", "a.b.c.d/8", "10.0.0.1-", "-10.0.0.1",
                          "10.0.0.1-10.0.0.2-10.0.0.3", "10.0.0.0/8/8"}) {
    EXPECT_FALSE(idp::contains(bad, "10.0.0.1")) << bad;
  }
  EXPECT_FALSE(idp::contains("10.0.0.0/8", "not-an-address"));
}

}  // namespace
