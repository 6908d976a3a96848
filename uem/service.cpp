// The compliance service: cache, single flight, subscribers, background refresh, webhook
// events. All UEM I/O runs on one worker thread; the cache is shared with callers under one
// mutex held only for map operations (never across I/O or callbacks). The webhook listener has
// a thread of its own, so its clients (TLS handshakes, slow or hostile peers, large bodies)
// never queue in front of a lookup's fetch; it hands authenticated events to the worker.
//
// Every per-event cost is independent of the number of cached devices: a webhook re-read finds
// the entries naming its device through an index by device identifier, and the background
// refresh takes the entries due from a queue ordered by time, so neither walks the cache under
// the mutex (only a file reload, which re-reads everything, does).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "uem/internal.hpp"
#include "uem/net.hpp"

namespace tunnelgate::uem {

namespace {

/// How long a failed fetch is remembered before the source is tried again for that device.
constexpr auto retry_interval = std::chrono::seconds(1);
/// Refusals unused this long after expiry are dropped from the cache.
constexpr auto evict_after = std::chrono::minutes(10);
/// Webhook events acted on are remembered by identity this long (a UEM retry of a delivered
/// event comes within minutes; a later event of the same kind has another EventTime anyway)…
constexpr auto dedup_lifetime = std::chrono::minutes(5);
/// …and at most this many (oldest forgotten first): forgetting only costs a second re-read.
constexpr std::size_t dedup_capacity = 10000;

using waiter = std::function<void(decision_ptr)>;
using event_done = std::function<void(detail::event_outcome)>;

/// A webhook re-read waiting for a slot (ws1: webhook re-reads may use only part of the
/// connection pool, so lookups always find a connection). A timer used as an event (STYLE P4).
struct slot_waiter {
  explicit slot_waiter(const net::any_io_executor& ex) : timer(ex) {}
  net::steady_timer timer;
  bool granted = false;  // the slot was handed over; false when woken by stop()
};

struct entry;
/// The background refresh's queue: entries by the time it must next look at them.
using due_queue = std::multimap<clock_type::time_point, entry*>;

struct entry {
  device_key key;                          // as first looked up (for the source and subscribers)
  decision_ptr d;                          // null until the first fetch completes
  clock_type::time_point fresh_until{};    // answer from memory before this
  clock_type::time_point grace_until{};    // last admit usable on errors before this
  std::uint64_t applied_seq = 0;           // start sequence of the fetch that made d
  bool in_flight = false;                  // a lookup fetch is running (single flight)
  std::vector<waiter> waiters;             // callers of that fetch
  const std::string* cache_key = nullptr;  // this entry's key in the cache (nodes do not move)
  std::optional<due_queue::iterator> due;  // its place in the refresh queue, when queued
};

/// The cache keys a lookup of the record's identifiers would have ("u:", "s:", "i:" + the
/// value), each one only when the record has that identifier.
std::vector<std::string> record_keys(const device_record& r) {
  std::vector<std::string> out;
  if (!r.udid.empty()) out.push_back(detail::cache_key(device_key::udid(r.udid)));
  if (!r.serial.empty()) out.push_back(detail::cache_key(device_key::serial(r.serial)));
  if (!r.device_id.empty()) out.push_back(detail::cache_key(device_key::device_id(r.device_id)));
  return out;
}

bool differs(const decision& a, const decision& b) {
  return a.code != b.code || a.platform != b.platform;
}

decision_ptr unavailable(std::string detail) {
  auto d = std::make_shared<decision>();
  d->code = reason::uem_unavailable;
  d->detail = std::move(detail);
  return d;
}

void log_failure(const std::exception_ptr& e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    spdlog::error("uem: background task failed: {}", x.what());
  }
}

}  // namespace

struct service::impl {
  impl(const config& c, service_options o) : cfg(c), opts(std::move(o)) {
    if (!opts.now) opts.now = [] { return clock_type::now(); };
  }

  const config cfg;
  service_options opts;

  mutable std::mutex mutex;  // guards cache, by_record, due, seq, stopped
  std::unordered_map<std::string, entry> cache;
  /// Cache entries by the identifiers of the device record in their decision (e.d->device),
  /// each spelt as the cache key a lookup by it would have (record_keys): a webhook's re-read
  /// finds every entry naming its device here, without walking the cache. Invariant: an entry
  /// is listed under exactly record_keys(*e.d->device) (none when it has no record); kept by
  /// set_decision() and erase_entry(), the only places that change `d` or drop an entry. Each
  /// list holds the few entries of one device (looked up by UDID, serial, id).
  std::unordered_map<std::string, std::vector<entry*>> by_record;
  /// Invariant: an entry with a decision is queued exactly once, at due_time(); one without is
  /// not (schedule(), erase_entry()). An in-flight entry popped from the queue is queued again
  /// when its fetch is applied.
  due_queue due;
  std::uint64_t seq = 0;
  bool stopped = false;

