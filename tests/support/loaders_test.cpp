// The three loaders of administrator YAML through the bounded reader: the rules file (dtr), the
// gateway configuration (gateway + uem sections, through check_config as the daemon's start,
// SIGHUP and --check-config do) and the UEM inventory (parse_inventory and the file source).
// Each refuses a billion-laughs file with one located error, at little memory, and ordinary files
// still load; the file source keeps its previous inventory when the new file is refused.
#include <utility>  // before Asio (STYLE P1)

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <sstream>
#include <string>

#include "dtr/dtr.hpp"
#include "gateway/gateway.hpp"
#include "located.hpp"
#include "support/temp_dir.hpp"
#include "uem/uem.hpp"
#include "yaml_hostile.hpp"

namespace tunnelgate {
namespace {

using testing::billion_laughs;
using testing::deep_flow;
using testing::peak_rss_kib;
using testing::temp_dir;

const std::string aliases_message =
    "YAML aliases expand to more than 1000000 nodes; remove the anchors/aliases or split the "
    "file";

/// How often `needle` occurs in `hay`.
std::size_t count(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1))
    ++n;
  return n;
}

// --- rules (dtr) ------------------------------------------------------------------------------

/// The shape from the issue: one list of destinations, a list of rules aliasing it, rule sets
/// aliasing the rules: 100 x 100 x 1000 = 10^7 destinations out of about 8 KB.
std::string rules_bomb() {
  std::string y =
      "version: 1\nrule_sets:\n  - name: s0\n    platforms: [ios]\n"
      "    mode: full-device\n    default: block\n    rules: &rules\n";
  y += "      - action: tunnel\n        destinations: &d [";
  for (int i = 0; i < 100; ++i)
    y += (i == 0 ? "" : ", ") + std::string("h") + std::to_string(i) + ".example.com";
  y += "]\n";
  for (int i = 1; i < 100; ++i)
    y += "      - {action: tunnel, destinations: *d}\n";
  for (int i = 1; i < 1000; ++i) {
    y += "  - {name: s" + std::to_string(i) +
         ", platforms: [ios], mode: full-device, default: block, rules: *rules}\n";
  }
  return y;
}

TEST(BoundedRules, BillionLaughsIsOneLocatedErrorAtLittleMemory) {
  const auto text = rules_bomb();
  const long before = peak_rss_kib();
  const auto r = dtr::load_rules(text, "rules.yaml");
  ASSERT_FALSE(r);
  ASSERT_EQ(r.errors.size(), 1U);
  EXPECT_TRUE(testing::is_located(r.errors[0].to_string(), "rules.yaml", {}, aliases_message))
      << r.errors[0].to_string();
  EXPECT_GT(r.errors[0].line, 100);  // at the alias that crossed the limit, not at the top
  EXPECT_LT(peak_rss_kib() - before, 64 * 1024);
}

TEST(BoundedRules, DeepNestingAndOversizeAreRefused) {
  const auto deep = dtr::load_rules("rule_sets: " + deep_flow(100000), "rules.yaml");
  ASSERT_EQ(deep.errors.size(), 1U);
  EXPECT_EQ(deep.errors[0].to_string(),
            "rules.yaml:1:75: YAML nested deeper than 64 levels (aliases included); flatten the "
            "structure");
  const auto big = dtr::load_rules("# " + std::string(4 << 20, 'x') + "\n", "rules.yaml");
  ASSERT_EQ(big.errors.size(), 1U);
  EXPECT_NE(big.errors[0].message.find("more than the 4 MiB allowed"), std::string::npos)
      << big.errors[0].to_string();
}

TEST(BoundedRules, OrdinaryRulesWithAnchorsStillLoad) {
  const auto r = dtr::load_rules(R"(rule_sets:
  - name: ios
    platforms: [ios]
    mode: full-device
    default: block
    rules:
      - action: tunnel
        destinations: &idp ["*.okta.com:443", login.microsoftonline.com]
  - name: android
    platforms: [android]
    mode: full-device
    default: block
    rules:
      - {action: tunnel, destinations: *idp}
)",
                                 "rules.yaml");
  ASSERT_TRUE(r) << (r.errors.empty() ? "" : r.errors[0].to_string());
  const auto d = r.value->evaluate({"acme.okta.com", 443, dtr::platform::android, ""});
  EXPECT_EQ(d.act, dtr::action::tunnel);
}

// --- the gateway configuration ---------------------------------------------------------------

class BoundedGatewayConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* f : {"server.pem", "server.key", "ca.pem"})
      dir_.write(f, "");
    dir_.write("devices.json", "[]");
  }
  /// check_config's verdict and everything it printed.
  std::pair<bool, std::string> check(const std::string& yaml) {
    std::ostringstream err;
    const bool ok = gateway::check_config(dir_.write("gateway.yaml", yaml), err);
    return {ok, err.str()};
  }
  std::string path() const { return (dir_ / "gateway.yaml").string(); }
  temp_dir dir_;
};

