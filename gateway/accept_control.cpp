#include "gateway/accept_control.hpp"

#include <algorithm>
#include <cstdio>

namespace tunnelgate::gateway {

std::string_view to_string(accept_refusal r) noexcept {
  switch (r) {
    case accept_refusal::none:
      return "none";
    case accept_refusal::max_connections:
      return "max-connections";
    case accept_refusal::handshakes_busy:
      return "handshakes-busy";
    case accept_refusal::source_pending_limit:
      return "source-pending-limit";
    case accept_refusal::source_rate_limit:
      return "source-rate-limit";
    case accept_refusal::proxy_sender_not_allowed:
      return "proxy-sender-not-allowed";
    case accept_refusal::proxy_header_invalid:
      return "proxy-header-invalid";
    case accept_refusal::proxy_header_timeout:
      return "proxy-header-timeout";
  }
  return "unknown";
}

std::string_view remedy(accept_refusal r) noexcept {
  switch (r) {
    case accept_refusal::none:
      return "";
    case accept_refusal::max_connections:
      return "the gateway holds limits.max_connections connections; raise it (and LimitNOFILE) "
             "or add gateways";
    case accept_refusal::handshakes_busy:
      return "this thread has limits.max_handshakes_per_thread handshakes in progress (a "
             "handshake flood, or raise the limit)";
    case accept_refusal::source_pending_limit:
      return "the source has limits.max_pending_per_source connections still in their "
             "handshake; raise it if many devices share this address (NAT)";
    case accept_refusal::source_rate_limit:
      return "the source opened more than limits.handshake_rate_per_source connections per "
             "second; raise it (and handshake_burst_per_source) if many devices share this "
             "address (NAT)";
    case accept_refusal::proxy_sender_not_allowed:
      return "the listener takes PROXY protocol connections from its proxy_protocol.senders "
             "only; add the load balancer's address there, or have devices connect through it";
    case accept_refusal::proxy_header_invalid:
      return "the connection did not start with a valid PROXY protocol v2 header; have the "
             "load balancer send PROXY protocol version 2 on this listener (or remove "
             "proxy_protocol from it)";
    case accept_refusal::proxy_header_timeout:
      return "no complete PROXY protocol v2 header within limits.first_byte_timeout; have "
             "the load balancer send PROXY protocol version 2 on this listener";
  }
  return "";
}

source_key source_of(const net::ip::address& a) noexcept {
  source_key k;
  if (a.is_v4()) {
    k.prefix = a.to_v4().to_uint();
    return k;
  }
  const auto v6 = a.to_v6();
  if (v6.is_v4_mapped()) {
    k.prefix = net::ip::make_address_v4(net::ip::v4_mapped, v6).to_uint();
    return k;
  }
  const auto b = v6.to_bytes();
  for (int i = 0; i < 8; ++i)
    k.prefix = (k.prefix << 8) | b[static_cast<std::size_t>(i)];
  k.v6 = true;
  return k;
}

std::string to_string(const source_key& k) {
  if (!k.v6) return net::ip::address_v4(static_cast<std::uint32_t>(k.prefix)).to_string();
  net::ip::address_v6::bytes_type b{};
  for (int i = 0; i < 8; ++i)
    b[static_cast<std::size_t>(i)] = static_cast<unsigned char>(k.prefix >> (56 - 8 * i));
  return net::ip::address_v6(b).to_string() + "/64";
}

accept_ticket& accept_ticket::operator=(accept_ticket&& o) noexcept {
  if (this != &o) {
    release();
    ctl_ = std::move(o.ctl_);
    thread_ = std::move(o.thread_);
    source_ = o.source_;
    in_handshake_ = o.in_handshake_;
    o.ctl_ = nullptr;
    o.in_handshake_ = false;
  }
  return *this;
}

void accept_ticket::handshake_done() noexcept {
  if (!in_handshake_ || !ctl_) return;
  in_handshake_ = false;
  if (thread_) --*thread_;
  thread_.reset();
  ctl_->end_handshake(source_);
}

void accept_ticket::release() noexcept {
  if (!ctl_) return;
  handshake_done();
  --ctl_->connections_;
  ctl_.reset();
}

bool accept_control::should_log(clock::time_point& logged, std::uint64_t& quiet,
                                clock::time_point now, std::uint64_t& out_quiet) {
  if (logged == clock::time_point{} || now - logged >= log_interval) {
    logged = now;
    out_quiet = quiet;
    quiet = 0;
    return true;
  }
  ++quiet;
  return false;
}

accept_control::decision accept_control::admit(const net::ip::address& peer,
                                               const accept_limits& limits,
                                               const std::shared_ptr<handshake_counter>& thread,
                                               clock::time_point now) {
  decision d;
  const auto global = [&](accept_refusal r) {
    d.refusal = r;
    std::lock_guard lock(mutex_);
    auto& g = global_[static_cast<std::size_t>(r)];
    d.log = should_log(g.logged, g.quiet, now, d.quiet);
    return std::move(d);
  };
  if (connections_.load() >= static_cast<std::int64_t>(limits.max_connections))
    return global(accept_refusal::max_connections);
  if (thread && thread->load() >= limits.max_handshakes_per_thread)
    return global(accept_refusal::handshakes_busy);

  const source_key key = source_of(peer);
  {
    std::lock_guard lock(mutex_);
    if (sources_.size() >= sweep_threshold || now - swept_ >= log_interval) sweep(now, limits);
    auto [it, fresh] = sources_.try_emplace(key);
    auto& s = it->second;
    if (fresh) {
      s.tokens = limits.burst_per_source;
      s.refilled = now;
    }
    accept_refusal refused = accept_refusal::none;
    if (limits.max_pending_per_source != 0 && s.pending >= limits.max_pending_per_source) {
      refused = accept_refusal::source_pending_limit;
    } else if (limits.rate_per_source > 0) {
      const double elapsed = std::chrono::duration<double>(now - s.refilled).count();
      s.tokens = std::min(limits.burst_per_source, s.tokens + elapsed * limits.rate_per_source);
      s.refilled = now;
      if (s.tokens < 1.0)
        refused = accept_refusal::source_rate_limit;
      else
        s.tokens -= 1.0;
    }
    if (refused != accept_refusal::none) {
      d.refusal = refused;
      d.log = should_log(s.logged, s.quiet, now, d.quiet);
      return d;
    }
    ++s.pending;
  }
  ++pending_;
  ++connections_;
  if (thread) ++*thread;
  d.ticket.ctl_ = shared_from_this();
  d.ticket.thread_ = thread;
  d.ticket.source_ = key;
  d.ticket.in_handshake_ = true;
  return d;
}

accept_control::decision accept_control::refuse(const net::ip::address& peer, accept_refusal r,
                                                clock::time_point now) {
  decision d;
  d.refusal = r;
  std::lock_guard lock(mutex_);
  if (r == accept_refusal::max_connections || r == accept_refusal::handshakes_busy) {
    auto& g = global_[static_cast<std::size_t>(r)];
    d.log = should_log(g.logged, g.quiet, now, d.quiet);
    return d;
  }
  const bool crowded = refusal_logs_.size() >= sweep_threshold;
  if (crowded || now - refusals_swept_ >= log_interval) {
    refusals_swept_ = now;
    // Entries whose line is written and whose interval is over say nothing any more; when
    // crowded (a flood from many addresses) every entry goes, unlogged counts included.
    std::erase_if(refusal_logs_, [&](const auto& e) {
      return crowded || (e.second.quiet == 0 && now - e.second.logged >= log_interval);
    });
  }
  auto& g = refusal_logs_[refusal_key{source_of(peer), r}];
  d.log = should_log(g.logged, g.quiet, now, d.quiet);
  return d;
}

void accept_control::end_handshake(const source_key& k) noexcept {
  --pending_;
  std::lock_guard lock(mutex_);
  auto it = sources_.find(k);
  if (it != sources_.end() && it->second.pending > 0) --it->second.pending;
}

void accept_control::sweep(clock::time_point now, const accept_limits& limits) {
  swept_ = now;
  const bool crowded = sources_.size() >= sweep_threshold;
  for (auto it = sources_.begin(); it != sources_.end();) {
    const auto& s = it->second;
    const double elapsed = std::chrono::duration<double>(now - s.refilled).count();
    const bool full = limits.rate_per_source <= 0 ||
                      s.tokens + elapsed * limits.rate_per_source >= limits.burst_per_source;
    // Refusals not yet logged keep the entry: the source's next line reports them.
    const bool log_pending = s.quiet != 0;
    // Crowded: forget every idle source (their buckets start full again, which only favours
    // them); otherwise only those whose state no longer matters.
    if (s.pending == 0 && (crowded || (full && !log_pending)))
      it = sources_.erase(it);
    else
      ++it;
  }
}

std::size_t accept_control::sources() const {
  std::lock_guard lock(mutex_);
  return sources_.size();
}

}  // namespace tunnelgate::gateway
