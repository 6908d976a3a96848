// CSTP framing: every prefix of valid frames, every corrupted header byte, the reader fed in
// every split, and the encoder's exact bytes.
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "gateway/vpn/cstp.hpp"

namespace cstp = tunnelgate::gateway::vpn::cstp;
using bytes = std::vector<std::uint8_t>;
using status = cstp::decode_result::status;

namespace {

bytes frame(std::uint8_t type, const bytes& payload) {
  // Sized up front: GCC 12 warns wrongly (-Warray-bounds) on insert() into an 8-byte vector.
  bytes b(8 + payload.size());
  const std::uint8_t header[8] = {'S',
                                  'T',
                                  'F',
                                  0x01,
                                  static_cast<std::uint8_t>(payload.size() >> 8),
                                  static_cast<std::uint8_t>(payload.size() & 0xff),
                                  type,
                                  0x00};
  std::copy(std::begin(header), std::end(header), b.begin());
  std::copy(payload.begin(), payload.end(), b.begin() + 8);
  return b;
}

bytes payload_of(std::size_t n) {
  bytes p(n);
  for (std::size_t i = 0; i < n; ++i)
    p[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return p;
}

// The frames every sweep runs over: each type we accept, with empty, small and MTU-sized
// payloads.
std::vector<bytes> valid_frames() {
  return {
      frame(0x00, payload_of(1)),
      frame(0x00, payload_of(20)),
      frame(0x00, payload_of(1400)),
      frame(0x00, {}),
      frame(0x03, {}),
      frame(0x03, payload_of(64)),
      frame(0x04, {}),
      frame(0x05, {0xb0, 'b', 'y', 'e'}),
      frame(0x07, {}),
      frame(0x09, {}),
  };
}

constexpr std::size_t max_payload = 1400 + 256;

// What a corrupted header must decode to, worked out from the protocol rather than the code.
struct oracle {
  bool fails = false;
  cstp::error reason = cstp::error::none;
};
oracle expect_for(const bytes& b) {
  const bytes magic{'S', 'T', 'F', 0x01};
  for (std::size_t i = 0; i < 4; ++i) {
    if (b[i] != magic[i]) return {true, cstp::error::bad_magic};
  }
  if (((std::size_t{b[4]} << 8) | b[5]) > max_payload) return {true, cstp::error::bad_length};
  const std::set<std::uint8_t> known{0, 3, 4, 5, 7, 9};
  if (b[6] == 8) return {true, cstp::error::compressed};
  if (!known.contains(b[6])) return {true, cstp::error::unknown_type};
  if (b[7] != 0) return {true, cstp::error::bad_reserved};
  return {};
}

}  // namespace

TEST(CstpDecode, EveryPrefixOfAValidFrameNeedsMore) {
  for (const auto& f : valid_frames()) {
    for (std::size_t n = 0; n < f.size(); ++n) {
      const auto r = cstp::decode(std::span(f.data(), n), max_payload);
      ASSERT_EQ(r.state, status::need_more) << "frame size " << f.size() << " prefix " << n;
      EXPECT_EQ(r.need, n < cstp::header_size ? cstp::header_size : f.size());
    }
    const auto r = cstp::decode(f, max_payload);
    ASSERT_EQ(r.state, status::complete);
    EXPECT_EQ(static_cast<std::uint8_t>(r.value.type), f[6]);
    EXPECT_EQ(r.value.size(), f.size());
    ASSERT_EQ(r.value.payload.size(), f.size() - 8);
    // Zero copy: the payload is a view of the input.
    if (!r.value.payload.empty()) {
      EXPECT_EQ(r.value.payload.data(), f.data() + 8);
    }
  }
}

TEST(CstpDecode, BytesAfterAFrameAreLeftForTheNext) {
  auto two = frame(0x07, {});
  const auto second = frame(0x00, payload_of(5));
  two.insert(two.end(), second.begin(), second.end());
  const auto r = cstp::decode(two, max_payload);
  ASSERT_EQ(r.state, status::complete);
  EXPECT_EQ(r.value.type, cstp::type::keepalive);
  EXPECT_EQ(r.value.size(), 8u);
  const auto r2 = cstp::decode(std::span(two).subspan(8), max_payload);
  ASSERT_EQ(r2.state, status::complete);
  EXPECT_EQ(r2.value.payload.size(), 5u);
}

TEST(CstpDecode, EveryCorruptedHeaderByteAndEveryValue) {
  for (const auto& original : valid_frames()) {
    for (std::size_t pos = 0; pos < cstp::header_size; ++pos) {
      for (int v = 0; v < 256; ++v) {
        if (v == original[pos]) continue;
        auto f = original;
        f[pos] = static_cast<std::uint8_t>(v);
        const auto want = expect_for(f);
        const auto r = cstp::decode(f, max_payload);
        if (want.fails) {
          ASSERT_EQ(r.state, status::failed) << "byte " << pos << " = " << v;
          EXPECT_EQ(r.reason, want.reason) << "byte " << pos << " = " << v;
          // The fault shows as soon as its byte (both length bytes, for the length) arrived,
          // never earlier.
          const std::size_t shows_at = pos == 4 ? 6 : pos + 1;
          for (std::size_t n = 0; n < cstp::header_size; ++n) {
            const auto p = cstp::decode(std::span(f.data(), n), max_payload);
            if (n < shows_at) {
              EXPECT_EQ(p.state, status::need_more) << "byte " << pos << " prefix " << n;
            } else {
              EXPECT_EQ(p.state, status::failed) << "byte " << pos << " prefix " << n;
            }
          }
        } else {
          // Only a changed length (within the maximum) or another known type is still a frame;
          // then it is complete only if the bytes hold the new length.
          ASSERT_TRUE(pos == 4 || pos == 5 || pos == 6) << pos;
          const std::size_t len = (std::size_t{f[4]} << 8) | f[5];
          if (len + 8 <= f.size()) {
            ASSERT_EQ(r.state, status::complete);
            EXPECT_EQ(r.value.payload.size(), len);
          } else {
            ASSERT_EQ(r.state, status::need_more);
            EXPECT_EQ(r.need, len + 8);
          }
        }
      }
    }
  }
}

TEST(CstpDecode, LengthBoundIsInclusiveAndClampedTo16Bits) {
  auto at = frame(0x00, payload_of(1500));
  EXPECT_EQ(cstp::decode(at, 1500).state, status::complete);
  EXPECT_EQ(cstp::decode(at, 1499).reason, cstp::error::bad_length);
  // The length alone fails, without waiting for the payload.
  EXPECT_EQ(cstp::decode(std::span(at.data(), 6), 1499).reason, cstp::error::bad_length);
  auto max = frame(0x00, payload_of(0xffff));
  EXPECT_EQ(cstp::decode(max, 1'000'000).state, status::complete);
  EXPECT_EQ(cstp::max_payload_for_mtu(1400), 1656u);
  EXPECT_EQ(cstp::max_payload_for_mtu(65535), cstp::max_payload_size);
}

TEST(CstpDecode, CompressedAndUnknownTypesAreRefused) {
  EXPECT_EQ(cstp::decode(frame(0x08, payload_of(10)), max_payload).reason, cstp::error::compressed);
  for (const std::uint8_t t : {0x01, 0x02, 0x06, 0x0a, 0x10, 0x7f, 0xff}) {
    EXPECT_EQ(cstp::decode(frame(t, {}), max_payload).reason, cstp::error::unknown_type) << +t;
  }
}

TEST(CstpDecode, HttpOrTlsBytesFailOnTheFirstByte) {
  const std::string get = "GET / HTTP/1.1\r\n";
  const auto r =
      cstp::decode(std::span(reinterpret_cast<const std::uint8_t*>(get.data()), 1), max_payload);
  EXPECT_EQ(r.reason, cstp::error::bad_magic);
  const bytes tls{0x16, 0x03, 0x01};
  EXPECT_EQ(cstp::decode(tls, max_payload).reason, cstp::error::bad_magic);
}

TEST(CstpReader, FedOneByteAtATimeYieldsEveryFrame) {
  bytes stream;
  const auto frames = valid_frames();
  for (const auto& f : frames)
    stream.insert(stream.end(), f.begin(), f.end());
  cstp::reader rd(max_payload);
  std::vector<bytes> got;
  for (const auto b : stream) {
    rd.feed(std::span(&b, 1));
    for (;;) {
      const auto r = rd.next();
      ASSERT_NE(r.state, status::failed);
      if (r.state != status::complete) break;
      bytes whole = frame(static_cast<std::uint8_t>(r.value.type),
                          bytes(r.value.payload.begin(), r.value.payload.end()));
      got.push_back(whole);
    }
  }
  EXPECT_EQ(got, frames);
  EXPECT_EQ(rd.buffered(), 0u);
}

TEST(CstpReader, EveryChunkSizeYieldsTheSameFrames) {
  bytes stream;
  const auto frames = valid_frames();
  for (const auto& f : frames)
    stream.insert(stream.end(), f.begin(), f.end());
  for (std::size_t chunk = 1; chunk <= stream.size(); chunk += chunk < 64 ? 1 : 97) {
    cstp::reader rd(max_payload);
    std::size_t count = 0;
    for (std::size_t off = 0; off < stream.size(); off += chunk) {
      const auto n = std::min(chunk, stream.size() - off);
      // Read straight into the reader's buffer, as the TLS stream does.
      auto space = rd.prepare(n);
      ASSERT_GE(space.size(), n);
      std::copy_n(stream.begin() + static_cast<std::ptrdiff_t>(off), n, space.begin());
      rd.commit(n);
      for (auto r = rd.next(); r.state == status::complete; r = rd.next()) {
        ASSERT_LT(count, frames.size());
        EXPECT_EQ(r.value.payload.size(), frames[count].size() - 8) << "chunk " << chunk;
        ++count;
      }
    }
    EXPECT_EQ(count, frames.size()) << "chunk " << chunk;
  }
}

TEST(CstpReader, AFailureIsSticky) {
  cstp::reader rd(max_payload);
  rd.feed(frame(0x07, {}));
  rd.feed(bytes{'S', 'T', 'X'});
  EXPECT_EQ(rd.next().state, status::complete);
  EXPECT_EQ(rd.next().reason, cstp::error::bad_magic);
  rd.feed(frame(0x07, {}));
  EXPECT_EQ(rd.next().reason, cstp::error::bad_magic);
  EXPECT_EQ(rd.failure(), cstp::error::bad_magic);
}

TEST(CstpReader, RefusesAFrameLongerThanItsMaximum) {
  cstp::reader rd(100);
  rd.feed(frame(0x00, payload_of(101)));
  EXPECT_EQ(rd.next().reason, cstp::error::bad_length);
}

TEST(CstpEncode, HeaderBytesAreExact) {
  std::array<std::uint8_t, 8> h{};
  ASSERT_TRUE(cstp::write_header(h, cstp::type::data, 0x1234));
  EXPECT_EQ(h, (std::array<std::uint8_t, 8>{'S', 'T', 'F', 1, 0x12, 0x34, 0x00, 0x00}));
  ASSERT_TRUE(cstp::write_header(h, cstp::type::dpd_resp, 0xffff));
  EXPECT_EQ(h, (std::array<std::uint8_t, 8>{'S', 'T', 'F', 1, 0xff, 0xff, 0x04, 0x00}));
  h.fill(0xee);
  EXPECT_FALSE(cstp::write_header(h, cstp::type::data, 0x10000));
  EXPECT_EQ(h[0], 0xee);  // nothing written
  EXPECT_EQ(cstp::control_frame(cstp::type::terminate),
            (std::array<std::uint8_t, 8>{'S', 'T', 'F', 1, 0, 0, 0x09, 0}));
  EXPECT_EQ(cstp::control_frame(cstp::type::keepalive),
            (std::array<std::uint8_t, 8>{'S', 'T', 'F', 1, 0, 0, 0x07, 0}));
  EXPECT_EQ(cstp::control_frame(cstp::type::dpd_req),
            (std::array<std::uint8_t, 8>{'S', 'T', 'F', 1, 0, 0, 0x03, 0}));
}

TEST(CstpEncode, FramesRoundTrip) {
  for (const auto t : {cstp::type::data, cstp::type::dpd_req, cstp::type::dpd_resp,
                       cstp::type::disconnect, cstp::type::keepalive, cstp::type::terminate}) {
    for (const std::size_t n : {0u, 1u, 1400u, 0xffffu}) {
      const auto p = payload_of(n);
      const auto f = cstp::make_frame(t, p);
      const auto r = cstp::decode(f, cstp::max_payload_size);
      ASSERT_EQ(r.state, status::complete);
      EXPECT_EQ(r.value.type, t);
      EXPECT_TRUE(std::equal(p.begin(), p.end(), r.value.payload.begin(), r.value.payload.end()));
    }
  }
  EXPECT_THROW(cstp::make_frame(cstp::type::data, payload_of(0x10000)), std::length_error);
}

TEST(CstpEncode, DisconnectCarriesCodeAndPrintableText) {
  const auto f = cstp::make_disconnect(cstp::disconnect_code_user, "bye\nnow\x01");
  EXPECT_EQ(f, frame(0x05, {0xb0, 'b', 'y', 'e', '.', 'n', 'o', 'w', '.'}));
  const auto long_text = cstp::make_disconnect(1, std::string(500, 'x'));
  EXPECT_EQ(long_text.size(), 8u + 1u + 200u);
}

TEST(CstpEncode, ParseDisconnectIsLogSafe) {
  const bytes p{0xb0, 'U', 's', 'e', 'r', ' ', 'q', 'u', 'i', 't', 0x00, 0xff, '\n'};
  const auto r = cstp::parse_disconnect(p);
  EXPECT_TRUE(r.has_code);
  EXPECT_EQ(r.code, 0xb0);
  EXPECT_EQ(r.text, "User quit...");
  EXPECT_FALSE(cstp::parse_disconnect({}).has_code);
  EXPECT_EQ(cstp::parse_disconnect(bytes(1000, 'a')).text.size(), 200u);
}

TEST(CstpNames, EachValueHasOneStableSpelling) {
  EXPECT_EQ(cstp::to_string(cstp::error::none), "ok");
  EXPECT_EQ(cstp::to_string(cstp::error::bad_magic), "bad_magic");
  EXPECT_EQ(cstp::to_string(cstp::error::bad_length), "bad_length");
  EXPECT_EQ(cstp::to_string(cstp::error::unknown_type), "unknown_type");
  EXPECT_EQ(cstp::to_string(cstp::error::compressed), "compressed");
  EXPECT_EQ(cstp::to_string(cstp::error::bad_reserved), "bad_reserved");
  EXPECT_EQ(cstp::to_string(static_cast<cstp::error>(200)), "unknown");
  EXPECT_EQ(cstp::to_string(cstp::type::data), "data");
  EXPECT_EQ(cstp::to_string(cstp::type::dpd_req), "dpd_req");
  EXPECT_EQ(cstp::to_string(cstp::type::dpd_resp), "dpd_resp");
  EXPECT_EQ(cstp::to_string(cstp::type::disconnect), "disconnect");
  EXPECT_EQ(cstp::to_string(cstp::type::keepalive), "keepalive");
  EXPECT_EQ(cstp::to_string(cstp::type::compressed), "compressed");
  EXPECT_EQ(cstp::to_string(cstp::type::terminate), "terminate");
  // The wire values openconnect uses (openconnect-internal.h, AC_PKT_*).
  EXPECT_EQ(static_cast<int>(cstp::type::data), 0);
  EXPECT_EQ(static_cast<int>(cstp::type::dpd_req), 3);
  EXPECT_EQ(static_cast<int>(cstp::type::dpd_resp), 4);
  EXPECT_EQ(static_cast<int>(cstp::type::disconnect), 5);
  EXPECT_EQ(static_cast<int>(cstp::type::keepalive), 7);
  EXPECT_EQ(static_cast<int>(cstp::type::compressed), 8);
  EXPECT_EQ(static_cast<int>(cstp::type::terminate), 9);
}
