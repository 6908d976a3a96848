// The production compliance seam: the uem library's service (cache, single flight, webhook).
#include "gateway/uem_compliance.hpp"

#include <mutex>
#include <vector>

namespace tunnelgate::gateway {

namespace {

class uem_compliance final : public compliance {
 public:
  explicit uem_compliance(std::shared_ptr<uem::service> svc) : svc_(std::move(svc)) {
    // Subscribers run on the uem worker thread: only copy the callbacks and call them; the
    // registry posts the actual closing to each session's own executor.
    subscription_ = svc_->subscribe([this](const uem::change& c) {
      if (c.after && c.after->admitted()) return;
      if (c.key.kind != uem::key_kind::udid) return;
      const std::string reason = c.after ? std::string(uem::to_string(c.after->code)) : "unknown";
      std::vector<std::function<void(const std::string&, const std::string&)>> targets;
      {
        std::lock_guard lock(mutex_);
        targets = callbacks_;
      }
      for (const auto& f : targets)
        f(c.key.value, reason);
    });
  }

  awaitable<admission> check(const certauth::device_identity& id) override {
    auto key = uem::device_key::udid(id.udid);  // a named local: no temporary in co_await
    const auto d = co_await svc_->lookup(std::move(key));
    admission a;
    a.admitted = d->admitted();
    a.reason = std::string(uem::to_string(d->code));
    a.platform = d->platform.empty() ? std::nullopt : dtr::parse_platform(d->platform);
    a.detail = d->summary_line();
    if (!d->detail.empty()) a.detail += " (" + d->detail + ")";
    if (d->stale) a.detail += " (stale: the UEM is unreachable, cached admit within grace)";
    co_return a;
  }

  void on_refused(std::function<void(const std::string&, const std::string&)> f) override {
    std::lock_guard lock(mutex_);
    callbacks_.push_back(std::move(f));
  }

  bool ready() const override { return true; }

  std::string cannot_admit() const override {
    auto h = svc_->health();
    return h.can_admit ? std::string() : std::move(h.detail);
  }

  std::string render_metrics() const override {
    const auto s = svc_->stats();
    std::string out;
    const auto counter = [&out](const char* name, const char* help, const std::string& labels,
                                std::uint64_t v, bool header) {
      if (header) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n";
      }
      out += std::string(name) + labels + " " + std::to_string(v) + "\n";
    };
    counter("tunnelgate_uem_webhook_events_total",
            "UEM webhook events, by result (accepted, duplicate, rejected)",
            "{result=\"accepted\"}", s.webhook_events, true);
    counter("tunnelgate_uem_webhook_events_total", "", "{result=\"duplicate\"}",
            s.webhook_duplicates, false);
    counter("tunnelgate_uem_webhook_events_total", "", "{result=\"rejected\"}", s.webhook_rejected,
            false);
    counter("tunnelgate_uem_webhook_reread_failures_total",
            "Webhook events whose device could not be re-read (answered 503, retried by the UEM)",
            "", s.webhook_reread_failures, true);
    counter("tunnelgate_uem_webhook_connections_refused_total",
            "Webhook connections closed at accept (uem.webhook.max_connections)", "",
            s.webhook_connections_refused, true);
    counter("tunnelgate_uem_requests_total",
            "Requests to the UEM (or inventory reads), cache misses and refreshes", "", s.fetches,
            true);
    counter("tunnelgate_uem_cache_hits_total", "Compliance answers from the cache", "",
            s.cache_hits, true);
    return out;
  }

 private:
  // Declared so that the subscription is released first: the callback must never run on a
  // half-destroyed object.
  std::mutex mutex_;
  std::vector<std::function<void(const std::string&, const std::string&)>> callbacks_;
  std::shared_ptr<uem::service> svc_;
  std::shared_ptr<void> subscription_;
};

}  // namespace

std::shared_ptr<compliance> make_uem_compliance(std::shared_ptr<uem::service> svc) {
  return std::make_shared<uem_compliance>(std::move(svc));
}

}  // namespace tunnelgate::gateway
