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
  EXPECT_EQ(r.record->user_name, "") << "UserName is optional";
}

TEST(UemRecord, UserNameIsReadAndMustBeText) {
  auto r = uem::parse_device_record(
      R"({"Udid":"U","SerialNumber":"S","Platform":"Apple","UserName":"alice","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false})");
  ASSERT_TRUE(r.record) << r.error;
  EXPECT_EQ(r.record->user_name, "alice");
  auto wrong = uem::parse_device_record(
      R"({"Udid":"U","SerialNumber":"S","Platform":"Apple","UserName":7,"EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false})");
  EXPECT_FALSE(wrong.record);
  EXPECT_NE(wrong.error.find("UserName: expected a string"), std::string::npos) << wrong.error;
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

// --- webhook identity, legacy payloads ---------------------------------------------------

TEST(UemWebhookParse, IdentityIsTheEventNotItsEventId) {
  const auto id = [](const std::string& body) {
    auto r = uem::parse_webhook(body);
    EXPECT_TRUE(r.event) << body << ": " << r.error;
    return r.event ? r.event->identity : std::string();
  };
  const std::string a = id(
      R"({"EventId":148,"EventType":"Compromised Status Changed","DeviceId":133,"Udid":"A","EventTime":"2014-01-31T14:49:29.0274433Z","CompromisedStatus":"true"})");
  EXPECT_EQ(a.size(), 64U);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  // The same event again (another key order, other status fields): the same identity.
  EXPECT_EQ(a, id(R"({"EventTime":"2014-01-31T14:49:29.0274433Z","Udid":"A","DeviceId":133,)"
                  R"("EventType":"Compromised Status Changed","EventId":148})"));
  // The same EventId for another device, or later for the same one: another event.
  EXPECT_NE(a, id(R"({"EventId":148,"EventType":"Compromised Status Changed","DeviceId":639,)"
                  R"("Udid":"B","EventTime":"2014-03-31T14:10:59.6145834Z"})"));
  EXPECT_NE(a, id(R"({"EventId":148,"EventType":"Compromised Status Changed","DeviceId":133,)"
                  R"("Udid":"A","EventTime":"2014-05-31T09:00:00.0000000Z"})"));
  // Without EventTime only a byte-identical body is the same event.
  const std::string no_time = R"({"EventId":1,"EventType":"Compliance Status Changed","Udid":"A"})";
  EXPECT_EQ(id(no_time), id(no_time));
  EXPECT_NE(id(no_time),
            id(R"({"EventId":1,"EventType":"Compliance Status Changed","Udid":"A","X":1})"));
  // Field boundaries count: "A","B" is not "AB","".
  EXPECT_NE(id(R"({"EventType":"x","Udid":"AB","SerialNumber":"","EventTime":"t"})"),
            id(R"({"EventType":"x","Udid":"A","SerialNumber":"B","EventTime":"t"})"));
}

