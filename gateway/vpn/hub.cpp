#include "gateway/vpn/hub.hpp"

#include <unistd.h>

#include "gateway/dns.hpp"
#include "gateway/netops/netops.hpp"
#include "gateway/state.hpp"
#include "gateway/vpn/tunnel.hpp"
#include "gateway/watchdog.hpp"

namespace tunnelgate::gateway {

namespace {

using namespace std::chrono_literals;

/// TTL of the in-tunnel DNS answers (mapped and bypass). Short: a mapping is only as stable as
/// the gateway's view of the real addresses.
constexpr std::uint32_t answer_ttl = 60;
/// The port the DNS decision assumes (the login hosts are HTTPS); each flow is decided again
/// on its real port.
constexpr std::uint16_t dns_decision_port = 443;

net::ip::network_v4 v4net(const cidr& c) {
  return net::ip::network_v4(c.network.to_v4(), static_cast<unsigned short>(c.prefix));
}

net::ip::network_v6 v6net(const cidr& c) {
  return net::ip::network_v6(c.network.to_v6(), static_cast<unsigned short>(c.prefix));
}

std::optional<net::ip::address> destination_of(std::span<const std::uint8_t> p) {
  if (p.empty()) return std::nullopt;
  if ((p[0] >> 4) == 4 && p.size() >= 20) {
    return net::ip::address_v4(net::ip::address_v4::bytes_type{p[16], p[17], p[18], p[19]});
  }
  if ((p[0] >> 4) == 6 && p.size() >= 40) {
    net::ip::address_v6::bytes_type b;
    std::copy(p.begin() + 24, p.begin() + 40, b.begin());
    return net::ip::address_v6(b);
  }
  return std::nullopt;
}

vpn_drop drop_for(const dtr::decision& d) {
  if (d.refused()) return d.refusal == "no-rule-set" ? vpn_drop::no_rule_set : vpn_drop::blocked;
  switch (d.act) {
    case dtr::action::tunnel:
      return vpn_drop::none;
    case dtr::action::bypass:
      return vpn_drop::bypass;
    case dtr::action::proxy:
      return vpn_drop::proxy;
    case dtr::action::block:
      return vpn_drop::blocked;
  }
  return vpn_drop::blocked;
}

}  // namespace

std::string_view to_string(vpn_drop d) noexcept {
  switch (d) {
    case vpn_drop::none:
      return "ok";
    case vpn_drop::malformed:
      return "malformed";
    case vpn_drop::spoofed:
      return "spoofed-source";
    case vpn_drop::to_gateway:
      return "to-gateway";
    case vpn_drop::unmapped:
      return "unmapped";
    case vpn_drop::no_rule_set:
      return "no-rule-set";
    case vpn_drop::blocked:
      return "blocked";
    case vpn_drop::bypass:
      return "bypass";
    case vpn_drop::proxy:
      return "proxy-not-carried";
    case vpn_drop::not_tunnelled:
      return "not-tunnelled";
    case vpn_drop::egress_policy:
      return "forbidden-destination";
    case vpn_drop::ipv6:
      return "no-egress-family";
    case vpn_drop::flow_table_full:
      return "flow-table-full";
  }
  return "dropped";
}

vpn_hub::vpn_hub(shared_state* st, std::shared_ptr<const config> cfg, net::any_io_executor ex)
    : st_(st),
      cfg_(std::move(cfg)),
      vpn_(*cfg_->vpn),
      ex_(std::move(ex)),
      tunnel_address_(vpn_.tunnel_address()),
      pool_(v4net(vpn_.pool), {net::ip::address(tunnel_address_)},
            vpn_.pool6 ? std::optional(v6net(*vpn_.pool6)) : std::nullopt),
      cookies_(vpn_.cookie_ttl),
      map_(vpn::dns_map::options{v4net(vpn_.mapped_pool), {}, std::chrono::seconds(60)}) {}

vpn_hub::~vpn_hub() {
  stop();
}

std::shared_ptr<vpn_hub> vpn_hub::start(shared_state* st, std::shared_ptr<const config> cfg,
                                        const net::any_io_executor& ex) {
  auto h = std::shared_ptr<vpn_hub>(new vpn_hub(st, std::move(cfg), ex));
  h->setup();
  const auto log_end = [h](const std::exception_ptr& e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      h->st_->log->event(spdlog::level::err, "internal_error",
                         {{"where", "vpn"}, {"error", x.what()}});
    }
  };
  net::co_spawn(ex, tun_reader(h), log_end);
  if (h->dns_udp_) net::co_spawn(ex, dns_udp(h), log_end);
  if (h->dns_tcp_) net::co_spawn(ex, dns_tcp(h), log_end);
  net::co_spawn(ex, expiry(h), log_end);
  return h;
}