  /// One registered callback. `call` is held while it runs: dropping the handle waits for a
  /// call in flight and no call starts after it (the callback's captures may then die). A
  /// recursive mutex, so that a callback may drop its own handle.
  template <class Callback>
  struct slot {
    explicit slot(Callback c) : callback(std::move(c)) {}
    const Callback callback;
    std::recursive_mutex call;
    bool active = true;  ///< guarded by `call`
    template <class Arg>
    void operator()(const Arg& a) {
      std::lock_guard lock(call);
      if (active) callback(a);
    }
  };
  std::mutex sub_mutex;  // guards the two maps and next_sub (never held during a call)
  std::map<std::uint64_t, std::shared_ptr<slot<subscriber>>> subscribers;
  std::map<std::uint64_t, std::shared_ptr<slot<service::event_subscriber>>> event_subscribers;
  std::uint64_t next_sub = 0;

  struct counters {
    std::atomic<std::uint64_t> lookups{0}, hits{0}, fetches{0}, events{0}, dups{0}, rejected{0},
        failures{0}, refused{0};
    // opts.now() of the source's last answer and failure, in its clock's ticks; 0: none.
    std::atomic<clock_type::rep> last_answer{0}, last_failure{0};
    std::atomic<std::uint64_t> last_failure_count{0};
  } counts;
  std::mutex health_mutex;  // guards last_failure_detail
  std::string last_failure_detail;

  // Worker-only state.
  std::unique_ptr<net::io_context> ioc;
  std::unique_ptr<source> src;
  std::unique_ptr<net::steady_timer> tick;
  // Webhook events acted on: identity -> forget after; and the same in insertion order (one
  // lifetime for all, so that is also expiry order).
  std::unordered_map<std::string, clock_type::time_point> seen_events;
  std::deque<std::pair<std::string, clock_type::time_point>> seen_order;
  std::size_t hook_fetch_limit = std::numeric_limits<std::size_t>::max();
  std::size_t hook_fetches = 0;  // webhook re-reads holding a slot
  std::deque<std::shared_ptr<slot_waiter>> hook_waiters;

  // The webhook listener's thread and context (only when the listener runs).
  std::unique_ptr<net::io_context> hook_ioc;
  std::shared_ptr<detail::webhook_server> webhook;  // used on hook_ioc's thread only
  std::optional<net::executor_work_guard<net::io_context::executor_type>> hook_work;
  std::future<void> hook_finished;
  std::thread hook_thread;

  std::optional<tcp::endpoint> webhook_ep;  // set before the threads start
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::future<void> finished;  // ready when the worker's run() returned
  std::thread worker;
  std::mutex stop_mutex;  // serialises stop()
  bool joined = false;

  ~impl() {
    // Both threads are joined; destroy I/O objects before their io_context, then the
    // contexts (which destroy any coroutine frames still queued). The worker's context goes
    // before the listener's: a webhook task left in it may still hold a listener coroutine.
    webhook.reset();
    tick.reset();
    src.reset();
    hook_waiters.clear();
    ioc.reset();
    hook_ioc.reset();
  }

  decision_ptr fresh(const std::string& k, clock_type::time_point now) const {
    std::lock_guard lock(mutex);
    const auto it = cache.find(k);
    if (it == cache.end() || !it->second.d || now >= it->second.fresh_until) return nullptr;
    return it->second.d;
  }

  /// Answers from cache or joins/starts the device's single fetch. `w` runs on this thread
  /// (cache hit) or on the worker.
  void start_lookup(device_key key, const waiter& w) {
    counts.lookups.fetch_add(1, std::memory_order_relaxed);
    const auto now = opts.now();
    auto k = detail::cache_key(key);
    decision_ptr hit;
    std::uint64_t my_seq = 0;
    {
      std::lock_guard lock(mutex);
      if (stopped) {
        hit = unavailable("the compliance service is stopped");
      } else {
        auto [it, inserted] = cache.try_emplace(k);
        auto& e = it->second;
        if (inserted) e.cache_key = &it->first;
        if (e.d && now < e.fresh_until) {
          hit = e.d;
        } else {
          e.waiters.push_back(w);  // a copy: `w` is still needed on the hit path
          if (e.in_flight) return;
          e.in_flight = true;
          e.key = key;
          my_seq = ++seq;
        }
      }
    }
    if (hit) {
      if (hit->code != reason::uem_unavailable || !stopped_flag()) {
        counts.hits.fetch_add(1, std::memory_order_relaxed);
      }
      w(std::move(hit));
      return;
    }
    net::co_spawn(*ioc, fetch_task(this, std::move(key), std::move(k), "lookup", my_seq, false),
                  log_failure);
  }

