// certauth verification throughput: the library (chain + policy + identity) against plain
// X509_verify_cert on the same root -> intermediate -> leaf chain, for EC P-256 and RSA-2048.
// Single-threaded, so items/s is verifications per second per core. The verifier's cache
// (verify_policy::cache_ttl) is off except in BM_CertauthCache*: a hit (the same chain again)
// and a miss (every chain new: full verification plus the key, the insertion and an
// eviction), and BM_CacheKey, the SHA-256 of the chain's DER that every lookup pays.
// The peer's certificates are parsed from DER, as a TLS stack hands them over: an object
// signed in memory re-encodes its tbsCertificate on every i2d_X509, which is slower.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "certauth/certauth.hpp"
#include "pki.hpp"  // tests/certauth: the test-time PKI

namespace {

namespace ca = tunnelgate::certauth;

// The same certificate, decoded from its DER encoding.
pki::cert parsed(const pki::cert& c) {
  const std::string der = pki::der(c);
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  return pki::cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())), pki::x509_free{});
}

struct chain {
  pki::cert root, intermediate, leaf;
  pki::key int_key;
  STACK_OF(X509) * untrusted = sk_X509_new_null();
  X509_STORE* store = X509_STORE_new();
  std::unique_ptr<pki::temp_dir> dir = std::make_unique<pki::temp_dir>();
  std::unique_ptr<ca::verifier> plain_lib, crl_lib, cached_lib, missing_lib;
  std::vector<pki::cert> other_leaves;  // same key and names as `leaf`, other serials
  std::size_t next_other = 0;           // BM_CertauthCacheMiss's position, kept across runs

  explicit chain(bool rsa) {
    const auto key = [rsa] { return rsa ? pki::rsa_key(2048) : pki::ec_key("P-256"); };
    const auto root_key = key();
    int_key = key();
    root = pki::issue(pki::ca_spec("Bench Root"), root_key, nullptr, root_key);
    intermediate = parsed(pki::issue(pki::ca_spec("Bench Issuing CA"), int_key, root, root_key));
    pki::cert_spec s;
    s.subject = {{"CN", "00008030-001A2D3E0C38802E"}, {"serialNumber", "C02XK1"}};
    s.san = {"email:alice@example.com", "URI:urn:udid:00008030-001A2D3E0C38802E"};
    const auto leaf_key = key();
    leaf = parsed(pki::issue(s, leaf_key, intermediate, int_key));
    sk_X509_push(untrusted, intermediate.get());
    X509_STORE_add_cert(store, root.get());
    other_leaves.reserve(256);
    for (int i = 0; i < 256; ++i)
      other_leaves.push_back(parsed(pki::issue(s, leaf_key, intermediate, int_key)));

    ca::verify_policy uncached;
    uncached.cache_ttl = std::chrono::seconds(0);
    ca::trust_options o;
    o.ca_bundle = dir->write("bundle.pem", pki::pem(root));
    plain_lib = std::make_unique<ca::verifier>(std::make_shared<ca::trust_store>(o), uncached);
    // With CRLs as a deployment would have them: 1000 revoked devices under the intermediate.
    std::vector<pki::cert> revoked;
    revoked.reserve(1000);
    for (int i = 0; i < 1000; ++i)
      revoked.push_back(pki::issue(s, int_key, intermediate, int_key));
    o.ca_bundle = dir->write("bundle2.pem", pki::pem({root, intermediate}));
    o.crls = {dir->write("int.crl", pki::pem(pki::make_crl(intermediate, int_key, revoked))),
              dir->write("root.crl", pki::pem(pki::make_crl(root, root_key, {})))};
    const auto crl_store = std::make_shared<ca::trust_store>(o);
    crl_lib = std::make_unique<ca::verifier>(crl_store, uncached);
    cached_lib = std::make_unique<ca::verifier>(crl_store);  // the default cache
    // Fewer entries than other_leaves, cycled through: every lookup misses and evicts.
    ca::verify_policy small;
    small.cache_size = 64;
    missing_lib = std::make_unique<ca::verifier>(crl_store, small);
  }
  ~chain() {
    sk_X509_free(untrusted);
    X509_STORE_free(store);
  }
};

chain& ec_chain() {
  static chain c(false);
  return c;
}
chain& rsa_chain() {
  static chain c(true);
  return c;
}
chain& pick(int64_t which) {
  return which == 0 ? ec_chain() : rsa_chain();
}

