// Exports: the JSON profile's shape, and the PAC file evaluated by a real JavaScript engine
// (node) agreeing with policy::evaluate on every case.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "dtr/dtr.hpp"
#include "dtr/text.hpp"
#include "support/temp_dir.hpp"

namespace tunnelgate::dtr {
namespace {

constexpr std::string_view rules_yaml = R"(proxies:
  corp: https://proxy.corp.example:3128
  legacy: http://192.0.2.80:8080
  v6: http://[2001:db8::80]:3128
rule_sets:
  - name: browser
    platforms: [macos, windows]
    mode: full-device
    default: bypass
    rules:
      - action: tunnel
        preset: {name: okta-entra-login, okta_tenant: acme}
      - action: block
        destinations: ["*.ads.example", "198.51.100.0/24", "[2001:db8:bad::/48]:443"]
      - action: proxy
        proxy: corp
        destinations: ["*corp.example:443", "10.0.0.0/8:1-1024"]
      - action: proxy
        proxy: legacy
        destinations: ["legacy.example:80"]
      - action: proxy
        proxy: v6
        destinations: ["2001:db8::/32"]
      - action: tunnel
        destinations: ["*.tunnel.example", "::ffff:203.0.113.0/120"]
  - name: okta-only
    platforms: [ios]
    mode: per-app
    apps: [com.apple.mobilesafari]
    default: block
    rules:
      - action: tunnel
        destinations: [acme.okta.com]
)";

std::shared_ptr<const policy> load() {
  auto r = load_rules(rules_yaml, "export.yaml");
  EXPECT_TRUE(r) << (r.errors.empty() ? "" : r.errors.front().to_string());
  return r.value;
}

/// True for the schemes the PAC sends DIRECT before any rule (the gateway forwards no plain HTTP).
bool plain_scheme(std::string_view url) {
  std::string lower(url.substr(0, 5));
  for (auto& ch : lower)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return lower.starts_with("http:") || lower.starts_with("ws:");
}

/// What the PAC must answer for `url`: DIRECT for http: and ws:, otherwise the gateway's decision.
std::string expected_pac_answer(const policy& p, std::string_view url, const flow& f,
                                std::string_view gateway) {
  if (plain_scheme(url)) return "DIRECT";
  const auto d = p.evaluate(f);
  switch (d.act) {
    case action::tunnel:
      return "HTTPS " + std::string(gateway);
    case action::bypass:
      return "DIRECT";
    case action::block:
      return "PROXY 127.0.0.1:9";
    case action::proxy: {
      const bool v6 = d.proxy->host.find(':') != std::string::npos;
      const auto hp =
          (v6 ? "[" + d.proxy->host + "]" : d.proxy->host) + ":" + std::to_string(d.proxy->port);
      return (d.proxy->tls ? "HTTPS " : "PROXY ") + hp;
    }
  }
  return "?";
}

using tunnelgate::testing::temp_dir;

/// Runs pac_eval.js on `pac` for the (url, host) cases; returns node's answers.
std::vector<std::string> run_pac(const std::string& pac,
                                 const std::vector<std::pair<std::string, std::string>>& cases) {
  temp_dir dir;
  const auto pac_file = dir.path() / "proxy.pac";
  const auto in_file = dir.path() / "cases.json";
  const auto out_file = dir.path() / "out.json";
  std::ofstream(pac_file) << pac;
  nlohmann::json in = nlohmann::json::array();
  for (const auto& [url, host] : cases)
    in.push_back({{"url", url}, {"host", host}});
  std::ofstream(in_file) << in.dump();
  const std::string cmd = "node '" TUNNELGATE_PAC_EVAL "' '" + pac_file.string() + "' < '" +
                          in_file.string() + "' > '" + out_file.string() + "'";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << "node failed (is nodejs installed? tools/setup installs it): " << cmd;
  std::ifstream out(out_file);
  std::stringstream ss;
  ss << out.rdbuf();
  if (rc != 0) return {};
  return nlohmann::json::parse(ss.str()).get<std::vector<std::string>>();
}

TEST(Pac, NodeEvaluationAgreesWithTheGatewayOnEveryCase) {
  const auto p = load();
  constexpr std::string_view gw = "gw.example:8443";
  const auto pac = to_pac(*p, platform::windows, gw);
  ASSERT_FALSE(pac.empty());
  EXPECT_EQ(pac.find("dnsResolve"), std::string::npos);
  EXPECT_EQ(pac.find("isInNet"), std::string::npos);

  struct c {
    std::string url, host;
    std::uint16_t port;
  };
  const std::vector<c> cases = {
      {"https://acme.okta.com/", "acme.okta.com", 443},
      {"https://ACME.okta.com./", "ACME.okta.com.", 443},
      {"https://acme-admin.okta.com:8443/", "acme-admin.okta.com", 8443},
      {"https://login.microsoftonline.com/", "login.microsoftonline.com", 443},
      {"http://device.login.microsoftonline.com/", "device.login.microsoftonline.com", 80},
      {"https://other.okta.com/", "other.okta.com", 443},
      {"https://x.ads.example/", "x.ads.example", 443},
      {"https://ads.example/", "ads.example", 443},
      {"https://www.corp.example/", "www.corp.example", 443},
      {"https://notcorp.example/", "notcorp.example", 443},
      {"http://www.corp.example/", "www.corp.example", 80},
      {"https://legacy.example:80/", "legacy.example", 80},
      {"https://legacy.example/", "legacy.example", 443},
      {"http://10.1.2.3:1024/", "10.1.2.3", 1024},
      {"http://10.1.2.3:1025/", "10.1.2.3", 1025},
      {"https://198.51.100.9/", "198.51.100.9", 443},
      {"https://198.51.101.9/", "198.51.101.9", 443},
      {"https://[2001:db8:bad::1]/", "[2001:db8:bad::1]", 443},
      {"http://[2001:db8:bad::1]/", "2001:db8:bad::1", 80},
      {"https://[2001:db8::42]/", "2001:db8::42", 443},
      {"https://[2001:db9::42]/", "2001:db9::42", 443},
      {"https://[::ffff:203.0.113.9]/", "::ffff:203.0.113.9", 443},
      {"https://[::ffff:203.0.114.9]/", "::ffff:203.0.114.9", 443},
      {"https://deep.a.tunnel.example/", "deep.a.tunnel.example", 443},
      {"wss://a.tunnel.example/socket", "a.tunnel.example", 443},
      {"ftp://files.example/", "files.example", 21},
      {"https://user@acme.okta.com:444/path?q", "acme.okta.com", 444},
  };
  std::vector<std::pair<std::string, std::string>> in;
  for (const auto& x : cases)
    in.emplace_back(x.url, x.host);
  const auto got = run_pac(pac, in);
  ASSERT_EQ(got.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto want = expected_pac_answer(
        *p, cases[i].url, {cases[i].host, cases[i].port, platform::windows, ""}, gw);
    EXPECT_EQ(got[i], want) << cases[i].url;
  }
  // Spot checks so the comparison above is known to cover every action.
  EXPECT_EQ(got[0], "HTTPS gw.example:8443");
  EXPECT_EQ(got[4], "DIRECT");  // http: of a tunnelled host
  EXPECT_EQ(got[5], "DIRECT");
  EXPECT_EQ(got[6], "PROXY 127.0.0.1:9");
  EXPECT_EQ(got[8], "HTTPS proxy.corp.example:3128");
  EXPECT_EQ(got[11], "PROXY 192.0.2.80:8080");
  EXPECT_EQ(got[19], "PROXY [2001:db8::80]:3128");
}

TEST(Pac, PerAppSetForABrowserApp) {
  const auto p = load();
  const auto pac = to_pac(*p, platform::ios, "gw.example:443", "com.apple.mobilesafari");
  const auto got = run_pac(
      pac, {{"https://acme.okta.com/", "acme.okta.com"}, {"https://example.com/", "example.com"}});
  ASSERT_EQ(got.size(), 2U);
  EXPECT_EQ(got[0], "HTTPS gw.example:443");
  EXPECT_EQ(got[1], "PROXY 127.0.0.1:9");
  // ios has no full-device set: no PAC without an app.
  EXPECT_TRUE(to_pac(*p, platform::ios, "gw.example:443").empty());
}

// The gateway tunnels only CONNECT: a browser that sent an http: URL to it would send an
// absolute-form GET and get 400 use-connect. So http: and ws: go DIRECT before any rule,
// whatever the rule (tunnel, proxy, block) or the default says, and the PAC says why.
TEST(Pac, PlainHttpAndWebSocketGoDirectBeforeAnyRule) {
  constexpr std::string_view yaml = R"(proxies:
  legacy: http://192.0.2.80:8080
rule_sets:
  - name: laptops
    platforms: [windows]
    mode: full-device
    default: tunnel
    rules:
      - action: block
        destinations: [ads.example]
      - action: proxy
        proxy: legacy
        destinations: [legacy.example]
      - action: tunnel
        destinations: [acme.okta.com, 10.0.0.0/8]
)";
  const auto r = load_rules(yaml, "plain.yaml");
  ASSERT_TRUE(r) << (r.errors.empty() ? "" : r.errors.front().to_string());
  const auto pac = to_pac(*r.value, platform::windows, "gw.example:8443");
  ASSERT_FALSE(pac.empty());
  EXPECT_NE(pac.find("if (tgPlain(url)) return \"DIRECT\";"), std::string::npos) << pac;
  EXPECT_LT(pac.find("tgPlain(url)"), pac.find("// rule 1")) << pac;
  EXPECT_NE(pac.find("tunnels only CONNECT"), std::string::npos) << pac;
  const auto got = run_pac(pac, {{"http://acme.okta.com/login", "acme.okta.com"},
                                 {"HTTP://acme.okta.com:8080/", "acme.okta.com"},
                                 {"ws://acme.okta.com/socket", "acme.okta.com"},
                                 {"http://10.1.2.3/", "10.1.2.3"},
                                 {"http://legacy.example/", "legacy.example"},
                                 {"http://ads.example/", "ads.example"},
                                 {"http://anything.example/", "anything.example"},
                                 {"https://acme.okta.com/", "acme.okta.com"},
                                 {"wss://acme.okta.com/socket", "acme.okta.com"},
                                 {"https://10.1.2.3/", "10.1.2.3"},
                                 {"https://legacy.example/", "legacy.example"},
                                 {"https://ads.example/", "ads.example"},
                                 {"https://anything.example/", "anything.example"},
                                 {"httpx://acme.okta.com/", "acme.okta.com"}});
  const std::vector<std::string> want = {"DIRECT",
                                         "DIRECT",
                                         "DIRECT",
                                         "DIRECT",
                                         "DIRECT",
                                         "DIRECT",
                                         "DIRECT",
                                         "HTTPS gw.example:8443",
                                         "HTTPS gw.example:8443",
                                         "HTTPS gw.example:8443",
                                         "PROXY 192.0.2.80:8080",
                                         "PROXY 127.0.0.1:9",
                                         "HTTPS gw.example:8443",
                                         "HTTPS gw.example:8443"};
  EXPECT_EQ(got, want);
}

