#include <gtest/gtest.h>

#include "gateway/vpn/cookie_store.hpp"

namespace tunnelgate::gateway {
namespace {

using namespace std::chrono_literals;
using refusal = cookie_store::refusal;

class CookieStore : public ::testing::Test {
 protected:
  struct {
    cookie_store::clock::time_point t{};
  } clock_, *clk = &clock_;
  cookie_store store{60s, [this] { return clock_.t; }};
  const cookie_store::grant alice{"DEV-1", "aa11"};
};

TEST_F(CookieStore, IssuedCookieIsRedeemedOnceByItsDevice) {
  const auto c = store.issue(alice);
  EXPECT_EQ(c.size(), 64u) << "256 random bits, hex";
  EXPECT_EQ(c.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(store.redeem(c, alice), refusal::none);
  EXPECT_EQ(store.redeem(c, alice), refusal::used) << "single use";
}

TEST_F(CookieStore, CookiesAreRandom) {
  EXPECT_NE(store.issue(alice), store.issue(alice));
}

TEST_F(CookieStore, UnknownAndMissing) {
  EXPECT_EQ(store.redeem("", alice), refusal::missing);
  EXPECT_EQ(store.redeem(std::string(64, 'a'), alice), refusal::unknown);
}

TEST_F(CookieStore, ExpiresAfterItsLifetimeAndIsForgottenLater) {
  const auto c = store.issue(alice);
  clk->t += 60s;
  EXPECT_EQ(store.redeem(c, alice), refusal::expired);
  EXPECT_EQ(store.sweep(), 0u) << "kept one more lifetime to say why";
  clk->t += 60s;
  EXPECT_EQ(store.sweep(), 1u);
  EXPECT_EQ(store.redeem(c, alice), refusal::unknown);
  EXPECT_EQ(store.size(), 0u);
}

TEST_F(CookieStore, StolenCookieIsRefusedAndUsedUp) {
  const auto c = store.issue(alice);
  EXPECT_EQ(store.redeem(c, {"DEV-2", "aa11"}), refusal::mismatch) << "another device";
  EXPECT_EQ(store.redeem(c, alice), refusal::used) << "the thief burnt it";
  const auto d = store.issue(alice);
  EXPECT_EQ(store.redeem(d, {"DEV-1", "bb22"}), refusal::mismatch) << "another certificate";
}

TEST_F(CookieStore, RevokedDevicesCookiesDie) {
  const auto c = store.issue(alice);
  const auto other = store.issue({"DEV-2", "cc33"});
  store.revoke_device("DEV-1");
  EXPECT_EQ(store.redeem(c, alice), refusal::revoked);
  EXPECT_EQ(store.redeem(other, {"DEV-2", "cc33"}), refusal::none);
}

TEST_F(CookieStore, LostTunnelMayBeResumedOnceBySameDevice) {
  const auto c = store.issue(alice);
  ASSERT_EQ(store.redeem(c, alice), refusal::none);
  EXPECT_EQ(store.redeem(c, alice), refusal::used) << "not while the tunnel runs";
  store.release(c, true);  // the connection dropped
  EXPECT_EQ(store.redeem(c, {"DEV-2", "aa11"}), refusal::mismatch) << "not by another device";
  store.release(c, true);
  clk->t += 30s;
  EXPECT_EQ(store.redeem(c, alice), refusal::none) << "openconnect reconnects with it";
  EXPECT_EQ(store.redeem(c, alice), refusal::used);
  store.release(c, false);  // the device left on purpose
  EXPECT_EQ(store.redeem(c, alice), refusal::used);
}

TEST_F(CookieStore, ResumeWindowIsOneLifetimeAndRevocationEndsIt) {
  const auto c = store.issue(alice);
  ASSERT_EQ(store.redeem(c, alice), refusal::none);
  store.release(c, true);
  clk->t += 61s;
  EXPECT_EQ(store.redeem(c, alice), refusal::used) << "too late to resume";
  const auto d = store.issue(alice);
  ASSERT_EQ(store.redeem(d, alice), refusal::none);
  store.release(d, true);
  store.revoke_device("DEV-1");
  EXPECT_EQ(store.redeem(d, alice), refusal::revoked);
}

TEST_F(CookieStore, ADeviceHoldsABoundedNumberOfCookies) {
  std::vector<std::string> issued;
  for (std::size_t i = 0; i < cookie_store::max_per_device + 3; ++i)
    issued.push_back(store.issue(alice));
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_EQ(store.redeem(issued[i], alice), refusal::revoked) << "the oldest die";
  EXPECT_EQ(store.redeem(issued.back(), alice), refusal::none);
  EXPECT_EQ(store.redeem(store.issue({"DEV-2", "x"}), {"DEV-2", "x"}), refusal::none)
      << "other devices are not affected";
}

TEST_F(CookieStore, TheSameDeviceTakesOverItsLiveTunnel) {
  const auto c = store.issue(alice);
  ASSERT_EQ(store.redeem(c, alice), refusal::none);
  store.bind(c, 42);
  std::uint64_t replaces = 0;
  EXPECT_EQ(store.redeem(c, {"DEV-2", "aa11"}, &replaces), refusal::mismatch);
  EXPECT_EQ(store.redeem(c, alice), refusal::used) << "without taking over: used";
  EXPECT_EQ(store.redeem(c, alice, &replaces), refusal::none);
  EXPECT_EQ(replaces, 42u) << "the caller ends session 42";
  replaces = 0;
  EXPECT_EQ(store.redeem(c, alice, &replaces), refusal::used) << "once";
  store.bind(c, 43);
  store.revoke_device("DEV-1");
  EXPECT_EQ(store.redeem(c, alice, &replaces), refusal::used)
      << "a revoked device's tunnel is not taken over";
}

TEST(CookieStoreNames, OneSpellingEach) {
  EXPECT_EQ(cookie_store::to_string(refusal::unknown), "cookie-unknown");
  EXPECT_EQ(cookie_store::to_string(refusal::expired), "cookie-expired");
  EXPECT_EQ(cookie_store::to_string(refusal::used), "cookie-used");
  EXPECT_EQ(cookie_store::to_string(refusal::revoked), "cookie-revoked");
  EXPECT_EQ(cookie_store::to_string(refusal::mismatch), "cookie-mismatch");
  EXPECT_EQ(cookie_store::to_string(refusal::missing), "cookie-missing");
}

}  // namespace
}  // namespace tunnelgate::gateway
