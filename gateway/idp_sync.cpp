#include "gateway/idp_sync.hpp"

#include <algorithm>
#include <ctime>

#include "gateway/egress_check.hpp"
#include "gateway/logging.hpp"

namespace tunnelgate::gateway {

namespace {

std::vector<std::string> egress_addresses(const config& cfg) {
  std::vector<std::string> out;
  if (cfg.egress.v4) out.push_back(cfg.egress.v4->to_string());
  if (cfg.egress.v6) out.push_back(cfg.egress.v6->to_string());
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : " ") + s;
  return out;
}

std::string diff_text(const std::vector<idp::change>& diff) {
  std::string out;
  for (const auto& c : diff) {
    if (c.kind == idp::change_kind::keep) continue;
    out += (out.empty() ? "" : " ") + std::string(1, static_cast<char>(c.kind)) + c.value;
  }
  return out;
}

double epoch_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

idp_sync::idp_sync(event_log& log) : log_(log) {}

idp_sync::~idp_sync() {
  stop(std::chrono::hours(1));
}

void idp_sync::configure(std::shared_ptr<const config> cfg) {
  const bool wanted = cfg->idp_sync.has_value() || !cfg->egress.check_url.empty();
  std::lock_guard lock(mutex_);
  cfg_ = std::move(cfg);
  dirty_ = true;
  // Targets no longer configured disappear from the status; new ones start as pending.
  std::vector<sync_status> next;
  auto keep = [&](const std::string& target) {
    auto it = std::find_if(status_.begin(), status_.end(),
                           [&](const sync_status& s) { return s.target == target; });
    if (it != status_.end()) {
      next.push_back(*it);
    } else {
      sync_status s;
      s.target = target;
      next.push_back(s);
    }
  };
  if (cfg_->idp_sync && cfg_->idp_sync->okta) keep("okta");
  if (cfg_->idp_sync && cfg_->idp_sync->entra) keep("entra");
  if (!cfg_->egress.check_url.empty()) keep("egress_check");
  status_ = std::move(next);
  if (wanted && !thread_.joinable() && !stopping_) thread_ = std::thread([this] { loop(); });
  wake_.notify_all();
}

bool idp_sync::stop(std::chrono::milliseconds bound) {
  std::unique_lock lock(mutex_);
  stopping_ = true;
  wake_.notify_all();
  if (!thread_.joinable()) return true;
  // A call to an IdP cannot be interrupted; wait for it only so long.
  if (!wake_.wait_for(lock, bound, [this] { return exited_; })) {
    thread_.detach();
    return false;
  }
  lock.unlock();
  thread_.join();
  return true;
}

void idp_sync::loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    auto cfg = cfg_;
    dirty_ = false;
    lock.unlock();
    round(cfg);
    lock.lock();
    const auto interval = cfg->idp_sync ? cfg->idp_sync->interval : milliseconds(300'000);
    wake_.wait_for(lock, interval, [this] { return stopping_ || dirty_; });
  }
  exited_ = true;
  wake_.notify_all();
}

void idp_sync::round(const std::shared_ptr<const config>& current) {
  const config& cfg = *current;
  // Clients live as long as one configuration generation (an OAuth token is reused).
  if (clients_for_ != current) {
    okta_.reset();
    entra_.reset();
    try {
      if (cfg.idp_sync && cfg.idp_sync->okta)
        okta_ = std::make_unique<idp::okta_client>(*cfg.idp_sync->okta);
      if (cfg.idp_sync && cfg.idp_sync->entra)
        entra_ = std::make_unique<idp::entra_client>(*cfg.idp_sync->entra);
    } catch (const idp::error& e) {
      // check-config builds the same clients, so this only happens if a file changed since.
      log_.event(spdlog::level::err, "idp_sync_failed",
                 {{"target", "config"}, {"error", e.what()}});
    }
    clients_for_ = current;
  }
  const auto addresses = egress_addresses(cfg);
  if (okta_) sync_provider(cfg, "okta", addresses);
  if (entra_) sync_provider(cfg, "entra", addresses);
  if (!cfg.egress.check_url.empty()) check_egress(cfg);
}

