// posture_sync (issue 15) driven directly with posture_report values against the real okta-sim
// (SSWS token) and entra-sim processes over HTTPS on loopback, no gateway daemon: revocation
// and restore with what the simulators then hold, idempotent submits, an admitted device never
// revoked, a device an administrator suspended, mapping problems (never retried), retries with
// their attempt numbers, a revocation superseded by the device's return, the metrics, stop().
// Audit lines are collected from the callback and awaited with generous deadlines.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gateway/posture_sync.hpp"
#include "idp/idp.hpp"
#include "support/sim_process.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace gw = tunnelgate::gateway;
namespace idp = tunnelgate::idp;
using json = nlohmann::json;
using gw::posture_action;
using gw::posture_result;
using namespace std::chrono_literals;

constexpr auto deadline = 30s;  // generous: six builders share two cores
constexpr const char* caep_issuer = "https://tunnelgate.test";  // the transmitter (us)

void sh(const std::string& cmd) {
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

using tunnelgate::testing::sim_process;
using tunnelgate::testing::slurp;

std::string describe(const std::vector<gw::posture_audit>& lines) {
  std::string out;
  for (const auto& a : lines) {
    out += "  " + a.device + " " + std::string(to_string(a.action)) + " " +
           std::string(to_string(a.result)) + " attempt " + std::to_string(a.attempt) + ": " +
           a.detail + "\n";
  }
  return out.empty() ? "  (none)\n" : out;
}

/// The audit lines, collected from the worker threads.
class audit_sink {
 public:
  using lines_t = std::vector<gw::posture_audit>;
  void add(const gw::posture_audit& a) {
    {
      std::lock_guard lock(mutex_);
      lines_.push_back(a);
    }
    cv_.notify_all();
  }
  lines_t lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  /// Waits until `pred` holds over the lines so far.
  ::testing::AssertionResult wait(const std::function<bool(const lines_t&)>& pred,
                                  const std::string& what) {
    std::unique_lock lock(mutex_);
    if (cv_.wait_for(lock, deadline, [&] { return pred(lines_); })) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "no " << what << " within " << deadline.count() << " s; audit:\n"
           << describe(lines_);
  }
  /// Waits until every action in `actions` has a final (not `retry`) line for `device`.
  ::testing::AssertionResult wait_final(const std::string& device,
                                        const std::vector<posture_action>& actions) {
    return wait(
        [&](const lines_t& ls) {
          for (const auto act : actions) {
            const bool found = std::any_of(ls.begin(), ls.end(), [&](const auto& a) {
              return a.device == device && a.action == act && a.result != posture_result::retry;
            });
            if (!found) return false;
          }
          return true;
        },
        "final result for every action of " + device);
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  lines_t lines_;
};

/// The lines for `device` and `action`, in order.
std::vector<gw::posture_audit> of(const std::vector<gw::posture_audit>& lines,
                                  const std::string& device, posture_action action) {
  std::vector<gw::posture_audit> out;
  for (const auto& a : lines) {
    if (a.device == device && a.action == action) out.push_back(a);
  }
  return out;
}

std::size_t count_device(const std::vector<gw::posture_audit>& lines, const std::string& device) {
  return static_cast<std::size_t>(
      std::count_if(lines.begin(), lines.end(), [&](const auto& a) { return a.device == device; }));
}

gw::posture_report report(const std::string& udid, bool admitted, const std::string& user,
                          const std::string& email) {
  gw::posture_report r;
  r.udid = udid;
  r.serial = "SN-" + udid;
  r.platform = "ios";
  r.user_name = user;
  r.user_email = email;
  r.admitted = admitted;
  r.reason = admitted ? "ok" : "noncompliant";
  r.event = "webhook \"Compliance Status Changed\" 148 (test)";
  return r;
}

class PostureSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto d = dir_.path().string();
    sh("cd " + d +
       " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
       "-out ca.pem -subj /CN=posture-test-ca -days 2 "
       "-addext basicConstraints=critical,CA:TRUE >/dev/null 2>&1"
       " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key "
       "-out server.csr -subj /CN=127.0.0.1 >/dev/null 2>&1"
       " && printf 'subjectAltName=IP:127.0.0.1\\n' >server.ext"
       " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 7 -days 2 "
       "-extfile server.ext -out server.pem >/dev/null 2>&1"
       " && printf 'okta-api-token\\n' >okta.token && printf 'entra-secret\\n' >entra.secret"
       " && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out caep.key "
       ">/dev/null 2>&1");
    std::ofstream(dir_ / "caep.jwks") << idp::make_jwks(slurp(dir_ / "caep.key"), "caep-1");
    okta_ = std::make_unique<sim_process>(
        dir_.path(), "okta",
        std::vector<std::string>{OKTA_SIM_PATH, "--cert", (dir_ / "server.pem").string(), "--key",
                                 (dir_ / "server.key").string(), "--token-file",
                                 (dir_ / "okta.token").string(), "--ssf-issuer", caep_issuer,
                                 "--ssf-jwks-file", (dir_ / "caep.jwks").string()});
    entra_ = std::make_unique<sim_process>(
        dir_.path(), "entra",
        std::vector<std::string>{ENTRA_SIM_PATH, "--cert", (dir_ / "server.pem").string(), "--key",
                                 (dir_ / "server.key").string(), "--tenant", "contoso",
                                 "--client-id", "tg-app", "--client-secret-file",
                                 (dir_ / "entra.secret").string()});
    admin(
        "POST", okta_->url() + "/_sim/devices",
        R"([{"udid":"POST-1","serialNumber":"SN-POST-1","displayName":"Alice iPhone","platform":"IOS"},
              {"udid":"QUIET-1","serialNumber":"SN-QUIET-1","displayName":"Quiet iPhone","platform":"IOS"},
              {"udid":"ADMIN-1","serialNumber":"SN-ADMIN-1","displayName":"Adam iPhone","platform":"IOS","status":"SUSPENDED"},
              {"udid":"AMBIG-1","serialNumber":"SN-AMBIG-1","displayName":"Carol iPhone","platform":"IOS"},
              {"udid":"NOUSER-1","serialNumber":"SN-NOUSER-1","displayName":"Kiosk iPad","platform":"IOS"}])");
    admin("POST", okta_->url() + "/_sim/users",
          R"([{"login":"alice@example.com","firstName":"Alice","lastName":"A"},
              {"login":"adam@example.com","firstName":"Adam","lastName":"A"},
              {"login":"carol.one","email":"carol@example.com","firstName":"Carol","lastName":"One"},
              {"login":"carol.two","email":"carol@example.com","firstName":"Carol","lastName":"Two"}])");
    admin("POST", entra_->url() + "/_sim/users",
          R"([{"userPrincipalName":"alice@example.com","mail":"alice@example.com"},
              {"userPrincipalName":"adam@example.com","mail":"adam@example.com"},
              {"userPrincipalName":"carol@example.com","mail":"carol@example.com"}])");
  }

  /// An admin call to a simulator (no auth); returns the body.
  std::string admin(const std::string& method, const std::string& url,
                    const std::string& body = "") {
    const auto out = dir_ / "admin.out";
    std::string cmd = "curl -sS --fail --cacert " + (dir_ / "ca.pem").string() + " -X " + method +
                      " -o " + out.string() + " '" + url + "'";
    if (!body.empty()) cmd += " -H 'Content-Type: application/json' -d '" + body + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return slurp(out);
  }

  /// okta-sim's status of the device with `udid` (GET /_sim/devices); empty when none.
  std::string okta_status(const std::string& udid) {
    const auto j = json::parse(admin("GET", okta_->url() + "/_sim/devices"), nullptr, false);
    if (!j.is_array()) return "(not an array)";
    for (const auto& d : j) {
      if (d.contains("profile") && d["profile"].value("udid", std::string()) == udid) {
        return d.value("status", std::string());
      }
    }
    return {};
  }

  long okta_requests() {
    const auto j = json::parse(admin("GET", okta_->url() + "/_sim/stats"), nullptr, false);
    return j.is_object() ? j.value("total", -1L) : -1L;
  }

  gw::posture_sync_config config() const {
    idp::http_settings http;
    http.ca_file = dir_ / "ca.pem";
    http.timeout = 10s;
    gw::posture_sync_config cfg;
    gw::posture_sync_config::okta_part okta;
    okta.settings.org_url = okta_->url();
    okta.settings.auth = idp::okta_ssws{idp::secret("okta-api-token")};
    okta.settings.http = http;
    cfg.okta = okta;
    gw::posture_sync_config::entra_part entra;
    entra.settings.tenant = "contoso";
    entra.settings.client_id = "tg-app";
    entra.settings.client_secret = idp::secret("entra-secret");
    entra.settings.login_url = entra_->url();
    entra.settings.graph_url = entra_->url();
    entra.settings.http = http;
    cfg.entra = entra;
    cfg.workers = 2;
    cfg.retry_initial = 100ms;
    cfg.retry_max = 1s;
    return cfg;
  }

  std::unique_ptr<gw::posture_sync> make(const gw::posture_sync_config& cfg) {
    auto sink = sink_;  // the callback may outlive this fixture on a detached worker
    return std::make_unique<gw::posture_sync>(cfg,
                                              [sink](const gw::posture_audit& a) { sink->add(a); });
  }

  tunnelgate::testing::temp_dir dir_;
  std::unique_ptr<sim_process> okta_;
  std::unique_ptr<sim_process> entra_;
  std::shared_ptr<audit_sink> sink_ = std::make_shared<audit_sink>();
};

