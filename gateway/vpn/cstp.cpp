#include "gateway/vpn/cstp.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace tunnelgate::gateway::vpn::cstp {

namespace {

constexpr std::array<std::uint8_t, 4> magic{'S', 'T', 'F', 0x01};
constexpr std::size_t max_text = 200;

bool known(std::uint8_t t) noexcept {
  switch (static_cast<type>(t)) {
    case type::data:
    case type::dpd_req:
    case type::dpd_resp:
    case type::disconnect:
    case type::keepalive:
    case type::compressed:
    case type::terminate:
      return true;
  }
  return false;
}

decode_result fail(error e) noexcept {
  decode_result r;
  r.state = decode_result::status::failed;
  r.reason = e;
  r.need = 0;
  return r;
}

std::string printable(std::span<const std::uint8_t> bytes) {
  std::string out;
  const std::size_t n = std::min(bytes.size(), max_text);
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = bytes[i];
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '.');
  }
  return out;
}

}  // namespace

std::string_view to_string(type t) noexcept {
  switch (t) {
    case type::data:
      return "data";
    case type::dpd_req:
      return "dpd_req";
    case type::dpd_resp:
      return "dpd_resp";
    case type::disconnect:
      return "disconnect";
    case type::keepalive:
      return "keepalive";
    case type::compressed:
      return "compressed";
    case type::terminate:
      return "terminate";
  }
  return "unknown";
}

std::string_view to_string(error e) noexcept {
  switch (e) {
    case error::none:
      return "ok";
    case error::bad_magic:
      return "bad_magic";
    case error::bad_length:
      return "bad_length";
    case error::unknown_type:
      return "unknown_type";
    case error::compressed:
      return "compressed";
    case error::bad_reserved:
      return "bad_reserved";
  }
  return "unknown";
}

decode_result decode(std::span<const std::uint8_t> in, std::size_t max_payload) noexcept {
  max_payload = std::min(max_payload, max_payload_size);
  // Check each header byte as soon as it is there: a peer that sends garbage (a TLS client
  // speaking HTTP/2, a scanner) is refused on its first wrong byte instead of being waited on.
  const std::size_t have = std::min(in.size(), header_size);
  for (std::size_t i = 0; i < std::min<std::size_t>(have, magic.size()); ++i) {
    if (in[i] != magic[i]) return fail(error::bad_magic);
  }
  std::size_t payload = 0;
  if (have >= 6) {
    payload = (std::size_t{in[4]} << 8) | in[5];
    if (payload > max_payload) return fail(error::bad_length);
  }
  if (have >= 7) {
    if (!known(in[6])) return fail(error::unknown_type);
    if (static_cast<type>(in[6]) == type::compressed) return fail(error::compressed);
  }
  if (have >= 8 && in[7] != 0) return fail(error::bad_reserved);

  decode_result r;
  if (have < header_size) {
    r.need = header_size;
    return r;
  }
  r.need = header_size + payload;
  if (in.size() < r.need) return r;
  r.state = decode_result::status::complete;
  r.value.type = static_cast<type>(in[6]);
  r.value.payload = in.subspan(header_size, payload);
  return r;
}

reader::reader(std::size_t max_payload) : max_payload_(std::min(max_payload, max_payload_size)) {}

std::span<std::uint8_t> reader::prepare(std::size_t n) {
  if (begin_ == end_) begin_ = end_ = 0;
  if (buf_.size() - end_ < n) {
    // Move the unread tail to the front first: it is at most one partial frame, so this copies
    // little, and the buffer stops growing at about one frame plus one read.
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < n) buf_.resize(end_ + n);
  }
  return {buf_.data() + end_, buf_.size() - end_};
}

void reader::commit(std::size_t n) noexcept {
  end_ += std::min(n, buf_.size() - end_);
}

void reader::feed(std::span<const std::uint8_t> bytes) {
  auto space = prepare(bytes.size());
  if (!bytes.empty()) std::memcpy(space.data(), bytes.data(), bytes.size());
  commit(bytes.size());
}

decode_result reader::next() noexcept {
  if (failed_ != error::none) return fail(failed_);
  auto r = decode(std::span<const std::uint8_t>(buf_.data() + begin_, end_ - begin_), max_payload_);
  if (r.state == decode_result::status::complete) {
    begin_ += r.value.size();
  } else if (r.state == decode_result::status::failed) {
    failed_ = r.reason;
  }
  return r;
}

bool write_header(std::span<std::uint8_t, header_size> out, type t,
                  std::size_t payload_size) noexcept {
  if (payload_size > max_payload_size) return false;
  out[0] = magic[0];
  out[1] = magic[1];
  out[2] = magic[2];
  out[3] = magic[3];
  out[4] = static_cast<std::uint8_t>(payload_size >> 8);
  out[5] = static_cast<std::uint8_t>(payload_size & 0xff);
  out[6] = static_cast<std::uint8_t>(t);
  out[7] = 0;
  return true;
}

std::array<std::uint8_t, header_size> control_frame(type t) noexcept {
  std::array<std::uint8_t, header_size> h{};
  write_header(h, t, 0);
  return h;
}

std::vector<std::uint8_t> make_frame(type t, std::span<const std::uint8_t> payload) {
  if (payload.size() > max_payload_size) throw std::length_error("CSTP payload over 65535 bytes");
  std::vector<std::uint8_t> out(header_size + payload.size());
  write_header(std::span<std::uint8_t, header_size>(out.data(), header_size), t, payload.size());
  if (!payload.empty()) std::memcpy(out.data() + header_size, payload.data(), payload.size());
  return out;
}

std::vector<std::uint8_t> make_disconnect(std::uint8_t code, std::string_view text) {
  const std::string clean = printable(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  std::vector<std::uint8_t> payload;
  payload.reserve(1 + clean.size());
  payload.push_back(code);
  payload.insert(payload.end(), clean.begin(), clean.end());
  return make_frame(type::disconnect, payload);
}

disconnect_reason parse_disconnect(std::span<const std::uint8_t> payload) {
  disconnect_reason r;
  if (payload.empty()) return r;
  r.has_code = true;
  r.code = payload[0];
  r.text = printable(payload.subspan(1));
  return r;
}

}  // namespace tunnelgate::gateway::vpn::cstp
