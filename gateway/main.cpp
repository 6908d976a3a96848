// tunnelgate — the zero-trust tunnel egress gateway daemon.
#include <cstring>
#include <iostream>

#include "gateway/gateway.hpp"
#include "support/support.hpp"

namespace {

constexpr const char* usage =
    "usage: tunnelgate CONFIG.yaml            run the gateway\n"
    "       tunnelgate --check-config FILE    validate FILE and everything it references\n"
    "       tunnelgate --reload FILE          check FILE, then have the running gateway reload it\n"
    "       tunnelgate --version\n"
    "       tunnelgate --help\n"
    "exit codes: 0 ok, 1 runtime failure, 2 usage, 78 configuration error\n";

}  // namespace

int main(int argc, char** argv) {
  namespace gw = tunnelgate::gateway;
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::cout << usage;
    return gw::exit_ok;
  }
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::cout << "tunnelgate " << tunnelgate::support::version() << "\n";
    return gw::exit_ok;
  }
  if (argc == 3 && std::strcmp(argv[1], "--check-config") == 0) {
    if (!gw::check_config(argv[2], std::cerr)) return gw::exit_config;
    std::cout << argv[2] << ": ok\n";
    return gw::exit_ok;
  }
  if (argc == 3 && std::strcmp(argv[1], "--reload") == 0)
    return gw::request_reload(argv[2], std::cout, std::cerr);
  if (argc == 2 && argv[1][0] != '-') return gw::run(argv[1]);
  std::cerr << usage;
  return gw::exit_usage;
}