const std::vector<posture_action> revocation{posture_action::suspend_device,
                                             posture_action::clear_sessions,
                                             posture_action::revoke_sessions};

// (a) (b) (c) and the metrics (i).
TEST_F(PostureSyncTest, RevokesOnceAndRestoresWhatItSuspended) {
  const auto signed_in = json::parse(
      admin("POST", okta_->url() + "/_sim/sessions", R"({"login":"alice@example.com"})"));
  ASSERT_EQ(okta_status("POST-1"), "ACTIVE");
  auto sync = make(config());
  auto down = report("POST-1", false, "alice", "alice@example.com");
  down.named_event = true;  // as the webhook event's re-read reports it

  sync->submit(down);
  // The same webhook reported again by the UEM cache, which knows only its cause: the audit
  // still names the event.
  auto cache_change = down;
  cache_change.event = "webhook";
  cache_change.named_event = false;
  sync->submit(cache_change);
  ASSERT_TRUE(sink_->wait_final("udid:POST-1", revocation));
  auto lines = sink_->lines();
  for (const auto act : revocation) {
    const auto l = of(lines, "udid:POST-1", act);
    ASSERT_EQ(l.size(), 1U) << describe(lines);
    EXPECT_EQ(l[0].result, posture_result::done) << describe(lines);
    EXPECT_EQ(l[0].attempt, 1U);
    EXPECT_EQ(l[0].event, down.event);
  }
  EXPECT_EQ(of(lines, "udid:POST-1", posture_action::clear_sessions)[0].user, "alice@example.com");
  EXPECT_EQ(of(lines, "udid:POST-1", posture_action::revoke_sessions)[0].user, "alice@example.com");
  EXPECT_EQ(okta_status("POST-1"), "SUSPENDED");
  // The Okta session and refresh token are gone too.
  const auto sessions = json::parse(admin("GET", okta_->url() + "/_sim/sessions"));
  bool checked = false;
  for (const auto& u : sessions) {
    if (u.value("userId", std::string()) != signed_in.value("userId", std::string())) continue;
    for (const auto& s : u["sessions"])
      EXPECT_EQ(s.value("state", std::string()), "revoked");
    for (const auto& t : u["refresh_tokens"])
      EXPECT_EQ(t.value("state", std::string()), "revoked");
    checked = true;
  }
  EXPECT_TRUE(checked) << sessions.dump();

  // (b) The same state again: nothing queued, nothing new in the audit.
  sync->submit(down);
  EXPECT_EQ(sync->pending(), 0U);

  // (c) Admitted again: the device this gateway suspended is unsuspended, and only that.
  sync->submit(report("POST-1", true, "alice", "alice@example.com"));
  ASSERT_TRUE(sink_->wait_final("udid:POST-1", {posture_action::unsuspend_device}));
  lines = sink_->lines();
  const auto un = of(lines, "udid:POST-1", posture_action::unsuspend_device);
  ASSERT_EQ(un.size(), 1U) << describe(lines);
  EXPECT_EQ(un[0].result, posture_result::done) << describe(lines);
  EXPECT_EQ(count_device(lines, "udid:POST-1"), 4U) << describe(lines);  // (b) added none
  EXPECT_EQ(okta_status("POST-1"), "ACTIVE");
  EXPECT_EQ(sync->pending(), 0U);

  // (i) One line per provider/action/result with its count.
  const auto m = sync->render_metrics();
  for (const char* line :
       {"tunnelgate_posture_sync_actions_total{provider=\"okta\",action=\"suspend_device\","
        "result=\"done\"} 1\n",
        "tunnelgate_posture_sync_actions_total{provider=\"okta\",action=\"clear_sessions\","
        "result=\"done\"} 1\n",
        "tunnelgate_posture_sync_actions_total{provider=\"entra\",action=\"revoke_sessions\","
        "result=\"done\"} 1\n",
        "tunnelgate_posture_sync_actions_total{provider=\"okta\",action=\"unsuspend_device\","
        "result=\"done\"} 1\n",
        "tunnelgate_posture_sync_pending 0\n"}) {
    EXPECT_NE(m.find(line), std::string::npos) << line << "in:\n" << m;
  }
  EXPECT_EQ(m.find("result=\"retry\""), std::string::npos) << m;
  EXPECT_NE(m.find("tunnelgate_posture_sync_action_seconds"), std::string::npos) << m;
  EXPECT_TRUE(sync->stop(10s));
}

