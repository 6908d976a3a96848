// tunnelctl posture-sync run / apply / jwks (gateway.hpp): posture_sync outside the daemon.
#include <signal.h>

#include <iomanip>
#include <iostream>

#include "gateway/gateway.hpp"
#include "gateway/logging.hpp"
#include "gateway/posture_sync.hpp"
#include "uem/uem.hpp"

namespace tunnelgate::gateway {

namespace {

/// The posture_sync (and log) sections of `file`, or the located errors printed to `err`.
std::shared_ptr<const config> load_posture(const std::filesystem::path& file, std::ostream& err) {
  auto c = load_config(file, load_scope::posture_sync);
  for (const auto& e : c.errors)
    err << e << "\n";
  return c.value;
}

std::optional<uem::config> load_uem_section(const std::filesystem::path& file, std::ostream& err) {
  auto u = uem::load_config_file(file);
  for (const auto& e : u.errors)
    err << e.to_string() << "\n";
  for (const auto& w : u.warnings)
    err << "warning: " << w.to_string() << "\n";
  return std::move(u.value);
}

}  // namespace

int posture_sync_jwks(const std::filesystem::path& file, std::ostream& out, std::ostream& err) {
  const auto cfg = load_posture(file, err);
  if (!cfg) return exit_config;
  if (!cfg->posture_sync->caep) {
    err << file.string() << ": posture_sync.caep is not configured: there is no signing key\n";
    return exit_config;
  }
  try {
    const idp::caep_client c(*cfg->posture_sync->caep);
    out << c.jwks() << "\n";
  } catch (const std::exception& e) {
    err << file.string() << ": posture_sync.caep: " << e.what() << "\n";
    return exit_config;
  }
  return exit_ok;
}

int posture_sync_apply(const std::filesystem::path& file, bool by_udid, const std::string& value,
                       std::ostream& out, std::ostream& err) {
  const auto cfg = load_posture(file, err);
  auto ucfg = load_uem_section(file, err);
  if (!cfg || !ucfg) return exit_config;
  uem::service_options opts;
  opts.webhook = false;
  opts.background_refresh = false;
  std::shared_ptr<uem::service> svc;
  try {
    svc = uem::service::create(*ucfg, opts);
  } catch (const std::exception& e) {
    err << file.string() << ": uem: " << e.what() << "\n";
    return exit_config;
  }
  const auto key = by_udid ? uem::device_key::udid(value) : uem::device_key::serial(value);
  const auto d = svc->check(key);
  svc->stop();
  if (d->code == uem::reason::uem_unavailable) {
    err << "the UEM could not be asked about " << key.to_string() << ": " << d->detail
        << "\nnothing was done; run again when the UEM answers\n";
    return 2;  // could not answer (tunnelctl's convention)
  }
  posture_report r;
  if (d->device) {
    r.udid = d->device->udid;
    r.serial = d->device->serial;
    r.platform = std::string(uem::map_platform(d->device->platform));
    r.user_name = d->device->user_name;
    r.user_email = d->device->user_email;
  } else {
    (by_udid ? r.udid : r.serial) = value;
  }
  r.admitted = d->admitted();
  r.reason = std::string(uem::to_string(d->code));
  r.event = "tunnelctl posture-sync apply";
  out << r.device() << ": uem " << d->summary_line() << "\n";
  std::vector<posture_audit> lines;
  try {
    auto s = *cfg->posture_sync;
    s.workers = 1;
    posture_sync sync(s, {});
    lines = sync.apply_once(r);
    sync.stop(std::chrono::seconds(1));
  } catch (const std::exception& e) {
    err << file.string() << ": posture_sync: " << e.what() << "\n";
    return exit_config;
  }
  if (lines.empty()) out << "nothing to do for an admitted device with this configuration\n";
  bool ok = true;
  for (const auto& l : lines) {
    ok = ok && (l.result == posture_result::done || l.result == posture_result::already);
    out << std::left << std::setw(6) << to_string(l.provider) << std::setw(18)
        << to_string(l.action) << std::setw(18) << to_string(l.result)
        << (l.user.empty() ? std::string("-") : l.user) << "  " << l.detail << "\n";
  }
  return ok ? exit_ok : exit_runtime;
}

int posture_sync_run(const std::filesystem::path& file, std::ostream& err) {
  const auto cfg = load_posture(file, err);
  auto ucfg = load_uem_section(file, err);
  if (!cfg || !ucfg) return exit_config;
  if (!ucfg->webhook.enabled) {
    err << file.string()
        << ": uem.webhook is not configured: posture-sync run acts on the UEM's event "
           "notifications; add uem.webhook (listen, username, password_file)\n";
    return exit_config;
  }
  // Block the stop signals before any thread starts, so that only sigwait below takes them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::unique_ptr<event_log> log;
  std::shared_ptr<uem::service> svc;
  std::shared_ptr<posture_sync> sync;
  try {
    log = std::make_unique<event_log>(cfg->log);
    svc = uem::service::create(*ucfg);
    event_log* l = log.get();
    sync = std::make_shared<posture_sync>(
        *cfg->posture_sync, [l](const posture_audit& a) { log_posture_audit(*l, a); });
  } catch (const std::exception& e) {
    err << file.string() << ": " << e.what() << "\n";
    return exit_config;
  }
  auto subs = connect_posture_sync(*svc, sync);
  const auto ep = svc->webhook_endpoint();
  log->event(spdlog::level::info, "posture_sync_running",
             {{"webhook", ep ? ep->address().to_string() + ":" + std::to_string(ep->port())
                             : std::string("-")}});
  int sig = 0;
  sigwait(&stop_signals, &sig);
  log->event(spdlog::level::info, "stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  svc->stop();
  subs.clear();
  if (!sync->stop(std::chrono::seconds(2))) {
    log->event(spdlog::level::warn, "posture_sync_abandoned",
               {{"detail", "a call to an identity provider was still running at exit"}});
    (void)new std::shared_ptr<posture_sync>(sync);  // its threads still use it, and the log
    (void)log.release();
  }
  log->event(spdlog::level::info, "stopped", {});
  return exit_ok;
}

}  // namespace tunnelgate::gateway
