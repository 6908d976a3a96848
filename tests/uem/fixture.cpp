#include <utility>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "certauth/certauth.hpp"
#include "http_client.hpp"
#include "uem_fixture.hpp"

extern char** environ;

namespace uem_test {

testing::AssertionResult wait_until(const std::function<bool()>& pred,
                                    std::chrono::milliseconds timeout, const std::string& what) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return testing::AssertionSuccess();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (pred()) return testing::AssertionSuccess();
  return testing::AssertionFailure() << what << " not reached within " << timeout.count() << " ms";
}

void fake_source_state::set(uem::device_record r) {
  std::lock_guard lock(mutex);
  std::string k = r.udid;
  for (auto& c : k)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  devices_[k] = std::move(r);
}

void fake_source_state::remove(const std::string& udid) {
  std::lock_guard lock(mutex);
  devices_.erase(udid);
}

void fake_source_state::set_down(bool down) {
  std::lock_guard lock(mutex);
  down_ = down;
}

void fake_source_state::hold(bool h) {
  std::lock_guard lock(mutex);
  held_ = h;
}

uem::net::awaitable<uem::fetch_result> fake_source_state::fetch(uem::device_key key,
                                                                uem::net::any_io_executor ex) {
  ++fetches_;
  // While held, yield on a short timer (on the worker) until released.
  for (;;) {
    {
      std::lock_guard lock(mutex);
      if (!held_) break;
    }
    uem::net::steady_timer t(ex, std::chrono::milliseconds(1));
    co_await t.async_wait(uem::net::use_awaitable);
  }
  uem::fetch_result r;
  std::lock_guard lock(mutex);
  if (down_) {
    r.error = uem::errc::unreachable;
    r.detail = "fake UEM is down";
    co_return r;
  }
  // Like the real sources (and the UEM), identifiers compare without ASCII case.
  const auto same = [](const std::string& x, const std::string& y) {
    return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(), [](char p, char q) {
             return std::tolower(static_cast<unsigned char>(p)) ==
                    std::tolower(static_cast<unsigned char>(q));
           });
  };
  for (const auto& [k, d] : devices_) {
    const bool hit = key.kind == uem::key_kind::udid     ? same(d.udid, key.value)
                     : key.kind == uem::key_kind::serial ? same(d.serial, key.value)
                                                         : d.device_id == key.value;
    if (hit) r.device = d;
  }
  co_return r;
}

namespace {
class fake_source final : public uem::source {
 public:
  fake_source(std::shared_ptr<fake_source_state> s, uem::net::any_io_executor ex)
      : s_(std::move(s)), ex_(std::move(ex)) {}
  uem::net::awaitable<uem::fetch_result> fetch(uem::device_key key) override {
    return s_->fetch(std::move(key), ex_);
  }
  std::string_view name() const override { return "fake"; }

 private:
  std::shared_ptr<fake_source_state> s_;
  uem::net::any_io_executor ex_;
};
}  // namespace

std::function<std::unique_ptr<uem::source>(uem::net::any_io_executor)> fake_source_factory(
    const std::shared_ptr<fake_source_state>& state) {
  return [state](const uem::net::any_io_executor& ex) -> std::unique_ptr<uem::source> {
    return std::make_unique<fake_source>(state, ex);
  };
}

uem::device_record make_record(const std::string& udid, const std::string& compliance,
                               bool compromised, const std::string& enrollment,
                               const std::string& platform) {
  uem::device_record r;
  r.udid = udid;
  r.serial = "SN-" + udid;
  r.platform = platform;
  r.enrollment_status = enrollment;
  r.compliance_status = compliance;
  r.compromised = compromised;
  r.user_email = udid + "@example.com";
  return r;
}

std::string record_json(const uem::device_record& r, int id) {
  nlohmann::ordered_json j;
  if (id != 0) j["Id"] = {{"Value", id}};
  j["Udid"] = r.udid;
  j["SerialNumber"] = r.serial;
  j["UserEmailAddress"] = r.user_email;
  j["Platform"] = r.platform;
  j["OperatingSystem"] = "17.4";
  j["EnrollmentStatus"] = r.enrollment_status;
  j["ComplianceStatus"] = r.compliance_status;
  j["CompromisedStatus"] = r.compromised;
  return j.dump();
}

uem::config load(const std::string& yaml, const std::filesystem::path& base) {
  auto r = uem::load_config(yaml, "test.yaml", base);
  std::string all;
  for (const auto& e : r.errors)
    all += e.to_string() + "\n";
  EXPECT_TRUE(r) << all;
  if (!r) throw std::runtime_error("bad test config: " + all);
  return *r.value;
}