void vpn_hub::setup() {
  ops_ = netops::make_system_netops();
  ops_->cleanup_stale(vpn_.tun);
  netops::tun_spec ts;
  ts.name = vpn_.tun;
  ts.mtu = vpn_.mtu;
  ts.address4 = net::ip::network_v4(tunnel_address_, static_cast<unsigned short>(vpn_.pool.prefix));
  if (vpn_.pool6) {
    auto b = vpn_.pool6->network.to_v6().to_bytes();
    b[15] = static_cast<unsigned char>(b[15] | 1);
    ts.address6 = net::ip::network_v6(net::ip::address_v6(b),
                                      static_cast<unsigned short>(vpn_.pool6->prefix));
  }
  auto fd = ops_->create_tun(ts);
  netops::nat_spec ns;
  ns.tun_name = vpn_.tun;
  ns.pool4 = v4net(vpn_.pool);
  if (vpn_.pool6) ns.pool6 = v6net(*vpn_.pool6);
  ns.mapped_pool4 = v4net(vpn_.mapped_pool);
  ns.egress4 = cfg_->egress.v4->to_v4();
  if (cfg_->egress.v6) ns.egress6 = cfg_->egress.v6->to_v6();
  ns.egress_interface4 = vpn_.egress_interface;
  ns.egress_interface6 = vpn_.egress_interface;
  ops_->install_nat(ns);
  for (const auto& c : ops_->sysctl_changes()) {
    st_->log->event(spdlog::level::info, "vpn_sysctl",
                    {{"path", c.path}, {"previous", c.previous}, {"value", c.value}});
  }
  tun_fd_ = fd.get();
  tun_ = std::make_unique<net::posix::stream_descriptor>(ex_, fd.release());
  if (vpn_.dns) {
    // The in-tunnel DNS server, on the tunnel address only (it exists now, on the TUN).
    const net::ip::address a(tunnel_address_);
    dns_udp_ = std::make_unique<net::ip::udp::socket>(ex_);
    dns_udp_->open(net::ip::udp::v4());
    dns_udp_->bind({a, 53});
    dns_tcp_ = std::make_unique<tcp::acceptor>(ex_);
    dns_tcp_->open(tcp::v4());
    dns_tcp_->set_option(tcp::acceptor::reuse_address(true));
    dns_tcp_->bind({a, 53});
    dns_tcp_->listen();
  }
  timer_ = std::make_unique<net::steady_timer>(ex_);
  st_->log->event(spdlog::level::info, "vpn_started",
                  {{"tun", vpn_.tun},
                   {"address", tunnel_address_.to_string()},
                   {"pool", vpn_.pool.text()},
                   {"mapped_pool", vpn_.mapped_pool.text()},
                   {"sessions", pool_.size()},
                   {"dns", vpn_.dns ? tunnel_address_.to_string() + ":53" : "off"}});
}

void vpn_hub::stop() noexcept {
  if (stopped_.exchange(true)) return;
  boost::system::error_code ignored;
  if (tun_) tun_->close(ignored);
  if (dns_udp_) dns_udp_->close(ignored);
  if (dns_tcp_) dns_tcp_->close(ignored);
  if (timer_) timer_->cancel(ignored);
  if (!ops_) return;
  const auto problems = ops_->teardown();  // never throws
  try {
    for (const auto& problem : problems)
      st_->log->event(spdlog::level::err, "vpn_teardown_incomplete", {{"detail", problem}});
  } catch (...) {  // logging failed at exit: nothing left to tell it to
  }
}

// ---- sessions ---------------------------------------------------------------------------------

