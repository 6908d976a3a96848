// Fuzz target: a webhook body from the UEM (uem::parse_webhook, called by the webhook listener
// once the request is authenticated). An accepted event names a device to re-read and has a
// 64-hex-digit identity; a refusal says why.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "uem/uem.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const auto r = tunnelgate::uem::parse_webhook(body);
  check(r.event.has_value() == r.error.empty());
  if (!r.event) return 0;
  const auto& id = r.event->identity;
  check(id.size() == 64 && std::all_of(id.begin(), id.end(), [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        }));
  return 0;
}
