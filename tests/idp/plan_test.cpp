// idp plans and checks: what publish would write and what verify reports, from JSON alone.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "idp/idp.hpp"

namespace {

namespace idp = tunnelgate::idp;
using json = nlohmann::ordered_json;
using idp::change;
using idp::change_kind;

json zone_with(json gateways, json proxies = nullptr) {
  return json{{"type", "IP"},
              {"id", "nzo1"},
              {"name", "egress"},
              {"status", "ACTIVE"},
              {"usage", "POLICY"},
              {"gateways", std::move(gateways)},
              {"proxies", std::move(proxies)}};
}

json cidr(const std::string& v) {
  return json{{"type", "CIDR"}, {"value", v}};
}
json range(const std::string& v) {
  return json{{"type", "RANGE"}, {"value", v}};
}

idp::errc error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const idp::error& e) {
    return e.value();
  }
  ADD_FAILURE() << "no idp::error thrown";
  return idp::errc::bad_argument;
}

TEST(OktaPlan, AddsMissingAddressAndKeepsOthers) {
  const auto zone = zone_with(json::array({cidr("10.9.9.9/32"), range("10.0.0.1-10.0.0.9")}));
  const auto p = idp::plan_okta_zone(zone.dump(), {"127.0.0.2"}, false);
  EXPECT_TRUE(p.changed);
  EXPECT_EQ(p.added, 1U);
  EXPECT_EQ(p.removed, 0U);
  EXPECT_EQ(p.entries, 3U);
  ASSERT_EQ(p.diff.size(), 1U);
  EXPECT_EQ(p.diff[0], (change{change_kind::add, "127.0.0.2/32"}));
  const auto body = json::parse(p.body);
  EXPECT_EQ(body["gateways"],
            json::array({cidr("10.9.9.9/32"), range("10.0.0.1-10.0.0.9"), cidr("127.0.0.2/32")}));
}

TEST(OktaPlan, IdempotentWhenPresent) {
  const auto zone = zone_with(json::array({cidr("10.9.9.9/32"), cidr("127.0.0.2/32")}));
  const auto p = idp::plan_okta_zone(zone.dump(), {"127.0.0.2"}, false);
  EXPECT_FALSE(p.changed);
  EXPECT_TRUE(p.body.empty());
  ASSERT_EQ(p.diff.size(), 1U);
  EXPECT_EQ(p.diff[0], (change{change_kind::keep, "127.0.0.2/32"}));
  // Applying a plan's body and planning again changes nothing.
  const auto first =
      idp::plan_okta_zone(zone_with(json::array()).dump(), {"127.0.0.2", "::1"}, false);
  const auto second = idp::plan_okta_zone(first.body, {"127.0.0.2", "::1"}, false);
  EXPECT_FALSE(second.changed);
}

TEST(OktaPlan, ExclusiveRemovesEveryOtherGatewayButNotProxies) {
  const auto zone = zone_with(
      json::array({cidr("10.9.9.9/32"), cidr("127.0.0.2/32"), range("10.0.0.1-10.0.0.9")}),
      json::array({cidr("198.51.100.0/24")}));
  const auto p = idp::plan_okta_zone(zone.dump(), {"127.0.0.2"}, true);
  EXPECT_TRUE(p.changed);
  EXPECT_EQ(p.removed, 2U);
  EXPECT_EQ(p.added, 0U);
  const std::vector<change> want{{change_kind::keep, "127.0.0.2/32"},
                                 {change_kind::remove, "10.9.9.9/32"},
                                 {change_kind::remove, "10.0.0.1-10.0.0.9"}};
  EXPECT_EQ(p.diff, want);
  const auto body = json::parse(p.body);
  EXPECT_EQ(body["gateways"], json::array({cidr("127.0.0.2/32")}));
  EXPECT_EQ(body["proxies"], json::array({cidr("198.51.100.0/24")}));
  EXPECT_EQ(p.entries, 2U);
}