  bool stopped_flag() const {
    std::lock_guard lock(mutex);
    return stopped;
  }

  /// Named coroutine (STYLE P2): by-value parameters, no captures.
  static net::awaitable<void> fetch_task(impl* self, device_key key, std::string k,
                                         std::string_view cause, std::uint64_t my_seq,
                                         bool related) {
    const auto r =
        co_await fetch_and_apply(self, std::move(key), std::move(k), cause, my_seq, related);
    (void)r;  // applied; waiters and subscribers have it
  }

  /// Fetches one device and applies the result to the cache (waking waiters, telling
  /// subscribers); returns the result. Never throws for source failures. `related` widens the
  /// update to every cache entry naming the same device (webhook events may name it by
  /// serial).
  static net::awaitable<fetch_result> fetch_and_apply(impl* self, device_key key, std::string k,
                                                      std::string_view cause, std::uint64_t my_seq,
                                                      bool related) {
    self->counts.fetches.fetch_add(1, std::memory_order_relaxed);
    fetch_result r;
    try {
      r = co_await self->src->fetch(key);
    } catch (const std::exception& e) {
      r = fetch_result{};
      r.error = make_error_code(errc::unreachable);
      r.detail = e.what();
    }
    if (r.error && r.detail.empty()) r.detail = r.error.message();
    const auto ticks = std::max<clock_type::rep>(1, self->opts.now().time_since_epoch().count());
    if (r.error) {
      spdlog::warn("uem: {} lookup of {} failed: {}", self->src->name(), key.to_string(), r.detail);
      {
        std::lock_guard lock(self->health_mutex);
        self->last_failure_detail = r.detail;
      }
      self->counts.last_failure.store(ticks, std::memory_order_relaxed);
    } else {
      self->counts.last_answer.store(ticks, std::memory_order_relaxed);
    }
    self->apply(key, k, r, cause, my_seq, related);
    co_return r;
  }

  /// Stores a fetch result in every target entry, wakes waiters, then tells subscribers.
  void apply(const device_key& key, const std::string& k, const fetch_result& r,
             std::string_view cause, std::uint64_t my_seq, bool related) {
    const auto now = opts.now();
    std::vector<std::pair<waiter, decision_ptr>> wake;
    std::vector<change> changes;
    {
      std::lock_guard lock(mutex);
      std::vector<entry*> targets;
      if (related) {
        targets = related_entries(key, k, r);
      } else if (auto it = cache.find(k); it != cache.end()) {
        targets.push_back(&it->second);
      }
      for (entry* t : targets) {
        entry& e = *t;
        decision_ptr before = e.d;
        // A result older than the one applied (a webhook re-read overtook this lookup) does
        // not overwrite it; its waiters get the newer decision.
        if (my_seq > e.applied_seq) {
          e.applied_seq = my_seq;
          set_decision(e, decide(e, r, now));
        }
        if (!related) {
          e.in_flight = false;
          for (auto& w : e.waiters)
            wake.emplace_back(std::move(w), e.d);
          e.waiters.clear();
        }
        schedule(e);
        if (before && e.d != before && differs(*before, *e.d)) {
          changes.push_back(change{e.key, before, e.d, cause});
        }
      }
    }
    // Subscribers first: the session registry learns of a change no later than a caller.
    notify(changes);
    for (auto& [w, d] : wake)
      w(d);
  }

  /// The entry `k` and every entry naming the same device as `key` or the fetched record
  /// (is_related), from the indexes: candidates are the entries whose own key or whose
  /// decision's record has one of the identifiers involved; is_related then decides exactly as
  /// a walk over the whole cache would. The entry `k` comes first; no entry twice. Under mutex.
  std::vector<entry*> related_entries(const device_key& key, const std::string& k,
                                      const fetch_result& r) {
    std::vector<entry*> candidates;
    const auto collect = [&](const std::string& ck) {
      if (const auto it = cache.find(ck); it != cache.end()) candidates.push_back(&it->second);
      if (const auto it = by_record.find(ck); it != by_record.end()) {
        candidates.insert(candidates.end(), it->second.begin(), it->second.end());
      }
    };
    // An entry's own key names the device when it matches the fetched record (that is, when
    // the entry's cache key is one of the record's keys); its decision names the device when
    // its record has the event key's identifier or the fetched record's UDID or serial.
    collect(k);
    if (r.device) {
      for (const auto& rk : record_keys(*r.device))
        collect(rk);
    }
    std::vector<entry*> out;
    for (entry* e : candidates) {
      if (std::find(out.begin(), out.end(), e) != out.end()) continue;  // a handful at most
      if (*e->cache_key == k || is_related(*e, key, r)) out.push_back(e);
    }
    return out;
  }

