// Fuzz target: the XML body of the VPN's authentication POST (gateway/vpn/auth.hpp
// parse_request, expat underneath: no DOCTYPE, bounded depth and size) and the Cookie header
// that carries the session token of a tunnel CONNECT (find_session_cookie).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "gateway/vpn/auth.hpp"

namespace auth = tunnelgate::gateway::vpn::auth;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto r = auth::parse_request(in);
  if (r.err == auth::error::none && in.size() > auth::max_body_size) std::abort();
  const auto c = auth::find_session_cookie(in);
  if (c.state == auth::cookie_result::status::found && !auth::valid_token(c.value)) std::abort();
  return 0;
}
