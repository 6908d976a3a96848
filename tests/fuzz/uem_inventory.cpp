// Fuzz target: the inventory file of the `file` UEM source (administrator input, re-read on
// every poll): a JSON or YAML array of device records or a UEM search response
// (uem::parse_inventory). Every problem is an error line; nothing throws.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "uem/uem.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto r = tunnelgate::uem::parse_inventory(text, "devices.json");
  if (!r.ok() && r.errors.front().empty()) std::abort();
  return 0;
}
