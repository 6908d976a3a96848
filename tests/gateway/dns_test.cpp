// The stub resolver's wire format: queries we build and answers we accept or refuse. Answers
// are built here byte by byte, the way a hostile or broken name server could send them.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gateway/dns.hpp"

namespace tunnelgate::gateway::dns {
namespace {

using bytes = std::vector<std::uint8_t>;

bytes name_bytes(const std::string& name) {
  bytes out;
  std::size_t start = 0;
  while (start < name.size()) {
    auto dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    out.push_back(static_cast<std::uint8_t>(dot - start));
    out.insert(out.end(), name.begin() + static_cast<long>(start),
               name.begin() + static_cast<long>(dot));
    start = dot + 1;
  }
  out.push_back(0);
  return out;
}

void u16(bytes& b, unsigned v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v & 0xff));
}

bytes record(const bytes& owner, unsigned type, const bytes& rdata) {
  bytes b = owner;
  u16(b, type);
  u16(b, 1);  // IN
  u16(b, 0);
  u16(b, 60);  // TTL
  u16(b, static_cast<unsigned>(rdata.size()));
  b.insert(b.end(), rdata.begin(), rdata.end());
  return b;
}

struct reply {
  std::uint16_t id = 0x1234;
  unsigned flags = 0x8180;  // QR RD RA, NOERROR
  std::string qname = "ok.dns.test";
  unsigned qtype = 1;
  std::vector<bytes> answers;
  bytes build() const {
    bytes b;
    u16(b, id);
    u16(b, flags);
    u16(b, 1);
    u16(b, static_cast<unsigned>(answers.size()));
    u16(b, 0);
    u16(b, 0);
    const auto q = name_bytes(qname);
    b.insert(b.end(), q.begin(), q.end());
    u16(b, qtype);
    u16(b, 1);
    for (const auto& a : answers)
      b.insert(b.end(), a.begin(), a.end());
    return b;
  }
};

