// The daemon: threads (one io_context each, STYLE P7), listeners (SO_REUSEPORT, one acceptor
// per thread), the admin listener, the compliance service, signals and reloads.
#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "gateway/admin.hpp"
#include "gateway/gateway.hpp"
#include "gateway/proxy_accept.hpp"
#include "gateway/sd_notify.hpp"
#include "gateway/state.hpp"
#include "gateway/tls.hpp"
#include "gateway/uem_compliance.hpp"
#include "gateway/vpn/hub.hpp"
#include "support/yaml.hpp"
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
  std::string uem_text;      ///< the `uem:` section as YAML, to tell a reload that it changed
  std::string posture_text;  ///< the same for `posture_sync:`
  std::vector<std::string> errors;
  std::vector<std::string> warnings;  ///< valid but risky settings, each with its reason
};

/// Two listening endpoints that cannot both be bound: the same port on the same address, or
/// on the wildcard address of the same family. Port 0 (any free port) never collides.
bool collide(const tcp::endpoint& a, const tcp::endpoint& b) {
  if (a.port() == 0 || a.port() != b.port()) return false;
  if (a.address().is_v4() != b.address().is_v4()) return false;
  return a.address() == b.address() || a.address().is_unspecified() || b.address().is_unspecified();
}

/// Every listener the file asks for (device listeners, admin, UEM webhook, the VPN's DNS),
/// each named by its key and place in the file; two that collide are an error at the later
/// one, as `listen` would fail at start.
void check_listeners(const std::filesystem::path& file, const config& cfg, const uem::config& u,
                     std::vector<std::string>& errors) {
  const auto doc =
      support::read_yaml_file(file, "gateway configuration", support::config_yaml_limits);
  if (!doc) return;  // already reported by the loaders
  struct listener {
    std::string key;
    tcp::endpoint ep;
    YAML::Node node;
  };
  std::vector<listener> all;
  for (std::size_t i = 0; i < cfg.listen.size(); ++i) {
    const auto n = doc.root["listen"];
    all.push_back({"listen[" + std::to_string(i) + "]", cfg.listen[i],
                   n.IsSequence() && i < n.size() ? n[i] : n});
  }
  if (cfg.admin.listen)
    all.push_back({"admin.listen", *cfg.admin.listen, doc.root["admin"]["listen"]});
  if (u.webhook.enabled)
    all.push_back({"uem.webhook.listen", u.webhook.listen, doc.root["uem"]["webhook"]["listen"]});
  if (cfg.vpn && cfg.vpn->dns)
    all.push_back({"vpn.dns (the tunnel address, port 53)",
                   tcp::endpoint(cfg.vpn->tunnel_address(), 53), doc.root["vpn"]["pool"]});
  for (std::size_t j = 1; j < all.size(); ++j) {
    for (std::size_t i = 0; i < j; ++i) {
      if (!collide(all[i].ep, all[j].ep)) continue;
      errors.push_back(support::located(file.string(), all[j].node,
                                        all[j].key + ": " + endpoint_text(all[j].ep) + " is also " +
                                            all[i].key + " (" + endpoint_text(all[i].ep) +
                                            "): two listeners cannot share an address and "
                                            "port; give each its own port"));
      break;
    }
  }
}

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
    if (const auto doc =
            support::read_yaml_file(file, "gateway configuration", support::config_yaml_limits);
        doc) {
      l.uem_text = YAML::Dump(doc.root["uem"]);
      l.posture_text = YAML::Dump(doc.root["posture_sync"]);
    }
    check_listeners(file, *l.cfg, *l.uem_cfg, l.errors);
    if (!l.errors.empty()) {
      l.cfg.reset();
      l.uem_cfg.reset();
    }
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
                 {"unlogged_since_last", d.quiet},
                 {"detail", std::string(remedy(d.refusal))}});
}

