// Loading the CA bundle and CRLs, reload on change, and reload while other threads verify.
#include <algorithm>
#include <atomic>
#include <fstream>
#include <thread>

#include "fixture.hpp"

namespace certauth_test {
namespace {

using ca::reason;

ca::errc load_error(const ca::trust_options& o, std::string* message = nullptr) {
  try {
    ca::trust_store s(o);
  } catch (const std::system_error& e) {
    if (message) *message = e.what();
    EXPECT_EQ(&e.code().category(), &ca::error_category());
    return static_cast<ca::errc>(e.code().value());
  }
  return ca::errc{};
}

TEST(TrustStoreLoad, MissingBundle) {
  pki::temp_dir d;
  ca::trust_options o;
  o.ca_bundle = d / "nope.pem";
  std::string msg;
  EXPECT_EQ(load_error(o, &msg), ca::errc::file_unreadable);
  EXPECT_NE(msg.find("nope.pem"), std::string::npos) << msg;
}

TEST(TrustStoreLoad, EmptyOrGarbageBundle) {
  pki::temp_dir d;
  ca::trust_options o;
  o.ca_bundle = d.write("empty.pem", "");
  EXPECT_EQ(load_error(o), ca::errc::bad_ca_bundle);
  o.ca_bundle = d.write("garbage.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
  EXPECT_EQ(load_error(o), ca::errc::bad_ca_bundle);
}

TEST(TrustStoreLoad, LeafInBundleIsRefused) {
  pki::temp_dir d;
  ca::trust_options o;
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().root, w().root_key);
  o.ca_bundle = d.write("b.pem", pki::pem({w().root, leaf}));
  std::string msg;
  EXPECT_EQ(load_error(o, &msg), ca::errc::bad_ca_bundle);
  EXPECT_NE(msg.find("not a CA"), std::string::npos) << msg;
}

TEST(TrustStoreLoad, KeyInBundleIsRefused) {
  pki::temp_dir d;
  ca::trust_options o;
  o.ca_bundle =
      d.write("b.pem", pki::pem(w().root) +
                           "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  EXPECT_EQ(load_error(o), ca::errc::bad_ca_bundle);
}

TEST(TrustStoreLoad, CommentsBetweenBlocksAreFine) {
  pki::temp_dir d;
  ca::trust_options o;
  o.ca_bundle = d.write("b.pem", "# device root\n" + pki::pem(w().root) + "\n# issuing\n" +
                                     pki::pem(w().intermediate));
  ca::trust_store s(o);
  EXPECT_EQ(s.summary().ca_count, 2u);
}

TEST(TrustStoreLoad, CrlFromUnknownIssuer) {
  pki::temp_dir d;
  ca::trust_options o;
  o.ca_bundle = d.write("b.pem", pki::pem(w().root));
  o.crls = {d.write("c.pem", pki::pem(pki::make_crl(w().other_root, w().other_key, {})))};
  std::string msg;
  EXPECT_EQ(load_error(o, &msg), ca::errc::bad_crl);
  EXPECT_NE(msg.find("not signed by any CA"), std::string::npos) << msg;
}

TEST(TrustStoreLoad, CrlWithForgedSignature) {
  // Issuer name of the trusted root, signed with another key.
  pki::temp_dir d;
  ca::trust_options o;
  o.ca_bundle = d.write("b.pem", pki::pem(w().root));
  o.crls = {d.write("c.pem", pki::pem(pki::make_crl(w().root, w().other_key, {})))};
  EXPECT_EQ(load_error(o), ca::errc::bad_crl);
}

TEST(TrustStoreLoad, GarbageAndSha1Crl) {
  pki::temp_dir d;
  ca::trust_options o;
  o.ca_bundle = d.write("b.pem", pki::pem(w().root));
  o.crls = {d.write("c.der", "not a crl")};
  EXPECT_EQ(load_error(o), ca::errc::bad_crl);
  o.crls = {d.write("c.pem",
                    pki::pem(pki::make_crl(w().root, w().root_key, {}, -60, 86400, EVP_sha1())))};
  EXPECT_EQ(load_error(o), ca::errc::bad_crl);
}

std::size_t count_containing(const std::vector<std::string>& lines, const std::string& text) {
  return static_cast<std::size_t>(std::count_if(lines.begin(), lines.end(), [&](const auto& l) {
    return l.find(text) != std::string::npos;
  }));
}

TEST(TrustStoreLoad, WarnsForEachCaWithoutCrl) {
  bench b({w().root, w().intermediate, w().other_root},
          {pki::make_crl(w().intermediate, w().int_key, {})});
  const auto s = b.store()->summary();
  EXPECT_TRUE(s.crl_required);
  EXPECT_EQ(count_containing(s.warnings, "has no CRL"), 2u) << testing::PrintToString(s.warnings);
  EXPECT_EQ(count_containing(s.warnings, "CA 'CN=Test Device Root,O=test' has no CRL"), 1u);
  EXPECT_EQ(count_containing(s.warnings, "CA 'CN=Other Root,O=test' has no CRL"), 1u);
  EXPECT_EQ(count_containing(s.warnings, "refused (no_crl)"), 2u);
  EXPECT_EQ(count_containing(s.warnings, "Issuing CA"), 0u);
}

TEST(TrustStoreLoad, WithoutAnyCrlEveryCaIsNamedAndNothingIsRequired) {
  bench b({w().root, w().intermediate});
  const auto s = b.store()->summary();
  EXPECT_FALSE(s.crl_required);
  EXPECT_EQ(count_containing(s.warnings, "accepted without a revocation check"), 2u)
      << testing::PrintToString(s.warnings);
}

TEST(TrustStoreLoad, CrlRequiredNeedsACrlFile) {
  pki::temp_dir d;
  ca::trust_options o;
  o.ca_bundle = d.write("b.pem", pki::pem(w().root));
  o.crl_required = true;
  std::string msg;
  EXPECT_EQ(load_error(o, &msg), ca::errc::bad_config);
  EXPECT_NE(msg.find("no CRL file is configured"), std::string::npos) << msg;
  // Off explicitly, with a CRL configured.
  o.crls = {d.write("c.pem", pki::pem(pki::make_crl(w().root, w().root_key, {})))};
  o.crl_required = false;
  EXPECT_FALSE(o.requires_crl());
  EXPECT_FALSE(ca::trust_store(o).summary().crl_required);
  o.crl_required.reset();
  EXPECT_TRUE(o.requires_crl());
}

TEST(TrustStoreLoad, ExpiredCaIsReported) {
  const auto k = pki::ec_key();
  auto spec = pki::ca_spec("Renewed Root");
  spec.not_before = -800L * 86400;
  spec.not_after = -86400;
  const auto old_cert = pki::issue(spec, k, nullptr, k);
  spec.not_before = -86400;
  spec.not_after = 800L * 86400;
  const auto new_cert = pki::issue(spec, k, nullptr, k);
  auto warnings = bench({new_cert, old_cert}).store()->summary().warnings;
  EXPECT_EQ(count_containing(warnings, "expired at"), 1u) << testing::PrintToString(warnings);
  EXPECT_EQ(count_containing(warnings, "is used instead"), 1u);
  EXPECT_EQ(count_containing(warnings, "has no CRL"), 1u);  // one CA, two certificates
  warnings = bench({old_cert}).store()->summary().warnings;
  EXPECT_EQ(count_containing(warnings, "renew the CA"), 1u) << testing::PrintToString(warnings);
}

TEST(TrustStoreReload, ReloadResultCarriesTheNewSnapshotsWarnings) {
  const auto root_crl = pki::make_crl(w().root, w().root_key, {});
  const auto int_crl = pki::make_crl(w().intermediate, w().int_key, {});
  bench b({w().root, w().intermediate}, {root_crl});
  EXPECT_EQ(count_containing(b.store()->summary().warnings, "Issuing CA"), 1u);
  // One file may hold several CRLs: adding the intermediate's clears the warning.
  pki::write_atomic(b.dir() / "crl0.pem", pki::pem(root_crl) + pki::pem(int_crl));
  auto r = b.store()->reload_if_changed();
  ASSERT_TRUE(r.changed) << r.message;
  EXPECT_TRUE(r.warnings.empty()) << testing::PrintToString(r.warnings);
  pki::write_atomic(b.dir() / "crl0.pem", pki::pem(root_crl));
  r = b.store()->reload_if_changed();
  ASSERT_TRUE(r.changed) << r.message;
  EXPECT_EQ(count_containing(r.warnings, "Issuing CA"), 1u) << testing::PrintToString(r.warnings);
  EXPECT_EQ(r.warnings, b.store()->summary().warnings);
  r = b.store()->reload_if_changed();  // nothing changed: nothing to log again
  EXPECT_FALSE(r.changed);
  EXPECT_TRUE(r.warnings.empty());
}

TEST(TrustStoreReload, UnchangedFilesDoNothing) {
  bench b({w().root}, {pki::make_crl(w().root, w().root_key, {})});
  const auto before = b.store()->snapshot();
  const auto r = b.store()->reload_if_changed();
  EXPECT_FALSE(r.changed);
  EXPECT_FALSE(r.error);
  EXPECT_EQ(b.store()->snapshot(), before);
}

TEST(TrustStoreReload, CrlChangeTakesEffect) {
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().root, w().root_key);
  bench b({w().root}, {pki::make_crl(w().root, w().root_key, {})});
  EXPECT_TRUE(has_code(b.check(leaf), reason::ok));
  pki::write_atomic(b.dir() / "crl0.pem", pki::pem(pki::make_crl(w().root, w().root_key, {leaf})));
  const auto r = b.store()->reload_if_changed();
  EXPECT_TRUE(r.changed);
  EXPECT_FALSE(r.error) << r.message;
  EXPECT_TRUE(has_code(b.check(leaf), reason::revoked));
}

TEST(TrustStoreReload, BundleChangeTakesEffect) {
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().other_root, w().other_key);
  bench b;
  EXPECT_TRUE(has_code(b.check(leaf), reason::unknown_ca));
  pki::write_atomic(b.dir() / "bundle.pem", pki::pem({w().root, w().other_root}));
  EXPECT_TRUE(b.store()->reload_if_changed().changed);
  EXPECT_TRUE(has_code(b.check(leaf), reason::ok));
  EXPECT_EQ(b.store()->summary().ca_count, 2u);
}

TEST(TrustStoreReload, BadFileKeepsOldSnapshotAndReportsOnce) {
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().root, w().root_key);
  bench b({w().root}, {pki::make_crl(w().root, w().root_key, {})});
  const auto before = b.store()->snapshot();
  {
    std::ofstream out(b.dir() / "crl0.pem", std::ios::trunc);
    out << "-----BEGIN X509 CRL-----\ntruncated";
  }
  auto r = b.store()->reload_if_changed();
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(r.error, ca::errc::bad_crl);
  EXPECT_NE(r.message.find("crl0.pem"), std::string::npos) << r.message;
  EXPECT_EQ(b.store()->snapshot(), before);
  EXPECT_TRUE(has_code(b.check(leaf), reason::ok));
  r = b.store()->reload_if_changed();  // same broken state: not retried, not re-reported
  EXPECT_FALSE(r.changed);
  EXPECT_FALSE(r.error);
  r = b.store()->reload();  // explicit reload retries and reports again
  EXPECT_EQ(r.error, ca::errc::bad_crl);
  pki::write_atomic(b.dir() / "crl0.pem", pki::pem(pki::make_crl(w().root, w().root_key, {leaf})));
  r = b.store()->reload_if_changed();
  EXPECT_TRUE(r.changed);
  EXPECT_TRUE(has_code(b.check(leaf), reason::revoked));
}

