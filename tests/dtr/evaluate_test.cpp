// Decisions: one routing file, many lookups, every fall-through included.
#include <gtest/gtest.h>

#include "dtr/dtr.hpp"

namespace tunnelgate::dtr {
namespace {

// Line numbers matter: decisions report them.
constexpr std::string_view rules_yaml = R"(proxies:
  corp: https://proxy.corp.example:3128
  plain: http://[2001:db8::3128]:8080
rule_sets:
  - name: okta-app
    platforms: [ios, android]
    mode: per-app
    apps: [com.okta.mobile]
    default: bypass
    rules:
      - action: tunnel
        destinations: ["*acme.okta.com", "login.microsoftonline.com:443"]
      - action: block
        destinations: ["*.okta.com"]
      - action: proxy
        proxy: corp
        destinations: ["10.0.0.0/8:1-1024", "[2001:db8::/32]:443", "bücher.example"]
      - action: proxy
        proxy: plain
        destinations: ["*.plain.example"]
  - name: ios-device
    platforms: [ios]
    mode: full-device
    default: block
    rules:
      - action: tunnel
        destinations: ["*.example.com:443", "192.0.2.0/24"]
      - action: bypass
        destinations: ["*"]
  - name: android-second
    platforms: [android]
    mode: per-app
    apps: [com.okta.mobile, org.other]
    default: tunnel
)";

class Evaluate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto r = load_rules(rules_yaml, "rules.yaml");
    ASSERT_TRUE(r) << (r.errors.empty() ? "" : r.errors.front().to_string());
    policy_ = r.value;
  }
  static decision ios_app(std::string_view host, std::uint16_t port = 443) {
    return policy_->evaluate({host, port, platform::ios, "com.okta.mobile"});
  }
  static std::shared_ptr<const policy> policy_;
};
std::shared_ptr<const policy> Evaluate::policy_;

TEST_F(Evaluate, ExactHostMatchesCaseInsensitivelyAndWithTrailingDot) {
  for (auto h :
       {"login.microsoftonline.com", "LOGIN.MicrosoftOnline.com", "login.microsoftonline.com."}) {
    const auto d = ios_app(h);
    EXPECT_EQ(d.act, action::tunnel) << h;
    EXPECT_EQ(d.rank, 1) << h;
    EXPECT_EQ(d.line, 11) << h;
    EXPECT_EQ(d.set->name, "okta-app");
    EXPECT_EQ(d.matched->text(), "login.microsoftonline.com:443");
  }
  // Same host on another port: the rule's port does not cover it, the default applies.
  EXPECT_EQ(ios_app("login.microsoftonline.com", 80).act, action::bypass);
  EXPECT_EQ(ios_app("login.microsoftonline.com", 80).rank, 0);
  EXPECT_EQ(ios_app("login.microsoftonline.com", 80).line, 9);
  // Not a subdomain match: exact means exact.
  EXPECT_EQ(ios_app("x.login.microsoftonline.com").act, action::bypass);
}

TEST_F(Evaluate, StringSuffixIsWorkspaceOneCompatible) {
  EXPECT_EQ(ios_app("acme.okta.com").rank, 1);
  EXPECT_EQ(ios_app("sso.acme.okta.com").rank, 1);
  // Plain string suffix: it crosses the label boundary, exactly like Workspace ONE.
  EXPECT_EQ(ios_app("notacme.okta.com").rank, 1);
  EXPECT_EQ(ios_app("notacme.okta.com").matched->text(), "*acme.okta.com");
}

TEST_F(Evaluate, LabelSuffixMatchesSubdomainsOnly) {
  const auto d = ios_app("other.okta.com");
  EXPECT_EQ(d.act, action::block);
  EXPECT_EQ(d.rank, 2);
  EXPECT_EQ(d.line, 13);
  EXPECT_EQ(ios_app("a.b.okta.com").rank, 2);
  EXPECT_EQ(ios_app("okta.com").rank, 0);   // the apex is not a subdomain
  EXPECT_EQ(ios_app("xokta.com").rank, 0);  // and no string-suffix crossing
}

