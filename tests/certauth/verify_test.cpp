// One or more tests per reason code, each from a real certificate made at test time.
#include <openssl/err.h>

#include "fixture.hpp"

namespace certauth_test {
namespace {

using ca::reason;

pki::cert leaf_from_root(const pki::cert_spec& s, const pki::key& k = pki::ec_key()) {
  return pki::issue(s, k, w().root, w().root_key);
}

// --- ok ----------------------------------------------------------------------------------

TEST(VerifyOk, EcLeafFromRootYieldsIdentity) {
  bench b;
  auto spec = leaf_spec("00008030-001A2D3E0C38802E", "alice@example.com");
  spec.subject.emplace_back("serialNumber", "C02XK1");
  const auto leaf = leaf_from_root(spec);
  const auto r = b.check(leaf);
  ASSERT_TRUE(has_code(r, reason::ok));
  ASSERT_TRUE(r.identity.has_value());
  EXPECT_EQ(r.identity->udid, "00008030-001A2D3E0C38802E");
  EXPECT_EQ(r.identity->user, "alice@example.com");
  EXPECT_EQ(r.identity->serial, "C02XK1");
  EXPECT_EQ(r.identity->fingerprint_sha256.size(), 64u);
  EXPECT_NE(r.identity->issuer.find("Test Device Root"), std::string::npos);
  EXPECT_LT(r.identity->not_before, r.identity->not_after);
  EXPECT_TRUE(r.detail.empty());
  EXPECT_TRUE(r.warnings.empty());
}

TEST(VerifyOk, RsaChainPasses) {
  bench b({rsa().rsa_root});
  const auto leaf = pki::issue(leaf_spec(), rsa().rsa2048_b, rsa().rsa_root, rsa().rsa2048);
  EXPECT_TRUE(has_code(b.check(leaf), reason::ok));
}

TEST(VerifyOk, SerialIsEmptyWhenAbsent) {
  bench b;
  const auto r = b.check(leaf_from_root(leaf_spec()));
  ASSERT_TRUE(has_code(r, reason::ok));
  EXPECT_EQ(r.identity->serial, "");
}

TEST(VerifyOk, NoEkuExtensionMeansAnyUse) {
  bench b;
  auto s = leaf_spec();
  s.eku.clear();
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::ok));
}

TEST(VerifyOk, FingerprintMatchesDerSha256) {
  bench b;
  const auto leaf = leaf_from_root(leaf_spec());
  const auto r = b.check(leaf);
  ASSERT_TRUE(r.ok());
  unsigned char md[32];
  unsigned len = 0;
  ASSERT_EQ(X509_digest(leaf.get(), EVP_sha256(), md, &len), 1);
  char hex[3];
  std::string want;
  for (unsigned i = 0; i < len; ++i) {
    (void)std::snprintf(hex, sizeof hex, "%02x", md[i]);
    want += hex;
  }
  EXPECT_EQ(r.identity->fingerprint_sha256, want);
}

// --- no_certificate ----------------------------------------------------------------------

TEST(VerifyNoCertificate, NullLeaf) {
  bench b;
  EXPECT_TRUE(has_code(b.v().verify(static_cast<X509*>(nullptr), nullptr), reason::no_certificate));
}

TEST(VerifyNoCertificate, EmptyInputAndEmptyChain) {
  bench b;
  EXPECT_TRUE(has_code(b.v().verify_encoded(std::string_view()), reason::no_certificate));
  EXPECT_TRUE(
      has_code(b.v().verify_encoded(std::span<const std::string_view>()), reason::no_certificate));
}

TEST(VerifyNoCertificate, PemWithOnlyAKey) {
  bench b;
  const std::string key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  EXPECT_TRUE(has_code(b.v().verify_encoded(key_pem), reason::no_certificate));
}

// --- unknown_ca --------------------------------------------------------------------------

TEST(VerifyUnknownCa, LeafFromAnotherRoot) {
  bench b;
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().other_root, w().other_key);
  const auto r = b.check(leaf);
  EXPECT_TRUE(has_code(r, reason::unknown_ca));
  EXPECT_NE(r.detail.find("Other Root"), std::string::npos) << r.detail;
}

TEST(VerifyUnknownCa, SelfSignedLeaf) {
  bench b;
  const auto k = pki::ec_key();
  EXPECT_TRUE(has_code(b.check(pki::issue(leaf_spec(), k, nullptr, k)), reason::unknown_ca));
}

TEST(VerifyUnknownCa, ForgedSignature) {
  // Names the trusted root as issuer but is signed by another key.
  bench b;
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().root, w().other_key);
  EXPECT_TRUE(has_code(b.check(leaf), reason::unknown_ca));
}

TEST(VerifyUnknownCa, MissingIntermediate) {
  bench b;
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  EXPECT_TRUE(has_code(b.check(leaf), reason::unknown_ca));
}

TEST(VerifyUnknownCa, IssuerWithoutCaBasicConstraint) {
  bench b;
  auto not_ca = pki::ca_spec("Not A CA");
  not_ca.basic_constraints = "critical,CA:FALSE";
  const auto k = pki::ec_key();
  const auto issuer = pki::issue(not_ca, k, w().root, w().root_key);
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), issuer, k);
  EXPECT_TRUE(has_code(b.check(leaf, {issuer}), reason::unknown_ca));
}

TEST(VerifyUnknownCa, IssuerWithoutAnyBasicConstraints) {
  bench b;
  auto spec = pki::ca_spec("No BC");
  spec.basic_constraints.clear();
  const auto k = pki::ec_key();
  const auto issuer = pki::issue(spec, k, w().root, w().root_key);
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), issuer, k);
  EXPECT_TRUE(has_code(b.check(leaf, {issuer}), reason::unknown_ca));
}