/// `proxy`: the listener's proxy_protocol options (null: devices connect directly).
awaitable<void> accept_loop(std::shared_ptr<shared_state> st, tcp::acceptor* acc, bool admin,
                            std::shared_ptr<const proxy_protocol_config> proxy = nullptr) {
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
    if (proxy) {  // the limits apply to the device the header names (proxy_accept.hpp)
      net::co_spawn(ex, run_proxied_connection(st, std::move(s), peer, proxy, handshakes),
                    [st](const std::exception_ptr& e) { log_exception(*st, "session", e); });
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

std::string locate_message(const std::filesystem::path& file, std::string msg);

/// The admin API's server context (admin.tls): TLS 1.2 or later, the certificate chain and its
/// key. Throws config_error naming the key that is wrong.
std::shared_ptr<ssl::context> make_admin_tls(const admin_config& a);

/// A start-time failure that is the configuration's fault (exit_config, not restarted).
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::shared_ptr<ssl::context> make_admin_tls(const admin_config& a) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                   ssl::context::single_dh_use);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(a.tls_cert.string(), ec);
  if (ec) {
    throw config_error("admin.tls.cert: cannot load the certificate chain from " +
                       a.tls_cert.string() + " (" + ec.message() + ")");
  }
  ctx->use_private_key_file(a.tls_key.string(), ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    throw config_error("admin.tls.key: cannot load the private key of admin.tls.cert from " +
                       a.tls_key.string() +
                       (ec ? " (" + ec.message() + ")" : " (it does not match)"));
  }
  return ctx;
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
      return exit_config;
    }
    cfg_ = l.cfg;
    uem_text_ = l.uem_text;
    posture_text_ = l.posture_text;
    st_ = std::make_shared<shared_state>();
    try {
      st_->log = std::make_unique<event_log>(cfg_->log);
    } catch (const std::exception& e) {
      std::cerr << "tunnelgate: " << e.what() << "\n";
      return exit_config;
    }
    st_->stats.reloads.last_success_unix = unix_now();
    st_->reload = [this] { return reload(); };
    for (const auto& w : l.warnings)
      st_->log->event(spdlog::level::warn, "config_warning", {{"warning", w}});
    raise_descriptor_limit();
    int failed = exit_ok;
    try {
      start(*l.uem_cfg);
    } catch (const config_error& e) {
      std::cerr << locate_message(file_, e.what()) << "\n";
      st_->log->event(spdlog::level::critical, "start_failed",
                      {{"error", e.what()}, {"exit_code", static_cast<int>(exit_config)}});
      failed = exit_config;
    } catch (const std::exception& e) {
      std::cerr << "tunnelgate: " << e.what() << "\n";
      st_->log->event(spdlog::level::critical, "start_failed",
                      {{"error", e.what()}, {"exit_code", static_cast<int>(exit_runtime)}});
      failed = exit_runtime;
    }
    if (failed != exit_ok) {
      if (st_->vpn) st_->vpn->stop();
      if (uem_) uem_->stop();
      stop_everything();
      return failed;
    }
    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < ctxs_.size(); ++i) {
      threads.emplace_back([c = ctxs_[i].get()] { c->run(); });
    }
    ctxs_[0]->run();
    for (auto& t : threads)
      t.join();
    if (uem_) uem_->stop();
    posture_subs_.clear();
    if (st_->posture && !st_->posture->stop(std::chrono::seconds(2))) {
      st_->log->event(spdlog::level::warn, "posture_sync_abandoned",
                      {{"detail", "a call to an identity provider was still running at exit"}});
    }
    if (st_->vpn) st_->vpn->stop();  // the TUN, the nft table and the sysctls go back
    if (st_->idp && !st_->idp->stop(std::chrono::seconds(2))) {
      // A sync call is stuck in a slow IdP: do not wait for it. Its thread still uses the
      // state and the log, so they stay alive (leaked on purpose) until the process exits.
      st_->log->event(spdlog::level::warn, "idp_sync_abandoned",
                      {{"detail", "a call to the identity provider was still running at exit"}});
      (void)new std::shared_ptr<shared_state>(st_);
    }
    st_->log->event(spdlog::level::info, "stopped", {});
    return exit_ok;
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
                      {{"address", endpoint_text(ep)}, {"threads", n}});
    }
    if (cfg_->admin.listen && cfg_->admin.tls()) st_->admin_tls = make_admin_tls(cfg_->admin);
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
    if (cfg_->posture_sync) {
      try {
        st_->posture =
            std::make_shared<posture_sync>(*cfg_->posture_sync, [weak](const posture_audit& a) {
              if (auto st = weak.lock()) log_posture_audit(*st->log, a);
            });
      } catch (const std::exception& e) {
        throw config_error(file_.string() + ": posture_sync: " + e.what());
      }
      posture_subs_ = connect_posture_sync(*uem_, st_->posture);
    }
    st_->comp->on_refused([weak](const std::string& udid, const std::string& reason) {
      if (auto st = weak.lock()) revoke_device(*st, udid, reason);
    });
    // The VPN's in-tunnel DNS server is one of ours too.
    if (cfg_->vpn && cfg_->vpn->dns) own_.emplace_back(cfg_->vpn->tunnel_address(), 53);
    st_->host->refresh();
    try {
      st_->set_current(make_runtime(cfg_, own_, st_->host));
    } catch (const std::exception& e) {
      throw config_error(e.what());  // certificates, keys, CRLs, egress addresses
    }
    log_trust_warnings(st_->current()->trust->summary().warnings);
    if (cfg_->vpn) {
      // The TUN, its NAT and the in-tunnel DNS server.
      st_->vpn = vpn_hub::start(st_.get(), cfg_, ctxs_[0]->get_executor());
      st_->host->refresh();  // the tunnel address is the host's now
    }
    st_->idp = std::make_unique<idp_sync>(*st_->log);
    st_->idp->configure(cfg_);

    for (std::size_t i = 0; i < acceptors_.size(); ++i) {
      // acceptors_ holds one acceptor per thread for each listener, in cfg_->listen order.
      const std::size_t l = i / ctxs_.size();
      std::shared_ptr<const proxy_protocol_config> proxy;
      if (l < cfg_->listen_options.size() && cfg_->listen_options[l].proxy_protocol)
        proxy = std::make_shared<proxy_protocol_config>(*cfg_->listen_options[l].proxy_protocol);
      net::co_spawn(acceptors_[i]->get_executor(),
                    accept_loop(st_, acceptors_[i].get(), false, proxy),
                    [st = st_](const std::exception_ptr& e) { log_exception(*st, "accept", e); });
    }
    if (admin_) {
      net::co_spawn(
          *ctxs_[0], accept_loop(st_, admin_.get(), true),
          [st = st_](const std::exception_ptr& e) { log_exception(*st, "admin-accept", e); });
    }
    signals_ = std::make_unique<net::signal_set>(*ctxs_[0], SIGHUP, SIGTERM, SIGINT);
    signals_->add(SIGUSR1);
    wait_signal();
    files_timer_ = std::make_unique<net::steady_timer>(*ctxs_[0]);
    watch_files();
    ready_timer_ = std::make_unique<net::steady_timer>(*ctxs_[0]);
    notify_when_ready();
    if (const auto every = notify_.watchdog_interval()) {
      beats_ = std::make_unique<std::atomic<std::uint64_t>[]>(ctxs_.size());
      watchdog_timer_ = std::make_unique<net::steady_timer>(*ctxs_[0]);
      keep_watchdog(*every, {});
    }
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
    log_fields f{{"limit", limit},
                 {"hard_limit", std::min<rlim_t>(rl.rlim_max, 1U << 30)},
                 {"tunnel_capacity", capacity},
                 {"max_connections", cfg_->limits.max_connections}};
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
        (void)reload();
        wait_signal();
        return;
      }
      if (sig == SIGUSR1) {
        reopen_logs("SIGUSR1");
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
                        {{"addresses", st_->host->addresses().size()}});
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
                    {{"sessions", n}, {"cause", "trust_changed"}});
  }

  /// Re-reads the configuration and everything it references. Applied whole or not at all;
  /// parts that only a restart changes are named in the outcome's warnings (and logged).
  reload_outcome reload() {
    reload_outcome out;
    notify_.reloading();
    auto l = load_all(file_);
    out.errors = l.errors;
    if (l.errors.empty()) {
      try {
        auto rt = make_runtime(l.cfg, own_, st_->host);
        out.warnings = needs_restart(*cfg_, *l.cfg, l);
        for (auto& w : st_->log->reconfigure(l.cfg->log))
          out.warnings.push_back(std::move(w));
        log_trust_warnings(rt->trust->summary().warnings);
        for (const auto& w : l.warnings)
          st_->log->event(spdlog::level::warn, "config_warning", {{"warning", w}});
        st_->set_current(std::move(rt));
        cfg_ = l.cfg;
        st_->idp->configure(cfg_);
        trust_changed();  // the new configuration's CA bundle and CRLs apply to open sessions
        out.applied = true;
      } catch (const std::exception& e) {
        out.errors.emplace_back(e.what());
      }
    }
    // The access log is reopened on every SIGHUP too (logrotate may send either signal).
    reopen_logs("reload");
    for (const auto& e : out.errors)
      st_->log->event(spdlog::level::err, "reload_refused", {{"error", e}});
    for (const auto& w : out.warnings)
      st_->log->event(spdlog::level::warn, "reload_partial", {{"detail", w}});
    st_->stats.reloads.last_ok = out.applied;
    st_->stats.reloads.total.inc({out.applied ? "applied" : "refused"});
    if (out.applied) {
      st_->stats.reloads.last_success_unix = unix_now();
      st_->log->event(spdlog::level::info, "reloaded",
                      {{"config", file_.string()},
                       {"sessions", st_->registry.size()},
                       {"restart_needed", out.warnings.size()}});
    }
    notify_.ready(out.applied ? "configuration reloaded"
                              : "reload refused, the previous configuration stays in force");
    return out;
  }

  /// Keys a reload reads but cannot change in a running daemon, each named with what to do.
  std::vector<std::string> needs_restart(const config& was, const config& now,
                                         const loaded& l) const {
    std::vector<std::string> w;
    const auto restart = [&w](const std::string& key) {
      w.push_back(key +
                  " changed: it takes effect at the next restart (systemctl restart "
                  "tunnelgate); the running gateway keeps the old value");
    };
    if (now.listen != was.listen || now.listen_options != was.listen_options) restart("listen");
    if (now.admin.listen != was.admin.listen) restart("admin.listen");
    if (now.admin.tls_cert != was.admin.tls_cert || now.admin.tls_key != was.admin.tls_key)
      restart("admin.tls");
    if (now.threads != was.threads) restart("threads");
    if (now.vpn != was.vpn) restart("vpn");
    if (l.uem_text != uem_text_) restart("uem");
    if (l.posture_text != posture_text_) restart("posture_sync");
    return w;
  }

  void reopen_logs(const char* why) {
    const auto error = st_->log->reopen_access_log();
    if (!error.empty()) {
      st_->log->event(spdlog::level::err, "access_log_reopen_failed",
                      {{"cause", why}, {"error", error}});
    }
  }

  static double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  /// READY=1 once /readyz would say ready (the rules, the trust store, a compliance source
  /// that can admit someone); checked every 100 ms until then.
  void notify_when_ready() {
    bool ready = false;
    const auto why = readiness(*st_, ready);
    if (ready) {
      notify_.ready("serving");
      st_->log->event(spdlog::level::info, "ready", {});
      return;
    }
    ready_timer_->expires_after(std::chrono::milliseconds(100));
    ready_timer_->async_wait([this](const boost::system::error_code& ec) {
      if (!ec && !st_->stopping) notify_when_ready();
    });
  }

  /// WATCHDOG=1 only while every thread runs its event loop: each period a no-op is posted to
  /// each thread, and the next period checks that all of them ran it. A stuck thread stops
  /// the pings, and systemd restarts the gateway (WatchdogSec=).
  void keep_watchdog(std::chrono::microseconds every, std::vector<std::uint64_t> seen) {
    bool all_ran = seen.size() == ctxs_.size();
    for (std::size_t i = 0; i < seen.size() && i < ctxs_.size(); ++i) {
      if (beats_[i].load() == seen[i]) all_ran = false;
    }
    if (seen.empty() || all_ran) {
      if (!notify_.watchdog()) {
        st_->log->event(spdlog::level::err, "watchdog_notify_failed",
                        {{"error", notify_.last_error()}});
      }
    } else {
      st_->log->event(spdlog::level::critical, "thread_stuck",
                      {{"detail",
                        "a gateway thread did not run its event loop for a watchdog "
                        "period; not pinging systemd's watchdog"}});
    }
    std::vector<std::uint64_t> now(ctxs_.size());
    for (std::size_t i = 0; i < ctxs_.size(); ++i) {
      now[i] = beats_[i].load();
      net::post(*ctxs_[i], [b = &beats_[i]] { b->fetch_add(1); });
    }
    watchdog_timer_->expires_after(every);
    watchdog_timer_->async_wait(
        [this, every, now = std::move(now)](const boost::system::error_code& ec) mutable {
          if (!ec) keep_watchdog(every, std::move(now));
        });
  }

  /// SIGTERM/SIGINT: stop accepting, close the connections waiting for a request, let the
  /// tunnels run for limits.shutdown_grace, then close what is left and exit.
  void shutdown(const std::string& why) {
    if (st_->stopping.exchange(true)) return;
    notify_.stopping();
    st_->log->event(spdlog::level::info, "stopping",
                    {{"signal", why},
                     {"sessions", st_->registry.size()},
                     {"grace_ms", static_cast<std::int64_t>(cfg_->limits.shutdown_grace.count())}});
    for (auto& acc : acceptors_) {
      net::post(acc->get_executor(), [a = acc.get()] {
        boost::system::error_code ignored;
        a->close(ignored);
      });
    }
    // The admin listener stays open while the tunnels drain: /readyz answers 503 "stopping"
    // (load balancers take the gateway out) and /metrics shows the drain.
    signals_->cancel();
    files_timer_->cancel();
    if (ready_timer_) ready_timer_->cancel();
    if (watchdog_timer_) watchdog_timer_->cancel();
    st_->registry.kill_idle("shutdown");
    deadline_ = std::chrono::steady_clock::now() + cfg_->limits.shutdown_grace;
    drain_timer_ = std::make_unique<net::steady_timer>(*ctxs_[0]);
    drain();
  }

  void drain() {
    const auto now = std::chrono::steady_clock::now();
    if (st_->registry.size() == 0 || now >= deadline_ + std::chrono::seconds(2)) {
      stop_everything();
      return;
    }
    if (now >= deadline_ && !forced_) {
      forced_ = true;
      const auto n = st_->registry.kill_all("shutdown");
      st_->log->event(spdlog::level::warn, "shutdown_grace_over",
                      {{"sessions_closed", n},
                       {"detail", "tunnels still open after limits.shutdown_grace were closed"}});
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
  std::unique_ptr<net::steady_timer> ready_timer_;
  std::unique_ptr<net::steady_timer> watchdog_timer_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> beats_;  ///< per thread, for keep_watchdog
  sd_notifier notify_;
  std::string uem_text_;      ///< the `uem:` section in force (the uem service is built at start)
  std::string posture_text_;  ///< the `posture_sync:` section in force (built at start too)
  std::vector<std::shared_ptr<void>> posture_subs_;  ///< the UEM subscriptions of posture_sync
  bool forced_ = false;  ///< the grace ran out and the remaining sessions were told to close
  std::chrono::steady_clock::time_point deadline_;
  std::int64_t high_water_ = 0;  ///< open connections at most since the last malloc_trim
};

}  // namespace