void idp_sync::sync_provider(const config& cfg, const std::string& target,
                             const std::vector<std::string>& addresses) {
  const auto& sc = *cfg.idp_sync;
  sync_status prev;
  for (const auto& s : status()) {
    if (s.target == target) prev = s;
  }
  sync_status next = prev;
  next.target = target;
  auto verify = [&] {
    return target == "okta" ? okta_->verify(addresses) : entra_->verify(addresses);
  };
  auto publish = [&] {
    return target == "okta" ? okta_->publish(addresses, sc.options)
                            : entra_->publish(addresses, sc.options);
  };
  const std::string where = target == "okta" ? "zone" : "named location";
  try {
    std::optional<idp::verify_result> before;
    try {
      before = verify();
    } catch (const idp::error& e) {
      // A missing zone is something publishing with create can fix; anything else is an error.
      if (!(sc.publish && sc.options.create && e.value() == idp::errc::not_found)) throw;
    }
    if (before && !before->ok() && prev.state == "in_zone") {
      ++next.drifts;
      log_.event(spdlog::level::err, "idp_drift",
                 {{"target", target},
                  {where == "zone" ? "zone" : "location", before->name},
                  {"id", before->id},
                  {"missing", join(before->missing)},
                  {"action", sc.publish ? "repairing" : "none (idp_sync.publish is false)"}});
    }
    if (sc.publish && (!before || !before->ok() || sc.options.exclusive)) {
      const auto r = publish();
      if (r.changed) {
        ++next.repairs;
        log_.event(spdlog::level::warn, "idp_published",
                   {{"target", target},
                    {"name", r.name},
                    {"id", r.id},
                    {"created", r.created ? "true" : "false"},
                    {"writes", r.writes},
                    {"changes", diff_text(r.diff)}});
      }
    }
    const auto after =
        (sc.publish && (!before || !before->ok() || sc.options.exclusive)) ? verify() : *before;
    next.state = after.ok() ? "in_zone" : "missing";
    next.detail =
        after.ok()
            ? join(after.present) + " in " + where + " \"" + after.name + "\" (" + after.id + ")"
            : (after.active ? "" : where + " not active; ") + "missing " + join(after.missing) +
                  " in " + where + " \"" + after.name + "\" (" + after.id + ")";
    if (!after.ok() && prev.state != "missing") {
      log_.event(spdlog::level::err, "idp_missing", {{"target", target}, {"detail", next.detail}});
    } else if (after.ok() && prev.state != "in_zone") {
      log_.event(spdlog::level::info, "idp_in_zone", {{"target", target}, {"detail", next.detail}});
    }
  } catch (const idp::error& e) {
    next.state = idp::is_refusal(e.value()) ? "missing" : "error";
    next.detail = e.what();
    log_.event(spdlog::level::err, "idp_sync_failed", {{"target", target}, {"error", e.what()}});
  }
  next.last_sync = std::chrono::system_clock::now();
  set(next);
}

void idp_sync::check_egress(const config& cfg) {
  sync_status next;
  for (const auto& s : status()) {
    if (s.target == "egress_check") next = s;
  }
  next.target = "egress_check";
  const auto source = cfg.egress.v4 ? *cfg.egress.v4 : *cfg.egress.v6;
  try {
    const auto seen = fetch_seen_address(cfg.egress.check_url, source, cfg.egress.check_ca,
                                         std::chrono::seconds(10));
    const auto addresses = egress_addresses(cfg);
    const bool match = std::find(addresses.begin(), addresses.end(), seen) != addresses.end();
    const std::string was = next.state;
    next.state = match ? "match" : "mismatch";
    next.detail = cfg.egress.check_url + " sees " + seen +
                  (match ? "" : ", not the egress address " + join(addresses));
    if (!match && was != "mismatch") {
      log_.event(spdlog::level::err, "egress_mismatch",
                 {{"url", cfg.egress.check_url}, {"seen", seen}, {"egress", join(addresses)}});
    } else if (match && was != "match") {
      log_.event(spdlog::level::info, "egress_checked",
                 {{"url", cfg.egress.check_url}, {"seen", seen}});
    }
  } catch (const std::exception& e) {
    next.state = "error";
    next.detail = e.what();
    log_.event(spdlog::level::err, "egress_check_failed",
               {{"url", cfg.egress.check_url}, {"error", e.what()}});
  }
  next.last_sync = std::chrono::system_clock::now();
  set(next);
}