TEST_F(Evaluate, FirstMatchingRuleWinsOverLaterMoreSpecificOnes) {
  // acme.okta.com matches rank 1 (*acme.okta.com) and rank 2 (*.okta.com): rank 1 wins.
  EXPECT_EQ(ios_app("www.acme.okta.com").rank, 1);
}

TEST_F(Evaluate, Ipv4CidrWithPortRange) {
  const auto d = ios_app("10.1.2.3", 1024);
  EXPECT_EQ(d.act, action::proxy);
  ASSERT_NE(d.proxy, nullptr);
  EXPECT_EQ(d.proxy->name, "corp");
  EXPECT_EQ(d.proxy->url, "https://proxy.corp.example:3128");
  EXPECT_TRUE(d.proxy->tls);
  EXPECT_EQ(d.rank, 3);
  EXPECT_EQ(d.line, 15);
  EXPECT_EQ(ios_app("10.1.2.3", 1).rank, 3);
  EXPECT_EQ(ios_app("10.1.2.3", 1025).rank, 0);
  EXPECT_EQ(ios_app("11.1.2.3", 80).rank, 0);
}

TEST_F(Evaluate, Ipv6CidrWithPortWithOrWithoutBrackets) {
  EXPECT_EQ(ios_app("2001:db8:ffff::1").act, action::proxy);
  EXPECT_EQ(ios_app("[2001:DB8::1]").act, action::proxy);
  EXPECT_EQ(ios_app("2001:db8::1", 80).rank, 0);
  EXPECT_EQ(ios_app("2001:db9::1").rank, 0);
}

TEST_F(Evaluate, IpLiteralsAreMatchedOnlyByIpRules) {
  // ios-device has `*` (bypass) after 192.0.2.0/24: an address outside the CIDR falls past `*`
  // to the default, because `*` is a host-name pattern.
  const auto d = policy_->evaluate({"198.51.100.7", 443, platform::ios, ""});
  EXPECT_EQ(d.act, action::block);
  EXPECT_EQ(d.rank, 0);
  EXPECT_EQ(policy_->evaluate({"192.0.2.99", 443, platform::ios, ""}).act, action::tunnel);
  EXPECT_EQ(policy_->evaluate({"anything.invalid", 443, platform::ios, ""}).act, action::bypass);
}

TEST_F(Evaluate, InternationalNamesMatchInEitherForm) {
  EXPECT_EQ(ios_app("bücher.example").rank, 3);
  EXPECT_EQ(ios_app("BÜCHER.example").rank, 3);
  EXPECT_EQ(ios_app("xn--bcher-kva.example").rank, 3);
  EXPECT_EQ(ios_app("buecher.example").rank, 0);
}

TEST_F(Evaluate, ProxyToIpv6UpstreamIsReported) {
  const auto d = ios_app("a.plain.example");
  EXPECT_EQ(d.act, action::proxy);
  ASSERT_NE(d.proxy, nullptr);
  EXPECT_EQ(d.proxy->host, "2001:db8::3128");
  EXPECT_EQ(d.proxy->port, 8080);
  EXPECT_FALSE(d.proxy->tls);
}

