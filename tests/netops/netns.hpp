// Helpers for the root-only netops tests: private network namespaces, shell commands run in
// them, and hand-made IPv4/IPv6 UDP packets for the TUN.
//
// Every test that touches the network starts with netns_test::SetUp, which moves the test
// process into a fresh network namespace (unshare(CLONE_NEWNET)); nothing ever runs in the
// host's namespace, and when the process ends (or the next test unshares again) the kernel
// frees the namespace with every interface, route, nft table and sysctl in it, so a crashed
// test leaves nothing behind either. The test process is single-threaded, so unshare/setns
// move the whole process, and the `ip`/`nft` commands it starts inherit the namespace.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78  // linux/in6.h, which clashes with netinet/in.h
#endif

namespace tunnelgate::testing::netns {

namespace ip = boost::asio::ip;

struct cmd_result {
  int status = -1;
  std::string out;  ///< stdout and stderr
};

/// Runs `cmd` with /bin/sh in the current namespace.
inline cmd_result sh(const std::string& cmd) {
  cmd_result r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

/// Runs `cmd` and parses its stdout as JSON (`ip -j`, `nft -j`); fails the test on error.
inline nlohmann::json sh_json(const std::string& cmd) {
  const auto r = sh(cmd);
  if (r.status != 0) throw std::runtime_error(cmd + " failed: " + r.out);
  return nlohmann::json::parse(r.out);
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::string v;
  std::getline(in, v);
  return v;
}

inline void write_file(const std::string& path, const std::string& v) {
  std::ofstream out(path);
  out << v << "\n";
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline std::string sysctl_path(int family, const std::string& scope, const std::string& key) {
  return "/proc/sys/net/ipv" + std::to_string(family) + "/conf/" + scope + "/" + key;
}

inline ino_t current_netns_inode() {
  struct stat st {};
  if (::stat("/proc/thread-self/ns/net", &st) != 0) return 0;
  return st.st_ino;
}

/// Fixture: a private network namespace per test (see the file comment). peer() adds a second
/// namespace, for a destination host behind a veth pair.
class netns_test : public ::testing::Test {
 protected:
  void SetUp() override {
    static const ino_t host = current_netns_inode();  // the first test's namespace: the host's
    if (::geteuid() != 0)
      GTEST_SKIP() << "needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for network namespaces); "
                      "run as root, e.g. sudo build/bin/netops_test";
    if (::access("/dev/net/tun", R_OK | W_OK) != 0)
      GTEST_SKIP() << "/dev/net/tun is missing (modprobe tun, or give the container the device)";
    if (sh("command -v ip && command -v nft").status != 0)
      GTEST_SKIP() << "needs the ip (iproute2) and nft (nftables) commands: tools/setup";
    if (::unshare(CLONE_NEWNET) != 0)
      GTEST_SKIP() << "unshare(CLONE_NEWNET) failed: " << std::strerror(errno);
    ASSERT_NE(current_netns_inode(), host) << "still in the host's network namespace";
    gw_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(gw_, 0);
    ASSERT_EQ(sh("ip link set lo up").status, 0);
    const auto probe =
        sh("nft add table inet tunnelgate_probe && nft delete table inet "
           "tunnelgate_probe");
    if (probe.status != 0) GTEST_SKIP() << "nf_tables is unavailable: " << probe.out;
  }

  void TearDown() override {
    for (int* fd : {&peer_, &gw_})
      if (*fd >= 0) ::close(std::exchange(*fd, -1));
  }

  /// A second namespace (created on first use); returns its fd. The test stays in its own.
  int peer() {
    if (peer_ >= 0) return peer_;
    if (::unshare(CLONE_NEWNET) != 0) throw std::runtime_error("unshare for the peer failed");
    peer_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    sh("ip link set lo up");
    if (::setns(gw_, CLONE_NEWNET) != 0) std::abort();  // never run on in the wrong namespace
    return peer_;
  }

  /// "/proc/<pid>/fd/<n>" for the peer namespace, for `ip link ... netns <path>`.
  std::string peer_path() {
    return "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(peer());
  }

  /// Runs f() inside the peer namespace, then comes back (also on exceptions).
  template <class F>
  auto in_peer(F&& f) {
    if (::setns(peer(), CLONE_NEWNET) != 0) throw std::runtime_error("setns(peer) failed");
    struct back {
      int fd;
      ~back() {
        if (::setns(fd, CLONE_NEWNET) != 0) std::abort();
      }
    } guard{gw_};
    return f();
  }

  int gw_ = -1;
  int peer_ = -1;
};

// ---- packets --------------------------------------------------------------------------------

struct udp_packet {
  ip::address src;
  ip::address dst;
  std::uint16_t sport = 0;
  std::uint16_t dport = 0;
  std::string payload;
};

inline std::uint32_t sum16(const std::uint8_t* p, std::size_t n, std::uint32_t acc = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2)
    acc += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
  if (n % 2) acc += static_cast<std::uint32_t>(p[n - 1] << 8);
  return acc;
}

inline std::uint16_t fold(std::uint32_t acc) {
  while (acc >> 16)
    acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<std::uint16_t>(~acc & 0xffff);
}

inline void put16(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}

/// An IPv4 or IPv6 packet carrying one UDP datagram, checksums filled in.
inline std::vector<std::uint8_t> build_udp(const udp_packet& u) {
  const std::size_t udp_len = 8 + u.payload.size();
  std::vector<std::uint8_t> b;
  std::size_t udp_at;
  std::uint32_t pseudo = 0;
  if (u.src.is_v4()) {
    b.assign(20 + udp_len, 0);
    b[0] = 0x45;
    put16(b, 2, static_cast<std::uint32_t>(b.size()));
    b[8] = 64;
    b[9] = 17;
    const auto s = u.src.to_v4().to_bytes();
    const auto d = u.dst.to_v4().to_bytes();
    std::memcpy(&b[12], s.data(), 4);
    std::memcpy(&b[16], d.data(), 4);
    put16(b, 10, fold(sum16(b.data(), 20)));
    udp_at = 20;
    pseudo = sum16(&b[12], 8) + 17 + static_cast<std::uint32_t>(udp_len);
  } else {
    b.assign(40 + udp_len, 0);
    b[0] = 0x60;
    put16(b, 4, static_cast<std::uint32_t>(udp_len));
    b[6] = 17;
    b[7] = 64;
    const auto s = u.src.to_v6().to_bytes();
    const auto d = u.dst.to_v6().to_bytes();
    std::memcpy(&b[8], s.data(), 16);
    std::memcpy(&b[24], d.data(), 16);
    udp_at = 40;
    pseudo = sum16(&b[8], 32) + 17 + static_cast<std::uint32_t>(udp_len);
  }
  put16(b, udp_at, u.sport);
  put16(b, udp_at + 2, u.dport);
  put16(b, udp_at + 4, static_cast<std::uint32_t>(udp_len));
  std::memcpy(&b[udp_at + 8], u.payload.data(), u.payload.size());
  std::uint16_t c = fold(sum16(&b[udp_at], udp_len, pseudo));
  put16(b, udp_at + 6, c == 0 ? 0xffff : c);
  return b;
}

/// The UDP datagram in a raw IPv4/IPv6 packet (no IPv6 extension headers), if it is one.
inline std::optional<udp_packet> parse_udp(const std::uint8_t* p, std::size_t n) {
  udp_packet u;
  std::size_t at;
  if (n >= 20 && (p[0] >> 4) == 4) {
    const std::size_t ihl = static_cast<std::size_t>(p[0] & 0x0f) * 4;
    if (p[9] != 17 || n < ihl + 8) return std::nullopt;
    ip::address_v4::bytes_type s, d;
    std::memcpy(s.data(), p + 12, 4);
    std::memcpy(d.data(), p + 16, 4);
    u.src = ip::address_v4(s);
    u.dst = ip::address_v4(d);
    at = ihl;
  } else if (n >= 48 && (p[0] >> 4) == 6) {
    if (p[6] != 17) return std::nullopt;
    ip::address_v6::bytes_type s, d;
    std::memcpy(s.data(), p + 8, 16);
    std::memcpy(d.data(), p + 24, 16);
    u.src = ip::address_v6(s);
    u.dst = ip::address_v6(d);
    at = 40;
  } else {
    return std::nullopt;
  }
  u.sport = static_cast<std::uint16_t>(p[at] << 8 | p[at + 1]);
  u.dport = static_cast<std::uint16_t>(p[at + 2] << 8 | p[at + 3]);
  u.payload.assign(reinterpret_cast<const char*>(p + at + 8), n - at - 8);
  return u;
}

/// Reads packets from the TUN until one is UDP to `dport`, or the deadline passes.
inline std::optional<udp_packet> read_udp_from_tun(int fd, std::uint16_t dport,
                                                   std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<std::uint8_t> buf(65536);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
    const auto n = ::read(fd, buf.data(), buf.size());
    if (n <= 0) return std::nullopt;
    auto u = parse_udp(buf.data(), static_cast<std::size_t>(n));
    if (u && u->dport == dport) return u;  // skip IPv6 router solicitations and the like
  }
}

// ---- sockets in the peer namespace -----------------------------------------------------------

struct datagram {
  ip::address from;
  std::uint16_t from_port = 0;
  ip::address to;  ///< the packet's destination address (IP_PKTINFO / IPV6_PKTINFO)
  std::string payload;
};

/// A UDP socket bound to addr:port that reports each datagram's destination address.
/// (Binding with FREEBIND: the address may still be settling right after `ip addr add`.)
inline int udp_listen(const ip::address& addr, std::uint16_t port) {
  const int one = 1;
  if (addr.is_v4()) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ::setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    ::setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    const auto b = addr.to_v4().to_bytes();
    std::memcpy(&sa.sin_addr, b.data(), 4);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
      throw std::runtime_error("bind " + addr.to_string() + ": " + std::strerror(errno));
    return fd;
  }
  const int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
  ::setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof one);
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(port);
  const auto b = addr.to_v6().to_bytes();
  std::memcpy(&sa.sin6_addr, b.data(), 16);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    throw std::runtime_error("bind " + addr.to_string() + ": " + std::strerror(errno));
  return fd;
}

