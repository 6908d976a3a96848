// A tiny HTTPS server for the idp client tests: what okta-sim and entra-sim cannot be made to do
// on cue (another writer's full replace landing between our write and our read-back, Link
// fields in a chosen order). 127.0.0.1, port 0, one thread, one request per connection (the
// client sends `Connection: close`); a handler decides every answer, under a mutex the test
// shares to read what the handler recorded.
#pragma once

#include <utility>  // before Asio: awaitable.hpp uses std::exchange (STYLE P1)

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace tunnelgate::testing {

class fake_https {
 public:
  using request = boost::beast::http::request<boost::beast::http::string_body>;
  using response = boost::beast::http::response<boost::beast::http::string_body>;
  using handler = std::function<response(const request&)>;

  /// Serves with `cert` and `key` (PEM); `h` runs on the server thread with mutex() held.
  fake_https(const std::filesystem::path& cert, const std::filesystem::path& key, handler h)
      : tls_(boost::asio::ssl::context::tls_server), acceptor_(ioc_), handler_(std::move(h)) {
    tls_.use_certificate_chain_file(cert.string());
    tls_.use_private_key_file(key.string(), boost::asio::ssl::context::pem);
    const boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { run(); });
  }
  ~fake_https() {
    stop_ = true;
    // Wake the blocking accept with a connection of our own.
    boost::system::error_code ec;
    boost::asio::ip::tcp::socket s(ioc_);
    s.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
    thread_.join();
  }
  fake_https(const fake_https&) = delete;
  fake_https& operator=(const fake_https&) = delete;

  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  std::mutex& mutex() { return mutex_; }

  /// A JSON answer.
  static response json(unsigned status, std::string body) {
    response res{static_cast<boost::beast::http::status>(status), 11};
    res.set(boost::beast::http::field::content_type, "application/json");
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
  }

 private:
  void run() {
    namespace http = boost::beast::http;
    while (!stop_) {
      boost::system::error_code ec;
      boost::asio::ip::tcp::socket sock(ioc_);
      acceptor_.accept(sock, ec);
      if (ec || stop_) continue;
      // A stuck peer must not hang the test: bound every read and write.
      const timeval tv{5, 0};
      ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream(std::move(sock), tls_);
      stream.handshake(boost::asio::ssl::stream_base::server, ec);
      if (ec) continue;
      boost::beast::flat_buffer buffer;
      request req;
      http::read(stream, buffer, req, ec);
      if (ec) continue;
      response res;
      {
        const std::lock_guard lock(mutex_);
        res = handler_(req);
      }
      res.keep_alive(false);
      http::write(stream, res, ec);
      stream.shutdown(ec);
    }
  }

  boost::asio::io_context ioc_;
  boost::asio::ssl::context tls_;
  boost::asio::ip::tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  handler handler_;
  std::mutex mutex_;
  std::atomic<bool> stop_{false};
  std::thread thread_;  // last: started when everything it uses exists
};

}  // namespace tunnelgate::testing
