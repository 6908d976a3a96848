// Internal: the seam between the gateway and the UEM (DESIGN.md §5): is this device admitted,
// and on which platform? The production implementation wraps the uem library; tests may give
// their own.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "certauth/certauth.hpp"
#include "dtr/dtr.hpp"
#include "gateway/net.hpp"

namespace tunnelgate::gateway {

struct admission {
  bool admitted = false;
  /// ok, unknown_device, not_enrolled, noncompliant, compromised, uem_unavailable, unknown_platform
  std::string reason;
  std::optional<dtr::platform> platform;
  std::string detail;  ///< one line for logs and the device's 403 body
};

class compliance {
 public:
  virtual ~compliance() = default;
  /// Decides on the calling coroutine's executor; never admits on an error.
  virtual awaitable<admission> check(const certauth::device_identity& id) = 0;
  /// Registers the callback told (on any thread) when a device's decision turns to a refusal.
  virtual void on_refused(
      std::function<void(const std::string& udid, const std::string& reason)> f) = 0;
  /// True once the source has loaded (for /readyz).
  virtual bool ready() const = 0;
  /// Why no device can be admitted now (the UEM does not answer and nothing cached admits);
  /// empty when some can. For /readyz and READY=1.
  virtual std::string cannot_admit() const { return {}; }
  /// The source's own counters in Prometheus text format (webhook events, UEM requests).
  virtual std::string render_metrics() const { return {}; }
};

}  // namespace tunnelgate::gateway