TEST(Pac, MappedHostsAreDecidedLikeTheirIpv4Address) {
  // The browser may hand FindProxyForURL an IPv4 address as an IPv4-mapped or IPv4-compatible
  // IPv6 literal, in any spelling; the PAC must decide it like the gateway does: as IPv4.
  const auto p = load();
  constexpr std::string_view gw = "gw.example:8443";
  const auto pac = to_pac(*p, platform::windows, gw);
  struct c {
    std::string url, host;
    std::uint16_t port;
  };
  const std::vector<c> cases = {
      {"https://[::ffff:198.51.100.9]/", "::ffff:198.51.100.9", 443},
      {"https://[::ffff:c633:6409]/", "[::ffff:c633:6409]", 443},
      {"https://[::198.51.100.9]/", "::198.51.100.9", 443},
      {"https://[::c633:6409]/", "::C633:6409", 443},
      {"https://[0:0:0:0:0:ffff:c633:6409]/", "0:0:0:0:0:ffff:c633:6409", 443},
      {"https://[::ffff:10.1.2.3]:1024/", "::ffff:10.1.2.3", 1024},
      {"https://[::ffff:a01:203]:1025/", "::ffff:a01:203", 1025},
      {"https://[::a01:203]:80/", "::a01:203", 80},
      {"https://[::ffff:cb00:7109]/", "::ffff:cb00:7109", 443},
      {"https://[::203.0.113.9]/", "::203.0.113.9", 443},
      {"https://203.0.113.9/", "203.0.113.9", 443},
      {"https://[::ffff:203.0.114.9]/", "::ffff:203.0.114.9", 443},
      {"https://[::1]/", "::1", 443},
      {"https://[::]/", "::", 443},
      {"https://[::2]/", "::2", 443},
      {"https://[::fffe:c633:6409]/", "::fffe:c633:6409", 443},
      {"https://[::1:c633:6409]/", "::1:c633:6409", 443},
      {"https://[64:ff9b::c633:6409]/", "64:ff9b::c633:6409", 443},
      {"https://[2001:db8:bad::c633:6409]/", "2001:db8:bad::c633:6409", 443},
  };
  std::vector<std::pair<std::string, std::string>> in;
  for (const auto& x : cases)
    in.emplace_back(x.url, x.host);
  const auto got = run_pac(pac, in);
  ASSERT_EQ(got.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto want = expected_pac_answer(
        *p, cases[i].url, {cases[i].host, cases[i].port, platform::windows, ""}, gw);
    EXPECT_EQ(got[i], want) << cases[i].host;
  }
  // 198.51.100.0/24 is blocked in every spelling; 10.0.0.0/8:1-1024 goes to the corp proxy.
  for (std::size_t i = 0; i < 5; ++i)
    EXPECT_EQ(got[i], "PROXY 127.0.0.1:9") << cases[i].host;
  EXPECT_EQ(got[5], "HTTPS proxy.corp.example:3128");
  EXPECT_EQ(got[6], "DIRECT");
  EXPECT_EQ(got[7], "HTTPS proxy.corp.example:3128");
  // "::ffff:203.0.113.0/120" in the rules file is 203.0.113.0/24, whatever the host's spelling.
  EXPECT_EQ(got[8], "HTTPS gw.example:8443");
  EXPECT_EQ(got[9], "HTTPS gw.example:8443");
  EXPECT_EQ(got[10], "HTTPS gw.example:8443");
  // Plain IPv6 (and 2001:db8::/32 to the v6 proxy) stays IPv6.
  EXPECT_EQ(got[18], "PROXY 127.0.0.1:9");
}

