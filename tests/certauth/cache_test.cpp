// The verifier's cache of accepted chains (verify_policy::cache_ttl): hits only where the full
// verification would give the same verdict at that moment; everything else is a miss.
#include <openssl/err.h>

#include <atomic>
#include <set>
#include <thread>

#include "fixture.hpp"

namespace certauth_test {
namespace {

using ca::reason;
using std::chrono::seconds;

pki::cert leaf_from_root(const pki::cert_spec& s) {
  return pki::issue(s, pki::ec_key(), w().root, w().root_key);
}

/// A clock for verify_policy::clock that starts at the real time and moves only when told.
class test_clock {
 public:
  std::function<std::chrono::system_clock::time_point()> fn() const {
    return [base = base_, offset = offset_] { return base + seconds(offset->load()); };
  }
  void set(long s) { offset_->store(s); }

 private:
  std::chrono::system_clock::time_point base_ = std::chrono::system_clock::now();
  std::shared_ptr<std::atomic<long>> offset_ = std::make_shared<std::atomic<long>>(0);
};

ca::verify_policy policy_with(const test_clock& c, seconds ttl = seconds(60)) {
  ca::verify_policy p;
  p.clock = c.fn();
  p.cache_ttl = ttl;
  return p;
}

::testing::AssertionResult stats_are(const ca::verifier& v, std::uint64_t hits,
                                     std::uint64_t misses) {
  const auto s = v.cache_stats();
  if (s.hits == hits && s.misses == misses) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "hits " << s.hits << " misses " << s.misses
                                       << ", expected hits " << hits << " misses " << misses;
}

TEST(VerifyCache, SecondVerificationIsAHitWithTheSameResult) {
  bench b;
  auto spec = leaf_spec("dev-7", "bob@example.com");
  spec.subject.emplace_back("serialNumber", "C02XK7");
  const auto leaf = leaf_from_root(spec);
  const auto first = b.check(leaf);
  ASSERT_TRUE(has_code(first, reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 0, 1));
  EXPECT_EQ(b.v().cache_stats().entries, 1u);

  // A fresh parse of the same PEM: the key is the DER, not the X509 object.
  const auto second = b.check(leaf);
  ASSERT_TRUE(has_code(second, reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 1, 1));
  ASSERT_TRUE(second.identity.has_value());
  EXPECT_EQ(second.identity->udid, "dev-7");
  EXPECT_EQ(second.identity->user, "bob@example.com");
  EXPECT_EQ(second.identity->serial, "C02XK7");
  EXPECT_EQ(second.identity->fingerprint_sha256, first.identity->fingerprint_sha256);
  EXPECT_EQ(second.identity->certificate_serial, first.identity->certificate_serial);
  EXPECT_EQ(second.identity->subject, first.identity->subject);
  EXPECT_EQ(second.identity->not_after, first.identity->not_after);
  EXPECT_EQ(second.warnings, first.warnings);

  // The X509* entry point with no untrusted stack is the same input.
  EXPECT_TRUE(has_code(b.v().verify(leaf.get(), nullptr), reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 2, 1));
}

TEST(VerifyCache, CrlReloadThatRevokesTheLeafIsAMiss) {
  const auto leaf = leaf_from_root(leaf_spec());
  bench b({w().root}, {pki::make_crl(w().root, w().root_key, {})});
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  ASSERT_TRUE(stats_are(b.v(), 1, 1));

  pki::write_atomic(b.dir() / "crl0.pem", pki::pem(pki::make_crl(w().root, w().root_key, {leaf})));
  ASSERT_TRUE(b.store()->reload_if_changed().changed);
  EXPECT_TRUE(has_code(b.check(leaf), reason::revoked));
  EXPECT_TRUE(stats_are(b.v(), 1, 2));
  EXPECT_EQ(b.v().cache_stats().entries, 0u);  // the reload dropped the old entry
  EXPECT_TRUE(has_code(b.check(leaf), reason::revoked));
  EXPECT_TRUE(stats_are(b.v(), 1, 3));
}

TEST(VerifyCache, CaBundleReloadIsAMiss) {
  const auto leaf = leaf_from_root(leaf_spec());
  bench b;
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  pki::write_atomic(b.dir() / "bundle.pem", pki::pem(w().other_root));
  ASSERT_TRUE(b.store()->reload_if_changed().changed);
  EXPECT_TRUE(has_code(b.check(leaf), reason::unknown_ca));

  // Back to the old bundle: accepted again, from a full verification (a new snapshot).
  pki::write_atomic(b.dir() / "bundle.pem", pki::pem(w().root));
  ASSERT_TRUE(b.store()->reload_if_changed().changed);
  EXPECT_TRUE(has_code(b.check(leaf), reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 1, 3));
  // Even an unconditional reload of unchanged files starts afresh.
  ASSERT_TRUE(b.store()->reload().changed);
  EXPECT_TRUE(has_code(b.check(leaf), reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 1, 4));
}

TEST(VerifyCache, EntryExpiresAtTheTtl) {
  test_clock clock;
  bench b({w().root}, {}, policy_with(clock, seconds(60)));
  const auto leaf = leaf_from_root(leaf_spec());
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  clock.set(59);
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 1, 1));
  clock.set(60);
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 1, 2));
  clock.set(100);  // the entry made at 60 lives until 120
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 2, 2));
}

