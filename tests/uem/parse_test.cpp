// Pure parts of uem: configuration, device records, posture, inventory, webhook bodies.
#include <gtest/gtest.h>

#include <fstream>

#include "uem/uem.hpp"
#include "uem_fixture.hpp"

namespace uem = tunnelgate::uem;
using uem_test::temp_dir;

namespace {

std::string record_json(const std::string& udid, const std::string& compliance = "Compliant",
                        const std::string& enrollment = "Enrolled", bool compromised = false,
                        const std::string& platform = "Apple") {
  return R"({"Id":{"Value":7},"Udid":")" + udid + R"(","SerialNumber":"SN-)" + udid +
         R"(","UserEmailAddress":"a@example.com","Platform":")" + platform +
         R"(","EnrollmentStatus":")" + enrollment + R"(","ComplianceStatus":")" + compliance +
         R"(","CompromisedStatus":)" + (compromised ? "true" : "false") + "}";
}

std::string errors_of(const uem::config_result& r) {
  std::string s;
  for (const auto& e : r.errors)
    s += e.to_string() + "\n";
  return s;
}

}  // namespace

TEST(UemRecord, ParsesTheApiShape) {
  auto r = uem::parse_device_record(record_json("U1"));
  ASSERT_TRUE(r.record) << r.error;
  EXPECT_EQ(r.record->udid, "U1");
  EXPECT_EQ(r.record->serial, "SN-U1");
  EXPECT_EQ(r.record->device_id, "7");
  EXPECT_EQ(r.record->user_email, "a@example.com");
  EXPECT_FALSE(r.record->compromised);
}

TEST(UemRecord, MissingOrWrongTypedFieldsAreErrorsNotDefaults) {
  auto missing = uem::parse_device_record(
      R"({"Udid":"U","SerialNumber":"S","Platform":"Apple","EnrollmentStatus":"Enrolled","CompromisedStatus":false})");
  EXPECT_FALSE(missing.record);
  EXPECT_NE(missing.error.find("ComplianceStatus: missing"), std::string::npos) << missing.error;

  // The webhook sends CompromisedStatus as a string; the REST API sends a bool. A string in a
  // device record is refused, never read as "false".
  auto as_string = uem::parse_device_record(
      R"({"Udid":"U","SerialNumber":"S","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":"false"})");
  EXPECT_FALSE(as_string.record);
  EXPECT_NE(as_string.error.find("CompromisedStatus: expected true or false"), std::string::npos);

  auto wrong = uem::parse_device_record(
      R"({"Udid":5,"SerialNumber":"S","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false})");
  EXPECT_NE(wrong.error.find("Udid: expected a string"), std::string::npos) << wrong.error;

  EXPECT_FALSE(uem::parse_device_record("<html>").record);
  EXPECT_FALSE(uem::parse_device_record("[]").record);
  EXPECT_FALSE(
      uem::parse_device_record(
          R"({"Udid":"","SerialNumber":"","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false})")
          .record);
}

TEST(UemPosture, EveryReason) {
  const uem::posture_policy all;
  auto rec = [](const std::string& enr, const std::string& comp, bool compromised) {
    return uem::parse_device_record(record_json("U", comp, enr, compromised)).record;
  };
  EXPECT_EQ(uem::evaluate(all, rec("Enrolled", "Compliant", false)).code, uem::reason::ok);
  EXPECT_EQ(uem::evaluate(all, std::nullopt).code, uem::reason::unknown_device);
  EXPECT_EQ(uem::evaluate(all, rec("Unenrolled", "Compliant", false)).code,
            uem::reason::not_enrolled);
  EXPECT_EQ(uem::evaluate(all, rec("Enrolled", "NonCompliant", false)).code,
            uem::reason::noncompliant);
  EXPECT_EQ(uem::evaluate(all, rec("Enrolled", "PendingComplianceCheck", false)).code,
            uem::reason::noncompliant);
  EXPECT_EQ(uem::evaluate(all, rec("Enrolled", "NotAvailable", false)).code,
            uem::reason::noncompliant);
  EXPECT_EQ(uem::evaluate(all, rec("Enrolled", "Compliant", true)).code, uem::reason::compromised);
  // The most telling reason first: not enrolled, then compromised, then noncompliant.
  EXPECT_EQ(uem::evaluate(all, rec("Enrolled", "NonCompliant", true)).code,
            uem::reason::compromised);
  EXPECT_EQ(uem::evaluate(all, rec("Unenrolled", "NonCompliant", true)).code,
            uem::reason::not_enrolled);

  uem::posture_policy lax;
  lax.require_compliant = false;
  EXPECT_EQ(uem::evaluate(lax, rec("Enrolled", "NonCompliant", false)).code, uem::reason::ok);
  lax.require_not_compromised = false;
  EXPECT_EQ(uem::evaluate(lax, rec("Enrolled", "NonCompliant", true)).code, uem::reason::ok);
  lax.require_enrolled = false;
  EXPECT_EQ(uem::evaluate(lax, rec("Unenrolled", "NonCompliant", true)).code, uem::reason::ok);
  EXPECT_EQ(uem::evaluate(lax, std::nullopt).code, uem::reason::unknown_device);
}

