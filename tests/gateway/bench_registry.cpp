// Session registry benchmarks: the per-event costs (a session starts and ends, the admin or a
// revocation kills a device, the idle sweep forgets a device) with 1,000 to 100,000 devices
// holding sessions. Every figure must be flat in the number of devices.
//   bench_registry --benchmark_filter=. [--benchmark_repetitions=3]
#include <utility>  // before Asio (STYLE P1)

#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "gateway/registry.hpp"

namespace gw = tunnelgate::gateway;

namespace {

/// n devices with one live session each, on an io_context nobody runs unless the benchmark
/// polls it.
struct held_sessions {
  explicit held_sessions(std::int64_t n) {
    regs.reserve(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i)
      regs.push_back(reg.add(entry(device(i)), 4));
  }
  std::shared_ptr<gw::session_entry> entry(const std::string& udid) {
    auto e = std::make_shared<gw::session_entry>();
    e->executor = io.get_executor();
    e->info.id = reg.next_id();
    e->info.udid = udid;
    e->kill = [] {};
    return e;
  }
  static std::string device(std::int64_t i) { return "DEV-" + std::to_string(i); }

  gw::net::io_context io;
  gw::session_registry reg;
  std::vector<gw::session_registry::registration> regs;
};

}  // namespace

/// A session starts and ends (RAII registration) while n devices hold sessions.
static void BM_RegistryAddRemove(benchmark::State& state) {
  held_sessions h(state.range(0));
  const auto e = h.entry("BENCH-DEVICE");
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores)
    auto r = h.reg.add(e, 4);
    benchmark::DoNotOptimize(r);
  }
  state.counters["devices"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_RegistryAddRemove)->Arg(1000)->Arg(10000)->Arg(100000);

/// A device's sessions are killed (the webhook's revocation, the admin API), the kill posted to
/// the session's executor and run there.
static void BM_RegistryKillDevice(benchmark::State& state) {
  const auto n = state.range(0);
  held_sessions h(n);
  std::int64_t i = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores)
    const auto udid = held_sessions::device((i++ * 7919) % n);
    benchmark::DoNotOptimize(h.reg.kill_device(udid, "revoked"));
    h.io.poll();
  }
  state.counters["devices"] = static_cast<double>(n);
}
BENCHMARK(BM_RegistryKillDevice)->Arg(1000)->Arg(10000)->Arg(100000);

/// One device's last session ends and the idle sweep forgets it, while n other devices hold
/// sessions (the gateway sweeps every 2 s).
static void BM_RegistrySweepIdle(benchmark::State& state) {
  held_sessions h(state.range(0));
  const auto e = h.entry("IDLE-DEVICE");
  std::size_t forgotten = 0;
  const auto forget = [&forgotten](const std::string&) { ++forgotten; };
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores)
    { auto r = h.reg.add(e, 4); }
    if (h.reg.sweep_idle(std::chrono::seconds(0), forget) != 1) {
      state.SkipWithError("the idle device was not swept");
      break;
    }
  }
  state.counters["devices"] = static_cast<double>(state.range(0));
  benchmark::DoNotOptimize(forgotten);
}
BENCHMARK(BM_RegistrySweepIdle)->Arg(1000)->Arg(10000)->Arg(100000);

/// The periodic sweep when nothing is due: n devices idle for less than the threshold, n more
/// holding sessions.
static void BM_RegistrySweepNothingDue(benchmark::State& state) {
  const auto n = state.range(0);
  held_sessions h(n);
  for (std::int64_t i = 0; i < n; ++i) {
    auto r = h.reg.add(h.entry("IDLE-" + std::to_string(i)), 4);
  }
  const auto forget = [](const std::string&) {};
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores)
    benchmark::DoNotOptimize(h.reg.sweep_idle(std::chrono::hours(1), forget));
  }
  state.counters["devices"] = static_cast<double>(n);
}
BENCHMARK(BM_RegistrySweepNothingDue)->Arg(1000)->Arg(10000)->Arg(100000);

BENCHMARK_MAIN();
