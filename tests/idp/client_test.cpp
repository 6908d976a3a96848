// idp clients against the real okta-sim and entra-sim processes over HTTPS on loopback: what
// the command line cannot show — an OAuth token kept between calls and fetched again once
// after a 401, rate-limit notices and the wait budget, the error fields, and timeouts.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "idp/idp.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace idp = tunnelgate::idp;
using json = nlohmann::json;
using namespace std::chrono_literals;

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void sh(const std::string& cmd) {
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

/// One simulator process on port 0; SIGTERM on destruction.
class sim_process {
 public:
  sim_process(const std::filesystem::path& dir, const std::string& name,
              std::vector<std::string> args) {
    const auto port_file = dir / (name + ".port");
    const auto log = dir / (name + ".log");
    pid_ = ::fork();
    if (pid_ == 0) {
      const auto fd = std::fopen(log.c_str(), "w");
      if (fd != nullptr) {
        ::dup2(::fileno(fd), 1);
        ::dup2(::fileno(fd), 2);
      }
      args.push_back("--port-file");
      args.push_back(port_file.string());
      std::vector<char*> argv;
      argv.reserve(args.size() + 1);
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < end) {
      const auto p = slurp(port_file);
      if (!p.empty() && p.back() == '\n') {
        port_ = std::stoi(p);
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << name << " did not start: " << slurp(log);
  }
  ~sim_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  sim_process(const sim_process&) = delete;
  sim_process& operator=(const sim_process&) = delete;
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto d = dir_.path().string();
    sh("cd " + d +
       " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
       "-out ca.pem -subj /CN=idp-test-ca -days 2 -addext basicConstraints=critical,CA:TRUE "
       ">/dev/null 2>&1"
       " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key "
       "-out server.csr -subj /CN=127.0.0.1 >/dev/null 2>&1"
       " && printf 'subjectAltName=IP:127.0.0.1\\n' >server.ext"
       " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 7 -days 2 "
       "-extfile server.ext -out server.pem >/dev/null 2>&1"
       " && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out app.key "
       ">/dev/null 2>&1 && openssl pkey -in app.key -pubout -out app.pub"
       " && printf 'api-token\\n' >tokens && printf 'app-secret\\n' >secret");
  }

  std::vector<std::string> sim_args(const char* bin) const {
    return {bin, "--cert", (dir_.path() / "server.pem").string(), "--key",
            (dir_.path() / "server.key").string()};
  }

  /// An admin call to a simulator (no auth); returns the body.
  std::string admin(const std::string& method, const std::string& url,
                    const std::string& body = "") {
    const auto out = dir_.path() / "admin.out";
    std::string cmd = "curl -sS --cacert " + (dir_.path() / "ca.pem").string() + " -X " + method +
                      " -o " + out.string() + " '" + url + "'";
    if (!body.empty()) cmd += " -H 'Content-Type: application/json' -d '" + body + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return slurp(out);
  }

  long count(const std::string& base, const std::string& key) {
    const auto j = json::parse(admin("GET", base + "/_sim/stats"), nullptr, false);
    if (!j.is_object() || !j.contains("requests") || !j["requests"].contains(key)) return 0;
    return j["requests"][key].get<long>();
  }

  idp::http_settings http() const {
    idp::http_settings h;
    h.ca_file = dir_.path() / "ca.pem";
    h.timeout = 5s;
    return h;
  }

  tunnelgate::testing::temp_dir dir_;
};

TEST_F(ClientTest, OktaKeepsTheOAuthTokenAndFetchesANewOneAfter401) {
  auto args = sim_args(OKTA_SIM_PATH);
  for (const char* a : {"--client-id", "0oa-app", "--client-public-key"})
    args.emplace_back(a);
  args.push_back((dir_.path() / "app.pub").string());
  sim_process sim(dir_.path(), "okta", args);
  idp::okta_settings s;
  s.org_url = sim.url();
  s.zone = "egress";
  s.auth = idp::okta_oauth{"0oa-app", dir_.path() / "app.key", "kid-1"};
  s.http = http();
  idp::okta_client client(s);
  const auto created = client.publish({"127.0.0.2"}, {.create = true});
  EXPECT_TRUE(created.created);
  EXPECT_EQ(created.id.substr(0, 3), "nzo");
  EXPECT_TRUE(client.verify({"127.0.0.2"}).ok());
  EXPECT_EQ(count(sim.url(), "POST /oauth2/v1/token"), 1);  // kept between calls

  admin("POST", sim.url() + "/_sim/tokens/revoke");
  const auto r = client.verify({"127.0.0.2"});  // 401 on the kept token, then a new one
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(count(sim.url(), "POST /oauth2/v1/token"), 2);
}

TEST_F(ClientTest, OktaErrorFieldsRateLimitNoticeAndBudget) {
  auto args = sim_args(OKTA_SIM_PATH);
  args.emplace_back("--token-file");
  args.push_back((dir_.path() / "tokens").string());
  sim_process sim(dir_.path(), "okta", args);
  idp::okta_settings s;
  s.org_url = sim.url();
  s.zone = "egress";
  s.auth = idp::okta_ssws{idp::secret("not-the-token")};
  s.http = http();
  try {
    idp::okta_client(s).verify({"127.0.0.2"});
    ADD_FAILURE() << "no error";
  } catch (const idp::error& e) {
    EXPECT_EQ(e.code(), idp::errc::unauthorized);
    EXPECT_EQ(e.http_status(), 401);
    EXPECT_EQ(e.idp_code(), "E0000011");
    EXPECT_EQ(e.idp_summary(), "Invalid token provided");
    EXPECT_EQ(std::string(e.what()).find("not-the-token"), std::string::npos);
  }

  s.auth = idp::okta_ssws{idp::read_secret_file(dir_.path() / "tokens", "token")};
  std::vector<std::string> notes;
  s.http.notice = [&notes](const std::string& n) { notes.push_back(n); };
  idp::okta_client client(s);
  EXPECT_EQ(client.publish({"127.0.0.2"}, {.create = true}).entries, 1U);
  admin("POST", sim.url() + "/_sim/faults", R"({"fault":"rate_limit","count":1,"reset_in":1})");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.verify({"127.0.0.2"}).ok());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1s);
  ASSERT_EQ(notes.size(), 1U);
  EXPECT_NE(notes[0].find("rate limited (HTTP 429); waiting"), std::string::npos) << notes[0];

  s.http.max_rate_limit_wait = 0ms;
  idp::okta_client impatient(s);
  admin("POST", sim.url() + "/_sim/faults", R"({"fault":"rate_limit","count":1,"reset_in":1})");
  try {
    impatient.verify({"127.0.0.2"});
    ADD_FAILURE() << "no error";
  } catch (const idp::error& e) {
    EXPECT_EQ(e.code(), idp::errc::rate_limited);
    EXPECT_EQ(e.http_status(), 429);
    EXPECT_EQ(e.idp_code(), "E0000047");
  }
}

