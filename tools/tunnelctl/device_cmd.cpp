// tunnelctl device ... — ask the configured UEM source about one device ("why is this device
// refused?").
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "commands.hpp"
#include "uem/uem.hpp"

namespace tunnelctl {

namespace {

namespace uem = tunnelgate::uem;

int cmd_check(const args& a) {
  po::options_description desc("options");
  std::string config_path, udid, serial;
  desc.add_options()("config", po::value(&config_path)->required(),
                     "configuration file with a `uem:` section (the gateway's config)")(
      "udid", po::value(&udid), "the device's UDID")("serial", po::value(&serial),
                                                     "the device's serial number");
  po::positional_options_description pos;
  po::variables_map vm;
  if (!parse_options(a, desc, pos, "tunnelctl device check --config FILE (--udid U | --serial S)",
                     vm)) {
    return exit_ok;
  }
  if (vm.count("udid") == vm.count("serial")) {
    throw usage_error("give exactly one of --udid or --serial");
  }
  const auto key = vm.count("udid") ? uem::device_key::udid(udid) : uem::device_key::serial(serial);
  if (key.value.empty()) throw usage_error("the device identifier is empty");

  // Library logs go to stderr, warnings and worse only: stdout carries the one answer line.
  auto logger = spdlog::stderr_logger_mt("tunnelctl-device");
  logger->set_level(spdlog::level::warn);
  spdlog::set_default_logger(logger);

  auto cfg = uem::load_config_file(config_path);
  if (!cfg) {
    std::string msg = "cannot load the uem configuration:";
    for (const auto& e : cfg.errors)
      msg += "\n  " + e.to_string();
    throw command_error(msg);
  }
  uem::service_options opts;
  opts.webhook = false;             // a one-shot question: no listener
  opts.background_refresh = false;  // and no polling
  std::shared_ptr<uem::service> svc;
  try {
    svc = uem::service::create(*cfg.value, opts);
  } catch (const std::system_error& e) {
    throw command_error(std::string("cannot start the ") +
                        (cfg.value->source == uem::source_kind::file ? "file" : "ws1") +
                        " source: " + e.what());
  }
  const auto d = svc->check(key);
  svc->stop();
  if (d->code == uem::reason::uem_unavailable) {
    throw command_error("cannot get an answer from the UEM for " + key.to_string() + ": " +
                        d->detail);
  }
  std::cout << d->summary_line() << "\n";
  return d->admitted() ? exit_ok : exit_no;
}

constexpr command device_commands[] = {
    {"check", "ask the UEM whether a device is admitted, and why not", cmd_check},
};

}  // namespace

const group device_group{"device", "device compliance as the UEM reports it", device_commands};

}  // namespace tunnelctl
