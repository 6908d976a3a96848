// Fuzz target: the DNS messages the gateway reads (gateway/dns.cpp): answers from the name
// servers of egress.resolver (parse_answer, CNAME chains included) and the queries devices
// send to the VPN's in-tunnel DNS server (parse_query), whose response (make_response) must
// read back as the answer to that query.
#include <arpa/nameser.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "gateway/dns.hpp"

namespace dns = tunnelgate::gateway::dns;
namespace net = boost::asio;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

/// The question of `msg` as libresolv reads it, so parse_answer gets past the "is this the
/// answer to our query" checks and the answer section is exercised.
bool own_question(std::span<const std::uint8_t> msg, std::string& name) {
  ns_msg m;
  if (msg.size() < 12 || msg.size() > 65535 ||
      ns_initparse(msg.data(), static_cast<int>(msg.size()), &m) != 0)
    return false;
  ns_rr q;
  if (ns_msg_count(m, ns_s_qd) < 1 || ns_parserr(&m, ns_s_qd, 0, &q) != 0) return false;
  name = ns_rr_name(q);
  return true;
}

bool plain_name(const std::string& n) {
  return !n.empty() && std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> msg(data, size);
  const std::uint16_t id = size >= 2 ? static_cast<std::uint16_t>(data[0] << 8 | data[1]) : 0;

  for (const auto type : {dns::rr_type::a, dns::rr_type::aaaa}) {
    const auto other = dns::parse_answer(msg, id, "example.com", type);
    check(other.result != dns::answer::kind::addresses || other.addresses.size() <= size / 4);
    std::string name;
    if (own_question(msg, name)) {
      const auto a = dns::parse_answer(msg, id, name, type);
      for (const auto& addr : a.addresses)
        check(type == dns::rr_type::a ? addr.is_v4() : addr.is_v6());
    }
  }

  const auto q = dns::parse_query(msg);
  if (!q) return 0;
  check(!q->name.empty() && q->name.size() <= 253);
  const std::vector<net::ip::address> addresses{net::ip::make_address("192.0.2.7"),
                                                net::ip::make_address("2001:db8::7")};
  const auto response = dns::make_response(*q, 0, addresses, 60);
  if (response.empty() || (q->type != 1 && q->type != 28) || !plain_name(q->name)) return 0;
  const auto type = q->type == 1 ? dns::rr_type::a : dns::rr_type::aaaa;
  const auto back = dns::parse_answer(response, q->id, q->name, type);
  check(back.result == dns::answer::kind::addresses);
  check(back.addresses.size() == 1 && back.addresses[0] == addresses[q->type == 1 ? 0 : 1]);
  return 0;
}
