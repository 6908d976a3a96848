// The cache, single flight, stale grace and subscribers, against a controllable source and an
// injected clock; the indexes behind a webhook's re-read and the refresh queue; the file source
// and its reload.
#include <utility>  // before Asio (STYLE P1)

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <future>
#include <nlohmann/json.hpp>

#include "http_client.hpp"
#include "uem_fixture.hpp"

using namespace uem_test;
using namespace std::chrono_literals;

namespace {

struct recorder {
  std::mutex mutex;
  std::vector<std::tuple<std::string, uem::reason, uem::reason, std::string>> seen;
  void operator()(const uem::change& c) {
    std::lock_guard lock(mutex);
    seen.emplace_back(c.key.value, c.before->code, c.after->code, std::string(c.cause));
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return seen.size();
  }
  auto at(std::size_t i) {
    std::lock_guard lock(mutex);
    return seen.at(i);
  }
};

class UemService : public testing::Test {
 protected:
  /// `webhook`: also start the listener (plain HTTP on loopback; post() sends to it).
  void start(const std::string& cache = "{positive_ttl: 1m, negative_ttl: 10s, stale_grace: 5m}",
             bool background = false, bool webhook = false) {
    std::string hook;
    if (webhook) {
      dir_.write("hook_pw", "hook-pw\n");
      hook = ", webhook: {listen: 127.0.0.1:0, username: hook, password_file: hook_pw}";
    }
    cfg_ =
        load("uem: {source: file, file: unused.json, cache: " + cache + hook + "}\n", dir_.path());
    uem::service_options o;
    o.now = clock_.fn();
    o.make_source = fake_source_factory(state_);
    o.background_refresh = background;
    if (background) cfg_.poll_interval = 50ms;
    svc_ = uem::service::create(cfg_, o);
    sub_ = svc_->subscribe([this](const uem::change& c) { changes_(c); });
  }
  uem::decision_ptr check(const std::string& udid) {
    return svc_->check(uem::device_key::udid(udid));
  }
  /// Posts a webhook event naming the device by UDID, else serial, else DeviceId (the parser's
  /// order); returns the HTTP status (200 once the re-read was applied and subscribers told).
  int post(const std::string& udid, const std::string& serial = {},
           const std::string& device_id = {}) {
    nlohmann::json j{{"EventId", ++event_id_},
                     {"EventType", "Compliance Status Changed"},
                     {"Udid", udid},
                     {"SerialNumber", serial},
                     {"EventTime", "t" + std::to_string(event_id_)}};
    if (!device_id.empty()) j["DeviceId"] = std::stoi(device_id);
    http_client c("127.0.0.1", svc_->webhook_endpoint()->port());
    return c
        .request("POST", "/events", j.dump(),
                 {{"Authorization", basic_auth("hook", "hook-pw")},
                  {"Content-Type", "application/json"}})
        .status;
  }
  /// The changes seen so far as "key:after" (cause left out), in order.
  std::vector<std::string> changed() {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < changes_.size(); ++i) {
      const auto c = changes_.at(i);
      out.push_back(std::get<0>(c) + ":" + std::string(uem::to_string(std::get<2>(c))));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  temp_dir dir_;
  int event_id_ = 0;
  fake_clock clock_;
  std::shared_ptr<fake_source_state> state_ = std::make_shared<fake_source_state>();
  uem::config cfg_;
  std::shared_ptr<uem::service> svc_;
  recorder changes_;
  std::shared_ptr<void> sub_;
};

}  // namespace

TEST_F(UemService, EveryRefusalReasonAndAdmit) {
  state_->set(make_record("ok"));
  state_->set(make_record("nc", "NonCompliant"));
  state_->set(make_record("cp", "Compliant", true));
  state_->set(make_record("ne", "Compliant", false, "Unenrolled"));
  start();
  EXPECT_EQ(check("ok")->code, uem::reason::ok);
  EXPECT_EQ(check("OK")->code, uem::reason::ok);  // UDIDs compare case-insensitively
  EXPECT_EQ(check("nc")->code, uem::reason::noncompliant);
  EXPECT_EQ(check("cp")->code, uem::reason::compromised);
  EXPECT_EQ(check("ne")->code, uem::reason::not_enrolled);
  EXPECT_EQ(check("nobody")->code, uem::reason::unknown_device);
  state_->set_down(true);
  const auto d = check("never-seen");
  EXPECT_EQ(d->code, uem::reason::uem_unavailable);
  EXPECT_FALSE(d->admitted());
  EXPECT_NE(d->detail.find("fake UEM is down"), std::string::npos);
}

TEST_F(UemService, PositiveTtlThenRefetch) {
  state_->set(make_record("a"));
  start();
  EXPECT_TRUE(check("a")->admitted());
  EXPECT_EQ(state_->fetches(), 1);
  clock_.advance(59s);
  EXPECT_TRUE(check("a")->admitted());
  EXPECT_NE(svc_->cached(uem::device_key::udid("a")), nullptr);
  EXPECT_EQ(state_->fetches(), 1);  // fresh: from memory
  state_->set(make_record("a", "NonCompliant"));
  EXPECT_TRUE(check("a")->admitted());  // still within the TTL
  clock_.advance(2s);
  EXPECT_EQ(svc_->cached(uem::device_key::udid("a")), nullptr);
  EXPECT_EQ(check("a")->code, uem::reason::noncompliant);
  EXPECT_EQ(state_->fetches(), 2);
  ASSERT_EQ(changes_.size(), 1U);
  EXPECT_EQ(changes_.at(0), std::make_tuple(std::string("a"), uem::reason::ok,
                                            uem::reason::noncompliant, std::string("lookup")));
}

TEST_F(UemService, NegativeTtlIsSeparate) {
  start();
  EXPECT_EQ(check("late")->code, uem::reason::unknown_device);
  state_->set(make_record("late"));
  clock_.advance(9s);
  EXPECT_EQ(check("late")->code, uem::reason::unknown_device);
  EXPECT_EQ(state_->fetches(), 1);
  clock_.advance(2s);
  EXPECT_EQ(check("late")->code, uem::reason::ok);
  EXPECT_EQ(state_->fetches(), 2);
}

TEST_F(UemService, StaleGraceThenFailClosed) {
  state_->set(make_record("g"));
  start("{positive_ttl: 1m, negative_ttl: 10s, stale_grace: 5m}");
  EXPECT_TRUE(check("g")->admitted());
  state_->set_down(true);
  clock_.advance(2min);  // past the TTL, within the grace
  auto d = check("g");
  EXPECT_TRUE(d->admitted());
  EXPECT_TRUE(d->stale);
  const int after_first_failure = state_->fetches();
  // Within the retry interval the stale admit comes from memory: an outage does not multiply
  // requests.
  EXPECT_TRUE(check("g")->admitted());
  EXPECT_EQ(state_->fetches(), after_first_failure);
  clock_.advance(3min + 30s);  // 5m30s after the TTL: still inside 1m + 5m
  EXPECT_TRUE(check("g")->admitted());
  clock_.advance(31s);  // now beyond positive_ttl + stale_grace
  d = check("g");
  EXPECT_EQ(d->code, uem::reason::uem_unavailable);
  ASSERT_EQ(changes_.size(), 1U);
  EXPECT_EQ(std::get<2>(changes_.at(0)), uem::reason::uem_unavailable);
  // The UEM comes back: admitted again, and subscribers hear about it.
  state_->set_down(false);
  clock_.advance(2s);
  EXPECT_TRUE(check("g")->admitted());
  EXPECT_FALSE(check("g")->stale);
  ASSERT_EQ(changes_.size(), 2U);
  EXPECT_EQ(std::get<2>(changes_.at(1)), uem::reason::ok);
}

TEST_F(UemService, ErrorNeverAdmitsARefusedDevice) {
  state_->set(make_record("r", "NonCompliant"));
  start();
  EXPECT_EQ(check("r")->code, uem::reason::noncompliant);
  state_->set(make_record("r"));
  state_->set_down(true);
  clock_.advance(11s);
  EXPECT_EQ(check("r")->code, uem::reason::uem_unavailable);
  clock_.advance(2s);
  EXPECT_FALSE(check("r")->admitted());
}

TEST_F(UemService, SingleFlightAcrossThreadsAndExecutors) {
  state_->set(make_record("sf"));
  state_->hold(true);
  start();
  constexpr int coroutines = 600;
  constexpr int threads = 4;
  std::atomic<int> admitted{0};
  // Coroutines on two io_contexts of their own (the gateway's model: one per thread)...
  boost::asio::io_context a(1), b(1);
  for (int i = 0; i < coroutines; ++i) {
    auto& ctx = i % 2 != 0 ? a : b;
    boost::asio::co_spawn(
        ctx,
        [](std::shared_ptr<uem::service> s, std::atomic<int>* n) -> uem::net::awaitable<void> {
          auto d = co_await s->lookup(uem::device_key::udid("sf"));
          if (d->admitted()) ++*n;
        }(svc_, &admitted),
        [](const std::exception_ptr& e) {
          if (e) std::rethrow_exception(e);
        });
  }
  std::thread ta([&] { a.run(); });
  std::thread tb([&] { b.run(); });
  // ...and plain threads.
  std::vector<std::future<bool>> blocking;
  blocking.reserve(threads);
  for (int i = 0; i < threads; ++i) {
    blocking.push_back(std::async(std::launch::async, [this] { return check("sf")->admitted(); }));
  }
  ASSERT_TRUE(wait_until([&] { return state_->fetches() >= 1; }));
  // Let every caller queue up behind the one fetch, then release it.
  ASSERT_TRUE(wait_until([&] { return svc_->stats().lookups >= coroutines + threads; }));
  state_->hold(false);
  ta.join();
  tb.join();
  for (auto& f : blocking)
    EXPECT_TRUE(f.get());
  EXPECT_EQ(admitted.load(), coroutines);
  EXPECT_EQ(state_->fetches(), 1);
}

TEST_F(UemService, BackgroundRefreshTellsSubscribers) {
  state_->set(make_record("bg"));
  start("{positive_ttl: 1m, negative_ttl: 10s, stale_grace: 0s}", true);
  EXPECT_TRUE(check("bg")->admitted());
  state_->set(make_record("bg", "Compliant", true));
  clock_.advance(61s);  // the admit expires; the next tick re-reads it without any lookup
  ASSERT_TRUE(wait_until([&] { return changes_.size() == 1; }));
  EXPECT_EQ(changes_.at(0), std::make_tuple(std::string("bg"), uem::reason::ok,
                                            uem::reason::compromised, std::string("ttl_refresh")));
  EXPECT_EQ(svc_->cached(uem::device_key::udid("bg"))->code, uem::reason::compromised);
}

TEST_F(UemService, BackgroundRefreshFailsClosedAfterGrace) {
  state_->set(make_record("fc"));
  start("{positive_ttl: 1m, negative_ttl: 10s, stale_grace: 1m}", true);
  EXPECT_TRUE(check("fc")->admitted());
  state_->set_down(true);
  clock_.advance(90s);
  ASSERT_TRUE(wait_until([&] { return state_->fetches() >= 2; }));
  EXPECT_EQ(changes_.size(), 0U);  // within grace: still admitted
  clock_.advance(31s);
  ASSERT_TRUE(wait_until([&] { return changes_.size() == 1; }));
  EXPECT_EQ(std::get<2>(changes_.at(0)), uem::reason::uem_unavailable);
}

TEST_F(UemService, UnsubscribeAndForgetAndStop) {
  state_->set(make_record("u"));
  start();
  EXPECT_TRUE(check("u")->admitted());
  sub_.reset();
  state_->set(make_record("u", "NonCompliant"));
  clock_.advance(61s);
  EXPECT_EQ(check("u")->code, uem::reason::noncompliant);
  EXPECT_EQ(changes_.size(), 0U);
  svc_->forget(uem::device_key::udid("u"));
  EXPECT_EQ(svc_->cached(uem::device_key::udid("u")), nullptr);
  svc_->stop();
  svc_->stop();  // idempotent
  EXPECT_EQ(check("u")->code, uem::reason::uem_unavailable);
}

TEST_F(UemService, StopWakesPendingLookups) {
  state_->set(make_record("p"));
  state_->hold(true);
  start();
  auto pending = std::async(std::launch::async, [this] { return check("p"); });
  ASSERT_TRUE(wait_until([&] { return state_->fetches() == 1; }));
  std::thread releaser([this] {
    std::this_thread::sleep_for(50ms);  // stop() must wait for the held fetch, not drop it
    state_->hold(false);
  });
  svc_->stop();
  releaser.join();
  ASSERT_EQ(pending.wait_for(5s), std::future_status::ready);
  EXPECT_NE(pending.get(), nullptr);
}

// --- the indexes behind a webhook's re-read, the refresh queue ----------------------------

TEST_F(UemService, OneEventUpdatesTheDeviceUnderEveryKeyItWasLookedUpBy) {
  auto rec = make_record("AbC-1");
  rec.serial = "SER-1";
  rec.device_id = "501";
  state_->set(rec);
  auto other = make_record("OTHER");  // serial SN-OTHER
  state_->set(other);
  start("{positive_ttl: 1m, negative_ttl: 10s, stale_grace: 5m}", false, true);
  ASSERT_TRUE(svc_->check(uem::device_key::udid("abc-1"))->admitted());
  ASSERT_TRUE(svc_->check(uem::device_key::serial("ser-1"))->admitted());
  ASSERT_TRUE(svc_->check(uem::device_key::device_id("501"))->admitted());
  ASSERT_TRUE(svc_->check(uem::device_key::udid("other"))->admitted());
  ASSERT_TRUE(svc_->check(uem::device_key::serial("sn-other"))->admitted());
  rec.compliance_status = "NonCompliant";
  state_->set(rec);
  other.compliance_status = "NonCompliant";  // changed too, but no event names it
  state_->set(other);
  // Named by UDID in another case: all three entries, not the other device's.
  ASSERT_EQ(post("ABC-1"), 200);
  EXPECT_EQ(changed(), (std::vector<std::string>{"501:noncompliant", "abc-1:noncompliant",
                                                 "ser-1:noncompliant"}));
  // Named by serial only, then by DeviceId only: the same three each time.
  rec.compliance_status = "Compliant";
  state_->set(rec);
  ASSERT_EQ(post("", "Ser-1"), 200);
  EXPECT_EQ(changes_.size(), 6U);
  rec.compromised = true;
  state_->set(rec);
  ASSERT_EQ(post("", "", "501"), 200);
  ASSERT_EQ(changes_.size(), 9U);
  for (std::size_t i = 6; i < 9; ++i)
    EXPECT_EQ(std::get<2>(changes_.at(i)), uem::reason::compromised);
  EXPECT_EQ(svc_->cached(uem::device_key::udid("other"))->code, uem::reason::ok);
  EXPECT_EQ(svc_->cached(uem::device_key::serial("SN-OTHER"))->code, uem::reason::ok);
}

TEST_F(UemService, AnEntryFollowsItsDevicesNewIdentifiers) {
  // The serial an entry was looked up by changes in the UEM; the entry's record then carries
  // the new one, and an event naming the new serial still reaches it (by its record), also
  // when the UEM no longer knows the device at all.
  auto rec = make_record("MOVE-1");
  rec.serial = "OLD-SN";
  state_->set(rec);
  start("{positive_ttl: 1m, negative_ttl: 10s, stale_grace: 5m}", false, true);
  ASSERT_TRUE(svc_->check(uem::device_key::serial("old-sn"))->admitted());
  rec.serial = "NEW-SN";
  state_->set(rec);
  ASSERT_EQ(post("move-1"), 200);  // re-read: still admitted, the record now says NEW-SN
  EXPECT_EQ(changes_.size(), 0U);
  EXPECT_EQ(svc_->cached(uem::device_key::serial("old-sn"))->device->serial, "NEW-SN");
  state_->remove("move-1");
  ASSERT_EQ(post("", "new-sn"), 200);
  EXPECT_EQ(changed(), std::vector<std::string>{"old-sn:unknown_device"});
  // Its record went with the device: an event naming the device again finds no entry now
  // (the entry's own key, serial OLD-SN, is not the device's any more).
  state_->set(rec);
  ASSERT_EQ(post("MOVE-1"), 200);
  EXPECT_EQ(changes_.size(), 1U);
}

TEST_F(UemService, ForgottenAndEvictedEntriesLeaveTheIndexes) {
  auto f = make_record("F");                    // forgotten by UDID, still cached by serial
  auto ev = make_record("EV", "NonCompliant");  // a refusal, evicted 10 min after expiry
  auto t = make_record("T");  // an admit, re-read at the same tick as the eviction
  state_->set(f);
  state_->set(ev);
  state_->set(t);
  start("{positive_ttl: 1m, negative_ttl: 10s, stale_grace: 0s}", true, true);
  ASSERT_TRUE(check("f")->admitted());
  ASSERT_TRUE(svc_->check(uem::device_key::serial("sn-f"))->admitted());
  ASSERT_EQ(svc_->check(uem::device_key::serial("sn-ev"))->code, uem::reason::noncompliant);
  ASSERT_TRUE(check("t")->admitted());
  svc_->forget(uem::device_key::udid("F"));
  f.compliance_status = "NonCompliant";
  state_->set(f);
  ASSERT_EQ(post("f"), 200);
  EXPECT_EQ(changed(), std::vector<std::string>{"sn-f:noncompliant"});
  // The eviction: the tick that re-reads T (due at 1 min) evicts EV too (due at 10 min 10 s).
  const int before = state_->fetches();
  clock_.advance(11min);
  ASSERT_TRUE(wait_until([&] { return state_->fetches() > before; }));
  ev.compliance_status = "Compliant";
  state_->set(ev);
  ASSERT_EQ(post("ev"), 200);  // no entry names EV any more (ASan: no stale index either)
  EXPECT_EQ(changes_.size(), 1U);
  EXPECT_TRUE(svc_->check(uem::device_key::serial("sn-ev"))->admitted());
  EXPECT_EQ(changes_.size(), 1U) << "a new entry: nothing it changed from";
}

TEST_F(UemService, RefreshReReadsOnlyTheEntriesDue) {
  for (const char* u : {"A", "B", "C"})
    state_->set(make_record(u));
  start("{positive_ttl: 1m, negative_ttl: 10s, stale_grace: 0s}", true);
  ASSERT_TRUE(check("a")->admitted());
  clock_.advance(20s);
  ASSERT_TRUE(check("b")->admitted());
  clock_.advance(20s);
  ASSERT_TRUE(check("c")->admitted());
  for (const char* u : {"A", "B", "C"})
    state_->set(make_record(u, "NonCompliant"));
  const auto refreshed = [this](std::vector<std::string> want) {
    EXPECT_TRUE(wait_until([&] { return changes_.size() >= want.size(); }));
    std::this_thread::sleep_for(150ms);  // three ticks: nothing more may be re-read
    std::vector<std::string> got;
    for (std::size_t i = 0; i < changes_.size(); ++i) {
      EXPECT_EQ(std::get<3>(changes_.at(i)), "ttl_refresh");
      got.push_back(std::get<0>(changes_.at(i)));
    }
    EXPECT_EQ(got, want);
  };
  clock_.advance(21s);  // 61 s: A only
  refreshed({"a"});
  clock_.advance(20s);  // 81 s: B
  refreshed({"a", "b"});
  clock_.advance(20s);  // 101 s: C
  refreshed({"a", "b", "c"});
  EXPECT_EQ(state_->fetches(), 6);
}

TEST_F(UemService, AnEntryInFlightWhenDueIsRefreshedAtItsNextExpiry) {
  state_->set(make_record("IF"));
  start("{positive_ttl: 1m, negative_ttl: 10s, stale_grace: 0s}", true);
  ASSERT_TRUE(check("if")->admitted());
  // Due now, and a lookup's fetch holds it in flight over several ticks.
  state_->hold(true);
  clock_.advance(61s);
  auto pending = std::async(std::launch::async, [this] { return check("if"); });
  ASSERT_TRUE(wait_until([&] { return state_->fetches() == 2; }));
  std::this_thread::sleep_for(150ms);
  state_->hold(false);
  ASSERT_TRUE(pending.get()->admitted());
  EXPECT_EQ(state_->fetches(), 2) << "one fetch in flight; the ticks skipped the entry";
  state_->set(make_record("IF", "NonCompliant"));
  clock_.advance(61s);
  ASSERT_TRUE(wait_until([&] { return changes_.size() == 1; }));
  EXPECT_EQ(changes_.at(0), std::make_tuple(std::string("if"), uem::reason::ok,
                                            uem::reason::noncompliant, std::string("ttl_refresh")));
}

// --- the file source ----------------------------------------------------------------------

TEST(UemFileSource, LookupsByUdidSerialAndId) {
  temp_dir dir;
  dir.write("inv.json", "[" + record_json(make_record("F1"), 41) + "," +
                            record_json(make_record("F2", "NonCompliant"), 42) + "]");
  auto cfg = load("uem: {source: file, file: inv.json}\n", dir.path());
  auto svc = uem::service::create(cfg, {});
  EXPECT_TRUE(svc->check(uem::device_key::udid("f1"))->admitted());
  EXPECT_EQ(svc->check(uem::device_key::serial("SN-F2"))->code, uem::reason::noncompliant);
  EXPECT_EQ(svc->check(uem::device_key::device_id("41"))->device->udid, "F1");
  EXPECT_EQ(svc->check(uem::device_key::udid("F3"))->code, uem::reason::unknown_device);
}

TEST(UemFileSource, ReloadTellsSubscribersAndBadFileKeepsLastGood) {
  temp_dir dir;
  dir.write("inv.yaml", R"(
- {Udid: R1, SerialNumber: S1, Platform: Apple, EnrollmentStatus: Enrolled,
   ComplianceStatus: Compliant, CompromisedStatus: false}
)");
  auto cfg = load("uem: {source: file, file: inv.yaml, poll_interval: 50ms}\n", dir.path());
  auto svc = uem::service::create(cfg, {});
  recorder changes;
  auto sub = svc->subscribe([&](const uem::change& c) { changes(c); });
  EXPECT_TRUE(svc->check(uem::device_key::udid("R1"))->admitted());
  dir.write("inv.yaml", R"(
- {Udid: R1, SerialNumber: S1, Platform: Apple, EnrollmentStatus: Enrolled,
   ComplianceStatus: NonCompliant, CompromisedStatus: false}
)");
  ASSERT_TRUE(wait_until([&] { return changes.size() == 1; }));
  EXPECT_EQ(changes.at(0), std::make_tuple(std::string("R1"), uem::reason::ok,
                                           uem::reason::noncompliant, std::string("file_reload")));
  // A broken file is reported and ignored: the last good inventory stays.
  dir.write("inv.yaml", "- {Udid: R1, oops\n");
  dir.write("marker", "x");
  std::this_thread::sleep_for(200ms);  // several poll intervals: nothing may change
  EXPECT_EQ(changes.size(), 1U);
  svc->forget(uem::device_key::udid("R1"));
  EXPECT_EQ(svc->check(uem::device_key::udid("R1"))->code, uem::reason::noncompliant);
}

TEST(UemFileSource, UnreadableOrInvalidInventoryFailsToStart) {
  temp_dir dir;
  auto cfg = load("uem: {source: file, file: missing.json}\n", dir.path());
  try {
    uem::service::create(cfg, {});
    FAIL() << "expected an error";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), uem::errc::file_unreadable);
    EXPECT_NE(std::string(e.what()).find("missing.json"), std::string::npos);
  }
  dir.write("bad.json", R"([{"Udid":"x"}])");
  auto bad = load("uem: {source: file, file: bad.json}\n", dir.path());
  try {
    uem::service::create(bad, {});
    FAIL() << "expected an error";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), uem::errc::bad_inventory);
    EXPECT_NE(std::string(e.what()).find("devices[0].ComplianceStatus: missing"), std::string::npos)
        << e.what();
  }
}
