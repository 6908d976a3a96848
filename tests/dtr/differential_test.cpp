// The compiled matcher against the linear reference (tests/support/linear_dtr.hpp) on random
// rule sets drawn from a small alphabet, so that suffixes, label boundaries, overlapping CIDRs
// and port ranges collide often. Any disagreement prints the rule set and the flow.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "dtr/dtr.hpp"
#include "support/linear_dtr.hpp"

namespace tunnelgate::dtr {
namespace {

class generator {
 public:
  explicit generator(unsigned seed) : rng_(seed) {}

  std::string host() {
    static const char* labels[] = {"a", "b", "ab", "ba", "xa", "okta", "xokta", "login"};
    static const char* tlds[] = {"com", "net"};
    std::string h;
    const int n = pick(1, 3);
    for (int i = 0; i < n; ++i)
      h += std::string(labels[pick(0, 7)]) + ".";
    return h + tlds[pick(0, 1)];
  }

  std::string v4() {
    return "10." + std::to_string(pick(0, 3)) + "." + std::to_string(pick(0, 3)) + "." +
           std::to_string(pick(0, 7));
  }
  std::string v6() {
    return "2001:db8:" + std::to_string(pick(0, 3)) + "::" + std::to_string(pick(0, 7));
  }

  /// The IPv4 address `v4text` as an IPv4-mapped or IPv4-compatible IPv6 literal, in one of the
  /// spellings a client may send, or one of the addresses next to those ranges.
  std::string mapped(const std::string& v4text) {
    const auto a = parse_ip(v4text).value();
    char hex[32];
    std::snprintf(hex, sizeof hex, "%x:%x", (a.bytes[0] << 8) | a.bytes[1],
                  (a.bytes[2] << 8) | a.bytes[3]);
    switch (pick(0, 6)) {
      case 0:
        return "::ffff:" + v4text;
      case 1:
        return "::FFFF:" + std::string(hex);
      case 2:
        return "[0:0:0:0:0:ffff:" + v4text + "]";
      case 3:
        return "::" + v4text;  // IPv4-compatible
      case 4:
        return "::" + std::string(hex);
      default: {
        static const char* near[] = {"::",           "::1",       "::2",           "::ffff:0:0",
                                     "::fffe:a00:1", "::1:a00:1", "::ffff:1:a00:1"};
        return near[pick(0, 6)];
      }
    }
  }

  std::uint16_t port() {
    static const std::uint16_t ports[] = {1, 22, 80, 443, 1024, 8443, 65535};
    return ports[pick(0, 6)];
  }

  std::string ports_suffix() {
    switch (pick(0, 3)) {
      case 0:
        return ":" + std::to_string(port());
      case 1: {
        auto a = port(), b = port();
        if (a > b) std::swap(a, b);
        return ":" + std::to_string(a) + "-" + std::to_string(b);
      }
      default:
        return "";
    }
  }

  /// A masked IPv4 network of this alphabet: (address text, prefix).
  std::pair<std::string, int> v4_network() {
    const int prefix = pick(8, 32);
    auto net = parse_ip(v4()).value();
    for (int bit = prefix; bit < 32; ++bit)
      net.bytes[bit / 8] &= static_cast<std::uint8_t>(~(1U << (7 - bit % 8)));
    destination x;
    x.k = destination::kind::cidr;
    x.network = net;
    x.prefix = 32;
    return {x.text(), prefix};
  }

  std::string destination_text() {
    const auto ports = ports_suffix();
    switch (pick(0, 10)) {
      case 0:
      case 1:
        return host() + ports;
      case 2:
      case 3: {  // string suffix, possibly starting mid-label
        const auto h = host();
        return "*" + h.substr(static_cast<std::size_t>(pick(0, static_cast<int>(h.size()) - 2))) +
               ports;
      }
      case 4:
      case 5: {  // label suffix
        auto h = host();
        const auto dot = h.find('.');
        return "*" + h.substr(dot) + ports;
      }
      case 6:
        return "*" + ports;
      case 7: {
        const int prefix = pick(8, 32);
        auto d = parse_destination(v4());
        auto net = d.value().network;
        for (int bit = prefix; bit < 32; ++bit)
          net.bytes[bit / 8] &= static_cast<std::uint8_t>(~(1U << (7 - bit % 8)));
        destination x;
        x.k = destination::kind::cidr;
        x.network = net;
        x.prefix = static_cast<unsigned>(prefix);
        return x.text() + ports;
      }
      case 8: {
        const int prefix = pick(32, 128);
        auto net = parse_ip(v6()).value();
        for (int bit = prefix; bit < 128; ++bit)
          net.bytes[bit / 8] &= static_cast<std::uint8_t>(~(1U << (7 - bit % 8)));
        destination x;
        x.k = destination::kind::cidr;
        x.network = net;
        x.prefix = static_cast<unsigned>(prefix);
        const auto t = x.text();
        return ports.empty() ? t : "[" + t + "]" + ports;
      }
      case 9:
        return v4() + ports;
      default: {  // IPv6 forms of IPv4 networks, and IPv6 networks around them
        std::string t;
        if (pick(0, 1) == 0) {
          const auto [addr, prefix] = v4_network();
          t = (pick(0, 1) ? "::ffff:" : "::") + addr + "/" + std::to_string(96 + prefix);
        } else {
          static const char* around[] = {"::/0",      "::/64", "::fffe:0:0/95", "::ffff:0:0/96",
                                         "::1",       "::",    "::/127",        "::fffe:a00:0/120",
                                         "::1:0:0/96"};
          t = around[pick(0, 8)];
        }
        return ports.empty() ? t : "[" + t + "]" + ports;
      }
    }
  }

