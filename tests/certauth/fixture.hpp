// Shared test PKI: keys are made once per test binary (RSA generation is slow).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "certauth/certauth.hpp"
#include "pki.hpp"

namespace certauth_test {

namespace ca = tunnelgate::certauth;

struct world {
  pki::key root_key = pki::ec_key();
  pki::cert root = pki::issue(pki::ca_spec("Test Device Root"), root_key, nullptr, root_key);
  pki::key int_key = pki::ec_key();
  pki::cert intermediate =
      pki::issue(pki::ca_spec("Test Device Issuing CA"), int_key, root, root_key);
  pki::key other_key = pki::ec_key();
  pki::cert other_root = pki::issue(pki::ca_spec("Other Root"), other_key, nullptr, other_key);
};

/// RSA material, separate because generating it is slow and ctest runs each test in its own
/// process: only the tests that need RSA pay for it.
struct rsa_world {
  pki::key rsa2048 = pki::rsa_key(2048);
  pki::key rsa2048_b = pki::rsa_key(2048);
  pki::key rsa1024 = pki::rsa_key(1024);
  pki::cert rsa_root = pki::issue(pki::ca_spec("RSA Device Root"), rsa2048, nullptr, rsa2048);
};

/// The one instance of each (built on first use).
const world& w();
const rsa_world& rsa();

/// A temp dir holding a CA bundle (and optional CRLs) and a verifier over it.
class bench {
 public:
  explicit bench(const std::vector<pki::cert>& cas = {w().root},
                 const std::vector<pki::crl>& crls = {}, ca::verify_policy policy = {},
                 bool partial = false, std::optional<bool> crl_required = std::nullopt);
  ca::verify_result check(const pki::cert& leaf, const std::vector<pki::cert>& chain = {}) const;
  ca::verifier& v() { return *verifier_; }
  std::shared_ptr<ca::trust_store> store() const { return store_; }
  const pki::temp_dir& dir() const { return dir_; }

 private:
  pki::temp_dir dir_;
  std::shared_ptr<ca::trust_store> store_;
  std::unique_ptr<ca::verifier> verifier_;
};

/// A leaf spec for a UDID and user, otherwise defaults (clientAuth, P-256 friendly).
pki::cert_spec leaf_spec(const std::string& udid = "dev-1",
                         const std::string& user = "alice@example.com");

/// gtest helper: expects `r` to carry `code`, printing the detail on failure.
::testing::AssertionResult has_code(const ca::verify_result& r, ca::reason code);

}  // namespace certauth_test