TEST(VerifyCache, LeafPastNotAfterIsRefusedEvenThoughCached) {
  test_clock clock;
  bench b({w().root}, {}, policy_with(clock, seconds(86400)));  // skew: the default 300 s
  auto s = leaf_spec();
  s.not_after = 600;
  const auto leaf = leaf_from_root(s);
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  clock.set(300);
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 1, 1));
  // Past notAfter but within the skew: still accepted, by a full verification (OpenSSL's own
  // view of the certificate changed at notAfter, so the entry ended there).
  clock.set(650);
  EXPECT_TRUE(has_code(b.check(leaf), reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 1, 2));
  clock.set(600 + 300 + 5);
  EXPECT_TRUE(has_code(b.check(leaf), reason::expired));
  EXPECT_TRUE(stats_are(b.v(), 1, 3));
}

TEST(VerifyCache, IntermediatePastNotAfterIsRefusedEvenThoughCached) {
  test_clock clock;
  auto p = policy_with(clock, seconds(86400));
  p.clock_skew = seconds(0);
  bench b({w().root}, {}, p);
  auto spec = pki::ca_spec("Short-lived Issuing CA");
  spec.not_after = 600;
  const auto k = pki::ec_key();
  const auto issuer = pki::issue(spec, k, w().root, w().root_key);
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), issuer, k);
  ASSERT_TRUE(has_code(b.check(leaf, {issuer}), reason::ok));
  clock.set(500);
  ASSERT_TRUE(has_code(b.check(leaf, {issuer}), reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 1, 1));
  clock.set(605);
  const auto r = b.check(leaf, {issuer});
  EXPECT_TRUE(has_code(r, reason::expired));
  EXPECT_NE(r.detail.find("depth 1"), std::string::npos) << r.detail;
  EXPECT_TRUE(stats_are(b.v(), 1, 2));
}

TEST(VerifyCache, StaleCrlUnderRefuseIsRefusedEvenThoughCached) {
  test_clock clock;
  const auto leaf = leaf_from_root(leaf_spec());
  bench b({w().root}, {pki::make_crl(w().root, w().root_key, {}, -60, 600)},
          policy_with(clock, seconds(86400)));
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  clock.set(800);  // past nextUpdate, within the 300 s skew
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 1, 1));
  clock.set(600 + 300 + 5);
  EXPECT_TRUE(has_code(b.check(leaf), reason::crl_expired));
  EXPECT_TRUE(stats_are(b.v(), 1, 2));
}

TEST(VerifyCache, StaleCrlUnderWarnGetsItsWarningDespiteTheCache) {
  test_clock clock;
  auto p = policy_with(clock, seconds(86400));
  p.stale_crl = ca::stale_crl_policy::warn;
  const auto leaf = leaf_from_root(leaf_spec());
  bench b({w().root}, {pki::make_crl(w().root, w().root_key, {}, -60, 600)}, p);
  const auto fresh = b.check(leaf);
  ASSERT_TRUE(has_code(fresh, reason::ok));
  EXPECT_TRUE(fresh.warnings.empty());
  clock.set(905);
  const auto stale = b.check(leaf);
  ASSERT_TRUE(has_code(stale, reason::ok));
  ASSERT_EQ(stale.warnings.size(), 1u);
  EXPECT_NE(stale.warnings[0].find("nextUpdate"), std::string::npos) << stale.warnings[0];
  // The CRL stays stale: that verdict, warning included, is cached in turn.
  clock.set(2000);
  const auto again = b.check(leaf);
  EXPECT_EQ(again.warnings, stale.warnings);
  EXPECT_TRUE(stats_are(b.v(), 1, 2));
}