/// Lines of `pac` that define FindProxyForURL (a function statement at the start of a line).
int definitions(const std::string& pac) {
  int n = 0;
  std::istringstream in(pac);
  for (std::string line; std::getline(in, line);)
    n += line.rfind("function FindProxyForURL", 0) == 0;
  return n;
}

bool printable_ascii(const std::string& text) {
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c != '\n' && (c < 0x20 || c > 0x7e)) return false;
  }
  return true;
}

// The file name and the rule-set name go into `//` comments. A line terminator in them (\n, \r,
// U+2028, U+2029 all end a JavaScript comment) would let them define a FindProxyForURL of their
// own that sends everything DIRECT. Names are refused at load (load_test); the origin comes from
// the caller. Both are escaped at output.
TEST(Pac, HostileTextCannotChangeFindProxyForURL) {
  constexpr std::string_view yaml = R"(rule_sets:
  - name: "evil */ \" ' \\ /* name"
    platforms: [windows]
    mode: full-device
    default: block
    rules:
      - action: tunnel
        destinations: [acme.okta.com]
)";
  const std::string payload = R"(function FindProxyForURL(url, host) { return "DIRECT"; })";
  for (const std::string& t :
       std::vector<std::string>{"\n", "\r", "\r\n", "\u2028", "\u2029", "*/", "\"", "\\", "'",
                                std::string(1, '\0'), "\x85", "\xe2\x80", "\xff"}) {
    const std::string origin = "rules" + t + payload + t + "//" + t;
    const auto r = load_rules(yaml, origin);
    ASSERT_TRUE(r) << (r.errors.empty() ? "" : r.errors.front().to_string());
    const auto pac = to_pac(*r.value, platform::windows, "gw.example:8443");
    ASSERT_FALSE(pac.empty());
    EXPECT_TRUE(printable_ascii(pac)) << pac;
    EXPECT_EQ(definitions(pac), 1) << pac;
    EXPECT_NE(pac.find("rule set 'evil */ \\\" ' \\\\ /* name'"), std::string::npos) << pac;
    const auto got = run_pac(pac, {{"https://acme.okta.com/", "acme.okta.com"},
                                   {"https://example.com/", "example.com"}});
    ASSERT_EQ(got.size(), 2U) << pac;
    EXPECT_EQ(got[0], "HTTPS gw.example:8443");
    EXPECT_EQ(got[1], "PROXY 127.0.0.1:9");
  }
}

