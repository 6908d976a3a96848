#include "gateway/tls_socket.hpp"

#include <openssl/err.h>

#include <cerrno>
#include <csignal>
#include <mutex>
#include <stdexcept>

namespace tunnelgate::gateway {

namespace {

/// OpenSSL writes with write(2): a device that vanished must cost an EPIPE, not the process.
void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

boost::system::error_code ssl_error(unsigned long e) {
  return {static_cast<int>(e), net::error::get_ssl_category()};
}

/// The SSL ex_data slot that points back at its tls_socket (claimed once per process).
int socket_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace

tls_socket::tls_socket(tcp::socket sock, ssl::context& ctx) : sock_(std::move(sock)) {
  ignore_sigpipe();
  ssl_ = SSL_new(ctx.native_handle());
  if (ssl_ == nullptr) throw std::bad_alloc();
  boost::system::error_code ec;
  // Small writes (a session ticket, then a response head) must not wait for the device's
  // delayed ACK (Nagle): every write here is a whole message or a whole record anyway.
  sock_.set_option(tcp::no_delay(true), ec);
  sock_.non_blocking(true, ec);
  if (ec || SSL_set_fd(ssl_, static_cast<int>(sock_.native_handle())) != 1) {
    // Not a usable socket (closed before we got it): every operation then fails cleanly.
    sock_.close(ec);
  }
  SSL_set_accept_state(ssl_);
}

tls_socket::~tls_socket() {
  SSL_free(ssl_);  // the socket BIO does not own the descriptor: sock_ closes it next
}

void tls_socket::on_renegotiation(std::function<void()> f) {
  on_renegotiation_ = std::move(f);
  // Only now: the handshake's many state changes do not pay for a callback.
  SSL_set_ex_data(ssl_, socket_index(), this);
  SSL_set_info_callback(ssl_, &tls_socket::info_callback);
}

void tls_socket::info_callback(const SSL* ssl, int where, int ret) {
  // The alert OpenSSL sends when it refuses a renegotiating ClientHello (ssl3_read_bytes);
  // `ret` is the alert's level << 8 | description.
  if (where != SSL_CB_WRITE_ALERT || (ret & 0xff) != SSL_AD_NO_RENEGOTIATION) return;
  auto* self = static_cast<tls_socket*>(SSL_get_ex_data(ssl, socket_index()));
  if (self != nullptr && self->on_renegotiation_) self->on_renegotiation_();
}

void tls_socket::close() noexcept {
  boost::system::error_code ignored;
  sock_.close(ignored);
}

int tls_socket::classify(int r, boost::system::error_code& ec) const {
  const int saved_errno = errno;
  switch (SSL_get_error(ssl_, r)) {
    case SSL_ERROR_WANT_READ:
      return 1;
    case SSL_ERROR_WANT_WRITE:
      return 2;
    case SSL_ERROR_ZERO_RETURN:
      ec = net::error::eof;
      break;
    case SSL_ERROR_SYSCALL:
      if (const unsigned long e = ERR_get_error(); e != 0) {
        ec = ssl_error(e);
      } else if (saved_errno != 0) {
        ec = {saved_errno, boost::system::system_category()};
      } else {
        ec = ssl::error::stream_truncated;
      }
      break;
    default: {
      const unsigned long e = ERR_get_error();
      ec = ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING
               ? boost::system::error_code(ssl::error::stream_truncated)
               : ssl_error(e);
      break;
    }
  }
  ERR_clear_error();
  return 0;
}

awaitable<void> tls_socket::handshake(boost::system::error_code& ec) {
  for (;;) {
    if (!sock_.is_open()) {
      ec = net::error::bad_descriptor;
      co_return;
    }
    ERR_clear_error();
    errno = 0;
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) {
      ec = {};
      SSL_free_buffers(ssl_);  // nothing is buffered between the handshake and the request
      co_return;
    }
    const int want = classify(r, ec);
    if (want == 0) co_return;
    co_await sock_.async_wait(want == 1 ? tcp::socket::wait_read : tcp::socket::wait_write,
                              net::redirect_error(use_awaitable, ec));
    if (ec) co_return;
  }
}

bool tls_socket::has_pending() const {
  return SSL_has_pending(ssl_) == 1;
}

std::size_t tls_socket::try_read(net::mutable_buffer b, boost::system::error_code& ec) {
  if (!sock_.is_open()) {
    ec = net::error::bad_descriptor;
    return 0;
  }
  ERR_clear_error();
  errno = 0;
  std::size_t n = 0;
  const int r = SSL_read_ex(ssl_, b.data(), b.size(), &n);
  if (r == 1) {
    ec = {};
    short_of_ = 0;
    return n;
  }
  const int want = classify(r, ec);
  short_of_ = want;
  if (want != 0) {
    ec = net::error::would_block;
    // A read that found nothing has just set up an empty record buffer: an idle connection
    // must not keep it (SSL_MODE_RELEASE_BUFFERS frees it only after a record was consumed).
    SSL_free_buffers(ssl_);
  }
  return 0;
}

awaitable<void> tls_socket::wait_readable(boost::system::error_code& ec) {
  ec = {};
  // What OpenSSL holds is worth a read unless the last read already found it short (a record
  // cut short: returning here would loop without ever suspending, and no timer would run).
  if (short_of_ == 0 && has_pending()) co_return;
  if (!sock_.is_open()) {
    ec = net::error::bad_descriptor;
    co_return;
  }
  co_await sock_.async_wait(short_of_ == 2 ? tcp::socket::wait_write : tcp::socket::wait_read,
                            net::redirect_error(use_awaitable, ec));
}

awaitable<std::size_t> tls_socket::read_some(net::mutable_buffer b, boost::system::error_code& ec) {
  for (;;) {
    const std::size_t n = try_read(b, ec);
    if (ec != net::error::would_block) co_return n;
    co_await wait_readable(ec);
    if (ec) co_return 0;
  }
}

awaitable<std::size_t> tls_socket::write_all(net::const_buffer b, boost::system::error_code& ec) {
  const auto* p = static_cast<const char*>(b.data());
  std::size_t done = 0;
  ec = {};
  while (done < b.size()) {
    if (!sock_.is_open()) {
      ec = net::error::bad_descriptor;
      co_return done;
    }
    ERR_clear_error();
    errno = 0;
    std::size_t n = 0;
    const int r = SSL_write_ex(ssl_, p + done, b.size() - done, &n);
    if (r == 1) {
      done += n;
      continue;
    }
    const int want = classify(r, ec);
    if (want == 0) co_return done;
    co_await sock_.async_wait(want == 1 ? tcp::socket::wait_read : tcp::socket::wait_write,
                              net::redirect_error(use_awaitable, ec));
    if (ec) co_return done;
  }
  co_return done;
}

awaitable<void> tls_socket::shutdown_send(boost::system::error_code& ec) {
  ec = {};
  for (int attempt = 0; attempt < 3 && sock_.is_open(); ++attempt) {
    ERR_clear_error();
    errno = 0;
    const int r = SSL_shutdown(ssl_);
    if (r >= 0) co_return;  // close_notify sent
    const int want = classify(r, ec);
    if (want == 0) co_return;
    co_await sock_.async_wait(want == 1 ? tcp::socket::wait_read : tcp::socket::wait_write,
                              net::redirect_error(use_awaitable, ec));
    if (ec) co_return;
  }
  if (!sock_.is_open()) ec = net::error::bad_descriptor;
}

awaitable<void> tls_socket::shutdown() {
  boost::system::error_code ec;
  for (int attempt = 0; attempt < 3 && sock_.is_open(); ++attempt) {
    ERR_clear_error();
    errno = 0;
    const int r = SSL_shutdown(ssl_);
    if (r >= 0) break;  // close_notify sent; the device's is not awaited
    const int want = classify(r, ec);
    if (want == 0) break;
    co_await sock_.async_wait(want == 1 ? tcp::socket::wait_read : tcp::socket::wait_write,
                              net::redirect_error(use_awaitable, ec));
    if (ec) break;
  }
  close();
}

}  // namespace tunnelgate::gateway