TEST(OktaPlan, ExclusiveDropsDuplicatesOfOwnedEntries) {
  const auto zone = zone_with(json::array({cidr("127.0.0.2/32"), cidr("127.0.0.2")}));
  EXPECT_FALSE(idp::plan_okta_zone(zone.dump(), {"127.0.0.2"}, false).changed);
  const auto p = idp::plan_okta_zone(zone.dump(), {"127.0.0.2"}, true);
  EXPECT_EQ(p.removed, 1U);
  EXPECT_EQ(json::parse(p.body)["gateways"].size(), 1U);
}

TEST(OktaPlan, WiderCidrOrRangeIsNotTheOwnedEntry) {
  // Containment is not ownership: the /32 is still added, so removing the range cannot
  // silently drop the gateway.
  const auto zone = zone_with(json::array({cidr("127.0.0.0/8"), range("127.0.0.1-127.0.0.9")}));
  const auto p = idp::plan_okta_zone(zone.dump(), {"127.0.0.2"}, false);
  EXPECT_EQ(p.added, 1U);
  // A RANGE of one address is not owned either: only CIDR entries are.
  const auto single = zone_with(json::array({range("127.0.0.2-127.0.0.2")}));
  EXPECT_EQ(idp::plan_okta_zone(single.dump(), {"127.0.0.2"}, false).added, 1U);
}

TEST(OktaPlan, Ipv6HostEntriesAreMatchedAfterNormalization) {
  const auto zone = zone_with(json::array({cidr("2001:DB8:0:0::10/128")}));
  const auto norm = *idp::normalize_address("2001:db8::10");
  const auto p = idp::plan_okta_zone(zone.dump(), {norm}, false);
  EXPECT_FALSE(p.changed);
  const auto q = idp::plan_okta_zone(zone_with(nullptr).dump(), {"2001:db8::11"}, false);
  EXPECT_EQ(q.diff[0], (change{change_kind::add, "2001:db8::11/128"}));
  EXPECT_EQ(json::parse(q.body)["gateways"], json::array({cidr("2001:db8::11/128")}));
}

TEST(OktaPlan, UnknownFieldsAreSentBackUnchanged) {
  auto zone = zone_with(json::array());
  zone["asns"] = json::array({"64500"});
  zone["locations"] = json::array({json{{"country", "DE"}, {"region", nullptr}}});
  zone["_links"] = json{{"self", json{{"href", "https://x/api/v1/zones/nzo1"}}}};
  zone["created"] = "2024-01-01T00:00:00.000Z";
  zone["system"] = false;
  zone["futureField"] = json{{"n", 1.5}, {"list", json::array({1, 2})}};
  const auto p = idp::plan_okta_zone(zone.dump(), {"127.0.0.2"}, false);
  auto body = json::parse(p.body);
  EXPECT_EQ(body["gateways"], json::array({cidr("127.0.0.2/32")}));
  body["gateways"] = zone["gateways"];
  EXPECT_EQ(body, zone);  // everything else identical, order included
  EXPECT_EQ(body.dump(), zone.dump());
}

