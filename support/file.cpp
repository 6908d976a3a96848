// Whole files and secrets, read with POSIX calls so that the size limit holds for every kind of
// file: a regular file is refused from its size before any read, anything else (a FIFO, /proc,
// /dev/zero) once one byte more than the limit has arrived.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "support/support.hpp"

namespace tunnelgate::support {

namespace {

/// "<what> <path>", or the path alone when `what` is empty.
std::string named(std::string_view what, const std::filesystem::path& path) {
  return what.empty() ? path.string() : std::string(what) + " " + path.string();
}

[[noreturn]] void unreadable(const std::filesystem::path& path, std::string_view what, int err) {
  throw error(errc::file_unreadable,
              "cannot read " + named(what, path) + ": " + std::strerror(err));
}

[[noreturn]] void too_large(const std::filesystem::path& path, std::string_view what,
                            const std::string& size, std::size_t max_bytes) {
  throw error(errc::file_too_large,
              named(what, path) + " is " + size + ", more than the " + size_text(max_bytes) +
                  " allowed; make it smaller (split it where the format allows)");
}

class fd_closer {
 public:
  explicit fd_closer(int fd) : fd_(fd) {}
  ~fd_closer() { ::close(fd_); }
  fd_closer(const fd_closer&) = delete;
  fd_closer& operator=(const fd_closer&) = delete;

 private:
  int fd_;
};

}  // namespace

std::string size_text(std::size_t bytes) {
  if (bytes >= (std::size_t{1} << 20) && bytes % (std::size_t{1} << 20) == 0)
    return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
}

std::string read_file(const std::filesystem::path& path, std::string_view what,
                      std::size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) unreadable(path, what, errno);
  fd_closer closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) unreadable(path, what, errno);
  if (S_ISDIR(st.st_mode)) unreadable(path, what, EISDIR);
  std::string out;
  if (S_ISREG(st.st_mode)) {
    const auto size = static_cast<std::size_t>(st.st_size);
    if (size > max_bytes) too_large(path, what, std::to_string(size) + " bytes", max_bytes);
    out.reserve(size);
  }
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      unreadable(path, what, errno);
    }
    if (n == 0) break;
    // The file may have grown since fstat, or have no size at all: count what arrives.
    if (static_cast<std::size_t>(n) > max_bytes - out.size()) {
      too_large(path, what, "more than " + size_text(max_bytes), max_bytes);
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::string read_secret(const std::filesystem::path& path, std::string_view what,
                        std::size_t max_bytes) {
  std::string v = read_file(path, what, max_bytes);
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r'))
    v.pop_back();
  if (v.empty()) {
    throw error(errc::secret_empty,
                named(what, path) + " is empty; write the secret into it (one line)");
  }
  return v;
}

}  // namespace tunnelgate::support