// (d)
TEST_F(PostureSyncTest, AnAdmittedDeviceNeverRevokedIsLeftAlone) {
  auto sync = make(config());
  admin("DELETE", okta_->url() + "/_sim/stats");
  sync->submit(report("QUIET-1", true, "alice", "alice@example.com"));
  EXPECT_EQ(sync->pending(), 0U);
  EXPECT_TRUE(sync->stop(10s));  // joins the workers: nothing can still be running
  EXPECT_TRUE(sink_->lines().empty()) << describe(sink_->lines());
  EXPECT_EQ(okta_requests(), 0);
  EXPECT_EQ(okta_status("QUIET-1"), "ACTIVE");
}

// (e)
TEST_F(PostureSyncTest, ADeviceAnAdministratorSuspendedStaysSuspended) {
  auto sync = make(config());
  sync->submit(report("ADMIN-1", false, "adam", "adam@example.com"));
  ASSERT_TRUE(sink_->wait_final("udid:ADMIN-1", revocation));
  auto lines = sink_->lines();
  const auto s = of(lines, "udid:ADMIN-1", posture_action::suspend_device);
  ASSERT_EQ(s.size(), 1U) << describe(lines);
  EXPECT_EQ(s[0].result, posture_result::already) << describe(lines);
  EXPECT_EQ(sync->pending(), 0U);

  sync->submit(report("ADMIN-1", true, "adam", "adam@example.com"));
  EXPECT_EQ(sync->pending(), 0U);  // no unsuspend queued: this gateway suspended nothing
  EXPECT_TRUE(sync->stop(10s));
  lines = sink_->lines();
  EXPECT_TRUE(of(lines, "udid:ADMIN-1", posture_action::unsuspend_device).empty())
      << describe(lines);
  EXPECT_EQ(count_device(lines, "udid:ADMIN-1"), 3U) << describe(lines);
  EXPECT_EQ(okta_status("ADMIN-1"), "SUSPENDED");
}