vpn_hub::attachment::~attachment() {
  if (hub_ == nullptr) return;
  std::unique_lock lock(hub_->links_mutex_);
  hub_->links_.erase(address_);
}

vpn_hub::attachment vpn_hub::attach(const std::shared_ptr<vpn_link>& link) {
  std::unique_lock lock(links_mutex_);
  links_[link->address] = link;
  return attachment(this, link->address);
}

std::shared_ptr<vpn_link> vpn_hub::link_for(const net::ip::address_v4& a) const {
  std::shared_lock lock(links_mutex_);
  const auto it = links_.find(a);
  return it == links_.end() ? nullptr : it->second.lock();
}

vpn_hub::tunnel_ticket& vpn_hub::tunnel_ticket::operator=(tunnel_ticket&& o) noexcept {
  if (this != &o) {
    release();
    hub_ = std::exchange(o.hub_, nullptr);
    udid_ = std::move(o.udid_);
  }
  return *this;
}

void vpn_hub::tunnel_ticket::release() noexcept {
  auto* h = std::exchange(hub_, nullptr);
  if (h == nullptr) return;
  std::lock_guard lock(h->tunnels_mutex_);
  if (auto it = h->tunnels_.find(udid_); it != h->tunnels_.end() && --it->second <= 0)
    h->tunnels_.erase(it);
}

vpn_hub::tunnel_ticket vpn_hub::take_tunnel(const std::string& udid) {
  std::lock_guard lock(tunnels_mutex_);
  auto& n = tunnels_[udid];
  if (n >= static_cast<int>(vpn_.max_tunnels_per_device)) {
    if (n == 0) tunnels_.erase(udid);
    return {};
  }
  ++n;
  return tunnel_ticket(this, udid);
}

bool vpn_hub::to_tun(std::span<const std::uint8_t> packet) {
  // One write per packet; the TUN takes whole packets, from any thread.
  const auto n = ::write(tun_fd_, packet.data(), packet.size());
  if (n != static_cast<ssize_t>(packet.size())) {
    ++tun_errors_;
    return false;
  }
  ++packets_up_;
  return true;
}

void vpn_hub::count_drop(vpn_drop d) {
  drops_.inc({std::string(to_string(d))});
}

awaitable<void> vpn_hub::back_off(std::shared_ptr<vpn_hub> self) {
  net::steady_timer t(self->ex_, std::chrono::milliseconds(200));
  boost::system::error_code ignored;
  co_await t.async_wait(net::redirect_error(use_awaitable, ignored));
}

awaitable<void> vpn_hub::tun_reader(std::shared_ptr<vpn_hub> self) {
  const std::size_t room = self->vpn_.mtu + 64;
  std::vector<std::uint8_t> buf;
  boost::system::error_code ec;
  std::uint64_t failures = 0;
  while (!self->stopped_) {
    buf.assign(8 + room, 0);
    const std::size_t n = co_await self->tun_->async_read_some(
        net::buffer(buf.data() + 8, room), net::redirect_error(use_awaitable, ec));
    if (ec) {
      if (self->stopped_ || ec == net::error::operation_aborted ||
          ec == net::error::bad_descriptor) {
        break;
      }
      ++self->tun_errors_;
      if (failures++ == 0) {
        self->st_->log->event(spdlog::level::err, "vpn_tun_error",
                              {{"tun", self->vpn_.tun}, {"error", ec.message()}});
      }
      co_await back_off(self);
      continue;
    }
    failures = 0;
    buf.resize(8 + n);
    const auto dst = destination_of({buf.data() + 8, n});
    std::shared_ptr<vpn_link> link;
    if (dst && dst->is_v4()) link = self->link_for(dst->to_v4());
    if (!link) {
      ++self->no_session_;  // the session ended while the packet was on its way
      continue;
    }
    if (link->in_flight.load() + n > max_in_flight) {
      self->count_backlog_drop();  // the device does not read: do not queue work for it
      continue;
    }
    link->in_flight += n;
    ++self->packets_down_;
    net::post(link->executor, [link, b = std::move(buf), n]() mutable {
      link->in_flight -= n;
      if (link->deliver) link->deliver(std::move(b));  // cleared when the tunnel ended
    });
  }
}

