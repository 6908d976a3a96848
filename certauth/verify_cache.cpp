#include "certauth/verify_cache.hpp"

#include <cstring>
#include <iterator>
#include <utility>

namespace tunnelgate::certauth::detail {

verify_cache::verify_cache(std::size_t capacity)
    : capacity_(capacity), sha256_(EVP_MD_fetch(nullptr, "SHA256", nullptr)) {}

verify_cache::~verify_cache() = default;

std::size_t verify_cache::key_hash::operator()(const cache_key& k) const noexcept {
  // The key is a SHA-256 digest already: any eight of its bytes are a good hash.
  std::size_t h = 0;
  std::memcpy(&h, k.data(), sizeof h);
  return h;
}

bool verify_cache::key_of(X509* leaf, STACK_OF(X509) * untrusted, cache_key& out) const {
  if (!sha256_) return false;
  ossl::evp_md_ctx_ptr md(EVP_MD_CTX_new());
  if (!md || EVP_DigestInit_ex(md.get(), sha256_.get(), nullptr) != 1) return false;
  // i2d_X509 re-encodes the object the verifier will look at (OpenSSL keeps the signed part's
  // original bytes), so equal keys mean equal inputs to the verification.
  const auto add = [&md](X509* x) {
    unsigned char* der = nullptr;
    const int len = i2d_X509(x, &der);
    if (len <= 0) return false;
    const ossl::openssl_buffer owned(der);
    return EVP_DigestUpdate(md.get(), der, static_cast<std::size_t>(len)) == 1;
  };
  if (!add(leaf)) return false;
  for (int i = 0; i < sk_X509_num(untrusted); ++i) {
    if (!add(sk_X509_value(untrusted, i))) return false;
  }
  unsigned int n = 0;
  return EVP_DigestFinal_ex(md.get(), out.data(), &n) == 1 && n == out.size();
}

void verify_cache::take_all(lru_list& lru, index_map& index) {
  lru.swap(lru_);
  index.swap(index_);
}

std::shared_ptr<const verify_result> verify_cache::find(const cache_key& key,
                                                        std::uint64_t generation,
                                                        std::chrono::system_clock::time_point now) {
  const std::time_t now_t = std::chrono::system_clock::to_time_t(now);
  // Declared before the lock, so what is dropped is freed after it is released.
  lru_list dropped;
  index_map dropped_index;
  std::lock_guard lock(mutex_);
  if (generation > generation_) {
    take_all(dropped, dropped_index);
    generation_ = generation;
  }
  const auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  const cache_validity& v = it->second->validity;
  if (v.generation != generation || now < v.verified_at || now >= v.expires_at ||
      now_t > v.valid_until) {
    // An entry of a newer snapshot than the caller's (which started before a reload) stays.
    if (v.generation <= generation) {
      dropped.splice(dropped.end(), lru_, it->second);
      index_.erase(it);
    }
    ++misses_;
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++hits_;
  return it->second->result;
}

void verify_cache::insert(const cache_key& key, const cache_validity& validity,
                          std::shared_ptr<const verify_result> result) {
  // The list node is allocated before the lock and spliced in under it.
  lru_list node;
  node.push_back(entry{key, validity, std::move(result)});
  lru_list dropped;
  index_map dropped_index;
  std::lock_guard lock(mutex_);
  if (validity.generation < generation_) return;
  if (validity.generation > generation_) {
    take_all(dropped, dropped_index);
    generation_ = validity.generation;
  }
  if (const auto it = index_.find(key); it != index_.end()) {
    // Two threads verified the same chain at once: keep the newer verification.
    dropped.splice(dropped.end(), lru_, it->second);
    index_.erase(it);
  }
  lru_.splice(lru_.begin(), node);
  index_.emplace(key, lru_.begin());
  while (lru_.size() > capacity_) {
    const auto last = std::prev(lru_.end());
    index_.erase(last->key);
    dropped.splice(dropped.end(), lru_, last);
    ++evictions_;
  }
}

verify_cache_stats verify_cache::stats() const {
  std::lock_guard lock(mutex_);
  verify_cache_stats s;
  s.hits = hits_;
  s.misses = misses_;
  s.evictions = evictions_;
  s.entries = lru_.size();
  return s;
}

}  // namespace tunnelgate::certauth::detail
