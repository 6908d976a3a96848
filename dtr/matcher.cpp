#include "dtr/matcher.hpp"

#include <algorithm>

namespace tunnelgate::dtr::detail {

namespace {

bool entry_less(const std::pair<std::uint32_t, entry>& a, const std::pair<std::uint32_t, entry>& b) {
  if (a.first != b.first) return a.first < b.first;
  if (a.second.rule != b.second.rule) return a.second.rule < b.second.rule;
  return a.second.dest < b.second.dest;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// host_trie

void host_trie::insert(std::string_view key, const entry& e) {
  std::uint32_t n = 0;
  for (std::size_t i = key.size(); i > 0; --i) {
    const auto c = static_cast<unsigned char>(key[i - 1]);
    const std::uint64_t k = (std::uint64_t{n} << 8) | c;
    auto [it, inserted] = build_kids_.try_emplace(k, node_count_);
    if (inserted) ++node_count_;
    n = it->second;
  }
  build_entries_.emplace_back(n, e);
}

void host_trie::finalize() {
  nodes_.assign(node_count_, node{});
  // Children: sort (parent, char) so each node's children are contiguous and ordered.
  std::vector<std::pair<std::uint64_t, std::uint32_t>> kids(build_kids_.begin(), build_kids_.end());
  std::sort(kids.begin(), kids.end());
  kid_chars_.resize(kids.size());
  kid_nodes_.resize(kids.size());
  for (std::uint32_t i = 0; i < kids.size(); ++i) {
    const auto parent = static_cast<std::uint32_t>(kids[i].first >> 8);
    if (nodes_[parent].kid_count == 0) nodes_[parent].kid_begin = i;
    ++nodes_[parent].kid_count;
    kid_chars_[i] = static_cast<unsigned char>(kids[i].first & 0xff);
    kid_nodes_[i] = kids[i].second;
  }
  // Entries: grouped by node, ordered by rank so lookups can stop early.
  std::sort(build_entries_.begin(), build_entries_.end(), entry_less);
  entries_.resize(build_entries_.size());
  for (std::uint32_t i = 0; i < build_entries_.size(); ++i) {
    auto& nd = nodes_[build_entries_[i].first];
    if (nd.ent_count == 0) nd.ent_begin = i;
    ++nd.ent_count;
    entries_[i] = build_entries_[i].second;
  }
  build_kids_ = {};
  build_entries_ = {};
}

std::uint32_t host_trie::child(std::uint32_t n, unsigned char c) const noexcept {
  const node& nd = nodes_[n];
  const unsigned char* first = kid_chars_.data() + nd.kid_begin;
  const unsigned char* last = first + nd.kid_count;
  if (nd.kid_count <= 8) {
    for (const unsigned char* p = first; p != last; ++p) {
      if (*p == c) return kid_nodes_[nd.kid_begin + static_cast<std::uint32_t>(p - first)];
    }
    return 0;
  }
  const unsigned char* p = std::lower_bound(first, last, c);
  if (p == last || *p != c) return 0;
  return kid_nodes_[nd.kid_begin + static_cast<std::uint32_t>(p - first)];
}

const entry* host_trie::best(std::string_view host, std::uint16_t port) const noexcept {
  const entry* found = nullptr;
  std::uint32_t best_rule = no_match;
  std::uint32_t n = 0;
  std::size_t remaining = host.size();
  for (;;) {
    const node& nd = nodes_[n];
    for (std::uint32_t i = 0; i < nd.ent_count; ++i) {
      const entry& e = entries_[nd.ent_begin + i];
      if (e.rule >= best_rule) break;  // sorted by rank: nothing better at this node
      if (port < e.lo || port > e.hi) continue;
      if (e.m == entry::match::whole && remaining != 0) continue;
      if (e.m == entry::match::label && remaining == 0) continue;
      found = &e;
      best_rule = e.rule;
      break;
    }
    if (remaining == 0) break;
    n = child(n, static_cast<unsigned char>(host[remaining - 1]));
    if (n == 0) break;
    --remaining;
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// ip_trie

void ip_trie::insert(const ip_address& net, unsigned prefix, const entry& e) {
  std::uint32_t n = 0;
  for (unsigned depth = 0; depth < prefix; ++depth) {
    const unsigned bit = (net.bytes[depth / 8] >> (7 - depth % 8)) & 1U;
    if (nodes_[n].kid[bit] == 0) {
      nodes_[n].kid[bit] = static_cast<std::uint32_t>(nodes_.size());
      nodes_.emplace_back();
    }
    n = nodes_[n].kid[bit];
  }
  build_entries_.emplace_back(n, e);
}

void ip_trie::finalize() {
  std::sort(build_entries_.begin(), build_entries_.end(), entry_less);
  entries_.resize(build_entries_.size());
  for (std::uint32_t i = 0; i < build_entries_.size(); ++i) {
    auto& nd = nodes_[build_entries_[i].first];
    if (nd.ent_count == 0) nd.ent_begin = i;
    ++nd.ent_count;
    entries_[i] = build_entries_[i].second;
  }
  build_entries_ = {};
}

const entry* ip_trie::best(const ip_address& a, std::uint16_t port) const noexcept {
  const entry* found = nullptr;
  std::uint32_t best_rule = no_match;
  std::uint32_t n = 0;
  for (unsigned depth = 0;; ++depth) {
    const node& nd = nodes_[n];
    for (std::uint32_t i = 0; i < nd.ent_count; ++i) {
      const entry& e = entries_[nd.ent_begin + i];
      if (e.rule >= best_rule) break;
      if (port < e.lo || port > e.hi) continue;
      found = &e;
      best_rule = e.rule;
      break;
    }
    if (depth == a.bits()) break;
    n = nd.kid[(a.bytes[depth / 8] >> (7 - depth % 8)) & 1U];
    if (n == 0) break;
  }
  return found;
}

}  // namespace tunnelgate::dtr::detail
