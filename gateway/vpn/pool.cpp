#include "gateway/vpn/pool.hpp"

#include <algorithm>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>

namespace tunnelgate::gateway::vpn {

using boost::asio::ip::address_v4;
using boost::asio::ip::address_v6;

namespace {
constexpr std::uint32_t none = std::numeric_limits<std::uint32_t>::max();
enum class slot_state : std::uint8_t { free, leased };
}  // namespace

// Slot i is host number i + 1 of the IPv4 network (host number 0 is the network address; the
// last host number, the broadcast address, has no slot). Free slots form a doubly linked FIFO
// through prev/next: allocate() takes the head, release() appends at the tail, and allocate of
// a given address unlinks it from the middle, all in O(1).
struct address_pool::state {
  boost::asio::ip::network_v4 net;
  std::optional<boost::asio::ip::network_v6> net6;
  std::uint32_t base = 0;  ///< the network address as an integer

  mutable std::mutex mutex;
  std::vector<std::uint32_t> prev, next;
  std::vector<slot_state> states;  ///< guarded by mutex
  std::vector<bool> reserved;      ///< fixed at construction: read without the lock
  std::uint32_t head = none, tail = none;
  std::size_t usable = 0;      ///< slots not reserved; fixed after construction
  std::size_t free_count = 0;  ///< guarded by mutex

  address_v4 v4_of(std::uint32_t slot) const { return address_v4(base + slot + 1); }

  std::optional<address_v6> v6_of(std::uint32_t slot) const {
    if (!net6) return std::nullopt;
    auto bytes = net6->network().to_bytes();
    // The host number fits in the prefix's host bits (checked at construction) and those bits
    // are zero in the network address, so adding into the last four bytes never carries into
    // the prefix.
    std::uint32_t low = (std::uint32_t{bytes[12]} << 24) | (std::uint32_t{bytes[13]} << 16) |
                        (std::uint32_t{bytes[14]} << 8) | bytes[15];
    low += slot + 1;
    bytes[12] = static_cast<std::uint8_t>(low >> 24);
    bytes[13] = static_cast<std::uint8_t>(low >> 16);
    bytes[14] = static_cast<std::uint8_t>(low >> 8);
    bytes[15] = static_cast<std::uint8_t>(low);
    return address_v6(bytes);
  }

  void unlink(std::uint32_t s) noexcept {
    if (prev[s] != none) {
      next[prev[s]] = next[s];
    } else {
      head = next[s];
    }
    if (next[s] != none) {
      prev[next[s]] = prev[s];
    } else {
      tail = prev[s];
    }
    prev[s] = next[s] = none;
  }

  void push_back(std::uint32_t s) noexcept {
    prev[s] = tail;
    next[s] = none;
    if (tail != none) {
      next[tail] = s;
    } else {
      head = s;
    }
    tail = s;
  }

