// Fuzz target: the CSTP byte stream a VPN device sends after its tunnel CONNECT
// (gateway/vpn/cstp.hpp), as tunnel_session reads it: a cstp::reader fed in pieces (the first
// input byte picks their sizes, like TLS records of any length), each frame handled (DISCONNECT
// reasons parsed, DATA packets parsed, DPD requests echoed). The reader must yield exactly what
// decode() finds on the whole stream at once, and the sticky failure must be the same.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "gateway/vpn/cstp.hpp"
#include "gateway/vpn/packet.hpp"

namespace cstp = tunnelgate::gateway::vpn::cstp;
namespace packet = tunnelgate::gateway::vpn::packet;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

struct seen {
  cstp::type type;
  std::vector<std::uint8_t> payload;
};

void handle(const cstp::frame& f) {
  switch (f.type) {
    case cstp::type::disconnect: {
      const auto why = cstp::parse_disconnect(f.payload);
      check(why.text.size() <= 200);
      check(std::all_of(why.text.begin(), why.text.end(),
                        [](char c) { return c >= 0x20 && c < 0x7f; }));
      break;
    }
    case cstp::type::data: {
      packet::info p;
      if (packet::parse(f.payload, p) == packet::error::none) check(p.length == f.payload.size());
      break;
    }
    case cstp::type::dpd_req: {
      const auto echo = cstp::make_frame(cstp::type::dpd_resp, f.payload);
      const auto back = cstp::decode(echo, cstp::max_payload_size);
      check(back.state == cstp::decode_result::status::complete &&
            back.value.size() == echo.size());
      check(std::equal(back.value.payload.begin(), back.value.payload.end(), f.payload.begin(),
                       f.payload.end()));
      break;
    }
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + data[0] % 97;  // bytes per read
  const std::span<const std::uint8_t> stream(data + 1, size - 1);
  const std::size_t max_payload = cstp::max_payload_for_mtu(1400);

  // The whole stream at once, with decode().
  std::vector<seen> expected;
  cstp::error expected_failure = cstp::error::none;
  for (std::size_t at = 0;;) {
    const auto r = cstp::decode(stream.subspan(at), max_payload);
    if (r.state == cstp::decode_result::status::failed) {
      check(r.reason != cstp::error::none);
      expected_failure = r.reason;
      break;
    }
    if (r.state == cstp::decode_result::status::need_more) {
      check(r.need > stream.size() - at);
      break;
    }
    check(r.value.payload.size() <= max_payload && r.value.size() <= stream.size() - at);
    expected.push_back({r.value.type, {r.value.payload.begin(), r.value.payload.end()}});
    at += r.value.size();
  }

  // The same stream through a reader, in pieces.
  cstp::reader reader(max_payload);
  std::size_t got = 0;
  bool failed = false;
  for (std::size_t at = 0; at < stream.size() && !failed; at += piece) {
    reader.feed(stream.subspan(at, std::min(piece, stream.size() - at)));
    for (;;) {
      const auto r = reader.next();
      if (r.state == cstp::decode_result::status::need_more) break;
      if (r.state == cstp::decode_result::status::failed) {
        check(r.reason == expected_failure && reader.failure() == expected_failure);
        check(reader.next().state == cstp::decode_result::status::failed);  // sticky
        failed = true;
        break;
      }
      check(got < expected.size() && r.value.type == expected[got].type);
      check(std::equal(r.value.payload.begin(), r.value.payload.end(),
                       expected[got].payload.begin(), expected[got].payload.end()));
      handle(r.value);
      ++got;
    }
  }
  check(got == expected.size());
  check(failed == (expected_failure != cstp::error::none));
  return 0;
}