TEST(DnsQuery, WireFormat) {
  const auto q = make_query(0xabcd, "Ok.DNS.test.", rr_type::aaaa);
  bytes want = {0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  const auto n = name_bytes("ok.dns.test");
  want.insert(want.end(), n.begin(), n.end());
  want.insert(want.end(), {0, 28, 0, 1});
  EXPECT_EQ(q, want);
}

TEST(DnsQuery, RefusesNamesDnsCannotCarry) {
  EXPECT_TRUE(make_query(1, "", rr_type::a).empty());
  EXPECT_TRUE(make_query(1, "a..b", rr_type::a).empty());
  EXPECT_TRUE(make_query(1, std::string(64, 'x') + ".test", rr_type::a).empty());
  EXPECT_TRUE(make_query(1,
                         std::string(200, 'x').insert(60, ".").insert(120, ".") + "." +
                             std::string(60, 'y'),
                         rr_type::a)
                  .empty());
  EXPECT_FALSE(make_query(1, std::string(63, 'x') + ".test", rr_type::a).empty());
}

TEST(DnsAnswer, AddressesOfTheName) {
  reply r;
  r.answers.push_back(record(name_bytes("ok.dns.test"), 1, {127, 0, 0, 1}));
  r.answers.push_back(record(name_bytes("OK.dns.test"), 1, {10, 1, 2, 3}));
  const auto b = r.build();
  const auto a = parse_answer(b, 0x1234, "ok.dns.test", rr_type::a);
  ASSERT_EQ(a.result, answer::kind::addresses) << a.detail;
  ASSERT_EQ(a.addresses.size(), 2u);
  EXPECT_EQ(a.addresses[0].to_string(), "127.0.0.1");
  EXPECT_EQ(a.addresses[1].to_string(), "10.1.2.3");
}

TEST(DnsAnswer, FollowsCnameWithCompressionAndDropsStrayRecords) {
  reply r;
  r.qname = "alias.dns.test";
  // CNAME rdata "ok" + pointer to "dns.test" inside the question (offset 12 + 6).
  r.answers.push_back(record({0xc0, 12}, 5, {2, 'o', 'k', 0xc0, 18}));
  r.answers.push_back(record(name_bytes("ok.dns.test"), 1, {127, 0, 0, 9}));
  r.answers.push_back(record(name_bytes("evil.test"), 1, {6, 6, 6, 6}));
  r.answers.push_back(record({0xc0, 12}, 1, {7, 7, 7, 7}));  // the alias itself: not the target
  const auto b = r.build();
  const auto a = parse_answer(b, 0x1234, "alias.dns.test", rr_type::a);
  ASSERT_EQ(a.result, answer::kind::addresses) << a.detail;
  ASSERT_EQ(a.addresses.size(), 1u);
  EXPECT_EQ(a.addresses[0].to_string(), "127.0.0.9");
}

TEST(DnsAnswer, CnameLoopEndsWithoutAddresses) {
  reply r;
  r.qname = "a.test";
  r.answers.push_back(record(name_bytes("a.test"), 5, name_bytes("b.test")));
  r.answers.push_back(record(name_bytes("b.test"), 5, name_bytes("a.test")));
  const auto b = r.build();
  const auto a = parse_answer(b, 0x1234, "a.test", rr_type::a);
  EXPECT_EQ(a.result, answer::kind::addresses);
  EXPECT_TRUE(a.addresses.empty());
}

TEST(DnsAnswer, Aaaa) {
  reply r;
  r.qtype = 28;
  bytes v6(16, 0);
  v6[15] = 1;
  r.answers.push_back(record(name_bytes("ok.dns.test"), 28, v6));
  r.answers.push_back(record(name_bytes("ok.dns.test"), 1, {1, 2, 3, 4}));  // wrong type: ignored
  const auto b = r.build();
  const auto a = parse_answer(b, 0x1234, "ok.dns.test", rr_type::aaaa);
  ASSERT_EQ(a.addresses.size(), 1u);
  EXPECT_EQ(a.addresses[0].to_string(), "::1");
}

TEST(DnsAnswer, RcodesAndFlags) {
  reply r;
  r.flags = 0x8183;
  EXPECT_EQ(parse_answer(r.build(), 0x1234, "ok.dns.test", rr_type::a).result,
            answer::kind::no_name);
  r.flags = 0x8182;
  EXPECT_EQ(parse_answer(r.build(), 0x1234, "ok.dns.test", rr_type::a).result,
            answer::kind::failure);
  r.flags = 0x8185;
  EXPECT_EQ(parse_answer(r.build(), 0x1234, "ok.dns.test", rr_type::a).result,
            answer::kind::failure);
  r.flags = 0x8380;  // TC
  EXPECT_EQ(parse_answer(r.build(), 0x1234, "ok.dns.test", rr_type::a).result,
            answer::kind::truncated);
  r.flags = 0x0100;  // a query, not an answer
  EXPECT_EQ(parse_answer(r.build(), 0x1234, "ok.dns.test", rr_type::a).result,
            answer::kind::malformed);
}

TEST(DnsAnswer, RefusesAnswersToOtherQuestions) {
  reply r;
  r.answers.push_back(record(name_bytes("ok.dns.test"), 1, {127, 0, 0, 1}));
  const auto b = r.build();
  EXPECT_EQ(parse_answer(b, 0x4321, "ok.dns.test", rr_type::a).result, answer::kind::malformed);
  EXPECT_EQ(parse_answer(b, 0x1234, "other.dns.test", rr_type::a).result, answer::kind::malformed);
  EXPECT_EQ(parse_answer(b, 0x1234, "ok.dns.test", rr_type::aaaa).result, answer::kind::malformed);
}

TEST(DnsAnswer, GarbageNeverCrashes) {
  reply r;
  r.answers.push_back(record(name_bytes("ok.dns.test"), 1, {127, 0, 0, 1}));
  r.answers.push_back(record(name_bytes("ok.dns.test"), 5, {0xc0, 0xff}));  // pointer out of range
  const auto good = r.build();
  // Every truncation and every single-byte corruption of a valid answer: parse, never crash,
  // and never report an address that was not in the message.
  for (std::size_t n = 0; n < good.size(); ++n) {
    const std::vector<std::uint8_t> cut(good.begin(), good.begin() + static_cast<long>(n));
    const auto a = parse_answer(cut, 0x1234, "ok.dns.test", rr_type::a);
    EXPECT_NE(a.result, answer::kind::addresses) << "cut at " << n;
  }
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (unsigned v : {0x00u, 0x3fu, 0xc0u, 0xffu}) {
      auto bad = good;
      bad[i] = static_cast<std::uint8_t>(v);
      const auto a = parse_answer(bad, 0x1234, "ok.dns.test", rr_type::a);
      for (const auto& addr : a.addresses)
        EXPECT_EQ(addr.to_string().rfind("127.", 0), 0u) << "byte " << i;
    }
  }
}

