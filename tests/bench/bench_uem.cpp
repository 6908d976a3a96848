// uem benchmarks: the cached-decision path the gateway takes for every new connection (target
// < 1 µs) and the webhook-to-subscriber latency (target p99 < 50 ms).
//   bench_uem --benchmark_filter=. [--benchmark_min_time=...]
#include <utility>  // before Asio (STYLE P1)

#include <benchmark/benchmark.h>

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

BENCHMARK_MAIN();