// --- expired / not_yet_valid ---------------------------------------------------------------

TEST(VerifyExpired, LeafPastNotAfter) {
  bench b;
  auto s = leaf_spec();
  s.not_before = -10L * 86400;
  s.not_after = -86400;
  const auto r = b.check(leaf_from_root(s));
  EXPECT_TRUE(has_code(r, reason::expired));
  EXPECT_NE(r.detail.find("depth 0"), std::string::npos) << r.detail;
}

TEST(VerifyExpired, ExpiredIntermediate) {
  bench b;
  auto spec = pki::ca_spec("Expired Issuing CA");
  spec.not_before = -10L * 86400;
  spec.not_after = -3600;
  const auto k = pki::ec_key();
  const auto issuer = pki::issue(spec, k, w().root, w().root_key);
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), issuer, k);
  const auto r = b.check(leaf, {issuer});
  EXPECT_TRUE(has_code(r, reason::expired));
  EXPECT_NE(r.detail.find("depth 1"), std::string::npos) << r.detail;
}

TEST(VerifyExpired, ClockSkewAllowance) {
  auto s = leaf_spec();
  s.not_before = -86400;
  s.not_after = -100;  // expired 100 s ago
  const auto leaf = leaf_from_root(s);
  ca::verify_policy lenient;
  lenient.clock_skew = std::chrono::seconds(300);
  EXPECT_TRUE(has_code(bench({w().root}, {}, lenient).check(leaf), reason::ok));
  ca::verify_policy strict;
  strict.clock_skew = std::chrono::seconds(0);
  EXPECT_TRUE(has_code(bench({w().root}, {}, strict).check(leaf), reason::expired));
}

TEST(VerifyExpired, InjectedClock) {
  ca::verify_policy p;
  p.clock = [] { return std::chrono::system_clock::now() + std::chrono::hours(24 * 400); };
  bench b({w().root}, {}, p);
  EXPECT_TRUE(has_code(b.check(leaf_from_root(leaf_spec())), reason::expired));
}

TEST(VerifyExpired, ExpiredCaWithinSkewIsAccepted) {
  // OpenSSL checks time to choose issuers, but the verdict keeps the configured tolerance.
  auto spec = pki::ca_spec("Just Expired Root");
  spec.not_before = -400L * 86400;
  spec.not_after = -100;
  const auto k = pki::ec_key();
  const auto root = pki::issue(spec, k, nullptr, k);
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), root, k);
  EXPECT_TRUE(has_code(bench({root}).check(leaf), reason::ok));
  ca::verify_policy strict;
  strict.clock_skew = std::chrono::seconds(0);
  const auto r = bench({root}, {}, strict).check(leaf);
  EXPECT_TRUE(has_code(r, reason::expired));
  EXPECT_NE(r.detail.find("depth 1"), std::string::npos) << r.detail;
}

// A CA renewed with the same key: the old certificate (expired) and the new one have the same
// subject and key, so both match a device certificate as its issuer. The valid one must be used.
struct renewed_ca {
  pki::key key = pki::ec_key();
  pki::cert old_cert, new_cert;
  explicit renewed_ca(const std::string& cn, const pki::cert& parent = nullptr,
                      const pki::key& parent_key = nullptr) {
    auto spec = pki::ca_spec(cn);
    spec.not_before = -800L * 86400;
    spec.not_after = -86400;
    old_cert = pki::issue(spec, key, parent, parent ? parent_key : key);
    spec.not_before = -2L * 86400;
    spec.not_after = 800L * 86400;
    new_cert = pki::issue(spec, key, parent, parent ? parent_key : key);
  }
};

TEST(VerifyRenewedCa, SameKeyRootRenewalInEitherBundleOrder) {
  const renewed_ca c("Renewed Device Root");
  // Issued "by the key": the issuer name and key identifier match both certificates.
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), c.old_cert, c.key);
  for (const auto& order : {std::vector{c.old_cert, c.new_cert}, {c.new_cert, c.old_cert}}) {
    bench b(order);
    const auto r = b.check(leaf);
    EXPECT_TRUE(has_code(r, reason::ok));
  }
}

TEST(VerifyRenewedCa, SameKeyIntermediateRenewalInEitherOrder) {
  const renewed_ca c("Renewed Issuing CA", w().root, w().root_key);
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), c.new_cert, c.key);
  for (const auto& order : {std::vector{c.old_cert, c.new_cert}, {c.new_cert, c.old_cert}}) {
    std::vector<pki::cert> bundle{w().root};
    bundle.insert(bundle.end(), order.begin(), order.end());
    EXPECT_TRUE(has_code(bench(bundle).check(leaf), reason::ok)) << "in the bundle";
    EXPECT_TRUE(has_code(bench().check(leaf, order), reason::ok)) << "sent by the peer";
  }
}

TEST(VerifyRenewedCa, LeafTimeCodesAreUnchanged) {
  const renewed_ca c("Renewed Device Root");
  bench b({c.old_cert, c.new_cert});
  auto s = leaf_spec();
  s.not_before = -10L * 86400;
  s.not_after = -86400;
  auto r = b.check(pki::issue(s, pki::ec_key(), c.new_cert, c.key));
  EXPECT_TRUE(has_code(r, reason::expired));
  EXPECT_NE(r.detail.find("depth 0"), std::string::npos) << r.detail;
  s.not_before = 86400;
  s.not_after = 10L * 86400;
  r = b.check(pki::issue(s, pki::ec_key(), c.new_cert, c.key));
  EXPECT_TRUE(has_code(r, reason::not_yet_valid));
  EXPECT_NE(r.detail.find("depth 0"), std::string::npos) << r.detail;
}

