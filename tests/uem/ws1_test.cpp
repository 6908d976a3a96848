// The production ws1 client against uem-sim (a separate process that does not link uem/):
// auth, tokens, rate limits, every injected fault, single flight, TLS verification, and the
// webhook round trip the simulator drives.
#include <utility>  // before Asio (STYLE P1)

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "uem_fixture.hpp"

using namespace uem_test;
using namespace std::chrono_literals;

namespace {

std::string inventory() {
  std::string s = "[";
  s += record_json(make_record("W-OK"), 101) + ",";
  s += record_json(make_record("W-NC", "NonCompliant", false, "Enrolled", "Android"), 102) + ",";
  s += record_json(make_record("W-CP", "Compliant", true, "Enrolled", "AppleOsX"), 103) + ",";
  s += record_json(make_record("W-NE", "Compliant", false, "Unenrolled", "WinRT"), 104);
  for (int i = 0; i < 8; ++i)
    s += "," + record_json(make_record("W-" + std::to_string(i)), 200 + i);
  return s + "]";
}

class UemWs1 : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    sim_options o;
    o.inventory_json = inventory();
    sim_ = new sim_process(o);
  }
  static void TearDownTestSuite() {
    delete sim_;
    sim_ = nullptr;
  }
  void SetUp() override {
    sim_->set_faults(R"({"fault":"none"})");
    sim_->reset_stats();
  }

  std::shared_ptr<uem::service> make(bool oauth, const std::string& extra_ws1 = {},
                                     const std::string& extra_uem = {}) {
    auto cfg = load(sim_->ws1_config(oauth, extra_ws1, extra_uem));
    uem::service_options o;
    o.background_refresh = false;
    return uem::service::create(cfg, o);
  }

  static sim_process* sim_;
};

sim_process* UemWs1::sim_ = nullptr;

uem::decision_ptr check(const std::shared_ptr<uem::service>& s, const std::string& udid) {
  return s->check(uem::device_key::udid(udid));
}

}  // namespace

TEST_F(UemWs1, BasicAuthEveryReason) {
  auto svc = make(false);
  EXPECT_EQ(check(svc, "W-OK")->summary_line(),
            "admit reason=ok platform=ios enrollment=Enrolled compliance=Compliant "
            "compromised=false");
  EXPECT_EQ(check(svc, "w-nc")->summary_line(),
            "refuse reason=noncompliant platform=android enrollment=Enrolled "
            "compliance=NonCompliant compromised=false");
  EXPECT_EQ(check(svc, "W-CP")->code, uem::reason::compromised);
  EXPECT_EQ(check(svc, "W-CP")->platform, "macos");
  EXPECT_EQ(check(svc, "W-NE")->code, uem::reason::not_enrolled);
  EXPECT_EQ(check(svc, "W-NE")->platform, "windows");
  EXPECT_EQ(check(svc, "nobody")->code, uem::reason::unknown_device);
  EXPECT_EQ(svc->check(uem::device_key::serial("SN-W-NC"))->code, uem::reason::noncompliant);
  EXPECT_EQ(svc->check(uem::device_key::device_id("101"))->device->udid, "W-OK");
  EXPECT_EQ(sim_->count("/connect/token"), 0);
  EXPECT_EQ(sim_->count("/API/mdm/devices"), 6);
}

TEST_F(UemWs1, WrongCredentialsAreAnErrorNotARefusal) {
  temp_dir dir;
  dir.write("pw", "wrong");
  auto cfg = load(sim_->ws1_config(false));
  cfg.ws1.password = uem::secret("wrong");
  uem::service_options o;
  o.background_refresh = false;
  auto svc = uem::service::create(cfg, o);
  auto d = check(svc, "W-OK");
  EXPECT_EQ(d->code, uem::reason::uem_unavailable);
  EXPECT_NE(d->detail.find("401"), std::string::npos) << d->detail;

  cfg = load(sim_->ws1_config(false));
  cfg.ws1.tenant_code = uem::secret("OTHER-TENANT");
  auto svc2 = uem::service::create(cfg, o);
  EXPECT_EQ(check(svc2, "W-OK")->code, uem::reason::uem_unavailable);
}

