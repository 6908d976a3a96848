// Internal: the one place gateway code includes Asio and Beast (STYLE P1: awaitable.hpp uses
// std::exchange without including <utility>).
#pragma once

#include <string_view>
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace tunnelgate::gateway {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using boost::asio::awaitable;
using boost::asio::use_awaitable;

/// Beast 1.74 speaks boost::string_view; the rest of the code std::string_view.
inline std::string_view sv(beast::string_view s) noexcept {
  return {s.data(), s.size()};
}
inline beast::string_view bsv(std::string_view s) noexcept {
  return {s.data(), s.size()};
}

}  // namespace tunnelgate::gateway