TEST(UemPosture, PlatformsAndSummaryLine) {
  EXPECT_EQ(uem::map_platform("Apple"), "ios");
  EXPECT_EQ(uem::map_platform("AppleOsX"), "macos");
  EXPECT_EQ(uem::map_platform("Android"), "android");
  EXPECT_EQ(uem::map_platform("WinRT"), "windows");
  EXPECT_EQ(uem::map_platform("BlackBerry"), "");

  const uem::posture_policy all;
  auto ok = uem::evaluate(
      all,
      uem::parse_device_record(record_json("U", "Compliant", "Enrolled", false, "WinRT")).record);
  EXPECT_EQ(ok.summary_line(),
            "admit reason=ok platform=windows enrollment=Enrolled compliance=Compliant "
            "compromised=false");
  auto odd = uem::evaluate(
      all, uem::parse_device_record(record_json("U", "Non Compliant", "Enrolled", true, "Tizen"))
               .record);
  EXPECT_EQ(odd.summary_line(),
            "refuse reason=compromised platform=- enrollment=Enrolled compliance=Non_Compliant "
            "compromised=true");
  EXPECT_EQ(uem::evaluate(all, std::nullopt).summary_line(),
            "refuse reason=unknown_device platform=- enrollment=- compliance=- compromised=-");
  for (auto r :
       {uem::reason::ok, uem::reason::unknown_device, uem::reason::not_enrolled,
        uem::reason::noncompliant, uem::reason::compromised, uem::reason::uem_unavailable}) {
    EXPECT_EQ(uem::reason_from_string(uem::to_string(r)), r);
  }
}

TEST(UemInventory, JsonYamlAndSearchShape) {
  auto j = uem::parse_inventory("[" + record_json("A") + "," + record_json("B") + "]", "inv.json");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j.devices.size(), 2U);

  auto search = uem::parse_inventory(
      R"({"Devices":[)" + record_json("A") + R"(],"Page":0,"PageSize":500,"Total":1})",
      "export.json");
  ASSERT_TRUE(search.ok());
  EXPECT_EQ(search.devices.at(0).udid, "A");

  auto y = uem::parse_inventory(R"(
- Udid: "0123"
  SerialNumber: S1
  Platform: Android
  EnrollmentStatus: Enrolled
  ComplianceStatus: Compliant
  CompromisedStatus: true
  Id: {Value: 12}
)",
                                "inv.yaml");
  ASSERT_TRUE(y.ok()) << y.errors.at(0);
  EXPECT_EQ(y.devices.at(0).udid, "0123");
  EXPECT_TRUE(y.devices.at(0).compromised);
  EXPECT_EQ(y.devices.at(0).device_id, "12");

  auto quoted_bool = uem::parse_inventory(R"(
- {Udid: U, SerialNumber: S, Platform: Apple, EnrollmentStatus: Enrolled,
   ComplianceStatus: Compliant, CompromisedStatus: "false"}
)",
                                          "inv.yaml");
  EXPECT_FALSE(quoted_bool.ok());
}

TEST(UemInventory, AllBadRecordsAndDuplicatesReported) {
  auto r = uem::parse_inventory(
      "[" + record_json("A") + "," + record_json("a") + R"(,{"Udid":"C"},42])", "inv.json");
  ASSERT_FALSE(r.ok());
  std::string all;
  for (const auto& e : r.errors)
    all += e + "\n";
  EXPECT_NE(all.find("inv.json: devices[1].Udid: 'a' appears twice"), std::string::npos) << all;
  EXPECT_NE(all.find("devices[2].SerialNumber: missing"), std::string::npos) << all;
  EXPECT_NE(all.find("devices[3]: expected an object"), std::string::npos) << all;
  EXPECT_TRUE(r.devices.empty());
  EXPECT_FALSE(uem::parse_inventory("{\"not\": \"a list\"}", "x").ok());
  EXPECT_FALSE(uem::parse_inventory("key: [unclosed", "x").ok());
}