namespace {

/// "key.path: message" (the shape of the runtime's errors, after an optional "FILE: " and
/// "FILE: tls: ") located at that key in the file when it is there: file:line:col.
std::string locate_message(const std::filesystem::path& file, std::string msg) {
  const std::string prefix = file.string() + ": ";
  if (msg.starts_with(prefix)) msg.erase(0, prefix.size());
  const auto doc =
      support::read_yaml_file(file, "gateway configuration", support::config_yaml_limits);
  std::size_t end = 0;
  while (end < msg.size() && (std::isalnum(static_cast<unsigned char>(msg[end])) != 0 ||
                              msg[end] == '_' || msg[end] == '.'))
    ++end;
  if (!doc || end == 0 || end >= msg.size() || (msg[end] != ':' && msg[end] != ' '))
    return file.string() + ": " + msg;
  // The deepest key of the path that the file has: "tls.key" -> tls.key, "tls" -> tls.
  YAML::Node node;
  std::string_view path(msg.data(), end);
  YAML::Node at = doc.root;
  while (!path.empty() && at.IsMap()) {
    const auto dot = path.find('.');
    const std::string key(path.substr(0, dot));
    const YAML::Node next = at[key];
    if (!next) break;
    node = next;
    at = next;
    path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
  }
  return node ? support::located(file.string(), node, msg) : file.string() + ": " + msg;
}

}  // namespace

