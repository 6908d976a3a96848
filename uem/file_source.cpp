// The `file` source: an inventory of device records in the UEM API shape, reloaded when the
// file changes. Lives on the worker only, so it needs no locks.
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <unordered_map>

#include "support/yaml.hpp"
#include "uem/internal.hpp"

namespace tunnelgate::uem::detail {

namespace {

/// Identifies one state of the file; any difference means "reload".
std::string file_signature(const std::filesystem::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return "missing";
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
         std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec) + ":" + std::to_string(st.st_ctim.tv_sec) + "." +
         std::to_string(st.st_ctim.tv_nsec);
}

struct inventory {
  std::vector<device_record> devices;
  std::unordered_map<std::string, std::size_t> by_key;  // cache_key() -> index
};

std::shared_ptr<const inventory> load(const std::filesystem::path& path) {
  const auto text = read_file(path, "inventory file", support::inventory_yaml_limits.max_bytes);
  auto r = parse_inventory(text, path.string());
  if (!r.ok()) {
    std::string msg = "invalid inventory " + path.string() + ":";
    for (const auto& e : r.errors)
      msg += "\n  " + e;
    throw std::system_error(make_error_code(errc::bad_inventory), msg);
  }
  auto inv = std::make_shared<inventory>();
  inv->devices = std::move(r.devices);
  for (std::size_t i = 0; i < inv->devices.size(); ++i) {
    const auto& d = inv->devices[i];
    if (!d.udid.empty()) inv->by_key.emplace(cache_key(device_key::udid(d.udid)), i);
    if (!d.serial.empty()) inv->by_key.emplace(cache_key(device_key::serial(d.serial)), i);
    if (!d.device_id.empty()) {
      inv->by_key.emplace(cache_key(device_key::device_id(d.device_id)), i);
    }
  }
  return inv;
}

class file_source final : public source {
 public:
  explicit file_source(std::filesystem::path path)
      : path_(std::move(path)), signature_(file_signature(path_)), current_(load(path_)) {
    spdlog::info("uem: inventory {} loaded, {} devices", path_.string(), current_->devices.size());
  }

  net::awaitable<fetch_result> fetch(device_key key) override {
    fetch_result r;
    if (stopped_) {
      r.error = make_error_code(errc::stopped);
      co_return r;
    }
    const auto it = current_->by_key.find(cache_key(key));
    if (it != current_->by_key.end()) r.device = current_->devices[it->second];
    co_return r;
  }

  bool poll_changed() override {
    auto sig = file_signature(path_);
    if (sig == signature_) return false;
    signature_ = std::move(sig);
    try {
      current_ = load(path_);
      spdlog::info("uem: inventory {} reloaded, {} devices", path_.string(),
                   current_->devices.size());
      return true;
    } catch (const std::system_error& e) {
      // Keep the last good inventory: a half-written file must not lock every device out,
      // and a bad one must not admit anyone new. Reported once per file state.
      spdlog::error("uem: keeping the previous inventory: {}", e.what());
      return false;
    }
  }

  void stop() override { stopped_ = true; }
  std::string_view name() const override { return "file"; }

 private:
  const std::filesystem::path path_;
  std::string signature_;                     // state of the file at the last load attempt
  std::shared_ptr<const inventory> current_;  // never null
  bool stopped_ = false;
};

}  // namespace

std::unique_ptr<source> make_file_source(const std::filesystem::path& path,
                                         const net::any_io_executor& /*ex*/) {
  return std::make_unique<file_source>(path);
}

}  // namespace tunnelgate::uem::detail
