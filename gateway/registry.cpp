#include "gateway/registry.hpp"

namespace tunnelgate::gateway {

std::string canonical_udid(std::string_view udid) {
  std::string out(udid);
  for (auto& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

session_registry::registration& session_registry::registration::operator=(
    registration&& o) noexcept {
  if (this != &o) {
    reset();
    reg_ = std::exchange(o.reg_, nullptr);
    id_ = o.id_;
  }
  return *this;
}

void session_registry::registration::reset() {
  if (auto* r = std::exchange(reg_, nullptr)) r->remove(id_);
}

void session_registry::admission_ticket::end() {
  if (auto* r = std::exchange(reg_, nullptr)) r->end_admission(udid_);
}

session_registry::registration session_registry::add(const std::shared_ptr<session_entry>& e,
                                                     std::size_t max_per_device) {
  std::lock_guard lock(mutex_);
  if (by_device_.count(e->info.udid) >= max_per_device) return {};
  by_id_.emplace(e->info.id, e);
  by_device_.emplace(e->info.udid, e->info.id);
  auto& d = track(e->info.udid)->second;
  ++d.sessions;
  busy(d);
  return registration(this, e->info.id);
}

std::chrono::steady_clock::time_point session_registry::now() const {
  return now_ ? now_() : std::chrono::steady_clock::now();
}

/// The device's state, added when it is not tracked yet (neither busy nor idle: the caller
/// makes it one or the other at once). Under the lock.
session_registry::device_map::iterator session_registry::track(const std::string& udid) {
  return devices_.try_emplace(udid).first;
}

/// After a session or an admission started: the device is not idle. Under the lock.
void session_registry::busy(device_state& d) {
  if (d.idle) {
    idle_.erase(*d.idle);
    d.idle.reset();
  }
}

/// After a session or an admission ended: when nothing else holds the device, it is idle from
/// now (at the back of the queue). Under the lock.
void session_registry::touch(device_map::iterator it) {
  auto& d = it->second;
  if (d.sessions != 0 || d.admissions != 0) return;
  busy(d);
  d.idle = idle_.emplace_hint(idle_.end(), now(), &it->first);
}

session_registry::admission_ticket session_registry::begin_admission(const std::string& udid) {
  std::lock_guard lock(mutex_);
  auto& d = track(udid)->second;
  ++d.admissions;
  busy(d);
  return admission_ticket(this, udid);
}

void session_registry::end_admission(const std::string& udid) {
  std::lock_guard lock(mutex_);
  const auto it = track(udid);
  if (it->second.admissions > 0) --it->second.admissions;
  touch(it);
}

std::size_t session_registry::sweep_idle(std::chrono::steady_clock::duration idle,
                                         const std::function<void(const std::string&)>& forget) {
  std::lock_guard lock(mutex_);
  const auto t = now();
  std::size_t n = 0;
  while (!idle_.empty() && t - idle_.begin()->first >= idle) {
    const auto it = devices_.find(*idle_.begin()->second);
    idle_.erase(idle_.begin());
    forget(it->first);
    devices_.erase(it);
    ++n;
  }
  return n;
}

void session_registry::remove(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  const auto dev = track(it->second->info.udid);
  if (dev->second.sessions > 0) --dev->second.sessions;
  touch(dev);
  auto [first, last] = by_device_.equal_range(it->second->info.udid);
  for (auto d = first; d != last; ++d) {
    if (d->second == id) {
      by_device_.erase(d);
      break;
    }
  }
  by_id_.erase(it);
}

void session_registry::update(std::uint64_t id, const std::function<void(session_info&)>& f) {
  std::lock_guard lock(mutex_);
  if (auto it = by_id_.find(id); it != by_id_.end()) f(it->second->info);
}

std::vector<session_info> session_registry::list() const {
  std::lock_guard lock(mutex_);
  std::vector<session_info> out;
  out.reserve(by_id_.size());
  for (const auto& [id, e] : by_id_) {
    out.push_back(e->info);
    out.back().bytes_up = e->counters.up.load();
    out.back().bytes_down = e->counters.down.load();
  }
  return out;
}

std::size_t session_registry::size() const {
  std::lock_guard lock(mutex_);
  return by_id_.size();
}

void session_registry::kill_here(session_entry& e, const std::string& reason) {
  if (!e.alive || e.killed) return;
  e.killed = true;
  e.kill_reason = reason;
  if (e.kill) e.kill();
}

void session_registry::post_kill(const std::shared_ptr<session_entry>& e,
                                 const std::string& reason) {
  net::post(e->executor, [e, reason] { kill_here(*e, reason); });
}

std::size_t session_registry::recheck_all() {
  std::lock_guard lock(mutex_);
  for (const auto& [id, e] : by_id_) {
    net::post(e->executor, [e = e] {
      if (e->alive && !e->killed && e->recheck) e->recheck();
    });
  }
  return by_id_.size();
}

bool session_registry::kill(std::uint64_t id, const std::string& reason) {
  std::lock_guard lock(mutex_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  post_kill(it->second, reason);
  return true;
}

std::size_t session_registry::kill_device(const std::string& udid, const std::string& reason) {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  auto [first, last] = by_device_.equal_range(udid);
  for (auto d = first; d != last; ++d) {
    if (auto it = by_id_.find(d->second); it != by_id_.end()) {
      post_kill(it->second, reason);
      ++n;
    }
  }
  return n;
}

std::size_t session_registry::kill_all(const std::string& reason) {
  std::lock_guard lock(mutex_);
  for (const auto& [id, e] : by_id_)
    post_kill(e, reason);
  return by_id_.size();
}

std::size_t session_registry::kill_idle(const std::string& reason) {
  std::lock_guard lock(mutex_);
  for (const auto& [id, e] : by_id_) {
    net::post(e->executor, [e = e, reason] {
      if (e->idle) kill_here(*e, reason);
    });
  }
  return by_id_.size();
}

std::vector<std::string> session_registry::devices() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (auto it = by_device_.begin(); it != by_device_.end();
       it = by_device_.upper_bound(it->first)) {
    out.push_back(it->first);
  }
  return out;
}

}  // namespace tunnelgate::gateway
