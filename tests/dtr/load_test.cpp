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

// Rule-set names end up in PAC comments, profiles and logs; a line terminator there would end
// the PAC's comment and let the file define its own FindProxyForURL.
TEST(Load, NamesWithLineBreaksOrControlCharactersAreRefused) {
  constexpr std::string_view set_tail =
      "\n    platforms: [linux]\n    mode: per-app\n    apps: [a]\n    default: block\n";
  std::string yaml = "rule_sets:\n";
  for (const char* name :
       {R"("lf\nfunction FindProxyForURL(u, h) { return 'DIRECT'; }")", R"("cr\rx")",
        R"("ls\u2028x")", "\"ps\u2029x\"", R"("tab\tx")", R"("nul\0x")", R"("del\x7fx")",
        R"("nel\x85x")", "\"rlo\u202ex\"", R"("lri\u2066x")", R"("ok */ ' \" \\ name")"}) {
    yaml += "  - name: " + std::string(name) + std::string(set_tail);
  }
  // Plain YAML scalars carry the raw characters (YAML itself refuses most C0 controls).
  yaml += "  - name: raw\u2028name" + std::string(set_tail);
  expect_errors(
      yaml,
      {{2, 11,
        "rule_sets[0].name: the name 'lf\\u000Afunction FindProxyForURL(u, h) { return "
        "'DIRECT'; }' contains U+000A (a control character); names and app ids may not "
        "contain control characters, line or paragraph separators (U+2028, U+2029)"},
       {7, 11, "rule_sets[1].name: the name 'cr\\u000Dx' contains U+000D (a control character)"},
       {12, 11, "rule_sets[2].name: the name 'ls\\u2028x' contains U+2028 (a line separator)"},
       {17, 11, "contains U+2029 (a paragraph separator)"},
       {22, 11, "contains U+0009 (a control character)"},
       {27, 11, "contains U+0000 (a control character)"},
       {32, 11, "contains U+007F (a control character)"},
       {37, 11, "contains U+0085 (a control character)"},
       {42, 11, "contains U+202E (a bidirectional formatting character)"},
       {47, 11, "contains U+2066 (a bidirectional formatting character)"},
       {57, 11, "rule_sets[11].name: the name 'raw\\u2028name' contains U+2028"}});
}

TEST(Load, AppIdsWithControlCharactersAreRefused) {
  expect_errors(
      "rule_sets:\n  - name: s\n    platforms: [ios]\n    mode: per-app\n"
      "    apps: [com.ok, \"com.bad\\nx\", \"C:\\\\Program Files\\\\B\u00fcro\\\\a.exe\", "
      "\"com.\\u2029x\"]\n    default: block\n",
      {{5, 20, "rule_sets[0].apps[1]: the app id 'com.bad\\u000Ax' contains U+000A"},
       {5, 69, "rule_sets[0].apps[3]: the app id 'com.\\u2029x' contains U+2029"}});
}

TEST(Load, InvalidUtf8InANameIsRefused) {
  // yaml-cpp passes bytes through; the name must still be text.
  const auto r = load_rules(
      "rule_sets:\n  - name: \"bad\xff\"\n    platforms: [ios]\n    mode: full-device\n"
      "    default: block\n",
      "bad.yaml");
  ASSERT_FALSE(r);
  ASSERT_EQ(r.errors.size(), 1U);
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_NE(r.errors[0].message.find("0xFF (invalid UTF-8)"), std::string::npos)
      << r.errors[0].to_string();
}

TEST(Load, ProgrammaticNamesAreCheckedByCompile) {
  policy_spec spec;
  spec.origin = "api";
  proxy_def px;
  px.name = "p\nx";
  px.url = "http://p.example:3128";
  px.host = "p.example";
  px.port = 3128;
  spec.proxies.push_back(px);
  rule_set s;
  s.name = "s\u2028x";
  s.platforms = {platform::ios};
  s.m = mode::per_app;
  s.apps = {"ok", "a\rb"};
  s.default_action = action::block;
  spec.rule_sets.push_back(s);
  const auto out = compile(spec);
  EXPECT_FALSE(out);
  ASSERT_EQ(out.errors.size(), 3U);
  EXPECT_NE(out.errors[0].message.find("proxies.p\\u000Ax: the proxy name"), std::string::npos)
      << out.errors[0].message;
  EXPECT_NE(out.errors[1].message.find("rule_sets[0].name: the name 's\\u2028x' contains U+2028"),
            std::string::npos)
      << out.errors[1].message;
  EXPECT_NE(out.errors[2].message.find("rule_sets[0].apps[1]: the app id 'a\\u000Db'"),
            std::string::npos)
      << out.errors[2].message;
  for (const auto& e : out.errors) {
    EXPECT_EQ(e.to_string().find_first_of("\r\n"), std::string::npos) << e.to_string();
  }
}

TEST(Load, StringSuffixInsideAnInternationalLabelIsRefused) {
  expect_errors(
      with_rules("      - action: block\n        destinations: [\"*.bücher.de\", \"*ücher.de\", "
                 "bücher.de, \"*xn--bcher-kva.de\"]\n"
                 "      - action: block\n        destinations: \"a.example,*ÜCHER.de:443\"\n"),
      {{8, 40,
        "rule_sets[0].rules[0].destinations[1]: '*ücher.de': a '*suffix' wildcard cannot start "
        "with a non-ASCII or 'xn--' label"},
       {8, 66, "rule_sets[0].rules[0].destinations[3]: '*xn--bcher-kva.de': a '*suffix'"},
       {10, 33, "'*ÜCHER.de:443': a '*suffix' wildcard"}});
  const auto r = load_rules(
      with_rules("      - action: block\n        destinations: [\"*ücher.de\"]\n"), "bad.yaml");
  ASSERT_EQ(r.errors.size(), 1U);
  const auto text = r.errors[0].to_string();
  EXPECT_EQ(text.rfind("bad.yaml:8:24: ", 0), 0U) << text;
  EXPECT_NE(text.find("write whole labels, e.g. '*.bücher.de' for the subdomains and 'bücher.de' "
                      "for the name itself"),
            std::string::npos)
      << text;
}

TEST(Load, AmbiguousIpv4CompatibleNetworkIsRefused) {
  expect_errors(
      with_rules(
          "      - action: block\n        destinations: [\"::ffff:10.0.0.0/104\", \"::/96\", "
          "\"::/127\"]\n"),
      {{8, 47, "rule_sets[0].rules[0].destinations[1]: '::/96': ambiguous IPv6 network"}});
}

TEST(Load, ProxyUrlsWithBlanksAreRefused) {
  expect_errors("proxies:\n  a: \"http://p.example:3128\\t\"\n  b: \" http://p.example:3128\"\n" +
                    with_rules("      - action: block\n        destinations: [x.example]\n"),
                {{2, 6, "bad proxy URL 'http://p.example:3128\\u0009'"}, {3, 6, "bad proxy URL"}});
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
