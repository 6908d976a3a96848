// The webhook listener: Basic auth, the console's GET test, events, dedup, malformed input,
// body limits, TLS.
#include <nlohmann/json.hpp>

#include "certauth/certauth.hpp"
#include "http_client.hpp"
#include "uem_fixture.hpp"

using namespace uem_test;
using namespace std::chrono_literals;

namespace {

constexpr const char* user = "uem-events";
constexpr const char* password = "correct horse battery";

class UemWebhook : public testing::Test {
 protected:
  void start(const std::string& tls = {}) {
    dir_.write("hook_pw", std::string(password) + "\n");
    cfg_ = load(std::string("uem:\n  source: file\n  file: unused.json\n  webhook:\n"
                            "    listen: 127.0.0.1:0\n    username: ") +
                    user + "\n    password_file: hook_pw\n    max_body: 4096\n" + tls,
                dir_.path());
    uem::service_options o;
    o.make_source = fake_source_factory(state_);
    o.background_refresh = false;
    svc_ = uem::service::create(cfg_, o);
    sub_ = svc_->subscribe([this](const uem::change& c) {
      std::lock_guard lock(m_);
      seen_.emplace_back(c.key.value, c.after->code);
    });
    port_ = svc_->webhook_endpoint()->port();
  }
  std::size_t seen() {
    std::lock_guard lock(m_);
    return seen_.size();
  }
  http_response post(http_client& c, const std::string& body,
                     const std::string& auth = basic_auth(user, password)) {
    return c.request("POST", "/events", body,
                     {{"Authorization", auth}, {"Content-Type", "application/json"}});
  }
  static std::string event(int id, const std::string& udid, const std::string& serial = {},
                           const std::string& type = "Compliance Status Changed") {
    return nlohmann::json{{"EventId", id},
                          {"EventType", type},
                          {"DeviceId", 77},
                          {"Udid", udid},
                          {"SerialNumber", serial},
                          {"ComplianceStatus", "NonCompliant"},
                          {"CompromisedStatus", "false"},
                          {"EventTime", "2024-05-02T08:15:27.1234567Z"}}
        .dump();
  }

  temp_dir dir_;
  std::shared_ptr<fake_source_state> state_ = std::make_shared<fake_source_state>();
  uem::config cfg_;
  std::shared_ptr<uem::service> svc_;
  std::shared_ptr<void> sub_;
  std::mutex m_;
  std::vector<std::pair<std::string, uem::reason>> seen_;
  unsigned short port_ = 0;
};

}  // namespace

TEST_F(UemWebhook, TestConnectionGetNeedsAuth) {
  start();
  http_client c("127.0.0.1", port_);
  EXPECT_EQ(c.request("GET", "/events", "", {{"Authorization", basic_auth(user, password)}}).status,
            200);
  auto no_auth = c.request("GET", "/events");
  EXPECT_EQ(no_auth.status, 401);
  EXPECT_NE(no_auth.headers["www-authenticate"].find("Basic"), std::string::npos);
}

TEST_F(UemWebhook, AnythingButTheRightBasicCredentialsIs401) {
  start();
  state_->set(make_record("A"));
  ASSERT_TRUE(svc_->check(uem::device_key::udid("A"))->admitted());
  const auto before = state_->fetches();
  for (const std::string& auth :
       {basic_auth(user, "wrong"), basic_auth("other", password), basic_auth(user, ""),
        basic_auth(user, std::string(password) + "x"), std::string("Bearer abc"),
        std::string("Basic !!!notbase64"),
        std::string("Basic ") + "dXNlcg==", std::string("basic")}) {
    http_client c("127.0.0.1", port_);
    EXPECT_EQ(post(c, event(1, "A"), auth).status, 401) << auth;
  }
  EXPECT_EQ(state_->fetches(), before);  // nothing acted on
  EXPECT_EQ(svc_->stats().webhook_events, 0U);
  EXPECT_EQ(svc_->stats().webhook_rejected, 8U);
}

TEST_F(UemWebhook, EventRereadsTheDeviceAndTellsSubscribers) {
  start();
  state_->set(make_record("D1"));
  ASSERT_TRUE(svc_->check(uem::device_key::udid("D1"))->admitted());
  // The event says NonCompliant, but the source is what counts: still compliant -> no change.
  http_client c("127.0.0.1", port_);
  EXPECT_EQ(post(c, event(10, "D1")).status, 200);
  ASSERT_TRUE(wait_until([&] { return state_->fetches() == 2; }));
  EXPECT_EQ(seen(), 0U);
  // Now the UEM really changed it.
  state_->set(make_record("D1", "NonCompliant"));
  EXPECT_EQ(post(c, event(11, "D1")).status, 200);  // same kept-alive connection
  ASSERT_TRUE(wait_until([&] { return seen() == 1; }));
  EXPECT_EQ(seen_.at(0), std::make_pair(std::string("D1"), uem::reason::noncompliant));
  EXPECT_EQ(svc_->cached(uem::device_key::udid("D1"))->code, uem::reason::noncompliant);
}