TEST_F(BoundedGatewayConfig, BillionLaughsIsReportedOnceAndLocated) {
  const long before = peak_rss_kib();
  const auto [ok, out] =
      check("listen: [\"127.0.0.1:0\"]\nanchors:\n" + billion_laughs(9, 10, "  "));
  EXPECT_FALSE(ok);
  EXPECT_EQ(count(out, "YAML aliases expand"), 1U) << out;  // both loaders read the file
  EXPECT_TRUE(testing::contains_located(out, path(), 8, aliases_message)) << out;
  EXPECT_LT(peak_rss_kib() - before, 64 * 1024);
}

TEST_F(BoundedGatewayConfig, DeepNestingAndOversizeAreReportedOnce) {
  auto [ok, out] = check("listen: " + deep_flow(100000));
  EXPECT_FALSE(ok);
  EXPECT_EQ(out, path() +
                     ":1:72: YAML nested deeper than 64 levels (aliases included); flatten the "
                     "structure\n");
  std::tie(ok, out) = check("# " + std::string(4 << 20, 'x') + "\n");
  EXPECT_FALSE(ok);
  EXPECT_EQ(count(out, "more than the 4 MiB allowed"), 1U) << out.substr(0, 500);
}

// --- the UEM inventory -------------------------------------------------------------------------

const std::string good_inventory = R"(
- {Udid: R1, SerialNumber: S1, Platform: Apple, EnrollmentStatus: Enrolled,
   ComplianceStatus: Compliant, CompromisedStatus: false}
)";

TEST(BoundedInventory, BillionLaughsIsOneLocatedError) {
  const long before = peak_rss_kib();
  const auto r = uem::parse_inventory(billion_laughs(), "inv.yaml");
  ASSERT_EQ(r.errors.size(), 1U);
  EXPECT_TRUE(testing::is_located(r.errors[0], "inv.yaml", 7,
                                  "YAML aliases expand to more than 4000000 nodes; remove the "
                                  "anchors/aliases or split the file"))
      << r.errors[0];
  EXPECT_TRUE(r.devices.empty());
  EXPECT_LT(peak_rss_kib() - before, 64 * 1024);
}

TEST(BoundedInventory, DeepJsonAndYamlAreRefusedWithoutCrashing) {
  const auto json = uem::parse_inventory(deep_flow(100000), "inv.json");
  ASSERT_FALSE(json.ok());
  const auto yaml = uem::parse_inventory("- " + deep_flow(100000), "inv.yaml");
  ASSERT_EQ(yaml.errors.size(), 1U);
  EXPECT_NE(yaml.errors[0].find("inv.yaml:1:66: YAML nested deeper than 64 levels"),
            std::string::npos)
      << yaml.errors[0];
  const auto ok = uem::parse_inventory(good_inventory, "inv.yaml");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.devices.at(0).udid, "R1");
}

/// One fetch from a source, run to completion on its own io_context.
uem::fetch_result fetch(uem::source& src, uem::net::io_context& io, const std::string& udid) {
  std::optional<uem::fetch_result> got;
  uem::net::co_spawn(io, src.fetch(uem::device_key::udid(udid)),
                     [&got](const std::exception_ptr& e, uem::fetch_result r) {
                       if (e) std::rethrow_exception(e);
                       got = std::move(r);
                     });
  io.restart();
  io.run();
  EXPECT_TRUE(got.has_value());
  return got.value_or(uem::fetch_result{});
}

TEST(BoundedInventory, FileSourceKeepsItsInventoryAndLogsTheLocatedError) {
  temp_dir dir;
  const auto inv = dir.write("inv.yaml", good_inventory);
  uem::config cfg;
  cfg.source = uem::source_kind::file;
  cfg.file = inv;
  uem::net::io_context io;
  auto src = uem::make_source(cfg, io.get_executor());
  ASSERT_TRUE(fetch(*src, io, "R1").device.has_value());

  // The refusal reaches the log, located; the devices known before stay known.
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
  dir.write("inv.yaml", billion_laughs());
  const bool changed = src->poll_changed();
  const bool again = src->poll_changed();  // same file state: not read, not logged again
  spdlog::set_default_logger(previous);
  EXPECT_FALSE(changed);
  EXPECT_FALSE(again);
  EXPECT_EQ(count(log.str(), "keeping the previous inventory"), 1U) << log.str();
  EXPECT_NE(log.str().find(inv.string() + ":7:"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("YAML aliases expand to more than 4000000 nodes"), std::string::npos);
  EXPECT_TRUE(fetch(*src, io, "R1").device.has_value());

  // An oversized file is refused the same way; a good one is taken again.
  dir.write("inv.yaml", "# " + std::string(64 << 20, 'x') + "\n");
  EXPECT_FALSE(src->poll_changed());
  EXPECT_TRUE(fetch(*src, io, "R1").device.has_value());
  dir.write("inv.yaml", R"(
- {Udid: R2, SerialNumber: S2, Platform: Apple, EnrollmentStatus: Enrolled,
   ComplianceStatus: Compliant, CompromisedStatus: false}
)");
  EXPECT_TRUE(src->poll_changed());
  EXPECT_TRUE(fetch(*src, io, "R2").device.has_value());
  EXPECT_FALSE(fetch(*src, io, "R1").device.has_value());
}

}  // namespace
}  // namespace tunnelgate