TEST(VerifyRenewedCa, OnlyTheExpiredCertificateMeansExpired) {
  const renewed_ca c("Renewed Device Root");
  const auto r =
      bench({c.old_cert}).check(pki::issue(leaf_spec(), pki::ec_key(), c.new_cert, c.key));
  EXPECT_TRUE(has_code(r, reason::expired));
  EXPECT_NE(r.detail.find("depth 1"), std::string::npos) << r.detail;
}

TEST(VerifyNotYetValid, LeafBeforeNotBefore) {
  bench b;
  auto s = leaf_spec();
  s.not_before = 86400;
  s.not_after = 10L * 86400;
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::not_yet_valid));
}

TEST(VerifyNotYetValid, WithinSkewIsAccepted) {
  bench b;  // default skew 300 s
  auto s = leaf_spec();
  s.not_before = 120;
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::ok));
}

// --- revoked / crl_expired ---------------------------------------------------------------------

TEST(VerifyRevoked, LeafInRootCrl) {
  const auto leaf = leaf_from_root(leaf_spec());
  const auto other = leaf_from_root(leaf_spec("dev-2"));
  bench b({w().root}, {pki::make_crl(w().root, w().root_key, {leaf})});
  EXPECT_TRUE(has_code(b.check(leaf), reason::revoked));
  EXPECT_TRUE(has_code(b.check(other), reason::ok));
}

TEST(VerifyRevoked, IntermediateRevokedByRoot) {
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  bench b({w().root, w().intermediate},
          {pki::make_crl(w().root, w().root_key, {w().intermediate})});
  const auto r = b.check(leaf);
  EXPECT_TRUE(has_code(r, reason::revoked));
  EXPECT_NE(r.detail.find("depth 1"), std::string::npos) << r.detail;
}

TEST(VerifyRevoked, LeafRevokedByIntermediateCrlInDer) {
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  pki::temp_dir d;
  ca::trust_options o;
  o.ca_bundle = d.write("bundle.pem", pki::pem({w().root, w().intermediate}));
  o.crls = {d.write("int.crl", pki::der(pki::make_crl(w().intermediate, w().int_key, {leaf}))),
            d.write("root.crl", pki::der(pki::make_crl(w().root, w().root_key, {})))};
  ca::verifier v(std::make_shared<ca::trust_store>(o));
  EXPECT_TRUE(has_code(v.verify_encoded(pki::pem(leaf)), reason::revoked));
}

TEST(VerifyRevoked, RevokedOutranksStaleCrlUnderWarn) {
  const auto leaf = leaf_from_root(leaf_spec());
  ca::verify_policy p;
  p.stale_crl = ca::stale_crl_policy::warn;
  bench b({w().root}, {pki::make_crl(w().root, w().root_key, {leaf}, -10L * 86400, -86400)}, p);
  EXPECT_TRUE(has_code(b.check(leaf), reason::revoked));
}

TEST(VerifyCrlExpired, RefusePolicy) {
  bench b({w().root}, {pki::make_crl(w().root, w().root_key, {}, -10L * 86400, -86400)});
  const auto r = b.check(leaf_from_root(leaf_spec()));
  EXPECT_TRUE(has_code(r, reason::crl_expired));
  EXPECT_FALSE(b.store()->summary().warnings.empty());  // also noted at load time
}

TEST(VerifyCrlExpired, WarnPolicyAcceptsWithWarning) {
  ca::verify_policy p;
  p.stale_crl = ca::stale_crl_policy::warn;
  bench b({w().root}, {pki::make_crl(w().root, w().root_key, {}, -10L * 86400, -86400)}, p);
  const auto r = b.check(leaf_from_root(leaf_spec()));
  EXPECT_TRUE(has_code(r, reason::ok));
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("nextUpdate"), std::string::npos) << r.warnings[0];
}

TEST(VerifyCrlExpired, NewestCrlPerIssuerWins) {
  const auto leaf = leaf_from_root(leaf_spec());
  const auto stale = pki::make_crl(w().root, w().root_key, {}, -10L * 86400, -86400);
  const auto fresh = pki::make_crl(w().root, w().root_key, {leaf}, -60, 86400);
  bench b({w().root}, {fresh, stale});
  EXPECT_TRUE(has_code(b.check(leaf), reason::revoked));
  bench b2({w().root}, {stale, fresh});
  EXPECT_TRUE(has_code(b2.check(leaf), reason::revoked));
}

// --- no_crl ------------------------------------------------------------------------------------
// CRLs are required by default as soon as one is configured (trust_options::crl_required).

TEST(VerifyNoCrl, CaAddedWithoutItsCrl) {
  bench b({w().root, w().other_root}, {pki::make_crl(w().root, w().root_key, {})});
  EXPECT_TRUE(b.store()->summary().crl_required);
  EXPECT_TRUE(has_code(b.check(leaf_from_root(leaf_spec())), reason::ok));
  const auto r = b.check(pki::issue(leaf_spec(), pki::ec_key(), w().other_root, w().other_key));
  EXPECT_TRUE(has_code(r, reason::no_crl));
  EXPECT_NE(r.detail.find("depth 0"), std::string::npos) << r.detail;
  EXPECT_NE(r.detail.find("Other Root"), std::string::npos) << r.detail;
}

TEST(VerifyNoCrl, IntermediateWithoutTheRootsCrl) {
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  bench b({w().root, w().intermediate}, {pki::make_crl(w().intermediate, w().int_key, {})});
  const auto r = b.check(leaf);
  EXPECT_TRUE(has_code(r, reason::no_crl));
  EXPECT_NE(r.detail.find("depth 1"), std::string::npos) << r.detail;
  EXPECT_NE(r.detail.find("Test Device Root"), std::string::npos) << r.detail;
}