// The gateway comes from the client's Host header: anything but HOST[:PORT] gets no PAC at all
// (the answer string could otherwise gain a "; DIRECT" fallback, or the code a new function).
TEST(Pac, GatewayMustBeHostAndPort) {
  const auto p = load();
  for (const std::string& gw : std::vector<std::string>{
           "gw.example:8443\n}\nfunction FindProxyForURL(u, h) { return \"DIRECT\"; }\n//",
           "gw.example:8443\u2028x",
           "gw.example:8443\u2029x",
           "gw.example:8443; DIRECT",
           "gw.example:8443;DIRECT",
           "gw.example\";",
           "gw\\x",
           "gw x",
           "gw */",
           "",
           ":443",
           "gw.example:",
           "gw.example:0",
           "gw.example:65536",
           "gw.example:443:1",
           "[::1",
           "[::1]x",
           "[::1]:",
           "[10.0.0.1]:443",
           "::1",
           "[fe80::1%eth0]:443",
           "[[::1]]:443",
           "bücher.example:443",
           "127.1:443",
           "gw..example",
           "gw.example:+443",
           "gw.example:0443x",
           std::string("gw\0x", 4)}) {
    EXPECT_FALSE(valid_pac_gateway(gw)) << gw;
    EXPECT_TRUE(to_pac(*p, platform::windows, gw).empty()) << gw;
  }
  for (const std::string gw :
       {"gw", "gw.example:8443", "GW.Example.:443", "gw_1.example:1", "192.0.2.1:8443", "192.0.2.1",
        "[2001:db8::1]:8443", "[::1]", "[::ffff:192.0.2.1]:443", "xn--bcher-kva.example:65535"}) {
    EXPECT_TRUE(valid_pac_gateway(gw)) << gw;
    const auto pac = to_pac(*p, platform::windows, gw);
    const auto got = run_pac(pac, {{"https://acme.okta.com/", "acme.okta.com"}});
    ASSERT_EQ(got.size(), 1U) << gw;
    EXPECT_EQ(got[0], "HTTPS " + gw);
  }
}

