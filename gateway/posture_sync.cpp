// posture_sync: the IdP actions that follow a device's compliance (see posture_sync.hpp).
#include "gateway/posture_sync.hpp"

#include <algorithm>
#include <random>
#include <tuple>
#include <variant>

#include "gateway/logging.hpp"
#include "idp/idp.hpp"
#include "uem/uem.hpp"

namespace tunnelgate::gateway {

using namespace std::chrono_literals;

std::string_view to_string(posture_provider p) noexcept {
  switch (p) {
    case posture_provider::okta:
      return "okta";
    case posture_provider::entra:
      return "entra";
    case posture_provider::caep:
      return "caep";
  }
  return "unknown";
}

std::string_view to_string(posture_action a) noexcept {
  switch (a) {
    case posture_action::suspend_device:
      return "suspend_device";
    case posture_action::unsuspend_device:
      return "unsuspend_device";
    case posture_action::clear_sessions:
      return "clear_sessions";
    case posture_action::revoke_sessions:
      return "revoke_sessions";
    case posture_action::send_event:
      return "send_event";
  }
  return "unknown";
}

std::string_view to_string(posture_result r) noexcept {
  switch (r) {
    case posture_result::done:
      return "done";
    case posture_result::already:
      return "already";
    case posture_result::retry:
      return "retry";
    case posture_result::device_not_found:
      return "device_not_found";
    case posture_result::device_ambiguous:
      return "device_ambiguous";
    case posture_result::device_inactive:
      return "device_inactive";
    case posture_result::not_ours:
      return "not_ours";
    case posture_result::user_not_found:
      return "user_not_found";
    case posture_result::user_ambiguous:
      return "user_ambiguous";
    case posture_result::no_user:
      return "no_user";
    case posture_result::superseded:
      return "superseded";
  }
  return "unknown";
}

std::string posture_report::device() const {
  return udid.empty() ? "serial:" + serial : "udid:" + udid;
}

namespace {

posture_provider provider_of(posture_action a) {
  switch (a) {
    case posture_action::suspend_device:
    case posture_action::unsuspend_device:
    case posture_action::clear_sessions:
      return posture_provider::okta;
    case posture_action::revoke_sessions:
      return posture_provider::entra;
    case posture_action::send_event:
      return posture_provider::caep;
  }
  return posture_provider::okta;
}

/// Fills a report's identity from a UEM record, or from the key when there is none.
void fill_identity(posture_report& r, const uem::device_key& key,
                   const std::optional<uem::device_record>& rec) {
  if (rec) {
    r.udid = rec->udid;
    r.serial = rec->serial;
    r.platform = std::string(uem::map_platform(rec->platform));
    r.user_name = rec->user_name;
    r.user_email = rec->user_email;
  } else if (key.kind == uem::key_kind::udid) {
    r.udid = key.value;
  } else if (key.kind == uem::key_kind::serial) {
    r.serial = key.value;
  }
}

/// The clients one worker uses (they are synchronous and not thread-safe).
struct clients {
  explicit clients(const posture_sync_config& c) {
    if (c.okta) okta = std::make_unique<idp::okta_directory>(c.okta->settings);
    if (c.entra) entra = std::make_unique<idp::entra_directory>(c.entra->settings);
    if (c.caep) caep = std::make_unique<idp::caep_client>(*c.caep);
  }
  std::unique_ptr<idp::okta_directory> okta;
  std::unique_ptr<idp::entra_directory> entra;
  std::unique_ptr<idp::caep_client> caep;
};

/// What an attempt produced.
struct outcome {
  posture_result result = posture_result::done;
  std::string user;
  std::string detail;
  std::string suspended_id;  ///< set when this attempt suspended an Okta device
};

bool mobile(const posture_report& r) {
  if (r.platform == "ios" || r.platform == "android") return true;
  if (r.platform.empty()) return !r.udid.empty();  // unknown platform: the UDID if there is one
  return false;
}

/// The Okta device for the report (mobiles by UDID, desktops by serial number), decided from a
/// read by id, not from the search hit (search results can lag behind changes).
std::variant<idp::okta_device, outcome> find_okta_device(idp::okta_directory& okta,
                                                         const posture_report& r) {
  const bool by_udid = mobile(r);
  const auto& value = by_udid ? r.udid : r.serial;
  const char* name = by_udid ? "UDID" : "serial number";
  if (value.empty()) {
    return outcome{posture_result::device_not_found,
                   {},
                   std::string("the UEM gives no ") + name + " for the device",
                   {}};
  }
  const auto found =
      by_udid ? okta.find_devices_by_udid(value) : okta.find_devices_by_serial(value);
  if (found.empty()) {
    return outcome{posture_result::device_not_found,
                   {},
                   std::string("no Okta device has the ") + name + " " + value,
                   {}};
  }
  if (found.size() > 1) {
    std::string ids;
    for (const auto& d : found)
      ids += (ids.empty() ? "" : ", ") + d.id;
    return outcome{posture_result::device_ambiguous,
                   {},
                   std::to_string(found.size()) + " Okta devices have the " + name + " " + value +
                       " (" + ids + "): none is touched",
                   {}};
  }
  auto d = okta.get_device(found.front().id);
  if (!d) {
    return outcome{posture_result::device_not_found,
                   {},
                   "Okta device " + found.front().id + " is gone (404 on read)",
                   {}};
  }
  return *d;
}

outcome okta_suspend(idp::okta_directory& okta, const posture_report& r) {
  auto found = find_okta_device(okta, r);
  if (auto* o = std::get_if<outcome>(&found)) return *o;
  const auto& d = std::get<idp::okta_device>(found);
  if (d.status == "SUSPENDED") {
    return {posture_result::already, {}, "Okta device " + d.id + " is already SUSPENDED", {}};
  }
  if (d.status != "ACTIVE") {
    return {posture_result::device_inactive, {}, "Okta device " + d.id + " is " + d.status, {}};
  }
  okta.suspend_device(d.id);
  const auto by = mobile(r) ? " (UDID " + r.udid + ")" : " (serial number " + r.serial + ")";
  return {posture_result::done, {}, "Okta device " + d.id + by + " suspended", d.id};
}

/// `id`: the device this gateway suspended; empty = find it (tunnelctl apply).
outcome okta_unsuspend(idp::okta_directory& okta, const posture_report& r, const std::string& id) {
  std::optional<idp::okta_device> d;
  if (id.empty()) {
    auto found = find_okta_device(okta, r);
    if (auto* o = std::get_if<outcome>(&found)) return *o;
    d = std::get<idp::okta_device>(found);
  } else {
    d = okta.get_device(id);
    if (!d) return {posture_result::device_not_found, {}, "Okta device " + id + " is gone", {}};
  }
  if (d->status == "ACTIVE") {
    return {posture_result::already, {}, "Okta device " + d->id + " is already ACTIVE", {}};
  }
  if (d->status != "SUSPENDED") {
    return {posture_result::device_inactive, {}, "Okta device " + d->id + " is " + d->status, {}};
  }
  okta.unsuspend_device(d->id);
  return {posture_result::done, {}, "Okta device " + d->id + " unsuspended", {}};
}

outcome okta_clear_sessions(idp::okta_directory& okta, const posture_report& r) {
  std::vector<std::string> names;
  for (const auto* n : {&r.user_name, &r.user_email}) {
    if (!n->empty() && std::find(names.begin(), names.end(), *n) == names.end()) {
      names.push_back(*n);
    }
  }
  if (names.empty()) {
    return {posture_result::no_user, {}, "the UEM names no enrollment user or e-mail", {}};
  }
  for (const auto& name : names) {
    const auto users = okta.find_users(name);
    if (users.size() > 1) {
      std::string ids;
      for (const auto& u : users)
        ids += (ids.empty() ? "" : ", ") + u.id;
      return {posture_result::user_ambiguous,
              name,
              std::to_string(users.size()) + " Okta users match \"" + name + "\" (" + ids +
                  "): none is touched",
              {}};
    }
    if (users.size() == 1) {
      okta.clear_user_sessions(users.front().id);
      return {posture_result::done,
              users.front().login,
              "sessions and OAuth tokens of Okta user " + users.front().id + " cleared",
              {}};
    }
  }
  std::string tried;
  for (const auto& n : names)
    tried += (tried.empty() ? "\"" : " or \"") + n + "\"";
  return {posture_result::user_not_found,
          names.front(),
          "no Okta user has the login or e-mail " + tried,
          {}};
}

outcome entra_revoke(idp::entra_directory& entra, const posture_sync_config& cfg,
                     const posture_report& r) {
  const bool by_email = cfg.entra->user == posture_sync_config::entra_user::email;
  const auto& upn = by_email ? r.user_email : r.user_name;
  if (upn.empty()) {
    return {posture_result::no_user,
            {},
            std::string("the UEM gives no enrollment ") + (by_email ? "e-mail" : "user name"),
            {}};
  }
  try {
    entra.revoke_sign_in_sessions(upn);
  } catch (const idp::error& e) {
    if (e.value() != idp::errc::not_found) throw;
    return {posture_result::user_not_found, upn, e.what(), {}};
  }
  return {posture_result::done, upn, "sign-in sessions revoked", {}};
}

outcome caep_send(idp::caep_client& caep, const posture_report& r, bool compliant) {
  idp::caep_change c;
  c.device_id = r.udid.empty() ? r.serial : r.udid;
  c.user_email = r.user_email;
  c.compliant = compliant;
  c.when = std::chrono::system_clock::now();
  c.initiating_entity = "policy";
  c.reason_admin = "UEM verdict " + r.reason + " (" + r.event + ")";
  caep.send(c);
  return {posture_result::done,
          r.user_email,
          std::string("device-compliance-change ") + (compliant ? "compliant" : "not-compliant") +
              " delivered",
          {}};
}

/// One attempt of `a`; IdP failures come back as posture_result::retry with the error text.
outcome attempt(clients& c, const posture_sync_config& cfg, posture_action a,
                const posture_report& r, const std::string& suspended_id) {
  try {
    switch (a) {
      case posture_action::suspend_device:
        return okta_suspend(*c.okta, r);
      case posture_action::unsuspend_device:
        return okta_unsuspend(*c.okta, r, suspended_id);
      case posture_action::clear_sessions:
        return okta_clear_sessions(*c.okta, r);
      case posture_action::revoke_sessions:
        return entra_revoke(*c.entra, cfg, r);
      case posture_action::send_event:
        return caep_send(*c.caep, r, r.admitted);
    }
  } catch (const std::exception& e) {
    return {posture_result::retry, {}, e.what(), {}};
  }
  return {posture_result::retry, {}, "unknown action", {}};
}

/// The actions for a device turning (not) admitted, in the order they are queued.
std::vector<posture_action> actions_for(const posture_sync_config& cfg, bool revoke,
                                        bool suspended_by_us) {
  std::vector<posture_action> out;
  if (revoke) {
    if (cfg.okta && cfg.okta->suspend_devices) out.push_back(posture_action::suspend_device);
    if (cfg.okta && cfg.okta->clear_sessions) out.push_back(posture_action::clear_sessions);
    if (cfg.entra) out.push_back(posture_action::revoke_sessions);
    if (cfg.caep) out.push_back(posture_action::send_event);
  } else if (cfg.restore) {
    if (cfg.okta && cfg.okta->suspend_devices && suspended_by_us) {
      out.push_back(posture_action::unsuspend_device);
    }
    if (cfg.caep) out.push_back(posture_action::send_event);
  }
  return out;
}

const std::vector<double> latency_bounds{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300};

}  // namespace

std::optional<posture_report> posture_report_from(const uem::change& c) {
  if (!c.after || c.after->code == uem::reason::uem_unavailable) return std::nullopt;
  posture_report r;
  const auto& rec = c.after->device ? c.after->device : c.before->device;
  fill_identity(r, c.key, rec);
  if (r.udid.empty() && r.serial.empty()) return std::nullopt;
  r.admitted = c.after->admitted();
  r.reason = std::string(uem::to_string(c.after->code));
  r.event = std::string(c.cause);
  return r;
}

namespace {

/// The report for a webhook event's re-read; nullopt when the UEM could not be asked.
std::optional<posture_report> report_from_event(const uem::service::event_read& e) {
  if (!e.decision || e.decision->code == uem::reason::uem_unavailable) return std::nullopt;
  posture_report r;
  fill_identity(r, e.event.key, e.decision->device);
  if (r.udid.empty() && r.serial.empty()) return std::nullopt;
  r.admitted = e.decision->admitted();
  r.reason = std::string(uem::to_string(e.decision->code));
  r.event = "webhook \"" + e.event.event_type + "\" " +
            (e.event.event_id.empty() ? std::string("-") : e.event.event_id) + " (" +
            e.event.identity.substr(0, 8) + ")";
  r.named_event = true;
  if (e.event.received != steady_clock::time_point{}) r.observed = e.event.received;
  return r;
}

}  // namespace

void log_posture_audit(event_log& log, const posture_audit& a) {
  const bool fine = a.result == posture_result::done || a.result == posture_result::already;
  log.event(fine ? spdlog::level::info : spdlog::level::warn, "posture_sync",
            {{"device", a.device},
             {"user", a.user.empty() ? std::string("-") : a.user},
             {"provider", std::string(to_string(a.provider))},
             {"action", std::string(to_string(a.action))},
             {"result", std::string(to_string(a.result))},
             {"uem_event", a.event},
             {"attempt", a.attempt},
             {"seconds", a.seconds},
             {"detail", a.detail}});
}

std::vector<std::shared_ptr<void>> connect_posture_sync(uem::service& svc,
                                                        const std::shared_ptr<posture_sync>& sync) {
  std::weak_ptr<posture_sync> weak = sync;
  std::vector<std::shared_ptr<void>> subs;
  subs.push_back(svc.subscribe([weak](const uem::change& c) {
    if (auto r = posture_report_from(c)) {
      if (auto s = weak.lock()) s->submit(std::move(*r));
    }
  }));
  subs.push_back(svc.subscribe_events([weak](const uem::service::event_read& e) {
    if (auto r = report_from_event(e)) {
      if (auto s = weak.lock()) s->submit(std::move(*r));
    }
  }));
  return subs;
}

// ---------------------------------------------------------------------------------------------

struct posture_sync::state {
  struct task {
    std::string key;
    std::uint64_t generation = 0;
    posture_action action = posture_action::send_event;
    unsigned attempt = 0;
  };
  struct device_entry {
    posture_report report;
    bool revoked = false;  ///< the target: revocation (true) or restore (false)
    std::uint64_t generation = 0;
    std::size_t outstanding = 0;  ///< tasks of this generation queued or running
    std::size_t running = 0;      ///< attempts running now, of any generation
    std::string suspended_id;     ///< the Okta device this gateway suspended
  };

