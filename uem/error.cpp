// uem::errc as an error_code category, plus small helpers shared by the library.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cerrno>
#include <cstring>

#include "uem/internal.hpp"

namespace tunnelgate::uem {

namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "uem"; }
  std::string message(int v) const override {
    switch (static_cast<errc>(v)) {
      case errc::bad_config:
        return "invalid uem configuration";
      case errc::file_unreadable:
        return "file cannot be read";
      case errc::bad_inventory:
        return "invalid device inventory";
      case errc::bad_response:
        return "the UEM returned an invalid device record";
      case errc::unreachable:
        return "the UEM cannot be reached";
      case errc::timeout:
        return "the UEM did not answer in time";
      case errc::unauthorized:
        return "the UEM refused our credentials";
      case errc::rate_limited:
        return "the UEM is rate limiting us";
      case errc::server_error:
        return "the UEM answered with a server error";
      case errc::token_failure:
        return "the OAuth token request failed";
      case errc::bad_webhook:
        return "invalid UEM event notification";
      case errc::stopped:
        return "the compliance service is stopped";
    }
    return "unknown uem error";
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const category c;
  return c;
}

std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

namespace detail {

std::string read_file(const std::filesystem::path& path, std::string_view what,
                      std::size_t max_bytes) {
  try {
    return support::read_file(path, what, max_bytes);
  } catch (const support::error& e) {
    // Callers and tests know uem's codes; the message (path, OS error or limit) stays.
    throw std::system_error(make_error_code(errc::file_unreadable), e.message());
  }
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  // Comparing digests keeps the time independent of where (and whether) the lengths differ.
  unsigned char da[SHA256_DIGEST_LENGTH];
  unsigned char db[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da);
  SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db);
  return CRYPTO_memcmp(da, db, sizeof da) == 0;
}

std::string sha256_hex(std::string_view in) {
  static constexpr char hex[] = "0123456789abcdef";
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(in.data()), in.size(), d);
  std::string out;
  out.reserve(2 * sizeof d);
  for (unsigned char c : d) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

}  // namespace detail

}  // namespace tunnelgate::uem