sim_process::sim_process(const sim_options& o) {
  namespace ca = tunnelgate::certauth;
  ca::dev_ca::init(dir_.path() / "ca");
  dir_.write("inventory.json", o.inventory_json);
  dir_.write("tenant", std::string(tenant_code) + "\n");
  dir_.write("basic_pw", basic_password);
  dir_.write("client_secret", client_secret);
  dir_.write("hook_pw", hook_password);
  const auto caroot = dir_.path() / "ca";
  std::vector<std::string> args{UEM_SIM_PATH,
                                "--inventory",
                                (dir_.path() / "inventory.json").string(),
                                "--listen",
                                "127.0.0.1:0",
                                "--port-file",
                                (dir_.path() / "port").string(),
                                "--cert",
                                (caroot / "server.pem").string(),
                                "--key",
                                (caroot / "server.key").string(),
                                "--tenant-code-file",
                                (dir_.path() / "tenant").string(),
                                "--token-ttl",
                                std::to_string(o.token_ttl)};
  if (o.basic) {
    for (std::string a : {"--basic-user", basic_user})
      args.push_back(a);
    args.push_back("--basic-password-file");
    args.push_back((dir_.path() / "basic_pw").string());
  }
  if (o.oauth) {
    args.push_back("--client-id");
    args.push_back(client_id);
    args.push_back("--client-secret-file");
    args.push_back((dir_.path() / "client_secret").string());
  }
  if (!o.webhook_url.empty()) {
    args.push_back("--webhook-url");
    args.push_back(o.webhook_url);
    args.push_back("--webhook-user");
    args.push_back(hook_user);
    args.push_back("--webhook-password-file");
    args.push_back((dir_.path() / "hook_pw").string());
  }
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  const auto log = (dir_.path() / "sim.log").string();
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start uem-sim");
  const auto port_file = dir_.path() / "port";
  int status = 0;
  const bool up = wait_until(
      [&] {
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          return true;
        }
        return std::filesystem::exists(port_file);
      },
      std::chrono::seconds(10), "uem-sim port file");
  if (!up || pid_ < 0) {
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    throw std::runtime_error("uem-sim did not start: " + text);
  }
  std::ifstream in(port_file);
  int p = 0;
  in >> p;
  port_ = static_cast<unsigned short>(p);
}

sim_process::~sim_process() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  const bool gone = wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; },
                               std::chrono::seconds(5), "uem-sim exit");
  if (!gone) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    ADD_FAILURE() << "uem-sim ignored SIGTERM";
  } else {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "uem-sim did not exit cleanly on SIGTERM (status " << status << ")";
  }
}

std::filesystem::path sim_process::ca_file() const {
  return dir_.path() / "ca" / "ca.pem";
}

std::string sim_process::ws1_config(bool oauth, const std::string& extra_ws1,
                                    const std::string& extra_uem) const {
  const auto base = "https://127.0.0.1:" + std::to_string(port_);
  std::string y = "uem:\n  source: ws1\n  ws1:\n    base_url: " + base +
                  "\n    tenant_code_file: " + (dir_.path() / "tenant").string() +
                  "\n    ca_file: " + ca_file().string() +
                  "\n    connect_timeout: 2s\n    request_timeout: 2s\n";
  if (oauth) {
    y += std::string("    auth:\n      oauth:\n        token_url: ") + base +
         "/connect/token\n        client_id: " + client_id +
         "\n        client_secret_file: " + (dir_.path() / "client_secret").string() + "\n";
  } else {
    y += std::string("    auth:\n      basic:\n        username: ") + basic_user +
         "\n        password_file: " + (dir_.path() / "basic_pw").string() + "\n";
  }
  y += extra_ws1;
  y += extra_uem;
  return y;
}

std::string sim_process::admin(const std::string& method, const std::string& target,
                               const std::string& body) const {
  http_client c("127.0.0.1", port_, ca_file().string());
  auto r = c.request(method, target, body, {{"Content-Type", "application/json"}});
  EXPECT_TRUE(r.status >= 200 && r.status < 300)
      << method << " " << target << " -> " << r.status << " " << r.body << r.error;
  return r.body;
}

long long sim_process::count(const std::string& path) const {
  const auto j = nlohmann::json::parse(admin("GET", "/_sim/stats"));
  const auto& req = j.at("requests");
  return req.contains(path) ? req[path].get<long long>() : 0;
}

void sim_process::reset_stats() const {
  admin("DELETE", "/_sim/stats");
}

void sim_process::set_faults(const std::string& json) const {
  admin("POST", "/_sim/faults", json);
}

}  // namespace uem_test