  state(const posture_sync_config& c, posture_audit_fn a) : cfg(c), audit(std::move(a)) {
    for (const auto act : {posture_action::suspend_device, posture_action::unsuspend_device,
                           posture_action::clear_sessions, posture_action::revoke_sessions,
                           posture_action::send_event}) {
      latency.emplace(act, std::make_unique<histogram>(
                               "tunnelgate_posture_sync_action_seconds",
                               "From the UEM event to a posture_sync action done", latency_bounds));
    }
  }

  const posture_sync_config cfg;
  const posture_audit_fn audit;
  std::string jwks;

  mutable std::mutex mutex;
  std::condition_variable wake;
  std::condition_variable exited_cv;
  std::map<std::string, device_entry> devices;
  std::multimap<steady_clock::time_point, task> queue;
  bool stopping = false;
  std::size_t exited = 0;
  std::vector<std::thread> workers;
  std::mt19937_64 rng{std::random_device{}()};

  mutable std::mutex metrics_mutex;
  std::map<std::tuple<posture_provider, posture_action, posture_result>, std::uint64_t> counts;
  std::map<posture_action, std::unique_ptr<histogram>> latency;

  void record(const posture_audit& a) {
    {
      std::lock_guard lock(metrics_mutex);
      ++counts[{a.provider, a.action, a.result}];
    }
    if (a.result == posture_result::done || a.result == posture_result::already) {
      latency.at(a.action)->observe(a.seconds);
    }
    if (audit) audit(a);
  }