TEST_F(Evaluate, PerAppSetThenFullDeviceFallbackThenRefusal) {
  // App listed in a per-app set: that set.
  EXPECT_EQ(policy_->evaluate({"x.example.com", 443, platform::ios, "com.okta.mobile"}).set->name,
            "okta-app");
  // Unlisted app on ios: the full-device set.
  const auto d = policy_->evaluate({"x.example.com", 443, platform::ios, "com.other"});
  ASSERT_NE(d.set, nullptr);
  EXPECT_EQ(d.set->name, "ios-device");
  EXPECT_EQ(d.act, action::tunnel);
  // No app at all on ios: the full-device set.
  EXPECT_EQ(policy_->evaluate({"x.example.com", 443, platform::ios, ""}).set->name, "ios-device");
  // Android: the first per-app set listing the app wins, even though a later one lists it too.
  EXPECT_EQ(policy_->evaluate({"h.example", 443, platform::android, "com.okta.mobile"}).set->name,
            "okta-app");
  EXPECT_EQ(policy_->evaluate({"h.example", 443, platform::android, "org.other"}).set->name,
            "android-second");
  // Android has no full-device set: an unlisted app is refused.
  const auto r = policy_->evaluate({"h.example", 443, platform::android, "org.unknown"});
  EXPECT_TRUE(r.refused());
  EXPECT_EQ(r.refusal, "no-rule-set");
  EXPECT_EQ(r.set, nullptr);
  EXPECT_EQ(r.act, action::block);
  // Platforms without any set are refused too; app ids are case-sensitive.
  EXPECT_EQ(policy_->evaluate({"h.example", 443, platform::linux, ""}).refusal, "no-rule-set");
  EXPECT_EQ(policy_->evaluate({"h.example", 443, platform::android, "COM.OKTA.MOBILE"}).refusal,
            "no-rule-set");
}

TEST_F(Evaluate, HostsThatAreNotNamesAreRefused) {
  for (auto h : {"127.1", "0x7f.0.0.1", "bad host", "", "a..b", "host/path", "[::1"}) {
    const auto d = ios_app(h);
    EXPECT_EQ(d.refusal, "bad-host") << h;
    EXPECT_EQ(d.act, action::block) << h;
  }
}

TEST_F(Evaluate, SelectReportsTheSetAFlowWouldUse) {
  EXPECT_EQ(policy_->select(platform::ios, "")->name, "ios-device");
  EXPECT_EQ(policy_->select(platform::windows, ""), nullptr);
}

// IPv4 inside IPv6: a flow to an IPv4-mapped (::ffff:a.b.c.d) or IPv4-compatible (::a.b.c.d)
// address is decided as a.b.c.d, by the IPv4 rules, however the client spells it; destinations
// written in those forms are IPv4 destinations.
constexpr std::string_view mapped_yaml = R"(rule_sets:
  - name: mapped
    platforms: [ios]
    mode: full-device
    default: bypass
    rules:
      - action: block
        destinations: ["10.0.0.0/8"]
      - action: tunnel
        destinations: ["::ffff:192.0.2.0/120", "[::ffff:198.51.100.7]:443", "::203.0.113.0/120"]
      - action: block
        destinations: ["::/0"]
      - action: tunnel
        destinations: ["0.0.0.0/0"]
)";

class EvaluateMapped : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto r = load_rules(mapped_yaml, "mapped.yaml");
    ASSERT_TRUE(r) << (r.errors.empty() ? "" : r.errors.front().to_string());
    policy_ = r.value;
  }
  static decision decide(std::string_view host, std::uint16_t port = 443) {
    return policy_->evaluate({host, port, platform::ios, ""});
  }
  static std::shared_ptr<const policy> policy_;
};
std::shared_ptr<const policy> EvaluateMapped::policy_;

TEST_F(EvaluateMapped, MappedAndCompatibleHostsAreDecidedAsIpv4) {
  for (auto h : {"10.0.0.1", "::ffff:10.0.0.1", "[::ffff:10.0.0.1]", "::FFFF:A00:1",
                 "0:0:0:0:0:ffff:10.0.0.1", "0000:0000:0000:0000:0000:FFFF:0A00:0001", "::10.0.0.1",
                 "::a00:1", "[::a00:1]", "::ffff:10.255.255.255"}) {
    const auto d = decide(h);
    EXPECT_EQ(d.act, action::block) << h;
    EXPECT_EQ(d.rank, 1) << h;
    EXPECT_EQ(d.line, 7) << h;
    ASSERT_NE(d.matched, nullptr) << h;
    EXPECT_EQ(d.matched->text(), "10.0.0.0/8") << h;
  }
  // Next to 10.0.0.0/8 in either family: not blocked by rule 1.
  EXPECT_EQ(decide("::ffff:11.0.0.1").rank, 4);
  EXPECT_EQ(decide("::ffff:9.255.255.255").rank, 4);
}

