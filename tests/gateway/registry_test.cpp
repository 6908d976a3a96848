// The session registry: RAII registrations, per-device limits, kills and re-checks posted to
// each session's own executor, admission tickets and the idle sweep.
#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "gateway/registry.hpp"

namespace tunnelgate::gateway {
namespace {

/// What a fake session saw.
struct probe {
  int kills = 0;
  int rechecks = 0;
  bool killed_on_own_executor = false;
  bool rechecked_on_own_executor = false;
};

std::shared_ptr<session_entry> make_entry(session_registry& reg, net::io_context& io,
                                          const std::string& udid, probe* p) {
  auto e = std::make_shared<session_entry>();
  e->executor = io.get_executor();
  e->info.id = reg.next_id();
  e->info.udid = udid;
  auto* ctx = &io;
  e->kill = [p, ctx] {
    ++p->kills;
    p->killed_on_own_executor = ctx->get_executor().running_in_this_thread();
  };
  e->recheck = [p, ctx] {
    ++p->rechecks;
    p->rechecked_on_own_executor = ctx->get_executor().running_in_this_thread();
  };
  return e;
}

std::vector<std::uint64_t> ids(const session_registry& reg) {
  std::vector<std::uint64_t> out;
  for (const auto& i : reg.list())
    out.push_back(i.id);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(CanonicalUdid, AsciiUpperCase) {
  EXPECT_EQ(canonical_udid("00008030-001a2b3c4d5e802e"), "00008030-001A2B3C4D5E802E");
  EXPECT_EQ(canonical_udid("{6f9619ff-8b86-d011-b42d-00cf4fc964ff}"),
            "{6F9619FF-8B86-D011-B42D-00CF4FC964FF}");
  EXPECT_EQ(canonical_udid("ALREADY-UPPER-123"), "ALREADY-UPPER-123");
  EXPECT_EQ(canonical_udid(""), "");
  // Only ASCII letters change: other bytes (UTF-8 included) pass through as they are.
  EXPECT_EQ(canonical_udid("ab\xc3\xa9z_-.09"), "AB\xc3\xa9Z_-.09");
  EXPECT_EQ(canonical_udid("aBc"), canonical_udid("AbC"));
}

TEST(Registry, NextIdIsUniqueAndNonZero) {
  session_registry reg;
  const auto a = reg.next_id();
  const auto b = reg.next_id();
  EXPECT_NE(a, 0U);
  EXPECT_NE(a, b);
}

TEST(Registry, AddUpToMaxPerDevice) {
  net::io_context io;
  session_registry reg;
  probe p;
  auto e1 = make_entry(reg, io, "DEV-A", &p);
  auto e2 = make_entry(reg, io, "DEV-A", &p);
  auto e3 = make_entry(reg, io, "DEV-A", &p);
  auto other = make_entry(reg, io, "DEV-B", &p);
  auto r1 = reg.add(e1, 2);
  auto r2 = reg.add(e2, 2);
  auto r3 = reg.add(e3, 2);
  EXPECT_TRUE(r1);
  EXPECT_TRUE(r2);
  EXPECT_FALSE(r3) << "a third session of DEV-A over max_per_device 2";
  EXPECT_EQ(reg.size(), 2U);
  EXPECT_EQ(ids(reg), (std::vector{e1->info.id, e2->info.id}));
  // Another device has its own count.
  auto rb = reg.add(other, 2);
  EXPECT_TRUE(rb);
  EXPECT_EQ(reg.size(), 3U);
  EXPECT_EQ(reg.devices(), (std::vector<std::string>{"DEV-A", "DEV-B"}));
  // The refused one was never added: killing it finds nothing.
  EXPECT_FALSE(reg.kill(e3->info.id, "x"));
  // Once a place is free, the device may add again.
  r1.reset();
  EXPECT_EQ(reg.size(), 2U);
  auto r3b = reg.add(e3, 2);
  EXPECT_TRUE(r3b);
  EXPECT_EQ(ids(reg), (std::vector{e2->info.id, e3->info.id, other->info.id}));
}

TEST(Registry, MaxPerDeviceZeroAddsNothing) {
  net::io_context io;
  session_registry reg;
  probe p;
  auto r = reg.add(make_entry(reg, io, "DEV-A", &p), 0);
  EXPECT_FALSE(r);
  EXPECT_EQ(reg.size(), 0U);
}

TEST(Registry, RegistrationRemovesOnDestruction) {
  net::io_context io;
  session_registry reg;
  probe p;
  auto e = make_entry(reg, io, "DEV-A", &p);
  {
    auto r = reg.add(e, 1);
    ASSERT_TRUE(r);
    EXPECT_EQ(reg.size(), 1U);
    EXPECT_EQ(reg.devices(), std::vector<std::string>{"DEV-A"});
    EXPECT_FALSE(reg.add(make_entry(reg, io, "DEV-A", &p), 1));
  }
  EXPECT_EQ(reg.size(), 0U);
  EXPECT_TRUE(reg.devices().empty());
  EXPECT_EQ(reg.kill_device("DEV-A", "gone"), 0U);
  // The device's place is free again.
  auto again = reg.add(make_entry(reg, io, "DEV-A", &p), 1);
  EXPECT_TRUE(again);
}

TEST(Registry, RegistrationRemovesOnException) {
  net::io_context io;
  session_registry reg;
  probe p;
  auto e = make_entry(reg, io, "DEV-A", &p);
  try {
    auto r = reg.add(e, 1);
    ASSERT_TRUE(r);
    ASSERT_EQ(reg.size(), 1U);
    throw std::runtime_error("session failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(reg.size(), 0U);
  EXPECT_TRUE(reg.add(e, 1));
}

TEST(Registry, ResetIsIdempotent) {
  net::io_context io;
  session_registry reg;
  probe p;
  auto keep = reg.add(make_entry(reg, io, "DEV-A", &p), 5);
  auto r = reg.add(make_entry(reg, io, "DEV-A", &p), 5);
  ASSERT_EQ(reg.size(), 2U);
  r.reset();
  EXPECT_FALSE(r);
  EXPECT_EQ(reg.size(), 1U);
  r.reset();
  EXPECT_EQ(reg.size(), 1U) << "a second reset must not remove another session";
  session_registry::registration empty;
  EXPECT_FALSE(empty);
  empty.reset();
  EXPECT_EQ(reg.size(), 1U);
}

TEST(Registry, MovingARegistrationMovesTheOwnership) {
  net::io_context io;
  session_registry reg;
  probe p;
  auto e1 = make_entry(reg, io, "DEV-A", &p);
  auto e2 = make_entry(reg, io, "DEV-A", &p);
  auto r1 = reg.add(e1, 5);
  session_registry::registration moved(std::move(r1));
  EXPECT_FALSE(r1);  // NOLINT(bugprone-use-after-move): the moved-from state is the point
  EXPECT_TRUE(moved);
  r1.reset();  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(reg.size(), 1U) << "the moved-from handle owns nothing";
  {
    // Move-assigning over a live registration removes the one it held.
    auto r2 = reg.add(e2, 5);
    ASSERT_EQ(reg.size(), 2U);
    moved = std::move(r2);
    EXPECT_EQ(ids(reg), std::vector{e2->info.id});
  }
  EXPECT_EQ(reg.size(), 1U) << "r2's destruction after the move removes nothing";
  // Into a container and out again.
  std::vector<session_registry::registration> held;
  held.push_back(std::move(moved));
  held.reserve(64);  // reallocation moves the handles
  EXPECT_EQ(reg.size(), 1U);
  held.clear();
  EXPECT_EQ(reg.size(), 0U);
}

TEST(Registry, KillDevicePostsToTheEntrysExecutorOnce) {
  net::io_context io;
  session_registry reg;
  probe a1, a2, b;
  auto e1 = make_entry(reg, io, "DEV-A", &a1);
  auto e2 = make_entry(reg, io, "DEV-A", &a2);
  auto e3 = make_entry(reg, io, "DEV-B", &b);
  auto r1 = reg.add(e1, 5);
  auto r2 = reg.add(e2, 5);
  auto r3 = reg.add(e3, 5);
  EXPECT_EQ(reg.kill_device("DEV-A", "revoked"), 2U);
  EXPECT_EQ(a1.kills, 0) << "posted, not called inline";
  EXPECT_FALSE(e1->killed);
  io.run();
  EXPECT_EQ(a1.kills, 1);
  EXPECT_EQ(a2.kills, 1);
  EXPECT_EQ(b.kills, 0);
  EXPECT_TRUE(a1.killed_on_own_executor);
  EXPECT_TRUE(e1->killed);
  EXPECT_EQ(e1->kill_reason, "revoked");
  EXPECT_FALSE(e3->killed);
  // A second kill, with another reason: nothing more happens, the first reason stays.
  EXPECT_EQ(reg.kill_device("DEV-A", "admin"), 2U) << "still registered until the session ends";
  io.restart();
  io.run();
  EXPECT_EQ(a1.kills, 1);
  EXPECT_EQ(e1->kill_reason, "revoked");
  EXPECT_EQ(reg.kill_device("DEV-C", "nobody"), 0U);
}

TEST(Registry, KillById) {
  net::io_context io;
  session_registry reg;
  probe a, b;
  auto e1 = make_entry(reg, io, "DEV-A", &a);
  auto e2 = make_entry(reg, io, "DEV-A", &b);
  auto r1 = reg.add(e1, 5);
  auto r2 = reg.add(e2, 5);
  EXPECT_TRUE(reg.kill(e2->info.id, "admin"));
  EXPECT_FALSE(reg.kill(e2->info.id + 1000, "admin"));
  io.run();
  EXPECT_EQ(a.kills, 0);
  EXPECT_EQ(b.kills, 1);
  EXPECT_EQ(e2->kill_reason, "admin");
  EXPECT_TRUE(b.killed_on_own_executor);
}

TEST(Registry, KillAllRunsEachKillOnItsOwnContext) {
  net::io_context io1;
  net::io_context io2;
  session_registry reg;
  probe p1, p2, p3;
  auto e1 = make_entry(reg, io1, "DEV-A", &p1);
  auto e2 = make_entry(reg, io2, "DEV-B", &p2);
  auto e3 = make_entry(reg, io2, "DEV-C", &p3);
  auto r1 = reg.add(e1, 5);
  auto r2 = reg.add(e2, 5);
  auto r3 = reg.add(e3, 5);
  EXPECT_EQ(reg.kill_all("shutdown"), 3U);
  io1.run();
  EXPECT_EQ(p1.kills, 1);
  EXPECT_EQ(p2.kills, 0) << "io2 has not run: its sessions are not touched from io1";
  EXPECT_EQ(p3.kills, 0);
  io2.run();
  EXPECT_EQ(p2.kills, 1);
  EXPECT_EQ(p3.kills, 1);
  EXPECT_TRUE(p1.killed_on_own_executor);
  EXPECT_TRUE(p2.killed_on_own_executor);
  EXPECT_EQ(e3->kill_reason, "shutdown");
}

TEST(Registry, KillIdleClosesOnlySessionsWaitingForARequest) {
  net::io_context io;
  session_registry reg;
  probe waiting, busy;
  auto e1 = make_entry(reg, io, "DEV-A", &waiting);
  auto e2 = make_entry(reg, io, "DEV-B", &busy);
  auto r1 = reg.add(e1, 5);
  auto r2 = reg.add(e2, 5);
  e1->idle = true;   // between requests
  e2->idle = false;  // in a tunnel
  EXPECT_EQ(reg.kill_idle("shutdown"), 2U);
  e2->idle = true;   // turned idle after the kill was posted: decided when it runs, on its thread
  e1->idle = false;  // and this one took a request meanwhile
  io.run();
  EXPECT_EQ(waiting.kills, 0) << "idle is read on the session's executor, when the kill runs";
  EXPECT_EQ(busy.kills, 1);
  EXPECT_EQ(e2->kill_reason, "shutdown");
}

TEST(Registry, DeadEntriesAreNotKilled) {
  net::io_context io;
  session_registry reg;
  probe p;
  auto e = make_entry(reg, io, "DEV-A", &p);
  auto r = reg.add(e, 5);
  e->alive = false;  // the session is ending on its own thread
  EXPECT_EQ(reg.kill_all("late"), 1U);
  io.run();
  EXPECT_EQ(p.kills, 0);
  EXPECT_FALSE(e->killed);
  EXPECT_TRUE(e->kill_reason.empty());
}

TEST(Registry, KillHere) {
  probe p;
  net::io_context io;
  session_registry reg;
  auto e = make_entry(reg, io, "DEV-A", &p);
  session_registry::kill_here(*e, "revoked");
  EXPECT_EQ(p.kills, 1);
  EXPECT_TRUE(e->killed);
  EXPECT_EQ(e->kill_reason, "revoked");
  session_registry::kill_here(*e, "again");
  EXPECT_EQ(p.kills, 1);
  EXPECT_EQ(e->kill_reason, "revoked");
  // Without a kill function (the session has not set one yet): marked, nothing to call.
  session_entry bare;
  session_registry::kill_here(bare, "early");
  EXPECT_TRUE(bare.killed);
  EXPECT_EQ(bare.kill_reason, "early");
  // Not alive: nothing.
  session_entry dead;
  dead.alive = false;
  int calls = 0;
  dead.kill = [&calls] { ++calls; };
  session_registry::kill_here(dead, "late");
  EXPECT_EQ(calls, 0);
  EXPECT_FALSE(dead.killed);
}

TEST(Registry, RecheckAllOnlyLiveUnkilledEntries) {
  net::io_context io;
  session_registry reg;
  probe live, killed, dead, other;
  auto e1 = make_entry(reg, io, "DEV-A", &live);
  auto e2 = make_entry(reg, io, "DEV-A", &killed);
  auto e3 = make_entry(reg, io, "DEV-B", &dead);
  auto e4 = make_entry(reg, io, "DEV-C", &other);
  e4->recheck = nullptr;  // a session that has not set one
  auto r1 = reg.add(e1, 5);
  auto r2 = reg.add(e2, 5);
  auto r3 = reg.add(e3, 5);
  auto r4 = reg.add(e4, 5);
  session_registry::kill_here(*e2, "revoked");
  e3->alive = false;
  EXPECT_EQ(reg.recheck_all(), 4U);
  EXPECT_EQ(live.rechecks, 0) << "posted, not called inline";
  io.run();
  EXPECT_EQ(live.rechecks, 1);
  EXPECT_TRUE(live.rechecked_on_own_executor);
  EXPECT_EQ(killed.rechecks, 0);
  EXPECT_EQ(dead.rechecks, 0);
  EXPECT_EQ(other.rechecks, 0);
  // Removed sessions are not rechecked.
  r1.reset();
  EXPECT_EQ(reg.recheck_all(), 3U);
  io.restart();
  io.run();
  EXPECT_EQ(live.rechecks, 1);
}

TEST(Registry, UpdateAndListShowInfoAndCounters) {
  net::io_context io;
  session_registry reg;
  probe p;
  auto e = make_entry(reg, io, "DEV-A", &p);
  e->info.user = "alice";
  auto r = reg.add(e, 5);
  reg.update(e->info.id, [](session_info& i) {
    i.destination = "example.com:443";
    i.action = "tunnel";
  });
  reg.update(e->info.id + 1000, [](session_info& i) { i.destination = "wrong"; });
  e->counters.up = 10;
  e->counters.down = 20;
  const auto l = reg.list();
  ASSERT_EQ(l.size(), 1U);
  EXPECT_EQ(l[0].udid, "DEV-A");
  EXPECT_EQ(l[0].user, "alice");
  EXPECT_EQ(l[0].destination, "example.com:443");
  EXPECT_EQ(l[0].action, "tunnel");
  EXPECT_EQ(l[0].bytes_up, 10U);
  EXPECT_EQ(l[0].bytes_down, 20U);
}

TEST(Registry, SweepIdleForgetsIdleDevicesOnly) {
  net::io_context io;
  session_registry reg;
  probe p;
  std::vector<std::string> forgotten;
  const auto forget = [&forgotten](const std::string& udid) { forgotten.push_back(udid); };
  // A device with a live session is never idle.
  auto live = reg.add(make_entry(reg, io, "LIVE", &p), 5);
  // A device whose session ended.
  { auto ended = reg.add(make_entry(reg, io, "ENDED", &p), 5); }
  EXPECT_EQ(reg.sweep_idle(std::chrono::hours(1), forget), 0U) << "idle for less than an hour";
  EXPECT_TRUE(forgotten.empty());
  EXPECT_EQ(reg.sweep_idle(std::chrono::seconds(0), forget), 1U);
  EXPECT_EQ(forgotten, std::vector<std::string>{"ENDED"});
  // Forgotten means no longer tracked: a second sweep finds nothing.
  forgotten.clear();
  EXPECT_EQ(reg.sweep_idle(std::chrono::seconds(0), forget), 0U);
  EXPECT_TRUE(forgotten.empty());
  // Once its session ends, the live device is idle too.
  live.reset();
  EXPECT_EQ(reg.sweep_idle(std::chrono::seconds(0), forget), 1U);
  EXPECT_EQ(forgotten, std::vector<std::string>{"LIVE"});
}

TEST(Registry, AdmissionTicketKeepsADeviceOutOfTheSweep) {
  session_registry reg;
  std::vector<std::string> forgotten;
  const auto forget = [&forgotten](const std::string& udid) { forgotten.push_back(udid); };
  {
    auto ticket = reg.begin_admission("DEV-A");
    EXPECT_EQ(reg.sweep_idle(std::chrono::seconds(0), forget), 0U);
    EXPECT_TRUE(forgotten.empty());
    {
      // Two admissions at once: ending one keeps the device busy.
      auto second = reg.begin_admission("DEV-A");
    }
    EXPECT_EQ(reg.sweep_idle(std::chrono::seconds(0), forget), 0U);
    // A moved ticket ends once, when its new owner goes.
    auto moved = std::move(ticket);
    EXPECT_EQ(reg.sweep_idle(std::chrono::seconds(0), forget), 0U);
  }
  EXPECT_EQ(reg.sweep_idle(std::chrono::hours(1), forget), 0U) << "just became idle";
  EXPECT_EQ(reg.sweep_idle(std::chrono::seconds(0), forget), 1U);
  EXPECT_EQ(forgotten, std::vector<std::string>{"DEV-A"});
}

TEST(Registry, AdmissionThenSessionThenEnd) {
  net::io_context io;
  session_registry reg;
  probe p;
  std::vector<std::string> forgotten;
  const auto forget = [&forgotten](const std::string& udid) { forgotten.push_back(udid); };
  session_registry::registration r;
  {
    auto ticket = reg.begin_admission("DEV-A");
    r = reg.add(make_entry(reg, io, "DEV-A", &p), 5);
    ticket.end();
    ticket.end();  // idempotent
    EXPECT_EQ(reg.sweep_idle(std::chrono::seconds(0), forget), 0U) << "a session is live";
  }
  EXPECT_EQ(reg.sweep_idle(std::chrono::seconds(0), forget), 0U) << "the ticket ended twice?";
  r.reset();
  EXPECT_EQ(reg.sweep_idle(std::chrono::seconds(0), forget), 1U);
  EXPECT_EQ(forgotten, std::vector<std::string>{"DEV-A"});
}

// --- the idle sweep's order, with an injected clock ------------------------------------------

/// A registry whose clock the test moves.
struct clocked_registry {
  std::chrono::steady_clock::time_point t{};
  session_registry reg{[this] { return t; }};
  std::vector<std::string> forgotten;
  std::size_t sweep(std::chrono::steady_clock::duration idle) {
    return reg.sweep_idle(idle, [this](const std::string& udid) { forgotten.push_back(udid); });
  }
};

TEST(Registry, SweepTakesTheLongestIdleFirstAndStopsAtTheFirstTooRecent) {
  using std::chrono::seconds;
  net::io_context io;
  probe p;
  clocked_registry c;
  // Idle in the order Z, A, M (not the order of their names).
  for (const char* udid : {"Z", "A", "M"}) {
    { auto r = c.reg.add(make_entry(c.reg, io, udid, &p), 5); }
    c.t += seconds(10);
  }
  // Now 30 s: Z idle for 30 s, A for 20 s, M for 10 s.
  EXPECT_EQ(c.sweep(seconds(15)), 2U);
  EXPECT_EQ(c.forgotten, (std::vector<std::string>{"Z", "A"}));
  c.t += seconds(4);
  EXPECT_EQ(c.sweep(seconds(15)), 0U) << "M idle for 14 s";
  c.t += seconds(1);
  EXPECT_EQ(c.sweep(seconds(15)), 1U);
  EXPECT_EQ(c.forgotten, (std::vector<std::string>{"Z", "A", "M"}));
  EXPECT_EQ(c.sweep(seconds(0)), 0U);
}

TEST(Registry, ADeviceBusyAgainIsNotSweptAndItsIdleTimeStartsOver) {
  using std::chrono::seconds;
  net::io_context io;
  probe p;
  clocked_registry c;
  { auto r = c.reg.add(make_entry(c.reg, io, "AGAIN", &p), 5); }  // idle since 0
  c.t += seconds(5);
  { auto r = c.reg.add(make_entry(c.reg, io, "OTHER", &p), 5); }  // idle since 5
  c.t += seconds(1);
  auto live = c.reg.add(make_entry(c.reg, io, "AGAIN", &p), 5);  // busy at 6
  c.t += seconds(100);
  EXPECT_EQ(c.sweep(seconds(10)), 1U) << "OTHER only: AGAIN has a session";
  EXPECT_EQ(c.forgotten, std::vector<std::string>{"OTHER"});
  live.reset();  // idle since 106, not since 0
  c.t += seconds(9);
  EXPECT_EQ(c.sweep(seconds(10)), 0U);
  // An admission makes it busy too; its end starts the idle time over once more.
  {
    auto ticket = c.reg.begin_admission("AGAIN");
    c.t += seconds(50);
    EXPECT_EQ(c.sweep(seconds(10)), 0U);
  }
  c.t += seconds(9);
  EXPECT_EQ(c.sweep(seconds(10)), 0U);
  c.t += seconds(1);
  EXPECT_EQ(c.sweep(seconds(10)), 1U);
  EXPECT_EQ(c.forgotten, (std::vector<std::string>{"OTHER", "AGAIN"}));
  // Forgotten devices are tracked afresh: an admission that ends makes it idle again.
  c.reg.begin_admission("AGAIN").end();
  EXPECT_EQ(c.sweep(seconds(0)), 1U);
}

TEST(Registry, SweepAmongManyDevicesForgetsOnlyTheIdleOnes) {
  net::io_context io;
  probe p;
  clocked_registry c;
  constexpr int devices = 2000;
  std::vector<session_registry::registration> held;
  held.reserve(devices);
  for (int i = 0; i < devices; ++i)
    held.push_back(c.reg.add(make_entry(c.reg, io, "DEV-" + std::to_string(i), &p), 5));
  std::vector<std::string> ended;
  for (int i = 0; i < devices; i += 200) {
    held[static_cast<std::size_t>(i)].reset();
    ended.push_back("DEV-" + std::to_string(i));
    c.t += std::chrono::seconds(1);
  }
  EXPECT_EQ(c.sweep(std::chrono::seconds(0)), ended.size());
  EXPECT_EQ(c.forgotten, ended) << "in the order they became idle";
  EXPECT_EQ(c.reg.devices().size(), devices - ended.size());
  EXPECT_EQ(c.sweep(std::chrono::seconds(0)), 0U);
  held.clear();
  EXPECT_EQ(c.sweep(std::chrono::seconds(0)), devices - ended.size());
}

}  // namespace
}  // namespace tunnelgate::gateway
