// Internal: the compiled matchers behind policy::evaluate.
//
// Host names go through a trie over their characters read right to left, so every pattern kind
// (exact, string suffix, label suffix, `*`) that can match a host lies on the one path the host
// spells; addresses go through a hash table per family keyed by prefix length and network. A
// lookup touches at most len(host) trie nodes, or one probe per distinct prefix length, whatever
// the number of rules.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dtr/dtr.hpp"

namespace tunnelgate::dtr::detail {

/// One destination of one rule, as stored in a trie node.
struct entry {
  enum class match : std::uint8_t { whole, suffix, label };
  std::uint32_t rule = 0;  ///< 0-based rule index = rank - 1: lower wins
  std::uint32_t dest = 0;  ///< index into the rule's destinations
  std::uint16_t lo = 0;
  std::uint16_t hi = 65535;
  match m = match::whole;
};

inline constexpr std::uint32_t no_match = UINT32_MAX;

class host_trie {
 public:
  /// `key` is the text that must end the host: the whole host, a suffix, or `.suffix`.
  void insert(std::string_view key, const entry& e);
  void finalize();

  /// Lowest-ranked entry matching `host` on `port`, or null.
  const entry* best(std::string_view host, std::uint16_t port) const noexcept;

  /// Calls f(entry, remaining) for every entry on the path of `key`, where remaining is the
  /// number of key characters not yet consumed at that node.
  template <class F>
  void walk(std::string_view key, F&& f) const;

 private:
  // Path-compressed: a node's edge from its parent carries `label_len` characters (in walk
  // order, i.e. the host read right to left), so chains of single-child nodes cost one memcmp
  // instead of one memory access per character.
  struct node {
    std::uint32_t kid_begin = 0;
    std::uint32_t ent_begin = 0;
    std::uint32_t ent_count = 0;
    std::uint32_t label_begin = 0;
    std::uint16_t kid_count = 0;
    std::uint16_t label_len = 0;
  };
  /// Follows the edge from `n` that starts with key[remaining-1]; returns the child and
  /// lowers `remaining`, or 0 when the key leaves the trie.
  std::uint32_t descend(std::uint32_t n, std::string_view key,
                        std::size_t& remaining) const noexcept;

  // Build state, dropped by finalize().
  std::unordered_map<std::uint64_t, std::uint32_t> build_kids_;
  std::vector<std::pair<std::uint32_t, entry>> build_entries_;
  std::uint32_t node_count_ = 1;

  std::vector<node> nodes_;
  std::vector<unsigned char> kid_chars_;  ///< first label character of each child
  std::vector<std::uint32_t> kid_nodes_;
  std::vector<char> labels_;
  std::vector<entry> entries_;
};

/// Addresses: one hash table per family keyed by (prefix length, masked network). A lookup
/// probes once per distinct prefix length in the set (a handful in practice, 33 or 129 at most).
class ip_table {
 public:
  void insert(const ip_address& net, unsigned prefix, const entry& e);
  void finalize();
  const entry* best(const ip_address& a, std::uint16_t port) const noexcept;

  /// Calls f(entry) for every entry whose network contains net/prefix.
  template <class F>
  void walk(const ip_address& net, unsigned prefix, F&& f) const;

 private:
  struct key {
    std::uint64_t hi = 0;
    std::uint64_t lo = 0;
    unsigned prefix = 0;
    friend bool operator==(const key&, const key&) = default;
  };
  struct key_hash {
    static std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64 finaliser
      x ^= x >> 30;
      x *= 0xbf58476d1ce4e5b9ULL;
      x ^= x >> 27;
      x *= 0x94d049bb133111ebULL;
      return x ^ (x >> 31);
    }
    std::size_t operator()(const key& k) const noexcept {
      return static_cast<std::size_t>(mix(k.hi ^ mix(k.lo ^ (std::uint64_t{k.prefix} << 56))));
    }
  };
  static key make_key(const ip_address& a, unsigned prefix) noexcept;
  template <class F>
  void probe(const ip_address& a, unsigned max_prefix, F&& f) const;

  std::vector<std::pair<key, entry>> build_;
  std::vector<unsigned> prefixes_;  ///< distinct prefix lengths present, longest first
  std::unordered_map<key, std::pair<std::uint32_t, std::uint32_t>, key_hash> ranges_;
  std::vector<entry> entries_;
};

/// The compiled form of one rule set.
struct set_matcher {
  host_trie hosts;
  ip_table v4;
  ip_table v6;
};

template <class F>
void host_trie::walk(std::string_view key, F&& f) const {
  std::uint32_t n = 0;
  std::size_t remaining = key.size();
  for (;;) {
    const node& nd = nodes_[n];
    for (std::uint32_t i = 0; i < nd.ent_count; ++i)
      f(entries_[nd.ent_begin + i], remaining);
    if (remaining == 0) return;
    n = descend(n, key, remaining);
    if (n == 0) return;
  }
}

template <class F>
void ip_table::probe(const ip_address& a, unsigned max_prefix, F&& f) const {
  for (const unsigned p : prefixes_) {
    if (p > max_prefix) continue;
    const auto it = ranges_.find(make_key(a, p));
    if (it == ranges_.end()) continue;
    f(entries_.data() + it->second.first, it->second.second);
  }
}

template <class F>
void ip_table::walk(const ip_address& net, unsigned prefix, F&& f) const {
  probe(net, prefix, [&](const entry* first, std::uint32_t count) {
    for (std::uint32_t i = 0; i < count; ++i)
      f(first[i]);
  });
}

}  // namespace tunnelgate::dtr::detail