  void release(std::uint32_t s) noexcept {
    std::lock_guard lock(mutex);
    if (states[s] != slot_state::leased) return;
    states[s] = slot_state::free;
    push_back(s);
    ++free_count;
  }
};

address_pool::address_pool(const boost::asio::ip::network_v4& v4,
                           const std::vector<boost::asio::ip::address>& reserved,
                           const std::optional<boost::asio::ip::network_v6>& v6)
    : state_(std::make_shared<state>()) {
  const unsigned prefix = v4.prefix_length();
  if (prefix > 30) {
    throw std::invalid_argument("address pool " + v4.to_string() +
                                ": the prefix must be /30 or shorter");
  }
  const std::uint64_t hosts = std::uint64_t{1} << (32 - prefix);
  if (hosts - 2 > max_addresses) {
    throw std::invalid_argument("address pool " + v4.to_string() +
                                ": larger than 2^20 addresses (use /12 or a longer prefix)");
  }
  if (v6 && 128 - static_cast<int>(v6->prefix_length()) < 32 - static_cast<int>(prefix)) {
    throw std::invalid_argument("address pool " + v6->to_string() +
                                ": the IPv6 prefix needs at least as many host bits as " +
                                v4.to_string());
  }
  auto& s = *state_;
  s.net = v4.canonical();
  if (v6) s.net6 = v6->canonical();
  s.base = s.net.network().to_uint();
  const auto slots = static_cast<std::uint32_t>(hosts - 2);
  s.prev.assign(slots, none);
  s.next.assign(slots, none);
  s.states.assign(slots, slot_state::free);

  s.reserved.assign(slots, false);
  const auto net6_low = [&s] {
    const auto b = s.net6->network().to_bytes();
    return (std::uint64_t{b[12]} << 24) | (std::uint64_t{b[13]} << 16) |
           (std::uint64_t{b[14]} << 8) | b[15];
  };
  for (const auto& r : reserved) {
    std::uint64_t host = 0;
    if (r.is_v4()) {
      const std::uint32_t a = r.to_v4().to_uint();
      if (a <= s.base) continue;  // the network address, or below the pool
      host = a - s.base;
    } else if (s.net6) {
      const auto a = r.to_v6();
      if (boost::asio::ip::network_v6(a, s.net6->prefix_length()).canonical() != *s.net6) {
        continue;
      }
      const auto b = a.to_bytes();
      const auto nb = s.net6->network().to_bytes();
      // Host numbers live in the last four bytes; an address that differs before them is
      // beyond every IPv4 slot.
      if (!std::equal(b.begin(), b.begin() + 12, nb.begin())) continue;
      const std::uint64_t low = (std::uint64_t{b[12]} << 24) | (std::uint64_t{b[13]} << 16) |
                                (std::uint64_t{b[14]} << 8) | b[15];
      host = low - net6_low();
    } else {
      continue;
    }
    if (host == 0 || host > slots) continue;
    s.reserved[host - 1] = true;
  }
  for (std::uint32_t i = 0; i < slots; ++i) {
    if (!s.reserved[i]) s.push_back(i);
  }
  s.usable = s.free_count =
      static_cast<std::size_t>(std::count(s.reserved.begin(), s.reserved.end(), false));
  if (s.usable == 0) {
    throw std::invalid_argument("address pool " + v4.to_string() +
                                ": no usable address left after the reserved ones");
  }
}

address_pool::lease address_pool::make_lease(std::uint32_t slot) {
  lease l;
  l.state_ = state_;
  l.slot_ = slot;
  l.v4_ = state_->v4_of(slot);
  l.v6_ = state_->v6_of(slot);
  return l;
}

address_pool::lease address_pool::allocate() {
  auto& s = *state_;
  std::uint32_t slot = none;
  {
    std::lock_guard lock(s.mutex);
    if (s.head == none) return {};
    slot = s.head;
    s.unlink(slot);
    s.states[slot] = slot_state::leased;
    --s.free_count;
  }
  return make_lease(slot);
}

address_pool::lease address_pool::allocate(const address_v4& wanted) {
  auto& s = *state_;
  const std::uint32_t a = wanted.to_uint();
  if (a <= s.base || a - s.base > s.states.size()) return {};
  const std::uint32_t slot = a - s.base - 1;
  {
    std::lock_guard lock(s.mutex);
    if (s.reserved[slot] || s.states[slot] != slot_state::free) return {};
    s.unlink(slot);
    s.states[slot] = slot_state::leased;
    --s.free_count;
  }
  return make_lease(slot);
}

std::size_t address_pool::size() const noexcept {
  return state_->usable;
}

std::size_t address_pool::available() const {
  std::lock_guard lock(state_->mutex);
  return state_->free_count;
}

bool address_pool::contains(const address_v4& a) const noexcept {
  const auto& s = *state_;
  const std::uint32_t v = a.to_uint();
  if (v <= s.base || v - s.base > s.states.size()) return false;
  return !s.reserved[v - s.base - 1];
}

boost::asio::ip::network_v4 address_pool::ipv4_network() const noexcept {
  return state_->net;
}

std::optional<boost::asio::ip::network_v6> address_pool::ipv6_network() const noexcept {
  return state_->net6;
}

address_pool::lease::lease(lease&& other) noexcept
    : state_(std::move(other.state_)),
      slot_(other.slot_),
      v4_(std::move(other.v4_)),
      v6_(std::move(other.v6_)) {
  other.state_.reset();
}

address_pool::lease& address_pool::lease::operator=(lease&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    other.state_.reset();
    slot_ = other.slot_;
    v4_ = other.v4_;
    v6_ = other.v6_;
  }
  return *this;
}

address_pool::lease::~lease() {
  release();
}

void address_pool::lease::release() noexcept {
  if (!state_) return;
  state_->release(slot_);
  state_.reset();
}

}  // namespace tunnelgate::gateway::vpn
