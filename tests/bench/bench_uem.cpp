// uem benchmarks: the cached-decision path the gateway takes for every new connection (target
// < 1 µs), the webhook-to-subscriber latency (target p99 < 50 ms), and the per-event costs that
// must not grow with the number of cached devices (a webhook re-read applied, a refresh tick).
//   bench_uem --benchmark_filter=. [--benchmark_min_time=...]
#include <utility>  // before Asio (STYLE P1)

#include <benchmark/benchmark.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "http_client.hpp"  // tests/uem
#include "uem/uem.hpp"

namespace uem = tunnelgate::uem;
using namespace std::chrono_literals;

namespace {

/// In-memory source: every device is enrolled; compliance flips on every fetch of "flip", so
/// each webhook re-read changes the decision.
class memory_source final : public uem::source {
 public:
  uem::net::awaitable<uem::fetch_result> fetch(uem::device_key key) override {
    uem::fetch_result r;
    uem::device_record d;
    d.udid = key.value;
    d.serial = "SN-" + key.value;
    d.platform = "Apple";
    d.enrollment_status = "Enrolled";
    d.compromised = false;
    const bool flip = key.value == "flip" && (flips_++ % 2 == 1);
    d.compliance_status = flip ? "NonCompliant" : "Compliant";
    r.device = d;
    co_return r;
  }
  std::string_view name() const override { return "memory"; }

 private:
  std::uint64_t flips_ = 0;
};

uem::config bench_config(bool webhook, const std::filesystem::path& dir) {
  std::string y = "uem:\n  source: file\n  file: unused.json\n";
  if (webhook) {
    std::ofstream(dir / "pw") << "bench-password\n";
    y += "  webhook: {listen: 127.0.0.1:0, username: bench, password_file: pw}\n";
  }
  auto r = uem::load_config(y, "bench.yaml", dir);
  if (!r) throw std::runtime_error("bad bench config: " + r.errors.at(0).to_string());
  return *r.value;
}

std::shared_ptr<uem::service> make_service(bool webhook, const std::filesystem::path& dir) {
  uem::service_options o;
  o.background_refresh = false;
  o.make_source = [](const uem::net::any_io_executor&) -> std::unique_ptr<uem::source> {
    return std::make_unique<memory_source>();
  };
  return uem::service::create(bench_config(webhook, dir), o);
}

std::filesystem::path bench_dir() {
  auto d = std::filesystem::temp_directory_path() / ("bench-uem-" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace

/// The gateway's first call for a new connection: a fresh cache entry, no I/O.
static void BM_CachedDecision(benchmark::State& state) {
  static std::shared_ptr<uem::service> svc;
  static std::vector<uem::device_key> keys;
  if (state.thread_index() == 0) {
    svc = make_service(false, bench_dir());
    keys.clear();
    for (int i = 0; i < 10000; ++i) {
      keys.push_back(uem::device_key::udid("device-" + std::to_string(i)));
      svc->check(keys.back());
    }
  }
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 7919;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores)
    auto d = svc->cached(keys[i++ % keys.size()]);
    benchmark::DoNotOptimize(d);
    if (!d) state.SkipWithError("cache miss");
  }
  if (state.thread_index() == 0) {
    svc->stop();
    svc.reset();
  }
}
BENCHMARK(BM_CachedDecision)->Threads(1)->Threads(2);

/// The same through the awaitable lookup() (a coroutine on the caller's io_context).
static void BM_CachedLookupAwaitable(benchmark::State& state) {
  auto svc = make_service(false, bench_dir());
  const auto key = uem::device_key::udid("device-1");
  svc->check(key);
  boost::asio::io_context ioc(1);
  boost::asio::co_spawn(
      ioc,
      [](std::shared_ptr<uem::service> s, uem::device_key k,
         benchmark::State* st) -> uem::net::awaitable<void> {
        for (auto _ : *st) {
          auto d = co_await s->lookup(k);
          benchmark::DoNotOptimize(d);
        }
      }(svc, key, &state),
      [](const std::exception_ptr& e) {
        if (e) std::rethrow_exception(e);
      });
  ioc.run();
  svc->stop();
}
BENCHMARK(BM_CachedLookupAwaitable);

/// From the webhook POST leaving the client to a subscriber being told of the change (the
/// re-read from the source included). Reports p50/p99 in microseconds.
static void BM_WebhookToSubscriber(benchmark::State& state) {
  auto dir = bench_dir();
  auto svc = make_service(true, dir);
  const auto key = uem::device_key::udid("flip");
  svc->check(key);
  std::mutex m;
  std::condition_variable cv;
  std::uint64_t changes = 0;
  std::chrono::steady_clock::time_point told;
  auto sub = svc->subscribe([&](const uem::change&) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(m);
    ++changes;
    told = now;
    cv.notify_one();
  });
  uem_test::http_client client("127.0.0.1", svc->webhook_endpoint()->port());
  const auto auth = uem_test::basic_auth("bench", "bench-password");
  std::vector<double> samples;
  std::int64_t event_id = 1;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores)
    const auto body = nlohmann::json{
        {"EventId", event_id++},
        {"EventType", "Compliance Status Changed"},
        {"Udid", "flip"},
        {"SerialNumber", "SN-flip"},
        {"CompromisedStatus",
         "false"}}.dump();
    std::uint64_t before = 0;
    {
      std::lock_guard lock(m);
      before = changes;
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto res = client.request("POST", "/uem/events", body,
                              {{"Authorization", auth}, {"Content-Type", "application/json"}});
    if (res.status != 200) {
      state.SkipWithError("webhook did not answer 200");
      break;
    }
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, 5s, [&] { return changes > before; })) {
      state.SkipWithError("subscriber not told within 5 s");
      break;
    }
    const std::chrono::duration<double> dt = told - t0;
    state.SetIterationTime(dt.count());
    samples.push_back(dt.count() * 1e6);
  }
  if (!samples.empty()) {
    std::sort(samples.begin(), samples.end());
    auto pct = [&](double p) {
      return samples[std::min(samples.size() - 1, static_cast<std::size_t>(p * samples.size()))];
    };
    state.counters["p50_us"] = pct(0.50);
    state.counters["p99_us"] = pct(0.99);
    state.counters["max_us"] = samples.back();
  }
  sub.reset();
  svc->stop();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_WebhookToSubscriber)->UseManualTime()->Unit(benchmark::kMicrosecond);

