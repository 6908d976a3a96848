// tunnelctl posture-sync ... — posture_sync outside the daemon (issue 15): a foreground mode for
// a separate host, one device once, and the CAEP signing key's JWKS. The work is the gateway
// library's (gateway/gateway.hpp), so this runs the code the daemon runs.
#include <iostream>

#include "commands.hpp"
#include "gateway/gateway.hpp"

namespace tunnelctl {

namespace {

namespace gw = tunnelgate::gateway;

/// tunnelctl's exit codes: a configuration error is "could not answer" (2).
int mapped(int code) {
  return code == gw::exit_config ? exit_error : code;
}

std::string config_option(const args& a, std::string_view usage, po::variables_map& vm,
                          po::options_description& desc, bool& help) {
  std::string config_path;
  desc.add_options()("config", po::value(&config_path)->required(),
                     "the gateway's configuration file (its uem, posture_sync and log sections)");
  const po::positional_options_description pos;
  help = !parse_options(a, desc, pos, usage, vm);
  return config_path;
}

int cmd_run(const args& a) {
  po::options_description desc("options");
  po::variables_map vm;
  bool help = false;
  const auto file = config_option(a, "tunnelctl posture-sync run --config FILE", vm, desc, help);
  if (help) return exit_ok;
  return mapped(gw::posture_sync_run(file, std::cerr));
}

int cmd_apply(const args& a) {
  po::options_description desc("options");
  std::string udid, serial;
  desc.add_options()("udid", po::value(&udid), "the device's UDID")("serial", po::value(&serial),
                                                                    "the device's serial number");
  po::variables_map vm;
  bool help = false;
  const auto file = config_option(
      a, "tunnelctl posture-sync apply --config FILE (--udid U | --serial S)", vm, desc, help);
  if (help) return exit_ok;
  if (vm.count("udid") == vm.count("serial")) {
    throw usage_error("give exactly one of --udid or --serial");
  }
  const bool by_udid = vm.count("udid") != 0;
  const auto& value = by_udid ? udid : serial;
  if (value.empty()) throw usage_error("the device identifier is empty");
  return mapped(gw::posture_sync_apply(file, by_udid, value, std::cout, std::cerr));
}

int cmd_jwks(const args& a) {
  po::options_description desc("options");
  po::variables_map vm;
  bool help = false;
  const auto file = config_option(a, "tunnelctl posture-sync jwks --config FILE", vm, desc, help);
  if (help) return exit_ok;
  return mapped(gw::posture_sync_jwks(file, std::cout, std::cerr));
}

constexpr command posture_commands[] = {
    {"run", "act on the UEM's compliance events in the foreground (a separate host)", cmd_run},
    {"apply", "ask the UEM about one device and run the IdP actions for it once, now", cmd_apply},
    {"jwks", "print the public JWKS of the CAEP signing key", cmd_jwks},
};

}  // namespace

const group posture_sync_group{"posture-sync",
                               "suspend devices and end sessions in Okta and Entra on "
                               "compliance changes, send CAEP events",
                               posture_commands};

}  // namespace tunnelctl