// ---- the decision on a new flow ---------------------------------------------------------------

vpn_verdict vpn_hub::decide(const vpn::packet::info& p, const vpn_link& link,
                            const std::shared_ptr<const runtime>& rt) {
  vpn_verdict v;
  const std::uint16_t port = p.has_ports ? p.dst_port : 0;
  if (p.dst.is_v4() && p.dst.to_v4() == tunnel_address_) {
    const bool dns =
        vpn_.dns && p.has_ports && port == 53 &&
        (p.protocol == vpn::packet::proto::udp || p.protocol == vpn::packet::proto::tcp);
    if (!dns) v.drop = vpn_drop::to_gateway;
    v.real = p.dst;
    v.detail = dns ? "in-tunnel DNS" : "only DNS is served on the tunnel address";
    return v;
  }
  if (p.dst.is_v6() && !rt->egress.v6) {
    v.drop = vpn_drop::ipv6;
    return v;
  }
  const auto& rules = *rt->cfg->rules;
  if (p.dst.is_v4() && map_.in_pool(p.dst.to_v4())) {
    v.mapping = map_.open_flow(p.dst.to_v4());
    if (!v.mapping) {
      v.drop = vpn_drop::unmapped;
      v.detail = "no live DNS mapping for this address";
      return v;
    }
    const auto& m = v.mapping.mapping();
    v.host = m.name;
    // The host name decides again, on the port really used and the rules in force now.
    const auto d = rules.evaluate({m.name, port, link.platform, {}});
    v.rule_set = d.set != nullptr ? d.set->name : "-";
    v.rank = d.rank;
    v.line = d.line;
    if (d.refused() || d.act != dtr::action::tunnel) {
      v.drop = vpn_drop::not_tunnelled;
      v.detail = std::string(d.refused() ? d.refusal : dtr::to_string(d.act));
      return v;
    }
    for (const auto& r : m.real) {
      if (r.is_v4()) {
        v.real = r;
        break;
      }
    }
  } else {
    const auto text = p.dst.to_string();
    const auto d = rules.evaluate({text, port, link.platform, {}});
    v.rule_set = d.set != nullptr ? d.set->name : "-";
    v.rank = d.rank;
    v.line = d.line;
    v.drop = drop_for(d);
    v.real = p.dst;
    if (v.drop != vpn_drop::none) return v;
  }
  // The egress policy on the address really used (loopback, link-local, the host's own,
  // private ranges not named by a rule, egress.deny; and CIDR rules on the real address).
  const auto e = rt->policy->check({v.real, port}, rules, link.platform, {});
  if (!e.allowed()) {
    v.drop = vpn_drop::egress_policy;
    v.detail = std::string(to_string(e.block));
  }
  return v;
}

// ---- split tunnelling -------------------------------------------------------------------------

vpn_hub::split vpn_hub::split_for(const dtr::policy& rules, dtr::platform plat,
                                  const cidr& mapped_pool) {
  split s;
  const auto* set = rules.select(plat, {});
  if (set == nullptr) return s;
  if (set->default_action == dtr::action::tunnel) s.full_tunnel = true;
  for (const auto& r : set->rules) {
    for (const auto& d : r.destinations) {
      // `tunnel *`: every name is tunnelled, so every name must come to the gateway's DNS.
      if (d.k == dtr::destination::kind::any_host && r.act == dtr::action::tunnel)
        s.full_tunnel = true;
    }
  }
  s.include_v4.push_back(v4net(mapped_pool));
  for (const auto& r : set->rules) {
    for (const auto& d : r.destinations) {
      if (d.k == dtr::destination::kind::cidr && r.act == dtr::action::tunnel) {
        if (!d.network.v6) {
          const net::ip::address_v4 a(net::ip::address_v4::bytes_type{
              d.network.bytes[0], d.network.bytes[1], d.network.bytes[2], d.network.bytes[3]});
          const net::ip::network_v4 n(a, static_cast<unsigned short>(d.prefix));
          if (std::find(s.include_v4.begin(), s.include_v4.end(), n) == s.include_v4.end())
            s.include_v4.push_back(n);
        } else {
          net::ip::address_v6::bytes_type b;
          std::copy(d.network.bytes.begin(), d.network.bytes.end(), b.begin());
          const net::ip::network_v6 n(net::ip::address_v6(b),
                                      static_cast<unsigned short>(d.prefix));
          if (std::find(s.include_v6.begin(), s.include_v6.end(), n) == s.include_v6.end())
            s.include_v6.push_back(n);
        }
      } else if (d.k != dtr::destination::kind::cidr && d.k != dtr::destination::kind::any_host &&
                 (r.act == dtr::action::tunnel || r.act == dtr::action::proxy)) {
        // exact: the name; *.suffix and *suffix: the domain they end with. A string suffix
        // that reaches into a label (*okta.com also matches notokta.com) cannot be said as a
        // DNS domain: only names under okta.com come to our DNS (docs/vpn.md).
        std::string domain = d.value;
        if (!domain.empty() && domain.front() == '.') domain.erase(0, 1);
        // Only what a DNS search domain can say (dtr allows `_` in names, headers do not).
        if (vpn::tunnel::valid_domain(domain) &&
            std::find(s.dns.begin(), s.dns.end(), domain) == s.dns.end()) {
          s.dns.push_back(domain);
        }
      }
    }
  }
  return s;
}

