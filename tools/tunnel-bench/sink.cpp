// `tunnel-bench sink`: the origin behind the server under test, in its own process (it holds as
// many sockets as the server does), single-threaded on epoll. What a connection is, it learns
// from its first byte:
//   'G'  HTTP/1.x: each `GET` is answered with a fixed 1 KiB body (Content-Length: 1024),
//        keep-alive or close as the request asks; other methods are read and ignored;
//   'U'  throughput upload: 8 bytes N (big-endian) follow, then N bytes; the sink answers the
//        count it read as 8 bytes and closes;
//   'D'  throughput download: 8 bytes N follow; the sink writes N bytes and closes;
//   else everything read is discarded (hold: idle tunnels send nothing at all).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>

#include "bench.hpp"

namespace bench {

namespace {

constexpr std::size_t io_chunk = std::size_t{64} * 1024;
constexpr std::size_t head_limit = std::size_t{16} * 1024;

enum class kind : std::uint8_t { unknown, http, upload, download, discard };

struct conn {
  kind k = kind::unknown;
  std::string in;   ///< HTTP heads, or the 9-byte U/D header, not yet handled
  std::string out;  ///< answer bytes not yet written
  std::size_t out_off = 0;
  std::uint64_t upload_want = 0;  ///< U: bytes announced
  std::uint64_t upload_got = 0;   ///< U: bytes read so far
  std::uint64_t download_left = 0;
  bool close_after_write = false;
  bool want_out = false;  ///< EPOLLOUT registered
};

struct sink_stats {
  std::uint64_t accepted = 0, answers = 0, bytes_in = 0, bytes_out = 0;
};

std::uint64_t be64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

bool has_token(std::string_view head, std::string_view header, std::string_view token) {
  // Case-insensitive search for "header: ...token..." (enough for Connection: close).
  std::string lower(head);
  for (auto& c : lower)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto h = lower.find(std::string("\r\n") + std::string(header) + ":");
  if (h == std::string::npos) return false;
  const auto end = lower.find("\r\n", h + 2);
  return lower.substr(h, end - h).find(token) != std::string::npos;
}

class sink {
 public:
  sink() {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
    body_.assign(answer_body_size, 'x');
    fill_.fill('z');
  }
  ~sink() {
    for (auto& c : conns_) {
      if (c) ::close(static_cast<int>(&c - conns_.data()));
    }
    ::close(ep_);
  }
  sink(const sink&) = delete;
  sink& operator=(const sink&) = delete;

  void listen(const std::string& where) {
    const auto ep = parse_endpoint(where);
    const int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    const int one = 1;
    (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ep.data(), static_cast<socklen_t>(ep.size())) != 0 || ::listen(fd, 4096) != 0) {
      const int e = errno;
      ::close(fd);
      throw std::runtime_error("--listen " + where + ": " + std::strerror(e));
    }
    tcp::endpoint bound = ep;
    socklen_t len = static_cast<socklen_t>(bound.capacity());
    (void)::getsockname(fd, bound.data(), &len);
    add(fd, EPOLLIN);
    listeners_.push_back(fd);
    std::cout << "listening " << bound << std::endl;
  }

  void add_signals(int sfd) {
    signal_fd_ = sfd;
    add(sfd, EPOLLIN);
  }

  const sink_stats& stats() const { return stats_; }

