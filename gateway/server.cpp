// The daemon: threads (one io_context each, STYLE P7), listeners (SO_REUSEPORT, one acceptor
// per thread), the admin listener, the compliance service, signals and reloads.
#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "gateway/admin.hpp"
#include "gateway/gateway.hpp"
#include "gateway/state.hpp"
#include "gateway/tls.hpp"
#include "gateway/uem_compliance.hpp"
#include "gateway/vpn/hub.hpp"
#include "uem/uem.hpp"

namespace tunnelgate::gateway {

namespace {

/// Descriptors kept for everything but tunnels: listeners, the admin API, the UEM client and
/// webhook, logs, the VPN's TUN and DNS, resolver sockets.
constexpr std::int64_t descriptor_reserve = 64;

using reuse_port = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

/// The `uem:` section of the same file, parsed by the uem library.
uem::config_result load_uem(const std::filesystem::path& file) {
  return uem::load_config_file(file);
}

struct loaded {
  std::shared_ptr<const config> cfg;
  std::optional<uem::config> uem_cfg;
  std::vector<std::string> errors;
  std::vector<std::string> warnings;  ///< valid but risky settings, each with its reason
};

loaded load_all(const std::filesystem::path& file) {
  loaded l;
  auto c = load_config(file);
  l.errors = c.errors;
  auto u = load_uem(file);
  // Both loaders read the same file: a YAML error (syntax, support/yaml.hpp limits) comes from
  // each, and is reported once.
  for (const auto& e : u.errors) {
    if (std::find(l.errors.begin(), l.errors.end(), e.to_string()) == l.errors.end())
      l.errors.push_back(e.to_string());
  }
  for (const auto& w : u.warnings)
    l.warnings.push_back(w.to_string());
  if (l.errors.empty()) {
    l.cfg = c.value;
    l.uem_cfg = std::move(u.value);
  }
  return l;
}

void log_exception(shared_state& st, std::string_view what, const std::exception_ptr& e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    st.log->event(spdlog::level::err, "internal_error",
                  {{"where", std::string(what)}, {"error", ex.what()}});
  }
}

/// One descriptor kept in reserve per accept loop: when accept() fails for want of
/// descriptors, it is given up for a moment to take the waiting connection off the queue and
/// close it, so the device learns at once (instead of waiting in the backlog until it times out)
/// and the loop does not spin on the same error.
class spare_descriptor {
 public:
  spare_descriptor() { take(); }
  ~spare_descriptor() { give_up(); }
  spare_descriptor(const spare_descriptor&) = delete;
  spare_descriptor& operator=(const spare_descriptor&) = delete;
  bool held() const { return fd_ >= 0; }
  void take() {
    if (fd_ < 0) fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  void give_up() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

/// Answers an accept-time refusal (accept_control::admit decided it): the socket is closed
/// with a reset, before any TLS byte; counted always, logged once per source and reason per
/// accept_control::log_interval with the number of refusals not logged since.
void refuse_at_accept(shared_state& st, tcp::socket& s, const tcp::endpoint& peer,
                      const accept_control::decision& d) {
  boost::system::error_code ec;
  s.set_option(net::socket_base::linger(true, 0), ec);  // RST: no TIME_WAIT for a flood
  s.close(ec);
  const auto reason = to_string(d.refusal);
  st.stats.accept_refusals.inc({std::string(reason)});
  if (!d.log) return;
  const bool per_source = d.refusal == accept_refusal::source_pending_limit ||
                          d.refusal == accept_refusal::source_rate_limit;
  st.log->event(spdlog::level::warn, "accept_refused",
                {{"peer", endpoint_text(peer)},
                 {"source", per_source ? to_string(source_of(peer.address())) : std::string()},
                 {"reason", std::string(reason)},
                 {"unlogged_since_last", std::to_string(d.quiet)},
                 {"detail", std::string(remedy(d.refusal))}});
}

awaitable<void> accept_loop(std::shared_ptr<shared_state> st, tcp::acceptor* acc, bool admin) {
  auto ex = co_await net::this_coro::executor;
  spare_descriptor spare;
  // This loop's thread's handshakes in progress (one acceptor per thread).
  const auto handshakes = std::make_shared<handshake_counter>(0);
  for (;;) {
    boost::system::error_code ec;
    tcp::socket s = co_await acc->async_accept(net::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == net::error::operation_aborted || st->stopping || !acc->is_open()) break;
      const bool fds = local_shortage(ec) == "descriptors";
      bool shed = false;
      if (fds) {
        st->stats.exhausted.inc({"accept", "descriptors"});
        if (spare.held()) {
          spare.give_up();
          boost::system::error_code aec;
          acc->non_blocking(true, aec);  // never block the thread: would_block if none waits
          tcp::socket waiting = acc->accept(aec);
          shed = !aec;
          waiting.close(aec);
          spare.take();
        }
      }
      st->log->event(
          spdlog::level::err, "accept_failed",
          {{"error", ec.message()},
           {"detail", fds ? std::string("out of descriptors (tunnelgate_descriptor_limit): ") +
                                (shed ? "the waiting connection was closed; " : "") +
                                "raise LimitNOFILE or add gateways"
                          : std::string()}});
      if (shed) continue;
      // Nothing could be taken off the queue: back off briefly instead of spinning.
      net::steady_timer t(ex, std::chrono::milliseconds(100));
      co_await t.async_wait(net::redirect_error(use_awaitable, ec));
      continue;
    }
    if (admin) {
      net::co_spawn(ex, run_admin_connection(st, std::move(s)),
                    [st](const std::exception_ptr& e) { log_exception(*st, "admin", e); });
      continue;
    }
    const auto rt = st->current();
    boost::system::error_code pec;
    const auto peer = s.remote_endpoint(pec);
    if (pec) {  // reset before we looked: nothing to serve, nothing to count
      s.close(pec);
      continue;
    }
    auto d = st->accept->admit(peer.address(), accept_limits_of(rt->cfg->limits), handshakes,
                               accept_control::clock::now());
    if (d.refusal != accept_refusal::none) {
      refuse_at_accept(*st, s, peer, d);
      continue;
    }
    net::co_spawn(ex, run_connection(st, std::move(s), std::move(d.ticket)),
                  [st](const std::exception_ptr& e) { log_exception(*st, "session", e); });
  }
}

class daemon {
 public:
  explicit daemon(std::filesystem::path file) : file_(std::move(file)) {}