TEST_F(UemWebhook, DuplicatesAreIgnored) {
  start();
  state_->set(make_record("D2", "NonCompliant"));
  ASSERT_FALSE(svc_->check(uem::device_key::udid("D2"))->admitted());
  http_client c("127.0.0.1", port_);
  auto first = post(c, event(20, "D2"));
  EXPECT_EQ(first.status, 200);
  EXPECT_NE(first.body.find("accepted"), std::string::npos);
  ASSERT_TRUE(wait_until([&] { return state_->fetches() == 2; }));
  auto again = post(c, event(20, "D2"));
  EXPECT_EQ(again.status, 200);  // acknowledged, so the UEM stops retrying
  EXPECT_NE(again.body.find("duplicate"), std::string::npos);
  EXPECT_EQ(svc_->stats().webhook_duplicates, 1U);
  EXPECT_EQ(svc_->stats().webhook_events, 1U);
  EXPECT_EQ(state_->fetches(), 2);
}

TEST_F(UemWebhook, EmptyUdidFallsBackToSerialThenDeviceId) {
  start();
  auto rec = make_record("D3");
  rec.device_id = "77";
  state_->set(rec);
  ASSERT_TRUE(svc_->check(uem::device_key::udid("D3"))->admitted());
  rec.compromised = true;
  state_->set(rec);
  http_client c("127.0.0.1", port_);
  EXPECT_EQ(post(c, event(30, "", "SN-D3", "Compromised Status Changed")).status, 200);
  ASSERT_TRUE(wait_until([&] { return seen() == 1; }));
  EXPECT_EQ(seen_.at(0), std::make_pair(std::string("D3"), uem::reason::compromised));
  // Only DeviceId: deleted from the UEM -> unknown.
  state_->remove("d3");
  EXPECT_EQ(post(c, event(31, "", "", "Break MDM Confirmed")).status, 200);
  ASSERT_TRUE(wait_until([&] { return seen() == 2; }));
  EXPECT_EQ(seen_.at(1).second, uem::reason::unknown_device);
}

TEST_F(UemWebhook, MalformedInputIs400AndTheListenerSurvives) {
  start();
  for (const std::string& body :
       {std::string("{"), std::string("[]"), std::string("null"), std::string("\x01\xff\xfe"),
        std::string(R"({"EventType":"Compliance Status Changed"})"),
        std::string(R"({"EventId":1,"EventType":5,"Udid":"x"})"),
        std::string(R"({"EventId":1,"EventType":"x","Udid":{"nested":true}})")}) {
    http_client c("127.0.0.1", port_);
    auto r = post(c, body);
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_NE(r.body.find("error"), std::string::npos);
  }
  http_client c("127.0.0.1", port_);
  EXPECT_EQ(
      c.request("PUT", "/events", "{}", {{"Authorization", basic_auth(user, password)}}).status,
      405);
  // Body above max_body: 413, not read into memory.
  http_client big("127.0.0.1", port_);
  EXPECT_EQ(post(big, std::string(10000, ' ') + event(40, "x")).status, 413);
  // Garbage that is not HTTP at all: the connection is dropped, nothing else happens.
  http_client raw("127.0.0.1", port_);
  EXPECT_EQ(raw.raw("\x16\x03\x01 garbage\r\n\r\n").find("200"), std::string::npos);
  // Still serving.
  http_client after("127.0.0.1", port_);
  EXPECT_EQ(after.request("GET", "/", "", {{"Authorization", basic_auth(user, password)}}).status,
            200);
  EXPECT_EQ(svc_->stats().webhook_events, 0U);
}

TEST_F(UemWebhook, OverTls) {
  auto ca = tunnelgate::certauth::dev_ca::init(dir_.path() / "ca");
  start("    tls: {cert: ca/server.pem, key: ca/server.key}\n");
  http_client c("127.0.0.1", port_, ca.ca_cert_path().string());
  EXPECT_EQ(c.request("GET", "/", "", {{"Authorization", basic_auth(user, password)}}).status, 200);
  http_client plain("127.0.0.1", port_);
  EXPECT_EQ(plain.request("GET", "/").status, 0);  // plain HTTP to a TLS port: no answer
}

TEST(UemWebhookConfig, BadCertificateOrBusyPortFailsToStart) {
  temp_dir dir;
  dir.write("pw", "x");
  auto cfg = load(
      "uem: {source: file, file: unused.json, webhook: {listen: 127.0.0.1:0, username: u, "
      "password_file: pw, tls: {cert: nope.pem, key: nope.key}}}\n",
      dir.path());
  uem::service_options o;
  o.make_source = fake_source_factory(std::make_shared<fake_source_state>());
  try {
    uem::service::create(cfg, o);
    FAIL() << "expected an error";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.pem"), std::string::npos) << e.what();
  }
  cfg.webhook.tls_cert.clear();
  cfg.webhook.tls_key.clear();
  auto first = uem::service::create(cfg, o);
  cfg.webhook.listen = *first->webhook_endpoint();
  EXPECT_THROW(uem::service::create(cfg, o), std::system_error);
}
