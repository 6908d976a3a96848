// The DNS mapped-pool table: stable addresses, expiry on an injected clock, flows keeping
// entries alive, eviction and exhaustion, and the DNAT change lists.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "gateway/vpn/dns_map.hpp"

using boost::asio::ip::address;
using boost::asio::ip::make_address;
using boost::asio::ip::make_address_v4;
using boost::asio::ip::make_network_v4;
using tunnelgate::gateway::vpn::dns_map;
using tunnelgate::gateway::vpn::dns_map_change;
using tunnelgate::gateway::vpn::rule_ref;
using namespace std::chrono_literals;
using kind = dns_map_change::kind;

namespace {

struct fake_clock {
  dns_map::clock::time_point t{};
  dns_map::now_fn fn() {
    return [this] { return t; };
  }
};

std::vector<address> real(std::initializer_list<const char*> list) {
  std::vector<address> v;
  for (const auto* a : list)
    v.push_back(make_address(a));
  return v;
}

const rule_ref okta{"full-device-macos", 3, 42};

dns_map small_map(fake_clock& clock, std::chrono::seconds linger = 60s) {
  dns_map::options o;
  o.pool = make_network_v4("100.64.0.0/29");  // .1-.6
  o.linger = linger;
  return dns_map(o, clock.fn());
}

}  // namespace

TEST(DnsMap, SameNameGetsTheSameAddress) {
  fake_clock clock;
  dns_map m({}, clock.fn());
  EXPECT_EQ(m.pool().to_string(), "100.64.0.0/16");
  EXPECT_EQ(m.capacity(), 65534u);
  const auto a = m.map("login.okta.com", real({"203.0.113.10"}), okta, 30s);
  ASSERT_EQ(a.err, dns_map::error::none);
  EXPECT_EQ(a.mapped.to_string(), "100.64.0.1");
  ASSERT_EQ(a.changes.size(), 1u);
  EXPECT_EQ(a.changes[0].what, kind::add);
  EXPECT_EQ(a.changes[0].mapped, a.mapped);
  EXPECT_EQ(a.changes[0].real, real({"203.0.113.10"}));
  EXPECT_EQ(a.changes[0].name, "login.okta.com");
  // Case and a trailing dot do not make another name; the same answer changes nothing.
  const auto again = m.map("LOGIN.Okta.COM.", real({"203.0.113.10"}), okta, 30s);
  EXPECT_EQ(again.mapped, a.mapped);
  EXPECT_TRUE(again.changes.empty());
  const auto other = m.map("portal.okta.com", real({"203.0.113.11"}), okta, 30s);
  EXPECT_NE(other.mapped, a.mapped);
  EXPECT_EQ(m.size(), 2u);
}

TEST(DnsMap, MappedAddressLeadsBackToNameAddressesAndRule) {
  fake_clock clock;
  dns_map m({}, clock.fn());
  const auto a = m.map("login.okta.com", real({"203.0.113.10", "2001:db8::10"}), okta, 30s);
  const auto e = m.lookup(a.mapped);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->name, "login.okta.com");
  EXPECT_EQ(e->real, real({"203.0.113.10", "2001:db8::10"}));
  EXPECT_EQ(e->rule, okta);
  EXPECT_EQ(e->expires, clock.t + 30s);
  EXPECT_EQ(e->open_flows, 0u);
  EXPECT_TRUE(m.find("Login.okta.com."));
  EXPECT_FALSE(m.lookup(make_address_v4("100.64.0.200")));
  EXPECT_TRUE(m.in_pool(make_address_v4("100.64.200.1")));
  EXPECT_FALSE(m.in_pool(make_address_v4("100.65.0.1")));
}

TEST(DnsMap, NewAddressesOrRuleRefreshTheEntry) {
  fake_clock clock;
  dns_map m({}, clock.fn());
  const auto a = m.map("login.okta.com", real({"203.0.113.10"}), okta, 30s);
  const rule_ref reloaded{"full-device-macos", 1, 7};
  const auto b = m.map("login.okta.com", real({"203.0.113.99"}), reloaded, 30s);
  EXPECT_EQ(b.mapped, a.mapped);
  ASSERT_EQ(b.changes.size(), 1u);
  EXPECT_EQ(b.changes[0].what, kind::update);
  EXPECT_EQ(b.changes[0].real, real({"203.0.113.99"}));
  EXPECT_EQ(m.lookup(a.mapped)->rule, reloaded);
}

