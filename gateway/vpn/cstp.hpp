// CSTP framing (the TLS channel of the OpenConnect/AnyConnect protocol), without I/O.
//
// Every message after the `200` answer to `CONNECT /CSCOSSLC/tunnel` is a frame:
//
//   0      'S' 'T' 'F' 0x01      magic
//   4      payload length        16-bit big endian, the 8 header bytes not included
//   6      type                  see `type`
//   7      0x00                  reserved; openconnect and ocserv both refuse a non-zero byte
//   8      payload
//
// decode() looks at the start of a buffer and never copies; `reader` owns a receive buffer the
// TLS stream reads into, and yields frames whose payloads point into it. Both are for one
// direction of one connection and hold no other state.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tunnelgate::gateway::vpn::cstp {

inline constexpr std::size_t header_size = 8;
/// What the 16-bit length field can say.
inline constexpr std::size_t max_payload_size = 0xffff;

/// Frame types (openconnect-internal.h AC_PKT_*). The values are the wire bytes.
enum class type : std::uint8_t {
  data = 0x00,        ///< one IP packet
  dpd_req = 0x03,     ///< dead peer detection request; answered with dpd_resp
  dpd_resp = 0x04,    ///< dead peer detection response
  disconnect = 0x05,  ///< the sender is leaving; openconnect sends 0xb0 + reason text
  keepalive = 0x07,   ///< no meaning beyond "still here"
  compressed = 0x08,  ///< compressed data: only after X-CSTP-Content-Encoding, which we never send
  terminate = 0x09,   ///< server to client: the session is over (openconnect quits on it)
};

/// The spelling in logs: "data", "dpd_req", "dpd_resp", "disconnect", "keepalive", "compressed",
/// "terminate"; "unknown" for any other value.
std::string_view to_string(type t) noexcept;

/// Why a byte stream is not CSTP. A stream with a bad header cannot be resynchronised: the
/// session ends, and logs the spelling.
enum class error : std::uint8_t {
  none = 0,
  bad_magic,     ///< the first four bytes are not "STF\x01"
  bad_length,    ///< the payload length exceeds the reader's maximum
  unknown_type,  ///< a type byte the protocol does not define
  compressed,    ///< a COMPRESSED frame: we never negotiate compression
  bad_reserved,  ///< byte 7 is not zero
};

/// The spelling in logs and metric labels: "ok", "bad_magic", "bad_length", "unknown_type",
/// "compressed", "bad_reserved".
std::string_view to_string(error e) noexcept;

struct frame {
  cstp::type type = type::data;
  std::span<const std::uint8_t> payload;  ///< points into the decoded buffer
  /// Header plus payload: how many bytes the frame took.
  std::size_t size() const noexcept { return header_size + payload.size(); }
};

/// What decode() found at the start of a buffer.
struct decode_result {
  enum class status : std::uint8_t {
    complete,   ///< `value` is a whole frame; it took value.size() bytes
    need_more,  ///< no error so far; at least `need` bytes in all are needed
    failed,     ///< `reason` says why
  };
  status state = status::need_more;
  frame value;
  error reason = error::none;
  std::size_t need = header_size;
};

/// Decodes the frame at the start of `in`, accepting payloads of at most `max_payload` bytes
/// (clamped to max_payload_size). Pure and allocation-free. A header fault is reported as soon
/// as the bytes that show it are in `in` (a wrong first byte fails after one byte), so garbage
/// never waits for a full header; faults are checked in byte order (magic, length, type,
/// reserved byte).
decode_result decode(std::span<const std::uint8_t> in, std::size_t max_payload) noexcept;

/// The largest payload a session should accept for a tunnel MTU: the MTU plus room for
/// control frames (DPD requests may carry padding), capped at max_payload_size.
constexpr std::size_t max_payload_for_mtu(std::size_t mtu) noexcept {
  return mtu + 256 < max_payload_size ? mtu + 256 : max_payload_size;
}

/// A receive buffer for one connection. Read from the TLS stream straight into prepare(),
/// commit() what arrived, then call next() until it stops returning frames. A frame's payload
/// stays valid until the next prepare() or feed(); the data path hands it on (to the TUN
/// device) before reading again, so packets are never copied on the way in.
///
/// Once next() has failed, the reader stays failed: every later call returns the same error.
class reader {
 public:
  explicit reader(std::size_t max_payload);

  /// Writable space of at least `n` bytes after the buffered bytes. Invalidates payload views.
  std::span<std::uint8_t> prepare(std::size_t n);
  /// Marks `n` bytes of the last prepare() as received (n <= its size).
  void commit(std::size_t n) noexcept;
  /// Copies `bytes` in: prepare() + copy + commit(). Invalidates payload views.
  void feed(std::span<const std::uint8_t> bytes);

  /// The next frame, `need_more`, or the (sticky) failure.
  decode_result next() noexcept;

  /// Bytes received and not yet returned as frames.
  std::size_t buffered() const noexcept { return end_ - begin_; }
  std::size_t max_payload() const noexcept { return max_payload_; }
  /// error::none until next() fails.
  error failure() const noexcept { return failed_; }

 private:
  std::size_t max_payload_;
  std::vector<std::uint8_t> buf_;
  std::size_t begin_ = 0;  ///< first unread byte
  std::size_t end_ = 0;    ///< one past the last received byte; begin_ <= end_ <= buf_.size()
  error failed_ = error::none;
};

/// Writes the header of a frame of type `t` with `payload_size` bytes into `out`. Returns false
/// (and writes nothing) when payload_size > max_payload_size. The data path reserves 8 bytes in
/// front of each packet it reads from the TUN device and writes the header there.
bool write_header(std::span<std::uint8_t, header_size> out, type t,
                  std::size_t payload_size) noexcept;

/// The header of a payload-less control frame (dpd_req, dpd_resp, keepalive, terminate,
/// disconnect): a whole frame on its own.
std::array<std::uint8_t, header_size> control_frame(type t) noexcept;

/// A whole frame: header and a copy of `payload`. Throws std::length_error when the payload
/// exceeds max_payload_size. For control frames with a payload (a DPD answer echoes the
/// request's payload, as ocserv does; a DISCONNECT carries a reason).
std::vector<std::uint8_t> make_frame(type t, std::span<const std::uint8_t> payload);

/// A DISCONNECT frame with openconnect's layout: one reason code byte, then `text` (cut to 200
/// bytes; bytes outside printable ASCII become '.').
std::vector<std::uint8_t> make_disconnect(std::uint8_t code, std::string_view text);

/// What a peer's DISCONNECT payload says. openconnect sends code 0xb0 ("user disconnect") and
/// its quit reason; AnyConnect may send an empty payload when it means to reconnect.
struct disconnect_reason {
  bool has_code = false;
  std::uint8_t code = 0;
  std::string text;  ///< printable ASCII only (others become '.'), at most 200 bytes: log-safe
};
disconnect_reason parse_disconnect(std::span<const std::uint8_t> payload);

/// The code openconnect puts in front of its reason text (cstp.c cstp_bye()).
inline constexpr std::uint8_t disconnect_code_user = 0xb0;

}  // namespace tunnelgate::gateway::vpn::cstp