TEST(VerifyNoCrl, LeafWithoutItsIssuingCasCrl) {
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  bench b({w().root, w().intermediate}, {pki::make_crl(w().root, w().root_key, {})});
  auto r = b.check(leaf);
  EXPECT_TRUE(has_code(r, reason::no_crl));
  EXPECT_NE(r.detail.find("depth 0"), std::string::npos) << r.detail;
  EXPECT_NE(r.detail.find("Test Device Issuing CA"), std::string::npos) << r.detail;
  r = b.check(leaf, {w().intermediate});  // the peer's copy of the intermediate: the same
  EXPECT_TRUE(has_code(r, reason::no_crl));
  // An intermediate only the peer sends cannot have a CRL configured (CRLs must be signed by a
  // bundle CA), so with CRLs required its devices are refused.
  bench root_only({w().root}, {pki::make_crl(w().root, w().root_key, {})});
  EXPECT_TRUE(has_code(root_only.check(leaf, {w().intermediate}), reason::no_crl));
}

TEST(VerifyNoCrl, RekeyedCaHasNoCrlUntilItsNewCrlIsAdded) {
  // Same name as the root, new key: the configured CRL was signed by the old key.
  const auto new_key = pki::ec_key();
  const auto rekeyed = pki::issue(pki::ca_spec("Test Device Root"), new_key, nullptr, new_key);
  const auto old_crl = pki::make_crl(w().root, w().root_key, {});
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), rekeyed, new_key);
  bench b({w().root, rekeyed}, {old_crl});
  EXPECT_TRUE(has_code(b.check(leaf), reason::no_crl));
  const auto warnings = b.store()->summary().warnings;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("re-keyed"), std::string::npos) << warnings[0];
  EXPECT_TRUE(has_code(b.check(leaf_from_root(leaf_spec())), reason::ok));
  bench fixed({w().root, rekeyed}, {old_crl, pki::make_crl(rekeyed, new_key, {})});
  EXPECT_TRUE(has_code(fixed.check(leaf), reason::ok));
}

TEST(VerifyNoCrl, CrlScopeExcludesTheCertificate) {
  // The root's CRL covers end-entity certificates only: the intermediate it issued has none.
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  const auto users_only =
      pki::make_crl(w().root, w().root_key, {}, -60, 86400, EVP_sha256(), "critical,onlyuser:TRUE");
  auto r = bench({w().root, w().intermediate},
                 {users_only, pki::make_crl(w().intermediate, w().int_key, {})})
               .check(leaf);
  EXPECT_TRUE(has_code(r, reason::no_crl));
  EXPECT_NE(r.detail.find("depth 1"), std::string::npos) << r.detail;
  EXPECT_NE(r.detail.find("cover only end-entity certificates"), std::string::npos) << r.detail;
  // Covering CA certificates only: a device issued by the root directly has none.
  const auto cas_only =
      pki::make_crl(w().root, w().root_key, {}, -60, 86400, EVP_sha256(), "critical,onlyCA:TRUE");
  r = bench({w().root}, {cas_only}).check(leaf_from_root(leaf_spec()));
  EXPECT_TRUE(has_code(r, reason::no_crl));
  EXPECT_NE(r.detail.find("cover only CA certificates"), std::string::npos) << r.detail;
}

TEST(VerifyNoCrl, SplitScopeCrlsOfOneCaBothApply) {
  // One CA, one CRL for end-entity and one for CA certificates: both are kept (not only the
  // newer one), and each certificate is checked against the one that covers it.
  const auto direct = leaf_from_root(leaf_spec("dev-direct"));
  const auto revoked_int =
      pki::issue(pki::ca_spec("Revoked Issuing CA"), w().int_key, w().root, w().root_key);
  const auto under_int =
      pki::issue(leaf_spec("dev-under"), pki::ec_key(), revoked_int, w().int_key);
  const auto int_crl = pki::make_crl(revoked_int, w().int_key, {});
  for (const long users_at : {-120L, -30L}) {  // the users' CRL older, then newer
    const auto users = pki::make_crl(w().root, w().root_key, {direct}, users_at, 86400,
                                     EVP_sha256(), "critical,onlyuser:TRUE");
    const auto cas = pki::make_crl(w().root, w().root_key, {revoked_int}, -60, 86400, EVP_sha256(),
                                   "critical,onlyCA:TRUE");
    bench b({w().root, revoked_int}, {users, cas, int_crl});
    EXPECT_TRUE(has_code(b.check(direct), reason::revoked)) << users_at;
    EXPECT_TRUE(has_code(b.check(under_int), reason::revoked)) << users_at;
    EXPECT_TRUE(has_code(b.check(leaf_from_root(leaf_spec())), reason::ok)) << users_at;
  }
}

TEST(VerifyNoCrl, RevokedOutranksAMissingCrl) {
  // The leaf is on its issuer's CRL; the intermediate has no CRL. The evidence wins.
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  bench b({w().root, w().intermediate}, {pki::make_crl(w().intermediate, w().int_key, {leaf})});
  EXPECT_TRUE(has_code(b.check(leaf), reason::revoked));
}

TEST(VerifyNoCrl, ComesBeforeAStaleCrl) {
  // The leaf's issuer has no CRL, the intermediate's (the root's) is stale.
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  bench b({w().root, w().intermediate},
          {pki::make_crl(w().root, w().root_key, {}, -10L * 86400, -86400)});
  EXPECT_TRUE(has_code(b.check(leaf), reason::no_crl));
}

TEST(VerifyNoCrl, NotRequiredAcceptsWithoutCheck) {
  bench b({w().root, w().other_root}, {pki::make_crl(w().root, w().root_key, {})}, {}, false,
          false);
  EXPECT_FALSE(b.store()->summary().crl_required);
  const auto r = b.check(pki::issue(leaf_spec(), pki::ec_key(), w().other_root, w().other_key));
  EXPECT_TRUE(has_code(r, reason::ok));
  EXPECT_TRUE(r.warnings.empty());  // announced once at load, not at every verification
}