  /// Replaces an entry's decision, keeping by_record in step. Under mutex.
  void set_decision(entry& e, decision_ptr d) {
    if (d == e.d) return;
    const auto old_keys =
        e.d && e.d->device ? record_keys(*e.d->device) : std::vector<std::string>{};
    const auto new_keys = d && d->device ? record_keys(*d->device) : std::vector<std::string>{};
    e.d = std::move(d);
    if (old_keys == new_keys) return;  // the same device again: the usual re-read
    for (const auto& rk : old_keys) {
      const auto it = by_record.find(rk);
      if (it == by_record.end()) continue;
      auto& list = it->second;
      list.erase(std::remove(list.begin(), list.end(), &e), list.end());
      if (list.empty()) by_record.erase(it);
    }
    for (const auto& rk : new_keys)
      by_record[rk].push_back(&e);
  }

  /// When the refresh must next look at an entry: an admit when it expires (re-read), a
  /// refusal (or uem_unavailable) when it may be evicted; never without a decision.
  static std::optional<clock_type::time_point> due_time(const entry& e) {
    if (!e.d) return std::nullopt;
    return e.d->admitted() ? e.fresh_until : e.fresh_until + evict_after;
  }

  /// (Re)queues an entry at due_time(). Under mutex.
  void schedule(entry& e) {
    const auto when = due_time(e);
    if (e.due && when && (*e.due)->first == *when) return;
    if (e.due) {
      due.erase(*e.due);
      e.due.reset();
    }
    if (when) e.due = due.emplace(*when, &e);
  }

  /// Drops an entry from the cache, its indexes and the refresh queue. Under mutex.
  void erase_entry(std::unordered_map<std::string, entry>::iterator it) {
    entry& e = it->second;
    set_decision(e, nullptr);
    if (e.due) due.erase(*e.due);
    cache.erase(it);
  }

  static bool is_related(const entry& e, const device_key& key, const fetch_result& r) {
    if (e.key.value.empty()) return false;
    if (r.device && detail::matches(*r.device, e.key)) return true;
    if (e.d && e.d->device) {
      if (detail::matches(*e.d->device, key)) return true;
      if (r.device &&
          ((!r.device->udid.empty() && detail::iequals(r.device->udid, e.d->device->udid)) ||
           (!r.device->serial.empty() && detail::iequals(r.device->serial, e.d->device->serial)))) {
        return true;
      }
    }
    return false;
  }

  /// The new decision for an entry from a fetch result; sets the entry's times.
  decision_ptr decide(entry& e, const fetch_result& r, clock_type::time_point now) const {
    if (!r.error) {
      auto d = std::make_shared<decision>(evaluate(cfg.posture, r.device));
      if (d->admitted()) {
        e.fresh_until = now + cfg.cache.positive_ttl;
        e.grace_until = now + cfg.cache.positive_ttl + cfg.cache.stale_grace;
      } else {
        e.fresh_until = now + cfg.cache.negative_ttl;
        e.grace_until = {};
      }
      return d;
    }
    // Never admit on an error, except the last admit while it is within its stale grace.
    if (e.d && e.d->admitted() && now < e.grace_until) {
      e.fresh_until = std::min<clock_type::time_point>(now + retry_interval, e.grace_until);
      if (e.d->stale) return e.d;
      auto d = std::make_shared<decision>(*e.d);
      d->stale = true;
      return d;
    }
    e.fresh_until = now + retry_interval;
    return unavailable(r.detail);
  }

  /// Tells the event subscribers what a webhook's re-read found.
  void notify_event(const webhook_event& ev, const fetch_result& r) {
    std::vector<std::shared_ptr<slot<service::event_subscriber>>> subs;
    {
      std::lock_guard lock(sub_mutex);
      for (const auto& [id, s] : event_subscribers)
        subs.push_back(s);
    }
    if (subs.empty()) return;
    const service::event_read read{ev, std::make_shared<decision>(evaluate(cfg.posture, r.device))};
    for (const auto& s : subs) {
      try {
        (*s)(read);
      } catch (const std::exception& e) {
        spdlog::error("uem: event subscriber failed: {}", e.what());
      }
    }
  }