void idp_sync::set(const sync_status& s) {
  std::lock_guard lock(mutex_);
  for (auto& x : status_) {
    if (x.target == s.target) x = s;
  }
}

std::vector<sync_status> idp_sync::status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

std::string idp_sync::render_metrics() const {
  const auto all = status();
  std::string out;
  static const std::vector<std::string> zone_states = {"pending", "in_zone", "missing", "error"};
  static const std::vector<std::string> check_states = {"pending", "match", "mismatch", "error"};
  out +=
      "# HELP tunnelgate_idp_zone_state Whether the egress addresses are in the identity "
      "provider's trusted zone (1 for the current state)\n"
      "# TYPE tunnelgate_idp_zone_state gauge\n";
  for (const auto& s : all) {
    if (s.target == "egress_check") continue;
    for (const auto& st : zone_states) {
      out += "tunnelgate_idp_zone_state{provider=\"" + s.target + "\",state=\"" + st + "\"} " +
             (s.state == st ? "1" : "0") + "\n";
    }
  }
  out +=
      "# HELP tunnelgate_idp_last_sync_timestamp_seconds When the last sync with the provider "
      "ended (0: not yet)\n"
      "# TYPE tunnelgate_idp_last_sync_timestamp_seconds gauge\n";
  for (const auto& s : all) {
    if (s.target == "egress_check") continue;
    out += "tunnelgate_idp_last_sync_timestamp_seconds{provider=\"" + s.target + "\"} " +
           std::to_string(s.last_sync == std::chrono::system_clock::time_point{}
                              ? 0.0
                              : epoch_seconds(s.last_sync)) +
           "\n";
  }
  out +=
      "# HELP tunnelgate_idp_drift_total Times an egress address was found missing from the "
      "zone after it had been there\n"
      "# TYPE tunnelgate_idp_drift_total counter\n";
  for (const auto& s : all) {
    if (s.target == "egress_check") continue;
    out += "tunnelgate_idp_drift_total{provider=\"" + s.target + "\"} " + std::to_string(s.drifts) +
           "\n";
  }
  for (const auto& s : all) {
    if (s.target != "egress_check") continue;
    out +=
        "# HELP tunnelgate_egress_check_state What the egress check URL sees compared with the "
        "egress address (1 for the current state)\n"
        "# TYPE tunnelgate_egress_check_state gauge\n";
    for (const auto& st : check_states) {
      out += "tunnelgate_egress_check_state{state=\"" + st + "\"} " + (s.state == st ? "1" : "0") +
             "\n";
    }
  }
  return out;
}

std::string idp_sync::readiness(bool& ready) const {
  std::string out;
  ready = true;
  for (const auto& s : status()) {
    out += s.target + ": " + s.state;
    if (!s.detail.empty()) out += " (" + s.detail + ")";
    if (s.last_sync != std::chrono::system_clock::time_point{}) {
      const std::time_t t = std::chrono::system_clock::to_time_t(s.last_sync);
      std::tm tm{};
      gmtime_r(&t, &tm);
      char buf[32];
      std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
      out += std::string(", last sync ") + buf;
    }
    out += "\n";
    if (s.state == "pending" || s.state == "missing" || s.state == "mismatch") ready = false;
  }
  return out;
}

}  // namespace tunnelgate::gateway
