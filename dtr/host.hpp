// Internal: allocation-free host name normalisation for the hot path.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace tunnelgate::dtr {

inline constexpr std::size_t max_host_length = 253;

struct host_buffer {
  std::array<char, max_host_length + 1> data{};
  std::size_t size = 0;
  std::string_view view() const noexcept { return {data.data(), size}; }
};

enum class host_status { ok, bad, non_ascii };

/// Lower-cases an ASCII host name into `out`, dropping one trailing dot, and validates it.
/// Returns non_ascii (with `out` unspecified) when the name needs IDNA conversion.
host_status normalize_ascii_host(std::string_view in, host_buffer& out) noexcept;

}  // namespace tunnelgate::dtr
