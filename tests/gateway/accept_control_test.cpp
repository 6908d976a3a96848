// accept_control: the decisions taken at accept time, before any TLS work.
#include "gateway/accept_control.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace tunnelgate::gateway {
namespace {

using namespace std::chrono_literals;
using clock_type = accept_control::clock;

net::ip::address ip(const char* s) {
  return net::ip::make_address(s);
}

struct fixture : ::testing::Test {
  std::atomic<std::int64_t> connections{0};
  std::atomic<std::int64_t> pending{0};
  std::shared_ptr<accept_control> ctl = std::make_shared<accept_control>(connections, pending);
  std::shared_ptr<handshake_counter> thread = std::make_shared<handshake_counter>(0);
  clock_type::time_point t0 = clock_type::now();
  accept_limits limits;
  fixture() {
    limits.max_connections = 1000;
    limits.max_handshakes_per_thread = 1000;
    limits.max_pending_per_source = 0;
    limits.rate_per_source = 0;
  }
};

TEST(accept_source, ipv4_is_its_own_source_and_mapped_ipv6_counts_as_ipv4) {
  EXPECT_EQ(source_of(ip("192.0.2.7")), source_of(ip("::ffff:192.0.2.7")));
  EXPECT_NE(source_of(ip("192.0.2.7")), source_of(ip("192.0.2.8")));
  EXPECT_EQ(to_string(source_of(ip("::ffff:192.0.2.7"))), "192.0.2.7");
}

TEST(accept_source, ipv6_counts_by_its_64_bit_prefix) {
  EXPECT_EQ(source_of(ip("2001:db8:1:2::1")), source_of(ip("2001:db8:1:2:ffff::9")));
  EXPECT_NE(source_of(ip("2001:db8:1:2::1")), source_of(ip("2001:db8:1:3::1")));
  EXPECT_EQ(to_string(source_of(ip("2001:db8:1:2:ab::1"))), "2001:db8:1:2::/64");
  // An IPv6 prefix never collides with the IPv4 address of the same number.
  EXPECT_NE(source_of(ip("::c000:207")), source_of(ip("192.0.2.7")));
}

TEST(accept_refusal_spelling, each_reason_has_one_spelling_and_a_remedy) {
  EXPECT_EQ(to_string(accept_refusal::max_connections), "max-connections");
  EXPECT_EQ(to_string(accept_refusal::handshakes_busy), "handshakes-busy");
  EXPECT_EQ(to_string(accept_refusal::source_pending_limit), "source-pending-limit");
  EXPECT_EQ(to_string(accept_refusal::source_rate_limit), "source-rate-limit");
  for (auto r : {accept_refusal::max_connections, accept_refusal::handshakes_busy,
                 accept_refusal::source_pending_limit, accept_refusal::source_rate_limit})
    EXPECT_NE(remedy(r).find("limits."), std::string_view::npos) << to_string(r);
}

TEST_F(fixture, the_connection_count_is_taken_at_accept_and_given_back_by_the_ticket) {
  limits.max_connections = 2;
  auto a = ctl->admit(ip("127.0.0.1"), limits, thread, t0);
  auto b = ctl->admit(ip("127.0.0.2"), limits, thread, t0);
  ASSERT_EQ(a.refusal, accept_refusal::none);
  ASSERT_EQ(b.refusal, accept_refusal::none);
  EXPECT_EQ(connections.load(), 2);
  // A burst is refused on the count already taken, not on one incremented later.
  auto c = ctl->admit(ip("127.0.0.3"), limits, thread, t0);
  EXPECT_EQ(c.refusal, accept_refusal::max_connections);
  EXPECT_FALSE(c.ticket.holds_connection());
  EXPECT_EQ(connections.load(), 2);
  a.ticket = accept_ticket{};  // the connection ends
  EXPECT_EQ(connections.load(), 1);
  EXPECT_EQ(ctl->admit(ip("127.0.0.3"), limits, thread, t0).refusal, accept_refusal::none);
}

TEST_F(fixture, handshake_slots_last_until_the_handshake_ends_the_connection_slot_longer) {
  limits.max_handshakes_per_thread = 2;
  auto a = ctl->admit(ip("127.0.0.1"), limits, thread, t0);
  auto b = ctl->admit(ip("127.0.0.2"), limits, thread, t0);
  EXPECT_EQ(thread->load(), 2U);
  EXPECT_EQ(pending.load(), 2);
  EXPECT_EQ(ctl->admit(ip("127.0.0.3"), limits, thread, t0).refusal,
            accept_refusal::handshakes_busy);
  a.ticket.handshake_done();
  a.ticket.handshake_done();  // twice is harmless
  EXPECT_EQ(thread->load(), 1U);
  EXPECT_EQ(pending.load(), 1);
  EXPECT_EQ(connections.load(), 2);
  auto c = ctl->admit(ip("127.0.0.3"), limits, thread, t0);
  EXPECT_EQ(c.refusal, accept_refusal::none);
  // Another thread's counter is not this one's.
  auto other = std::make_shared<handshake_counter>(0);
  EXPECT_EQ(ctl->admit(ip("127.0.0.4"), limits, other, t0).refusal, accept_refusal::none);
}

TEST_F(fixture, pending_per_source_limits_one_source_and_not_the_others) {
  limits.max_pending_per_source = 3;
  std::vector<accept_control::decision> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(ctl->admit(ip("203.0.113.9"), limits, thread, t0));
    ASSERT_EQ(held.back().refusal, accept_refusal::none);
  }
  EXPECT_EQ(ctl->admit(ip("203.0.113.9"), limits, thread, t0).refusal,
            accept_refusal::source_pending_limit);
  EXPECT_EQ(ctl->admit(ip("::ffff:203.0.113.9"), limits, thread, t0).refusal,
            accept_refusal::source_pending_limit);
  EXPECT_EQ(ctl->admit(ip("203.0.113.10"), limits, thread, t0).refusal, accept_refusal::none);
  // A finished handshake frees the source's slot although the connection stays open.
  held.front().ticket.handshake_done();
  EXPECT_EQ(ctl->admit(ip("203.0.113.9"), limits, thread, t0).refusal, accept_refusal::none);
}

