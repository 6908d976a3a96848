// Lint: each finding from a file that has exactly that mistake, and a clean file with none.
#include <gtest/gtest.h>

#include "dtr/dtr.hpp"

namespace tunnelgate::dtr {
namespace {

std::vector<finding> lint_text(std::string_view yaml) {
  auto r = load_rules(yaml, "lint.yaml");
  EXPECT_TRUE(r) << (r.errors.empty() ? "" : r.errors.front().to_string());
  if (!r) return {};
  return lint(*r.value);
}

std::string dump(const std::vector<finding>& f) {
  std::string s;
  for (const auto& x : f)
    s += x.where.to_string() + " [" + x.code + "]\n";
  return s;
}

constexpr std::string_view head =
    "rule_sets:\n  - name: s\n    platforms: [ios]\n"
    "    mode: full-device\n    default: block\n    rules:\n";

std::string rules(std::string_view r) {
  return std::string(head) + std::string(r);
}

TEST(Lint, CleanFileHasNoFindings) {
  const auto f = lint_text(
      rules("      - action: tunnel\n        destinations: [acme.okta.com, '*.acme.okta.com']\n"
            "      - action: bypass\n        destinations: ['*']\n"));
  EXPECT_TRUE(f.empty()) << dump(f);
}

TEST(Lint, PresetIsClean) {
  const auto f = lint_text(rules(
      "      - action: tunnel\n        preset: {name: okta-entra-login, okta_tenant: acme}\n"));
  EXPECT_TRUE(f.empty()) << dump(f);
}

TEST(Lint, RuleAfterStarIsShadowed) {
  const auto f = lint_text(
      rules("      - action: bypass\n        destinations: ['*']\n"
            "      - action: tunnel\n        destinations: [a.example, '*.b.example:443']\n"));
  ASSERT_EQ(f.size(), 1U) << dump(f);
  EXPECT_EQ(f[0].code, "shadowed-rule");
  EXPECT_EQ(f[0].where.line, 9);
  EXPECT_NE(f[0].where.message.find("rule 2 of set 's' never matches"), std::string::npos);
}

TEST(Lint, ShadowingRespectsPortsAndKinds) {
  const auto f =
      lint_text(rules("      - action: tunnel\n        destinations: ['*.okta.com:443', "
                      "10.0.0.0/8, '*acme.example']\n"
                      "      - action: block\n        destinations:\n"
                      "          - a.okta.com:443\n"       // shadowed: subdomain, same port
                      "          - a.okta.com\n"           // not shadowed: other ports remain
                      "          - okta.com:443\n"         // not shadowed: apex
                      "          - 10.1.0.0/16:22\n"       // shadowed by the /8
                      "          - 11.0.0.0/8\n"           // not shadowed
                      "          - '*.acme.example'\n"     // shadowed by the string suffix
                      "          - '*xacme.example'\n"));  // shadowed by the string suffix
  std::vector<int> lines;
  for (const auto& x : f) {
    if (x.code == "shadowed-destination") lines.push_back(x.where.line);
  }
  EXPECT_EQ(lines, (std::vector<int>{11, 14, 16, 17})) << dump(f);
}

TEST(Lint, StringSuffixCrossingALabelBoundary) {
  const auto f = lint_text(rules("      - action: tunnel\n        destinations: ['*okta.com']\n"));
  ASSERT_EQ(f.size(), 1U) << dump(f);
  EXPECT_EQ(f[0].code, "string-suffix");
  EXPECT_EQ(f[0].where.line, 8);
  EXPECT_EQ(f[0].where.column, 24);
  EXPECT_NE(f[0].where.message.find("also matches 'xokta.com'"), std::string::npos);
  EXPECT_NE(f[0].where.message.find("'*.okta.com'"), std::string::npos);
}

TEST(Lint, DuplicateDestinations) {
  const auto f = lint_text(
      rules("      - action: tunnel\n        destinations: [a.example, b.example, A.Example.]\n"
            "      - action: block\n        destinations: [b.example, c.example]\n"));
  ASSERT_EQ(f.size(), 2U) << dump(f);
  EXPECT_EQ(f[0].code, "duplicate-destination");
  EXPECT_EQ(f[0].where.line, 8);
  EXPECT_EQ(f[1].code, "duplicate-destination");
  EXPECT_EQ(f[1].where.line, 10);
  EXPECT_NE(f[1].where.message.find("already listed in rule 1"), std::string::npos);
}

TEST(Lint, MappedDestinationsAreTheirIpv4Form) {
  // `::ffff:10.0.0.0/104` is 10.0.0.0/8: a duplicate of it, and shadowed by 10.0.0.0/7; a plain
  // IPv6 network (::/0) does not cover it, because mapped flows are decided as IPv4.
  const auto f =
      lint_text(rules("      - action: tunnel\n        destinations: [10.0.0.0/8, '::/0']\n"
                      "      - action: block\n        destinations: ['::ffff:10.0.0.0/104', "
                      "'::ffff:10.0.0.1', '::ffff:11.0.0.0/104', '::ffff:12.0.0.0/104']\n"
                      "      - action: block\n        destinations: [8.0.0.0/5, '::1']\n"
                      "      - action: block\n        destinations: ['[::ffff:12.0.0.1]:443']\n"));
  ASSERT_EQ(f.size(), 4U) << dump(f);
  EXPECT_EQ(f[0].code, "duplicate-destination");
  EXPECT_EQ(f[0].where.line, 10);
  EXPECT_NE(f[0].where.message.find("'10.0.0.0/8' is already listed in rule 1"), std::string::npos)
      << f[0].where.message;
  EXPECT_EQ(f[1].code, "shadowed-destination");
  EXPECT_NE(f[1].where.message.find("'10.0.0.1' never matches here: '10.0.0.0/8'"),
            std::string::npos)
      << f[1].where.message;
  EXPECT_EQ(f[2].code, "shadowed-destination");  // ::1 is inside ::/0; 8.0.0.0/5 is new
  EXPECT_EQ(f[2].where.line, 12);
  EXPECT_NE(f[2].where.message.find("'::1' never matches here: '::/0'"), std::string::npos);
  EXPECT_EQ(f[3].code, "shadowed-rule");  // 12.0.0.1:443 is in rule 2's 12.0.0.0/8
  EXPECT_EQ(f[3].where.line, 13);
}

TEST(Lint, UnusedProxy) {
  const auto f = lint_text(
      "proxies:\n  used: http://p.example:1\n  idle: http://q.example:2\n" +
      rules("      - action: proxy\n        proxy: used\n        destinations: [a.example]\n"));
  ASSERT_EQ(f.size(), 1U) << dump(f);
  EXPECT_EQ(f[0].code, "unused-proxy");
  EXPECT_EQ(f[0].where.line, 3);
  EXPECT_NE(f[0].where.message.find("'idle'"), std::string::npos);
}

TEST(Lint, AppInTwoPerAppSetsOfOnePlatform) {
  const auto f = lint_text(
      "rule_sets:\n"
      "  - {name: a, platforms: [ios], mode: per-app, apps: [com.x, com.y], default: tunnel, "
      "rules: [{action: block, destinations: [q.example]}]}\n"
      "  - {name: b, platforms: [ios, android], mode: per-app, apps: [com.y], default: bypass, "
      "rules: [{action: block, destinations: [q.example]}]}\n");
  ASSERT_EQ(f.size(), 1U) << dump(f);
  EXPECT_EQ(f[0].code, "app-in-two-sets");
  EXPECT_EQ(f[0].where.line, 3);
  EXPECT_NE(f[0].where.message.find("app 'com.y' is already in per-app set 'a' for ios"),
            std::string::npos);
  EXPECT_EQ(f[0].where.message.find("android"), std::string::npos);
}

TEST(Lint, EmptySetAndUnreachableFullDeviceSet) {
  const auto f = lint_text(
      "rule_sets:\n"
      "  - {name: first, platforms: [windows], mode: full-device, default: tunnel}\n"
      "  - {name: second, platforms: [windows, macos], mode: full-device, default: block, rules: "
      "[{action: tunnel, destinations: [a.example]}]}\n");
  ASSERT_EQ(f.size(), 2U) << dump(f);
  EXPECT_EQ(f[0].code, "empty-set");
  EXPECT_EQ(f[1].code, "unreachable-set");
  EXPECT_NE(f[1].where.message.find("never used on windows: 'first' comes first"),
            std::string::npos);
  EXPECT_EQ(f[1].where.message.find("macos"), std::string::npos);
}

}  // namespace
}  // namespace tunnelgate::dtr