// --- scale: per-event costs with 1,000 to 100,000 cached devices --------------------------------

namespace {

std::int64_t cpu_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

/// What the scale source saw, and the benchmark's clock. The source runs on the service's
/// worker, so it can name the worker's CPU clock and read it at each poll (one per refresh tick).
struct scale_probe {
  std::atomic<clockid_t> worker_clock{CLOCK_THREAD_CPUTIME_ID};
  std::atomic<bool> have_worker_clock{false};
  std::atomic<std::uint64_t> fetches{0};
  std::atomic<std::int64_t> clock_ms{0};  ///< the service's clock: base + this
  std::atomic<bool> advancing{false};     ///< each poll advances clock_ms by 1 ms
  uem::clock_type::time_point base = uem::clock_type::now();
  std::mutex m;  // guards polls, poll_cpu
  std::condition_variable cv;
  std::uint64_t polls = 0;
  std::int64_t poll_cpu = 0;  ///< the worker's CPU time at the latest poll
};

/// Device "dev-<i>" with serial "SN-dev-<i>", found by either; always admitted.
class scale_source final : public uem::source {
 public:
  explicit scale_source(std::shared_ptr<scale_probe> p) : p_(std::move(p)) {}
  uem::net::awaitable<uem::fetch_result> fetch(uem::device_key key) override {
    note_worker();
    p_->fetches.fetch_add(1, std::memory_order_relaxed);
    uem::fetch_result r;
    uem::device_record d;
    d.udid = key.kind == uem::key_kind::serial ? key.value.substr(3) : key.value;
    d.serial = "SN-" + d.udid;
    d.platform = "Apple";
    d.enrollment_status = "Enrolled";
    d.compliance_status = "Compliant";
    d.compromised = false;
    r.device = std::move(d);
    co_return r;
  }
  bool poll_changed() override {
    note_worker();
    if (p_->advancing.load()) p_->clock_ms.fetch_add(1);
    const auto cpu = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
    {
      std::lock_guard lock(p_->m);
      ++p_->polls;
      p_->poll_cpu = cpu;
    }
    p_->cv.notify_all();
    return false;
  }
  std::string_view name() const override { return "scale"; }

 private:
  void note_worker() {
    if (p_->have_worker_clock.load()) return;
    clockid_t c{};
    if (pthread_getcpuclockid(pthread_self(), &c) == 0) p_->worker_clock = c;
    p_->have_worker_clock = true;
  }
  std::shared_ptr<scale_probe> p_;
};

std::string dev(std::int64_t i) {
  return "dev-" + std::to_string(i);
}

std::shared_ptr<uem::service> make_scale_service(const uem::config& cfg, bool background,
                                                 const std::shared_ptr<scale_probe>& p) {
  spdlog::set_level(spdlog::level::warn);  // one info line per event would dominate the figure
  uem::service_options o;
  o.background_refresh = background;
  o.webhook = cfg.webhook.enabled;
  o.now = [p] { return p->base + std::chrono::milliseconds(p->clock_ms.load()); };
  o.make_source = [p](const uem::net::any_io_executor&) -> std::unique_ptr<uem::source> {
    return std::make_unique<scale_source>(p);
  };
  return uem::service::create(cfg, o);
}

/// Looks up dev-[from, to) by UDID, from a few threads (each check is a round trip to the
/// worker).
void populate(uem::service& svc, std::int64_t from, std::int64_t to) {
  constexpr int threads = 4;
  std::vector<std::thread> t;
  t.reserve(threads);
  for (int k = 0; k < threads; ++k) {
    t.emplace_back([&svc, from, to, k] {
      for (auto i = from + k; i < to; i += threads)
        svc.check(uem::device_key::udid(dev(i)));
    });
  }
  for (auto& x : t)
    x.join();
}

}  // namespace