TEST(VerifyCache, DifferentUntrustedChainIsAMiss) {
  bench b;
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  ASSERT_TRUE(has_code(b.check(leaf, {w().intermediate}), reason::ok));
  ASSERT_TRUE(has_code(b.check(leaf, {w().intermediate, w().root}), reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 0, 2));
  // Without the intermediate the same leaf has no chain: the cached verdicts do not apply.
  EXPECT_TRUE(has_code(b.check(leaf), reason::unknown_ca));
  EXPECT_TRUE(stats_are(b.v(), 0, 3));
  EXPECT_TRUE(has_code(b.check(leaf, {w().intermediate}), reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 1, 3));
}

TEST(VerifyCache, LeastRecentlyUsedIsEvictedBeyondCacheSize) {
  ca::verify_policy p;
  p.cache_size = 2;
  bench b({w().root}, {}, p);
  const auto a = leaf_from_root(leaf_spec("dev-a"));
  const auto bb = leaf_from_root(leaf_spec("dev-b"));
  const auto c = leaf_from_root(leaf_spec("dev-c"));
  ASSERT_TRUE(has_code(b.check(a), reason::ok));
  ASSERT_TRUE(has_code(b.check(bb), reason::ok));
  ASSERT_TRUE(has_code(b.check(a), reason::ok));  // hit: a is now the most recent
  ASSERT_TRUE(has_code(b.check(c), reason::ok));  // evicts b
  auto s = b.v().cache_stats();
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(s.entries, 2u);
  const auto ra = b.check(a);
  ASSERT_TRUE(has_code(ra, reason::ok));
  EXPECT_EQ(ra.identity->udid, "dev-a");
  EXPECT_TRUE(stats_are(b.v(), 2, 3));
  const auto rb = b.check(bb);  // a miss, and evicts c
  ASSERT_TRUE(has_code(rb, reason::ok));
  EXPECT_EQ(rb.identity->udid, "dev-b");
  s = b.v().cache_stats();
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.misses, 4u);
  EXPECT_EQ(s.evictions, 2u);
  EXPECT_EQ(s.entries, 2u);
}

TEST(VerifyCache, TtlZeroOrSizeZeroDisablesIt) {
  const auto leaf = leaf_from_root(leaf_spec());
  ca::verify_policy off;
  off.cache_ttl = seconds(0);
  bench b({w().root}, {}, off);
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  auto s = b.v().cache_stats();
  EXPECT_EQ(s.hits + s.misses + s.evictions + s.entries, 0u);

  ca::verify_policy empty;
  empty.cache_size = 0;
  bench e({w().root}, {}, empty);
  ASSERT_TRUE(has_code(e.check(leaf), reason::ok));
  ASSERT_TRUE(has_code(e.check(leaf), reason::ok));
  s = e.v().cache_stats();
  EXPECT_EQ(s.hits + s.misses + s.evictions + s.entries, 0u);
}

TEST(VerifyCache, RefusalIsNeverCached) {
  test_clock clock;
  bench b({w().root}, {}, policy_with(clock, seconds(86400)));
  auto s = leaf_spec();
  s.not_before = 3600;
  const auto leaf = leaf_from_root(s);
  EXPECT_TRUE(has_code(b.check(leaf), reason::not_yet_valid));
  EXPECT_TRUE(has_code(b.check(leaf), reason::not_yet_valid));
  EXPECT_TRUE(stats_are(b.v(), 0, 2));
  EXPECT_EQ(b.v().cache_stats().entries, 0u);
  clock.set(3600);
  EXPECT_TRUE(has_code(b.check(leaf), reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 0, 3));

  const auto other = pki::issue(leaf_spec(), pki::ec_key(), w().other_root, w().other_key);
  EXPECT_TRUE(has_code(b.check(other), reason::unknown_ca));
  EXPECT_TRUE(has_code(b.check(other), reason::unknown_ca));
  EXPECT_EQ(b.v().cache_stats().entries, 1u);  // the accepted leaf only
}

TEST(VerifyCache, ClockSteppedBackIsAMiss) {
  // Verified 10 s after notBefore without skew: one minute earlier it is not yet valid, and
  // the cached verdict must not say otherwise.
  test_clock clock;
  auto p = policy_with(clock, seconds(3600));
  p.clock_skew = seconds(0);
  bench b({w().root}, {}, p);
  auto s = leaf_spec();
  s.not_before = -10;
  const auto leaf = leaf_from_root(s);
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  clock.set(-60);
  EXPECT_TRUE(has_code(b.check(leaf), reason::not_yet_valid));
  EXPECT_TRUE(stats_are(b.v(), 0, 2));
}