TEST(VerifyNoCrl, NotRequiredWhenNoCrlIsConfigured) {
  bench b({w().root, w().intermediate});
  EXPECT_FALSE(b.store()->summary().crl_required);
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  EXPECT_TRUE(has_code(b.check(leaf), reason::ok));
}

TEST(VerifyNoCrl, TrustAnchorNeedsNone) {
  // Partial chain with the intermediate as anchor: its own issuer (the root) is not consulted.
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  bench b({w().intermediate}, {pki::make_crl(w().intermediate, w().int_key, {})}, {}, true);
  EXPECT_TRUE(b.store()->summary().crl_required);
  EXPECT_TRUE(has_code(b.check(leaf), reason::ok));
}

TEST(VerifyNoCrl, CaRenewedWithTheSameKeyKeepsItsCrl) {
  const renewed_ca c("Renewed Device Root");
  const auto good = pki::issue(leaf_spec("dev-good"), pki::ec_key(), c.new_cert, c.key);
  const auto bad = pki::issue(leaf_spec("dev-bad"), pki::ec_key(), c.new_cert, c.key);
  const auto crl = pki::make_crl(c.old_cert, c.key, {bad});  // issued before the renewal
  for (const auto& order : {std::vector{c.old_cert, c.new_cert}, {c.new_cert, c.old_cert}}) {
    bench b(order, {crl});
    EXPECT_TRUE(has_code(b.check(good), reason::ok));
    EXPECT_TRUE(has_code(b.check(bad), reason::revoked));
    for (const auto& warning : b.store()->summary().warnings)
      EXPECT_EQ(warning.find("has no CRL"), std::string::npos) << warning;
  }
}

// --- bad_eku ------------------------------------------------------------------------------------

TEST(VerifyBadEku, ServerAuthOnly) {
  bench b;
  auto s = leaf_spec();
  s.eku = "serverAuth";
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::bad_eku));
}

TEST(VerifyBadEku, KeyUsageWithoutDigitalSignature) {
  bench b;
  auto s = leaf_spec();
  s.key_usage = "critical,keyEncipherment";
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::bad_eku));
}

TEST(VerifyBadEku, CaCertificateAsDevice) {
  bench b({w().root, w().intermediate});
  EXPECT_TRUE(has_code(b.check(w().intermediate), reason::bad_eku));
}

TEST(VerifyBadEku, IntermediateWithoutClientAuth) {
  // The intermediate's extendedKeyUsage constrains what it may issue (OpenSSL's SSL client
  // purpose): serverAuth only means no device certificates, wherever the intermediate comes from.
  auto spec = pki::ca_spec("Server Issuing CA");
  spec.eku = "serverAuth";
  const auto k = pki::ec_key();
  const auto issuer = pki::issue(spec, k, w().root, w().root_key);
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), issuer, k);
  const auto sent = bench().check(leaf, {issuer});
  EXPECT_TRUE(has_code(sent, reason::bad_eku));
  EXPECT_NE(sent.detail.find("depth 1"), std::string::npos) << sent.detail;
  EXPECT_NE(sent.detail.find("Server Issuing CA"), std::string::npos) << sent.detail;
  EXPECT_TRUE(has_code(bench({w().root, issuer}).check(leaf), reason::bad_eku));
}

TEST(VerifyBadEku, RootWithoutClientAuth) {
  auto spec = pki::ca_spec("Server Root");
  spec.eku = "serverAuth";
  const auto k = pki::ec_key();
  const auto root = pki::issue(spec, k, nullptr, k);
  const auto r = bench({root}).check(pki::issue(leaf_spec(), pki::ec_key(), root, k));
  EXPECT_TRUE(has_code(r, reason::bad_eku));
  EXPECT_NE(r.detail.find("depth 1"), std::string::npos) << r.detail;
}

TEST(VerifyBadEku, IntermediateWithClientAuthIsAccepted) {
  for (const std::string eku : {"clientAuth", "serverAuth,clientAuth"}) {
    auto spec = pki::ca_spec("Client Issuing CA");
    spec.eku = eku;
    const auto k = pki::ec_key();
    const auto issuer = pki::issue(spec, k, w().root, w().root_key);
    const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), issuer, k);
    EXPECT_TRUE(has_code(bench().check(leaf, {issuer}), reason::ok)) << eku;
  }
}

TEST(VerifyBadEku, EarlierChecksStillWinOverAnIntermediatesEku) {
  // bad_eku comes after time and revocation in the documented order, also for intermediates.
  auto spec = pki::ca_spec("Server Issuing CA");
  spec.eku = "serverAuth";
  const auto k = pki::ec_key();
  const auto issuer = pki::issue(spec, k, w().root, w().root_key);
  auto expired = leaf_spec();
  expired.not_before = -10L * 86400;
  expired.not_after = -86400;
  EXPECT_TRUE(has_code(bench().check(pki::issue(expired, pki::ec_key(), issuer, k), {issuer}),
                       reason::expired));
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), issuer, k);
  bench b({w().root, issuer},
          {pki::make_crl(issuer, k, {leaf}), pki::make_crl(w().root, w().root_key, {})});
  EXPECT_TRUE(has_code(b.check(leaf), reason::revoked));
}

// --- weak_key -----------------------------------------------------------------------------------

TEST(VerifyWeakKey, Rsa1024Leaf) {
  bench b;
  const auto r = b.check(leaf_from_root(leaf_spec(), rsa().rsa1024));
  EXPECT_TRUE(has_code(r, reason::weak_key));
  EXPECT_NE(r.detail.find("1024"), std::string::npos) << r.detail;
}

