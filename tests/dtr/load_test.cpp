// Loading rules files: every error names file, line, column, key path and what was expected;
// a file with any error yields no policy at all.
#include <gtest/gtest.h>

#include "dtr/dtr.hpp"

namespace tunnelgate::dtr {
namespace {

struct expected_error {
  int line;
  int column;
  std::string_view text;  // must appear in the message
};

void expect_errors(std::string_view yaml, std::initializer_list<expected_error> want) {
  const auto r = load_rules(yaml, "bad.yaml");
  EXPECT_FALSE(r);
  EXPECT_EQ(r.value, nullptr) << "a bad file must never half-succeed";
  ASSERT_EQ(r.errors.size(), want.size()) << [&] {
    std::string all;
    for (const auto& e : r.errors)
      all += e.to_string() + "\n";
    return all;
  }();
  std::size_t i = 0;
  for (const auto& w : want) {
    const auto& e = r.errors[i++];
    EXPECT_EQ(e.file, "bad.yaml");
    EXPECT_EQ(e.line, w.line) << e.to_string();
    EXPECT_EQ(e.column, w.column) << e.to_string();
    EXPECT_NE(e.message.find(w.text), std::string::npos) << e.to_string() << "\nwanted: " << w.text;
  }
}

constexpr std::string_view header =
    "rule_sets:\n  - name: s\n    platforms: [ios]\n"
    "    mode: full-device\n    default: block\n    rules:\n";

std::string with_rules(std::string_view rules) {
  return std::string(header) + std::string(rules);
}

TEST(Load, UnknownKeyAnywhere) {
  expect_errors("rule_set: []\n",
                {{1, 1, "rule_set: unknown key; expected one of: version, proxies, rule_sets"},
                 {1, 1, "rule_sets: missing"}});
  expect_errors(with_rules("      - action: tunnel\n        destination: [a.example]\n"),
                {{8, 9, "rule_sets[0].rules[0].destination: unknown key"},
                 {7, 9, "needs `destinations:` or a `preset:`"}});
  expect_errors(
      "rule_sets:\n  - name: s\n    platform: [ios]\n    mode: full-device\n    default: block\n",
      {{3, 5, "rule_sets[0].platform: unknown key"}, {2, 5, "rule_sets[0].platforms: missing"}});
}

TEST(Load, UnknownAction) {
  expect_errors(with_rules("      - action: tunel\n        destinations: [a.example]\n"),
                {{7, 17,
                  "rule_sets[0].rules[0].action: unknown action 'tunel'; expected tunnel, proxy, "
                  "bypass or block"}});
}

TEST(Load, UnknownPlatformModeAndDefault) {
  expect_errors(
      "rule_sets:\n  - name: s\n    platforms: [ios, blackberry]\n    mode: sometimes\n    "
      "default: maybe\n",
      {{3, 22, "unknown platform 'blackberry'"},
       {4, 11, "unknown mode; expected per-app or full-device"},
       {5, 14, "unknown action; expected tunnel, bypass or block"}});
}

TEST(Load, ProxyNotDefined) {
  expect_errors(
      "proxies:\n  corp: https://p.example:3128\n" +
          with_rules(
              "      - action: proxy\n        proxy: crop\n        destinations: [a.example]\n"),
      {{10, 16,
        "rule_sets[0].rules[0].proxy: proxy 'crop' is not defined under `proxies:` (defined: "
        "corp)"}});
}

TEST(Load, ProxyRuleWithoutProxy) {
  expect_errors(with_rules("      - action: proxy\n        destinations: [a.example]\n"),
                {{7, 9, "rule_sets[0].rules[0].proxy: a proxy rule needs `proxy: <name>`"}});
}

TEST(Load, ProxyOnANonProxyRule) {
  expect_errors(
      "proxies:\n  corp: http://p.example:3128\n" +
          with_rules(
              "      - action: tunnel\n        proxy: corp\n        destinations: [a.example]\n"),
      {{10, 16, "`proxy` only goes with action: proxy"}});
}

TEST(Load, DefaultCannotBeProxy) {
  expect_errors(
      "rule_sets:\n  - name: s\n    platforms: [ios]\n    mode: full-device\n    default: proxy\n",
      {{5, 14, "the default action must be tunnel, bypass or block"}});
}

TEST(Load, BadCidr) {
  expect_errors(
      with_rules("      - action: block\n        destinations: [10.0.0.1/8, 10.0.0.0/40]\n"),
      {{8, 24, "rule_sets[0].rules[0].destinations[0]: '10.0.0.1/8': bad CIDR"},
       {8, 36, "rule_sets[0].rules[0].destinations[1]: '10.0.0.0/40': bad CIDR"}});
}

TEST(Load, PortOutOfRange) {
  expect_errors(
      with_rules("      - action: block\n        destinations:\n          - a.example:70000\n"),
      {{9, 13, "'a.example:70000': port out of range: ports are 1-65535"}});
}

TEST(Load, EmptyDestinationList) {
  expect_errors(with_rules("      - action: block\n        destinations: []\n"),
                {{8, 23, "rule_sets[0].rules[0].destinations: the destination list is empty"}});
}

TEST(Load, ProxyUrlsAreCheckedAndNeverCarryCredentials) {
  expect_errors(
      "proxies:\n  a: ftp://p.example:21\n  b: https://user:pw@p.example:3128\n  c: "
      "http://p.example:99999\n" +
          with_rules("      - action: block\n        destinations: [x.example]\n"),
      {{2, 6, "bad proxy URL 'ftp://p.example:21'"},
       {3, 6, "credentials never go in the rules file"},
       {4, 6, "bad proxy URL"}});
}

TEST(Load, PerAppAndFullDeviceConsistency) {
  expect_errors(
      "rule_sets:\n  - name: a\n    platforms: [ios]\n    mode: per-app\n    default: block\n"
      "  - name: a\n    platforms: [ios]\n    mode: full-device\n    apps: [x]\n    default: "
      "block\n",
      {{2, 5, "a per-app rule set needs `apps: [...]`"},
       {6, 5, "rule set name 'a' is used twice"},
       {6, 5, "a full-device rule set applies to every app"}});
}

TEST(Load, YamlSyntaxErrorHasAPosition) {
  const auto r = load_rules("rule_sets:\n  - name: [unclosed\n", "bad.yaml");
  ASSERT_FALSE(r);
  ASSERT_EQ(r.errors.size(), 1U);
  EXPECT_GT(r.errors[0].line, 0);
  EXPECT_NE(r.errors[0].message.find("YAML syntax error"), std::string::npos);
}

TEST(Load, RepeatedKeyIsAnError) {
  expect_errors(
      "rule_sets:\n  - name: s\n    name: t\n    platforms: [ios]\n    mode: full-device\n    "
      "default: block\n",
      {{3, 5, "rule_sets[0].name: key given twice"}});
}

TEST(Load, AllErrorsAreReportedAtOnce) {
  const auto r = load_rules(
      with_rules("      - action: nope\n        destinations: [a..b, 1.2.3.4/99, 'x:0']\n"),
      "bad.yaml");
  EXPECT_FALSE(r);
  EXPECT_EQ(r.errors.size(), 4U);
  EXPECT_EQ(r.errors[0].to_string().rfind("bad.yaml:7:", 0), 0U) << r.errors[0].to_string();
}

TEST(Load, CommaSeparatedLineLikeTheWorkspaceOneConsole) {
  const auto r = load_rules(with_rules("      - action: tunnel\n        destinations: "
                                       "login.microsoftonline.com,*.windows.net,10.0.0.0/8\n"),
                            "ok.yaml");
  ASSERT_TRUE(r);
  const auto& dests = r.value->spec().rule_sets[0].rules[0].destinations;
  ASSERT_EQ(dests.size(), 3U);
  EXPECT_EQ(dests[1].text(), "*.windows.net");
  EXPECT_EQ(r.value->evaluate({"x.windows.net", 443, platform::ios, ""}).act, action::tunnel);
}

TEST(Load, PresetErrors) {
  expect_errors(with_rules("      - action: tunnel\n        preset: {name: okta-entra-login}\n"),
                {{8, 17, "okta_tenant: missing"}});
  expect_errors(with_rules("      - action: tunnel\n        preset: {name: zscaler}\n"),
                {{8, 24, "unknown preset"}});
}

TEST(Load, CompileValidatesProgrammaticSpecsToo) {
  policy_spec spec;
  spec.origin = "api";
  rule_set s;
  s.name = "s";
  s.platforms = {platform::ios};
  s.m = mode::full_device;
  s.default_action = action::block;
  rule r;
  r.act = action::proxy;
  r.proxy = "ghost";
  s.rules.push_back(r);
  spec.rule_sets.push_back(s);
  const auto out = compile(spec);
  EXPECT_FALSE(out);
  ASSERT_EQ(out.errors.size(), 2U);
  EXPECT_NE(out.errors[0].message.find("destination list is empty"), std::string::npos);
  EXPECT_NE(out.errors[1].message.find("'ghost' is not defined"), std::string::npos);
}

}  // namespace
}  // namespace tunnelgate::dtr
