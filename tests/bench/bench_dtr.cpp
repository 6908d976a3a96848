// DTR benchmarks: decision cost against rule count, for the compiled matcher and for the
// linear-scan baseline (tests/support/linear_dtr.hpp), plus compile and YAML load times.
//
//   build/bin/bench_dtr --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Each BM_Decide / BM_LinearScan iteration is one decision. The flows are 3/4 hits on rules at
// uniformly random ranks (all destination kinds) and 1/4 misses that fall to the default.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <random>

#include "dtr/dtr.hpp"
#include "support/linear_dtr.hpp"

namespace {

using namespace tunnelgate::dtr;

struct workload {
  policy_spec spec;
  std::string yaml;
  std::vector<std::pair<std::string, std::uint16_t>> flows;
};

/// A distinct /64 per rule: 2001:db8:XXXX:YYYY::/64 in hex.
std::string v6_net(int i) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "2001:db8:%x:%x::", (i % 65536) | 1, i / 65536);
  return buf;
}

std::string destination_for(int i) {
  const auto n = std::to_string(i);
  switch (i % 5) {
    case 0:
      return "host" + n + ".dept" + std::to_string(i % 97) + ".example.com";
    case 1:
      return "*tenant" + n + ".okta.com";
    case 2:
      return "*.svc" + n + ".corp.example:443";
    case 3:
      return "10." + std::to_string((i / 256) % 256) + "." + std::to_string(i % 256) +
             ".0/24:1-1024";
    default:
      return "[" + v6_net(i) + "/64]:443";
  }
}

std::pair<std::string, std::uint16_t> hit_for(int i) {
  const auto n = std::to_string(i);
  switch (i % 5) {
    case 0:
      return {"host" + n + ".dept" + std::to_string(i % 97) + ".example.com", 443};
    case 1:
      return {"sso.tenant" + n + ".okta.com", 443};
    case 2:
      return {"api.svc" + n + ".corp.example", 443};
    case 3:
      return {"10." + std::to_string((i / 256) % 256) + "." + std::to_string(i % 256) + ".77", 80};
    default:
      return {v6_net(i) + "5", 443};
  }
}

const workload& make(int rules) {
  static std::map<int, workload> cache;
  auto [it, fresh] = cache.try_emplace(rules);
  workload& w = it->second;
  if (!fresh) return w;
  w.spec.origin = "bench";
  rule_set s;
  s.name = "bench";
  s.platforms = {platform::ios};
  s.m = mode::full_device;
  s.default_action = action::bypass;
  w.yaml =
      "rule_sets:\n  - name: bench\n    platforms: [ios]\n    mode: full-device\n"
      "    default: bypass\n    rules:\n";
  for (int i = 0; i < rules; ++i) {
    rule r;
    r.act = i % 2 ? action::tunnel : action::block;
    const auto text = destination_for(i);
    r.destinations.push_back(parse_destination(text).value());
    s.rules.push_back(std::move(r));
    w.yaml += std::string("      - action: ") + (i % 2 ? "tunnel" : "block") +
              "\n        destinations: ['" + text + "']\n";
  }
  w.spec.rule_sets.push_back(std::move(s));
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> rank(0, rules - 1);
  for (int q = 0; q < 4096; ++q) {
    if (q % 4 == 3) {
      w.flows.emplace_back(q % 8 == 3 ? "miss" + std::to_string(q) + ".example.net"
                                      : "192.0.2." + std::to_string(q % 256),
                           443);
    } else {
      w.flows.push_back(hit_for(rank(rng)));
    }
  }
  return w;
}

void BM_Decide(benchmark::State& state) {
  const auto& w = make(static_cast<int>(state.range(0)));
  const auto compiled = compile(w.spec);
  if (!compiled) {
    state.SkipWithError("compile failed");
    return;
  }
  const auto& p = *compiled.value;
  std::size_t i = 0;
  std::int64_t hits = 0;
  for (auto _ : state) {
    const auto& f = w.flows[i++ & 4095];
    const auto d = p.evaluate({f.first, f.second, platform::ios, ""});
    hits += d.rank != 0;
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_Decide)->Arg(10)->Arg(1000)->Arg(10000)->Arg(100000);

void BM_LinearScan(benchmark::State& state) {
  const auto& w = make(static_cast<int>(state.range(0)));
  const auto& s = w.spec.rule_sets[0];
  std::vector<std::optional<ip_address>> ips;
  for (const auto& f : w.flows)
    ips.push_back(parse_ip(f.first));
  std::size_t i = 0;
  for (auto _ : state) {
    const auto k = i++ & 4095;
    const auto& f = w.flows[k];
    // Hosts are already lower case: the baseline is spared normalisation.
    const auto r =
        tunnelgate::dtr::testing::linear_decide(s, f.first, ips[k] ? &*ips[k] : nullptr, f.second);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LinearScan)->Arg(10)->Arg(1000)->Arg(10000)->Arg(100000);

void BM_Compile(benchmark::State& state) {
  const auto& w = make(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto r = compile(w.spec);  // includes copying the spec into the policy
    benchmark::DoNotOptimize(r.value);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Compile)->Arg(10)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);

void BM_LoadYaml(benchmark::State& state) {
  const auto& w = make(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto r = load_rules(w.yaml, "bench.yaml");
    benchmark::DoNotOptimize(r.value);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_LoadYaml)->Arg(10)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