bool check_config(const std::filesystem::path& file, std::ostream& err) {
  // Only problems are printed: the libraries' progress lines (an inventory loaded) are not.
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::warn);
  struct restore {
    spdlog::level::level_enum l;
    ~restore() { spdlog::set_level(l); }
  } back{level};
  auto c = load_config(file);
  auto u = load_uem(file);
  std::vector<std::string> errors = c.errors;
  for (const auto& e : u.errors) {  // a YAML error comes from both loaders: once
    if (std::find(errors.begin(), errors.end(), e.to_string()) == errors.end())
      errors.push_back(e.to_string());
  }
  std::vector<std::string> warnings;
  for (const auto& w : u.warnings)
    warnings.push_back(w.to_string());
  if (c.value && u.value) check_listeners(file, *c.value, *u.value, errors);
  // What start would do next, each part on its own, so that one missing file does not hide
  // the next problem: the TLS files, trust store and egress addresses; the compliance source.
  if (c.value) {
    try {
      auto host = std::make_shared<host_addresses>();
      host->refresh();
      const auto rt = make_runtime(c.value, {}, host);
      for (const auto& w : rt->trust->summary().warnings)
        warnings.push_back(file.string() + ": tls: " + w);
    } catch (const std::exception& e) {
      errors.push_back(locate_message(file, e.what()));
    }
  }
  if (c.value && c.value->admin.tls()) {
    try {
      (void)make_admin_tls(c.value->admin);
    } catch (const std::exception& e) {
      errors.push_back(locate_message(file, e.what()));
    }
  }
  if (u.value) {
    try {
      net::io_context io;
      (void)uem::make_source(*u.value, io.get_executor());
    } catch (const std::exception& e) {
      const char* key = u.value->source == uem::source_kind::file ? "uem.file: " : "uem.ws1: ";
      errors.push_back(locate_message(file, key + std::string(e.what())));
    }
  }
  for (const auto& e : errors)
    err << e << "\n";
  for (const auto& w : warnings)
    err << "warning: " << w << "\n";
  return errors.empty();
}