// ---- the in-tunnel DNS server -------------------------------------------------------------------

void vpn_hub::apply(const std::vector<vpn::dns_map_change>& changes) {
  for (const auto& c : changes) {
    try {
      if (c.what == vpn::dns_map_change::kind::remove) {
        ops_->map_remove(c.mapped);
        continue;
      }
      for (const auto& r : c.real) {
        if (!r.is_v4()) continue;
        ops_->map_add(c.mapped, r.to_v4());
        break;
      }
    } catch (const std::exception& e) {
      st_->log->event(spdlog::level::err, "vpn_map_failed",
                      {{"mapped", c.mapped.to_string()}, {"name", c.name}, {"error", e.what()}});
    }
  }
}

awaitable<std::vector<std::uint8_t>> vpn_hub::answer(const std::vector<std::uint8_t>& query,
                                                     const net::ip::address& client) {
  std::vector<std::uint8_t> out;
  const auto q = dns::parse_query(query);
  const auto link = client.is_v4() ? link_for(client.to_v4()) : nullptr;
  if (!q || !link) {
    // Not a query, or not from a device's tunnel address (a neighbour routing to the tunnel
    // address): no answer, nothing to log.
    ++dns_dropped_;
    co_return out;
  }
  int rcode = 0;
  std::vector<net::ip::address> addresses;
  std::string decision;
  std::string detail;
  const auto rt = st_->current();
  const auto& rules = *rt->cfg->rules;
  const auto d =
      link ? rules.evaluate({q->name, dns_decision_port, link->platform, {}}) : dtr::decision{};
  const bool address_question = q->type == 1 || q->type == 28;
  if (d.refused()) {
    rcode = 5;
    decision = std::string(d.refusal);
  } else if (d.act == dtr::action::block) {
    rcode = 3;
    decision = "blocked";
  } else if (d.act == dtr::action::proxy) {
    rcode = 5;
    decision = "proxy-not-carried";
    detail = "proxy rules are not carried by the VPN; use the per-app proxy";
  } else if (!address_question || (d.act == dtr::action::tunnel && q->type != 1)) {
    decision = d.act == dtr::action::tunnel ? "tunnel" : "bypass";  // NOERROR, no records
  } else {
    // bypass: the real addresses (the device goes there itself); tunnel: a mapped one.
    resolved res = co_await resolve_destination(rt->egress, q->name, dns_decision_port);
    if (res.status != refusal::none) {
      rcode = res.status == refusal::resolve_failed ? 3 : 2;
      decision = std::string(to_string(res.status));
      detail = res.detail;
    } else if (d.act == dtr::action::bypass) {
      decision = "bypass";
      for (const auto& ep : res.endpoints)
        addresses.push_back(ep.address());
    } else {
      decision = "tunnel";
      std::vector<net::ip::address> real;
      for (const auto& ep : res.endpoints) {
        if (!ep.address().is_v4()) continue;
        const auto e = rt->policy->check(ep, rules, link->platform, {});
        if (e.allowed()) {
          real.push_back(e.address);
        } else {
          detail += (detail.empty() ? "" : ", ") + ep.address().to_string() + " (" +
                    std::string(to_string(e.block)) + ")";
        }
      }
      if (real.empty()) {
        rcode = 3;
        decision = "forbidden-destination";
      } else {
        auto m = map_.map(q->name, real, vpn::rule_ref{d.set->name, d.rank, d.line},
                          std::chrono::seconds(answer_ttl));
        if (m.err != vpn::dns_map::error::none) {
          rcode = 2;
          decision = std::string(vpn::dns_map::to_string(m.err));
        } else {
          apply(m.changes);
          addresses.push_back(m.mapped);
          if (!m.changes.empty()) {
            st_->log->event(spdlog::level::info, "vpn_dns_mapped",
                            {{"udid", link->udid},
                             {"name", q->name},
                             {"mapped", m.mapped.to_string()},
                             {"real", real.front().to_string()},
                             {"set", d.set->name},
                             {"rank", d.rank == 0 ? "default" : std::to_string(d.rank)},
                             {"line", d.line}});
          }
        }
      }
    }
  }
  dns_answers_.inc({decision});
  std::uint64_t suppressed = 0;
  if (rcode != 0 && dns_log_.take(suppressed)) {
    st_->log->event(spdlog::level::info, "vpn_dns_refused",
                    {{"udid", link->udid},
                     {"client", client.to_string()},
                     {"name", q->name},
                     {"type", q->type},
                     {"reason", decision},
                     {"rcode", rcode},
                     {"detail", detail},
                     {"suppressed_before", suppressed}});
  }
  out = dns::make_response(*q, rcode, addresses, answer_ttl);
  co_return out;
}