TEST_F(UemWs1, OAuthTokenCachedAndRefreshedOnceOn401) {
  auto svc = make(true);
  EXPECT_TRUE(check(svc, "W-OK")->admitted());
  EXPECT_TRUE(check(svc, "W-0")->admitted());
  EXPECT_TRUE(check(svc, "W-1")->admitted());
  EXPECT_EQ(sim_->count("/connect/token"), 1);  // cached between requests
  sim_->admin("POST", "/_sim/tokens/revoke");
  EXPECT_TRUE(check(svc, "W-2")->admitted());  // 401 -> new token -> retry
  EXPECT_EQ(sim_->count("/connect/token"), 2);
  EXPECT_EQ(sim_->count("/API/mdm/devices"), 5);
}

// Issue 13: a burst of requests refused with the same (revoked) token. The simulator answers
// slowly and only two connections are allowed, so the 401s arrive in waves: some while the
// refresh runs, some after the new token came. Either way only the first 401 may fetch a
// token; the others wait for it or use it.
TEST_F(UemWs1, OAuthRefreshAfter401IsSharedByConcurrentRequests) {
  auto svc = make(true, "    max_connections: 2\n");
  ASSERT_TRUE(check(svc, "W-OK")->admitted());  // the first token
  sim_->admin("POST", "/_sim/tokens/revoke");
  sim_->reset_stats();
  sim_->set_faults(R"({"latency_ms":100})");
  constexpr int n = 8;  // W-0..W-7: different devices, so the cache's single flight does not
                        // merge them; every one is a request of its own to the UEM
  boost::asio::io_context ioc(1);
  std::atomic<int> admitted{0};
  for (int i = 0; i < n; ++i) {
    boost::asio::co_spawn(
        ioc,
        [](std::shared_ptr<uem::service> s, std::string udid,
           std::atomic<int>* count) -> uem::net::awaitable<void> {
          auto d = co_await s->lookup(uem::device_key::udid(std::move(udid)));
          if (d->admitted()) ++*count;
        }(svc, "W-" + std::to_string(i), &admitted),
        [](const std::exception_ptr& e) {
          if (e) std::rethrow_exception(e);
        });
  }
  ioc.run();
  EXPECT_EQ(admitted.load(), n);
  EXPECT_EQ(sim_->count("/connect/token"), 1);
  // Each device at most twice (401, then the retry), at least once after the new token.
  EXPECT_GE(sim_->count("/API/mdm/devices"), n + 1);
  EXPECT_LE(sim_->count("/API/mdm/devices"), 2 * n);
}

TEST_F(UemWs1, OAuthBadSecretIsATokenFailure) {
  auto cfg = load(sim_->ws1_config(true));
  cfg.ws1.client_secret = uem::secret("nope");
  uem::service_options o;
  o.background_refresh = false;
  auto svc = uem::service::create(cfg, o);
  auto d = check(svc, "W-OK");
  EXPECT_EQ(d->code, uem::reason::uem_unavailable);
  EXPECT_NE(d->detail.find("OAuth token endpoint"), std::string::npos) << d->detail;
  EXPECT_EQ(d->detail.find("nope"), std::string::npos);  // the secret is never echoed
  EXPECT_EQ(sim_->count("/API/mdm/devices"), 0);
}

TEST_F(UemWs1, TokenExpiryTriggersRefresh) {
  sim_options so;
  so.inventory_json = inventory();
  so.token_ttl = 1;  // refreshed before every use once expired
  sim_process short_lived(so);
  auto cfg = load(short_lived.ws1_config(true));
  uem::service_options o;
  o.background_refresh = false;
  auto svc = uem::service::create(cfg, o);
  EXPECT_TRUE(check(svc, "W-OK")->admitted());
  int i = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        // Each check of a new (unknown) device needs a valid token; after 1 s the first one
        // has expired and a second is fetched.
        return check(svc, "X-" + std::to_string(i++))->code == uem::reason::unknown_device &&
               short_lived.count("/connect/token") >= 2;
      },
      5s, "a second token"));
}