/// One webhook event with n devices cached: authenticated POST, dedup, the device re-read, the
/// result applied to every cache entry naming the device (here two: one looked up by UDID, one
/// by serial), the answer. Time = the worker's CPU time per event (what runs under the cache
/// lock and delays every other lookup); `wall_us` = the round trip seen by the UEM.
static void BM_WebhookApply(benchmark::State& state) {
  const auto n = state.range(0);
  constexpr std::int64_t event_devices = 100;
  auto dir = bench_dir();
  auto p = std::make_shared<scale_probe>();
  auto svc = make_scale_service(bench_config(true, dir), false, p);
  populate(*svc, 0, n);
  for (std::int64_t i = 0; i < event_devices; ++i)
    svc->check(uem::device_key::serial("SN-" + dev(i)));
  uem_test::http_client client("127.0.0.1", svc->webhook_endpoint()->port());
  const auto auth = uem_test::basic_auth("bench", "bench-password");
  const clockid_t worker = p->worker_clock.load();
  std::int64_t event_id = 1;
  double wall = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores)
    const auto udid = dev((event_id * 37) % event_devices);
    const auto body = nlohmann::json{{"EventId", event_id++},
                                     {"EventType", "Compliance Status Changed"},
                                     {"Udid", udid},
                                     {"EventTime", std::to_string(event_id)}}
                          .dump();
    const auto c0 = cpu_ns(worker);
    const auto t0 = std::chrono::steady_clock::now();
    auto res = client.request("POST", "/uem/events", body,
                              {{"Authorization", auth}, {"Content-Type", "application/json"}});
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    const auto c1 = cpu_ns(worker);
    if (res.status != 200) {
      state.SkipWithError("webhook did not answer 200");
      break;
    }
    wall += dt.count();
    state.SetIterationTime(static_cast<double>(c1 - c0) * 1e-9);
  }
  state.counters["wall_us"] =
      benchmark::Counter(wall * 1e6 / static_cast<double>(std::max<std::int64_t>(1, event_id - 1)));
  state.counters["devices"] = static_cast<double>(n);
  svc->stop();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_WebhookApply)
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

/// One background refresh tick with n devices cached, of which `due_per_tick` are due at each
/// tick: the devices are looked up in groups 1 ms apart on the service's clock, the TTL is
/// n / due_per_tick ms, and each tick advances the clock by 1 ms, so the groups come due in turn
/// forever (each re-read makes its group due again one TTL later). Measured: the tick, the
/// re-reads it starts and their results applied. Time = the worker's CPU time per tick.
static void BM_RefreshTick(benchmark::State& state) {
  const auto n = state.range(0);
  constexpr std::int64_t due_per_tick = 10;
  const auto groups = (n + due_per_tick - 1) / due_per_tick;
  auto dir = bench_dir();
  auto p = std::make_shared<scale_probe>();
  auto cfg = bench_config(false, dir);
  cfg.cache.positive_ttl = std::chrono::milliseconds(groups);
  cfg.poll_interval = std::chrono::milliseconds(1);
  auto svc = make_scale_service(cfg, true, p);
  for (std::int64_t g = 0; g < groups; ++g) {
    p->clock_ms = g;  // group g is due at g + groups
    for (auto i = g * due_per_tick; i < std::min(n, (g + 1) * due_per_tick); ++i)
      svc->check(uem::device_key::udid(dev(i)));
  }
  // The clock is at groups - 1: the next tick makes it `groups`, when group 0 is due.
  p->advancing = true;
  std::unique_lock lock(p->m);
  p->cv.wait(lock, [&] { return p->polls >= 2; });  // the first tick at the new time is done
  std::uint64_t polls = p->polls;
  std::int64_t cpu = p->poll_cpu;
  const auto fetches0 = p->fetches.load();
  std::uint64_t ticks = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores)
    p->cv.wait(lock, [&] { return p->polls > polls; });
    const auto dticks = p->polls - polls;
    state.SetIterationTime(static_cast<double>(p->poll_cpu - cpu) * 1e-9 /
                           static_cast<double>(dticks));
    ticks += dticks;
    polls = p->polls;
    cpu = p->poll_cpu;
  }
  lock.unlock();
  p->advancing = false;
  state.counters["refreshed_per_tick"] = static_cast<double>(p->fetches.load() - fetches0) /
                                         static_cast<double>(std::max<std::uint64_t>(1, ticks));
  state.counters["devices"] = static_cast<double>(n);
  svc->stop();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_RefreshTick)
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
