// Fuzz target: a Device Traffic Rules file (administrator input, reloaded on SIGHUP):
// dtr::load_rules(), and on a policy that loads, what is made from it: lint, a few decisions,
// the PAC file and the client profile, which must hold only printable ASCII (they reach
// browsers and devices; dtr.hpp promises it).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dtr/dtr.hpp"

namespace dtr = tunnelgate::dtr;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool printable_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= 0x20 && c < 0x7f) || c == '\n'; });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto r = dtr::load_rules(text, "rules.yaml");
  check(static_cast<bool>(r) == r.errors.empty());
  if (!r) return 0;
  const auto& p = *r.value;
  (void)dtr::lint(p);
  for (const auto plat : {dtr::platform::ios, dtr::platform::android, dtr::platform::windows}) {
    for (const std::string_view host : {"login.example.com", "10.1.2.3", "::ffff:10.1.2.3",
                                        "2001:db8::1", "xn--bcher-kva.example", "a"}) {
      const dtr::flow f{host, 443, plat, {}};
      const auto d = p.evaluate(f);
      check(!d.refused() || d.act == dtr::action::block);
      (void)dtr::decision_json(d, f);
    }
    check(printable_ascii(dtr::to_pac(p, plat, "gw.example.com:8443")));
    check(printable_ascii(dtr::to_profile_json(p, plat)));
  }
  return 0;
}
