#include "gateway/dns.hpp"

#include <arpa/nameser.h>
#include <openssl/rand.h>
#include <resolv.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>

#include "gateway/watchdog.hpp"

namespace tunnelgate::gateway::dns {

namespace {

std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

bool is_localhost(const std::string& name) {
  const auto n = lower(name);
  return n == "localhost" || (n.size() > 10 && n.ends_with(".localhost"));
}

std::uint16_t random_id() {
  std::uint16_t id = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&id), sizeof id) != 1) {
    throw std::runtime_error("RAND_bytes failed: no randomness for DNS query ids");
  }
  return id;
}

}  // namespace

std::vector<std::uint8_t> make_query(std::uint16_t id, const std::string& name, rr_type type) {
  const std::string n = lower(name);
  if (n.empty() || n.size() > 253) return {};
  std::vector<std::uint8_t> q = {static_cast<std::uint8_t>(id >> 8),
                                 static_cast<std::uint8_t>(id & 0xff),
                                 0x01,  // RD
                                 0x00,
                                 0,
                                 1,  // QDCOUNT
                                 0,
                                 0,
                                 0,
                                 0,
                                 0,
                                 0};
  std::size_t start = 0;
  while (start <= n.size()) {
    const auto dot = std::min(n.find('.', start), n.size());
    const auto len = dot - start;
    if (len == 0 || len > 63) return {};
    q.push_back(static_cast<std::uint8_t>(len));
    q.insert(q.end(), n.begin() + static_cast<std::ptrdiff_t>(start),
             n.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  q.push_back(0);
  const auto t = static_cast<std::uint16_t>(type);
  q.insert(q.end(), {static_cast<std::uint8_t>(t >> 8), static_cast<std::uint8_t>(t & 0xff), 0,
                     1});  // class IN
  return q;
}

answer parse_answer(std::span<const std::uint8_t> msg, std::uint16_t id, const std::string& name,
                    rr_type type) {
  answer a;
  ns_msg m;
  if (msg.size() < 12 || msg.size() > 65535 ||
      ns_initparse(msg.data(), static_cast<int>(msg.size()), &m) != 0) {
    a.detail = "not a DNS message";
    return a;
  }
  if (ns_msg_id(m) != id || ns_msg_getflag(m, ns_f_qr) == 0) {
    a.detail = "not the answer to our query";
    return a;
  }
  if (ns_msg_count(m, ns_s_qd) != 1) {
    a.detail = "answer without exactly one question";
    return a;
  }
  ns_rr q;
  if (ns_parserr(&m, ns_s_qd, 0, &q) != 0 || lower(ns_rr_name(q)) != lower(name) ||
      ns_rr_type(q) != static_cast<int>(type) || ns_rr_class(q) != ns_c_in) {
    a.detail = "the answer is for another question";
    return a;
  }
  if (ns_msg_getflag(m, ns_f_tc) != 0) {
    a.result = answer::kind::truncated;
    a.detail = "truncated answer (TCP fallback is not supported)";
    return a;
  }
  const int rcode = ns_msg_getflag(m, ns_f_rcode);
  if (rcode == ns_r_nxdomain) {
    a.result = answer::kind::no_name;
    a.detail = "no such name (NXDOMAIN)";
    return a;
  }
  if (rcode != ns_r_noerror) {
    a.result = answer::kind::failure;
    a.detail = "server answered rcode " + std::to_string(rcode);
    return a;
  }
  // Collect the answer section, then follow CNAMEs from the question's name.
  std::map<std::string, std::string> cnames;
  std::vector<std::pair<std::string, net::ip::address>> records;
  const int count = ns_msg_count(m, ns_s_an);
  for (int i = 0; i < count; ++i) {
    ns_rr rr;
    if (ns_parserr(&m, ns_s_an, i, &rr) != 0) {
      a.result = answer::kind::malformed;
      a.detail = "malformed answer record";
      return a;
    }
    if (ns_rr_class(rr) != ns_c_in) continue;
    const std::string owner = lower(ns_rr_name(rr));
    if (ns_rr_type(rr) == ns_t_cname) {
      std::array<char, NS_MAXDNAME> target{};
      if (ns_name_uncompress(ns_msg_base(m), ns_msg_end(m), ns_rr_rdata(rr), target.data(),
                             target.size()) < 0) {
        a.result = answer::kind::malformed;
        a.detail = "malformed CNAME record";
        return a;
      }
      cnames[owner] = lower(target.data());
    } else if (ns_rr_type(rr) == ns_t_a && type == rr_type::a && ns_rr_rdlen(rr) == 4) {
      net::ip::address_v4::bytes_type b;
      std::memcpy(b.data(), ns_rr_rdata(rr), 4);
      records.emplace_back(owner, net::ip::address_v4(b));
    } else if (ns_rr_type(rr) == ns_t_aaaa && type == rr_type::aaaa && ns_rr_rdlen(rr) == 16) {
      net::ip::address_v6::bytes_type b;
      std::memcpy(b.data(), ns_rr_rdata(rr), 16);
      records.emplace_back(owner, net::ip::address_v6(b));
    }
  }
  std::string target = lower(name);
  for (int hops = 0; hops < 8; ++hops) {
    auto it = cnames.find(target);
    if (it == cnames.end()) break;
    target = it->second;
  }
  for (const auto& [owner, addr] : records) {
    if (owner == target) a.addresses.push_back(addr);
  }
  a.result = answer::kind::addresses;
  return a;
}

std::optional<question> parse_query(std::span<const std::uint8_t> msg) {
  ns_msg m;
  if (msg.size() < 12 || msg.size() > 65535 ||
      ns_initparse(msg.data(), static_cast<int>(msg.size()), &m) != 0) {
    return std::nullopt;
  }
  if (ns_msg_getflag(m, ns_f_qr) != 0 || ns_msg_getflag(m, ns_f_opcode) != ns_o_query ||
      ns_msg_count(m, ns_s_qd) != 1 || ns_msg_count(m, ns_s_an) != 0) {
    return std::nullopt;
  }
  ns_rr rr;
  if (ns_parserr(&m, ns_s_qd, 0, &rr) != 0 || ns_rr_class(rr) != ns_c_in) return std::nullopt;
  question q;
  q.id = ns_msg_id(m);
  q.name = lower(ns_rr_name(rr));
  q.type = static_cast<std::uint16_t>(ns_rr_type(rr));
  q.recursion_desired = ns_msg_getflag(m, ns_f_rd) != 0;
  if (q.name.empty() || q.name.size() > 253) return std::nullopt;
  return q;
}

std::vector<std::uint8_t> make_response(const question& q, int rcode,
                                        const std::vector<net::ip::address>& addresses,
                                        std::uint32_t ttl) {
  std::vector<std::uint8_t> out = make_query(q.id, q.name, rr_type::a);
  if (out.empty()) return out;
  // The question as asked (make_query wrote type A): patch the type.
  out[out.size() - 4] = static_cast<std::uint8_t>(q.type >> 8);
  out[out.size() - 3] = static_cast<std::uint8_t>(q.type & 0xff);
  out[2] = static_cast<std::uint8_t>(0x84 | (q.recursion_desired ? 0x01 : 0x00));  // QR AA RD
  out[3] = static_cast<std::uint8_t>(0x80 | (rcode & 0x0f));                       // RA rcode
  std::uint16_t count = 0;
  for (const auto& a : addresses) {
    const bool v4 = a.is_v4();
    if ((v4 && q.type != ns_t_a) || (!v4 && q.type != ns_t_aaaa)) continue;
    // Owner: a pointer to the question's name at offset 12.
    out.insert(out.end(),
               {0xc0, 0x0c, 0, static_cast<std::uint8_t>(q.type), 0, 1,
                static_cast<std::uint8_t>(ttl >> 24), static_cast<std::uint8_t>((ttl >> 16) & 0xff),
                static_cast<std::uint8_t>((ttl >> 8) & 0xff), static_cast<std::uint8_t>(ttl & 0xff),
                0, static_cast<std::uint8_t>(v4 ? 4 : 16)});
    if (v4) {
      const auto b = a.to_v4().to_bytes();
      out.insert(out.end(), b.begin(), b.end());
    } else {
      const auto b = a.to_v6().to_bytes();
      out.insert(out.end(), b.begin(), b.end());
    }
    ++count;
  }
  out[6] = static_cast<std::uint8_t>(count >> 8);
  out[7] = static_cast<std::uint8_t>(count & 0xff);
  return out;
}

awaitable<result> resolve(const std::vector<udp::endpoint>& servers, const std::string& name,
                          bool want_v4, bool want_v6, std::chrono::milliseconds timeout) {
  result r;
  if (is_localhost(name)) {
    if (want_v4) r.addresses.emplace_back(net::ip::address_v4::loopback());
    if (want_v6) r.addresses.emplace_back(net::ip::address_v6::loopback());
    co_return r;
  }
  struct pending {
    rr_type type;
    std::uint16_t id = 0;
    std::vector<std::uint8_t> query;
    bool done = false;
  };
  std::vector<pending> queries;
  if (want_v4) queries.push_back(pending{rr_type::a, 0, {}, false});
  if (want_v6) queries.push_back(pending{rr_type::aaaa, 0, {}, false});
  for (auto& q : queries) {
    q.id = random_id();
    q.query = make_query(q.id, name, q.type);
    if (q.query.empty()) {
      r.ec = net::error::host_not_found;
      r.detail = "'" + name + "' is not a valid DNS name";
      co_return r;
    }
  }

  auto ex = co_await net::this_coro::executor;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool no_name = false;
  bool timed_out = false;
  std::string failures;
  std::array<std::uint8_t, 4096> buf{};
  udp::endpoint from;
  // Each server gets an equal share of what is left, at least 300 ms, so one silent server
  // cannot use up the whole deadline while the next one would answer.
  for (std::size_t s = 0; s < servers.size() && !no_name; ++s) {
    const auto& server = servers[s];
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    const auto share =
        std::max(left / static_cast<long>(servers.size() - s), std::chrono::milliseconds(300));
    udp::socket sock(ex);
    boost::system::error_code ec;
    sock.open(server.protocol(), ec);
    for (auto& q : queries) {
      if (!q.done && !ec) sock.send_to(net::buffer(q.query), server, 0, ec);
    }
    if (ec) {
      failures += server.address().to_string() + ": " + ec.message() + "; ";
      continue;
    }
    watchdog guard(ex, std::min(share, left), [&sock] {
      boost::system::error_code ignored;
      sock.close(ignored);
    });
    while (std::any_of(queries.begin(), queries.end(), [](const pending& p) { return !p.done; })) {
      const std::size_t n = co_await sock.async_receive_from(
          net::buffer(buf), from, net::redirect_error(use_awaitable, ec));
      if (ec) break;
      if (from != server) continue;  // only the server we asked may answer
      const std::span<const std::uint8_t> msg(buf.data(), n);
      for (auto& q : queries) {
        if (q.done) continue;
        auto a = parse_answer(msg, q.id, name, q.type);
        if (a.result == answer::kind::malformed && a.detail == "not the answer to our query")
          continue;
        if (a.result == answer::kind::addresses) {
          q.done = true;
          r.addresses.insert(r.addresses.end(), a.addresses.begin(), a.addresses.end());
        } else if (a.result == answer::kind::no_name) {
          q.done = true;
          no_name = true;
        } else {
          // SERVFAIL, truncation, garbage: this server is no good for this query.
          failures += server.address().to_string() + ": " + a.detail + "; ";
          q.done = true;  // for this server; re-armed below for the next one
          q.id = 0;
        }
        break;
      }
    }
    if (guard.fired()) timed_out = true;
    // Queries a server failed (id 0) go to the next server with a fresh id.
    for (auto& q : queries) {
      if (q.id == 0 || (!q.done && !no_name)) {
        q.done = false;
        q.id = random_id();
        q.query = make_query(q.id, name, q.type);
      }
    }
    if (std::all_of(queries.begin(), queries.end(), [](const pending& p) { return p.done; })) break;
  }
  const bool all_done =
      std::all_of(queries.begin(), queries.end(), [](const pending& p) { return p.done; });
  if (!r.addresses.empty()) {
    r.ec = {};
  } else if (no_name || all_done) {
    r.ec = net::error::host_not_found;
    r.detail = no_name ? "no such name (NXDOMAIN)" : "the name has no address records";
  } else if (timed_out) {
    r.ec = net::error::timed_out;
    r.detail = "no answer from the name servers within " + std::to_string(timeout.count()) + " ms";
  } else {
    r.ec = net::error::host_not_found;
    r.detail = "every name server failed: " + failures;
  }
  co_return r;
}

}  // namespace tunnelgate::gateway::dns