  posture_audit make_audit(const posture_report& r, posture_action act, const outcome& o,
                           unsigned attempt_no) const {
    posture_audit a;
    a.device = r.device();
    a.user = o.user;
    a.provider = provider_of(act);
    a.action = act;
    a.result = o.result;
    a.event = r.event;
    a.detail = o.detail;
    a.attempt = attempt_no;
    a.seconds = std::chrono::duration<double>(steady_clock::now() - r.observed).count();
    return a;
  }

  /// Waits before attempt `n + 1`: retry_initial doubled per attempt, capped, ±20 % jitter.
  std::chrono::milliseconds backoff(unsigned n) {
    auto wait = cfg.retry_initial;
    for (unsigned i = 1; i < n && wait < cfg.retry_max; ++i)
      wait *= 2;
    wait = std::min(wait, cfg.retry_max);
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    return std::chrono::milliseconds(
        static_cast<long long>(static_cast<double>(wait.count()) * jitter(rng)));
  }

  void worker() {
    std::unique_ptr<clients> c;
    std::unique_lock lock(mutex);
    while (!stopping) {
      if (queue.empty()) {
        wake.wait(lock);
        continue;
      }
      const auto due = queue.begin()->first;
      if (due > steady_clock::now()) {
        wake.wait_until(lock, due);
        continue;
      }
      auto t = queue.begin()->second;
      queue.erase(queue.begin());
      const auto it = devices.find(t.key);
      if (it == devices.end() || it->second.generation != t.generation) continue;
      const auto report = it->second.report;
      const auto suspended_id = it->second.suspended_id;
      ++it->second.running;
      lock.unlock();
      outcome o;
      try {
        if (!c) c = std::make_unique<clients>(cfg);
        o = attempt(*c, cfg, t.action, report, suspended_id);
      } catch (const std::exception& e) {  // the clients could not be made (a key file gone)
        o = {posture_result::retry, {}, e.what(), {}};
      }
      ++t.attempt;
      auto line = make_audit(report, t.action, o, t.attempt);
      lock.lock();
      const auto now_it = devices.find(t.key);  // still there: `running` kept it
      auto& e = now_it->second;
      --e.running;
      if (e.generation == t.generation) {
        // The webhook event's name may have arrived while the attempt ran (submit()).
        line.event = e.report.event;
        if (!o.suspended_id.empty()) e.suspended_id = o.suspended_id;
        if (o.result == posture_result::retry) {
          queue.emplace(steady_clock::now() + backoff(t.attempt), t);
        } else {
          --e.outstanding;
        }
      } else if (!o.suspended_id.empty()) {
        // Suspended by an attempt that the device's return overtook: the restore must know.
        e.suspended_id = o.suspended_id;
        if (!e.revoked) requeue_unsuspend(now_it->first, e);
      }
      if (e.outstanding == 0 && e.running == 0 && !e.revoked) devices.erase(now_it);
      lock.unlock();
      record(line);
      lock.lock();
    }
    ++exited;
    exited_cv.notify_all();
  }