TEST_F(ClientTest, EntraKeepsTheTokenAndFetchesANewOneAfter401) {
  auto args = sim_args(ENTRA_SIM_PATH);
  for (const char* a : {"--tenant", "contoso", "--client-id", "app-1", "--client-secret-file"})
    args.emplace_back(a);
  args.push_back((dir_.path() / "secret").string());
  sim_process sim(dir_.path(), "entra", args);
  idp::entra_settings s;
  s.tenant = "contoso";
  s.location = "egress";
  s.client_id = "app-1";
  s.client_secret = idp::read_secret_file(dir_.path() / "secret", "secret");
  s.login_url = sim.url();
  s.graph_url = sim.url();
  s.http = http();
  idp::entra_client client(s);
  const auto created = client.publish({"127.0.0.2", "::1"}, {.create = true});
  EXPECT_TRUE(created.created);
  EXPECT_EQ(created.entries, 2U);
  const auto again = client.publish({"127.0.0.2", "::1"}, {});
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(again.id, created.id);
  EXPECT_EQ(count(sim.url(), "POST /contoso/oauth2/v2.0/token"), 1);
  admin("POST", sim.url() + "/_sim/tokens/revoke");
  EXPECT_TRUE(client.verify({"127.0.0.2", "::1"}).ok());
  EXPECT_EQ(count(sim.url(), "POST /contoso/oauth2/v2.0/token"), 2);
}

TEST_F(ClientTest, ASilentServerTimesOut) {
  // Accepted by the kernel (listen backlog) but never answered: the TLS handshake must time out.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  idp::okta_settings s;
  s.org_url = "https://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  s.zone = "egress";
  s.auth = idp::okta_ssws{idp::secret("t")};
  s.http = http();
  s.http.timeout = 300ms;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    idp::okta_client(s).verify({"127.0.0.2"});
    ADD_FAILURE() << "no error";
  } catch (const idp::error& e) {
    EXPECT_EQ(e.code(), idp::errc::timeout) << e.what();
    EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  ::close(fd);
}

}  // namespace
