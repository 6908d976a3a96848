#include "gateway/vpn/tunnel_session.hpp"

#include <deque>
#include <unordered_map>

#include "gateway/state.hpp"
#include "gateway/vpn/cstp.hpp"

namespace tunnelgate::gateway {

namespace {

using std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace cstp = vpn::cstp;
namespace packet = vpn::packet;

/// Flows a session may hold at once; a device opening more is refused new ones.
constexpr std::size_t max_flows = 16384;
/// A flow not seen for this long is forgotten (its next packet is decided again).
constexpr auto flow_idle = 120s;
/// Bytes queued towards a device beyond which packets from the TUN are dropped (a device
/// that does not read must not make the gateway buffer without bound).
constexpr std::size_t max_queue_bytes = std::size_t{4} << 20;
/// A write to the device pending this long means the device is gone.
constexpr auto write_stall = 30s;

class tunnel {
 public:
  explicit tunnel(vpn_tunnel_context* c)
      : c_(c), link_(c->link), event_(c->tls->get_executor()), wake_(c->tls->get_executor()) {}

  awaitable<std::string> run() {
    auto ex = co_await net::this_coro::executor;
    const auto now = steady_clock::now();
    last_rx_ = last_data_ = last_sweep_ = now;
    // Whatever way run() ends (an exception included), nothing may call into this object
    // afterwards: the hooks are cleared by this guard's destructor.
    struct hooks_guard {
      tunnel* t;
      ~hooks_guard() {
        t->link_->deliver = nullptr;
        *t->c_->terminate_hook = nullptr;
      }
    } guard{this};
    link_->deliver = [this](std::vector<std::uint8_t> b) { deliver(std::move(b)); };
    *c_->terminate_hook = [this] { terminate(); };
    // Packets for the device's address come here from now until the tunnel ends.
    const auto attachment = c_->hub->attach(link_);
    const auto done = [this](const std::exception_ptr& e) {
      if (e) {
        // A pump failed unexpectedly: log it, end the tunnel (not resumable).
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          c_->st->log->event(spdlog::level::err, "internal_error",
                             {{"where", "vpn tunnel"}, {"udid", link_->udid}, {"error", x.what()}});
        }
        end("internal-error");
        close();
      }
      if (--running_ == 0) event_.cancel();
    };
    net::co_spawn(ex, read_loop(this), done);
    net::co_spawn(ex, write_loop(this), done);
    const auto& vpn = c_->hub->settings();
    boost::system::error_code ec;
    while (running_ > 0) {
      event_.expires_after(closing_ ? 100ms : 1s);
      co_await event_.async_wait(net::redirect_error(use_awaitable, ec));
      if (running_ == 0) break;
      tick(steady_clock::now(), vpn);
    }
    co_return end_;
  }

 private:
  void tick(steady_clock::time_point now, const vpn_config& vpn) {
    if (now - last_rx_ > 3 * vpn.dpd) end("dpd-timeout");
    if (now - last_data_ > vpn.idle_timeout) end("idle-timeout");
    if (writing_ && now - write_started_ > write_stall) end("write-stalled");
    if (closing_ && now >= close_by_) close();
    if (now - last_sweep_ > 30s) {
      last_sweep_ = now;
      std::erase_if(flows_, [now](const auto& kv) { return now - kv.second.last > flow_idle; });
    }
  }

  /// Revocation, admin kill, shutdown: TERMINATE first, then close (within a second).
  void terminate() {
    if (closing_) return;
    closing_ = true;
    end("terminated");
    close_by_ = steady_clock::now() + 1s;
    const auto f = cstp::control_frame(cstp::type::terminate);
    queue_.emplace_front(f.begin(), f.end());
    terminate_queued_ = true;
    wake_.cancel();
    event_.cancel();  // the run loop re-arms with a short tick to keep the close-by promise
  }

  void end(const std::string& why) {
    if (end_.empty()) end_ = why;
    if (why != "terminated") close();
  }

  void close() {
    boost::system::error_code ignored;
    c_->tls->next_layer().close(ignored);
    wake_.cancel();
  }

  // ---- device -> TUN ---------------------------------------------------------------------
  static awaitable<void> read_loop(tunnel* self) {
    auto& t = *self;
    cstp::reader r(cstp::max_payload_for_mtu(t.c_->mtu));
    if (t.c_->leftover->size() > 0) {
      const auto d = t.c_->leftover->data();
      r.feed({static_cast<const std::uint8_t*>(d.data()), d.size()});
      t.c_->leftover->consume(d.size());
    }
    boost::system::error_code ec;
    for (;;) {
      if (!t.frames(r)) break;
      const auto space = r.prepare(std::size_t{16} * 1024);
      const std::size_t n =
          co_await t.c_->tls->read_some(net::buffer(space.data(), space.size()), ec);
      if (ec) {
        t.end(ec == net::error::eof || ec == ssl::error::stream_truncated ? "device-closed"
                                                                          : "read-failed");
        break;
      }
      r.commit(n);
      t.last_rx_ = steady_clock::now();
    }
  }

