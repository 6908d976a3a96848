// The per-address egress checks (issue 10) next to the rules decision they were added to
// (issue 12: "no regression from the per-address checks, measure them"). A CONNECT used to cost
// one rules decision on the name; since issue 10 every resolved address also passes
// egress_policy::check (normalisation, the special ranges, egress.allow/deny, the host's own
// addresses and listeners, the rules again on the address, the private ranges).
//   bench_egress --benchmark_filter=. [--benchmark_repetitions=3]
// Pure function calls: nothing is sent; the public addresses are documentation ranges.
#include <utility>  // before Asio (STYLE P1)

#include <benchmark/benchmark.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "dtr/dtr.hpp"
#include "gateway/egress_policy.hpp"

namespace gw = tunnelgate::gateway;
namespace dtr = tunnelgate::dtr;

namespace {

/// A full-device rule set with `n` rules: the Okta and Entra login hosts tunnelled, then
/// alternating tunnel CIDRs (10.x.y.0/24), block CIDRs (198.18.x.y/32) and host suffixes.
std::shared_ptr<const dtr::policy> rules(int n) {
  std::string y =
      "rule_sets:\n"
      "  - name: bench\n"
      "    platforms: [ios]\n"
      "    mode: full-device\n"
      "    default: bypass\n"
      "    rules:\n"
      "      - action: tunnel\n"
      "        destinations: [\"*tenant.okta.com\", \"*login.microsoftonline.com\"]\n";
  for (int i = 0; i < n; ++i) {
    const auto a = std::to_string((i / 256) % 256);
    const auto b = std::to_string(i % 256);
    switch (i % 3) {
      case 0:
        y += "      - action: tunnel\n        destinations: [\"10." + a + "." + b + ".0/24\"]\n";
        break;
      case 1:
        y += "      - action: block\n        destinations: [\"198.18." + a + "." + b + "\"]\n";
        break;
      default:
        y += "      - action: tunnel\n        destinations: [\"*app" + std::to_string(i) +
             ".example.com\"]\n";
        break;
    }
  }
  auto r = dtr::load_rules(y, "bench.yaml");
  if (!r) return nullptr;
  return r.value;
}

/// A range of the workload; a typo must stop the run, not become 0.0.0.0/0.
gw::cidr must(std::string_view text) {
  std::string error;
  auto c = gw::cidr::parse(text, error);
  if (!c) throw std::invalid_argument(std::string(text) + ": " + error);
  return *c;
}

/// A gateway's policy as configured in the field: a few allow and deny ranges, three listeners,
/// a handful of host addresses.
gw::egress_policy make_policy() {
  gw::egress_policy_options o;
  o.allow = {must("10.200.0.0/16"), must("fd00:1::/48")};
  o.deny = {must("10.66.0.0/16"), must("203.0.113.0/28"), must("2001:db8:dead::/48")};
  const auto addr = [](const char* t) { return gw::net::ip::make_address(t); };
  o.own_endpoints = {{addr("0.0.0.0"), 8443}, {addr("127.0.0.1"), 9090}, {addr("::"), 8444}};
  o.host = std::make_shared<gw::host_addresses>(
      std::vector<gw::net::ip::address>{addr("127.0.0.1"), addr("::1"), addr("192.0.2.10"),
                                        addr("10.0.0.5"), addr("fe80::1")},
      std::vector<gw::net::ip::address>{addr("10.0.0.255")});
  o.never = {must("100.96.0.0/16")};
  return gw::egress_policy(std::move(o));
}

/// The destinations a login sees: public addresses (allowed), tunnelled private addresses,
/// blocked and denied ones, IPv6 and IPv4-mapped.
const std::vector<gw::tcp::endpoint>& endpoints() {
  static const std::vector<gw::tcp::endpoint> eps = [] {
    std::vector<gw::tcp::endpoint> v;
    for (const char* t : {"192.0.2.77", "198.51.100.20", "10.0.3.9", "198.18.0.1", "10.66.1.1",
                          "2001:db8::1", "::ffff:192.0.2.33", "172.16.5.5"})
      v.emplace_back(gw::net::ip::make_address(t), 443);
    return v;
  }();
  return eps;
}

/// A benchmark whose policy does not decide as configured measures nothing: the run fails.
bool failed = false;

/// Marks the benchmark (and the run) failed with `why`.
void fail(benchmark::State& state, const std::string& why) {
  state.SkipWithError(why.c_str());
  failed = true;
}

/// rules(state.range(0)), or null with the benchmark failed.
std::shared_ptr<const dtr::policy> loaded_rules(benchmark::State& state) {
  auto p = rules(static_cast<int>(state.range(0)));
  if (!p) fail(state, "the rules did not load");
  return p;
}

/// The verdicts the workload is built to produce, checked before a figure is taken.
bool verdicts_as_expected(const gw::egress_policy& policy, const dtr::policy& p,
                          benchmark::State& state) {
  const struct {
    const char* address;
    gw::egress_block expected;
  } cases[] = {
      {"192.0.2.77", gw::egress_block::none},
      {"10.0.3.9", gw::egress_block::none},
      {"198.18.0.1", gw::egress_block::rule_block},
      {"10.66.1.1", gw::egress_block::denied},
      {"172.16.5.5", gw::egress_block::private_range},
      {"192.0.2.10", gw::egress_block::host_address},
      {"127.0.0.1", gw::egress_block::loopback},
  };
  for (const auto& c : cases) {
    const auto v =
        policy.check({gw::net::ip::make_address(c.address), 443}, p, dtr::platform::ios, "");
    if (v.block != c.expected) {
      fail(state, std::string(c.address) + ": " + std::string(gw::to_string(v.block)) +
                      ", expected " + std::string(gw::to_string(c.expected)));
      return false;
    }
  }
  return true;
}

}  // namespace

/// What a CONNECT cost before issue 10: one rules decision on the name.
static void BM_RulesOnName(benchmark::State& state) {
  const auto p = loaded_rules(state);
  if (!p) return;
  if (p->evaluate({"tenant.okta.com", 443, dtr::platform::ios, ""}).act != dtr::action::tunnel) {
    fail(state, "tenant.okta.com is not tunnelled");
    return;
  }
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores)
    const auto d = p->evaluate({"tenant.okta.com", 443, dtr::platform::ios, ""});
    benchmark::DoNotOptimize(d);
  }
  state.counters["rules"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_RulesOnName)->Arg(10)->Arg(1000)->Arg(10000);

/// What issue 10 added per resolved address: egress_policy::check (which decides the rules
/// again on the address).
static void BM_EgressCheck(benchmark::State& state) {
  const auto p = loaded_rules(state);
  if (!p) return;
  const auto policy = make_policy();
  if (!verdicts_as_expected(policy, *p, state)) return;
  const auto& eps = endpoints();
  std::size_t i = 0;
  std::int64_t allowed = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores)
    const auto v = policy.check(eps[i++ % eps.size()], *p, dtr::platform::ios, "");
    allowed += v.allowed() ? 1 : 0;
    benchmark::DoNotOptimize(v);
  }
  state.counters["rules"] = static_cast<double>(state.range(0));
  state.counters["allowed_ratio"] =
      static_cast<double>(allowed) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_EgressCheck)->Arg(10)->Arg(1000)->Arg(10000);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return failed ? 1 : 0;
}
