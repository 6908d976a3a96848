// Fuzz target: the gateway's configuration file as the daemon loads it at start and on SIGHUP
// (gateway/server.cpp): gateway::load_config(file) for its own sections and
// uem::load_config_file(file) for `uem:`. Neither may throw, and a refusal names its errors. Both
// take a path, so each input is written to gateway.yaml in a scratch folder that also holds the
// files a configuration names (empty PEM files, a rules file, secret files), so a valid
// configuration loads all the way.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "gateway/config.hpp"
#include "support/temp_dir.hpp"
#include "uem/uem.hpp"

namespace {

constexpr const char* rules_yaml = R"(rule_sets:
  - name: all
    platforms: [ios, android]
    mode: full-device
    default: tunnel
)";

using tunnelgate::testing::temp_dir;

temp_dir* scratch_dir = nullptr;  // removed at exit

void remove_scratch() {
  delete scratch_dir;
}

const temp_dir& scratch() {
  if (scratch_dir != nullptr) return *scratch_dir;
  scratch_dir = new temp_dir;
  const auto& d = *scratch_dir;
  for (const char* f : {"server.pem", "server.key", "ca.pem", "crl.pem", "device-ca.pem",
                        "device-ca.crl", "corp-ca.pem"})
    d.write(f, "");
  d.write("rules.yaml", rules_yaml);
  d.write("devices.json", "[]");
  for (const char* f : {"admin.token", "okta.token", "uem.password", "uem.api-key", "uem.secret"})
    d.write(f, "s3cr3t-token-0123456789abcdef\n");
  d.write("corp-proxy.creds", "user:password\n");
  std::atexit(remove_scratch);
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& dir = scratch();
  const auto file =
      dir.write("gateway.yaml", std::string(reinterpret_cast<const char*>(data), size));
  const auto g = tunnelgate::gateway::load_config(file);
  if (!g && g.errors.empty()) std::abort();  // a refusal must say why
  const auto u = tunnelgate::uem::load_config_file(file);
  if (!u && u.errors.empty()) std::abort();
  return 0;
}
