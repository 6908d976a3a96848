#include "gateway/vpn/dns_map.hpp"

#include <algorithm>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

#include "gateway/vpn/pool.hpp"

namespace tunnelgate::gateway::vpn {

using boost::asio::ip::address_v4;

struct dns_map::state {
  struct entry {
    std::string name;
    address_pool::lease lease;
    std::vector<boost::asio::ip::address> real;
    rule_ref rule;
    clock::time_point expires;
    std::size_t open_flows = 0;
  };

  state(options o, now_fn n)
      : opts(std::move(o)),
        now(n ? std::move(n) : now_fn([] { return clock::now(); })),
        pool(opts.pool, addresses(opts.reserved)) {}

  static std::vector<boost::asio::ip::address> addresses(const std::vector<address_v4>& v4) {
    return {v4.begin(), v4.end()};
  }

  const options opts;
  const now_fn now;
  address_pool pool;

  mutable std::mutex mutex;
  // All below guarded by mutex. Entries are owned by by_name (node-based: pointers to them stay
  // valid until erased); by_address indexes the same entries by mapped address. `idle` holds
  // (expires, address) for exactly the entries without open flows, earliest expiry first: it
  // is both the expiry queue and the eviction order.
  std::unordered_map<std::string, entry> by_name;
  std::unordered_map<std::uint32_t, entry*> by_address;
  std::set<std::pair<clock::time_point, std::uint32_t>> idle;

  static dns_mapping view(const entry& e) {
    return {e.name, e.lease.v4(), e.real, e.rule, e.expires, e.open_flows};
  }

  // Erases `e` (which has no open flow); its address returns to the pool.
  void remove(entry& e, std::vector<dns_map_change>& changes) {
    const std::uint32_t a = e.lease.v4().to_uint();
    idle.erase({e.expires, a});
    changes.push_back({dns_map_change::kind::remove, e.lease.v4(), {}, e.name});
    by_address.erase(a);
    const std::string name = e.name;  // e dies with its node
    by_name.erase(name);
  }