TEST_F(UemWs1, RateLimitHonouredWithBackoff) {
  auto svc = make(false);
  sim_->set_faults(R"({"fault":"rate_limit","retry_after":1,"count":1})");
  auto d = check(svc, "W-OK");
  EXPECT_EQ(d->code, uem::reason::uem_unavailable);
  EXPECT_NE(d->detail.find("429"), std::string::npos) << d->detail;
  EXPECT_EQ(sim_->count("/API/mdm/devices"), 1);
  // While backing off, no request is sent at all.
  auto d2 = check(svc, "W-0");
  EXPECT_EQ(d2->code, uem::reason::uem_unavailable);
  EXPECT_NE(d2->detail.find("backing off"), std::string::npos) << d2->detail;
  EXPECT_EQ(sim_->count("/API/mdm/devices"), 1);
  // After Retry-After, requests resume.
  EXPECT_TRUE(wait_until([&] { return check(svc, "W-1")->admitted(); }, 5s, "end of backoff"));
}

TEST_F(UemWs1, ServerErrorGarbageAndInvalidRecords) {
  auto svc = make(false);
  struct fault_case {
    const char* json;
    const char* expect;
  };
  int i = 0;
  for (const auto& c : {fault_case{R"({"fault":"status","status":500})", "HTTP 500"},
                        fault_case{R"({"fault":"status","status":503})", "HTTP 503"},
                        fault_case{R"({"fault":"garbage"})", "not a valid device record"},
                        fault_case{R"({"fault":"bad_record"})", "ComplianceStatus: missing"},
                        fault_case{R"({"fault":"reset"})", "request to the UEM failed"}}) {
    sim_->set_faults(c.json);
    const auto udid = "W-" + std::to_string(i++);
    auto d = check(svc, udid);
    EXPECT_EQ(d->code, uem::reason::uem_unavailable) << c.json;
    EXPECT_NE(d->detail.find(c.expect), std::string::npos) << c.json << ": " << d->detail;
    EXPECT_FALSE(d->admitted());
  }
  sim_->set_faults(R"({"fault":"none"})");
  EXPECT_TRUE(wait_until([&] { return check(svc, "W-0")->admitted(); }, 3s, "recovery"));
}

TEST_F(UemWs1, ResetOnKeptAliveConnectionIsRetriedOnce) {
  auto svc = make(false);
  EXPECT_TRUE(check(svc, "W-0")->admitted());  // opens a kept-alive connection
  sim_->set_faults(R"({"fault":"reset","count":1})");
  EXPECT_TRUE(check(svc, "W-1")->admitted());  // reset, then a new connection
  EXPECT_EQ(sim_->count("/API/mdm/devices"), 3);
}

TEST_F(UemWs1, LatencyBeyondRequestTimeout) {
  auto svc = make(false, "    max_connections: 2\n");
  auto cfg = svc->configuration();
  svc->stop();
  cfg.ws1.request_timeout = 300ms;
  uem::service_options o;
  o.background_refresh = false;
  svc = uem::service::create(cfg, o);
  sim_->set_faults(R"({"latency_ms":1500})");
  auto d = check(svc, "W-OK");
  EXPECT_EQ(d->code, uem::reason::uem_unavailable);
  EXPECT_NE(d->detail.find("did not answer within 300 ms"), std::string::npos) << d->detail;
  sim_->set_faults(R"({"latency_ms":50})");
  EXPECT_TRUE(wait_until([&] { return check(svc, "W-0")->admitted(); }, 5s, "recovery"));
}

TEST_F(UemWs1, SingleFlight1000ConcurrentLookupsOneRequest) {
  auto svc = make(true);
  sim_->set_faults(R"({"latency_ms":200})");  // keeps the one request in flight meanwhile
  boost::asio::io_context ioc(1);
  std::atomic<int> admitted{0};
  for (int i = 0; i < 1000; ++i) {
    boost::asio::co_spawn(
        ioc,
        [](std::shared_ptr<uem::service> s, std::atomic<int>* n) -> uem::net::awaitable<void> {
          auto d = co_await s->lookup(uem::device_key::udid("W-OK"));
          if (d->admitted()) ++*n;
        }(svc, &admitted),
        [](const std::exception_ptr& e) {
          if (e) std::rethrow_exception(e);
        });
  }
  ioc.run();
  EXPECT_EQ(admitted.load(), 1000);
  EXPECT_EQ(sim_->count("/API/mdm/devices"), 1);
  EXPECT_EQ(sim_->count("/connect/token"), 1);
}