/// Queries answered at once over UDP; more are dropped (the device's resolver asks again).
constexpr int max_dns_in_flight = 64;
constexpr int max_dns_tcp_clients = 32;

awaitable<void> vpn_hub::dns_udp(std::shared_ptr<vpn_hub> self) {
  std::array<std::uint8_t, 1500> buf{};
  net::ip::udp::endpoint from;
  boost::system::error_code ec;
  while (!self->stopped_) {
    const std::size_t n = co_await self->dns_udp_->async_receive_from(
        net::buffer(buf), from, net::redirect_error(use_awaitable, ec));
    if (ec) {
      if (self->stopped_ || ec == net::error::operation_aborted) break;
      co_await back_off(self);
      continue;
    }
    if (self->dns_in_flight_ >= max_dns_in_flight) {
      ++self->dns_dropped_;
      continue;
    }
    // Each query answers on its own, so a name whose resolution times out holds up nobody.
    ++self->dns_in_flight_;
    net::co_spawn(
        self->ex_,
        dns_udp_query(self, {buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n)}, from),
        [self](const std::exception_ptr&) { --self->dns_in_flight_; });
  }
}

awaitable<void> vpn_hub::dns_udp_query(std::shared_ptr<vpn_hub> self,
                                       std::vector<std::uint8_t> query,
                                       net::ip::udp::endpoint from) {
  const auto client = from.address();
  std::vector<std::uint8_t> a = co_await self->answer(query, client);
  if (a.size() > 512) {
    // Over UDP a classic answer stops at 512 bytes: the header and the question, with TC set,
    // so the device asks again over TCP.
    if (const auto q = dns::parse_query(query)) {
      a = dns::make_response(*q, a[3] & 0x0f, {}, answer_ttl);
      a[2] = static_cast<std::uint8_t>(a[2] | 0x02);
    }
  }
  boost::system::error_code ec;
  if (!a.empty() && !self->stopped_) self->dns_udp_->send_to(net::buffer(a), from, 0, ec);
}

awaitable<void> vpn_hub::dns_tcp(std::shared_ptr<vpn_hub> self) {
  boost::system::error_code ec;
  while (!self->stopped_) {
    tcp::socket s = co_await self->dns_tcp_->async_accept(net::redirect_error(use_awaitable, ec));
    if (ec) {
      if (self->stopped_ || ec == net::error::operation_aborted) break;
      co_await back_off(self);  // EMFILE and the like: do not spin
      continue;
    }
    if (self->dns_tcp_clients_ >= max_dns_tcp_clients) {
      ++self->dns_dropped_;
      s.close(ec);
      continue;
    }
    ++self->dns_tcp_clients_;
    net::co_spawn(self->ex_, dns_tcp_client(self, std::move(s)),
                  [self](const std::exception_ptr&) { --self->dns_tcp_clients_; });
  }
}