TEST_F(fixture, the_rate_per_source_is_a_token_bucket) {
  limits.rate_per_source = 10;
  limits.burst_per_source = 5;
  int admitted = 0;
  for (int i = 0; i < 20; ++i)
    admitted += ctl->admit(ip("198.51.100.1"), limits, thread, t0).refusal == accept_refusal::none;
  EXPECT_EQ(admitted, 5);  // the burst, then nothing at the same instant
  EXPECT_EQ(ctl->admit(ip("198.51.100.1"), limits, thread, t0).refusal,
            accept_refusal::source_rate_limit);
  EXPECT_EQ(ctl->admit(ip("198.51.100.2"), limits, thread, t0).refusal, accept_refusal::none);
  // 10/s: after 300 ms three more.
  admitted = 0;
  for (int i = 0; i < 10; ++i)
    admitted +=
        ctl->admit(ip("198.51.100.1"), limits, thread, t0 + 300ms).refusal == accept_refusal::none;
  EXPECT_EQ(admitted, 3);
  // Never more than the burst, however long the source was quiet.
  admitted = 0;
  for (int i = 0; i < 20; ++i)
    admitted +=
        ctl->admit(ip("198.51.100.1"), limits, thread, t0 + 1h).refusal == accept_refusal::none;
  EXPECT_EQ(admitted, 5);
}

TEST_F(fixture, refusals_are_logged_once_per_interval_with_the_count_in_between) {
  limits.rate_per_source = 1;
  limits.burst_per_source = 1;
  ASSERT_EQ(ctl->admit(ip("192.0.2.1"), limits, thread, t0).refusal, accept_refusal::none);
  auto first = ctl->admit(ip("192.0.2.1"), limits, thread, t0);
  EXPECT_EQ(first.refusal, accept_refusal::source_rate_limit);
  EXPECT_TRUE(first.log);
  for (int i = 0; i < 7; ++i)
    EXPECT_FALSE(ctl->admit(ip("192.0.2.1"), limits, thread, t0 + 10ms).log);
  // Another source is logged on its own.
  ASSERT_EQ(ctl->admit(ip("192.0.2.2"), limits, thread, t0).refusal, accept_refusal::none);
  EXPECT_TRUE(ctl->admit(ip("192.0.2.2"), limits, thread, t0).log);
  // After the interval: logged again, with the 7 refusals not logged in between.
  const auto later = t0 + accept_control::log_interval + 1ms;
  ASSERT_EQ(ctl->admit(ip("192.0.2.1"), limits, thread, later).refusal, accept_refusal::none);
  auto again = ctl->admit(ip("192.0.2.1"), limits, thread, later);
  EXPECT_TRUE(again.log);
  EXPECT_EQ(again.quiet, 7U);
}

TEST_F(fixture, idle_sources_are_forgotten_and_busy_ones_kept) {
  limits.rate_per_source = 100;
  limits.burst_per_source = 100;
  auto held = ctl->admit(ip("192.0.2.1"), limits, thread, t0);  // handshake in progress
  { auto done = ctl->admit(ip("192.0.2.2"), limits, thread, t0); }
  EXPECT_EQ(ctl->sources(), 2U);
  // A sweep after the interval drops 192.0.2.2 (nothing pending, bucket full again).
  auto third = ctl->admit(ip("192.0.2.3"), limits, thread, t0 + accept_control::log_interval + 1s);
  EXPECT_EQ(ctl->sources(), 2U);  // .1 (pending) and .3 (just now)
  held.ticket = accept_ticket{};
  EXPECT_EQ(pending.load(), 1);  // .3 still in its handshake
}

TEST_F(fixture, the_table_stays_bounded_under_many_sources) {
  limits.rate_per_source = 100;
  limits.burst_per_source = 100;
  for (std::uint32_t i = 0; i < accept_control::sweep_threshold + 1000; ++i)
    (void)ctl->admit(net::ip::address_v4(0x0A000000U + i), limits, thread, t0);
  EXPECT_LE(ctl->sources(), accept_control::sweep_threshold);
  EXPECT_EQ(pending.load(), 0);
  EXPECT_EQ(connections.load(), 0);
}

}  // namespace
}  // namespace tunnelgate::gateway