// (f)
TEST_F(PostureSyncTest, MappingProblemsAreReportedAndNotRetried) {
  auto sync = make(config());
  sync->submit(report("NOPE-1", false, "alice", "alice@example.com"));
  sync->submit(report("AMBIG-1", false, "", "carol@example.com"));
  sync->submit(report("NOUSER-1", false, "", ""));
  ASSERT_TRUE(sink_->wait_final("udid:NOPE-1", revocation));
  ASSERT_TRUE(sink_->wait_final("udid:AMBIG-1", revocation));
  ASSERT_TRUE(sink_->wait_final("udid:NOUSER-1", revocation));
  // A retry would be queued before its line is given to us: nothing is queued, none retried.
  EXPECT_EQ(sync->pending(), 0U);
  const auto lines = sink_->lines();
  for (const auto& a : lines)
    EXPECT_NE(a.result, posture_result::retry) << describe(lines);

  const auto nope = of(lines, "udid:NOPE-1", posture_action::suspend_device);
  ASSERT_EQ(nope.size(), 1U) << describe(lines);
  EXPECT_EQ(nope[0].result, posture_result::device_not_found);
  EXPECT_NE(nope[0].detail.find("NOPE-1"), std::string::npos) << nope[0].detail;

  const auto ambig = of(lines, "udid:AMBIG-1", posture_action::clear_sessions);
  ASSERT_EQ(ambig.size(), 1U) << describe(lines);
  EXPECT_EQ(ambig[0].result, posture_result::user_ambiguous);
  EXPECT_EQ(ambig[0].user, "carol@example.com");
  EXPECT_EQ(of(lines, "udid:AMBIG-1", posture_action::suspend_device).at(0).result,
            posture_result::done);

  for (const auto act : {posture_action::clear_sessions, posture_action::revoke_sessions}) {
    const auto l = of(lines, "udid:NOUSER-1", act);
    ASSERT_EQ(l.size(), 1U) << describe(lines);
    EXPECT_EQ(l[0].result, posture_result::no_user) << describe(lines);
  }
  EXPECT_EQ(okta_status("NOUSER-1"), "SUSPENDED");  // the device is still found and suspended
  EXPECT_TRUE(sync->stop(10s));
}

