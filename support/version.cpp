#include "support/support.hpp"

#ifndef TUNNELGATE_VERSION
#error "TUNNELGATE_VERSION comes from support/CMakeLists.txt"
#endif

namespace tunnelgate::support {

const char* version() noexcept {
  return TUNNELGATE_VERSION;
}

}  // namespace tunnelgate::support