int run(const std::filesystem::path& file) {
  daemon d(file);
  return d.run();
}

namespace {

struct reload_answer {
  boost::system::error_code ec;
  std::string step;  ///< what failed: connect, send, receive
  http::response<http::string_body> res;
};

/// POST /api/v1/reload on a connected stream (plain or TLS) and reads the answer.
template <class Stream>
awaitable<void> post_reload(Stream& stream, const tcp::endpoint& ep, const std::string& token,
                            reload_answer& a) {
  http::request<http::empty_body> req{http::verb::post, "/api/v1/reload", 11};
  req.set(http::field::host, endpoint_text(ep));
  req.set(http::field::user_agent, "tunnelgate --reload");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  req.prepare_payload();
  a.step = "send";
  co_await http::async_write(stream, req, net::redirect_error(use_awaitable, a.ec));
  if (a.ec) co_return;
  beast::flat_buffer buf;
  a.step = "receive";
  co_await http::async_read(stream, buf, a.res, net::redirect_error(use_awaitable, a.ec));
}

/// `ca`: the admin API's own certificate (admin.tls.cert) as the only trust, for HTTPS; null
/// for plain HTTP. The gateway is asked on this host, so the name is not checked, the key is.
awaitable<void> ask_for_reload(tcp::endpoint ep, std::string token, ssl::context* ca,
                               reload_answer& a) {
  beast::tcp_stream stream(co_await net::this_coro::executor);
  // A reload loads certificates, rules and the inventory: give it time, but not forever.
  stream.expires_after(std::chrono::seconds(60));
  a.step = "connect";
  co_await stream.async_connect(ep, net::redirect_error(use_awaitable, a.ec));
  if (a.ec) co_return;
  if (ca == nullptr) {
    co_await post_reload(stream, ep, token, a);
  } else {
    beast::ssl_stream<beast::tcp_stream> tls(std::move(stream), *ca);
    a.step = "TLS handshake";
    co_await tls.async_handshake(ssl::stream_base::client,
                                 net::redirect_error(use_awaitable, a.ec));
    if (!a.ec) co_await post_reload(tls, ep, token, a);
  }
}

}  // namespace