// (g) and the metrics (i) for retries.
TEST_F(PostureSyncTest, FailedAttemptsAreRetriedWithBackoff) {
  auto cfg = config();
  cfg.okta->clear_sessions = false;  // one Okta action, so it meets both faulted requests
  cfg.entra.reset();
  cfg.workers = 1;
  admin("POST", okta_->url() + "/_sim/faults", R"({"fault":"status","status":503,"count":2})");
  auto sync = make(cfg);
  sync->submit(report("POST-1", false, "alice", "alice@example.com"));
  ASSERT_TRUE(sink_->wait_final("udid:POST-1", {posture_action::suspend_device}));
  const auto lines = sink_->lines();
  const auto l = of(lines, "udid:POST-1", posture_action::suspend_device);
  ASSERT_EQ(l.size(), 3U) << describe(lines);
  EXPECT_EQ(l[0].result, posture_result::retry);
  EXPECT_EQ(l[1].result, posture_result::retry);
  EXPECT_EQ(l[2].result, posture_result::done);
  EXPECT_EQ(l[0].attempt, 1U);
  EXPECT_EQ(l[1].attempt, 2U);
  EXPECT_EQ(l[2].attempt, 3U);
  EXPECT_NE(l[0].detail.find("503"), std::string::npos) << l[0].detail;
  EXPECT_EQ(lines.size(), 3U) << describe(lines);
  EXPECT_EQ(okta_status("POST-1"), "SUSPENDED");
  EXPECT_EQ(sync->pending(), 0U);

  const auto m = sync->render_metrics();
  for (const char* line :
       {"tunnelgate_posture_sync_actions_total{provider=\"okta\",action=\"suspend_device\","
        "result=\"retry\"} 2\n",
        "tunnelgate_posture_sync_actions_total{provider=\"okta\",action=\"suspend_device\","
        "result=\"done\"} 1\n"}) {
    EXPECT_NE(m.find(line), std::string::npos) << line << "in:\n" << m;
  }
  EXPECT_EQ(m.find("action=\"clear_sessions\",result="), std::string::npos) << m;
  EXPECT_TRUE(sync->stop(10s));
}

// (h)
TEST_F(PostureSyncTest, ARevocationOvertakenByTheDevicesReturnIsSuperseded) {
  auto cfg = config();
  cfg.entra.reset();
  // Long enough that both failed actions are still waiting in the queue when the device
  // returns (the backoff's jitter is at most 20 %).
  cfg.retry_initial = 20s;
  cfg.retry_max = 20s;
  admin("POST", okta_->url() + "/_sim/faults", R"({"fault":"status","status":503,"count":0})");
  auto sync = make(cfg);
  sync->submit(report("POST-1", false, "alice", "alice@example.com"));
  ASSERT_TRUE(sink_->wait(
      [](const audit_sink::lines_t& ls) {
        return std::count_if(ls.begin(), ls.end(),
                             [](const auto& a) { return a.result == posture_result::retry; }) == 2;
      },
      "retry of both Okta actions"));
  EXPECT_EQ(sync->pending(), 2U);

  sync->submit(report("POST-1", true, "alice", "alice@example.com"));
  EXPECT_EQ(sync->pending(), 0U);  // superseded, and no unsuspend: nothing was suspended
  admin("DELETE", okta_->url() + "/_sim/faults");
  EXPECT_TRUE(sync->stop(10s));
  const auto lines = sink_->lines();
  for (const auto act : {posture_action::suspend_device, posture_action::clear_sessions}) {
    const auto l = of(lines, "udid:POST-1", act);
    ASSERT_EQ(l.size(), 2U) << describe(lines);
    EXPECT_EQ(l[0].result, posture_result::retry);
    EXPECT_EQ(l[1].result, posture_result::superseded);
    EXPECT_EQ(l[1].attempt, 1U);  // the attempts made so far
  }
  EXPECT_TRUE(of(lines, "udid:POST-1", posture_action::unsuspend_device).empty())
      << describe(lines);
  EXPECT_EQ(lines.size(), 4U) << describe(lines);
  EXPECT_EQ(okta_status("POST-1"), "ACTIVE");
  const auto m = sync->render_metrics();
  EXPECT_NE(m.find("tunnelgate_posture_sync_actions_total{provider=\"okta\",action="
                   "\"suspend_device\",result=\"superseded\"} 1\n"),
            std::string::npos)
      << m;
}