TEST(TrustStoreReload, DeletedBundleKeepsOldSnapshot) {
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().root, w().root_key);
  bench b;
  std::filesystem::remove(b.dir() / "bundle.pem");
  const auto r = b.store()->reload_if_changed();
  EXPECT_EQ(r.error, ca::errc::file_unreadable);
  EXPECT_TRUE(has_code(b.check(leaf), reason::ok));
}

// Verifiers on several threads while the main thread keeps rewriting the CA bundle and the CRL,
// sometimes atomically and sometimes in place (so some reloads see a half-written file and
// fail). Every verification must see a complete snapshot: the target is never revoked in any
// version, so anything but `ok` is a failure window.
TEST(TrustStoreReload, ReloadWhileVerifyingHasNoFailureWindow) {
  const auto target = pki::issue(leaf_spec("target"), pki::ec_key(), w().intermediate, w().int_key);
  const auto victim = pki::issue(leaf_spec("victim"), pki::ec_key(), w().intermediate, w().int_key);
  const auto crl_empty = pki::make_crl(w().intermediate, w().int_key, {});
  const auto crl_victim = pki::make_crl(w().intermediate, w().int_key, {victim});
  // The root's CRL too: with CRLs configured, the intermediate needs one (crl_required).
  bench b({w().root, w().intermediate}, {crl_empty, pki::make_crl(w().root, w().root_key, {})});
  const std::string target_pem = pki::pem(target);
  const std::string bundle_a = pki::pem({w().root, w().intermediate});
  const std::string bundle_b = pki::pem({w().root, w().intermediate, w().other_root});

  std::atomic<bool> stop{false};
  std::atomic<long> verified{0}, failures{0};
  std::string first_failure;
  std::mutex failure_mutex;
  std::vector<std::thread> threads;
  threads.reserve(3);
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        const auto r = b.v().verify_encoded(target_pem);
        ++verified;
        if (!r.ok()) {
          if (failures++ == 0) {
            std::lock_guard lock(failure_mutex);
            first_failure = std::string(ca::to_string(r.code)) + ": " + r.detail;
          }
        }
      }
    });
  }
  int swaps = 0, failed_loads = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  for (int i = 0; std::chrono::steady_clock::now() < deadline || swaps < 20; ++i) {
    const bool odd = (i % 2) == 1;
    const std::string crl = pki::pem(odd ? crl_victim : crl_empty);
    if (i % 3 == 0) {
      // In place: truncate, write half, reload (fails), then the rest.
      std::ofstream out(b.dir() / "crl0.pem", std::ios::trunc);
      out << crl.substr(0, crl.size() / 2) << std::flush;
      if (b.store()->reload_if_changed().error) ++failed_loads;
      out << crl.substr(crl.size() / 2);
    } else {
      pki::write_atomic(b.dir() / "crl0.pem", crl);
    }
    pki::write_atomic(b.dir() / "bundle.pem", odd ? bundle_b : bundle_a);
    const auto r = b.store()->reload_if_changed();
    if (r.changed) ++swaps;
    if (swaps > 400) break;
  }
  stop = true;
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(failures.load(), 0) << first_failure;
  EXPECT_GT(verified.load(), 100);
  EXPECT_GE(swaps, 20);
  EXPECT_GT(failed_loads, 0);  // the half-written file was seen and refused
  // And the last state is in force.
  pki::write_atomic(b.dir() / "crl0.pem", pki::pem(crl_victim));
  b.store()->reload_if_changed();
  const auto r = b.v().verify_encoded(pki::pem(victim));
  EXPECT_TRUE(has_code(r, reason::revoked));
}

}  // namespace
}  // namespace certauth_test