  /// Until SIGTERM or SIGINT.
  void run() {
    std::array<epoll_event, 256> events{};
    for (;;) {
      const int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error(std::string("epoll_wait: ") + std::strerror(errno));
      }
      for (int i = 0; i < n; ++i) {
        const int fd = events[static_cast<std::size_t>(i)].data.fd;
        const auto ev = events[static_cast<std::size_t>(i)].events;
        if (fd == signal_fd_) return;
        if (std::find(listeners_.begin(), listeners_.end(), fd) != listeners_.end()) {
          accept_all(fd);
          continue;
        }
        if (fd >= static_cast<int>(conns_.size()) || !conns_[static_cast<std::size_t>(fd)])
          continue;
        if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0 && !on_readable(fd)) continue;
        if ((ev & EPOLLOUT) != 0) (void)on_writable(fd);
      }
    }
  }

 private:
  void add(int fd, std::uint32_t events) {
    epoll_event e{};
    e.events = events;
    e.data.fd = fd;
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &e) != 0)
      throw std::runtime_error(std::string("epoll_ctl: ") + std::strerror(errno));
  }

  void accept_all(int lfd) {
    for (;;) {
      const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
          std::cerr << "sink: accept: " << std::strerror(errno) << "\n";
        }
        return;  // EAGAIN, or out of descriptors (the peer sees its connection wait)
      }
      const int one = 1;
      (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (static_cast<std::size_t>(fd) >= conns_.size())
        conns_.resize(static_cast<std::size_t>(fd) + 1024);
      conns_[static_cast<std::size_t>(fd)] = std::make_unique<conn>();
      ++stats_.accepted;
      add(fd, EPOLLIN);
    }
  }

  void close_conn(int fd) {
    conns_[static_cast<std::size_t>(fd)].reset();
    ::close(fd);  // also leaves the epoll set
  }

  /// False when the connection was closed.
  bool on_readable(int fd) {
    conn& c = *conns_[static_cast<std::size_t>(fd)];
    for (;;) {
      const ssize_t n = ::read(fd, buf_.data(), buf_.size());
      if (n == 0) {
        close_conn(fd);
        return false;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        if (errno == EINTR) continue;
        close_conn(fd);
        return false;
      }
      stats_.bytes_in += static_cast<std::uint64_t>(n);
      if (!consume(fd, c, std::string_view(buf_.data(), static_cast<std::size_t>(n)))) {
        close_conn(fd);
        return false;
      }
      if (!flush(fd, c)) return false;
    }
  }

  /// Acts on bytes read; false to close at once.
  bool consume(int /*fd*/, conn& c, std::string_view data) {
    if (c.k == kind::unknown) {
      switch (data.front()) {
        case 'G':
        case 'H':
          c.k = kind::http;
          break;
        case 'U':
          c.k = kind::upload;
          break;
        case 'D':
          c.k = kind::download;
          break;
        default:
          c.k = kind::discard;
      }
    }
    switch (c.k) {
      case kind::discard:
      case kind::unknown:
        return true;
      case kind::http:
        return consume_http(c, data);
      case kind::upload:
        if (c.in.size() < 9) {
          const std::size_t take = std::min<std::size_t>(9 - c.in.size(), data.size());
          c.in.append(data.substr(0, take));
          data.remove_prefix(take);
          if (c.in.size() < 9) return true;
          c.upload_want = be64(c.in.data() + 1);
        }
        c.upload_got += data.size();
        if (c.upload_got >= c.upload_want && c.out.empty() && !c.close_after_write) {
          std::array<char, 8> count{};
          std::uint64_t v = c.upload_got;
          for (int i = 7; i >= 0; --i) {
            count[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
            v >>= 8;
          }
          c.out.assign(count.data(), count.size());
          c.close_after_write = true;
        }
        return true;
      case kind::download:
        if (c.in.size() < 9) {
          const std::size_t take = std::min<std::size_t>(9 - c.in.size(), data.size());
          c.in.append(data.substr(0, take));
          if (c.in.size() < 9) return true;
          c.download_left = be64(c.in.data() + 1);
          c.close_after_write = true;
        }
        return true;
    }
    return true;
  }

  bool consume_http(conn& c, std::string_view data) {
    c.in.append(data);
    for (;;) {
      const auto end = c.in.find("\r\n\r\n");
      if (end == std::string::npos) return c.in.size() <= head_limit;
      const std::string_view head(c.in.data(), end + 2);
      if (head.rfind("GET ", 0) == 0) {
        const bool v10 = head.find(" HTTP/1.0\r\n") != std::string_view::npos;
        const bool close = v10 ? !has_token(head, "connection", "keep-alive")
                               : has_token(head, "connection", "close");
        c.out += "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ";
        c.out += std::to_string(answer_body_size);
        c.out += close ? "\r\nConnection: close\r\n\r\n" : "\r\nConnection: keep-alive\r\n\r\n";
        c.out += body_;
        ++stats_.answers;
        c.in.erase(0, end + 4);
        if (close) {
          c.close_after_write = true;
          c.k = kind::discard;
          c.in.clear();
          return true;
        }
      } else {
        c.in.erase(0, end + 4);  // not a GET: read and ignored
      }
    }
  }

  /// Writes what is pending; false when the connection was closed.
  bool flush(int fd, conn& c) {
    for (;;) {
      const char* p = nullptr;
      std::size_t len = 0;
      if (c.out_off < c.out.size()) {
        p = c.out.data() + c.out_off;
        len = c.out.size() - c.out_off;
      } else if (c.download_left > 0) {
        p = fill_.data();
        len = static_cast<std::size_t>(std::min<std::uint64_t>(c.download_left, fill_.size()));
      } else {
        break;
      }
      const ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          want_out(fd, c, true);
          return true;
        }
        close_conn(fd);
        return false;
      }
      stats_.bytes_out += static_cast<std::uint64_t>(n);
      if (c.out_off < c.out.size()) {
        c.out_off += static_cast<std::size_t>(n);
        if (c.out_off == c.out.size()) {
          c.out.clear();
          c.out_off = 0;
        }
      } else {
        c.download_left -= static_cast<std::uint64_t>(n);
      }
    }
    want_out(fd, c, false);
    if (c.close_after_write) {
      // Half-close so the peer reads everything, then drop the descriptor.
      (void)::shutdown(fd, SHUT_WR);
      close_conn(fd);
      return false;
    }
    return true;
  }

  bool on_writable(int fd) { return flush(fd, *conns_[static_cast<std::size_t>(fd)]); }

  void want_out(int fd, conn& c, bool on) {
    if (c.want_out == on) return;
    c.want_out = on;
    epoll_event e{};
    e.events = on ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    e.data.fd = fd;
    (void)::epoll_ctl(ep_, EPOLL_CTL_MOD, fd, &e);
  }

  int ep_ = -1;
  int signal_fd_ = -1;
  std::vector<int> listeners_;
  std::vector<std::unique_ptr<conn>> conns_;  // by descriptor
  std::array<char, io_chunk> buf_{};
  std::array<char, io_chunk> fill_{};
  std::string body_;
  sink_stats stats_;
};

}  // namespace

int run_sink(const options& o) {
  if (o.listen.empty()) throw std::runtime_error("sink: give --listen ADDR:PORT (port 0: any)");
  const long files = raise_open_files_limit();
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  (void)::sigprocmask(SIG_BLOCK, &mask, nullptr);
  const int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC);
  if (sfd < 0) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
  auto s = std::make_unique<sink>();
  s->add_signals(sfd);
  for (const auto& l : o.listen)
    s->listen(l);
  s->run();
  const auto& st = s->stats();
  std::cerr << "sink: " << st.accepted << " connections, " << st.answers << " answers, "
            << st.bytes_in << " bytes in, " << st.bytes_out << " bytes out (open files " << files
            << ")\n";
  ::close(sfd);
  return 0;
}

}  // namespace bench
