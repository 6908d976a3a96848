// Hostile YAML shapes shared by the support tests: billion laughs, deep nesting, alias chains.
#pragma once

#include <sys/resource.h>

#include <string>

namespace tunnelgate::testing {

/// `levels` anchors of `fan` aliases each under `key:` ("lol0" ... ): fan^levels leaves from a
/// file of a few hundred bytes. Each anchor line is `  lolN: &lolN [*lolN-1, ...]`.
inline std::string billion_laughs(int levels = 9, int fan = 10, const std::string& indent = "") {
  std::string y = indent + "lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i <= levels; ++i) {
    const auto prev = "*lol" + std::to_string(i - 1);
    y += indent + "lol" + std::to_string(i) + ": &lol" + std::to_string(i) + " [";
    for (int j = 0; j < fan; ++j)
      y += (j == 0 ? "" : ", ") + prev;
    y += "]\n";
  }
  return y;
}

/// `[[[[...]]]]`, `depth` levels on one line.
inline std::string deep_flow(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']') + "\n";
}

/// The peak resident set so far, in KiB (Linux: ru_maxrss).
inline long peak_rss_kib() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

}  // namespace tunnelgate::testing