TEST_F(UemWs1, TlsVerificationIsOnByDefault) {
  auto cfg = load(sim_->ws1_config(false));
  cfg.ws1.ca_file.clear();  // only the system store: it does not know the dev CA
  uem::service_options o;
  o.background_refresh = false;
  auto svc = uem::service::create(cfg, o);
  auto d = check(svc, "W-OK");
  EXPECT_EQ(d->code, uem::reason::uem_unavailable);
  EXPECT_NE(d->detail.find("ca_file"), std::string::npos) << d->detail;
  EXPECT_EQ(sim_->count("/API/mdm/devices"), 0);
}

TEST_F(UemWs1, UnreachableUem) {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const auto port = a.local_endpoint().port();
  a.close();  // nothing listens there now
  auto cfg = load(sim_->ws1_config(false));
  cfg.ws1.base_url = "https://127.0.0.1:" + std::to_string(port);
  uem::service_options o;
  o.background_refresh = false;
  auto svc = uem::service::create(cfg, o);
  auto d = check(svc, "W-OK");
  EXPECT_EQ(d->code, uem::reason::uem_unavailable);
  EXPECT_NE(d->detail.find("cannot connect"), std::string::npos) << d->detail;
}

// --- the webhook round trip, driven by the simulator ----------------------------------------

TEST(UemWs1Webhook, SimulatorChangeReachesSubscribers) {
  // The webhook's port must be known before the simulator starts.
  unsigned short hook_port = 0;
  {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    hook_port = a.local_endpoint().port();
  }
  sim_options so;
  so.inventory_json = inventory();
  so.webhook_url = "http://127.0.0.1:" + std::to_string(hook_port) + "/uem/events";
  sim_process sim(so);
  auto extra = "  webhook:\n    listen: 127.0.0.1:" + std::to_string(hook_port) +
               "\n    username: " + sim_process::hook_user +
               "\n    password_file: " + (sim.dir().path() / "hook_pw").string() + "\n";
  auto cfg = load(sim.ws1_config(true, "", extra));
  auto svc = uem::service::create(cfg, {});
  std::mutex m;
  std::vector<std::pair<uem::reason, std::string>> seen;
  auto sub = svc->subscribe([&](const uem::change& c) {
    std::lock_guard lock(m);
    seen.emplace_back(c.after->code, std::string(c.cause));
  });
  auto count = [&] {
    std::lock_guard lock(m);
    return seen.size();
  };
  ASSERT_TRUE(svc->check(uem::device_key::udid("W-OK"))->admitted());
  const auto fetches = sim.count("/API/mdm/devices");

  auto r = nlohmann::json::parse(
      sim.admin("POST", "/_sim/devices/W-OK", R"({"ComplianceStatus":"NonCompliant"})"));
  EXPECT_EQ(r["webhook"]["status"], 200);
  EXPECT_EQ(r["webhook"]["event"]["EventType"], "Compliance Status Changed");
  ASSERT_TRUE(wait_until([&] { return count() == 1; }, 5s, "subscriber call"));
  EXPECT_EQ(seen.at(0), std::make_pair(uem::reason::noncompliant, std::string("webhook")));
  EXPECT_EQ(svc->cached(uem::device_key::udid("W-OK"))->code, uem::reason::noncompliant);
  EXPECT_EQ(sim.count("/API/mdm/devices"), fetches + 1);  // re-read before acting

  // The same event again (the UEM retries): deduplicated on EventId, no re-read.
  sim.admin("POST", "/_sim/webhook/replay");
  ASSERT_TRUE(wait_until([&] { return svc->stats().webhook_duplicates == 1; }));
  EXPECT_EQ(sim.count("/API/mdm/devices"), fetches + 1);

  // An event with an empty Udid falls back to the serial number.
  r = nlohmann::json::parse(sim.admin("POST", "/_sim/devices/W-OK",
                                      R"({"CompromisedStatus":true,"_event":{"Udid":""}})"));
  EXPECT_EQ(r["webhook"]["event"]["Udid"], "");
  EXPECT_EQ(r["webhook"]["event"]["CompromisedStatus"], "true");
  ASSERT_TRUE(wait_until([&] { return count() == 2; }, 5s, "second subscriber call"));
  EXPECT_EQ(seen.at(1).first, uem::reason::compromised);

  // Unenrolment (and the delete event) refuse the device.
  sim.admin("DELETE", "/_sim/devices/W-OK");
  ASSERT_TRUE(wait_until([&] { return count() == 3; }, 5s, "third subscriber call"));
  EXPECT_EQ(seen.at(2).first, uem::reason::unknown_device);
}