TEST_F(EvaluateMapped, MappedDestinationsMatchBothSpellings) {
  // "::ffff:192.0.2.0/120" is the IPv4 network 192.0.2.0/24.
  for (auto h : {"192.0.2.5", "::ffff:192.0.2.5", "::ffff:c000:205", "::192.0.2.5"}) {
    EXPECT_EQ(decide(h).rank, 2) << h;
    EXPECT_EQ(decide(h).act, action::tunnel) << h;
  }
  EXPECT_EQ(decide("192.0.2.5").matched->text(), "192.0.2.0/24");
  // "[::ffff:198.51.100.7]:443" is 198.51.100.7:443; other ports fall to 0.0.0.0/0.
  EXPECT_EQ(decide("198.51.100.7").rank, 2);
  EXPECT_EQ(decide("::ffff:198.51.100.7").rank, 2);
  EXPECT_EQ(decide("198.51.100.7", 80).rank, 4);
  EXPECT_EQ(decide("::ffff:198.51.100.7", 80).rank, 4);
  // The IPv4-compatible form of a destination too.
  EXPECT_EQ(decide("203.0.113.9").rank, 2);
  EXPECT_EQ(decide("::ffff:203.0.113.9").rank, 2);
}

TEST_F(EvaluateMapped, OtherIpv6AddressesStayIpv6) {
  // ::/0 holds only what stays IPv6: mapped hosts went to the IPv4 rules above.
  for (auto h : {"::1", "::", "[::1]", "2001:db8::1", "::fffe:a00:1", "::1:a00:1", "::ffff:1:a00:1",
                 "64:ff9b::a00:1", "2002:a00:1::1", "fe80::ffff:a00:1"}) {
    const auto d = decide(h);
    EXPECT_EQ(d.rank, 3) << h;
    EXPECT_EQ(d.act, action::block) << h;
  }
  // The unspecified and loopback addresses are not IPv4-compatible; ::2 and up are.
  EXPECT_EQ(decide("::2").rank, 4);
  EXPECT_EQ(decide("::0.0.0.2").rank, 4);
  EXPECT_EQ(decide("::0.0.0.1").rank, 3);
  EXPECT_EQ(decide("::ffff:0:0").rank, 4);  // mapped 0.0.0.0
  EXPECT_EQ(decide("::ffff:0.0.0.1").rank, 4);
}

TEST_F(EvaluateMapped, MalformedMappedLiteralsAreRefused) {
  for (auto h : {"::ffff:10.0.0", "::ffff:10.0.0.256", "::ffff:010.0.0.1", "::ffff:10.0.0.1%eth0",
                 ":::ffff:10.0.0.1", "::ffff::10.0.0.1"}) {
    EXPECT_EQ(decide(h).refusal, "bad-host") << h;
  }
}

// `*suffix` and internationalised names: the label-boundary wildcard and exact IDN hosts work
// in either form; a `*suffix` that starts inside a non-ASCII label cannot be loaded (load_test).
constexpr std::string_view idn_yaml = R"(rule_sets:
  - name: idn
    platforms: [ios]
    mode: full-device
    default: bypass
    rules:
      - action: block
        destinations: ["*.bücher.de", "bücher.de"]
      - action: tunnel
        destinations: ["*shop.straße.de", "*-admin.münchen.de"]
)";

