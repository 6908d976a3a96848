// The verifier's cache of accepted chains. Internal.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "certauth/certauth.hpp"
#include "certauth/ossl.hpp"

namespace tunnelgate::certauth::detail {

/// SHA-256 over the DER of the leaf, then of each untrusted certificate in order. DER is
/// self-delimiting, so two different sequences of certificates never hash the same input.
using cache_key = std::array<unsigned char, 32>;

/// When an entry may answer. Every bound is one the full verification would also have to
/// cross before deciding differently; crossing any of them makes the entry a miss.
struct cache_validity {
  std::uint64_t generation = 0;  ///< trust_snapshot::generation it was verified under
  /// The verification time. An earlier clock is a miss: notBefore and CRL thisUpdate were
  /// only checked at this time and later ones.
  std::chrono::system_clock::time_point verified_at;
  std::chrono::system_clock::time_point expires_at;  ///< verified_at + cache_ttl (exclusive)
  /// The last second (as time_t, compared like the verifier compares) at which every
  /// time-dependent check still gives the same answer.
  std::time_t valid_until = 0;
};

/// A bounded LRU map from cache_key to an accepted verify_result. Thread-safe; the lock is
/// held for the lookup or insertion only, never while verifying or copying a result.
class verify_cache {
 public:
  explicit verify_cache(std::size_t capacity);
  ~verify_cache();
  verify_cache(const verify_cache&) = delete;
  verify_cache& operator=(const verify_cache&) = delete;

  /// The key of a leaf and the untrusted certificates sent with it; false when a certificate
  /// cannot be encoded or hashed (the caller then verifies without the cache).
  bool key_of(X509* leaf, STACK_OF(X509) * untrusted, cache_key& out) const;

  /// The cached verdict for `key` if one is valid for `generation` at `now`, else null (a
  /// miss; an entry found invalid is dropped). A generation newer than any seen before drops
  /// every entry: they all belong to replaced snapshots.
  std::shared_ptr<const verify_result> find(const cache_key& key, std::uint64_t generation,
                                            std::chrono::system_clock::time_point now);

  /// Remembers an accepted verdict; replaces an entry with the same key. Evicts the least
  /// recently used entry beyond the capacity. Ignored for a generation older than the newest
  /// seen (a verification that raced a reload).
  void insert(const cache_key& key, const cache_validity& validity,
              std::shared_ptr<const verify_result> result);

  verify_cache_stats stats() const;

 private:
  struct entry {
    cache_key key;
    cache_validity validity;
    std::shared_ptr<const verify_result> result;
  };
  struct key_hash {
    std::size_t operator()(const cache_key& k) const noexcept;
  };
  using lru_list = std::list<entry>;
  using index_map = std::unordered_map<cache_key, lru_list::iterator, key_hash>;

  // Moves every entry out (caller holds mutex_) so they are freed after the lock is released.
  void take_all(lru_list& lru, index_map& index);

  const std::size_t capacity_;
  ossl::evp_md_ptr sha256_;  // fetched once: an implicit fetch per digest costs a lookup

  mutable std::mutex mutex_;      // guards everything below
  lru_list lru_;                  // most recently used first; every element is in index_
  index_map index_;               // one iterator into lru_ per key
  std::uint64_t generation_ = 0;  // the newest snapshot generation seen
  std::uint64_t hits_ = 0;
  std::uint64_t misses_ = 0;
  std::uint64_t evictions_ = 0;
};

}  // namespace tunnelgate::certauth::detail