TEST(DnsMap, EntriesExpireAfterTheTtl) {
  fake_clock clock;
  auto m = small_map(clock);
  const auto a = m.map("a.example", real({"192.0.2.1"}), okta, 30s);
  clock.t += 29s;
  EXPECT_TRUE(m.expire().empty());
  // A later answer with a shorter TTL never shortens the entry's life.
  m.map("a.example", real({"192.0.2.1"}), okta, 0s);
  clock.t += 1s;  // now = answer + 30 s
  const auto gone = m.expire();
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].what, kind::remove);
  EXPECT_EQ(gone[0].mapped, a.mapped);
  EXPECT_EQ(gone[0].name, "a.example");
  EXPECT_TRUE(gone[0].real.empty());
  EXPECT_FALSE(m.lookup(a.mapped));
  EXPECT_EQ(m.size(), 0u);
  EXPECT_TRUE(m.expire().empty());
}

TEST(DnsMap, AFreshAnswerExtendsTheEntry) {
  fake_clock clock;
  auto m = small_map(clock);
  const auto a = m.map("a.example", real({"192.0.2.1"}), okta, 30s);
  clock.t += 20s;
  m.map("a.example", real({"192.0.2.1"}), okta, 30s);  // now expires at 50 s
  clock.t += 20s;
  EXPECT_TRUE(m.expire().empty());
  EXPECT_EQ(m.lookup(a.mapped)->expires, dns_map::clock::time_point{} + 50s);
}

TEST(DnsMap, OpenFlowsKeepTheEntryAliveAndLingerAfterwards) {
  fake_clock clock;
  auto m = small_map(clock, 60s);
  const auto a = m.map("a.example", real({"192.0.2.1"}), okta, 10s);
  auto f1 = m.open_flow(a.mapped);
  auto f2 = m.open_flow(a.mapped);
  ASSERT_TRUE(f1);
  EXPECT_EQ(f1.mapping().name, "a.example");
  EXPECT_EQ(f1.mapping().real, real({"192.0.2.1"}));
  EXPECT_EQ(f1.mapping().rule, okta);
  EXPECT_EQ(m.lookup(a.mapped)->open_flows, 2u);
  clock.t += 1h;
  EXPECT_TRUE(m.expire().empty());  // long past the TTL, but flows are open
  f1.close();
  EXPECT_TRUE(m.expire().empty());
  clock.t += 10s;
  f2 = dns_map::flow{};  // the last flow ends at 1h10s: the entry lingers until 1h11m10s
  EXPECT_EQ(m.lookup(a.mapped)->expires, dns_map::clock::time_point{} + 1h + 10s + 60s);
  clock.t += 59s;
  EXPECT_TRUE(m.expire().empty());
  clock.t += 1s;
  EXPECT_EQ(m.expire().size(), 1u);
}

TEST(DnsMap, AnExpiredEntryNotYetCollectedIsStillMapped) {
  fake_clock clock;
  auto m = small_map(clock);
  const auto a = m.map("a.example", real({"192.0.2.1"}), okta, 10s);
  clock.t += 20s;
  // Until expire() reports the removal, the DNAT entry exists: the table agrees.
  auto f = m.open_flow(a.mapped);
  EXPECT_TRUE(f);
  const auto again = m.map("a.example", real({"192.0.2.1"}), okta, 10s);
  EXPECT_EQ(again.mapped, a.mapped);
  EXPECT_TRUE(again.changes.empty());
}

