// The VPN address pool: what it skips, the order it hands addresses out in, RAII leases,
// exhaustion, IPv6 pairing, and no duplicates under concurrent use.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <thread>
#include <vector>

#include "gateway/vpn/pool.hpp"

using boost::asio::ip::make_address;
using boost::asio::ip::make_address_v4;
using boost::asio::ip::make_address_v6;
using boost::asio::ip::make_network_v4;
using boost::asio::ip::make_network_v6;
using tunnelgate::gateway::vpn::address_pool;

namespace {
std::string s(const address_pool::lease& l) {
  return l ? l.v4().to_string() : std::string("<empty>");
}
}  // namespace

TEST(AddressPool, SkipsNetworkBroadcastAndReserved) {
  address_pool pool(make_network_v4("10.8.0.0/29"),
                    {make_address("10.8.0.1"), make_address("10.8.0.7"),
                     make_address("192.0.2.1")});  // outside: ignored
  EXPECT_EQ(pool.size(), 5u);  // .1-.6 minus .1 (.7 is the broadcast address anyway)
  EXPECT_EQ(pool.available(), 5u);
  std::vector<address_pool::lease> held;
  std::vector<std::string> got;
  for (int i = 0; i < 5; ++i) {
    held.push_back(pool.allocate());
    got.push_back(s(held.back()));
  }
  EXPECT_EQ(got,
            (std::vector<std::string>{"10.8.0.2", "10.8.0.3", "10.8.0.4", "10.8.0.5", "10.8.0.6"}));
  EXPECT_FALSE(pool.allocate());
  EXPECT_EQ(pool.available(), 0u);
  EXPECT_EQ(pool.in_use(), 5u);
  EXPECT_FALSE(pool.contains(make_address_v4("10.8.0.0")));
  EXPECT_FALSE(pool.contains(make_address_v4("10.8.0.1")));
  EXPECT_TRUE(pool.contains(make_address_v4("10.8.0.2")));
  EXPECT_FALSE(pool.contains(make_address_v4("10.8.0.7")));
  EXPECT_FALSE(pool.contains(make_address_v4("10.8.0.8")));
}

TEST(AddressPool, LeastRecentlyReleasedFirstAfterFreshOnes) {
  address_pool pool(make_network_v4("10.8.0.0/29"));  // .1-.6
  auto a = pool.allocate(), b = pool.allocate(), c = pool.allocate();
  EXPECT_EQ(s(a), "10.8.0.1");
  b.release();  // .2 released first
  a.release();  // then .1
  std::vector<std::string> got;
  std::vector<address_pool::lease> held;
  for (int i = 0; i < 5; ++i) {
    held.push_back(pool.allocate());
    got.push_back(s(held.back()));
  }
  EXPECT_EQ(got,
            (std::vector<std::string>{"10.8.0.4", "10.8.0.5", "10.8.0.6", "10.8.0.2", "10.8.0.1"}));
}

TEST(AddressPool, AJustReleasedAddressIsReusedOnlyWhenNothingElseIsFree) {
  address_pool pool(make_network_v4("10.8.0.0/30"));  // .1 and .2
  auto a = pool.allocate();
  const auto first = a.v4();
  a.release();
  auto b = pool.allocate();
  EXPECT_NE(b.v4(), first);
  auto c = pool.allocate();  // the pool is now exhausted but for `first`
  EXPECT_EQ(c.v4(), first);
  EXPECT_FALSE(pool.allocate());
}

TEST(AddressPool, LeaseIsRaiiAndMoveOnly) {
  static_assert(!std::is_copy_constructible_v<address_pool::lease>);
  static_assert(std::is_nothrow_move_constructible_v<address_pool::lease>);
  address_pool pool(make_network_v4("10.8.0.0/30"));
  {
    auto l = pool.allocate();
    EXPECT_EQ(pool.available(), 1u);
  }
  EXPECT_EQ(pool.available(), 2u);
  auto l = pool.allocate();
  auto moved = std::move(l);
  EXPECT_FALSE(l);  // NOLINT(bugprone-use-after-move): the moved-from state is the contract
  EXPECT_TRUE(moved);
  EXPECT_EQ(pool.available(), 1u);
  auto other = pool.allocate();
  EXPECT_EQ(pool.available(), 0u);
  moved = std::move(other);  // the old address of `moved` goes back
  EXPECT_EQ(pool.available(), 1u);
  moved.release();
  moved.release();  // idempotent
  EXPECT_EQ(pool.available(), 2u);
}