  /// Under mutex: a restore whose unsuspend was not queued because the suspension landed late.
  void requeue_unsuspend(const std::string& key, device_entry& e) {
    if (!cfg.restore || !cfg.okta || !cfg.okta->suspend_devices) return;
    ++e.outstanding;
    queue.emplace(steady_clock::now(),
                  task{key, e.generation, posture_action::unsuspend_device, 0});
    wake.notify_one();
  }
};

posture_sync::posture_sync(const posture_sync_config& cfg, posture_audit_fn audit)
    : state_(std::make_shared<state>(cfg, std::move(audit))) {
  clients check(cfg);  // throws idp::error for bad settings or an unreadable key
  if (check.caep) state_->jwks = check.caep->jwks();
  for (unsigned i = 0; i < std::max(1U, cfg.workers); ++i) {
    state_->workers.emplace_back([s = state_] { s->worker(); });
  }
}

posture_sync::~posture_sync() {
  stop(5s);
}

void posture_sync::submit(posture_report report) {
  auto& s = *state_;
  if (report.udid.empty() && report.serial.empty()) return;
  const auto key = report.device();
  std::vector<posture_audit> superseded;
  {
    std::lock_guard lock(s.mutex);
    if (s.stopping) return;
    auto it = s.devices.find(key);
    const bool revoke = !report.admitted;
    if (it == s.devices.end()) {
      if (!revoke) return;  // admitted and never revoked here: nothing to undo
      it = s.devices.emplace(key, state::device_entry{}).first;
      it->second.revoked = false;  // so the comparison below sees a change
    } else if (it->second.revoked == revoke) {
      // The same target: keep the newest identity. One webhook reaches here twice, as the
      // event's re-read and as the cache's change, in either order: the audit names the event.
      auto& cur = it->second.report;
      if (cur.named_event && !report.named_event) {
        report.event = std::move(cur.event);
        report.observed = cur.observed;
        report.named_event = true;
      }
      cur = std::move(report);
      return;
    }
    auto& e = it->second;
    // The device changed again: what is still queued for the old state is dropped.
    for (auto q = s.queue.begin(); q != s.queue.end();) {
      if (q->second.key == key) {
        outcome o{posture_result::superseded, {}, "the device changed again: " + report.reason, {}};
        superseded.push_back(s.make_audit(e.report, q->second.action, o, q->second.attempt));
        q = s.queue.erase(q);
      } else {
        ++q;
      }
    }
    ++e.generation;
    e.revoked = revoke;
    e.report = std::move(report);
    const auto acts = actions_for(s.cfg, revoke, !e.suspended_id.empty());
    if (revoke) e.suspended_id.clear();
    e.outstanding = acts.size();
    for (const auto a : acts) {
      s.queue.emplace(e.report.observed, state::task{key, e.generation, a, 0});
    }
    if (acts.empty() && !revoke && e.running == 0) s.devices.erase(it);
    s.wake.notify_all();
  }
  for (const auto& a : superseded)
    s.record(a);
}

std::vector<posture_audit> posture_sync::apply_once(const posture_report& report) {
  auto& s = *state_;
  clients c(s.cfg);
  std::vector<posture_audit> out;
  for (const auto a : actions_for(s.cfg, !report.admitted, true)) {
    const auto o = attempt(c, s.cfg, a, report, {});
    out.push_back(s.make_audit(report, a, o, 1));
    s.record(out.back());
  }
  return out;
}

std::string posture_sync::jwks() const {
  return state_->jwks;
}

std::size_t posture_sync::pending() const {
  std::lock_guard lock(state_->mutex);
  return state_->queue.size();
}

std::string posture_sync::render_metrics() const {
  const auto& s = *state_;
  std::string out =
      "# HELP tunnelgate_posture_sync_actions_total posture_sync action attempts by outcome\n"
      "# TYPE tunnelgate_posture_sync_actions_total counter\n";
  {
    std::lock_guard lock(s.metrics_mutex);
    for (const auto& [k, n] : s.counts) {
      const auto& [p, a, r] = k;
      out += "tunnelgate_posture_sync_actions_total{provider=\"" + std::string(to_string(p)) +
             "\",action=\"" + std::string(to_string(a)) + "\",result=\"" +
             std::string(to_string(r)) + "\"} " + std::to_string(n) + "\n";
    }
  }
  bool header = true;
  for (const auto& [a, h] : s.latency) {
    const auto labels = "provider=\"" + std::string(to_string(provider_of(a))) + "\",action=\"" +
                        std::string(to_string(a)) + "\"";
    h->render(out, labels, header);
    header = false;
  }
  out +=
      "# HELP tunnelgate_posture_sync_pending posture_sync actions queued (retries included)\n"
      "# TYPE tunnelgate_posture_sync_pending gauge\n"
      "tunnelgate_posture_sync_pending " +
      std::to_string(pending()) + "\n";
  return out;
}

bool posture_sync::stop(std::chrono::milliseconds bound) {
  auto& s = *state_;
  std::unique_lock lock(s.mutex);
  if (s.workers.empty()) return true;
  s.stopping = true;
  s.wake.notify_all();
  const bool all = s.exited_cv.wait_for(lock, bound, [&] { return s.exited == s.workers.size(); });
  auto threads = std::move(s.workers);
  s.workers.clear();
  lock.unlock();
  for (auto& t : threads) {
    if (all) {
      t.join();
    } else {
      t.detach();  // a call to an IdP still runs; the thread holds the state alive
    }
  }
  return all;
}

}  // namespace tunnelgate::gateway