  int run() {
    auto l = load_all(file_);
    if (!l.errors.empty()) {
      for (const auto& e : l.errors)
        std::cerr << e << "\n";
      std::cerr << "tunnelgate: " << l.errors.size() << " configuration error(s); not started\n";
      return 2;
    }
    cfg_ = l.cfg;
    st_ = std::make_shared<shared_state>();
    st_->log = std::make_unique<event_log>(cfg_->log);
    for (const auto& w : l.warnings)
      st_->log->event(spdlog::level::warn, "config_warning", {{"warning", w}});
    raise_descriptor_limit();
    try {
      start(*l.uem_cfg);
    } catch (const std::exception& e) {
      std::cerr << "tunnelgate: " << e.what() << "\n";
      st_->log->event(spdlog::level::critical, "start_failed", {{"error", e.what()}});
      if (st_->vpn) st_->vpn->stop();
      stop_everything();
      return 2;
    }
    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < ctxs_.size(); ++i) {
      threads.emplace_back([c = ctxs_[i].get()] { c->run(); });
    }
    ctxs_[0]->run();
    for (auto& t : threads)
      t.join();
    if (uem_) uem_->stop();
    if (st_->vpn) st_->vpn->stop();  // the TUN, the nft table and the sysctls go back
    if (st_->idp && !st_->idp->stop(std::chrono::seconds(2))) {
      // A sync call is stuck in a slow IdP: do not wait for it. Its thread still uses the
      // state and the log, so they stay alive (leaked on purpose) until the process exits.
      st_->log->event(spdlog::level::warn, "idp_sync_abandoned",
                      {{"detail", "a call to the identity provider was still running at exit"}});
      (void)new std::shared_ptr<shared_state>(st_);
    }
    st_->log->event(spdlog::level::info, "stopped", {});
    return 0;
  }

