#include "dtr/matcher.hpp"

#include <algorithm>

namespace tunnelgate::dtr::detail {

namespace {

bool entry_less(const std::pair<std::uint32_t, entry>& a,
                const std::pair<std::uint32_t, entry>& b) {
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
  // 1. The plain character trie, flattened: children sorted by character.
  struct plain {
    std::uint32_t kid_begin = 0, kid_count = 0, ent_begin = 0, ent_count = 0;
  };
  std::vector<plain> p(node_count_);
  std::vector<std::pair<std::uint64_t, std::uint32_t>> kids(build_kids_.begin(), build_kids_.end());
  build_kids_ = {};
  std::sort(kids.begin(), kids.end());
  for (std::uint32_t i = 0; i < kids.size(); ++i) {
    auto& nd = p[static_cast<std::uint32_t>(kids[i].first >> 8)];
    if (nd.kid_count++ == 0) nd.kid_begin = i;
  }
  std::sort(build_entries_.begin(), build_entries_.end(), entry_less);
  entries_.resize(build_entries_.size());
  for (std::uint32_t i = 0; i < build_entries_.size(); ++i) {
    auto& nd = p[build_entries_[i].first];
    if (nd.ent_count++ == 0) nd.ent_begin = i;
    entries_[i] = build_entries_[i].second;
  }
  build_entries_ = {};

  // 2. Path compression: every node with one child and no entries folds into its child's edge.
  //    Kept nodes are numbered breadth-first so each node's children are contiguous.
  nodes_.clear();
  kid_chars_.clear();
  kid_nodes_.clear();
  labels_.clear();
  nodes_.push_back({});
  nodes_[0].ent_begin = p[0].ent_begin;
  nodes_[0].ent_count = p[0].ent_count;
  std::vector<std::uint32_t> queue{0};  // plain index of each kept node, by kept index
  for (std::size_t q = 0; q < queue.size(); ++q) {
    const plain& src = p[queue[q]];
    nodes_[q].kid_begin = static_cast<std::uint32_t>(kid_nodes_.size());
    nodes_[q].kid_count = static_cast<std::uint16_t>(src.kid_count);
    for (std::uint32_t k = 0; k < src.kid_count; ++k) {
      const auto& edge = kids[src.kid_begin + k];
      node child;
      child.label_begin = static_cast<std::uint32_t>(labels_.size());
      labels_.push_back(static_cast<char>(edge.first & 0xff));
      std::uint32_t at = edge.second;
      while (p[at].kid_count == 1 && p[at].ent_count == 0) {
        const auto& next = kids[p[at].kid_begin];
        labels_.push_back(static_cast<char>(next.first & 0xff));
        at = next.second;
      }
      child.label_len = static_cast<std::uint16_t>(labels_.size() - child.label_begin);
      child.ent_begin = p[at].ent_begin;
      child.ent_count = p[at].ent_count;
      kid_chars_.push_back(static_cast<unsigned char>(edge.first & 0xff));
      kid_nodes_.push_back(static_cast<std::uint32_t>(nodes_.size()));
      nodes_.push_back(child);
      queue.push_back(at);
    }
  }
  nodes_.shrink_to_fit();
  labels_.shrink_to_fit();
}

std::uint32_t host_trie::descend(std::uint32_t n, std::string_view key,
                                 std::size_t& remaining) const noexcept {
  const node& nd = nodes_[n];
  const auto c = static_cast<unsigned char>(key[remaining - 1]);
  const unsigned char* first = kid_chars_.data() + nd.kid_begin;
  const unsigned char* last = first + nd.kid_count;
  const unsigned char* hit = nullptr;
  if (nd.kid_count <= 8) {
    for (const unsigned char* q = first; q != last; ++q) {
      if (*q == c) {
        hit = q;
        break;
      }
    }
  } else {
    const unsigned char* q = std::lower_bound(first, last, c);
    if (q != last && *q == c) hit = q;
  }
  if (hit == nullptr) return 0;
  const std::uint32_t child = kid_nodes_[nd.kid_begin + static_cast<std::uint32_t>(hit - first)];
  const node& cn = nodes_[child];
  if (cn.label_len > remaining) return 0;
  const char* label = labels_.data() + cn.label_begin;
  for (std::uint32_t i = 1; i < cn.label_len; ++i) {
    if (label[i] != key[remaining - 1 - i]) return 0;
  }
  remaining -= cn.label_len;
  return child;
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
    n = descend(n, host, remaining);
    if (n == 0) break;
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// ip_table

ip_table::key ip_table::make_key(const ip_address& a, unsigned prefix) noexcept {
  key k;
  for (int i = 0; i < 8; ++i)
    k.hi = (k.hi << 8) | a.bytes[static_cast<std::size_t>(i)];
  for (int i = 8; i < 16; ++i)
    k.lo = (k.lo << 8) | a.bytes[static_cast<std::size_t>(i)];
  // Keep the first `prefix` bits only.
  if (prefix == 0) {
    k.hi = k.lo = 0;
  } else if (prefix < 64) {
    k.hi &= ~std::uint64_t{0} << (64 - prefix);
    k.lo = 0;
  } else if (prefix < 128) {
    k.lo &= prefix == 64 ? 0 : ~std::uint64_t{0} << (128 - prefix);
  }
  k.prefix = prefix;
  return k;
}

void ip_table::insert(const ip_address& net, unsigned prefix, const entry& e) {
  build_.emplace_back(make_key(net, prefix), e);
}

void ip_table::finalize() {
  std::sort(build_.begin(), build_.end(), [](const auto& a, const auto& b) {
    if (a.first.prefix != b.first.prefix) return a.first.prefix > b.first.prefix;
    if (a.first.hi != b.first.hi) return a.first.hi < b.first.hi;
    if (a.first.lo != b.first.lo) return a.first.lo < b.first.lo;
    if (a.second.rule != b.second.rule) return a.second.rule < b.second.rule;
    return a.second.dest < b.second.dest;
  });
  entries_.resize(build_.size());
  ranges_.reserve(build_.size());
  for (std::uint32_t i = 0; i < build_.size(); ++i) {
    entries_[i] = build_[i].second;
    auto [it, fresh] = ranges_.try_emplace(build_[i].first, i, 0);
    ++it->second.second;
    if (fresh && (prefixes_.empty() || prefixes_.back() != build_[i].first.prefix)) {
      prefixes_.push_back(build_[i].first.prefix);
    }
  }
  build_ = {};
}

const entry* ip_table::best(const ip_address& a, std::uint16_t port) const noexcept {
  const entry* found = nullptr;
  std::uint32_t best_rule = no_match;
  probe(a, 128, [&](const entry* first, std::uint32_t count) {
    for (std::uint32_t i = 0; i < count; ++i) {
      const entry& e = first[i];
      if (e.rule >= best_rule) break;
      if (port < e.lo || port > e.hi) continue;
      found = &e;
      best_rule = e.rule;
      break;
    }
  });
  return found;
}

}  // namespace tunnelgate::dtr::detail