// CAEP: a device-compliance-change SET each way, accepted by okta-sim's SSF receiver (which
// checks the signature against our JWKS, the issuer, the audience and the subject).
TEST_F(PostureSyncTest, SendsSignedComplianceChangeEventsBothWays) {
  auto cfg = config();
  idp::caep_settings caep;
  caep.receiver_url = okta_->url() + "/security/api/v1/security-events";
  caep.issuer = caep_issuer;
  caep.audience = okta_->url();
  caep.private_key = dir_ / "caep.key";
  caep.key_id = "caep-1";
  caep.http.ca_file = dir_ / "ca.pem";
  caep.http.timeout = 10s;
  cfg.caep = caep;
  auto sync = make(cfg);
  EXPECT_EQ(json::parse(sync->jwks()), json::parse(slurp(dir_ / "caep.jwks")));

  sync->submit(report("POST-1", false, "alice", "alice@example.com"));
  auto all = revocation;
  all.push_back(posture_action::send_event);
  ASSERT_TRUE(sink_->wait_final("udid:POST-1", all));
  sync->submit(report("POST-1", true, "alice", "alice@example.com"));
  ASSERT_TRUE(sink_->wait(
      [](const audit_sink::lines_t& ls) {
        return std::count_if(ls.begin(), ls.end(),
                             [](const auto& a) {
                               return a.action == posture_action::send_event &&
                                      a.result == posture_result::done;
                             }) == 2 &&
               std::any_of(ls.begin(), ls.end(), [](const auto& a) {
                 return a.action == posture_action::unsuspend_device &&
                        a.result != posture_result::retry;
               });
      },
      "the restore with its event"));
  const auto lines = sink_->lines();
  for (const auto& a : lines)
    EXPECT_EQ(a.result, posture_result::done) << describe(lines);
  EXPECT_EQ(lines.size(), 6U) << describe(lines);

  const auto rejected = admin("GET", okta_->url() + "/_sim/security-events/rejected");
  EXPECT_EQ(json::parse(rejected), json::array()) << rejected;
  const auto sets = json::parse(admin("GET", okta_->url() + "/_sim/security-events"));
  ASSERT_EQ(sets.size(), 2U) << sets.dump();
  EXPECT_EQ(sets[0].value("current_status", std::string()), "not-compliant") << sets.dump();
  EXPECT_EQ(sets[1].value("current_status", std::string()), "compliant") << sets.dump();
  EXPECT_EQ(sets[1].value("previous_status", std::string()), "not-compliant") << sets.dump();
  for (const auto& set : sets) {
    EXPECT_EQ(set.value("kid", std::string()), "caep-1");
    EXPECT_EQ(set["claims"].value("iss", std::string()), caep_issuer);
    const auto subject = set["subject"].dump();
    EXPECT_NE(subject.find("POST-1"), std::string::npos) << subject;
    EXPECT_NE(subject.find("alice@example.com"), std::string::npos) << subject;
  }
  EXPECT_TRUE(sync->stop(10s));
}

// (j)
TEST_F(PostureSyncTest, StopWithNothingRunningReturnsTrueAndLaterSubmitsAreIgnored) {
  auto sync = make(config());
  EXPECT_TRUE(sync->stop(10s));
  EXPECT_TRUE(sync->stop(10s));  // idempotent
  sync->submit(report("POST-1", false, "alice", "alice@example.com"));
  EXPECT_EQ(sync->pending(), 0U);
  EXPECT_TRUE(sink_->lines().empty()) << describe(sink_->lines());
  EXPECT_EQ(okta_status("POST-1"), "ACTIVE");
}

}  // namespace