TEST(VerifyWeakKey, P224Leaf) {
  bench b;
  EXPECT_TRUE(
      has_code(b.check(leaf_from_root(leaf_spec(), pki::ec_key("P-224"))), reason::weak_key));
}

TEST(VerifyWeakKey, Secp192Leaf) {
  bench b;
  EXPECT_TRUE(
      has_code(b.check(leaf_from_root(leaf_spec(), pki::ec_key("prime192v1"))), reason::weak_key));
}

TEST(VerifyWeakKey, Rsa1024Intermediate) {
  bench b;
  const auto issuer =
      pki::issue(pki::ca_spec("Weak Issuing CA"), rsa().rsa1024, w().root, w().root_key);
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), issuer, rsa().rsa1024);
  const auto r = b.check(leaf, {issuer});
  EXPECT_TRUE(has_code(r, reason::weak_key));
  EXPECT_NE(r.detail.find("depth 1"), std::string::npos) << r.detail;
}

TEST(VerifyWeakKey, P384IsAccepted) {
  bench b;
  EXPECT_TRUE(has_code(b.check(leaf_from_root(leaf_spec(), pki::ec_key("P-384"))), reason::ok));
}

// --- weak_signature -----------------------------------------------------------------------------

TEST(VerifyWeakSignature, Sha1SignedLeaf) {
  bench b;
  auto s = leaf_spec();
  s.md = EVP_sha1();
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::weak_signature));
}

TEST(VerifyWeakSignature, Md5SignedLeafFromRsaRoot) {
  bench b({rsa().rsa_root});
  auto s = leaf_spec();
  s.md = EVP_md5();
  const auto leaf = pki::issue(s, pki::ec_key(), rsa().rsa_root, rsa().rsa2048);
  EXPECT_TRUE(has_code(b.check(leaf), reason::weak_signature));
}

TEST(VerifyWeakSignature, Sha1SignedIntermediate) {
  bench b;
  auto spec = pki::ca_spec("SHA1 Issuing CA");
  spec.md = EVP_sha1();
  const auto k = pki::ec_key();
  const auto issuer = pki::issue(spec, k, w().root, w().root_key);
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), issuer, k);
  EXPECT_TRUE(has_code(b.check(leaf, {issuer}), reason::weak_signature));
}

// --- no_udid / no_user
// ----------------------------------------------------------------------------

TEST(VerifyNoUdid, NoCommonName) {
  bench b;
  auto s = leaf_spec();
  s.subject = {{"O", "devices"}};
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::no_udid));
}

TEST(VerifyNoUdid, NoFallbackFromSanUriToCn) {
  ca::verify_policy p;
  p.identity.udid = {"san.uri", "urn:udid:"};
  bench b({w().root}, {}, p);
  auto s = leaf_spec("dev-1");  // has a CN but no URI
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::no_udid));
  s.san.push_back("URI:https://example.com/x");  // a URI without the prefix does not count
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::no_udid));
}

TEST(VerifyNoUser, NoEmailSan) {
  bench b;
  auto s = leaf_spec();
  s.san = {"DNS:device.example.com"};
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::no_user));
}

TEST(VerifyNoUser, NoSanAtAllAndNoFallbackToCn) {
  bench b;
  auto s = leaf_spec("bob@example.com");
  s.san.clear();
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::no_user));
}

// --- bad_identity_value -------------------------------------------------------------------------

TEST(VerifyBadIdentityValue, BadCharactersInCn) {
  bench b;
  for (const std::string cn : {"dev 1", "dev/../1", "dev;rm", "d\xc3\xa9v", "dev\nx"}) {
    EXPECT_TRUE(has_code(b.check(leaf_from_root(leaf_spec(cn))), reason::bad_identity_value)) << cn;
  }
}

TEST(VerifyBadIdentityValue, EmbeddedNulInCn) {
  bench b;
  const auto r = b.check(leaf_from_root(leaf_spec(std::string("good\0evil", 9))));
  EXPECT_TRUE(has_code(r, reason::bad_identity_value));
}

TEST(VerifyBadIdentityValue, TooLongUdid) {
  bench b;
  // 64 is the X.520 upper bound for CN, so use a SAN URI to carry a long value.
  ca::verify_policy p;
  p.identity.udid = {"san.uri", "urn:udid:"};
  bench bu({w().root}, {}, p);
  auto s = leaf_spec();
  s.san.push_back("URI:urn:udid:" + std::string(129, 'a'));
  EXPECT_TRUE(has_code(bu.check(leaf_from_root(s)), reason::bad_identity_value));
  s.san.back() = "URI:urn:udid:" + std::string(128, 'a');
  EXPECT_TRUE(has_code(bu.check(leaf_from_root(s)), reason::ok));
}

TEST(VerifyBadIdentityValue, BadEmail) {
  bench b;
  auto s = leaf_spec("dev-1", "alice@@example.com");
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::bad_identity_value));
  s = leaf_spec("dev-1", "alice<script>@example.com");
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::bad_identity_value));
}

TEST(VerifyBadIdentityValue, AmbiguousTwoEmails) {
  bench b;
  auto s = leaf_spec();
  s.san.push_back("email:mallory@example.com");
  const auto r = b.check(leaf_from_root(s));
  EXPECT_TRUE(has_code(r, reason::bad_identity_value));
  EXPECT_NE(r.detail.find("exactly one"), std::string::npos) << r.detail;
}

TEST(VerifyBadIdentityValue, AmbiguousTwoCommonNames) {
  bench b;
  auto s = leaf_spec("dev-1");
  s.subject.emplace_back("CN", "dev-2");
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::bad_identity_value));
}

TEST(VerifyBadIdentityValue, BadSerialValue) {
  bench b;
  auto s = leaf_spec();
  s.subject.emplace_back("serialNumber", "C02 XK1");
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::bad_identity_value));
}