inline std::optional<datagram> udp_receive(int fd, std::chrono::milliseconds timeout) {
  pollfd pfd{fd, POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
  char data[2048];
  alignas(cmsghdr) char control[256];
  sockaddr_storage from{};
  iovec iov{data, sizeof data};
  msghdr m{};
  m.msg_name = &from;
  m.msg_namelen = sizeof from;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  const auto n = ::recvmsg(fd, &m, 0);
  if (n < 0) return std::nullopt;
  datagram d;
  d.payload.assign(data, static_cast<std::size_t>(n));
  if (from.ss_family == AF_INET) {
    const auto* s = reinterpret_cast<const sockaddr_in*>(&from);
    ip::address_v4::bytes_type b;
    std::memcpy(b.data(), &s->sin_addr, 4);
    d.from = ip::address_v4(b);
    d.from_port = ntohs(s->sin_port);
  } else {
    const auto* s = reinterpret_cast<const sockaddr_in6*>(&from);
    ip::address_v6::bytes_type b;
    std::memcpy(b.data(), &s->sin6_addr, 16);
    d.from = ip::address_v6(b);
    d.from_port = ntohs(s->sin6_port);
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      ip::address_v4::bytes_type b;
      std::memcpy(b.data(), &pi.ipi_addr, 4);
      d.to = ip::address_v4(b);
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      ip::address_v6::bytes_type b;
      std::memcpy(b.data(), &pi.ipi6_addr, 16);
      d.to = ip::address_v6(b);
    }
  }
  return d;
}

inline void udp_send(int fd, const ip::address& to, std::uint16_t port, const std::string& data) {
  if (to.is_v4()) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    const auto b = to.to_v4().to_bytes();
    std::memcpy(&sa.sin_addr, b.data(), 4);
    ::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  } else {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(port);
    const auto b = to.to_v6().to_bytes();
    std::memcpy(&sa.sin6_addr, b.data(), 16);
    ::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  }
}

/// Closes a descriptor at scope exit.
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace tunnelgate::testing::netns
