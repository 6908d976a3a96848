// tunnelctl cert ... — check device certificates the way the gateway does (certauth).
#include <array>
#include <ctime>
#include <iostream>

#include "certauth/certauth.hpp"
#include "commands.hpp"

namespace tunnelctl {

namespace {

namespace ca = tunnelgate::certauth;

int cmd_inspect(const args& a) {
  po::options_description desc("options");
  std::string bundle, cert, stale = "refuse";
  std::vector<std::string> crls, chain;
  ca::verify_policy policy;
  long skew = 300;
  bool partial = false, verbose = false;
  desc.add_options()("ca", po::value(&bundle)->required(), "PEM bundle of trusted device CAs")(
      "crl", po::value(&crls)->composing(), "CRL file (PEM or DER); repeatable")(
      "chain", po::value(&chain)->composing(), "extra untrusted intermediates; repeatable")(
      "cert", po::value(&cert)->required(),
      "device certificate (PEM, may include intermediates, or DER)")(
      "udid-from", po::value(&policy.identity.udid.source)->default_value("subject.CN"),
      "UDID source: subject.<attr>, san.uri, san.dns, san.email, san.upn")(
      "udid-prefix", po::value(&policy.identity.udid.prefix)->default_value(""),
      "UDID prefix, e.g. urn:udid:")(
      "user-from", po::value(&policy.identity.user.source)->default_value("san.email"),
      "user source")("user-prefix", po::value(&policy.identity.user.prefix)->default_value(""),
                     "user prefix")(
      "serial-from",
      po::value(&policy.identity.serial.source)->default_value("subject.serialNumber"),
      "serial source (\"\" to ignore)")(
      "serial-prefix", po::value(&policy.identity.serial.prefix)->default_value(""),
      "serial prefix")("stale-crl", po::value(&stale)->default_value("refuse"),
                       "CRL past nextUpdate: refuse or warn")(
      "clock-skew", po::value(&skew)->default_value(300), "allowed clock skew in seconds")(
      "partial-chain", po::bool_switch(&partial), "trust intermediates in --ca as anchors")(
      "verbose,v", po::bool_switch(&verbose), "print the identity's details after the verdict");
  po::positional_options_description pos;
  pos.add("cert", 1);
  po::variables_map vm;
  if (!parse_options(a, desc, pos, "tunnelctl cert inspect --ca BUNDLE [--crl FILE ...] CERT",
                     vm)) {
    return exit_ok;
  }
  if (stale == "refuse") {
    policy.stale_crl = ca::stale_crl_policy::refuse;
  } else if (stale == "warn") {
    policy.stale_crl = ca::stale_crl_policy::warn;
  } else {
    throw usage_error("--stale-crl must be refuse or warn, not '" + stale + "'");
  }
  if (skew < 0 || skew > 86400) throw usage_error("--clock-skew must be 0 to 86400 seconds");
  policy.clock_skew = std::chrono::seconds(skew);

  ca::trust_options topt;
  topt.ca_bundle = bundle;
  topt.crls.assign(crls.begin(), crls.end());
  topt.allow_partial_chain = partial;
  // Read the inputs before loading anything: an unreadable CERT is exit 2 like any other error.
  std::vector<std::string> inputs{read_file(cert)};
  for (const auto& c : chain)
    inputs.push_back(read_file(c));
  auto store = std::make_shared<ca::trust_store>(topt);
  for (const auto& w : store->summary().warnings)
    std::cerr << "warning: " << w << "\n";
  const ca::verifier v(store, policy);

  std::vector<std::string_view> parts(inputs.begin(), inputs.end());
  const auto r = v.verify_encoded(parts);
  for (const auto& w : r.warnings)
    std::cerr << "warning: " << w << "\n";
  if (!r.ok()) {
    std::cout << "refused " << ca::to_string(r.code) << ": " << r.detail << "\n";
    return exit_no;
  }
  const auto& id = *r.identity;
  std::cout << "ok udid=" << id.udid << " user=" << id.user << " serial=" << id.serial << "\n";
  if (verbose) {
    std::cout << "  subject:     " << id.subject << "\n"
              << "  issuer:      " << id.issuer << "\n"
              << "  cert serial: " << id.certificate_serial << "\n"
              << "  sha256:      " << id.fingerprint_sha256 << "\n"
              << "  not before:  " << when(id.not_before) << "\n"
              << "  not after:   " << when(id.not_after) << "\n";
  }
  return exit_ok;
}

constexpr std::array<command, 1> cert_commands{{
    {"inspect",
     "verify a device certificate: 'ok udid=...' (exit 0) or 'refused <reason>: ...' (exit 1)",
     &cmd_inspect},
}};

}  // namespace

const group cert_group{"cert", "device certificates: inspect", cert_commands};

}  // namespace tunnelctl