 private:
  void start(const uem::config& uem_cfg) {
    const unsigned n =
        cfg_->threads != 0 ? cfg_->threads : std::max(1U, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) {
      ctxs_.push_back(std::make_unique<net::io_context>(1));
      guards_.emplace_back(net::make_work_guard(*ctxs_.back()));
    }
    // Listeners first, so the egress guard knows every endpoint of ours (ports resolved).
    for (const auto& want : cfg_->listen) {
      tcp::endpoint ep = want;
      for (unsigned i = 0; i < n; ++i) {
        auto acc = std::make_unique<tcp::acceptor>(*ctxs_[i]);
        bind(*acc, ep, true, "listen " + endpoint_text(want));
        ep = acc->local_endpoint();
        acceptors_.push_back(std::move(acc));
      }
      own_.push_back(ep);
      st_->log->event(spdlog::level::info, "listening",
                      {{"address", endpoint_text(ep)}, {"threads", std::to_string(n)}});
    }
    if (cfg_->admin.listen) {
      admin_ = std::make_unique<tcp::acceptor>(*ctxs_[0]);
      bind(*admin_, *cfg_->admin.listen, false,
           "admin.listen " + endpoint_text(*cfg_->admin.listen));
      own_.push_back(admin_->local_endpoint());
      st_->log->event(spdlog::level::info, "admin_listening",
                      {{"address", endpoint_text(admin_->local_endpoint())}});
    }
    forget_after_ = uem_cfg.cache.positive_ttl;
    try {
      uem_ = uem::service::create(uem_cfg);
    } catch (const std::system_error& e) {
      throw std::runtime_error(file_.string() + ": uem: " + e.what());
    }
    if (auto w = uem_->webhook_endpoint()) {
      own_.push_back(*w);
      st_->log->event(spdlog::level::info, "webhook_listening", {{"address", endpoint_text(*w)}});
    }
    st_->comp = make_uem_compliance(uem_);
    std::weak_ptr<shared_state> weak = st_;
    st_->comp->on_refused([weak](const std::string& udid, const std::string& reason) {
      if (auto st = weak.lock()) revoke_device(*st, udid, reason);
    });
    // The VPN's in-tunnel DNS server is one of ours too.
    if (cfg_->vpn && cfg_->vpn->dns) own_.emplace_back(cfg_->vpn->tunnel_address(), 53);
    st_->host->refresh();
    st_->set_current(make_runtime(cfg_, own_, st_->host));
    log_trust_warnings(st_->current()->trust->summary().warnings);
    if (cfg_->vpn) {
      // The TUN, its NAT and the in-tunnel DNS server.
      st_->vpn = vpn_hub::start(st_.get(), cfg_, ctxs_[0]->get_executor());
      st_->host->refresh();  // the tunnel address is the host's now
    }
    st_->idp = std::make_unique<idp_sync>(*st_->log);
    st_->idp->configure(cfg_);

    for (std::size_t i = 0; i < acceptors_.size(); ++i) {
      net::co_spawn(acceptors_[i]->get_executor(), accept_loop(st_, acceptors_[i].get(), false),
                    [st = st_](const std::exception_ptr& e) { log_exception(*st, "accept", e); });
    }
    if (admin_) {
      net::co_spawn(
          *ctxs_[0], accept_loop(st_, admin_.get(), true),
          [st = st_](const std::exception_ptr& e) { log_exception(*st, "admin-accept", e); });
    }
    signals_ = std::make_unique<net::signal_set>(*ctxs_[0], SIGHUP, SIGTERM, SIGINT);
    wait_signal();
    files_timer_ = std::make_unique<net::steady_timer>(*ctxs_[0]);
    watch_files();
    st_->log->event(
        spdlog::level::info, "started",
        {{"config", file_.string()},
         {"egress", (cfg_->egress.v4 ? cfg_->egress.v4->to_string() : std::string()) +
                        (cfg_->egress.v4 && cfg_->egress.v6 ? "," : "") +
                        (cfg_->egress.v6 ? cfg_->egress.v6->to_string() : std::string())}});
  }