  /// Handles every complete frame in `r`; false when the tunnel must end.
  bool frames(cstp::reader& r) {
    for (;;) {
      const auto res = r.next();
      if (res.state == cstp::decode_result::status::need_more) return true;
      if (res.state == cstp::decode_result::status::failed) {
        c_->st->log->event(spdlog::level::warn, "vpn_bad_frame",
                           {{"udid", link_->udid}, {"reason", std::string(to_string(res.reason))}});
        end("malformed-frame:" + std::string(to_string(res.reason)));
        return false;
      }
      const auto& f = res.value;
      switch (f.type) {
        case cstp::type::data:
          packet_from_device(f.payload);
          break;
        case cstp::type::dpd_req: {
          // Echo the payload, as ocserv does (clients may pad a DPD to probe the MTU).
          (void)enqueue(cstp::make_frame(cstp::type::dpd_resp, f.payload));
          break;
        }
        case cstp::type::disconnect:
          end("device-disconnect");
          return false;
        case cstp::type::terminate:
          end("device-terminate");
          return false;
        default:
          break;  // DPD response, keepalive: the frame itself was the news
      }
    }
  }

  void packet_from_device(std::span<const std::uint8_t> bytes) {
    if (closing_) return;  // revoked: not one more packet goes out
    packet::info p;
    const auto& hub = c_->hub;
    if (const auto err = packet::parse(bytes, p); err != packet::error::none) {
      hub->count_drop(vpn_drop::malformed);
      if (logged_malformed_++ == 0) {
        c_->st->log->event(spdlog::level::warn, "vpn_packet_dropped",
                           {{"udid", link_->udid},
                            {"reason", "malformed"},
                            {"detail", std::string(packet::to_string(err))}});
      }
      return;
    }
    if (p.version == 6 && !c_->st->current()->egress.v6) {
      // The device's own IPv6 chatter (router solicitations, MLD) on a tunnel without IPv6.
      hub->count_drop(vpn_drop::ipv6);
      return;
    }
    if (!(p.src.is_v4() && p.src.to_v4() == link_->address)) {
      hub->count_drop(vpn_drop::spoofed);
      if (logged_spoofed_++ == 0) {
        c_->st->log->event(
            spdlog::level::warn, "vpn_packet_dropped",
            {{"udid", link_->udid}, {"reason", "spoofed-source"}, {"source", p.src.to_string()}});
      }
      return;
    }
    const auto now = steady_clock::now();
    if (p.dst.is_v4() && p.dst.to_v4() == hub->tunnel_address() && p.has_ports &&
        p.dst_port == 53) {
      // In-tunnel DNS: every query is a new flow (a new source port); the DNS server logs the
      // decisions, so these neither fill the flow table nor the access log.
      if (hub->settings().dns && hub->to_tun(bytes)) c_->entry->counters.up += bytes.size();
      if (!hub->settings().dns) hub->count_drop(vpn_drop::to_gateway);
      return;
    }
    const auto key = packet::key_of(p);
    auto it = flows_.find(key);
    if (it == flows_.end()) {
      if (flows_.size() >= max_flows) {
        // Full: make room at most once a second (a scan per packet would let a device that
        // sprays new flows burn the thread), else refuse the new flow.
        if (now - last_full_sweep_ >= 1s) {
          last_full_sweep_ = now;
          std::erase_if(flows_, [now](const auto& kv) { return now - kv.second.last > 10s; });
        }
        if (flows_.size() >= max_flows) {
          hub->count_drop(vpn_drop::flow_table_full);
          return;
        }
      }
      auto v = hub->decide(p, *link_, c_->st->current());
      log_flow(p, v);
      if (!v.allowed()) v.mapping.close();  // a refused flow must not pin a mapped name
      it = flows_.emplace(key, flow{v.drop, std::move(v.mapping), now}).first;
    }
    it->second.last = now;
    if (it->second.drop != vpn_drop::none) {
      hub->count_drop(it->second.drop);
      return;
    }
    if (hub->to_tun(bytes)) {
      c_->entry->counters.up += bytes.size();
      last_data_ = now;
    }
  }

