// Internal: a device's TLS connection, OpenSSL directly on the socket's descriptor.
//
// Asio's ssl::stream keeps four 17 KiB buffers per connection (its own input and output
// buffers and a BIO pair between it and OpenSSL) and copies every byte through them. Here
// OpenSSL reads and writes the non-blocking socket itself and waits for readiness with the
// reactor (async_wait), so an idle connection holds no buffer at all: with
// SSL_MODE_RELEASE_BUFFERS OpenSSL frees its record buffers whenever they are empty, and the
// relay takes a buffer only while bytes are in flight (relay.hpp). That is what brings an idle
// tunnel from ~124 KiB to the figures in docs/performance.md.
//
// Every operation is a coroutine on the connection's executor (one thread): no two run at once
// except one reader beside one writer, which OpenSSL allows on one SSL object. Once the socket
// is closed (close(), a watchdog, a kill) no OpenSSL call touches the descriptor again: its
// number may already belong to another connection.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <functional>

#include "gateway/net.hpp"

namespace tunnelgate::gateway {

class tls_socket {
 public:
  /// Takes the accepted socket; the server side of a handshake with `ctx`.
  tls_socket(tcp::socket sock, ssl::context& ctx);
  ~tls_socket();
  tls_socket(const tls_socket&) = delete;
  tls_socket& operator=(const tls_socket&) = delete;

  tcp::socket& next_layer() noexcept { return sock_; }
  SSL* native_handle() const noexcept { return ssl_; }
  net::any_io_executor get_executor() { return sock_.get_executor(); }

  /// The server handshake. Errors as Asio's ssl::stream reports them (SSL errors in
  /// net::error::get_ssl_category(), with OpenSSL's packed error code as the value).
  awaitable<void> handshake(boost::system::error_code& ec);

  /// Bytes already decrypted (or received) and waiting. Not enough for a read: they may be a
  /// record cut short, which only more bytes from the socket complete.
  bool has_pending() const;
  /// Waits until a read can make progress: at once when OpenSSL holds bytes the last read did
  /// not find short, otherwise until the socket is readable (or writable, when the last read
  /// wanted to write). Always suspends when waiting on the socket, so the reactor's timers run.
  awaitable<void> wait_readable(boost::system::error_code& ec);
  /// One non-blocking read: bytes, or net::error::would_block, eof (close_notify),
  /// ssl::error::stream_truncated (TCP closed without close_notify), or another error.
  std::size_t try_read(net::mutable_buffer b, boost::system::error_code& ec);
  /// Reads at least one byte (waits as needed).
  awaitable<std::size_t> read_some(net::mutable_buffer b, boost::system::error_code& ec);
  /// Writes all of `b` (each SSL_write of up to 16 KiB is one TLS record).
  awaitable<std::size_t> write_all(net::const_buffer b, boost::system::error_code& ec);
  /// Sends close_notify (without waiting for the device's) and closes the socket.
  awaitable<void> shutdown();
  /// Sends close_notify and keeps the socket open: the device may still send (a half-close,
  /// as TLS 1.3 allows and OpenSSL supports: reads go on after our close_notify).
  awaitable<void> shutdown_send(boost::system::error_code& ec);
  /// Closes the socket now; later operations fail with net::error::bad_descriptor.
  void close() noexcept;
  /// `f` runs each time the device asks for a TLS 1.2 renegotiation. OpenSSL refuses it
  /// (SSL_OP_NO_RENEGOTIATION: a no_renegotiation warning alert, no handshake) and the
  /// connection goes on; `f` runs inside that read, on the connection's executor, and must not
  /// call OpenSSL on this socket. Set it once the handshake is done.
  void on_renegotiation(std::function<void()> f);

 private:
  /// `r` and the error queue after an SSL call that returned <= 0 -> what to do: wait for
  /// reading (1), for writing (2), or stop with `ec` set (0).
  int classify(int r, boost::system::error_code& ec) const;

  /// OpenSSL's info callback: finds the socket through the SSL's ex_data.
  static void info_callback(const SSL* ssl, int where, int ret);

  tcp::socket sock_;
  SSL* ssl_ = nullptr;
  /// What the last try_read() was short of: 0 nothing (it read), 1 bytes from the socket, 2 room
  /// to write. With read-ahead OpenSSL keeps a partial record it cannot use (has_pending() is
  /// true), so wait_readable() must not take that for readable data (a busy loop otherwise).
  int short_of_ = 0;
  std::function<void()> on_renegotiation_;
};

}  // namespace tunnelgate::gateway