TEST(UemWebhookParse, EventsAndFallbacks) {
  auto full = uem::parse_webhook(
      R"({"EventId":4711,"EventType":"Compliance Status Changed","DeviceId":12,"Udid":"U1","SerialNumber":"S1","CompromisedStatus":"false","EventTime":"2024-05-02T08:15:27.1234567Z"})");
  ASSERT_TRUE(full.event) << full.error;
  EXPECT_EQ(full.event->event_id, "4711");
  EXPECT_EQ(full.event->key.kind, uem::key_kind::udid);
  EXPECT_EQ(full.event->key.value, "U1");
  EXPECT_TRUE(full.event->relevant);

  auto no_udid = uem::parse_webhook(
      R"({"EventId":"e2","EventType":"Compromised Status Changed","Udid":"","SerialNumber":"S1","DeviceId":12})");
  ASSERT_TRUE(no_udid.event);
  EXPECT_EQ(no_udid.event->key.kind, uem::key_kind::serial);
  EXPECT_EQ(no_udid.event->key.value, "S1");

  auto id_only = uem::parse_webhook(
      R"({"EventId":3,"EventType":"Break MDM Confirmed","Udid":null,"SerialNumber":"","DeviceId":12})");
  ASSERT_TRUE(id_only.event);
  EXPECT_EQ(id_only.event->key.kind, uem::key_kind::device_id);
  EXPECT_EQ(id_only.event->key.value, "12");
  EXPECT_TRUE(id_only.event->relevant);

  for (const char* t : {"MDM Enrollment Complete", "Enrollment Complete", "MDMEnrollmentComplete",
                        "Device Wipe", "Device Delete"}) {
    auto e = uem::parse_webhook(std::string(R"({"EventType":")") + t + R"(","Udid":"U"})");
    ASSERT_TRUE(e.event) << t;
    EXPECT_TRUE(e.event->relevant) << t;
  }
  auto os = uem::parse_webhook(R"({"EventType":"Device Operating System Changed","Udid":"U"})");
  ASSERT_TRUE(os.event);
  EXPECT_FALSE(os.event->relevant);
}

TEST(UemWebhookParse, MalformedInputIsAnError) {
  for (const char* body :
       {"", "{", "not json", "[1,2]", "null", R"({"EventType":"Compliance Status Changed"})",
        R"({"EventType":"x","Udid":"","SerialNumber":"","DeviceId":""})",
        R"({"EventType":7,"Udid":"U"})", R"({"EventType":"x","Udid":["U"]})",
        R"({"EventType":"x","Udid":"a b"})", R"({"EventType":"x","DeviceId":"12; DROP"})",
        R"({"EventType":"x","Udid":"U","EventId":{"a":1}})"}) {
    auto r = uem::parse_webhook(body);
    EXPECT_FALSE(r.event) << body;
    EXPECT_FALSE(r.error.empty()) << body;
  }
}

// --- configuration ----------------------------------------------------------------------

TEST(UemConfig, FileSourceDefaultsAndRelativePaths) {
  auto r = uem::load_config("listen: 8443\nuem:\n  source: file\n  file: inv/devices.json\n",
                            "/etc/tg/gw.yaml", "/etc/tg");
  ASSERT_TRUE(r) << errors_of(r);
  const auto& c = *r.value;
  EXPECT_EQ(c.source, uem::source_kind::file);
  EXPECT_EQ(c.file, std::filesystem::path("/etc/tg/inv/devices.json"));
  EXPECT_EQ(c.cache.positive_ttl, std::chrono::minutes(5));
  EXPECT_EQ(c.cache.negative_ttl, std::chrono::seconds(30));
  EXPECT_EQ(c.cache.stale_grace, std::chrono::minutes(10));
  EXPECT_TRUE(c.posture.require_enrolled && c.posture.require_compliant &&
              c.posture.require_not_compromised);
  EXPECT_FALSE(c.webhook.enabled);
}

TEST(UemConfig, Ws1WithSecretsFromFiles) {
  temp_dir dir;
  dir.write("tenant", "TENANTCODE\n");
  dir.write("secret", "s3cr3t\n");
  dir.write("hook", "hookpw");
  auto r = uem::load_config(R"(
uem:
  source: ws1
  ws1:
    base_url: https://127.0.0.1:4443/
    tenant_code_file: tenant
    api_version: 2
    auth:
      oauth: {token_url: "https://127.0.0.1:4443/connect/token", client_id: tg, client_secret_file: secret}
    ca_file: ca.pem
    connect_timeout: 250ms
    request_timeout: 2s
  cache: {positive_ttl: 1h, negative_ttl: 0s, stale_grace: 5m}
  posture: {require_compliant: false}
  webhook:
    listen: "[::1]:0"
    username: uem
    password_file: hook
    max_body: 2048
)",
                            "gw.yaml", dir.path());
  ASSERT_TRUE(r) << errors_of(r);
  const auto& c = *r.value;
  EXPECT_EQ(c.ws1.base_url, "https://127.0.0.1:4443");
  EXPECT_EQ(c.ws1.tenant_code.reveal(), "TENANTCODE");
  EXPECT_EQ(c.ws1.client_secret.reveal(), "s3cr3t");
  EXPECT_EQ(c.ws1.auth, uem::auth_kind::oauth);
  EXPECT_EQ(c.ws1.api_version, 2);
  EXPECT_EQ(c.ws1.ca_file, dir.path() / "ca.pem");
  EXPECT_EQ(c.ws1.connect_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(c.cache.positive_ttl, std::chrono::hours(1));
  EXPECT_FALSE(c.posture.require_compliant);
  EXPECT_TRUE(c.posture.require_enrolled);
  EXPECT_TRUE(c.webhook.enabled);
  EXPECT_TRUE(c.webhook.listen.address().is_v6());
  EXPECT_EQ(c.webhook.password.reveal(), "hookpw");
  EXPECT_EQ(c.webhook.max_body, 2048U);
}

TEST(UemConfig, AllErrorsCollectedWithPositions) {
  temp_dir dir;
  auto r = uem::load_config(R"(uem:
  source: ws1
  ws1:
    base_url: http://uem.example.com
    tenant_code: abc
    auth: {basic: {username: u, password_file: nope}}
    api_version: 9
  cache: {positive_ttl: 10, stale_grace: 5 m}
  posture: {require_compliant: yes}
  webhook: {listen: "uem.example.com:443", username: u}
  colour: blue
)",
                            "gw.yaml", dir.path());
  ASSERT_FALSE(r);
  const auto all = errors_of(r);
  for (const char* want :
       {"gw.yaml:4:15: uem.ws1.base_url: expected an https:// URL",
        "gw.yaml:5:5: uem.ws1.tenant_code: secrets never go in the configuration",
        "uem.ws1.tenant_code_file: missing", "uem.ws1.auth.basic.password_file: cannot read",
        "gw.yaml:7:18: uem.ws1.api_version: expected an integer from 1 to 4",
        "uem.cache.positive_ttl: expected a duration", "uem.cache.stale_grace: expected a duration",
        "uem.posture.require_compliant: expected true or false",
        "uem.webhook.listen: expected IP:PORT", "uem.webhook.password_file: missing",
        "gw.yaml:11:3: uem.colour: unknown key"}) {
    EXPECT_NE(all.find(want), std::string::npos) << "missing: " << want << "\n" << all;
  }
}

