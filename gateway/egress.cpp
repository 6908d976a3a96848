#include "gateway/egress.hpp"

#include <algorithm>
#include <cstring>

#include "gateway/dns.hpp"
#include "gateway/watchdog.hpp"
#include "support/support.hpp"

namespace tunnelgate::gateway {

std::string endpoint_text(const tcp::endpoint& ep) {
  const auto a = ep.address().to_string();
  return (ep.address().is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(ep.port());
}

std::string check_egress_addresses(const egress_options& o) {
  for (const auto& a : {o.v4, o.v6}) {
    if (!a) continue;
    tcp::socket s(net::system_executor{});
    boost::system::error_code ec;
    s.open(a->is_v4() ? tcp::v4() : tcp::v6(), ec);
    if (!ec) s.bind(tcp::endpoint(*a, 0), ec);
    if (ec) {
      return "egress.address: " + a->to_string() + " is not assigned on this host (" +
             ec.message() + "); add it to an interface (e.g. `ip addr add " + a->to_string() +
             (a->is_v4() ? "/32" : "/128") + " dev lo`) or fix egress.address";
    }
  }
  return {};
}

namespace {

using bind_address_no_port =
    net::detail::socket_option::boolean<IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT>;

/// An errno from a socket call, compared by value and category identity only: no virtual call,
/// no error_condition. (Under UBSan a first virtual call on a category object makes the
/// sanitizer open a pipe to probe memory, which fails while descriptors are out.)
bool is_errno(const boost::system::error_code& e, int value) {
  return e.value() == value && &e.category() == &boost::system::system_category();
}

}  // namespace

std::string_view local_shortage(const boost::system::error_code& e) {
  if (is_errno(e, EMFILE) || is_errno(e, ENFILE)) return "descriptors";
  if (is_errno(e, ENOMEM) || is_errno(e, ENOBUFS)) return "memory";
  if (is_errno(e, EADDRNOTAVAIL)) return "ports";
  return {};
}

namespace {

struct resolve_state {
  explicit resolve_state(const net::any_io_executor& ex) : resolver(ex), done(ex) {}
  tcp::resolver resolver;
  net::steady_timer done;
  bool finished = false;
  boost::system::error_code ec;
  tcp::resolver::results_type results;
};

/// getaddrinfo cannot be interrupted, so the timeout abandons the lookup rather than cancelling
/// it: the state outlives the coroutine until the resolver's handler has run.
awaitable<boost::system::error_code> resolve_bounded(const std::string& host, std::uint16_t port,
                                                     std::chrono::milliseconds timeout,
                                                     tcp::resolver::results_type& out) {
  auto ex = co_await net::this_coro::executor;
  auto st = std::make_shared<resolve_state>(ex);
  st->resolver.async_resolve(
      host, std::to_string(port), tcp::resolver::numeric_service,
      [st](const boost::system::error_code& ec, tcp::resolver::results_type r) {
        if (st->finished) return;
        st->finished = true;
        st->ec = ec;
        st->results = std::move(r);
        st->done.cancel();
      });
  st->done.expires_after(timeout);
  boost::system::error_code wait_ec;
  co_await st->done.async_wait(net::redirect_error(use_awaitable, wait_ec));
  if (!st->finished) {
    st->finished = true;
    st->resolver.cancel();
    co_return net::error::timed_out;
  }
  out = std::move(st->results);
  co_return st->ec;
}

}  // namespace

awaitable<resolved> resolve_destination(const egress_options& o, const std::string& host,
                                        std::uint16_t port) {
  resolved r;
  boost::system::error_code literal_ec;
  const auto literal = net::ip::make_address(host, literal_ec);
  boost::system::error_code ec;
  std::string why;
  if (!literal_ec) {
    r.endpoints.emplace_back(literal, port);
  } else if (!o.resolver.empty()) {
    // egress.resolver: ask those servers, only for the families we can leave from.
    const bool want_v4 = o.v4.has_value();
    const bool want_v6 = o.v6.has_value();
    const auto res = co_await dns::resolve(o.resolver, host, want_v4, want_v6, o.resolve_timeout);
    ec = res.ec;
    why = res.detail;
    for (const auto& a : res.addresses)
      r.endpoints.emplace_back(a, port);
  } else {
    tcp::resolver::results_type found;
    ec = co_await resolve_bounded(host, port, o.resolve_timeout, found);
    if (ec) why = ec.message();
    for (const auto& entry : found)
      r.endpoints.push_back(entry.endpoint());
  }
  if (ec == net::error::timed_out) {
    r.status = refusal::resolve_timeout;
    r.detail = "resolving " + host + " took longer than " +
               std::to_string(o.resolve_timeout.count()) + " ms";
    r.endpoints.clear();
  } else if (ec || r.endpoints.empty()) {
    r.status = refusal::resolve_failed;
    r.detail = "cannot resolve " + host + ": " + (why.empty() ? "no addresses" : why);
    r.endpoints.clear();
  }
  co_return r;
}

awaitable<dial_result> dial(const egress_options& o, const std::string& host, std::uint16_t port,
                            const address_check& check, tcp::socket& sock) {
  dial_result r;
  auto ex = co_await net::this_coro::executor;
  resolved res = co_await resolve_destination(o, host, port);
  if (res.status != refusal::none) {
    r.status = res.status;
    r.detail = std::move(res.detail);
    co_return r;
  }
  const auto& endpoints = res.endpoints;

  // The egress policy on every address, before any socket exists: refused ones are skipped.
  std::vector<tcp::endpoint> allowed;
  for (const auto& ep : endpoints) {
    const auto v = check(ep);
    if (v.allowed()) {
      const tcp::endpoint normal(v.address, port);  // ::ffff:a.b.c.d is dialled as a.b.c.d
      if (std::find(allowed.begin(), allowed.end(), normal) == allowed.end())
        allowed.push_back(normal);
    } else {
      r.refused.emplace_back(ep, v);
    }
  }
  if (allowed.empty()) {
    // Every address refused. When each was refused by the same kind of CIDR rule, the
    // device hears that rule's reason; otherwise the policy's.
    const auto all = [&](egress_block b) {
      return std::all_of(r.refused.begin(), r.refused.end(),
                         [b](const auto& x) { return x.second.block == b; });
    };
    r.status = all(egress_block::rule_block)    ? refusal::blocked
               : all(egress_block::rule_bypass) ? refusal::bypass
                                                : refusal::forbidden_destination;
    r.rule = r.refused.front().second;
    r.detail = "every address of " + host + " is refused by the egress policy";
    co_return r;
  }

  r.status = refusal::no_egress_family;
  r.detail = host + " has no address of a family with an egress address";
  for (const auto& ep : allowed) {
    const auto& source = ep.address().is_v4() ? o.v4 : o.v6;
    if (!source) continue;
    boost::system::error_code e;
    if (sock.is_open()) sock.close(e);
    sock.open(ep.protocol(), e);
    // The source port is chosen at connect(), knowing the destination: tunnels to different
    // destinations share the ephemeral range instead of each taking a port of it at bind().
    if (!e) sock.set_option(bind_address_no_port(true), e);
    if (!e) sock.bind(tcp::endpoint(*source, 0), e);
    if (e) {
      // (EADDRNOTAVAIL here means the egress address is not on the host: not a shortage.)
      if (const auto what = local_shortage(e); what == "descriptors" || what == "memory") {
        r.status = refusal::gateway_overloaded;
        r.exhausted = what;
        r.detail = "no egress socket: " + e.message() + " (" + std::string(what) + ")";
        break;  // the gateway's own shortage: no other address will do better
      }
      r.status = refusal::connect_failed;
      r.detail = "cannot bind to egress address " + source->to_string() + ": " + e.message();
      continue;
    }
    watchdog guard(ex, o.connect_timeout, [&sock] {
      boost::system::error_code ignored;
      sock.close(ignored);
    });
    co_await sock.async_connect(ep, net::redirect_error(use_awaitable, e));
    if (guard.fired()) {
      r.status = refusal::connect_timeout;
      r.detail = "connecting to " + endpoint_text(ep) + " took longer than " +
                 std::to_string(o.connect_timeout.count()) + " ms";
      continue;
    }
    guard.disarm();
    if (local_shortage(e) == "ports") {
      // EADDRNOTAVAIL at connect(): every source port towards this destination is taken.
      r.status = refusal::gateway_overloaded;
      r.exhausted = "ports";
      r.detail = "no free source port on " + source->to_string() + " towards " + endpoint_text(ep) +
                 " (net.ipv4.ip_local_port_range)";
      continue;
    }
    if (e) {
      const auto what = local_shortage(e);
      r.status = what.empty() ? refusal::connect_failed : refusal::gateway_overloaded;
      r.exhausted = what;
      r.detail = "connecting to " + endpoint_text(ep) + " failed: " + e.message();
      continue;
    }
    r.status = refusal::none;
    r.detail.clear();
    sock.set_option(tcp::no_delay(true), e);  // relayed bytes go out as they come
    r.remote = ep;
    r.local = sock.local_endpoint(e);
    break;  // not co_return: the watchdog is block-scoped (GCC 12, see session.cpp)
  }
  if (r.status != refusal::none && sock.is_open()) {
    boost::system::error_code ignored;
    sock.close(ignored);
  }
  co_return r;
}

namespace {

template <class Stream>
tcp::socket& lowest(Stream& s) {
  if constexpr (std::is_same_v<Stream, tcp::socket>) {
    return s;
  } else {
    return s.next_layer();
  }
}

}  // namespace

template <class Stream>
awaitable<dial_result> proxy_connect(Stream& s, const std::string& authority,
                                     const std::string& basic_credentials,
                                     beast::flat_buffer& leftover,
                                     std::chrono::milliseconds timeout) {
  dial_result r;
  auto ex = co_await net::this_coro::executor;
  watchdog guard(ex, timeout, [&s] {
    boost::system::error_code ignored;
    lowest(s).close(ignored);
  });
  http::request<http::empty_body> req{http::verb::connect, authority, 11};
  req.set(http::field::host, authority);
  req.set(http::field::user_agent, "tunnelgate");
  if (!basic_credentials.empty()) {
    req.set(http::field::proxy_authorization, "Basic " + support::base64_encode(basic_credentials));
  }
  boost::system::error_code ec;
  co_await http::async_write(s, req, net::redirect_error(use_awaitable, ec));
  http::response_parser<http::empty_body> parser;
  parser.skip(true);  // a CONNECT response has no body
  parser.header_limit(16 * 1024);
  if (!ec)
    co_await http::async_read_header(s, leftover, parser, net::redirect_error(use_awaitable, ec));
  if (guard.fired()) {
    r.status = refusal::proxy_timeout;
    r.detail =
        "upstream proxy did not answer CONNECT within " + std::to_string(timeout.count()) + " ms";
    co_return r;
  }
  guard.disarm();
  if (ec) {
    r.status = refusal::proxy_failed;
    r.detail = "upstream proxy: " + ec.message();
    co_return r;
  }
  const auto status = parser.get().result_int();
  if (status < 200 || status > 299) {
    r.status = refusal::proxy_failed;
    r.detail = "upstream proxy answered " + std::to_string(status) + " " +
               std::string(parser.get().reason());
    co_return r;
  }
  co_return r;
}

template awaitable<dial_result> proxy_connect<tcp::socket>(tcp::socket&, const std::string&,
                                                           const std::string&, beast::flat_buffer&,
                                                           std::chrono::milliseconds);
template awaitable<dial_result> proxy_connect<ssl::stream<tcp::socket&>>(ssl::stream<tcp::socket&>&,
                                                                         const std::string&,
                                                                         const std::string&,
                                                                         beast::flat_buffer&,
                                                                         std::chrono::milliseconds);

}  // namespace tunnelgate::gateway