  /// Every tunnel holds two descriptors (device, egress): the soft RLIMIT_NOFILE goes up to
  /// the hard one, and the capacity that implies is logged and exported.
  void raise_descriptor_limit() {
    rlimit rl{};
    std::string note;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      const auto before = rl.rlim_cur;
      rl.rlim_cur = rl.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        note = std::string("could not raise the soft limit: ") + std::strerror(errno);
        rl.rlim_cur = before;
      }
    }
    const auto limit = static_cast<std::int64_t>(std::min<rlim_t>(rl.rlim_cur, 1U << 30));
    const std::int64_t capacity = std::max<std::int64_t>(0, (limit - descriptor_reserve) / 2);
    st_->stats.descriptor_limit = limit;
    st_->stats.tunnel_capacity = capacity;
    log_fields f{{"limit", std::to_string(limit)},
                 {"hard_limit", std::to_string(std::min<rlim_t>(rl.rlim_max, 1U << 30))},
                 {"tunnel_capacity", std::to_string(capacity)},
                 {"max_connections", std::to_string(cfg_->limits.max_connections)}};
    if (!note.empty()) f.emplace_back("detail", note);
    const bool short_of = static_cast<std::int64_t>(cfg_->limits.max_connections) > capacity;
    if (short_of) {
      f.emplace_back("warning",
                     "limits.max_connections exceeds what the descriptor limit holds; raise "
                     "LimitNOFILE (systemd) or the hard limit (ulimit -Hn), or lower "
                     "limits.max_connections");
    }
    st_->log->event(short_of ? spdlog::level::warn : spdlog::level::info, "descriptor_limit", f);
  }

  void bind(tcp::acceptor& acc, const tcp::endpoint& ep, bool share, const std::string& what) {
    boost::system::error_code ec;
    acc.open(ep.protocol(), ec);
    if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && share) acc.set_option(reuse_port(true), ec);
    if (!ec && ep.address().is_v6()) acc.set_option(net::ip::v6_only(true), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error(what + ": cannot listen: " + ec.message());
  }

  void wait_signal() {
    signals_->async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        reload();
        wait_signal();
        return;
      }
      shutdown(sig == SIGTERM ? "SIGTERM" : "SIGINT");
    });
  }

  /// CRLs and the CA bundle change on disk without a SIGHUP: pick them up every 2 s.
  void watch_files() {
    files_timer_->expires_after(std::chrono::seconds(2));
    files_timer_->async_wait([this](const boost::system::error_code& ec) {
      if (ec || st_->stopping) return;
      give_back_memory();
      // Devices without sessions for a whole positive TTL leave the UEM cache, so its
      // background refresh costs UEM requests only for devices that are (recently) connected.
      const auto n = st_->registry.sweep_idle(forget_after_, [this](const std::string& udid) {
        uem_->forget(uem::device_key::udid(udid));
      });
      st_->stats.devices_forgotten += n;
      // A new address on an interface must never be reachable through the tunnel.
      if (st_->host->refresh()) {
        st_->log->event(spdlog::level::info, "host_addresses_changed",
                        {{"addresses", std::to_string(st_->host->addresses().size())}});
      }
      if (auto rt = st_->current()) {
        const auto r = rt->trust->reload_if_changed();
        if (r.changed) {
          st_->log->event(spdlog::level::info, "trust_reloaded",
                          {{"ca", rt->cfg->tls.client_ca.string()}});
          log_trust_warnings(r.warnings);
          trust_changed();
        } else if (r.error) {
          st_->log->event(spdlog::level::err, "trust_reload_failed", {{"error", r.message}});
        }
      }
      watch_files();
    });
  }

  /// glibc keeps freed memory for reuse: after many connections closed (half of the high-water
  /// mark, and at least 256), hand the free pages back to the system so RSS follows the load.
  void give_back_memory() {
    const auto now = std::max<std::int64_t>(0, st_->stats.active_connections.load());
    high_water_ = std::max(high_water_, now);
    if (high_water_ - now >= 256 && now <= high_water_ / 2) {
      malloc_trim(0);
      high_water_ = now;
    }
  }

  /// What the trust store noticed at load: CAs without a CRL, expired CA certificates, stale
  /// CRLs. Each line names the file and what to do.
  void log_trust_warnings(const std::vector<std::string>& warnings) {
    for (const auto& w : warnings)
      st_->log->event(spdlog::level::warn, "trust_warning", {{"warning", w}});
  }

  /// The CA bundle or a CRL changed: every open session checks its certificate again (a
  /// revoked one closes with reason=revoked), and connections still being admitted do so once
  /// registered (they compare the generation).
  void trust_changed() {
    ++st_->trust_generation;
    if (auto rt = st_->current()) flush_sessions(*rt->tls);  // no resumption across the change
    const auto n = st_->registry.recheck_all();
    st_->log->event(spdlog::level::info, "sessions_rechecked",
                    {{"sessions", std::to_string(n)}, {"cause", "trust_changed"}});
  }

  void reload() {
    auto l = load_all(file_);
    if (!l.errors.empty()) {
      for (const auto& e : l.errors)
        st_->log->event(spdlog::level::err, "reload_refused", {{"error", e}});
      return;
    }
    for (const auto& w : l.warnings)
      st_->log->event(spdlog::level::warn, "config_warning", {{"warning", w}});
    try {
      auto rt = make_runtime(l.cfg, own_, st_->host);
      if (l.cfg->listen != cfg_->listen || l.cfg->admin.listen != cfg_->admin.listen ||
          l.cfg->vpn != cfg_->vpn) {
        st_->log->event(
            spdlog::level::warn, "reload_partial",
            {{"detail", "listen, admin.listen and vpn changes take effect at the next restart"}});
      }
      log_trust_warnings(rt->trust->summary().warnings);
      st_->set_current(std::move(rt));
      cfg_ = l.cfg;
      st_->idp->configure(cfg_);
      trust_changed();  // the new configuration's CA bundle and CRLs apply to open sessions too
      st_->log->event(
          spdlog::level::info, "reloaded",
          {{"config", file_.string()}, {"sessions", std::to_string(st_->registry.size())}});
    } catch (const std::exception& e) {
      st_->log->event(spdlog::level::err, "reload_refused", {{"error", e.what()}});
    }
  }

  void shutdown(const std::string& why) {
    if (st_->stopping.exchange(true)) return;
    st_->log->event(spdlog::level::info, "stopping",
                    {{"signal", why}, {"sessions", std::to_string(st_->registry.size())}});
    for (auto& acc : acceptors_) {
      net::post(acc->get_executor(), [a = acc.get()] {
        boost::system::error_code ignored;
        a->close(ignored);
      });
    }
    if (admin_) {
      boost::system::error_code ignored;
      admin_->close(ignored);
    }
    signals_->cancel();
    files_timer_->cancel();
    st_->registry.kill_all("shutdown");
    deadline_ = std::chrono::steady_clock::now() + cfg_->limits.shutdown_grace;
    drain_timer_ = std::make_unique<net::steady_timer>(*ctxs_[0]);
    drain();
  }

  void drain() {
    if (st_->registry.size() == 0 || std::chrono::steady_clock::now() >= deadline_) {
      stop_everything();
      return;
    }
    drain_timer_->expires_after(std::chrono::milliseconds(20));
    drain_timer_->async_wait([this](const boost::system::error_code&) { drain(); });
  }

  void stop_everything() {
    guards_.clear();
    for (auto& c : ctxs_)
      c->stop();
  }

  std::filesystem::path file_;
  std::shared_ptr<const config> cfg_;
  std::shared_ptr<shared_state> st_;
  std::vector<std::unique_ptr<net::io_context>> ctxs_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards_;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
  std::unique_ptr<tcp::acceptor> admin_;
  std::vector<tcp::endpoint> own_;
  std::shared_ptr<uem::service> uem_;
  std::chrono::steady_clock::duration forget_after_{};  ///< uem positive TTL at start
  std::unique_ptr<net::signal_set> signals_;
  std::unique_ptr<net::steady_timer> files_timer_;
  std::unique_ptr<net::steady_timer> drain_timer_;
  std::chrono::steady_clock::time_point deadline_;
  std::int64_t high_water_ = 0;  ///< open connections at most since the last malloc_trim
};

}  // namespace

bool check_config(const std::filesystem::path& file, std::ostream& err) {
  auto l = load_all(file);
  for (const auto& e : l.errors)
    err << e << "\n";
  if (!l.errors.empty()) return false;
  try {
    auto host = std::make_shared<host_addresses>();
    host->refresh();
    const auto rt = make_runtime(l.cfg, {}, host);
    for (const auto& w : l.warnings)
      err << "warning: " << w << "\n";
    for (const auto& w : rt->trust->summary().warnings)
      err << "warning: " << file.string() << ": tls: " << w << "\n";
    net::io_context io;
    (void)uem::make_source(*l.uem_cfg, io.get_executor());
  } catch (const std::exception& e) {
    err << e.what() << "\n";
    return false;
  }
  return true;
}

int run(const std::filesystem::path& file) {
  daemon d(file);
  return d.run();
}

}  // namespace tunnelgate::gateway
