// tunnelctl ca ... — a development CA for demos and tests (certauth's dev_ca).
#include <array>
#include <ctime>
#include <iostream>

#include "certauth/certauth.hpp"
#include "commands.hpp"

namespace tunnelctl {

namespace {

namespace ca = tunnelgate::certauth;

ca::key_spec key_arg(const po::variables_map& vm) {
  ca::key_spec k;
  if (vm.count("rsa") != 0) {
    k.type = ca::key_spec::kind::rsa;
    k.rsa_bits = vm["rsa"].as<int>();
    if (k.rsa_bits < 2048 || k.rsa_bits > 8192) {
      throw usage_error(
          "--rsa " + std::to_string(k.rsa_bits) +
          ": RSA keys must be 2048 to 8192 bits (smaller keys are refused as weak_key)");
    }
  }
  return k;
}

std::string key_text(const ca::key_spec& k) {
  return k.type == ca::key_spec::kind::rsa ? "RSA " + std::to_string(k.rsa_bits) : "EC P-256";
}

int cmd_init(const args& a) {
  po::options_description desc("options");
  std::string dir;
  std::vector<std::string> sans;
  ca::ca_init_options opt;
  desc.add_options()("dir", po::value(&dir)->required(),
                     "directory for the CA (created, mode 0700)")(
      "rsa", po::value<int>(), "use RSA keys of BITS (2048..8192) instead of EC P-256")(
      "san", po::value(&sans)->composing(), "extra server SAN (DNS name or IP); repeatable")(
      "days", po::value(&opt.root_days)->default_value(3650), "root validity in days")(
      "name", po::value(&opt.name)->default_value("tunnelgate dev"),
      "organisation in the subjects");
  po::positional_options_description pos;
  pos.add("dir", 1);
  po::variables_map vm;
  if (!parse_options(a, desc, pos, "tunnelctl ca init DIR [--rsa BITS] [--san NAME]...", vm)) {
    return exit_ok;
  }
  opt.key = key_arg(vm);
  opt.server_sans = sans;
  const auto c = ca::dev_ca::init(dir, opt);
  std::cout << "created development CA in " << c.dir().string() << " (" << key_text(opt.key)
            << ")\n"
            << "  device root:  " << c.ca_cert_path().string()
            << "  (trust bundle for the gateway)\n"
            << "  root key:     " << c.ca_key_path().string() << "\n"
            << "  server cert:  " << c.server_cert_path().string() << "  (SAN localhost, 127.0.0.1";
  for (const auto& s : sans)
    std::cout << ", " << s;
  std::cout << ")\n"
            << "  server key:   " << c.server_key_path().string() << "\n"
            << "  CRL:          " << c.crl_path().string() << "\n";
  return exit_ok;
}

int cmd_issue(const args& a) {
  po::options_description desc("options");
  std::string dir;
  ca::device_request req;
  desc.add_options()("dir", po::value(&dir)->required(),
                     "CA directory made by 'tunnelctl ca init'")(
      "udid", po::value(&req.udid)->required(), "device UDID (subject CN)")(
      "user", po::value(&req.user)->required(), "user email (SAN rfc822Name)")(
      "serial", po::value(&req.serial), "device serial number (subject serialNumber)")(
      "platform", po::value(&req.platform), "ios, android, macos, windows or linux (subject OU)")(
      "days", po::value(&req.days)->default_value(365), "validity in days")(
      "rsa", po::value<int>(), "RSA key of BITS (2048..8192) instead of EC P-256")(
      "p12-password", po::value(&req.p12_password)->default_value(""),
      "password of the PKCS#12 bundle (default: empty)");
  po::positional_options_description pos;
  pos.add("dir", 1);
  po::variables_map vm;
  if (!parse_options(a, desc, pos,
                     "tunnelctl ca issue DIR --udid U --user EMAIL [--serial S] [--platform P] "
                     "[--days N] [--rsa BITS]",
                     vm)) {
    return exit_ok;
  }
  req.key = key_arg(vm);
  auto c = ca::dev_ca::open(dir);
  const auto out = c.issue(req);
  std::cout << "issued serial=" << out.serial << " udid=" << out.udid << " user=" << req.user
            << " not_after=" << when(out.not_after) << "\n"
            << "  certificate: " << out.cert_path.string() << "\n"
            << "  key:         " << out.key_path.string() << "\n"
            << "  pkcs12:      " << out.p12_path.string() << "\n"
            << "  sha256:      " << out.fingerprint_sha256 << "\n";
  return exit_ok;
}

int cmd_revoke(const args& a) {
  po::options_description desc("options");
  std::string dir, what;
  desc.add_options()("dir", po::value(&dir)->required(), "CA directory")(
      "what", po::value(&what)->required(), "certificate serial (hex), UDID or device serial");
  po::positional_options_description pos;
  pos.add("dir", 1).add("what", 1);
  po::variables_map vm;
  if (!parse_options(a, desc, pos, "tunnelctl ca revoke DIR SERIAL-OR-UDID", vm)) return exit_ok;
  auto c = ca::dev_ca::open(dir);
  const auto out = c.revoke(what);
  for (const auto& r : out.revoked) {
    std::cout << "revoked serial=" << r.serial << " udid=" << (r.udid.empty() ? "-" : r.udid)
              << " kind=" << r.kind << "\n";
  }
  for (const auto& r : out.already_revoked) {
    std::cout << "already revoked serial=" << r.serial
              << " udid=" << (r.udid.empty() ? "-" : r.udid) << " since " << when(r.revoked_at)
              << "\n";
  }
  std::cout << "CRL updated: " << c.crl_path().string() << "\n";
  return exit_ok;
}

int cmd_crl(const args& a) {
  po::options_description desc("options");
  std::string dir;
  int days = 7;
  desc.add_options()("dir", po::value(&dir)->required(), "CA directory")(
      "days", po::value(&days)->default_value(7), "days until nextUpdate (1..365)");
  po::positional_options_description pos;
  pos.add("dir", 1);
  po::variables_map vm;
  if (!parse_options(a, desc, pos, "tunnelctl ca crl DIR [--days N]", vm)) return exit_ok;
  auto c = ca::dev_ca::open(dir);
  const auto path = c.write_crl(days);
  std::size_t revoked = 0;
  for (const auto& r : c.records())
    revoked += r.revoked ? 1 : 0;
  std::cout << "wrote " << path.string() << " (" << revoked << " revoked, next update in " << days
            << " days)\n";
  return exit_ok;
}

int cmd_list(const args& a) {
  po::options_description desc("options");
  std::string dir;
  desc.add_options()("dir", po::value(&dir)->required(), "CA directory");
  po::positional_options_description pos;
  pos.add("dir", 1);
  po::variables_map vm;
  if (!parse_options(a, desc, pos, "tunnelctl ca list DIR", vm)) return exit_ok;
  auto c = ca::dev_ca::open(dir);
  for (const auto& r : c.records()) {
    std::cout << "serial=" << r.serial << " kind=" << r.kind
              << " status=" << (r.revoked ? "revoked" : "valid")
              << " udid=" << (r.udid.empty() ? "-" : r.udid)
              << " user=" << (r.user.empty() ? "-" : r.user)
              << " device_serial=" << (r.device_serial.empty() ? "-" : r.device_serial)
              << " not_after=" << when(r.not_after) << "\n";
  }
  return exit_ok;
}

constexpr std::array<command, 5> ca_commands{{
    {"init", "create a device root and a gateway server certificate in DIR", &cmd_init},
    {"issue", "issue a device certificate, key and PKCS#12 (CN=UDID, SAN email=user)", &cmd_issue},
    {"revoke", "revoke by certificate serial or UDID and rewrite the CRL", &cmd_revoke},
    {"crl", "rewrite the CRL (fresh nextUpdate)", &cmd_crl},
    {"list", "list issued certificates", &cmd_list},
}};

}  // namespace

const group ca_group{"ca", "development CA: init, issue, revoke, crl, list", ca_commands};

}  // namespace tunnelctl