awaitable<void> vpn_hub::dns_tcp_client(std::shared_ptr<vpn_hub> self, tcp::socket s) {
  auto ex = co_await net::this_coro::executor;
  boost::system::error_code ec;
  const auto peer = s.remote_endpoint(ec);
  std::array<std::uint8_t, 2> len{};
  std::vector<std::uint8_t> q;
  std::vector<std::uint8_t> a;
  // One deadline for the whole exchange: a device cannot hold the DNS server's sockets.
  watchdog guard(ex, std::chrono::seconds(10), [&s] {
    boost::system::error_code ignored;
    s.close(ignored);
  });
  for (int i = 0; i < 16 && !ec; ++i) {
    co_await net::async_read(s, net::buffer(len), net::redirect_error(use_awaitable, ec));
    const std::size_t n = (std::size_t{len[0]} << 8) | len[1];
    if (ec || n < 12) break;
    q.assign(n, 0);
    co_await net::async_read(s, net::buffer(q), net::redirect_error(use_awaitable, ec));
    if (ec) break;
    const auto client = peer.address();
    a = co_await self->answer(q, client);
    if (a.empty()) break;
    const std::array<std::uint8_t, 2> out_len{static_cast<std::uint8_t>(a.size() >> 8),
                                              static_cast<std::uint8_t>(a.size() & 0xff)};
    const std::array<net::const_buffer, 2> bufs{net::buffer(out_len), net::buffer(a)};
    co_await net::async_write(s, bufs, net::redirect_error(use_awaitable, ec));
  }
  guard.disarm();
  s.close(ec);
}

awaitable<void> vpn_hub::expiry(std::shared_ptr<vpn_hub> self) {
  boost::system::error_code ec;
  while (!self->stopped_) {
    self->timer_->expires_after(5s);
    co_await self->timer_->async_wait(net::redirect_error(use_awaitable, ec));
    if (self->stopped_) break;
    try {
      self->apply(self->map_.expire());
      self->cookies_.sweep();
    } catch (const std::exception& e) {
      // Logged and tried again at the next tick: expiry must not stop for good.
      self->st_->log->event(spdlog::level::err, "internal_error",
                            {{"where", "vpn expiry"}, {"error", e.what()}});
    }
  }
}

std::string vpn_hub::render_metrics() const {
  std::string out;
  drops_.render(out);
  dns_answers_.render(out);
  const auto counter = [&out](const char* name, const char* help, std::uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name +
           " " + std::to_string(v) + "\n";
  };
  const auto gauge = [&out](const char* name, const char* help, std::uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name +
           " " + std::to_string(v) + "\n";
  };
  counter("tunnelgate_vpn_packets_up_total", "Packets from devices written to the TUN",
          packets_up_.load());
  counter("tunnelgate_vpn_packets_down_total", "Packets from the TUN sent to devices",
          packets_down_.load());
  counter("tunnelgate_vpn_packets_no_session_total",
          "Packets from the TUN for an address no session holds", no_session_.load());
  counter("tunnelgate_vpn_tun_errors_total", "Failed TUN reads and writes", tun_errors_.load());
  counter("tunnelgate_vpn_device_backlog_drops_total",
          "Packets for a device dropped because it does not read fast enough",
          device_backlog_drops_.load());
  counter("tunnelgate_vpn_dns_dropped_total",
          "DNS queries not answered (not from a device, over the concurrency limits)",
          dns_dropped_.load());
  gauge("tunnelgate_vpn_addresses_in_use", "Client addresses leased", pool_.in_use());
  gauge("tunnelgate_vpn_addresses_total", "Client addresses in the pool", pool_.size());
  gauge("tunnelgate_vpn_mapped_names", "Host names with a mapped address", map_.size());
  return out;
}

}  // namespace tunnelgate::gateway