  void log_flow(const packet::info& p, const vpn_verdict& v) {
    std::uint64_t suppressed = 0;
    if (!flow_log_.take(suppressed)) return;  // a device spraying flows cannot flood the log
    const auto port = p.has_ports ? std::to_string(p.dst_port) : std::string("-");
    const std::string proto = p.protocol == packet::proto::tcp    ? "tcp"
                              : p.protocol == packet::proto::udp  ? "udp"
                              : p.protocol == packet::proto::icmp ? "icmp"
                                                                  : std::to_string(p.protocol);
    const std::string rank = v.rule_set.empty() ? "-"
                             : v.rank == 0      ? "default"
                                                : std::to_string(v.rank);
    if (v.allowed()) {
      const auto& egress = c_->st->current()->egress;
      c_->st->log->access({{"kind", "vpn_flow"},
                           {"udid", link_->udid},
                           {"user", link_->user},
                           {"platform", std::string(dtr::to_string(link_->platform))},
                           {"host", v.host.empty() ? "-" : v.host},
                           {"destination", p.dst.to_string() + ":" + port},
                           {"remote", v.real.to_string() + ":" + port},
                           {"protocol", proto},
                           {"action", "tunnel"},
                           {"set", v.rule_set.empty() ? "-" : v.rule_set},
                           {"rank", rank},
                           {"line", v.rule_set.empty() ? 0 : v.line},
                           {"egress", v.real.is_v4() && egress.v4    ? egress.v4->to_string()
                                      : !v.real.is_v4() && egress.v6 ? egress.v6->to_string()
                                                                     : "-"}});
      return;
    }
    c_->st->log->event(spdlog::level::info, "vpn_flow_refused",
                       {{"udid", link_->udid},
                        {"reason", std::string(to_string(v.drop))},
                        {"host", v.host.empty() ? "-" : v.host},
                        {"destination", p.dst.to_string() + ":" + port},
                        {"protocol", proto},
                        {"set", v.rule_set.empty() ? "-" : v.rule_set},
                        {"rank", rank},
                        {"line", v.rule_set.empty() ? 0 : v.line},
                        {"detail", v.detail},
                        {"suppressed_before", suppressed}});
  }

  // ---- TUN -> device ---------------------------------------------------------------------
  void deliver(std::vector<std::uint8_t> buf) {
    if (closing_ || buf.size() <= cstp::header_size) return;
    const auto n = buf.size() - cstp::header_size;
    cstp::write_header(std::span<std::uint8_t, cstp::header_size>(buf.data(), cstp::header_size),
                       cstp::type::data, n);
    if (!enqueue(std::move(buf))) return;
    c_->entry->counters.down += n;
    last_data_ = steady_clock::now();
  }

  /// False when the device's queue is full (the frame is dropped and counted).
  bool enqueue(std::vector<std::uint8_t> frame) {
    if (queued_bytes_ + frame.size() > max_queue_bytes) {
      c_->hub->count_backlog_drop();
      return false;
    }
    queued_bytes_ += frame.size();
    queue_.push_back(std::move(frame));
    wake_.cancel();
    return true;
  }

  static awaitable<void> write_loop(tunnel* self) {
    auto& t = *self;
    std::vector<std::uint8_t> frame;
    boost::system::error_code ec;
    for (;;) {
      if (t.queue_.empty()) {
        if (!t.end_.empty() && !t.closing_) break;
        t.wake_.expires_at(steady_clock::time_point::max());
        co_await t.wake_.async_wait(net::redirect_error(use_awaitable, ec));
        if (!t.c_->tls->next_layer().is_open()) break;
        continue;
      }
      frame = std::move(t.queue_.front());
      t.queue_.pop_front();
      const bool last = t.terminate_queued_ && frame.size() == cstp::header_size &&
                        frame[6] == static_cast<std::uint8_t>(cstp::type::terminate);
      if (!last) t.queued_bytes_ -= frame.size();
      // One frame, one write, one TLS record: openconnect reads a frame per record.
      t.writing_ = true;
      t.write_started_ = steady_clock::now();
      (void)co_await t.c_->tls->write_all(net::buffer(frame), ec);
      t.writing_ = false;
      if (ec) {
        t.end("write-failed");
        break;
      }
      if (last) {
        t.close();
        break;
      }
    }
  }

  struct flow {
    vpn_drop drop = vpn_drop::none;
    vpn::dns_map::flow mapping;  ///< keeps a mapped name alive while the flow lives
    steady_clock::time_point last;
  };

  vpn_tunnel_context* c_;
  std::shared_ptr<vpn_link> link_;
  net::steady_timer event_;  ///< the run loop's tick, and the pumps' "I ended" signal
  net::steady_timer wake_;   ///< wakes the writer when a frame is queued
  int running_ = 2;
  std::string end_;
  bool closing_ = false;
  bool terminate_queued_ = false;
  steady_clock::time_point close_by_;
  steady_clock::time_point last_rx_, last_data_, last_sweep_, write_started_;
  bool writing_ = false;
  std::deque<std::vector<std::uint8_t>> queue_;
  std::size_t queued_bytes_ = 0;
  steady_clock::time_point last_full_sweep_{};
  log_budget flow_log_{50};  ///< flow log lines per second for this device
  std::uint64_t logged_malformed_ = 0, logged_spoofed_ = 0;
  std::unordered_map<packet::flow_key, flow, packet::flow_key_hash> flows_;
};

}  // namespace

awaitable<std::string> run_vpn_tunnel(vpn_tunnel_context* ctx) {
  tunnel t(ctx);
  std::string why = co_await t.run();
  co_return why;
}

}  // namespace tunnelgate::gateway