TEST(EvaluateIdn, LabelSuffixExactAndAsciiStringSuffixOnIdnNames) {
  auto r = load_rules(idn_yaml, "idn.yaml");
  ASSERT_TRUE(r) << (r.errors.empty() ? "" : r.errors.front().to_string());
  auto decide = [&](std::string_view h) { return r.value->evaluate({h, 443, platform::ios, ""}); };
  for (auto h : {"bücher.de", "BÜCHER.de", "xn--bcher-kva.de", "www.bücher.de", "WWW.BÜCHER.DE.",
                 "a.b.xn--bcher-kva.de", "shop.bücher.de"}) {
    EXPECT_EQ(decide(h).rank, 1) << h;
  }
  for (auto h : {"meinbücher.de", "xn--meinbcher-u9a.de", "bucher.de", "ücher.de", "de"}) {
    EXPECT_EQ(decide(h).rank, 0) << h;
  }
  // The complete labels after an ASCII partial label are converted on their own.
  for (auto h : {"shop.straße.de", "myshop.xn--strae-oqa.de", "a.shop.straße.de",
                 "x-admin.münchen.de", "-admin.xn--mnchen-3ya.de"}) {
    EXPECT_EQ(decide(h).rank, 2) << h;
  }
  EXPECT_EQ(decide("shop.strasse.de").rank, 0);  // UTS #46 non-transitional: ß stays ß
  EXPECT_EQ(decide("admin.münchen.de").rank, 0);
}

TEST(Preset, OktaEntraLoginExpandsToTheSignInHosts) {
  const auto hosts = okta_entra_login_destinations({"acme", "login.acme.com", "ip.echo.example"});
  auto has = [&](std::string_view h) {
    return std::find(hosts.begin(), hosts.end(), h) != hosts.end();
  };
  EXPECT_TRUE(has("acme.okta.com"));
  EXPECT_TRUE(has("acme-admin.okta.com"));
  EXPECT_TRUE(has("login.acme.com"));
  EXPECT_TRUE(has("login.microsoftonline.com"));
  EXPECT_TRUE(has("*.login.microsoftonline.com"));
  EXPECT_TRUE(has("login.microsoft.com"));
  EXPECT_TRUE(has("login.windows.net"));
  EXPECT_TRUE(has("sts.windows.net"));
  EXPECT_TRUE(has("ip.echo.example"));
  // A dotted tenant is the org host itself (preview cells, EMEA cells).
  const auto preview = okta_entra_login_destinations({"acme.oktapreview.com", "", ""});
  EXPECT_EQ(preview[0], "acme.oktapreview.com");
  EXPECT_EQ(preview[1], "acme-admin.oktapreview.com");
  EXPECT_THROW(okta_entra_login_destinations({"", "", ""}), std::invalid_argument);
  EXPECT_THROW(okta_entra_login_destinations({"ac me", "", ""}), std::invalid_argument);
  EXPECT_THROW(okta_entra_login_destinations({"acme", "bad..domain", ""}), std::invalid_argument);
}

TEST(Preset, DecidesRealLoginHostsInARulesFile) {
  auto r = load_rules(R"(rule_sets:
  - name: login
    platforms: [ios]
    mode: per-app
    apps: [com.okta.mobile]
    default: bypass
    rules:
      - action: tunnel
        preset: {name: okta-entra-login, okta_tenant: acme, okta_custom_domain: sso.acme.example}
)",
                      "preset.yaml");
  ASSERT_TRUE(r);
  auto decide = [&](std::string_view h) {
    return r.value->evaluate({h, 443, platform::ios, "com.okta.mobile"});
  };
  for (auto h :
       {"acme.okta.com", "acme-admin.okta.com", "sso.acme.example", "login.microsoftonline.com",
        "device.login.microsoftonline.com", "ccs.login.microsoftonline.com", "login.windows.net",
        "sts.windows.net", "autologon.microsoftazuread-sso.com"}) {
    const auto d = decide(h);
    EXPECT_EQ(d.act, action::tunnel) << h;
    EXPECT_EQ(d.rank, 1) << h;
    EXPECT_EQ(d.line, 8) << h;
  }
  for (auto h : {"other.okta.com", "www.microsoft.com", "okta.com", "example.com"}) {
    EXPECT_EQ(decide(h).act, action::bypass) << h;
  }
  EXPECT_EQ(r.value->spec().rule_sets[0].rules[0].preset, "okta-entra-login");
}

}  // namespace
}  // namespace tunnelgate::dtr
