// Shared helpers for the uem tests: temp directories, deadline waits, a controllable source,
// a fake clock and a uem-sim child process.
#pragma once

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "uem/uem.hpp"

namespace uem_test {

namespace uem = tunnelgate::uem;

/// A fresh directory, removed with its contents on destruction (shared with other suites).
using temp_dir = tunnelgate::testing::temp_dir;

/// Polls `pred` until it holds or `timeout` passes (a deadline, not a sleep).
testing::AssertionResult wait_until(const std::function<bool()>& pred,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(5),
                                    const std::string& what = "condition");

/// Injected clock for the cache.
struct fake_clock {
  std::atomic<std::int64_t> offset_ms{0};
  uem::clock_type::time_point base = uem::clock_type::now();
  uem::clock_type::time_point now() const {
    return base + std::chrono::milliseconds(offset_ms.load());
  }
  void advance(std::chrono::milliseconds d) { offset_ms += d.count(); }
  std::function<uem::clock_type::time_point()> fn() {
    return [this] { return now(); };
  }
};

/// A source whose answers tests set per device; counts fetches; can hold fetches until
/// released (to make lookups overlap) or fail them (UEM down).
class fake_source_state {
 public:
  void set(uem::device_record r);
  void remove(const std::string& udid);
  void set_down(bool down);
  void hold(bool h);  ///< while held, fetches wait (on the worker) until released
  int fetches() const { return fetches_.load(); }

  uem::net::awaitable<uem::fetch_result> fetch(uem::device_key key, uem::net::any_io_executor ex);
  std::mutex mutex;  // guards devices_, down_, held_

 private:
  std::map<std::string, uem::device_record> devices_;  // by lower-case udid
  bool down_ = false;
  bool held_ = false;
  std::atomic<int> fetches_{0};
};

std::function<std::unique_ptr<uem::source>(uem::net::any_io_executor)> fake_source_factory(
    const std::shared_ptr<fake_source_state>& state);

uem::device_record make_record(const std::string& udid, const std::string& compliance = "Compliant",
                               bool compromised = false, const std::string& enrollment = "Enrolled",
                               const std::string& platform = "Apple");

/// JSON text of one record in the UEM API shape.
std::string record_json(const uem::device_record& r, int id = 0);

/// A running uem-sim with a development CA, an inventory and credentials in a temp dir.
/// Killed (SIGTERM, then SIGKILL) and cleaned up on destruction, also when a test fails.
struct sim_options {
  std::string inventory_json;  ///< array of records
  bool oauth = true;
  bool basic = true;
  int token_ttl = 3600;
  std::string webhook_url;  ///< empty = no webhook
};

class sim_process {
 public:
  explicit sim_process(const sim_options& o);
  ~sim_process();
  sim_process(const sim_process&) = delete;
  sim_process& operator=(const sim_process&) = delete;

  unsigned short port() const { return port_; }
  const temp_dir& dir() const { return dir_; }
  std::filesystem::path ca_file() const;
  /// A `uem:` config text for this simulator (paths absolute).
  std::string ws1_config(bool oauth, const std::string& extra_ws1 = {},
                         const std::string& extra_uem = {}) const;
  /// Admin request to /_sim/...; returns the JSON body text, fails the test on non-2xx.
  std::string admin(const std::string& method, const std::string& target,
                    const std::string& body = {}) const;
  /// Requests counted by the simulator for `path` since the last reset.
  long long count(const std::string& path) const;
  void reset_stats() const;
  void set_faults(const std::string& json) const;

  static constexpr const char* tenant_code = "TENANT-0123";
  static constexpr const char* basic_user = "tg-api";
  static constexpr const char* basic_password = "basic-pw-1";
  static constexpr const char* client_id = "tunnelgate";
  static constexpr const char* client_secret = "client-secret-1";
  static constexpr const char* hook_user = "uem-hook";
  static constexpr const char* hook_password = "hook-pw-1";

 private:
  temp_dir dir_;
  int pid_ = -1;
  unsigned short port_ = 0;
};

/// Loads a config from text or fails the test with all errors.
uem::config load(const std::string& yaml, const std::filesystem::path& base = ".");

}  // namespace uem_test
