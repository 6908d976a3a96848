#include "gateway/vpn/cookie_store.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <stdexcept>
#include <utility>

namespace tunnelgate::gateway {

namespace {

std::string hex(const unsigned char* p, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 0x0f];
  }
  return out;
}

std::string sha256_hex(std::string_view s) {
  std::array<unsigned char, 32> md{};
  unsigned int len = 0;
  if (EVP_Digest(s.data(), s.size(), md.data(), &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");
  return hex(md.data(), len);
}

}  // namespace

std::string_view cookie_store::to_string(refusal r) noexcept {
  switch (r) {
    case refusal::none:
      return "ok";
    case refusal::missing:
      return "cookie-missing";
    case refusal::unknown:
      return "cookie-unknown";
    case refusal::expired:
      return "cookie-expired";
    case refusal::used:
      return "cookie-used";
    case refusal::revoked:
      return "cookie-revoked";
    case refusal::mismatch:
      return "cookie-mismatch";
  }
  return "cookie-refused";
}

std::string cookie_store::issue(const grant& g) {
  std::array<unsigned char, 32> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1)
    throw std::runtime_error("RAND_bytes failed: no randomness for a VPN cookie");
  // Hex keeps the cookie a plain token in any header or XML it travels in.
  std::string cookie = hex(raw.data(), raw.size());
  auto h = sha256_hex(cookie);
  std::lock_guard lock(mutex_);
  if (by_hash_.size() >= max_cookies) return {};
  auto& mine = issued_[g.udid];
  // A device that keeps asking holds at most max_per_device redeemable cookies.
  while (mine.size() >= max_per_device) {
    if (const auto it = by_hash_.find(mine.front());
        it != by_hash_.end() && it->second.state == refusal::none) {
      it->second.state = refusal::revoked;
    }
    mine.pop_front();
  }
  mine.push_back(h);
  by_hash_[std::move(h)] = entry{g, now_() + ttl_, refusal::none};
  return cookie;
}

cookie_store::refusal cookie_store::redeem(std::string_view cookie, const grant& presenter,
                                           std::uint64_t* replaces) {
  if (cookie.empty()) return refusal::missing;
  const auto h = sha256_hex(cookie);
  std::lock_guard lock(mutex_);
  const auto it = by_hash_.find(h);
  if (it == by_hash_.end()) return refusal::unknown;
  auto& e = it->second;
  if (e.state == refusal::used && e.resumable && now_() < e.expires) {
    if (e.g.udid != presenter.udid || e.g.fingerprint != presenter.fingerprint) {
      e.resumable = false;
      return refusal::mismatch;
    }
    e.resumable = false;
    return refusal::none;
  }
  if (e.state == refusal::used && e.holder != 0 && replaces != nullptr) {
    if (e.g.udid != presenter.udid || e.g.fingerprint != presenter.fingerprint)
      return refusal::mismatch;
    *replaces = std::exchange(e.holder, 0);
    return refusal::none;
  }
  if (e.state != refusal::none) return e.state;
  if (now_() >= e.expires) return refusal::expired;
  // Stolen? The cookie is used up either way: whoever holds it cannot try again.
  const bool same = e.g.udid == presenter.udid && e.g.fingerprint == presenter.fingerprint;
  e.state = refusal::used;
  return same ? refusal::none : refusal::mismatch;
}

void cookie_store::bind(std::string_view cookie, std::uint64_t id) {
  const auto h = sha256_hex(cookie);
  std::lock_guard lock(mutex_);
  if (const auto it = by_hash_.find(h); it != by_hash_.end()) it->second.holder = id;
}

void cookie_store::release(std::string_view cookie, bool resumable) {
  const auto h = sha256_hex(cookie);
  std::lock_guard lock(mutex_);
  const auto it = by_hash_.find(h);
  if (it == by_hash_.end() || it->second.state != refusal::used) return;
  it->second.holder = 0;
  it->second.resumable = resumable;
  if (resumable) it->second.expires = now_() + ttl_;
}

void cookie_store::revoke_device(const std::string& udid) {
  std::lock_guard lock(mutex_);
  for (auto& [h, e] : by_hash_) {
    if (e.g.udid != udid) continue;
    e.holder = 0;  // a revoked device's tunnel cannot be taken over
    if (e.state == refusal::none) e.state = refusal::revoked;
    if (e.state == refusal::used && e.resumable) {
      e.state = refusal::revoked;
      e.resumable = false;
    }
  }
}

std::size_t cookie_store::sweep() {
  std::lock_guard lock(mutex_);
  const auto now = now_();
  std::size_t n = 0;
  // Only redeemable cookies count against a device's allowance.
  for (auto it = issued_.begin(); it != issued_.end();) {
    std::erase_if(it->second, [this](const std::string& h) {
      const auto e = by_hash_.find(h);
      return e == by_hash_.end() || e->second.state != refusal::none;
    });
    it = it->second.empty() ? issued_.erase(it) : std::next(it);
  }
  for (auto it = by_hash_.begin(); it != by_hash_.end();) {
    // Kept one more lifetime, so a late or repeated use is told "expired" or "used", not
    // "unknown"; memory stays bounded by the issue rate times two lifetimes.
    if (now >= it->second.expires + ttl_) {
      it = by_hash_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

std::size_t cookie_store::size() const {
  std::lock_guard lock(mutex_);
  return by_hash_.size();
}

}  // namespace tunnelgate::gateway