TEST(UemWebhookParse, LegacySpellingsAndPayloads) {
  for (const char* t :
       {"BreakMDMConfirmed", "BREAKMDMCONFIRMED", "break_mdm_confirmed", "Break MDM Confirmed",
        "CompromisedStatusChanged", "COMPROMISEDSTATUSCHANGED", "ComplianceStatusChanged",
        "MDMEnrollmentComplete", "EnrollmentComplete", "DeviceEnterpriseWipeRequested",
        "DeviceDelete"}) {
    auto e = uem::parse_webhook(std::string(R"({"EventType":")") + t + R"(","Udid":"U"})");
    ASSERT_TRUE(e.event) << t;
    EXPECT_TRUE(e.event->relevant) << t;
  }
  for (const char* t : {"DeviceOperatingSystemChanged", "Device Organization Group Changed",
                        "DeviceMCC", "Device MCC", "AppListSampleRefused"}) {
    auto e = uem::parse_webhook(std::string(R"({"EventType":")") + t + R"(","Udid":"U"})");
    ASSERT_TRUE(e.event) << t;
    EXPECT_FALSE(e.event->relevant) << t;
  }
  // AirWatch JSON of old: a .NET type name instead of the UDID, /Date(ms)/ times, empty
  // CompromisedStatus. The serial number (then the DeviceId) names the device.
  auto legacy = uem::parse_webhook(
      R"({"EventId":39,"MACAddress":"System.Byte[]","EventTime":"\/Date(1368076258271)\/","ComplianceStatus":"NotAvailable","Udid":"System.Byte[]","EventType":"BreakMDMConfirmed","SerialNumber":"861348SXA4S","CompromisedStatus":"","DeviceId":616,"EnrollmentStatus":"Unenrolled"})");
  ASSERT_TRUE(legacy.event) << legacy.error;
  EXPECT_EQ(legacy.event->key.kind, uem::key_kind::serial);
  EXPECT_EQ(legacy.event->key.value, "861348SXA4S");
  EXPECT_EQ(legacy.event->event_time, "/Date(1368076258271)/");
  EXPECT_TRUE(legacy.event->relevant);
  auto id_only = uem::parse_webhook(
      R"({"EventId":39,"EventType":"BreakMDMConfirmed","Udid":"System.Byte[]","DeviceId":616})");
  ASSERT_TRUE(id_only.event) << id_only.error;
  EXPECT_EQ(id_only.event->key.kind, uem::key_kind::device_id);
  EXPECT_EQ(id_only.event->key.value, "616");
  auto numeric_time =
      uem::parse_webhook(R"({"EventType":"x","Udid":"U","EventTime":1368076258271})");
  ASSERT_TRUE(numeric_time.event);
  EXPECT_EQ(numeric_time.event->event_time, "1368076258271");
  for (const char* bad : {R"({"EventType":"x","Udid":"U","EventTime":{"ms":1}})",
                          R"({"EventType":"x","Udid":"U","EventTime":[1]})"}) {
    auto r = uem::parse_webhook(bad);
    EXPECT_FALSE(r.event) << bad;
    EXPECT_NE(r.error.find("EventTime"), std::string::npos) << r.error;
  }
}

// --- webhook settings: plain HTTP, limits ------------------------------------------------

namespace {

uem::config_result webhook_config(const temp_dir& dir, const std::string& webhook_lines) {
  dir.write("pw", "hook-password\n");
  return uem::load_config("uem:\n  source: file\n  file: x.json\n  webhook:\n" + webhook_lines +
                              "    username: u\n    password_file: pw\n",
                          "gw.yaml", dir.path());
}

}  // namespace

TEST(UemConfig, PlainHttpWebhookOffLoopbackNeedsTlsOrExplicitConsent) {
  temp_dir dir;
  // Refused: plain HTTP with Basic credentials on an address others can reach.
  for (const char* listen : {"10.1.2.3:9443", "0.0.0.0:9443", "'[::]:9443'", "'[2001:db8::5]:1'"}) {
    auto r = webhook_config(dir, std::string("    listen: ") + listen + "\n");
    ASSERT_FALSE(r) << listen;
    const auto all = errors_of(r);
    EXPECT_NE(all.find("gw.yaml:5:13: uem.webhook.listen: plain HTTP on "), std::string::npos)
        << all;
    EXPECT_NE(all.find("uem.webhook.tls: {cert: FILE, key: FILE}"), std::string::npos) << all;
    EXPECT_NE(all.find("uem.webhook.allow_plain_http: true"), std::string::npos) << all;
    EXPECT_EQ(r.errors.size(), 1U) << all;
  }
  // Allowed when asked for, with a warning for the caller to log.
  auto allowed = webhook_config(dir, "    listen: 10.1.2.3:9443\n    allow_plain_http: true\n");
  ASSERT_TRUE(allowed) << errors_of(allowed);
  EXPECT_TRUE(allowed.value->webhook.allow_plain_http);
  ASSERT_EQ(allowed.warnings.size(), 1U);
  const auto w = allowed.warnings[0].to_string();
  EXPECT_EQ(w.rfind("gw.yaml:6:23: uem.webhook.allow_plain_http: the webhook on 10.1.2.3:9443", 0),
            0U)
      << w;
  // Loopback (any 127/8 address, ::1, v4-mapped loopback) needs neither, and warns of nothing.
  for (const char* listen :
       {"127.0.0.1:9443", "127.9.8.7:1", "'[::1]:9443'", "'[::ffff:127.0.0.1]:9443'"}) {
    auto r = webhook_config(dir, std::string("    listen: ") + listen + "\n");
    ASSERT_TRUE(r) << listen << "\n" << errors_of(r);
    EXPECT_TRUE(r.warnings.empty()) << listen;
  }
  // TLS on any address: fine.
  auto tls = webhook_config(dir, "    listen: 10.1.2.3:9443\n    tls: {cert: c.pem, key: k.pem}\n");
  ASSERT_TRUE(tls) << errors_of(tls);
  EXPECT_TRUE(tls.warnings.empty());
  auto typo = webhook_config(dir, "    listen: 10.1.2.3:9443\n    allow_plain_http: yes\n");
  ASSERT_FALSE(typo);
  EXPECT_NE(errors_of(typo).find("uem.webhook.allow_plain_http: expected true or false"),
            std::string::npos);
  // What `tunnelgate --check-config` sees: the same, through load_config_file.
  dir.write("gw.yaml",
            "uem:\n  source: file\n  file: x.json\n  webhook: {listen: 192.0.2.1:9443, "
            "username: u, password_file: pw}\n");
  auto from_file = uem::load_config_file(dir.path() / "gw.yaml");
  ASSERT_FALSE(from_file);
  EXPECT_NE(errors_of(from_file).find((dir.path() / "gw.yaml").string() +
                                      ":4:21: uem.webhook.listen: plain HTTP on 192.0.2.1:9443"),
            std::string::npos)
      << errors_of(from_file);
}

TEST(UemConfig, WebhookConnectionAndTimeLimits) {
  temp_dir dir;
  auto d = webhook_config(dir, "    listen: 127.0.0.1:0\n");
  ASSERT_TRUE(d) << errors_of(d);
  EXPECT_EQ(d.value->webhook.max_connections, 16U);
  EXPECT_EQ(d.value->webhook.request_timeout, std::chrono::seconds(10));
  EXPECT_FALSE(d.value->webhook.allow_plain_http);
  auto set = webhook_config(
      dir, "    listen: 127.0.0.1:0\n    max_connections: 4\n    request_timeout: 500ms\n");
  ASSERT_TRUE(set) << errors_of(set);
  EXPECT_EQ(set.value->webhook.max_connections, 4U);
  EXPECT_EQ(set.value->webhook.request_timeout, std::chrono::milliseconds(500));
  auto bad = webhook_config(
      dir, "    listen: 127.0.0.1:0\n    max_connections: 0\n    request_timeout: 50ms\n");
  ASSERT_FALSE(bad);
  const auto all = errors_of(bad);
  EXPECT_NE(all.find("uem.webhook.max_connections: expected an integer from 1 to 1024"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("uem.webhook.request_timeout: must be from 100ms to 5m"), std::string::npos)
      << all;
}
