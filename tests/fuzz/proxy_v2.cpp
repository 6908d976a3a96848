// Fuzz target: the PROXY protocol v2 header in front of a device's TLS bytes
// (gateway/proxy_protocol.hpp), as gateway/proxy_accept.cpp reads it: bytes arriving in pieces.
// Properties: an ok result never consumes more than the input and never past 536 bytes;
// re-parsing the consumed prefix gives the same result; every prefix of the input is either
// need_more (asking for more than it holds) or the same final answer, so a header split across
// reads is decided exactly as one read whole.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "gateway/proxy_protocol.hpp"

namespace gw = tunnelgate::gateway;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool same(const gw::proxy_header& a, const gw::proxy_header& b) {
  if (a.state != b.state) return false;
  if (a.refused()) return a.refusal == b.refusal;
  if (!a.ok()) return true;
  return a.consumed == b.consumed && a.cmd == b.cmd && a.source == b.source &&
         a.destination == b.destination;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  const auto whole = gw::parse_proxy_v2(in);
  if (whole.ok()) {
    check(whole.consumed <= size);
    check(whole.consumed >= gw::proxy_v2_fixed && whole.consumed <= gw::proxy_v2_max_header);
    check(same(gw::parse_proxy_v2(in.first(whole.consumed)), whole));
    check(!whole.source == !whole.destination);
    check(!whole.source || whole.cmd == gw::proxy_header::command::proxy);
  } else if (whole.refused()) {
    check(!whole.detail.empty());
  } else {
    check(whole.needed > size && whole.needed <= gw::proxy_v2_max_header);
  }
  // Every prefix a reader could hold on the way (the header is at most 536 bytes).
  const std::size_t upto = std::min(size, gw::proxy_v2_max_header + 1);
  for (std::size_t k = 0; k <= upto; ++k) {
    const auto part = gw::parse_proxy_v2(in.first(k));
    if (part.state == gw::proxy_header::status::need_more) {
      check(part.needed > k);
      check(!whole.ok() || k < whole.consumed);
    } else {
      check(same(part, whole));
    }
  }
  return 0;
}
