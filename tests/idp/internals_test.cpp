// idp internals without I/O: how long a 429 asks to wait (huge, past and malformed values),
// repeated header fields kept (Link `self` and `next` in either order), names compared without
// case, and the errc added for writes that do not stick.
#include <gtest/gtest.h>

#include <chrono>

#include "idp/idp.hpp"
#include "idp/internal.hpp"
#include "idp/session.hpp"

namespace {

namespace idp = tunnelgate::idp;
namespace detail = tunnelgate::idp::detail;
using namespace std::chrono_literals;
using clock_type = std::chrono::system_clock;

/// 2026-01-01T00:00:00Z: a fixed "now".
const clock_type::time_point now{std::chrono::seconds(1'767'225'600)};

detail::response answer(std::initializer_list<std::pair<const char*, std::string>> headers) {
  detail::response r;
  r.status = 429;
  for (const auto& [name, value] : headers)
    detail::add_header(r.headers, name, value);
  return r;
}

TEST(RateLimitWait, OktaResetIsEpochSecondsPlusOne) {
  const auto w = detail::rate_limit_wait_of(answer({{"x-rate-limit-reset", "1767225630"}}), now);
  EXPECT_EQ(w.wait, 31s);
  EXPECT_FALSE(w.saturated);
  EXPECT_EQ(w.source, "X-Rate-Limit-Reset: 1767225630");
  EXPECT_EQ(detail::rate_limit_wait_of(answer({{"x-rate-limit-reset", "1767225600"}}), now).wait,
            1s);  // resets now: one second for skew
}

TEST(RateLimitWait, RetryAfterIsSeconds) {
  EXPECT_EQ(detail::rate_limit_wait_of(answer({{"retry-after", "7"}}), now).wait, 7s);
  EXPECT_EQ(detail::rate_limit_wait_of(answer({{"retry-after", " 7 "}}), now).wait, 7s);
  EXPECT_EQ(detail::rate_limit_wait_of(answer({{"retry-after", "0"}}), now).wait, 1s);  // never 0
}

TEST(RateLimitWait, HugeValuesSaturateInsteadOfOverflowing) {
  for (const char* v : {"99999999999999999999", "9223372036854775807", "9223372036854775808",
                        "4000000001767225600", "18446744073709551616000"}) {
    const auto retry = detail::rate_limit_wait_of(answer({{"retry-after", v}}), now);
    EXPECT_EQ(retry.wait, detail::rate_limit_wait_cap) << v;
    EXPECT_TRUE(retry.saturated) << v;
    const auto reset = detail::rate_limit_wait_of(answer({{"x-rate-limit-reset", v}}), now);
    EXPECT_EQ(reset.wait, detail::rate_limit_wait_cap) << v;
    EXPECT_TRUE(reset.saturated) << v;
    EXPECT_GT(std::chrono::duration_cast<std::chrono::milliseconds>(reset.wait).count(), 0) << v;
  }
  // An epoch far in the future, but still a number that fits: also beyond the cap.
  EXPECT_TRUE(detail::rate_limit_wait_of(answer({{"x-rate-limit-reset", "253402300799000"}}), now)
                  .saturated);
}

TEST(RateLimitWait, PastOrMalformedMeansTheDefaultNeverZero) {
  for (const char* v : {"1767225599", "1000", "0"}) {  // resets in the past
    const auto w = detail::rate_limit_wait_of(answer({{"x-rate-limit-reset", v}}), now);
    EXPECT_EQ(w.wait, detail::default_rate_limit_wait) << "reset " << v;
    EXPECT_FALSE(w.saturated) << v;
  }
  for (const char* v :
       {"-5", "+5", "12abc", "", " ", "1.5", "0x10", "1 2", "Wed, 21 Oct 2015 07:28:00 GMT"}) {
    const auto w = detail::rate_limit_wait_of(answer({{"x-rate-limit-reset", v}}), now);
    EXPECT_EQ(w.wait, detail::default_rate_limit_wait) << "reset " << v;
    EXPECT_FALSE(w.saturated) << v;
    EXPECT_EQ(detail::rate_limit_wait_of(answer({{"retry-after", v}}), now).wait,
              detail::default_rate_limit_wait)
        << "retry-after " << v;
  }
  EXPECT_EQ(detail::rate_limit_wait_of(answer({}), now).wait, detail::default_rate_limit_wait);
  // A past reset falls back to a usable Retry-After.
  EXPECT_EQ(detail::rate_limit_wait_of(
                answer({{"x-rate-limit-reset", "1767225000"}, {"retry-after", "3"}}), now)
                .wait,
            3s);
}

TEST(RateLimitWait, AWaitBeyondTheBudgetFailsAtOnceSayingHowLong) {
  detail::rate_budget budget{60s};
  std::vector<std::string> notes;
  const idp::notice_fn notice = [&notes](const std::string& n) { notes.push_back(n); };
  auto res = answer({{"retry-after", "99999999999999999999"}});
  res.body = R"({"error":{"code":"TooManyRequests","message":"Too many requests."}})";
  try {
    detail::wait_for_rate_limit("reading the location", res, budget, notice);
    ADD_FAILURE() << "no error";
  } catch (const idp::error& e) {
    EXPECT_EQ(e.code(), idp::errc::rate_limited);
    EXPECT_EQ(e.http_status(), 429);
    EXPECT_EQ(std::string(e.what()),
              "reading the location: Too many requests. (HTTP 429 TooManyRequests); gave up: the "
              "limit resets in more than 2147483647 s (Retry-After: 99999999999999999999), "
              "beyond the rate-limit wait allowed (60 s, 0 s already waited)");
  }
  EXPECT_TRUE(notes.empty());
  EXPECT_EQ(budget.waited, 0ms);
  // A budget of duration::max() does not overflow either: still refused without sleeping.
  detail::rate_budget endless{idp::duration::max(), idp::duration::max() - 1ms};
  EXPECT_THROW(detail::wait_for_rate_limit("x", answer({{"retry-after", "1"}}), endless, notice),
               idp::error);
}

TEST(Headers, RepeatedFieldsAreJoinedNotReplaced) {
  std::map<std::string, std::string> h;
  detail::add_header(h, "link", "<https://o/api/v1/zones?limit=2>; rel=\"self\"");
  detail::add_header(h, "link", "<https://o/api/v1/zones?after=x&limit=2>; rel=\"next\"");
  detail::add_header(h, "content-type", "application/json");
  EXPECT_EQ(h["link"],
            "<https://o/api/v1/zones?limit=2>; rel=\"self\", "
            "<https://o/api/v1/zones?after=x&limit=2>; rel=\"next\"");
  EXPECT_EQ(h["content-type"], "application/json");
}

TEST(Headers, NextLinkIsFoundWhicheverOrderTheFieldsCameIn) {
  const std::string self = "<https://o.example/api/v1/zones?limit=2>; rel=\"self\"";
  const std::string next = "<https://o.example/api/v1/zones?after=nzo2&limit=2>; rel=\"next\"";
  for (const bool next_first : {false, true}) {
    detail::response r;
    detail::add_header(r.headers, "link", next_first ? next : self);
    detail::add_header(r.headers, "link", next_first ? self : next);
    EXPECT_EQ(detail::next_link(r.header("link")),
              "https://o.example/api/v1/zones?after=nzo2&limit=2")
        << r.header("link");
  }
  detail::response only_self;
  detail::add_header(only_self.headers, "link", self);
  EXPECT_EQ(detail::next_link(only_self.header("link")), "");
}

TEST(Names, ComparedWithoutCaseLikeTheIdP) {
  EXPECT_TRUE(detail::same_name("WS1 Tunnel Egress", "ws1 tunnel EGRESS"));
  EXPECT_TRUE(detail::same_name("Zürich Büro", "ZÜRICH BÜRO"));
  EXPECT_TRUE(detail::same_name("Łódź", "ŁÓDŹ"));
  EXPECT_TRUE(detail::same_name("Σ Αθήνα", "σ αθήνα"));
  EXPECT_TRUE(detail::same_name("Москва", "МОСКВА"));
  EXPECT_FALSE(detail::same_name("egress", "egress "));
  EXPECT_FALSE(detail::same_name("egress-1", "egress_1"));
  EXPECT_FALSE(detail::same_name("egress", "egres"));
  EXPECT_FALSE(detail::same_name("a\xff", "a\xfe"));  // invalid UTF-8 compares bytewise
  EXPECT_TRUE(detail::same_name("a\xff", "A\xff"));
  EXPECT_TRUE(detail::same_name("", ""));
}

TEST(Errors, ConflictIsAnErrorNotARefusal) {
  EXPECT_FALSE(idp::is_refusal(idp::errc::conflict));
  EXPECT_FALSE(idp::is_refusal(idp::errc::ambiguous));
  EXPECT_EQ(idp::make_error_code(idp::errc::conflict).message(),
            "another writer kept replacing the zone or named location");
}

}  // namespace