  rule_set make_set(int rules) {
    rule_set s;
    s.name = "random";
    s.platforms = {platform::ios};
    s.m = mode::full_device;
    s.default_action = pick(0, 1) ? action::bypass : action::block;
    for (int r = 0; r < rules; ++r) {
      rule x;
      x.act = static_cast<action>(pick(0, 3) == 1 ? 0 : pick(0, 3));
      if (x.act == action::proxy) x.act = action::tunnel;
      const int n = pick(1, 3);
      for (int i = 0; i < n; ++i) {
        const auto text = destination_text();
        auto d = parse_destination(text);
        EXPECT_TRUE(d) << text;
        if (d) x.destinations.push_back(d.value());
      }
      s.rules.push_back(std::move(x));
    }
    return s;
  }

  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

 private:
  std::mt19937 rng_;
};

std::string describe(const rule_set& s) {
  std::string out;
  for (const auto& r : s.rules) {
    out += "  " + std::to_string(r.rank) + " " + std::string(to_string(r.act)) + ":";
    for (const auto& d : r.destinations)
      out += " " + d.text();
    out += "\n";
  }
  return out;
}

TEST(Differential, CompiledMatcherAgreesWithLinearScan) {
  int compared = 0;
  int matched_rules = 0;
  int mapped_matched_as_v4 = 0;
  for (unsigned seed = 1; seed <= 150; ++seed) {
    generator g(seed);
    policy_spec spec;
    spec.origin = "random";
    spec.rule_sets.push_back(g.make_set(g.pick(1, 40)));
    auto compiled = compile(spec);
    ASSERT_TRUE(compiled) << compiled.errors.front().to_string();
    const auto& set = compiled.value->spec().rule_sets[0];
    for (int q = 0; q < 400; ++q) {
      std::string host;
      switch (g.pick(0, 4)) {
        case 0:
          host = g.v4();
          break;
        case 1:
          host = g.v6();
          break;
        case 2:
          host = g.mapped(g.v4());
          break;
        default:
          host = g.host();
          break;
      }
      const auto port = g.port();
      const auto d = compiled.value->evaluate({host, port, platform::ios, ""});
      const auto ip = parse_ip(host);
      const auto want = testing::linear_decide(set, host, ip ? &*ip : nullptr, port);
      ASSERT_EQ(d.rank, want.rank) << "seed " << seed << " flow " << host << ":" << port << "\n"
                                   << describe(set);
      ASSERT_EQ(d.act, want.act);
      ++compared;
      matched_rules += d.rank != 0;
      mapped_matched_as_v4 +=
          host.find(':') != std::string::npos && d.matched != nullptr && !d.matched->network.v6;
    }
  }
  // The generator must exercise both outcomes, or the comparison proves little.
  EXPECT_GT(matched_rules, compared / 5);
  EXPECT_LT(matched_rules, compared * 4 / 5);
  EXPECT_GT(mapped_matched_as_v4, compared / 50);
}

TEST(Differential, CoveringAgreesWithBruteForce) {
  // covering(d) must list exactly the earlier destinations that match every flow d matches.
  // Check the "covers" claims on sample flows: whatever d matches, the coverer matches too.
  for (unsigned seed = 1; seed <= 60; ++seed) {
    generator g(seed);
    policy_spec spec;
    spec.origin = "random";
    spec.rule_sets.push_back(g.make_set(g.pick(2, 25)));
    auto compiled = compile(spec);
    ASSERT_TRUE(compiled);
    const auto& set = compiled.value->spec().rule_sets[0];
    for (const auto& r : set.rules) {
      for (const auto& d : r.destinations) {
        for (auto [ri, di] : compiled.value->covering(0, d, r.rank)) {
          const auto& by = set.rules[ri].destinations[di];
          ASSERT_LT(static_cast<int>(ri) + 1, r.rank);
          for (int q = 0; q < 200; ++q) {
            std::string host = g.host();
            if (d.k == destination::kind::cidr) {
              host = d.network.v6 ? g.v6() : g.pick(0, 1) ? g.v4() : g.mapped(g.v4());
            }
            const auto port = g.port();
            const auto ip = parse_ip(host);
            if (testing::linear_matches(d, host, ip ? &*ip : nullptr, port)) {
              ASSERT_TRUE(testing::linear_matches(by, host, ip ? &*ip : nullptr, port))
                  << by.text() << " claimed to cover " << d.text() << " but misses " << host << ":"
                  << port;
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace tunnelgate::dtr