  void notify(const std::vector<change>& changes) {
    if (changes.empty()) return;
    std::vector<std::shared_ptr<slot<subscriber>>> subs;
    {
      std::lock_guard lock(sub_mutex);
      for (const auto& [id, s] : subscribers)
        subs.push_back(s);
    }
    for (const auto& c : changes) {
      spdlog::info("uem: {} {} -> {} ({})", c.key.to_string(), to_string(c.before->code),
                   to_string(c.after->code), c.cause);
      for (const auto& s : subs) {
        try {
          (*s)(c);
        } catch (const std::exception& e) {
          spdlog::error("uem: subscriber failed: {}", e.what());
        }
      }
    }
  }

  /// Background refresh: file reloads and expired admits (a live session learns about
  /// changes even without a webhook); drops long-expired refusals.
  static net::awaitable<void> tick_loop(impl* self) {
    for (;;) {
      self->tick->expires_after(self->cfg.poll_interval);
      boost::system::error_code ec;
      co_await self->tick->async_wait(net::redirect_error(net::use_awaitable, ec));
      if (ec || self->stopped_flag()) co_return;
      const bool reloaded = self->src->poll_changed();
      self->refresh(reloaded);
    }
  }

  /// Starts the re-reads of the admits that expired and evicts long-expired refusals;
  /// `everything` (the inventory was reloaded): re-reads every cached device.
  void refresh(bool everything) {
    const auto now = opts.now();
    std::vector<std::tuple<device_key, std::string, std::uint64_t>> rereads;
    {
      std::lock_guard lock(mutex);
      if (everything) {
        // A reload changes what any device's answer may be: a walk, inherently O(cache), and
        // as rare as inventory changes. The queue stays as it is: entries now in flight are
        // queued again when their fetch is applied.
        for (auto it = cache.begin(); it != cache.end();) {
          auto& e = it->second;
          if (!e.in_flight && e.d && !e.d->admitted() && now >= e.fresh_until + evict_after) {
            erase_entry(it++);
            continue;
          }
          if (!e.in_flight && e.d) {
            e.in_flight = true;
            rereads.emplace_back(e.key, it->first, ++seq);
          }
          ++it;
        }
      } else {
        // Only the entries due: O(due · log n) per tick, however many devices are cached.
        while (!due.empty() && due.begin()->first <= now) {
          entry& e = *due.begin()->second;
          due.erase(due.begin());
          e.due.reset();
          if (e.in_flight || !e.d) continue;  // queued again when its fetch is applied
          if (!e.d->admitted()) {
            if (now >= e.fresh_until + evict_after) {
              erase_entry(cache.find(*e.cache_key));
            } else {
              schedule(e);  // not reached while the queue is in step; later, never sooner
            }
          } else if (now >= e.fresh_until) {
            e.in_flight = true;
            rereads.emplace_back(e.key, *e.cache_key, ++seq);
          } else {
            schedule(e);
          }
        }
      }
    }
    for (auto& [key, k, s] : rereads) {
      net::co_spawn(*ioc,
                    fetch_task(this, std::move(key), std::move(k),
                               everything ? "file_reload" : "ttl_refresh", s, false),
                    log_failure);
    }
  }

  /// A webhook event, on the listener's thread: hand it to the worker. Under the mutex, so
  /// that stop() either sees the task queued (and the worker runs it) or this sees `stopped`.
  void on_event(webhook_event ev, event_done done) {
    {
      std::lock_guard lock(mutex);
      if (!stopped) {
        net::co_spawn(*ioc, webhook_task(this, std::move(ev), done), log_failure);
        return;
      }
    }
    done(detail::event_outcome::failed);
  }

  /// Named coroutine on the worker; `done` is called exactly once, whatever happens.
  static net::awaitable<void> webhook_task(impl* self, webhook_event ev, event_done done) {
    auto outcome = detail::event_outcome::failed;
    try {
      outcome = co_await handle_event(self, std::move(ev));
    } catch (const std::exception& e) {
      spdlog::error("uem: webhook event failed: {}", e.what());
    }
    done(outcome);
  }