// --- malformed
// -------------------------------------------------------------------------------------

TEST(VerifyMalformed, GarbageDer) {
  bench b;
  EXPECT_TRUE(has_code(b.v().verify_encoded(std::string("\x30\x82\x01\x00garbage", 11)),
                       reason::malformed));
  EXPECT_TRUE(has_code(b.v().verify_encoded("just some text"), reason::malformed));
}

TEST(VerifyMalformed, TruncatedDerAndPem) {
  bench b;
  const std::string d = pki::der(leaf_from_root(leaf_spec()));
  EXPECT_TRUE(has_code(b.v().verify_encoded(d.substr(0, d.size() - 10)), reason::malformed));
  const std::string p = pki::pem(leaf_from_root(leaf_spec()));
  EXPECT_TRUE(has_code(b.v().verify_encoded(p.substr(0, p.size() - 40)), reason::malformed));
}

TEST(VerifyMalformed, PemBlockWithBadContent) {
  bench b;
  const std::string p =
      "-----BEGIN CERTIFICATE-----\nTUlJQmFkZGF0YQ==\n-----END CERTIFICATE-----\n";
  EXPECT_TRUE(has_code(b.v().verify_encoded(p), reason::malformed));
}

TEST(VerifyMalformed, TrailingBytesAfterDer) {
  bench b;
  EXPECT_TRUE(has_code(b.v().verify_encoded(pki::der(leaf_from_root(leaf_spec())) + "xx"),
                       reason::malformed));
}

TEST(VerifyMalformed, DuplicateExtension) {
  bench b;
  auto s = leaf_spec();
  s.duplicate_eku = true;
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::malformed));
}

TEST(VerifyMalformed, DerInputIsAccepted) {
  // The same bytes in DER verify fine: malformed is about encoding, not format.
  bench b;
  EXPECT_TRUE(has_code(b.v().verify_encoded(pki::der(leaf_from_root(leaf_spec()))), reason::ok));
}

// --- intermediate chains
// ---------------------------------------------------------------------------

TEST(VerifyChain, IntermediateSentByPeer) {
  bench b;  // bundle: root only
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  EXPECT_TRUE(has_code(b.check(leaf, {w().intermediate}), reason::ok));
}

TEST(VerifyChain, IntermediateFromBundle) {
  bench b({w().root, w().intermediate});
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  EXPECT_TRUE(has_code(b.check(leaf), reason::ok));
}

TEST(VerifyChain, PeerSentPartsAsSeparateDerInputs) {
  bench b;
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  const std::string a = pki::der(leaf), c = pki::der(w().intermediate);
  const std::string_view parts[] = {a, c};
  EXPECT_TRUE(has_code(b.v().verify_encoded(parts), reason::ok));
}

TEST(VerifyChain, PartialChainOnlyWhenAllowed) {
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), w().intermediate, w().int_key);
  pki::temp_dir d;
  ca::trust_options o;
  o.ca_bundle = d.write("int.pem", pki::pem(w().intermediate));
  try {
    ca::trust_store s(o);
    FAIL() << "a bundle with an orphan intermediate must be refused";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), ca::errc::incomplete_bundle);
    EXPECT_NE(std::string(e.what()).find("Test Device Root"), std::string::npos) << e.what();
  }
  o.allow_partial_chain = true;
  ca::verifier v(std::make_shared<ca::trust_store>(o));
  EXPECT_TRUE(has_code(v.verify_encoded(pki::pem(leaf)), reason::ok));
  // A leaf of the root (not of the anchored intermediate) is still unknown.
  EXPECT_TRUE(
      has_code(v.verify_encoded(pki::pem(leaf_from_root(leaf_spec()))), reason::unknown_ca));
}

TEST(VerifyChain, LongerChainRsaIntermediate) {
  bench b({rsa().rsa_root});
  const auto ik = rsa().rsa2048_b;
  const auto inter = pki::issue(pki::ca_spec("RSA Issuing"), ik, rsa().rsa_root, rsa().rsa2048);
  const auto leaf = pki::issue(leaf_spec(), pki::ec_key(), inter, ik);
  EXPECT_TRUE(has_code(b.check(leaf, {inter}), reason::ok));
}

// --- identity mapping alternatives
// ------------------------------------------------------------------

TEST(IdentityMapping, SanUriWithPrefixCaseInsensitive) {
  ca::verify_policy p;
  p.identity.udid = {"san.uri", "urn:udid:"};
  bench b({w().root}, {}, p);
  auto s = leaf_spec("ignored-cn");
  s.san.push_back("URI:https://mdm.example.com/device");
  s.san.push_back("URI:URN:UDID:ABC-123");
  const auto r = b.check(leaf_from_root(s));
  ASSERT_TRUE(has_code(r, reason::ok));
  EXPECT_EQ(r.identity->udid, "ABC-123");
}

TEST(IdentityMapping, SanDnsAndSubjectAttribute) {
  ca::verify_policy p;
  p.identity.udid = {"san.dns", ""};
  p.identity.user = {"subject.UID", ""};
  p.identity.serial = {"subject.OU", "sn-"};
  bench b({w().root}, {}, p);
  auto s = leaf_spec("x");
  s.subject.emplace_back("UID", "jdoe");
  s.subject.emplace_back("OU", "sn-XYZ9");
  s.san = {"DNS:dev-42.devices.example.com"};
  const auto r = b.check(leaf_from_root(s));
  ASSERT_TRUE(has_code(r, reason::ok));
  EXPECT_EQ(r.identity->udid, "dev-42.devices.example.com");
  EXPECT_EQ(r.identity->user, "jdoe");
  EXPECT_EQ(r.identity->serial, "XYZ9");
}