TEST(DnsMap, ExhaustionEvictsOnlyExpiredEntries) {
  fake_clock clock;
  auto m = small_map(clock);
  ASSERT_EQ(m.capacity(), 6u);
  std::vector<boost::asio::ip::address_v4> mapped;
  for (int i = 0; i < 6; ++i) {
    // n0 expires last: it is answered again below; n1 expires first.
    mapped.push_back(
        m.map("n" + std::to_string(i) + ".example", real({"192.0.2.1"}), okta, 30s).mapped);
    clock.t += 1s;
  }
  m.map("n0.example", real({"192.0.2.1"}), okta, 30s);
  const auto full = m.map("new.example", real({"192.0.2.7"}), okta, 30s);
  EXPECT_EQ(full.err, dns_map::error::exhausted)
      << "no answer a device may still hold is taken back";
  clock.t = dns_map::clock::time_point{} + 31s;  // n1 (answered at 1 s for 30 s) has expired
  const auto r = m.map("new.example", real({"192.0.2.7"}), okta, 30s);
  ASSERT_EQ(r.err, dns_map::error::none);
  ASSERT_EQ(r.changes.size(), 2u);
  EXPECT_EQ(r.changes[0].what, kind::remove);
  EXPECT_EQ(r.changes[0].name, "n1.example");
  EXPECT_EQ(r.changes[1].what, kind::add);
  EXPECT_EQ(r.changes[1].name, "new.example");
  EXPECT_EQ(r.mapped, mapped[1]);  // the only free address: reused at once
  EXPECT_FALSE(m.find("n1.example"));
  EXPECT_TRUE(m.find("n0.example"));
}

TEST(DnsMap, AnAddressWithOpenFlowsKeepsItsTarget) {
  fake_clock clock;
  auto m = small_map(clock);
  const auto a = m.map("a.example", real({"192.0.2.1"}), okta, 30s);
  auto f = m.open_flow(a.mapped);
  const auto again = m.map("a.example", real({"10.1.2.3"}), okta, 30s);
  EXPECT_EQ(again.mapped, a.mapped);
  EXPECT_TRUE(again.changes.empty()) << "not re-pointed under an open flow";
  EXPECT_EQ(m.lookup(a.mapped)->real, real({"192.0.2.1"}));
  f.close();
  const auto later = m.map("a.example", real({"10.1.2.3"}), okta, 30s);
  ASSERT_EQ(later.changes.size(), 1u);
  EXPECT_EQ(later.changes[0].what, kind::update);
  EXPECT_EQ(m.lookup(a.mapped)->real, real({"10.1.2.3"}));
}

TEST(DnsMap, EntriesWithFlowsAreNeverEvicted) {
  fake_clock clock;
  auto m = small_map(clock);
  std::vector<dns_map::flow> flows;
  for (int i = 0; i < 6; ++i) {
    const auto r = m.map("n" + std::to_string(i) + ".example", real({"192.0.2.1"}), okta, 1s);
    flows.push_back(m.open_flow(r.mapped));
  }
  clock.t += 1h;
  const auto r = m.map("new.example", real({"192.0.2.7"}), okta, 30s);
  EXPECT_EQ(r.err, dns_map::error::exhausted);  // the DNS server answers SERVFAIL
  EXPECT_TRUE(r.changes.empty());
  EXPECT_EQ(m.size(), 6u);
  flows[4].close();  // n4 has no flow now; it lingers, then it is past its expiry
  clock.t += 2h;
  const auto r2 = m.map("new.example", real({"192.0.2.7"}), okta, 30s);
  ASSERT_EQ(r2.err, dns_map::error::none);
  EXPECT_EQ(r2.changes[0].name, "n4.example");
}

TEST(DnsMap, ReleasedAddressesAreNotReusedAtOnce) {
  fake_clock clock;
  auto m = small_map(clock);
  const auto a = m.map("a.example", real({"192.0.2.1"}), okta, 1s);
  clock.t += 2s;
  ASSERT_EQ(m.expire().size(), 1u);
  // A device may still send to a.example's old address; another name does not get it yet.
  const auto b = m.map("b.example", real({"192.0.2.2"}), okta, 1s);
  EXPECT_NE(b.mapped, a.mapped);
}