  /// Dedup on the event's identity, re-read the device (with the inventory as it is now),
  /// apply; remember the event only when the re-read succeeded, so a retry after a failure is
  /// acted on.
  static net::awaitable<detail::event_outcome> handle_event(impl* self, webhook_event ev) {
    self->forget_seen(self->opts.now());
    if (self->seen_events.count(ev.identity) != 0) {
      self->counts.dups.fetch_add(1, std::memory_order_relaxed);
      spdlog::info("uem: webhook event {} '{}' for {} was acted on already; ignored", ev.event_id,
                   ev.event_type, ev.key.to_string());
      co_return detail::event_outcome::duplicate;
    }
    if (!ev.relevant) {
      self->counts.events.fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("uem: webhook event type '{}' does not affect compliance", ev.event_type);
      co_return detail::event_outcome::ignored;
    }
    spdlog::info("uem: webhook event {} '{}' for {}", ev.event_id, ev.event_type,
                 ev.key.to_string());
    // The file source: act on the inventory as it is now, not as it was at the last poll.
    const bool reloaded = self->src->poll_changed();
    const bool slot = co_await acquire_hook_slot(self);
    std::uint64_t s = 0;
    if (slot) s = self->next_seq();
    if (s == 0) {  // stopped
      if (slot) self->release_hook_slot();
      co_return detail::event_outcome::failed;
    }
    auto key = ev.key;  // named locals: no temporaries in a co_await expression
    auto k = detail::cache_key(key);
    const auto r = co_await fetch_and_apply(self, std::move(key), std::move(k), "webhook", s, true);
    self->release_hook_slot();
    // Everything else cached is re-read after this device, so the change this event is about
    // reaches subscribers first and with cause "webhook".
    if (reloaded) self->refresh(true);
    if (r.error) {
      self->counts.failures.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("uem: webhook event {} '{}' for {} not acted on (answered 503 for a retry)",
                   ev.event_id, ev.event_type, ev.key.to_string());
      co_return detail::event_outcome::failed;
    }
    self->remember_seen(ev.identity, self->opts.now());
    self->counts.events.fetch_add(1, std::memory_order_relaxed);
    self->notify_event(ev, r);
    co_return detail::event_outcome::acted;
  }

  /// The next fetch sequence number; 0 once stopped.
  std::uint64_t next_seq() {
    std::lock_guard lock(mutex);
    return stopped ? 0 : ++seq;
  }

  /// Waits (on the worker) until a webhook re-read may start; false when stopped meanwhile.
  static net::awaitable<bool> acquire_hook_slot(impl* self) {
    if (self->hook_fetches < self->hook_fetch_limit) {
      ++self->hook_fetches;
      co_return true;
    }
    auto w = std::make_shared<slot_waiter>(self->ioc->get_executor());
    w->timer.expires_at(clock_type::time_point::max());
    self->hook_waiters.push_back(w);
    boost::system::error_code ec;
    co_await w->timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    co_return w->granted;  // a granted slot was handed over: hook_fetches already counts it
  }

  void release_hook_slot() {
    if (!hook_waiters.empty()) {
      auto w = std::move(hook_waiters.front());
      hook_waiters.pop_front();
      w->granted = true;
      w->timer.cancel();
      return;
    }
    --hook_fetches;
  }

  void remember_seen(const std::string& identity, clock_type::time_point now) {
    const auto until = now + dedup_lifetime;
    seen_events[identity] = until;
    seen_order.emplace_back(identity, until);
    forget_seen(now);
  }

  /// Drops expired identities and the oldest beyond dedup_capacity. An identity remembered
  /// again later keeps its newer time.
  void forget_seen(clock_type::time_point now) {
    while (!seen_order.empty() &&
           (seen_order.front().second <= now || seen_order.size() > dedup_capacity)) {
      const auto it = seen_events.find(seen_order.front().first);
      if (it != seen_events.end() && it->second == seen_order.front().second) {
        seen_events.erase(it);
      }
      seen_order.pop_front();
    }
  }
};

