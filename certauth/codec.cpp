#include "certauth/codec.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <openssl/pem.h>

#include "certauth/error.hpp"
#include "support/support.hpp"

namespace tunnelgate::certauth::detail {

namespace {

constexpr std::string_view pem_marker = "-----BEGIN ";

// Decodes one DER certificate from [p, end); advances p. Returns null on failure.
ossl::x509_ptr d2i_cert(const unsigned char*& p, const unsigned char* end, bool aux) {
  const long len = static_cast<long>(end - p);
  X509* x = aux ? d2i_X509_AUX(nullptr, &p, len) : d2i_X509(nullptr, &p, len);
  return ossl::x509_ptr(x);
}

bool is_blank(std::string_view s) {
  return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// Walks the PEM blocks of `data`, calling fn(name, der_begin, der_end) for each. Returns false
// (with `error` set) on a damaged block. PEM_read_bio skips text between blocks, which is what
// bundles with comments need.
template <typename Fn>
bool for_each_pem_block(std::string_view data, std::string& error, Fn&& fn) {
  auto bio = ossl::mem_bio(data);
  for (;;) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* der = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &der, &len) != 1) {
      const unsigned long e = ERR_peek_last_error();
      if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();  // normal end of input
        return true;
      }
      error = "damaged PEM block (" + ossl::last_error_text() + ")";
      ERR_clear_error();
      return false;
    }
    ossl::openssl_buffer n(reinterpret_cast<unsigned char*>(name));
    ossl::openssl_buffer h(reinterpret_cast<unsigned char*>(header));
    ossl::openssl_buffer d(der);
    if (!fn(std::string_view(name), static_cast<const unsigned char*>(der), der + len)) {
      return false;
    }
  }
}

}  // namespace

parsed_certificates parse_certificates(std::string_view data) {
  parsed_certificates out;
  if (data.find(pem_marker) != std::string_view::npos) {
    out.ok = for_each_pem_block(
        data, out.error,
        [&](std::string_view name, const unsigned char* p, const unsigned char* end) {
          const bool plain = name == "CERTIFICATE" || name == "X509 CERTIFICATE";
          if (!plain && name != "TRUSTED CERTIFICATE") {
            out.other_blocks.emplace_back(name);
            return true;
          }
          auto x = d2i_cert(p, end, !plain);
          if (!x || p != end) {
            out.error = "PEM certificate block " + std::to_string(out.certs.size() + 1) +
                        " does not hold a valid DER certificate";
            return false;
          }
          out.certs.push_back(std::move(x));
          return true;
        });
    return out;
  }
  if (is_blank(data)) return out;
  auto p = reinterpret_cast<const unsigned char*>(data.data());
  const auto end = p + data.size();
  while (p < end) {
    auto x = d2i_cert(p, end, false);
    if (!x) {
      out.ok = false;
      out.error = out.certs.empty()
                      ? "neither PEM nor a DER certificate"
                      : "bytes after DER certificate " + std::to_string(out.certs.size()) +
                            " are not a certificate";
      ERR_clear_error();
      return out;
    }
    out.certs.push_back(std::move(x));
  }
  return out;
}

parsed_crls parse_crls(std::string_view data) {
  parsed_crls out;
  if (data.find(pem_marker) != std::string_view::npos) {
    out.ok = for_each_pem_block(
        data, out.error,
        [&](std::string_view name, const unsigned char* p, const unsigned char* end) {
          if (name != "X509 CRL") {
            out.error = "unexpected PEM block '" + std::string(name) + "' (expected X509 CRL)";
            return false;
          }
          X509_CRL* c = d2i_X509_CRL(nullptr, &p, static_cast<long>(end - p));
          if (c == nullptr || p != end) {
            X509_CRL_free(c);
            out.error = "PEM block " + std::to_string(out.crls.size() + 1) + " is not a valid CRL";
            return false;
          }
          out.crls.emplace_back(c);
          return true;
        });
    if (out.ok && out.crls.empty()) {
      out.ok = false;
      out.error = "no CRL in the file";
    }
    return out;
  }
  auto p = reinterpret_cast<const unsigned char*>(data.data());
  const auto end = p + data.size();
  X509_CRL* c = d2i_X509_CRL(nullptr, &p, static_cast<long>(data.size()));
  if (c == nullptr || p != end) {
    X509_CRL_free(c);
    ERR_clear_error();
    out.ok = false;
    out.error = data.empty() ? "the file is empty" : "neither PEM nor a DER CRL";
    return out;
  }
  out.crls.emplace_back(c);
  return out;
}

std::string read_file(const std::filesystem::path& path, std::string_view what) {
  try {
    return support::read_file(path, what);
  } catch (const support::error& e) {
    fail(errc::file_unreadable, e.message());
  }
}

void write_file_atomic(const std::filesystem::path& path, std::string_view data, unsigned mode) {
  // The temp file is created with the final mode from the start, so a private key is never
  // readable by others even for a moment; rename makes readers (reload_if_changed) see either
  // the old or the new content, never a half-written file.
  const std::filesystem::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    fail(errc::file_unreadable, "cannot create " + tmp.string() + ": " + std::strerror(errno));
  ::fchmod(fd, mode);  // O_CREAT honours umask; the mode must be exact
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail(errc::file_unreadable, "cannot write " + tmp.string() + ": " + std::strerror(e));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    fail(errc::file_unreadable, "cannot write " + tmp.string() + ": " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    fail(errc::file_unreadable, "cannot rename " + tmp.string() + ": " + std::strerror(e));
  }
}

std::string name_text(const X509_NAME* name) {
  auto bio = ossl::bio_ptr(BIO_new(BIO_s_mem()));
  if (!bio || name == nullptr) return "?";
  // RFC 2253 flags escape control characters and bytes >= 0x80, so the result is log-safe.
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* p = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &p);
  std::string s(p, static_cast<std::size_t>(n > 0 ? n : 0));
  if (s.size() > 256) s = s.substr(0, 256) + "...";
  return s.empty() ? "(empty subject)" : s;
}

bool to_time_t(const ASN1_TIME* t, std::time_t& out) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return false;
  out = ::timegm(&tm);
  return true;
}

std::string iso8601(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return "?";
  return buf;
}

std::string serial_hex(const ASN1_INTEGER* serial) {
  ossl::bignum_ptr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!bn) return "?";
  if (BN_is_zero(bn.get())) return "00";
  char* hex = BN_bn2hex(bn.get());
  if (hex == nullptr) return "?";
  std::string s(hex);
  OPENSSL_free(hex);
  return s;
}

std::string fingerprint_sha256(const X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(std::size_t{len} * 2);
  for (unsigned i = 0; i < len; ++i) {
    s += digits[md[i] >> 4];
    s += digits[md[i] & 0xf];
  }
  return s;
}

}  // namespace tunnelgate::certauth::detail