  void close_flow(const address_v4& mapped) noexcept {
    std::lock_guard lock(mutex);
    const auto it = by_address.find(mapped.to_uint());
    if (it == by_address.end()) return;  // cannot happen: entries with flows are never removed
    entry& e = *it->second;
    if (e.open_flows == 0) return;
    if (--e.open_flows == 0) {
      e.expires = std::max(e.expires, now() + opts.linger);
      idle.insert({e.expires, mapped.to_uint()});
    }
  }
};

dns_map::dns_map(options opts, now_fn now)
    : state_(std::make_shared<state>(std::move(opts), std::move(now))) {}

dns_map::~dns_map() = default;

std::string_view dns_map::to_string(error e) noexcept {
  switch (e) {
    case error::none:
      return "ok";
    case error::bad_name:
      return "bad_name";
    case error::no_addresses:
      return "no_addresses";
    case error::exhausted:
      return "exhausted";
  }
  return "unknown";
}

std::string dns_map::normalise_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return {};
  std::string out;
  out.reserve(name.size());
  std::size_t label = 0;
  for (const char c : name) {
    if (c == '.') {
      if (label == 0) return {};
      label = 0;
      out.push_back(c);
      continue;
    }
    if (++label > 63) return {};
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return {};
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  if (label == 0) return {};  // "a.example.." ends in an empty label
  return out;
}

dns_map::map_result dns_map::map(std::string_view name, std::vector<boost::asio::ip::address> real,
                                 rule_ref rule, std::chrono::seconds ttl) {
  map_result r;
  std::string key = normalise_name(name);
  if (key.empty()) {
    r.err = error::bad_name;
    return r;
  }
  if (real.empty()) {
    r.err = error::no_addresses;
    return r;
  }
  ttl = std::max(ttl, std::chrono::seconds{0});

  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  const auto now = s.now();

  if (const auto it = s.by_name.find(key); it != s.by_name.end()) {
    auto& e = it->second;
    const std::uint32_t a = e.lease.v4().to_uint();
    const bool idle = e.open_flows == 0;
    if (idle) s.idle.erase({e.expires, a});
    e.expires = std::max(e.expires, now + ttl);
    if (idle) s.idle.insert({e.expires, a});
    e.rule = std::move(rule);
    // Never re-point an address that flows still use: their verdicts were decided on the old
    // real address, and conntrack would send their next new flow to the new one undecided.
    // The name keeps its old (checked) target until its flows end.
    if (e.real != real && e.open_flows == 0) {
      e.real = std::move(real);
      r.changes.push_back({dns_map_change::kind::update, e.lease.v4(), e.real, e.name});
    }
    r.mapped = e.lease.v4();
    return r;
  }

  auto lease = s.pool.allocate();
  while (!lease) {
    // Only an entry past its expiry may be reused: a device may still hold an unexpired
    // answer, and must not find its address now standing for somebody else's name.
    if (s.idle.empty() || s.idle.begin()->first > now) {
      r.err = error::exhausted;
      return r;
    }
    s.remove(*s.by_address.at(s.idle.begin()->second), r.changes);
    lease = s.pool.allocate();
  }
  const address_v4 mapped = lease.v4();
  auto [it, inserted] = s.by_name.try_emplace(key);
  auto& e = it->second;
  e.name = std::move(key);
  e.lease = std::move(lease);
  e.real = std::move(real);
  e.rule = std::move(rule);
  e.expires = now + ttl;
  s.by_address[mapped.to_uint()] = &e;
  s.idle.insert({e.expires, mapped.to_uint()});
  r.changes.push_back({dns_map_change::kind::add, mapped, e.real, e.name});
  r.mapped = mapped;
  return r;
}

dns_map::flow dns_map::open_flow(const address_v4& mapped) {
  auto& s = *state_;
  flow f;
  {
    std::lock_guard lock(s.mutex);
    const auto it = s.by_address.find(mapped.to_uint());
    if (it == s.by_address.end()) return f;
    auto& e = *it->second;
    if (e.open_flows++ == 0) s.idle.erase({e.expires, mapped.to_uint()});
    f.mapping_ = state::view(e);
  }
  f.state_ = state_;
  return f;
}

std::vector<dns_map_change> dns_map::expire() {
  auto& s = *state_;
  std::vector<dns_map_change> changes;
  std::lock_guard lock(s.mutex);
  const auto now = s.now();
  while (!s.idle.empty() && s.idle.begin()->first <= now) {
    s.remove(*s.by_address.at(s.idle.begin()->second), changes);
  }
  return changes;
}

std::optional<dns_mapping> dns_map::lookup(const address_v4& mapped) const {
  const auto& s = *state_;
  std::lock_guard lock(s.mutex);
  const auto it = s.by_address.find(mapped.to_uint());
  if (it == s.by_address.end()) return std::nullopt;
  return state::view(*it->second);
}

std::optional<dns_mapping> dns_map::find(std::string_view name) const {
  const std::string key = normalise_name(name);
  if (key.empty()) return std::nullopt;
  const auto& s = *state_;
  std::lock_guard lock(s.mutex);
  const auto it = s.by_name.find(key);
  if (it == s.by_name.end()) return std::nullopt;
  return state::view(it->second);
}

std::size_t dns_map::size() const {
  std::lock_guard lock(state_->mutex);
  return state_->by_name.size();
}

std::size_t dns_map::capacity() const noexcept {
  return state_->pool.size();
}

bool dns_map::in_pool(const address_v4& a) const noexcept {
  const auto net = state_->pool.ipv4_network();
  return (a.to_uint() & net.netmask().to_uint()) == net.network().to_uint();
}

boost::asio::ip::network_v4 dns_map::pool() const noexcept {
  return state_->pool.ipv4_network();
}

dns_map::flow::flow(flow&& other) noexcept
    : state_(std::move(other.state_)), mapping_(std::move(other.mapping_)) {
  other.state_.reset();
}

dns_map::flow& dns_map::flow::operator=(flow&& other) noexcept {
  if (this != &other) {
    close();
    state_ = std::move(other.state_);
    other.state_.reset();
    mapping_ = std::move(other.mapping_);
  }
  return *this;
}

dns_map::flow::~flow() {
  close();
}

void dns_map::flow::close() noexcept {
  if (!state_) return;
  state_->close_flow(mapping_.mapped);
  state_.reset();
}

}  // namespace tunnelgate::gateway::vpn