std::shared_ptr<service> service::create(const config& cfg, service_options options) {
  auto i = std::make_shared<impl>(cfg, std::move(options));
  i->ioc = std::make_unique<net::io_context>(1);
  const auto ex = i->ioc->get_executor();
  i->src = i->opts.make_source ? i->opts.make_source(ex) : make_source(cfg, ex);
  i->tick = std::make_unique<net::steady_timer>(ex);
  if (cfg.source == source_kind::ws1 && !i->opts.make_source) {
    // Webhook re-reads may take at most half the UEM connections: a burst of events must not
    // make the gateway's lookups queue for a connection.
    i->hook_fetch_limit = std::max(1, cfg.ws1.max_connections / 2);
  }
  if (cfg.webhook.enabled && i->opts.webhook) {
    i->hook_ioc = std::make_unique<net::io_context>(1);
    auto* raw = i.get();
    detail::webhook_handlers h;
    h.on_event = [raw](webhook_event ev, event_done done) {
      raw->on_event(std::move(ev), std::move(done));
    };
    h.on_rejected = [raw] { raw->counts.rejected.fetch_add(1, std::memory_order_relaxed); };
    h.on_refused_connection = [raw] {
      raw->counts.refused.fetch_add(1, std::memory_order_relaxed);
    };
    i->webhook = detail::start_webhook_server(cfg.webhook, i->hook_ioc->get_executor(), h);
    i->webhook_ep = i->webhook->local_endpoint();
  }
  if (i->opts.background_refresh) net::co_spawn(*i->ioc, impl::tick_loop(i.get()), log_failure);
  // The work guards keep run() from returning while idle; stop() releases them.
  i->work.emplace(i->ioc->get_executor());
  auto done = std::make_shared<std::promise<void>>();
  i->finished = done->get_future();
  i->worker = std::thread([ctx = i->ioc.get(), done] {
    ctx->run();
    done->set_value();
  });
  if (i->hook_ioc) {
    i->hook_work.emplace(i->hook_ioc->get_executor());
    auto hook_done = std::make_shared<std::promise<void>>();
    i->hook_finished = hook_done->get_future();
    i->hook_thread = std::thread([ctx = i->hook_ioc.get(), hook_done] {
      ctx->run();
      hook_done->set_value();
    });
  }
  return std::shared_ptr<service>(new service(std::move(i)));
}

service::~service() {
  stop();
}

const config& service::configuration() const noexcept {
  return impl_->cfg;
}

decision_ptr service::cached(const device_key& key) const {
  auto d = impl_->fresh(detail::cache_key(key), impl_->opts.now());
  if (d) impl_->counts.hits.fetch_add(1, std::memory_order_relaxed);
  return d;
}

namespace {

struct lookup_initiation {
  service::impl* self;
  template <class Handler>
  void operator()(Handler&& handler, const device_key& key) const {
    using handler_type = std::decay_t<Handler>;
    auto h = std::make_shared<handler_type>(std::forward<Handler>(handler));
    // Tracked: the caller's io_context must not run out of work while we fetch.
    auto ex =
        net::prefer(net::get_associated_executor(*h), net::execution::outstanding_work.tracked);
    self->start_lookup(key, [h, ex](decision_ptr d) {
      net::post(ex, [h, d = std::move(d)]() mutable { (*h)(std::move(d)); });
    });
  }
};

}  // namespace

net::awaitable<decision_ptr> service::lookup(device_key key) {
  if (auto d = impl_->fresh(detail::cache_key(key), impl_->opts.now())) {
    impl_->counts.lookups.fetch_add(1, std::memory_order_relaxed);
    impl_->counts.hits.fetch_add(1, std::memory_order_relaxed);
    co_return d;
  }
  auto d = co_await net::async_initiate<const net::use_awaitable_t<>&, void(decision_ptr)>(
      lookup_initiation{impl_.get()}, net::use_awaitable, std::move(key));
  co_return d;
}

decision_ptr service::check(const device_key& key) {
  auto p = std::make_shared<std::promise<decision_ptr>>();
  auto f = p->get_future();
  impl_->start_lookup(key, [p](decision_ptr d) { p->set_value(std::move(d)); });
  return f.get();
}

namespace {

/// Registers `callback` in `map` (one of impl's subscriber maps) under a new id; the returned
/// handle removes it when destroyed and, before its destructor returns, waits for a call in
/// flight on another thread: after that the callback never runs again.
template <class Callback>
std::shared_ptr<void> add_subscriber(
    const std::shared_ptr<service::impl>& i,
    std::map<std::uint64_t, std::shared_ptr<service::impl::slot<Callback>>> service::impl::*map,
    Callback callback) {
  using slot_ptr = std::shared_ptr<service::impl::slot<Callback>>;
  struct token {
    std::weak_ptr<service::impl> owner;
    std::map<std::uint64_t, slot_ptr> service::impl::*map = nullptr;
    std::uint64_t id = 0;
    slot_ptr s;
    ~token() {
      if (auto o = owner.lock()) {
        std::lock_guard lock(o->sub_mutex);
        ((*o).*map).erase(id);
      }
      std::lock_guard lock(s->call);
      s->active = false;
    }
  };
  auto t = std::make_shared<token>();
  t->owner = i;
  t->map = map;
  t->s = std::make_shared<service::impl::slot<Callback>>(std::move(callback));
  std::lock_guard lock(i->sub_mutex);
  t->id = ++i->next_sub;
  ((*i).*map).emplace(t->id, t->s);
  return t;
}

}  // namespace