TEST(DnsMap, RefusesBadNamesAndEmptyAnswers) {
  fake_clock clock;
  auto m = small_map(clock);
  for (const auto* bad : {"", ".", "a..b", "a b.example", "ex\xc3\xa4mple.com", "-\x01",
                          "a.example..", "*.example.com"}) {
    EXPECT_EQ(m.map(bad, real({"192.0.2.1"}), okta, 1s).err, dns_map::error::bad_name) << bad;
  }
  EXPECT_EQ(m.map(std::string(64, 'a') + ".example", real({"192.0.2.1"}), okta, 1s).err,
            dns_map::error::bad_name);
  EXPECT_EQ(m.map("a.example", {}, okta, 1s).err, dns_map::error::no_addresses);
  EXPECT_EQ(m.size(), 0u);
  EXPECT_EQ(dns_map::normalise_name("Login.Okta.COM."), "login.okta.com");
  EXPECT_EQ(dns_map::normalise_name("_sip._tcp.example"), "_sip._tcp.example");
  EXPECT_EQ(dns_map::normalise_name(std::string(63, 'a') + ".b"), std::string(63, 'a') + ".b");
}

TEST(DnsMap, ReservedAddressesAreNotUsed) {
  fake_clock clock;
  dns_map::options o;
  o.pool = make_network_v4("100.64.0.0/29");
  o.reserved = {make_address_v4("100.64.0.1")};
  dns_map m(o, clock.fn());
  EXPECT_EQ(m.capacity(), 5u);
  EXPECT_EQ(m.map("a.example", real({"192.0.2.1"}), okta, 1s).mapped.to_string(), "100.64.0.2");
}

TEST(DnsMap, OpenFlowOnAnUnknownAddressIsEmpty) {
  fake_clock clock;
  auto m = small_map(clock);
  EXPECT_FALSE(m.open_flow(make_address_v4("100.64.0.3")));
  EXPECT_FALSE(m.open_flow(make_address_v4("8.8.8.8")));
}

TEST(DnsMap, AFlowMayOutliveTheTable) {
  fake_clock clock;
  dns_map::flow f;
  {
    auto m = small_map(clock);
    f = m.open_flow(m.map("a.example", real({"192.0.2.1"}), okta, 1s).mapped);
  }
  EXPECT_TRUE(f);
  f.close();
}

TEST(DnsMap, ConcurrentMapsFlowsAndExpiry) {
  std::atomic<std::int64_t> now_s{0};
  dns_map::options o;
  o.pool = make_network_v4("100.64.0.0/27");  // 30 addresses for 40 names: evictions happen
  o.linger = 1s;
  dns_map m(o, [&] { return dns_map::clock::time_point{} + std::chrono::seconds(now_s.load()); });
  std::atomic<int> inconsistent{0};
  auto worker = [&](int id) {
    for (int i = 0; i < 2000; ++i) {
      const auto name = "n" + std::to_string((i * 7 + id) % 40) + ".example";
      const auto r = m.map(name, real({"192.0.2.1"}), okta, 2s);
      if (r.err != dns_map::error::none) continue;
      auto f = m.open_flow(r.mapped);
      // Between map() and open_flow() another thread may have evicted the name and given the
      // address to another; a flow that opened holds a consistent entry for that address.
      if (f &&
          (f.mapping().mapped != r.mapped || f.mapping().real.empty() || !m.lookup(r.mapped))) {
        ++inconsistent;
      }
      if (id == 0 && i % 50 == 0) {
        ++now_s;
        m.expire();
      }
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back(worker, t);
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(inconsistent.load(), 0);
  now_s += 100;
  m.expire();
  EXPECT_EQ(m.size(), 0u);
}

TEST(DnsMap, ErrorSpellings) {
  EXPECT_EQ(dns_map::to_string(dns_map::error::none), "ok");
  EXPECT_EQ(dns_map::to_string(dns_map::error::bad_name), "bad_name");
  EXPECT_EQ(dns_map::to_string(dns_map::error::no_addresses), "no_addresses");
  EXPECT_EQ(dns_map::to_string(dns_map::error::exhausted), "exhausted");
}