// The property the cache must have: at any moment, a cached verdict is the one a full
// verification would give. Each scenario is stepped through times around its certificates'
// and CRLs' boundaries (and back), comparing a caching verifier with a non-caching one over
// the same trust store and clock.
struct scenario {
  std::string name;
  std::vector<pki::cert> bundle;
  std::vector<pki::crl> crls;
  pki::cert leaf;
  std::vector<pki::cert> sent;
};

void expect_cached_equals_uncached(const scenario& sc, ca::verify_policy base) {
  test_clock clock;
  pki::temp_dir d;
  ca::trust_options o;
  o.ca_bundle = d.write("bundle.pem", pki::pem(sc.bundle));
  for (std::size_t i = 0; i < sc.crls.size(); ++i)
    o.crls.push_back(d.write("crl" + std::to_string(i) + ".pem", pki::pem(sc.crls[i])));
  auto store = std::make_shared<ca::trust_store>(o);
  base.clock = clock.fn();
  auto cached_policy = base;
  cached_policy.cache_ttl = seconds(86400);
  auto full_policy = base;
  full_policy.cache_ttl = seconds(0);
  const ca::verifier cached(store, cached_policy), full(store, full_policy);
  const std::string input = pki::pem(sc.leaf) + pki::pem(sc.sent);
  std::set<std::string> seen;
  for (const long t :
       {0L,    1L,    99L,   100L,  101L,  299L,  300L,    301L, 399L,  400L,  401L,
        599L,  600L,  601L,  650L,  899L,  900L,  901L,    905L, 1199L, 1200L, 1201L,
        1499L, 1500L, 1501L, 1505L, 1600L, 5000L, 100000L, 600L, 0L,    -100L, 2000L}) {
    clock.set(t);
    const auto want = full.verify_encoded(input);
    seen.insert(std::string(ca::to_string(want.code)));
    for (int round = 0; round < 2; ++round) {
      const auto got = cached.verify_encoded(input);
      EXPECT_EQ(got.code, want.code)
          << sc.name << " at +" << t << " s: cached " << ca::to_string(got.code) << ", full "
          << ca::to_string(want.code) << ": " << want.detail;
      EXPECT_EQ(got.warnings, want.warnings) << sc.name << " at +" << t << " s";
    }
  }
  EXPECT_GT(cached.cache_stats().hits, 0u) << sc.name;
  std::string codes;
  for (const auto& c : seen)
    codes += c + " ";
  ::testing::Test::RecordProperty(sc.name, codes);
}

TEST(VerifyCache, CachedVerdictEqualsFullVerificationOverTime) {
  const auto root_crl_key = w().root_key;
  // A chain whose leaf, intermediate and intermediate's CRL run out at different times.
  auto int_spec = pki::ca_spec("Expiring Issuing CA");
  int_spec.not_after = 1200;
  const auto int_key = pki::ec_key();
  const auto intermediate = pki::issue(int_spec, int_key, w().root, w().root_key);
  auto leaf_s = leaf_spec();
  leaf_s.not_after = 1500;
  const auto leaf = pki::issue(leaf_s, pki::ec_key(), intermediate, int_key);
  const scenario expiring{"expiring",
                          {w().root, intermediate},
                          {pki::make_crl(w().root, root_crl_key, {}),
                           pki::make_crl(intermediate, int_key, {}, -60, 600)},
                          leaf,
                          {}};

  // A renewal of the issuing CA (same name and key) that becomes valid later and only allows
  // serverAuth: once both are valid, OpenSSL may pick the renewal, and the chain is refused.
  const auto ren_key = pki::ec_key();
  auto a_spec = pki::ca_spec("Renewed Issuing CA");
  const auto a = pki::issue(a_spec, ren_key, w().root, w().root_key);
  auto b_spec = a_spec;
  b_spec.not_before = 600;
  b_spec.eku = "serverAuth";
  const auto b = pki::issue(b_spec, ren_key, w().root, w().root_key);
  const auto ren_leaf = pki::issue(leaf_spec(), pki::ec_key(), a, ren_key);

  // A CRL published with a thisUpdate ahead of the gateway's clock (clocks out of step):
  // stale until then, which `warn` reports and `refuse` refuses.
  const scenario early_crl{"early crl",
                           {w().root},
                           {pki::make_crl(w().root, w().root_key, {}, 400, 5000)},
                           leaf_from_root(leaf_spec()),
                           {}};

  for (const long skew : {0L, 300L}) {
    for (const auto stale : {ca::stale_crl_policy::refuse, ca::stale_crl_policy::warn}) {
      ca::verify_policy p;
      p.clock_skew = seconds(skew);
      p.stale_crl = stale;
      expect_cached_equals_uncached(expiring, p);
      expect_cached_equals_uncached(early_crl, p);
      expect_cached_equals_uncached({"renewal a,b", {w().root, a, b}, {}, ren_leaf, {}}, p);
      expect_cached_equals_uncached({"renewal b,a", {w().root, b, a}, {}, ren_leaf, {}}, p);
      expect_cached_equals_uncached({"renewal sent", {w().root}, {}, ren_leaf, {a, b}}, p);
      expect_cached_equals_uncached({"renewal sent b,a", {w().root}, {}, ren_leaf, {b, a}}, p);
    }
  }
}