void BM_PlainX509VerifyCert(benchmark::State& state) {
  auto& c = pick(state.range(0));
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, c.store, c.leaf.get(), c.untrusted);
    const int ok = X509_verify_cert(ctx);
    X509_STORE_CTX_free(ctx);
    if (ok != 1) state.SkipWithError("plain verification failed");
    benchmark::DoNotOptimize(ok);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Certauth(benchmark::State& state) {
  auto& c = pick(state.range(0));
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    auto r = c.plain_lib->verify(c.leaf.get(), c.untrusted);
    if (!r.ok()) state.SkipWithError(r.detail.c_str());
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_CertauthWithCrls(benchmark::State& state) {
  auto& c = pick(state.range(0));
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    auto r = c.crl_lib->verify(c.leaf.get(), c.untrusted);
    if (!r.ok()) state.SkipWithError(r.detail.c_str());
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_CertauthCacheHit(benchmark::State& state) {
  auto& c = pick(state.range(0));
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    auto r = c.cached_lib->verify(c.leaf.get(), c.untrusted);
    if (!r.ok()) state.SkipWithError(r.detail.c_str());
    benchmark::DoNotOptimize(r);
  }
  const auto s = c.cached_lib->cache_stats();
  state.counters["hit_ratio"] =
      static_cast<double>(s.hits) / static_cast<double>(s.hits + s.misses);
  state.SetItemsProcessed(state.iterations());
}

void BM_CertauthCacheMiss(benchmark::State& state) {
  auto& c = pick(state.range(0));
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    auto r = c.missing_lib->verify(c.other_leaves[c.next_other].get(), c.untrusted);
    c.next_other = (c.next_other + 1) % c.other_leaves.size();
    if (!r.ok()) state.SkipWithError(r.detail.c_str());
    benchmark::DoNotOptimize(r);
  }
  if (c.missing_lib->cache_stats().hits != 0) state.SkipWithError("a miss benchmark hit");
  state.SetItemsProcessed(state.iterations());
}

// What the cache computes for its key (verify_cache::key_of): the DER of the leaf and of the
// untrusted chain, hashed with SHA-256.
void BM_CacheKey(benchmark::State& state) {
  auto& c = pick(state.range(0));
  EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, sha256, nullptr);
    const auto add = [md](X509* x) {
      unsigned char* der = nullptr;
      const int len = i2d_X509(x, &der);
      EVP_DigestUpdate(md, der, static_cast<std::size_t>(len));
      OPENSSL_free(der);
    };
    add(c.leaf.get());
    for (int k = 0; k < sk_X509_num(c.untrusted); ++k)
      add(sk_X509_value(c.untrusted, k));
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(md, out, &n);
    EVP_MD_CTX_free(md);
    benchmark::DoNotOptimize(out);
  }
  EVP_MD_free(sha256);
  state.SetItemsProcessed(state.iterations());
}

// Arg 0 = EC P-256 chain, 1 = RSA-2048 chain.
BENCHMARK(BM_PlainX509VerifyCert)->Arg(0)->Arg(1);
BENCHMARK(BM_Certauth)->Arg(0)->Arg(1);
BENCHMARK(BM_CertauthWithCrls)->Arg(0)->Arg(1);
BENCHMARK(BM_CertauthCacheHit)->Arg(0)->Arg(1);
BENCHMARK(BM_CertauthCacheMiss)->Arg(0)->Arg(1);
BENCHMARK(BM_CacheKey)->Arg(0)->Arg(1);

// Collects items/s per run so main() can print the comparison table.
class collecting_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      const auto it = r.counters.find("items_per_second");
      if (it != r.counters.end() && !r.error_occurred) rate[r.benchmark_name()] = it->second;
    }
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, double> rate;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  collecting_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  std::printf("\n%-10s %18s %18s %10s %20s\n", "chain", "X509_verify_cert/s", "certauth/s",
              "overhead", "certauth+CRLs/s");
  for (const auto& row : {std::pair{"0", "EC P-256"}, std::pair{"1", "RSA-2048"}}) {
    const std::string arg = row.first;
    const char* label = row.second;
    const auto get = [&](const char* name) {
      const auto it = reporter.rate.find(std::string(name) + "/" + arg);
      return it == reporter.rate.end() ? 0.0 : it->second;
    };
    const double plain = get("BM_PlainX509VerifyCert"), lib = get("BM_Certauth"),
                 crl = get("BM_CertauthWithCrls");
    if (plain <= 0 || lib <= 0) continue;
    std::printf("%-10s %18.0f %18.0f %9.1f%% %20.0f\n", label, plain, lib,
                (plain / lib - 1.0) * 100.0, crl);
  }
  // The cache, against certauth+CRLs (what the gateway runs) without it.
  std::printf("\n%-10s %16s %16s %16s %16s\n", "chain", "uncached/s", "cache hit/s", "cache miss/s",
              "key (SHA-256)/s");
  for (const auto& row : {std::pair{"0", "EC P-256"}, std::pair{"1", "RSA-2048"}}) {
    const std::string arg = row.first;
    const auto get = [&](const char* name) {
      const auto it = reporter.rate.find(std::string(name) + "/" + arg);
      return it == reporter.rate.end() ? 0.0 : it->second;
    };
    const double crl = get("BM_CertauthWithCrls"), hit = get("BM_CertauthCacheHit"),
                 miss = get("BM_CertauthCacheMiss"), key = get("BM_CacheKey");
    if (crl <= 0 || hit <= 0) continue;
    std::printf("%-10s %16.0f %16.0f %16.0f %16.0f\n", row.second, crl, hit, miss, key);
  }
  return 0;
}