TEST(OktaPlan, RefusesMoreThan150EntriesButNotAnUnchangedZone) {
  json gw = json::array();
  for (int i = 0; i < 100; ++i)
    gw.push_back(cidr("10.0." + std::to_string(i) + ".1/32"));
  json px = json::array();
  for (int i = 0; i < 49; ++i)
    px.push_back(cidr("10.1." + std::to_string(i) + ".1/32"));
  // 149 + 1 = 150: allowed.
  const auto p = idp::plan_okta_zone(zone_with(gw, px).dump(), {"127.0.0.2"}, false);
  EXPECT_EQ(p.entries, 150U);
  // 149 + 2 = 151: refused, whatever the family.
  EXPECT_EQ(error_of([&] {
              idp::plan_okta_zone(zone_with(gw, px).dump(), {"127.0.0.2", "::2"}, false);
            }),
            idp::errc::too_many_entries);
  try {
    idp::plan_okta_zone(zone_with(gw, px).dump(), {"127.0.0.2", "::2"}, false);
  } catch (const idp::error& e) {
    EXPECT_NE(std::string(e.what()).find("151 entries"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("at most 150"), std::string::npos) << e.what();
  }
  // --exclusive can bring it back under the limit.
  EXPECT_EQ(idp::plan_okta_zone(zone_with(gw, px).dump(), {"127.0.0.2", "::2"}, true).entries, 51U);
  // An over-full zone that needs no change is not refused.
  gw.push_back(cidr("127.0.0.2/32"));
  gw.push_back(cidr("10.2.0.1/32"));
  EXPECT_FALSE(idp::plan_okta_zone(zone_with(gw, px).dump(), {"127.0.0.2"}, false).changed);
  // BLOCKLIST zones have a limit of 1000.
  auto block = zone_with(gw, px);
  block["usage"] = "BLOCKLIST";
  EXPECT_TRUE(idp::plan_okta_zone(block.dump(), {"127.0.0.3"}, false).changed);
}

TEST(OktaPlan, CreateBody) {
  const auto p = idp::plan_okta_create("WS1 Tunnel egress", {"127.0.0.2", "2001:db8::1"});
  EXPECT_TRUE(p.changed);
  EXPECT_EQ(p.added, 2U);
  EXPECT_EQ(p.entries, 2U);
  const auto body = json::parse(p.body);
  const json want{{"type", "IP"},
                  {"name", "WS1 Tunnel egress"},
                  {"status", "ACTIVE"},
                  {"usage", "POLICY"},
                  {"gateways", json::array({cidr("127.0.0.2/32"), cidr("2001:db8::1/128")})}};
  EXPECT_EQ(body, want);
  std::vector<std::string> many;
  many.reserve(151);
  for (int i = 0; i < 151; ++i)
    many.push_back("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1));
  EXPECT_EQ(error_of([&] { idp::plan_okta_create("big", many); }), idp::errc::too_many_entries);
}

TEST(OktaPlan, BadInput) {
  EXPECT_EQ(error_of([] { idp::plan_okta_zone("[1]", {"127.0.0.2"}, false); }),
            idp::errc::bad_response);
  EXPECT_EQ(error_of([] { idp::plan_okta_zone("not json", {"127.0.0.2"}, false); }),
            idp::errc::bad_response);
  EXPECT_EQ(
      error_of([] { idp::plan_okta_zone(R"({"gateways":"10.0.0.1/32"})", {"127.0.0.2"}, false); }),
      idp::errc::bad_response);
  EXPECT_EQ(error_of([] { idp::plan_okta_zone("{}", {}, false); }), idp::errc::bad_argument);
  EXPECT_EQ(error_of([] { idp::plan_okta_zone("{}", {"127.0.0.300"}, false); }),
            idp::errc::bad_argument);
  // Not normalized: the caller normalizes.
  EXPECT_EQ(error_of([] { idp::plan_okta_zone("{}", {"2001:DB8::1"}, false); }),
            idp::errc::bad_argument);
}

TEST(OktaCheck, CidrAndRangeContainment) {
  const auto zone = zone_with(
      json::array({cidr("127.0.0.0/30"), range("10.0.0.1-10.0.0.9"), cidr("2001:db8::/64")}),
      json::array({cidr("192.0.2.0/24")}));
  const auto r = idp::check_okta_zone(
      zone.dump(), {"127.0.0.2", "10.0.0.9", "2001:db8::5", "192.0.2.1", "127.0.0.4"});
  EXPECT_TRUE(r.active);
  EXPECT_EQ(r.id, "nzo1");
  EXPECT_EQ(r.name, "egress");
  EXPECT_EQ(r.present, (std::vector<std::string>{"127.0.0.2", "10.0.0.9", "2001:db8::5"}));
  // proxies do not count: Okta skips proxy addresses.
  EXPECT_EQ(r.missing, (std::vector<std::string>{"192.0.2.1", "127.0.0.4"}));
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(idp::check_okta_zone(zone.dump(), {"127.0.0.1"}).ok());
}

TEST(OktaCheck, InactiveOrBlocklistTrustsNothing) {
  auto zone = zone_with(json::array({cidr("127.0.0.2/32")}));
  zone["status"] = "INACTIVE";
  auto r = idp::check_okta_zone(zone.dump(), {"127.0.0.2"});
  EXPECT_FALSE(r.active);
  EXPECT_EQ(r.status, "INACTIVE");
  EXPECT_EQ(r.missing, std::vector<std::string>{"127.0.0.2"});
  zone["status"] = "ACTIVE";
  zone["usage"] = "BLOCKLIST";
  r = idp::check_okta_zone(zone.dump(), {"127.0.0.2"});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status, "ACTIVE, usage BLOCKLIST");
}

json location_with(json ranges, bool trusted = true) {
  return json{{"@odata.type", "#microsoft.graph.ipNamedLocation"},
              {"id", "0b6d7e7a-1111-4222-8333-944455556666"},
              {"displayName", "egress"},
              {"createdDateTime", "2024-01-01T00:00:00Z"},
              {"isTrusted", trusted},
              {"ipRanges", std::move(ranges)}};
}

json v4(const std::string& c) {
  return json{{"@odata.type", "#microsoft.graph.iPv4CidrRange"}, {"cidrAddress", c}};
}
json v6(const std::string& c) {
  return json{{"@odata.type", "#microsoft.graph.iPv6CidrRange"}, {"cidrAddress", c}};
}

TEST(EntraPlan, MergeExclusiveAndPatchBody) {
  const auto loc = location_with(json::array({v4("10.9.9.9/32"), v6("2001:db8::/48")}));
  const auto p = idp::plan_entra_location(loc.dump(), {"127.0.0.2", "2001:db8::2"}, false);
  EXPECT_EQ(p.added, 2U);
  const auto body = json::parse(p.body);
  const json want{{"@odata.type", "#microsoft.graph.ipNamedLocation"},
                  {"ipRanges", json::array({v4("10.9.9.9/32"), v6("2001:db8::/48"),
                                            v4("127.0.0.2/32"), v6("2001:db8::2/128")})}};
  EXPECT_EQ(body, want);
  // Second run: no change.
  auto after = loc;
  after["ipRanges"] = body["ipRanges"];
  EXPECT_FALSE(idp::plan_entra_location(after.dump(), {"127.0.0.2", "2001:db8::2"}, false).changed);
  // Exclusive: only the owned /32 and /128 stay.
  const auto x = idp::plan_entra_location(after.dump(), {"127.0.0.2", "2001:db8::2"}, true);
  EXPECT_EQ(x.removed, 2U);
  EXPECT_EQ(json::parse(x.body)["ipRanges"],
            json::array({v4("127.0.0.2/32"), v6("2001:db8::2/128")}));
  const std::vector<change> want_diff{{change_kind::keep, "127.0.0.2/32"},
                                      {change_kind::keep, "2001:db8::2/128"},
                                      {change_kind::remove, "10.9.9.9/32"},
                                      {change_kind::remove, "2001:db8::/48"}};
  EXPECT_EQ(x.diff, want_diff);
}

TEST(EntraPlan, CreateBodyAndLimit) {
  const auto p = idp::plan_entra_create("egress", {"127.0.0.2"});
  const json want{{"@odata.type", "#microsoft.graph.ipNamedLocation"},
                  {"displayName", "egress"},
                  {"isTrusted", true},
                  {"ipRanges", json::array({v4("127.0.0.2/32")})}};
  EXPECT_EQ(json::parse(p.body), want);
  json many = json::array();
  for (int i = 0; i < 2000; ++i)
    many.push_back(v4("10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".0/24"));
  EXPECT_EQ(
      error_of([&] { idp::plan_entra_location(location_with(many).dump(), {"127.0.0.2"}, false); }),
      idp::errc::too_many_entries);
}

TEST(EntraCheck, TrustedAndContainment) {
  const auto loc = location_with(json::array({v4("127.0.0.0/24"), v6("2001:db8::/48")}));
  auto r = idp::check_entra_location(loc.dump(), {"127.0.0.2", "2001:db8::9", "127.0.1.1"});
  EXPECT_TRUE(r.active);
  EXPECT_EQ(r.status, "trusted");
  EXPECT_EQ(r.name, "egress");
  EXPECT_EQ(r.missing, std::vector<std::string>{"127.0.1.1"});
  r = idp::check_entra_location(location_with(json::array({v4("127.0.0.0/24")}), false).dump(),
                                {"127.0.0.2"});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status, "untrusted");
  auto country = loc;
  country["@odata.type"] = "#microsoft.graph.countryNamedLocation";
  EXPECT_FALSE(idp::check_entra_location(country.dump(), {"127.0.0.2"}).ok());
}

}  // namespace