// ---- the server side: queries in, responses out ------------------------------------------------

TEST(DnsServer, ParsesAQueryFromTheStub) {
  const auto q = parse_query(make_query(0xbeef, "Login.Okta.TEST.", rr_type::aaaa));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->id, 0xbeef);
  EXPECT_EQ(q->name, "login.okta.test");
  EXPECT_EQ(q->type, 28);
  EXPECT_TRUE(q->recursion_desired);
}

TEST(DnsServer, RefusesWhatIsNotAQuery) {
  auto answer_bytes =
      make_response({1, "a.test", 1, false}, 0, {net::ip::make_address("127.0.0.1")}, 60);
  EXPECT_FALSE(parse_query(answer_bytes)) << "a response is not a query";
  auto q = make_query(7, "a.test", rr_type::a);
  q[2] |= 0x78;  // opcode 15
  EXPECT_FALSE(parse_query(q));
  auto two = make_query(7, "a.test", rr_type::a);
  two[5] = 2;  // QDCOUNT 2 with one question present
  EXPECT_FALSE(parse_query(two));
  EXPECT_FALSE(parse_query(bytes{}));
  EXPECT_FALSE(parse_query(bytes(11, 0)));
  const auto good = make_query(7, "a.test", rr_type::a);
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(parse_query(bytes(good.begin(), good.begin() + static_cast<long>(n))))
        << "cut at " << n;
  }
}

TEST(DnsServer, ResponsesParseAsAnswersToTheQuestion) {
  const question q{0x1234, "x.okta.test", 1, true};
  const std::vector<net::ip::address> addrs{net::ip::make_address("100.64.0.7"),
                                            net::ip::make_address("::1"),
                                            net::ip::make_address("100.64.0.8")};
  const auto msg = make_response(q, 0, addrs, 60);
  const auto a = parse_answer(msg, 0x1234, "x.okta.test", rr_type::a);
  ASSERT_EQ(a.result, answer::kind::addresses) << a.detail;
  ASSERT_EQ(a.addresses.size(), 2u) << "only the A records for an A question";
  EXPECT_EQ(a.addresses[0].to_string(), "100.64.0.7");
  EXPECT_EQ(a.addresses[1].to_string(), "100.64.0.8");
  const question q6{9, "x.okta.test", 28, false};
  const auto a6 = parse_answer(make_response(q6, 0, addrs, 60), 9, "x.okta.test", rr_type::aaaa);
  ASSERT_EQ(a6.addresses.size(), 1u);
  EXPECT_EQ(a6.addresses[0].to_string(), "::1");
  EXPECT_EQ(parse_answer(make_response(q, 3, {}, 60), 0x1234, "x.okta.test", rr_type::a).result,
            answer::kind::no_name);
  EXPECT_EQ(parse_answer(make_response(q, 5, {}, 60), 0x1234, "x.okta.test", rr_type::a).result,
            answer::kind::failure);
  const auto empty = parse_answer(make_response(q, 0, {}, 60), 0x1234, "x.okta.test", rr_type::a);
  EXPECT_EQ(empty.result, answer::kind::addresses);
  EXPECT_TRUE(empty.addresses.empty());
}

}  // namespace
}  // namespace tunnelgate::gateway::dns
