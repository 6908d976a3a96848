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
  ++devices_[e->info.udid].sessions;
  return registration(this, e->info.id);
}

void session_registry::touch(device_state& d) const {
  if (d.sessions == 0 && d.admissions == 0) d.idle_since = std::chrono::steady_clock::now();
}

session_registry::admission_ticket session_registry::begin_admission(const std::string& udid) {
  std::lock_guard lock(mutex_);
  ++devices_[udid].admissions;
  return admission_ticket(this, udid);
}

void session_registry::end_admission(const std::string& udid) {
  std::lock_guard lock(mutex_);
  auto& d = devices_[udid];
  if (d.admissions > 0) --d.admissions;
  touch(d);
}

std::size_t session_registry::sweep_idle(std::chrono::steady_clock::duration idle,
                                         const std::function<void(const std::string&)>& forget) {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  std::size_t n = 0;
  for (auto it = devices_.begin(); it != devices_.end();) {
    const auto& d = it->second;
    if (d.sessions == 0 && d.admissions == 0 && now - d.idle_since >= idle) {
      forget(it->first);
      it = devices_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

void session_registry::remove(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  auto& dev = devices_[it->second->info.udid];
  if (dev.sessions > 0) --dev.sessions;
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