TEST(Pac, JsEscapeYieldsTheSameStringInAJavaScriptEngine) {
  const std::vector<std::string> texts = {"plain",
                                          "a\nb",
                                          "a\rb",
                                          "a\u2028b",
                                          "a\u2029b",
                                          "*/ /* //",
                                          "\"'\\",
                                          std::string("nul\0x", 5),
                                          "\x01\x1f\x7f",
                                          "\u0085 nel",
                                          "B\u00fcro \u202e rlo",
                                          "emoji \U0001F600",
                                          "</script>"};
  std::string pac = "function FindProxyForURL(url, host) {\n  var s = [";
  for (const auto& t : texts) {
    const auto e = detail::js_escape(t);
    EXPECT_TRUE(printable_ascii(e)) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);
    pac += "\"" + e + "\", ";
  }
  pac += "];\n  return s[parseInt(host, 10)];\n}\n";
  std::vector<std::pair<std::string, std::string>> in;
  for (std::size_t i = 0; i < texts.size(); ++i)
    in.emplace_back("https://x/", std::to_string(i));
  const auto got = run_pac(pac, in);
  ASSERT_EQ(got.size(), texts.size()) << pac;
  for (std::size_t i = 0; i < texts.size(); ++i)
    EXPECT_EQ(got[i], texts[i]) << detail::js_escape(texts[i]);
  // Invalid UTF-8 cannot be carried: each bad byte becomes U+FFFD.
  EXPECT_EQ(detail::js_escape("a\xff"
                              "b\xc3"),
            "a\\uFFFDb\\uFFFD");
  EXPECT_EQ(detail::js_escape("\xed\xa0\x80"), "\\uFFFD\\uFFFD\\uFFFD");  // no surrogates
  EXPECT_EQ(detail::js_escape("\xc0\xaf"), "\\uFFFD\\uFFFD");             // no overlongs
}

