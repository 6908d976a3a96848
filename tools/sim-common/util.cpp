// Helpers shared by the simulators: files, random ids, time, forms, base64, address blocks.
#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "sim-common/sim_common.hpp"

namespace sim {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string read_secret(const std::string& path) {
  auto s = read_file(path);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.pop_back();
  return s;
}

void write_file_atomic(const std::string& path, std::string_view content) {
  const auto tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < content.size()) {
    const auto n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::runtime_error("cannot write " + tmp + ": " + why);
    }
    done += static_cast<std::size_t>(n);
  }
  // Durable before the rename: after a crash the file is either the old or the new content.
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot flush " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot rename " + tmp + " to " + path);
  }
}

namespace {
std::string random_bytes(std::size_t n) {
  std::string raw(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return raw;
}
}  // namespace

std::string random_hex(std::size_t n) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : random_bytes(n)) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

std::string random_alnum(std::size_t n) {
  static constexpr char set[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out;
  for (const unsigned char c : random_bytes(n))
    out += set[c % 62];
  return out;
}

std::string random_guid() {
  auto h = random_hex(16);
  h[12] = '4';
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::int64_t epoch_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string iso_now(int frac_digits) {
  const auto now = std::chrono::system_clock::now();
  const auto secs = std::chrono::system_clock::to_time_t(now);
  const auto nanos =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count() %
      1000000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm) == 0) buf[0] = '\0';
  std::string out(buf);
  if (frac_digits > 0) {
    auto frac = std::to_string(1000000000 + nanos).substr(1);  // 9 digits, zero-padded
    out += "." + frac.substr(0, static_cast<std::size_t>(std::min(frac_digits, 9)));
    for (int i = 9; i < frac_digits; ++i)
      out += '0';
  }
  return out + "Z";
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    unsigned v = 0;
    if (s[i] == '%' && i + 2 < s.size() &&
        std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16).ptr == s.data() + i + 3) {
      out += static_cast<char>(v);
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> parse_form(std::string_view s) {
  std::map<std::string, std::string> out;
  while (!s.empty()) {
    const auto amp = s.find('&');
    const auto part = s.substr(0, amp);
    const auto eq = part.find('=');
    if (!part.empty()) {
      out[url_decode(part.substr(0, eq))] =
          eq == std::string_view::npos ? std::string() : url_decode(part.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    s.remove_prefix(amp + 1);
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view in) {
  while (!in.empty() && in.back() == '=')
    in.remove_suffix(1);
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    int v = 0;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '-') {
      v = 62;
    } else if (c == '_') {
      v = 63;
    } else {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (bits >= 6) return std::nullopt;  // one dangling character cannot encode a byte
  return out;
}

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// ---- addresses ---------------------------------------------------------------------------

namespace {

/// inet_pton for either family; the family is chosen by the presence of ':'.
bool parse_address(std::string_view s, bool& v6, std::array<unsigned char, 16>& out) {
  if (s.empty() || s.size() > 45) return false;
  const std::string str(s);
  out.fill(0);
  v6 = str.find(':') != std::string::npos;
  return ::inet_pton(v6 ? AF_INET6 : AF_INET, str.c_str(), out.data()) == 1;
}

int compare(const std::array<unsigned char, 16>& a, const std::array<unsigned char, 16>& b,
            bool v6) {
  return std::memcmp(a.data(), b.data(), v6 ? 16 : 4);
}

}  // namespace

std::optional<ip_block> parse_cidr(std::string_view s) {
  const auto slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  ip_block b;
  if (!parse_address(s.substr(0, slash), b.v6, b.lo)) return std::nullopt;
  const auto len_text = s.substr(slash + 1);
  int len = -1;
  const auto [p, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  const int max = b.v6 ? 128 : 32;
  if (len_text.empty() || ec != std::errc() || p != len_text.data() + len_text.size() || len < 0 ||
      len > max) {
    return std::nullopt;
  }
  b.hi = b.lo;
  for (int bit = len; bit < max; ++bit) {
    const auto byte = static_cast<std::size_t>(bit / 8);
    const auto mask = static_cast<unsigned char>(0x80u >> (bit % 8));
    b.lo[byte] = static_cast<unsigned char>(b.lo[byte] & ~mask);
    b.hi[byte] = static_cast<unsigned char>(b.hi[byte] | mask);
  }
  return b;
}

std::optional<ip_block> parse_range(std::string_view s) {
  ip_block b;
  const auto dash = s.find('-');
  if (dash == std::string_view::npos) {
    if (!parse_address(s, b.v6, b.lo)) return std::nullopt;
    b.hi = b.lo;
    return b;
  }
  bool hi_v6 = false;
  if (!parse_address(s.substr(0, dash), b.v6, b.lo) ||
      !parse_address(s.substr(dash + 1), hi_v6, b.hi) || hi_v6 != b.v6 ||
      compare(b.lo, b.hi, b.v6) > 0) {
    return std::nullopt;
  }
  return b;
}

bool contains(const ip_block& b, std::string_view addr) {
  bool v6 = false;
  std::array<unsigned char, 16> a{};
  if (!parse_address(addr, v6, a) || v6 != b.v6) return false;
  return compare(b.lo, a, v6) <= 0 && compare(a, b.hi, v6) <= 0;
}

}  // namespace sim
