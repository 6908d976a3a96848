// Reading a device's request head: scan_request_head() on raw bytes (line endings, folding,
// limits), then check_request_fields() on what Beast's parser accepted (bodies, Host).
#include <gtest/gtest.h>

#include <string>

#include "gateway/request.hpp"

namespace tunnelgate::gateway {

[[maybe_unused]] static void PrintTo(refusal r, std::ostream* os) {
  *os << to_string(r);
}

namespace {

using st = head_scan::state;

constexpr std::size_t header_limit = std::size_t{8} * 1024;
constexpr std::size_t target_limit = 1024;

head_scan scan(std::string_view d, std::size_t hl = header_limit, std::size_t tl = target_limit) {
  return scan_request_head(d, hl, tl);
}

refusal refused_with(std::string_view d, std::size_t hl = header_limit,
                     std::size_t tl = target_limit) {
  const auto s = scan(d, hl, tl);
  EXPECT_EQ(s.st, st::refused) << d;
  return s.why;
}

const std::string head = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";

// ---- scan_request_head -----------------------------------------------------------------------

TEST(ScanRequestHead, CompleteHeadHasItsExactLength) {
  auto s = scan(head);
  EXPECT_EQ(s.st, st::complete);
  EXPECT_EQ(s.length, head.size());
  EXPECT_EQ(s.why, refusal::none);
  // Bytes after the head (the tunnel's first bytes, or a pipelined request) are not counted.
  for (const std::string extra : {"\x16\x03\x01\x02\x00", "GET / HTTP/1.1\r\n\r\n", "\n", "\r"}) {
    s = scan(head + extra);
    EXPECT_EQ(s.st, st::complete) << extra;
    EXPECT_EQ(s.length, head.size()) << extra;
  }
  // A head without header fields.
  const std::string bare = "CONNECT example.com:443 HTTP/1.1\r\n\r\n";
  s = scan(bare + "xyz");
  EXPECT_EQ(s.st, st::complete);
  EXPECT_EQ(s.length, bare.size());
}

TEST(ScanRequestHead, IncompleteWaitsForMore) {
  // Every proper prefix of a good head is incomplete, never refused.
  for (std::size_t n = 0; n < head.size(); ++n) {
    const auto s = scan(std::string_view(head).substr(0, n));
    EXPECT_EQ(s.st, st::incomplete) << n;
    EXPECT_EQ(s.why, refusal::none) << n;
  }
}

TEST(ScanRequestHead, BareLfRefused) {
  EXPECT_EQ(refused_with("\n"), refusal::bad_line_ending);
  EXPECT_EQ(refused_with("CONNECT example.com:443 HTTP/1.1\n"), refusal::bad_line_ending);
  EXPECT_EQ(refused_with("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\n\r\n"),
            refusal::bad_line_ending);
  EXPECT_EQ(refused_with("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\n"),
            refusal::bad_line_ending);
  EXPECT_EQ(refused_with("CONNECT example.com:443 HTTP/1.1\r\nX: a\nb\r\n\r\n"),
            refusal::bad_line_ending);
  // Refused as soon as it arrives, without waiting for the rest.
  EXPECT_EQ(refused_with("CONNECT example.com:443 HTTP/1.1\r\nX: a\n"), refusal::bad_line_ending);
}

TEST(ScanRequestHead, BareCrRefused) {
  EXPECT_EQ(refused_with("CONNECT example.com:443 HTTP/1.1\rHost: a\r\n\r\n"),
            refusal::bad_line_ending);
  EXPECT_EQ(refused_with("CONNECT example.com:443 HTTP/1.1\r\nX: a\rb\r\n\r\n"),
            refusal::bad_line_ending);
  EXPECT_EQ(refused_with("CONNECT example.com:443 HTTP/1.1\r\r\n\r\n"), refusal::bad_line_ending);
  EXPECT_EQ(refused_with("CONNECT example.com:443 HTTP/1.1\r\nHost: a\r\n\r\r\n"),
            refusal::bad_line_ending);
  // A CR that is the last byte so far may still be followed by LF.
  EXPECT_EQ(scan("CONNECT example.com:443 HTTP/1.1\r\nHost: a\r").st, st::incomplete);
}

TEST(ScanRequestHead, ObsFoldRefused) {
  EXPECT_EQ(refused_with("CONNECT example.com:443 HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n"),
            refusal::obs_fold);
  EXPECT_EQ(refused_with("CONNECT example.com:443 HTTP/1.1\r\nX-A: one\r\n\ttwo\r\n\r\n"),
            refusal::obs_fold);
  // Whitespace before the first field (RFC 9112 §2.2) is the same shape.
  EXPECT_EQ(refused_with("CONNECT example.com:443 HTTP/1.1\r\n Host: example.com:443\r\n\r\n"),
            refusal::obs_fold);
  // Refused once the folded line is complete, before the end of the head.
  EXPECT_EQ(refused_with("CONNECT example.com:443 HTTP/1.1\r\nX-A: one\r\n two\r\n"),
            refusal::obs_fold);
  // Whitespace inside a line is not folding.
  EXPECT_EQ(scan("CONNECT example.com:443 HTTP/1.1\r\nX-A: one  two\t\r\n\r\n").st, st::complete);
}

TEST(ScanRequestHead, EmptyLineBeforeTheRequestLineRefused) {
  EXPECT_EQ(refused_with("\r\nCONNECT example.com:443 HTTP/1.1\r\n\r\n"), refusal::bad_request);
  EXPECT_EQ(refused_with("\r\n"), refusal::bad_request);
}

TEST(ScanRequestHead, TargetLongerThanTheLimitWithTheLineComplete) {
  constexpr std::size_t tl = 300;
  const auto line = [](std::size_t target_size) {
    return "CONNECT " + std::string(target_size - 4, 'a') + ":443 HTTP/1.1\r\n";
  };
  EXPECT_EQ(refused_with(line(tl + 1), header_limit, tl), refusal::target_too_long);
  EXPECT_EQ(refused_with(line(tl + 1) + "Host: x\r\n\r\n", header_limit, tl),
            refusal::target_too_long);
  // Exactly at the limit: fine.
  EXPECT_EQ(scan(line(tl), header_limit, tl).st, st::incomplete);
  const auto at_limit = line(tl) + "\r\n";
  const auto s = scan(at_limit, header_limit, tl);
  EXPECT_EQ(s.st, st::complete);
  EXPECT_EQ(s.length, at_limit.size());
}

TEST(ScanRequestHead, TargetLongerThanTheLimitWhileStillArriving) {
  constexpr std::size_t tl = 300;
  // No CRLF yet, but the line already holds more than the target could fill (the target plus
  // room for the method and version): refused without waiting for the rest.
  const std::string arriving = "CONNECT " + std::string(tl + 100, 'a');
  EXPECT_EQ(refused_with(arriving, header_limit, tl), refusal::target_too_long);
  // A short prefix of a long target is still just incomplete.
  EXPECT_EQ(scan("CONNECT " + std::string(tl - 10, 'a'), header_limit, tl).st, st::incomplete);
  // A complete line of the allowed size is never refused while arriving.
  const std::string ok_line = "CONNECT " + std::string(tl, 'a') + " HTTP/1.1";
  for (std::size_t n = 0; n <= ok_line.size(); ++n) {
    EXPECT_EQ(scan(std::string_view(ok_line).substr(0, n), header_limit, tl).st, st::incomplete)
        << n;
  }
}

TEST(ScanRequestHead, RequestLineLongerThanTheHeaderLimit) {
  // The target limit is larger than the header limit: the line cannot fit either way.
  constexpr std::size_t hl = 512;
  constexpr std::size_t tl = 4096;
  EXPECT_EQ(refused_with("CONNECT " + std::string(hl, 'a'), hl, tl), refusal::target_too_long);
  EXPECT_EQ(refused_with("CONNECT " + std::string(hl - 8, 'a'), hl, tl),
            refusal::target_too_long);  // exactly hl bytes without a line end
  EXPECT_EQ(scan("CONNECT " + std::string(hl - 9, 'a'), hl, tl).st, st::incomplete);
}

TEST(ScanRequestHead, HeadWithoutEndOverTheHeaderLimit) {
  constexpr std::size_t hl = 512;
  const std::string line = "CONNECT example.com:443 HTTP/1.1\r\n";
  std::string fields;
  while (line.size() + fields.size() < hl + 100)
    fields += "X-Pad: 0123456789\r\n";
  EXPECT_EQ(refused_with(line + fields, hl, target_limit), refusal::header_too_large);
  // Exactly hl bytes with no end yet: the head cannot fit any more.
  EXPECT_EQ(refused_with((line + fields).substr(0, hl), hl, target_limit),
            refusal::header_too_large);
  // One byte less: still waiting.
  EXPECT_EQ(scan((line + fields).substr(0, hl - 1), hl, target_limit).st, st::incomplete);
}

TEST(ScanRequestHead, HeadExactlyAtTheHeaderLimit) {
  constexpr std::size_t hl = 512;
  const std::string start = "CONNECT example.com:443 HTTP/1.1\r\nX-Pad: ";
  const std::string end = "\r\n\r\n";
  const std::string exact = start + std::string(hl - start.size() - end.size(), 'p') + end;
  ASSERT_EQ(exact.size(), hl);
  auto s = scan(exact, hl, target_limit);
  EXPECT_EQ(s.st, st::complete);
  EXPECT_EQ(s.length, hl);
  s = scan(exact + "tunnel bytes", hl, target_limit);
  EXPECT_EQ(s.st, st::complete);
  EXPECT_EQ(s.length, hl);
  // One byte more does not fit.
  const std::string over = start + std::string(hl - start.size() - end.size() + 1, 'p') + end;
  EXPECT_EQ(refused_with(over, hl, target_limit), refusal::header_too_large);
}

// ---- check_request_fields --------------------------------------------------------------------

/// Parses a head with Beast the way a default request parser would. Fails the test when Beast
/// refuses: the cases below are about what check_request_fields sees.
http::request<http::empty_body> parse(const std::string& text) {
  http::request_parser<http::empty_body> p;
  p.eager(false);
  boost::system::error_code ec;
  p.put(net::buffer(text), ec);
  EXPECT_FALSE(ec) << ec.message() << "\n" << text;
  EXPECT_TRUE(p.is_header_done()) << text;
  return p.release();
}

connect_target target_of(std::string_view authority) {
  connect_target t;
  EXPECT_EQ(parse_connect_target(authority, t), refusal::none) << authority;
  return t;
}

refusal check_connect(std::string_view authority, const std::string& fields,
                      std::size_t max_headers = 64) {
  const auto req = parse("CONNECT " + std::string(authority) + " HTTP/1.1\r\n" + fields + "\r\n");
  const auto t = target_of(authority);
  return check_request_fields(req, max_headers, &t);
}

TEST(CheckRequestFields, PlainConnectIsFine) {
  EXPECT_EQ(check_connect("example.com:443", "Host: example.com:443\r\n"), refusal::none);
  EXPECT_EQ(check_connect("example.com:443", "Host: example.com:443\r\nUser-Agent: curl\r\n"),
            refusal::none);
  // RFC 9110 wants a Host, but its absence cannot disagree with anything.
  EXPECT_EQ(check_connect("example.com:443", ""), refusal::none);
}

TEST(CheckRequestFields, AnyTransferEncodingRefused) {
  for (const char* te : {"chunked", "gzip", "gzip, chunked", "identity", "x-anything"}) {
    EXPECT_EQ(check_connect("example.com:443", "Host: example.com:443\r\nTransfer-Encoding: " +
                                                   std::string(te) + "\r\n"),
              refusal::body_not_allowed)
        << te;
  }
  // Beast lets a non-chunked Transfer-Encoding stand next to a Content-Length.
  EXPECT_EQ(check_connect("example.com:443",
                          "Host: example.com:443\r\nTransfer-Encoding: gzip\r\nContent-Length: "
                          "0\r\n"),
            refusal::body_not_allowed);
  // On a GET too.
  const auto get =
      parse("GET /proxy.pac HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(check_request_fields(get, 64, nullptr), refusal::body_not_allowed);
}

TEST(CheckRequestFields, ContentLengthOnlyZero) {
  EXPECT_EQ(check_connect("example.com:443", "Host: example.com:443\r\nContent-Length: 0\r\n"),
            refusal::none);
  EXPECT_EQ(check_connect("example.com:443",
                          "Host: example.com:443\r\nContent-Length: 0\r\nContent-Length: 0\r\n"),
            refusal::none);
  EXPECT_EQ(check_connect("example.com:443", "Host: example.com:443\r\nContent-Length: 5\r\n"),
            refusal::body_not_allowed);
  // Spellings of zero Beast accepts are not "0": refused rather than interpreted.
  EXPECT_EQ(check_connect("example.com:443", "Host: example.com:443\r\nContent-Length: 00\r\n"),
            refusal::body_not_allowed);
  EXPECT_EQ(check_connect("example.com:443", "Host: example.com:443\r\nContent-Length: 0, 0\r\n"),
            refusal::body_not_allowed);
  const auto get = parse("GET / HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\n\r\n");
  EXPECT_EQ(check_request_fields(get, 64, nullptr), refusal::body_not_allowed);
}

TEST(CheckRequestFields, DuplicateHostRefused) {
  EXPECT_EQ(check_connect("example.com:443", "Host: example.com:443\r\nHost: example.com:443\r\n"),
            refusal::duplicate_host);
  EXPECT_EQ(check_connect("example.com:443", "Host: example.com:443\r\nhost: other.example\r\n"),
            refusal::duplicate_host);
  const auto get = parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
  EXPECT_EQ(check_request_fields(get, 64, nullptr), refusal::duplicate_host);
}

TEST(CheckRequestFields, HostMustNameTheConnectTarget) {
  EXPECT_EQ(check_connect("example.com:443", "Host: other.example:443\r\n"),
            refusal::host_mismatch);
  EXPECT_EQ(check_connect("example.com:443", "Host: example.com:8443\r\n"), refusal::host_mismatch);
  EXPECT_EQ(check_connect("example.com:443", "Host: other.example\r\n"), refusal::host_mismatch);
  EXPECT_EQ(check_connect("example.com:443", "Host: sub.example.com:443\r\n"),
            refusal::host_mismatch);
  EXPECT_EQ(check_connect("192.0.2.1:443", "Host: 192.0.2.2:443\r\n"), refusal::host_mismatch);
  // A Host that is not an authority at all.
  for (const char* bad : {"example.com:", "example.com:0", "example.com:99999", "[::1", "127.1:443",
                          "::1:443", "a b:443", ""}) {
    EXPECT_EQ(check_connect("example.com:443", "Host: " + std::string(bad) + "\r\n"),
              refusal::host_mismatch)
        << bad;
  }
  // No Host check without a CONNECT target.
  const auto get = parse("GET /proxy.pac HTTP/1.1\r\nHost: anything.example:1\r\n\r\n");
  EXPECT_EQ(check_request_fields(get, 64, nullptr), refusal::none);
}

TEST(CheckRequestFields, HostWithoutPortMatchesOnTheHost) {
  EXPECT_EQ(check_connect("example.com:443", "Host: example.com\r\n"), refusal::none);
  EXPECT_EQ(check_connect("example.com:8443", "Host: example.com\r\n"), refusal::none);
  EXPECT_EQ(check_connect("192.0.2.1:443", "Host: 192.0.2.1\r\n"), refusal::none);
  EXPECT_EQ(check_connect("[::1]:443", "Host: [::1]\r\n"), refusal::none);
}

TEST(CheckRequestFields, HostComparedAsNormalisedNames) {
  EXPECT_EQ(check_connect("example.com:443", "Host: EXAMPLE.Com:443\r\n"), refusal::none);
  EXPECT_EQ(check_connect("Example.COM:443", "Host: example.com:443\r\n"), refusal::none);
  EXPECT_EQ(check_connect("example.com:443", "Host: example.com.:443\r\n"), refusal::none);
  EXPECT_EQ(check_connect("example.com:443", "Host: Example.com\r\n"), refusal::none);
  EXPECT_EQ(check_connect("xn--bcher-kva.example:443", "Host: bücher.example:443\r\n"),
            refusal::none);
}

TEST(CheckRequestFields, Ipv6Host) {
  EXPECT_EQ(check_connect("[::1]:443", "Host: [::1]:443\r\n"), refusal::none);
  EXPECT_EQ(check_connect("[::1]:443", "Host: [0:0::1]:443\r\n"), refusal::none);
  EXPECT_EQ(check_connect("[2001:db8::1]:443", "Host: [2001:DB8::1]:443\r\n"), refusal::none);
  EXPECT_EQ(check_connect("[::1]:443", "Host: [::2]:443\r\n"), refusal::host_mismatch);
  EXPECT_EQ(check_connect("[::1]:443", "Host: [::1]:444\r\n"), refusal::host_mismatch);
  EXPECT_EQ(check_connect("[::1]:443", "Host: ::1\r\n"), refusal::host_mismatch);
  EXPECT_EQ(check_connect("[::1]:443", "Host: 127.0.0.1:443\r\n"), refusal::host_mismatch);
}

TEST(CheckRequestFields, TooManyHeaders) {
  const std::string three = "Host: example.com:443\r\nA: 1\r\nB: 2\r\n";
  EXPECT_EQ(check_connect("example.com:443", three, 3), refusal::none);
  EXPECT_EQ(check_connect("example.com:443", three + "C: 3\r\n", 3), refusal::too_many_headers);
  // Counted before anything else is looked at.
  EXPECT_EQ(check_connect("example.com:443", three + "Host: other\r\n", 3),
            refusal::too_many_headers);
  const auto get = parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n");
  EXPECT_EQ(check_request_fields(get, 1, nullptr), refusal::too_many_headers);
  EXPECT_EQ(check_request_fields(get, 2, nullptr), refusal::none);
}

TEST(ScanThenParse, TheSessionsPathOnAGoodHead) {
  // scan → Beast on exactly the head → check: the bytes after the head stay for the tunnel.
  const std::string wire = head + "\x16\x03\x01";
  const auto s = scan(wire);
  ASSERT_EQ(s.st, st::complete);
  const auto req = parse(wire.substr(0, s.length));
  EXPECT_EQ(req.method(), http::verb::connect);
  EXPECT_EQ(sv(req.target()), "example.com:443");
  const auto t = target_of(sv(req.target()));
  EXPECT_EQ(check_request_fields(req, 64, &t), refusal::none);
}

}  // namespace
}  // namespace tunnelgate::gateway