TEST(Profile, IsAsciiJsonThatCarriesTheSameText) {
  constexpr std::string_view yaml = R"(rule_sets:
  - name: "Büro */ \" ' \\ name"
    platforms: [windows]
    mode: per-app
    apps: ['C:\Program Files\Büro\app.exe', com.example]
    default: block
    rules:
      - action: tunnel
        destinations: [bücher.de, "*.bücher.de"]
)";
  const auto r = load_rules(yaml, "profile.yaml");
  ASSERT_TRUE(r) << (r.errors.empty() ? "" : r.errors.front().to_string());
  const auto text = to_profile_json(*r.value, platform::windows);
  EXPECT_TRUE(printable_ascii(text)) << text;
  const auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["rule_sets"][0]["name"], "Büro */ \" ' \\ name");
  EXPECT_EQ(j["rule_sets"][0]["apps"][0], "C:\\Program Files\\Büro\\app.exe");
  EXPECT_EQ(j["rule_sets"][0]["rules"][0]["destinations"][1], "*.xn--bcher-kva.de");
  // A refused flow's host is echoed even when it is not UTF-8, without throwing.
  const flow f{"bad\xff.example", 443, platform::windows, "com.example"};
  const auto d = r.value->evaluate(f);
  EXPECT_EQ(d.refusal, "bad-host");
  const auto dj = nlohmann::json::parse(decision_json(d, f));
  EXPECT_EQ(dj["host"], "bad\uFFFD.example");
}

TEST(Profile, ListsTheSetsOfThePlatformWithTheirProxies) {
  const auto p = load();
  const auto j = nlohmann::json::parse(to_profile_json(*p, platform::windows));
  EXPECT_EQ(j["format"], "tunnelgate-dtr-profile");
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["platform"], "windows");
  ASSERT_EQ(j["rule_sets"].size(), 1U);
  const auto& s = j["rule_sets"][0];
  EXPECT_EQ(s["name"], "browser");
  EXPECT_EQ(s["mode"], "full-device");
  EXPECT_EQ(s["default"], "bypass");
  ASSERT_EQ(s["rules"].size(), 6U);
  EXPECT_EQ(s["rules"][0]["rank"], 1);
  EXPECT_EQ(s["rules"][0]["action"], "tunnel");
  EXPECT_EQ(s["rules"][0]["destinations"][0], "acme.okta.com");
  EXPECT_EQ(s["rules"][2]["proxy"], "corp");
  EXPECT_EQ(s["rules"][2]["destinations"][1], "10.0.0.0/8:1-1024");
  EXPECT_EQ(j["proxies"]["corp"]["url"], "https://proxy.corp.example:3128");
  EXPECT_EQ(j["proxies"]["legacy"]["tls"], false);

  const auto ios = nlohmann::json::parse(to_profile_json(*p, platform::ios));
  ASSERT_EQ(ios["rule_sets"].size(), 1U);
  EXPECT_EQ(ios["rule_sets"][0]["apps"][0], "com.apple.mobilesafari");
  EXPECT_TRUE(ios["proxies"].empty());
}

}  // namespace
}  // namespace tunnelgate::dtr