class counting_checker final : public ca::revocation_checker {
 public:
  verdict check(X509*, X509*, std::chrono::system_clock::time_point) const override {
    ++calls;
    return {};
  }
  mutable std::atomic<int> calls{0};
};

TEST(VerifyCache, NotUsedWithARevocationChecker) {
  pki::temp_dir d;
  ca::trust_options o;
  o.ca_bundle = d.write("b.pem", pki::pem(w().root));
  auto checker = std::make_shared<counting_checker>();
  ca::verifier v(std::make_shared<ca::trust_store>(o), {}, checker);
  const auto leaf = leaf_from_root(leaf_spec());
  EXPECT_TRUE(has_code(v.verify(leaf.get(), nullptr), reason::ok));
  EXPECT_TRUE(has_code(v.verify(leaf.get(), nullptr), reason::ok));
  EXPECT_EQ(checker->calls.load(), 2);  // consulted every time
  EXPECT_TRUE(stats_are(v, 0, 0));
}

TEST(VerifyCache, InvalidTtlIsRejected) {
  pki::temp_dir d;
  ca::trust_options o;
  o.ca_bundle = d.write("b.pem", pki::pem(w().root));
  auto store = std::make_shared<ca::trust_store>(o);
  for (const auto ttl : {seconds(-1), seconds(86401)}) {
    ca::verify_policy p;
    p.cache_ttl = ttl;
    try {
      ca::verifier v(store, p);
      ADD_FAILURE() << "accepted cache_ttl " << ttl.count();
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), ca::errc::bad_config);
    }
  }
}

TEST(VerifyCache, HitLeavesTheErrorQueueAsFound) {
  bench b;
  const auto leaf = leaf_from_root(leaf_spec());
  ASSERT_TRUE(has_code(b.check(leaf), reason::ok));
  ERR_clear_error();
  ERR_raise(ERR_LIB_X509, X509_R_CERT_ALREADY_IN_HASH_TABLE);
  const unsigned long mine = ERR_peek_last_error();
  ASSERT_TRUE(has_code(b.v().verify(leaf.get(), nullptr), reason::ok));
  EXPECT_TRUE(stats_are(b.v(), 1, 1));
  EXPECT_EQ(ERR_peek_last_error(), mine);
  EXPECT_EQ(ERR_get_error(), mine);
  EXPECT_EQ(ERR_get_error(), 0ul);
}

TEST(VerifyCache, ConcurrentVerificationsAgree) {
  ca::verify_policy p;
  p.cache_size = 4;  // smaller than the working set: hits, misses and evictions interleave
  bench b({w().root}, {}, p);
  std::vector<pki::cert> leaves;
  leaves.reserve(8);
  for (int i = 0; i < 8; ++i)
    leaves.push_back(leaf_from_root(leaf_spec("dev-" + std::to_string(i))));
  constexpr int threads = 4, rounds = 200;
  std::atomic<int> wrong{0};
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < rounds; ++i) {
        const auto n = static_cast<std::size_t>((i * (t + 1)) % 8);
        const auto r = b.v().verify(leaves[n].get(), nullptr);
        if (!r.ok() || r.identity->udid != "dev-" + std::to_string(n)) ++wrong;
      }
    });
  }
  for (auto& th : pool)
    th.join();
  EXPECT_EQ(wrong.load(), 0);
  const auto s = b.v().cache_stats();
  EXPECT_EQ(s.hits + s.misses, static_cast<std::uint64_t>(threads) * rounds);
  EXPECT_LE(s.entries, 4u);
  EXPECT_GT(s.hits, 0u);
  EXPECT_GT(s.evictions, 0u);
}

}  // namespace
}  // namespace certauth_test
