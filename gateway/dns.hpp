// Internal: a stub DNS resolver that asks configured name servers directly (egress.resolver),
// so what the gateway resolves does not depend on /etc/resolv.conf or nsswitch, and a lookup
// can be cancelled at its deadline instead of abandoned on a getaddrinfo thread.
// Queries A and/or AAAA over UDP; answers are parsed with libresolv (ns_initparse/ns_parserr).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gateway/net.hpp"

namespace tunnelgate::gateway::dns {

using udp = net::ip::udp;

enum class rr_type : std::uint16_t { a = 1, aaaa = 28 };

/// A DNS query for `name` (no trailing dot needed) with recursion desired. Names that are not
/// valid DNS names (empty label, label over 63 bytes, name over 253 bytes) give an empty vector.
std::vector<std::uint8_t> make_query(std::uint16_t id, const std::string& name, rr_type type);

/// What one answer says. Pure: no I/O, no state; the bytes are untrusted.
struct answer {
  enum class kind {
    addresses,  ///< NOERROR: `addresses` holds the A/AAAA records of the name (may be empty)
    no_name,    ///< NXDOMAIN
    failure,    ///< SERVFAIL, REFUSED, any other rcode: ask the next server
    malformed,  ///< not a parseable DNS message, or not an answer to our question
    truncated,  ///< TC bit set (this stub does not fall back to TCP)
  } result = kind::malformed;
  std::vector<net::ip::address> addresses;
  std::string detail;
};
/// Parses `msg` as the answer to query `id` for (`name`, `type`). Follows CNAME records in the
/// answer section from `name` (at most 8) and keeps only the records of the final name.
answer parse_answer(std::span<const std::uint8_t> msg, std::uint16_t id, const std::string& name,
                    rr_type type);

// ---- the in-tunnel DNS server's side (pure) ---------------------------------------------------

/// One query as a server sees it.
struct question {
  std::uint16_t id = 0;
  std::string name;        ///< lower case, no trailing dot
  std::uint16_t type = 0;  ///< 1 A, 28 AAAA, anything else as sent
  bool recursion_desired = false;
};
/// Parses a query: QR clear, opcode QUERY, exactly one question of class IN, no answer
/// records. nullopt for anything else (the bytes are untrusted).
std::optional<question> parse_query(std::span<const std::uint8_t> msg);

/// The response to `q`: `rcode` (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED) and one record
/// per address of the question's family (A for type 1, AAAA for 28; others are left out), each
/// with `ttl` seconds. Authoritative; recursion available.
std::vector<std::uint8_t> make_response(const question& q, int rcode,
                                        const std::vector<net::ip::address>& addresses,
                                        std::uint32_t ttl);

struct result {
  boost::system::error_code ec;  ///< timed_out, host_not_found, or another failure
  std::vector<net::ip::address> addresses;
  std::string detail;  ///< human text: which server said what
};

/// Resolves `name` for the requested families by asking `servers` in order (each query is sent
/// to the first server, then to the next when one fails or stays silent), all within `timeout`.
/// "localhost" and names under ".localhost" resolve to loopback without a query (RFC 6761).
/// Runs on the caller's executor; the arguments are references to the caller's named locals.
awaitable<result> resolve(const std::vector<udp::endpoint>& servers, const std::string& name,
                          bool want_v4, bool want_v6, std::chrono::milliseconds timeout);

}  // namespace tunnelgate::gateway::dns
