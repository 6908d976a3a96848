// Internal: the compiled matchers behind policy::evaluate.
//
// Host names go through a trie over their characters read right to left, so every pattern kind
// (exact, string suffix, label suffix, `*`) that can match a host lies on the one path the host
// spells; addresses go through a binary prefix trie per family. A lookup touches at most
// len(host) or 128 nodes, whatever the number of rules.
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
  struct node {
    std::uint32_t kid_begin = 0;
    std::uint32_t kid_count = 0;
    std::uint32_t ent_begin = 0;
    std::uint32_t ent_count = 0;
  };
  std::uint32_t child(std::uint32_t n, unsigned char c) const noexcept;

  // Build state, dropped by finalize().
  std::unordered_map<std::uint64_t, std::uint32_t> build_kids_;
  std::vector<std::pair<std::uint32_t, entry>> build_entries_;
  std::uint32_t node_count_ = 1;

  std::vector<node> nodes_;
  std::vector<unsigned char> kid_chars_;
  std::vector<std::uint32_t> kid_nodes_;
  std::vector<entry> entries_;
};

class ip_trie {
 public:
  void insert(const ip_address& net, unsigned prefix, const entry& e);
  void finalize();
  const entry* best(const ip_address& a, std::uint16_t port) const noexcept;

  /// Calls f(entry) for every entry whose network contains net/prefix.
  template <class F>
  void walk(const ip_address& net, unsigned prefix, F&& f) const;

 private:
  struct node {
    std::uint32_t kid[2] = {0, 0};  // 0 = none (the root is never a child)
    std::uint32_t ent_begin = 0;
    std::uint32_t ent_count = 0;
  };
  std::vector<node> nodes_{1};
  std::vector<std::pair<std::uint32_t, entry>> build_entries_;
  std::vector<entry> entries_;
};

/// The compiled form of one rule set.
struct set_matcher {
  host_trie hosts;
  ip_trie v4;
  ip_trie v6;
};

template <class F>
void host_trie::walk(std::string_view key, F&& f) const {
  std::uint32_t n = 0;
  std::size_t remaining = key.size();
  for (;;) {
    const node& nd = nodes_[n];
    for (std::uint32_t i = 0; i < nd.ent_count; ++i) f(entries_[nd.ent_begin + i], remaining);
    if (remaining == 0) return;
    n = child(n, static_cast<unsigned char>(key[remaining - 1]));
    if (n == 0) return;
    --remaining;
  }
}

template <class F>
void ip_trie::walk(const ip_address& net, unsigned prefix, F&& f) const {
  std::uint32_t n = 0;
  for (unsigned depth = 0;; ++depth) {
    const node& nd = nodes_[n];
    for (std::uint32_t i = 0; i < nd.ent_count; ++i) f(entries_[nd.ent_begin + i]);
    if (depth == prefix) return;
    n = nd.kid[(net.bytes[depth / 8] >> (7 - depth % 8)) & 1U];
    if (n == 0) return;
  }
}

}  // namespace tunnelgate::dtr::detail