std::shared_ptr<void> service::subscribe(subscriber callback) {
  return add_subscriber(impl_, &impl::subscribers, std::move(callback));
}

std::shared_ptr<void> service::subscribe_events(event_subscriber callback) {
  return add_subscriber(impl_, &impl::event_subscribers, std::move(callback));
}

void service::forget(const device_key& key) {
  std::lock_guard lock(impl_->mutex);
  const auto it = impl_->cache.find(detail::cache_key(key));
  if (it != impl_->cache.end() && !it->second.in_flight) impl_->erase_entry(it);
}

std::optional<net::ip::tcp::endpoint> service::webhook_endpoint() const {
  return impl_->webhook_ep;
}

service_stats service::stats() const {
  const auto& c = impl_->counts;
  service_stats s;
  s.lookups = c.lookups.load();
  s.cache_hits = c.hits.load();
  s.fetches = c.fetches.load();
  s.webhook_events = c.events.load();
  s.webhook_duplicates = c.dups.load();
  s.webhook_rejected = c.rejected.load();
  s.webhook_reread_failures = c.failures.load();
  s.webhook_connections_refused = c.refused.load();
  if (const auto t = c.last_answer.load(); t != 0)
    s.last_answer = clock_type::time_point(clock_type::duration(t));
  if (const auto t = c.last_failure.load(); t != 0)
    s.last_failure = clock_type::time_point(clock_type::duration(t));
  return s;
}

service_health service::health() const {
  const auto s = stats();
  service_health h;
  if (!s.last_failure || (s.last_answer && *s.last_answer >= *s.last_failure)) return h;
  const auto& c = impl_->cfg.cache;
  const auto now = impl_->opts.now();
  if (s.last_answer && now - *s.last_answer < c.positive_ttl + c.stale_grace) return h;
  h.can_admit = false;
  std::lock_guard lock(impl_->health_mutex);
  h.detail = "the UEM did not answer (" + impl_->last_failure_detail +
             ") and no cached admit is left (positive_ttl + stale_grace since its last answer)";
  return h;
}

void service::stop() {
  auto& i = *impl_;
  std::lock_guard stop_lock(i.stop_mutex);
  if (i.joined) return;
  {
    std::lock_guard lock(i.mutex);
    i.stopped = true;
  }
  impl* raw = &i;
  if (i.hook_ioc) {
    net::post(*i.hook_ioc, [raw] { raw->webhook->stop(); });
  }
  net::post(*i.ioc, [raw] {
    raw->tick->cancel();
    raw->src->stop();
    for (auto& w : raw->hook_waiters)
      w->timer.cancel();  // not granted: their events fail (503) and stay unremembered
    raw->hook_waiters.clear();
  });
  // Pending fetches now fail fast (stopped source, closed sockets) and wake their waiters;
  // then the worker runs out of work and returns. Webhook connections get their events'
  // outcomes, write to closed sockets and end; then the listener's thread returns too. The
  // bounded waits guard against a stuck peer operation; whatever is left is destroyed with
  // the io_contexts.
  i.work.reset();
  i.hook_work.reset();
  if (i.finished.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    spdlog::error("uem: the worker did not drain within 10 s; stopping it");
    i.ioc->stop();
  }
  i.worker.join();
  if (i.hook_thread.joinable()) {
    if (i.hook_finished.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      spdlog::error("uem: the webhook listener did not drain within 5 s; stopping it");
      i.hook_ioc->stop();
    }
    i.hook_thread.join();
  }
  i.joined = true;
  // Anyone still waiting (a fetch cut short by ioc->stop()) gets the fail-closed answer.
  std::vector<waiter> orphans;
  {
    std::lock_guard lock(i.mutex);
    for (auto& [k, e] : i.cache) {
      for (auto& w : e.waiters)
        orphans.push_back(std::move(w));
      e.waiters.clear();
      e.in_flight = false;
    }
  }
  const auto d = unavailable("the compliance service is stopped");
  for (auto& w : orphans)
    w(d);
}

std::unique_ptr<source> make_source(const config& cfg, net::any_io_executor ex) {
  if (cfg.source == source_kind::file) return detail::make_file_source(cfg.file, ex);
  return detail::make_ws1_source(cfg.ws1, std::move(ex));
}

}  // namespace tunnelgate::uem
