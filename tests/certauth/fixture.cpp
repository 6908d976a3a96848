#include "fixture.hpp"

namespace certauth_test {

const world& w() {
  static const world instance;
  return instance;
}

const rsa_world& rsa() {
  static const rsa_world instance;
  return instance;
}

bench::bench(const std::vector<pki::cert>& cas, const std::vector<pki::crl>& crls,
             ca::verify_policy policy, bool partial, std::optional<bool> crl_required) {
  ca::trust_options o;
  o.ca_bundle = dir_.write("bundle.pem", pki::pem(cas));
  for (std::size_t i = 0; i < crls.size(); ++i) {
    o.crls.push_back(dir_.write("crl" + std::to_string(i) + ".pem", pki::pem(crls[i])));
  }
  o.allow_partial_chain = partial;
  o.crl_required = crl_required;
  store_ = std::make_shared<ca::trust_store>(o);
  verifier_ = std::make_unique<ca::verifier>(store_, std::move(policy));
}

ca::verify_result bench::check(const pki::cert& leaf, const std::vector<pki::cert>& chain) const {
  std::string in = pki::pem(leaf) + pki::pem(chain);
  return verifier_->verify_encoded(in);
}

pki::cert_spec leaf_spec(const std::string& udid, const std::string& user) {
  pki::cert_spec s;
  s.subject = {{"CN", udid}};
  s.san = {"email:" + user};
  return s;
}

::testing::AssertionResult has_code(const ca::verify_result& r, ca::reason code) {
  if (r.code == code) return ::testing::AssertionSuccess() << ca::to_string(r.code);
  return ::testing::AssertionFailure() << "expected " << ca::to_string(code) << ", got "
                                       << ca::to_string(r.code) << ": " << r.detail;
}

}  // namespace certauth_test
