// Fuzz target: a device's request head as the session reads it (gateway/session.cpp
// read_head() and serve()): scan_request_head() on the raw bytes, exactly the scanned head
// through Beast's parser (a body only for `POST `, as the VPN's auth exchange), then the CONNECT
// target, check_request_fields(), and what the VPN path reads from the head: the X-CSTP-*
// headers of a tunnel CONNECT, the webvpn cookie and the XML body of an auth POST.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "gateway/request.hpp"
#include "gateway/target.hpp"
#include "gateway/vpn/auth.hpp"
#include "gateway/vpn/tunnel.hpp"

namespace gw = tunnelgate::gateway;
namespace http = gw::http;

namespace {

// The defaults of limits: in the gateway configuration.
constexpr std::size_t header_limit = std::size_t{8} * 1024;
constexpr std::size_t target_limit = 1024;
constexpr std::size_t max_headers = 64;

void check(bool ok) {
  if (!ok) std::abort();  // an invariant of the scanner broke: libFuzzer keeps the input
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto scan = gw::scan_request_head(in, header_limit, target_limit);
  using st = gw::head_scan::state;
  if (scan.st != st::complete) {
    check(scan.length == 0);
    check((scan.st == st::refused) == (scan.why != gw::refusal::none));
    return 0;
  }
  // The head ends with CRLF CRLF within the limit, and the scanner decides the same on exactly
  // the head (the session scans a buffer that grows).
  check(scan.length >= 4 && scan.length <= in.size() && scan.length <= header_limit);
  check(in.substr(scan.length - 4, 4) == "\r\n\r\n");
  const std::string_view raw = in.substr(0, scan.length);
  const auto again = gw::scan_request_head(raw, header_limit, target_limit);
  check(again.st == st::complete && again.length == scan.length);

  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(header_limit));
  parser.body_limit(0);
  if (raw.starts_with("POST ")) parser.body_limit(gw::vpn::auth::max_body_size);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(raw.data(), raw.size()), ec);
  if (!ec && parser.is_header_done() && !parser.is_done()) {
    if (parser.chunked() || !parser.content_length()) return 0;
    const auto want = static_cast<std::size_t>(*parser.content_length());
    const auto rest = in.substr(scan.length);
    if (rest.size() < want) return 0;  // the session would wait for more
    parser.put(boost::asio::buffer(rest.data(), want), ec);
  }
  if (ec || !parser.is_done()) return 0;

  const auto& req = parser.get();
  const bool is_vpn_tunnel =
      req.method() == http::verb::connect && req.target() == "/CSCOSSLC/tunnel";
  const bool is_connect = req.method() == http::verb::connect && !is_vpn_tunnel;
  const bool is_vpn_auth = req.method() == http::verb::post && req.target() == "/";
  gw::connect_target target;
  auto why = gw::refusal::none;
  if (is_connect) {
    why = gw::parse_connect_target(gw::sv(req.target()), target);
    if (why == gw::refusal::none) {
      check(!target.host.empty() && target.port != 0);
      // What the gateway writes back parses to the same target.
      gw::connect_target back;
      check(gw::parse_connect_target(target.authority(), back) == gw::refusal::none);
      check(back.host == target.host && back.port == target.port);
    }
  }
  if (why == gw::refusal::none)
    why = gw::check_request_fields(req, max_headers, is_connect ? &target : nullptr, is_vpn_auth);
  if (why != gw::refusal::none) return 0;

  if (is_vpn_tunnel) {
    gw::vpn::tunnel::client_request creq;
    for (const auto& f : req)
      (void)gw::vpn::tunnel::apply_header(creq, gw::sv(f.name_string()), gw::sv(f.value()));
  }
  if (is_vpn_tunnel || is_vpn_auth) {
    for (auto [it, end] = req.equal_range(http::field::cookie); it != end; ++it)
      (void)gw::vpn::auth::find_session_cookie(gw::sv(it->value()));
  }
  if (is_vpn_auth) (void)gw::vpn::auth::parse_request(req.body());
  return 0;
}
