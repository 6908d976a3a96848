// tls_socket (OpenSSL on the gateway's non-blocking descriptor) against a real OpenSSL client
// on a loopback pair: a record the device cuts short. With read-ahead (as make_server_context
// sets it) OpenSSL keeps the partial record and SSL_has_pending() says so; a read must then
// wait for the socket, suspending, so that the watchdogs on the same thread run.
//
// The server side runs on its own thread and the test waits for it with a deadline: a read
// that never suspends cannot be stopped from outside, so that failure ends the process (and
// the test) instead of hanging it.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "certauth/certauth.hpp"
#include "gateway/net.hpp"
#include "gateway/tls_socket.hpp"
#include "support/temp_dir.hpp"

namespace tunnelgate::gateway {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

struct read_result {
  std::size_t n = 0;
  boost::system::error_code ec;
  clock_type::duration took{};
};

awaitable<void> do_handshake(tls_socket* s, boost::system::error_code* ec) {
  co_await s->handshake(*ec);
}

awaitable<void> do_read(tls_socket* s, std::string* out, std::promise<read_result>* done) {
  read_result r;
  const auto start = clock_type::now();
  std::array<char, 4096> buf{};
  r.n = co_await s->read_some(net::buffer(buf), r.ec);
  r.took = clock_type::now() - start;
  out->assign(buf.data(), r.n);
  done->set_value(r);
}

class TlsSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_.emplace(certauth::dev_ca::init(dir_ / "ca"));
    SSL_CTX* s = server_ctx_.native_handle();
    server_ctx_.use_certificate_chain_file((dir_ / "ca" / "server.pem").string());
    server_ctx_.use_private_key_file((dir_ / "ca" / "server.key").string(), ssl::context::pem);
    // As make_server_context: read-ahead (the condition for a buffered partial record) and
    // record buffers released when empty; no tickets, so the client reads nothing after its
    // handshake.
    SSL_CTX_set_read_ahead(s, 1);
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_num_tickets(s, 0);
    client_ctx_ = SSL_CTX_new(TLS_client_method());
    ASSERT_NE(client_ctx_, nullptr);

    tcp::acceptor acceptor(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    client_sock_.connect(acceptor.local_endpoint());
    server_.emplace(acceptor.accept(), server_ctx_);

    // The handshake: the client blocks on its own thread while the server's coroutine runs.
    client_ = SSL_new(client_ctx_);
    ASSERT_NE(client_, nullptr);
    SSL_set_fd(client_, static_cast<int>(client_sock_.native_handle()));
    int client_rc = 0;
    std::thread client([this, &client_rc] { client_rc = SSL_connect(client_); });
    boost::system::error_code ec;
    net::co_spawn(io_, do_handshake(&*server_, &ec), net::detached);
    io_.run_for(5s);
    client.join();
    io_.restart();
    ASSERT_FALSE(ec) << ec.message();
    ASSERT_EQ(client_rc, 1);
  }

  void TearDown() override {
    if (io_thread_.joinable()) io_thread_.join();
    SSL_free(client_);
    SSL_CTX_free(client_ctx_);
  }

  /// One application-data record carrying `text`, as bytes (encrypted by the client's SSL
  /// into memory instead of onto the socket).
  std::string record_of(const std::string& text) {
    BIO* mem = BIO_new(BIO_s_mem());
    BIO* wire = SSL_get_wbio(client_);
    BIO_up_ref(wire);
    SSL_set0_wbio(client_, mem);
    EXPECT_EQ(SSL_write(client_, text.data(), static_cast<int>(text.size())),
              static_cast<int>(text.size()));
    char* p = nullptr;
    const long len = BIO_get_mem_data(mem, &p);
    std::string out(p, static_cast<std::size_t>(len));
    SSL_set0_wbio(client_, wire);  // frees `mem`
    return out;
  }

  void send_raw(std::string_view bytes) {
    ASSERT_EQ(::send(client_sock_.native_handle(), bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }

  /// Starts `read_some` on the server with a watchdog that closes the socket after `deadline`
  /// (as the gateway's header timeout does), the io_context on its own thread.
  void start_read(clock_type::duration deadline) {
    watchdog_.expires_after(deadline);
    watchdog_.async_wait([this](const boost::system::error_code& e) {
      if (!e) server_->close();
    });
    net::co_spawn(io_, do_read(&*server_, &text_, &done_), net::detached);
    io_thread_ = std::thread([this] { io_.run(); });
  }

  /// The read's result; ends the process when it did not come (the server thread is stuck).
  read_result wait_read() {
    auto f = done_.get_future();
    if (f.wait_for(5s) != std::future_status::ready) {
      std::fprintf(stderr,
                   "FAILED: the read neither finished nor let the watchdog run within 5 s "
                   "(a busy loop on the partial record)\n");
      std::_Exit(1);
    }
    auto r = f.get();
    net::post(io_, [this] { watchdog_.cancel(); });  // the timer belongs to the io thread
    return r;
  }

  tunnelgate::testing::temp_dir dir_;
  std::optional<certauth::dev_ca> ca_;
  net::io_context io_;
  ssl::context server_ctx_{ssl::context::tls_server};
  SSL_CTX* client_ctx_ = nullptr;
  SSL* client_ = nullptr;
  tcp::socket client_sock_{io_};
  std::optional<tls_socket> server_;
  net::steady_timer watchdog_{io_};
  std::promise<read_result> done_;
  std::string text_;
  std::thread io_thread_;
};

TEST_F(TlsSocketTest, ARecordCutShortWaitsForTheSocketAndTheWatchdogRuns) {
  const std::string rec = record_of(std::string(1000, 'x'));
  ASSERT_GT(rec.size(), 1000u);
  send_raw(std::string_view(rec).substr(0, 10));  // and the rest never comes
  start_read(300ms);
  const auto r = wait_read();
  EXPECT_EQ(r.n, 0u);
  // Closed under the waiting read (the usual case) or just before the read looked again.
  EXPECT_TRUE(r.ec == net::error::operation_aborted || r.ec == net::error::bad_descriptor)
      << r.ec.message();
  EXPECT_GE(r.took, 250ms) << "the read ended before the watchdog closed the socket";
}

TEST_F(TlsSocketTest, TheRestOfTheRecordCompletesTheRead) {
  const std::string rec = record_of("CONNECT example.test:443 HTTP/1.1\r\n\r\n");
  send_raw(std::string_view(rec).substr(0, 10));
  start_read(3s);
  std::this_thread::sleep_for(100ms);
  send_raw(std::string_view(rec).substr(10));
  const auto r = wait_read();
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(text_, "CONNECT example.test:443 HTTP/1.1\r\n\r\n");
  EXPECT_GE(r.took, 90ms);
}

}  // namespace
}  // namespace tunnelgate::gateway
