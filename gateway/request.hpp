// Internal: one strict reading of a device's request head, without I/O (STYLE: parsers free of
// I/O and state). The session reads raw bytes until scan_request_head() says the head is
// complete (or refused), hands exactly those bytes to Beast's parser, then asks
// check_request_fields() about what Beast accepted. Together they refuse every shape that two
// HTTP implementations could read differently (request smuggling): bare CR or LF, folded
// header lines, bodies on CONNECT, duplicate or disagreeing Host.
#pragma once

#include <cstddef>
#include <string_view>

#include "gateway/net.hpp"
#include "gateway/refusal.hpp"
#include "gateway/target.hpp"

namespace tunnelgate::gateway {

struct head_scan {
  enum class state { incomplete, complete, refused };
  state st = state::incomplete;
  std::size_t length = 0;       ///< complete: bytes of the head, the final CRLF CRLF included
  refusal why = refusal::none;  ///< refused: bad_line_ending, obs_fold, target_too_long,
                                ///< header_too_large or bad_request
};

/// Looks at the bytes received so far (`data` starts at the request line). Refuses as soon as
/// the bytes show a problem, so a hostile client cannot make the gateway wait for more:
///   * a CR not followed by LF, or an LF not preceded by CR: bad_line_ending;
///   * a header line starting with SP or HT (obsolete line folding): obs_fold;
///   * a request target longer than `target_limit` (also while the request line is still
///     arriving, and a request line that does not fit in `header_limit`): target_too_long;
///   * no end of head within `header_limit` bytes: header_too_large;
///   * an empty line before the request line: bad_request.
head_scan scan_request_head(std::string_view data, std::size_t header_limit,
                            std::size_t target_limit) noexcept;

/// Checks a parsed head. `target` is the parsed CONNECT target, or null for other methods.
/// Refuses: more than `max_headers` fields (too_many_headers); any Transfer-Encoding, or a
/// Content-Length other than 0 (body_not_allowed); Host given twice (duplicate_host); for
/// CONNECT, a Host whose host differs from the target's, or whose port (when given) differs
/// (host_mismatch).
/// `body_allowed`: a Content-Length (not Transfer-Encoding) is fine (the VPN's POST /).
template <class Body>
refusal check_request_fields(const http::request<Body>& req, std::size_t max_headers,
                             const connect_target* target, bool body_allowed = false);

}  // namespace tunnelgate::gateway
