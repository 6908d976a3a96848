// tunnelgate — the zero-trust tunnel egress gateway daemon.
#include <cstring>
#include <iostream>

#include "gateway/gateway.hpp"

namespace {

constexpr const char* usage =
    "usage: tunnelgate CONFIG.yaml            run the gateway\n"
    "       tunnelgate --check-config FILE    validate FILE and everything it references\n"
    "       tunnelgate --help\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::cout << usage;
    return 0;
  }
  if (argc == 3 && std::strcmp(argv[1], "--check-config") == 0) {
    if (!tunnelgate::gateway::check_config(argv[2], std::cerr)) return 2;
    std::cout << argv[2] << ": ok\n";
    return 0;
  }
  if (argc == 2 && argv[1][0] != '-') return tunnelgate::gateway::run(argv[1]);
  std::cerr << usage;
  return 2;
}