TEST(AddressPool, AllocateAGivenAddress) {
  address_pool pool(make_network_v4("10.8.0.0/29"), {make_address("10.8.0.1")});
  auto l = pool.allocate(make_address_v4("10.8.0.5"));
  ASSERT_TRUE(l);
  EXPECT_EQ(s(l), "10.8.0.5");
  EXPECT_FALSE(pool.allocate(make_address_v4("10.8.0.5")));  // taken
  EXPECT_FALSE(pool.allocate(make_address_v4("10.8.0.1")));  // reserved
  EXPECT_FALSE(pool.allocate(make_address_v4("10.8.0.0")));  // network
  EXPECT_FALSE(pool.allocate(make_address_v4("10.8.0.7")));  // broadcast
  EXPECT_FALSE(pool.allocate(make_address_v4("10.9.0.5")));  // elsewhere
  // Taking one from the middle of the free list keeps the order of the others.
  std::vector<std::string> got;
  std::vector<address_pool::lease> held;
  while (auto next = pool.allocate()) {
    got.push_back(s(next));
    held.push_back(std::move(next));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"10.8.0.2", "10.8.0.3", "10.8.0.4", "10.8.0.6"}));
}

TEST(AddressPool, Ipv6AddressesPairWithIpv4HostNumbers) {
  address_pool pool(make_network_v4("10.8.0.0/24"),
                    {make_address("10.8.0.1"), make_address("fd00::2")},
                    make_network_v6("fd00::/64"));
  auto a = pool.allocate();
  EXPECT_EQ(s(a), "10.8.0.3");  // .1 reserved by IPv4, .2 by IPv6
  ASSERT_TRUE(a.v6());
  EXPECT_EQ(*a.v6(), make_address_v6("fd00::3"));
  auto b = pool.allocate(make_address_v4("10.8.0.200"));
  EXPECT_EQ(*b.v6(), make_address_v6("fd00::c8"));
  EXPECT_EQ(pool.size(), 252u);
  ASSERT_TRUE(pool.ipv6_network());
  EXPECT_EQ(pool.ipv6_network()->to_string(), "fd00::/64");
  address_pool v4only(make_network_v4("10.8.0.0/24"));
  EXPECT_FALSE(v4only.allocate().v6());
  // A /120 holds as many host numbers as a /24.
  address_pool tight(make_network_v4("10.8.0.0/24"), {}, make_network_v6("fd00::100/120"));
  EXPECT_EQ(*tight.allocate(make_address_v4("10.8.0.254")).v6(), make_address_v6("fd00::1fe"));
}

TEST(AddressPool, RefusesPoolsItCannotServe) {
  EXPECT_THROW(address_pool(make_network_v4("10.8.0.0/31")), std::invalid_argument);
  EXPECT_THROW(address_pool(make_network_v4("10.8.0.0/32")), std::invalid_argument);
  EXPECT_THROW(address_pool(make_network_v4("10.0.0.0/11")), std::invalid_argument);
  EXPECT_NO_THROW(address_pool(make_network_v4("10.0.0.0/12")));
  EXPECT_THROW(address_pool(make_network_v4("10.8.0.0/16"), {}, make_network_v6("fd00::/120")),
               std::invalid_argument);
  EXPECT_THROW(address_pool(make_network_v4("10.8.0.0/30"),
                            {make_address("10.8.0.1"), make_address("10.8.0.2")}),
               std::invalid_argument);
}

TEST(AddressPool, HostBitsOfTheNetworkAreIgnored) {
  address_pool pool(make_network_v4("10.8.0.77/29"));
  EXPECT_EQ(pool.ipv4_network().to_string(), "10.8.0.72/29");
  EXPECT_EQ(s(pool.allocate()), "10.8.0.73");
}

TEST(AddressPool, ALeaseMayOutliveItsPool) {
  address_pool::lease l;
  {
    address_pool pool(make_network_v4("10.8.0.0/30"));
    l = pool.allocate();
  }
  EXPECT_EQ(s(l), "10.8.0.1");
  l.release();  // no crash: the state lives on with the lease
}

TEST(AddressPool, NoDuplicatesUnderConcurrentUse) {
  address_pool pool(make_network_v4("10.8.0.0/26"));  // 62 addresses
  std::array<std::atomic<bool>, 64> held{};
  std::atomic<int> duplicates{0}, exhausted{0};
  auto worker = [&](unsigned seed) {
    std::vector<address_pool::lease> mine;
    for (int round = 0; round < 3000; ++round) {
      seed = seed * 1103515245 + 12345;
      if ((seed >> 16) % 3 != 0 || mine.empty()) {
        auto l = pool.allocate();
        if (!l) {
          ++exhausted;
          continue;
        }
        const auto host = l.v4().to_uint() & 63;
        if (held[host].exchange(true)) ++duplicates;
        mine.push_back(std::move(l));
      } else {
        const auto i = (seed >> 8) % mine.size();
        held[mine[i].v4().to_uint() & 63] = false;
        mine.erase(mine.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
    for (auto& l : mine)
      held[l.v4().to_uint() & 63] = false;
  };
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (unsigned t = 0; t < 4; ++t)
    threads.emplace_back(worker, t + 1);
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(duplicates.load(), 0);
  EXPECT_GT(exhausted.load(), 0);  // the pool did run dry, so reuse was exercised
  EXPECT_EQ(pool.available(), pool.size());
}
