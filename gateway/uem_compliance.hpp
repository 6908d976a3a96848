// Internal: compliance over the uem library's service.
#pragma once

#include <memory>

#include "gateway/compliance.hpp"
#include "uem/uem.hpp"

namespace tunnelgate::gateway {

std::shared_ptr<compliance> make_uem_compliance(std::shared_ptr<uem::service> svc);

}  // namespace tunnelgate::gateway