int request_reload(const std::filesystem::path& file, std::ostream& out, std::ostream& err) {
  if (!check_config(file, err)) {
    err << "tunnelgate: " << file.string()
        << " does not pass --check-config; the running gateway was not asked to reload\n";
    return exit_config;
  }
  auto l = load_all(file);
  if (!l.cfg || !l.cfg->admin.listen) {
    err << file.string()
        << ": admin.listen is not set: --reload asks the running gateway through its admin API; "
           "set admin.listen (e.g. \"127.0.0.1:9443\"), or send SIGHUP (systemctl kill -s HUP "
           "tunnelgate) and read the reloaded/reload_refused log line\n";
    return exit_runtime;
  }
  auto ep = *l.cfg->admin.listen;
  if (ep.address().is_unspecified()) {  // listening on all addresses: ask over loopback
    ep.address(ep.address().is_v6() ? net::ip::address(net::ip::address_v6::loopback())
                                    : net::ip::address(net::ip::address_v4::loopback()));
  }
  net::io_context io;
  reload_answer a;
  std::unique_ptr<ssl::context> ca;
  if (l.cfg->admin.tls()) {
    ca = std::make_unique<ssl::context>(ssl::context::tls_client);
    ca->load_verify_file(l.cfg->admin.tls_cert.string());  // checked by check_config above
    ca->set_verify_mode(ssl::verify_peer);
    // The admin certificate itself is the trust anchor, whoever issued it.
    X509_STORE_set_flags(SSL_CTX_get_cert_store(ca->native_handle()), X509_V_FLAG_PARTIAL_CHAIN);
  }
  net::co_spawn(io, ask_for_reload(ep, l.cfg->admin.token, ca.get(), a), net::detached);
  io.run();
  if (a.ec) {
    err << "tunnelgate: cannot ask the gateway at admin.listen " << endpoint_text(ep)
        << " to reload (" << a.step << ": " << a.ec.message()
        << "); is it running with this configuration file?\n";
    return exit_runtime;
  }
  nlohmann::json j = nlohmann::json::parse(a.res.body(), nullptr, false);
  if (a.res.result_int() == 401) {
    err << "tunnelgate: the gateway refused the admin token (admin.token_file of " << file.string()
        << " differs from the running gateway's)\n";
    return exit_runtime;
  }
  if (j.is_discarded() || !j.contains("result")) {
    err << "tunnelgate: unexpected answer from the gateway's admin API: HTTP " << a.res.result_int()
        << "\n";
    return exit_runtime;
  }
  for (const auto& w : j.value("warnings", nlohmann::json::array()))
    err << "warning: " << w.get<std::string>() << "\n";
  if (j["result"] == "applied") {
    out << "reloaded: " << file.string() << "\n";
    return exit_ok;
  }
  for (const auto& e : j.value("errors", nlohmann::json::array()))
    err << e.get<std::string>() << "\n";
  err << "tunnelgate: the gateway refused the new configuration; the previous one stays in "
         "force\n";
  return exit_config;
}

}  // namespace tunnelgate::gateway