TEST(IdentityMapping, SanUpn) {
  ca::verify_policy p;
  p.identity.user = {"san.upn", ""};
  bench b({w().root}, {}, p);
  auto s = leaf_spec();
  s.san = {"otherName:msUPN;UTF8:carol@corp.example.com"};
  const auto r = b.check(leaf_from_root(s));
  ASSERT_TRUE(has_code(r, reason::ok));
  EXPECT_EQ(r.identity->user, "carol@corp.example.com");
  s.san = {"email:carol@corp.example.com"};
  EXPECT_TRUE(has_code(b.check(leaf_from_root(s)), reason::no_user));
}

TEST(IdentityMapping, InvalidConfigurationIsRejected) {
  auto store = bench().store();
  for (const std::string src : {"", "subject.", "subject.NoSuchAttr", "san.ip", "cn"}) {
    ca::verify_policy p;
    p.identity.udid.source = src;
    try {
      ca::verifier v(store, p);
      ADD_FAILURE() << "accepted '" << src << "'";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), ca::errc::bad_config) << src;
    }
  }
  ca::verify_policy ok;
  ok.identity.serial.source = "";  // serial may be switched off
  EXPECT_NO_THROW(ca::verifier(store, ok));
}

TEST(IdentityMapping, ValueChecks) {
  EXPECT_EQ(ca::check_udid_value("00008030-001A2D3E0C38802E"), "");
  EXPECT_NE(ca::check_udid_value(""), "");
  EXPECT_NE(ca::check_udid_value("a b"), "");
  EXPECT_EQ(ca::check_user_value("first.last+tag@example.co.uk"), "");
  EXPECT_EQ(ca::check_user_value("jdoe"), "");
  EXPECT_NE(ca::check_user_value("@example.com"), "");
  EXPECT_NE(ca::check_user_value("a@b@c"), "");
  EXPECT_NE(ca::check_serial_value(std::string(65, 'A')), "");
}

// --- plumbing
// --------------------------------------------------------------------------------------

TEST(Reasons, NamesRoundTripAndErrorCodes) {
  const ca::reason all[] = {reason::ok,
                            reason::no_certificate,
                            reason::unknown_ca,
                            reason::expired,
                            reason::not_yet_valid,
                            reason::revoked,
                            reason::crl_expired,
                            reason::bad_eku,
                            reason::weak_key,
                            reason::weak_signature,
                            reason::no_udid,
                            reason::no_user,
                            reason::bad_identity_value,
                            reason::malformed,
                            reason::no_crl};
  const char* names[] = {"ok",
                         "no_certificate",
                         "unknown_ca",
                         "expired",
                         "not_yet_valid",
                         "revoked",
                         "crl_expired",
                         "bad_eku",
                         "weak_key",
                         "weak_signature",
                         "no_udid",
                         "no_user",
                         "bad_identity_value",
                         "malformed",
                         "no_crl"};
  for (std::size_t i = 0; i < std::size(all); ++i) {
    EXPECT_EQ(ca::to_string(all[i]), names[i]);
    EXPECT_EQ(ca::reason_from_string(names[i]), all[i]);
    EXPECT_FALSE(ca::describe(all[i]).empty());
    const std::error_code ec = all[i];
    EXPECT_EQ(ec.category().name(), std::string("certauth.reason"));
    EXPECT_EQ(ec.value(), static_cast<int>(i));  // the list above is in enum order
    EXPECT_EQ(ec.message().rfind(std::string(names[i]) + ": ", 0), 0u) << ec.message();
  }
  // Nothing past the last code: the list above is complete.
  EXPECT_EQ(ca::to_string(static_cast<reason>(std::size(all))), "unknown");
  EXPECT_FALSE(ca::reason_from_string("nope").has_value());
}

TEST(Plumbing, ErrorQueueIsLeftAsFound) {
  bench b;
  ERR_clear_error();
  (void)b.v().verify_encoded("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n");
  (void)b.v().verify_encoded(std::string("\x30\x03\x02\x01", 4));
  (void)b.check(pki::issue(leaf_spec(), pki::ec_key(), w().other_root, w().other_key));
  EXPECT_EQ(ERR_peek_error(), 0ul);
}

class fake_ocsp final : public ca::revocation_checker {
 public:
  explicit fake_ocsp(std::string bad_cn) : bad_cn_(std::move(bad_cn)) {}
  verdict check(X509* cert, X509* issuer, std::chrono::system_clock::time_point) const override {
    ++calls;
    if (issuer == nullptr) return {reason::malformed, "no issuer"};
    char cn[64] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    if (bad_cn_ == cn) return {reason::revoked, "OCSP says revoked"};
    return {};
  }
  mutable std::atomic<int> calls{0};

 private:
  std::string bad_cn_;
};

TEST(Plumbing, RevocationCheckerIsConsultedForEachNonAnchor) {
  pki::temp_dir d;
  ca::trust_options o;
  o.ca_bundle = d.write("b.pem", pki::pem(w().root));
  auto ocsp = std::make_shared<fake_ocsp>("dev-bad");
  ca::verifier v(std::make_shared<ca::trust_store>(o), {}, ocsp);
  const auto good = pki::issue(leaf_spec("dev-good"), pki::ec_key(), w().intermediate, w().int_key);
  EXPECT_TRUE(has_code(v.verify_encoded(pki::pem({good, w().intermediate})), reason::ok));
  EXPECT_EQ(ocsp->calls.load(), 2);  // leaf and intermediate, not the root
  const auto bad = pki::issue(leaf_spec("dev-bad"), pki::ec_key(), w().root, w().root_key);
  const auto r = v.verify_encoded(pki::pem(bad));
  EXPECT_TRUE(has_code(r, reason::revoked));
  EXPECT_NE(r.detail.find("OCSP says revoked"), std::string::npos);
}

}  // namespace
}  // namespace certauth_test