TEST(UemConfig, StructuralErrors) {
  EXPECT_FALSE(uem::load_config("listen: 1\n", "a.yaml", "."));
  EXPECT_FALSE(uem::load_config("uem: [1]\n", "a.yaml", "."));
  EXPECT_FALSE(uem::load_config("uem: {source: ldap}\n", "a.yaml", "."));
  EXPECT_FALSE(uem::load_config("uem: {source: file}\n", "a.yaml", "."));
  EXPECT_FALSE(uem::load_config("uem: {source: ws1}\n", "a.yaml", "."));
  EXPECT_FALSE(uem::load_config("uem: {source: file, file: a, file: b}\n", "a.yaml", "."));
  EXPECT_FALSE(uem::load_config("uem: {source: file, file: a, ws1: {}}\n", "a.yaml", "."));
  EXPECT_FALSE(uem::load_config("uem: {source: file\n", "a.yaml", "."));
  temp_dir dir;
  dir.write("empty", "\n");
  auto r = uem::load_config(
      "uem: {source: file, file: x, webhook: {listen: '127.0.0.1:1', username: u, "
      "password_file: empty}}\n",
      "a.yaml", dir.path());
  ASSERT_FALSE(r);
  EXPECT_NE(errors_of(r).find("is empty"), std::string::npos);
  auto missing = uem::load_config_file(dir.path() / "nope.yaml");
  ASSERT_FALSE(missing);
  EXPECT_NE(errors_of(missing).find("nope.yaml"), std::string::npos);
}

TEST(UemConfig, ErrorCategory) {
  std::error_code ec = uem::errc::rate_limited;
  EXPECT_EQ(ec.category().name(), std::string("uem"));
  EXPECT_NE(ec.message().find("rate limit"), std::string::npos);
}
