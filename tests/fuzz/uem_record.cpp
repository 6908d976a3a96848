// Fuzz target: one device record in the UEM API's JSON shape, as the ws1 client reads it from
// the UEM's answers (uem::parse_device_record): missing or wrong-typed fields are errors with a
// message, never defaults, never exceptions.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "uem/uem.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto r = tunnelgate::uem::parse_device_record(text);
  if (r.record.has_value() == !r.error.empty()) std::abort();  // exactly one of the two
  if (r.record) (void)tunnelgate::uem::evaluate(tunnelgate::uem::posture_policy{}, r.record);
  return 0;
}
