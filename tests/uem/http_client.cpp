#include "http_client.hpp"

#include <utility>

#include <openssl/evp.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <optional>

namespace uem_test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

struct http_client::impl {
  std::string ip;
  unsigned short port;
  std::string ca;
  net::io_context ioc;
  std::optional<ssl::context> tls;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;

  void connect() {
    buffer.clear();
    const tcp::endpoint ep(net::ip::make_address(ip), port);
    if (ca.empty()) {
      plain.emplace(ioc);
      plain->expires_after(std::chrono::seconds(10));
      plain->connect(ep);
    } else {
      if (!tls) {
        tls.emplace(ssl::context::tls_client);
        tls->load_verify_file(ca);
      }
      secure.emplace(ioc, *tls);
      secure->set_verify_mode(ssl::verify_peer);
      secure->set_verify_callback(ssl::host_name_verification(ip));
      beast::get_lowest_layer(*secure).expires_after(std::chrono::seconds(10));
      beast::get_lowest_layer(*secure).connect(ep);
      secure->handshake(ssl::stream_base::client);
    }
  }
  bool connected() const { return plain.has_value() || secure.has_value(); }
  void reset() {
    plain.reset();
    secure.reset();
  }
};

http_client::http_client(std::string ip, unsigned short port, std::string ca_file)
    : impl_(std::make_unique<impl>()) {
  impl_->ip = std::move(ip);
  impl_->port = port;
  impl_->ca = std::move(ca_file);
}

http_client::~http_client() = default;

http_response http_client::request(const std::string& method, const std::string& target,
                                   const std::string& body,
                                   const std::map<std::string, std::string>& headers) {
  http_response out;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool fresh = !impl_->connected();
    try {
      if (fresh) impl_->connect();
      http::request<http::string_body> req{http::string_to_verb(method), target, 11};
      req.set(http::field::host, impl_->ip + ":" + std::to_string(impl_->port));
      for (const auto& [k, v] : headers)
        req.set(k, v);
      req.body() = body;
      if (!body.empty() || method == "POST") req.prepare_payload();
      http::response<http::string_body> res;
      if (impl_->plain) {
        impl_->plain->expires_after(std::chrono::seconds(10));
        http::write(*impl_->plain, req);
        http::read(*impl_->plain, impl_->buffer, res);
      } else {
        beast::get_lowest_layer(*impl_->secure).expires_after(std::chrono::seconds(10));
        http::write(*impl_->secure, req);
        http::read(*impl_->secure, impl_->buffer, res);
      }
      out.status = static_cast<int>(res.result_int());
      out.body = res.body();
      for (const auto& f : res) {
        std::string name(f.name_string());
        for (auto& c : name)
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out.headers[name] = std::string(f.value());
      }
      if (!res.keep_alive()) impl_->reset();
      return out;
    } catch (const std::exception& e) {
      impl_->reset();
      out.error = e.what();
      if (fresh) break;  // only a kept-alive connection the server closed is retried
    }
  }
  return out;
}

std::string http_client::raw(const std::string& bytes) {
  net::io_context ioc;
  beast::tcp_stream s(ioc);
  s.expires_after(std::chrono::seconds(10));
  s.connect(tcp::endpoint(net::ip::make_address(impl_->ip), impl_->port));
  net::write(s, net::buffer(bytes));
  std::string out;
  boost::system::error_code ec;
  char buf[4096];
  for (;;) {
    const auto n = s.read_some(net::buffer(buf), ec);
    out.append(buf, n);
    if (ec) break;
  }
  return out;
}

std::string basic_auth(const std::string& user, const std::string& password) {
  const auto in = user + ":" + password;
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return "Basic " + out;
}

}  // namespace uem_test
