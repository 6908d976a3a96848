// support/yaml.hpp: the bounded YAML reader. Every refusal is one located error; nothing below a
// limit changes what yaml-cpp would have read.
#include <gtest/gtest.h>

#include <string>

#include "located.hpp"
#include "support/temp_dir.hpp"
#include "support/yaml.hpp"
#include "yaml_hostile.hpp"

namespace tunnelgate::support {
namespace {

using tunnelgate::testing::billion_laughs;
using tunnelgate::testing::deep_flow;
using tunnelgate::testing::is_located;
using tunnelgate::testing::peak_rss_kib;

yaml_document read(const std::string& text, const yaml_limits& l = config_yaml_limits) {
  return read_yaml(text, "t.yaml", "test file", l);
}

TEST(ReadYaml, ReadsAnOrdinaryDocumentWithAliases) {
  const auto doc = read(R"(base: &b {port: 443, hosts: [a.example, b.example]}
copy: *b
list: [1, 2, 3]
)");
  ASSERT_TRUE(doc) << doc.error->to_string();
  EXPECT_EQ(doc.root["copy"]["hosts"][1].Scalar(), "b.example");
  EXPECT_EQ(doc.root["copy"]["port"].Scalar(), "443");
  EXPECT_EQ(position_of(doc.root["list"]).line, 3);
  EXPECT_EQ(position_of(doc.root["list"]).column, 7);
  EXPECT_EQ(located("t.yaml", doc.root["list"], "bad"), "t.yaml:3:7: bad");
  EXPECT_EQ(located("t.yaml", doc.root["missing"], "bad"), "t.yaml: bad");
}

TEST(ReadYaml, EmptyTextIsANullDocument) {
  const auto doc = read("");
  ASSERT_TRUE(doc);
  EXPECT_TRUE(doc.root.IsNull());
}

TEST(ReadYaml, SyntaxErrorIsLocated) {
  const auto doc = read("a: [1, 2\nb: 3\n");
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error->file, "t.yaml");
  EXPECT_GT(doc.error->line, 0);
  EXPECT_EQ(doc.error->message.rfind("YAML syntax error: ", 0), 0U) << doc.error->message;
}

TEST(ReadYaml, BillionLaughsIsRefusedAtTheAliasThatCrossesTheLimit) {
  const auto text = billion_laughs();
  ASSERT_LT(text.size(), 1024U);  // under 1 KB, 10^9 leaves
  const long before = peak_rss_kib();
  const auto doc = read(text);
  ASSERT_FALSE(doc);
  // lol5 alone is some 1.1 million nodes once its aliases are followed: the limit is crossed
  // on its line.
  EXPECT_TRUE(is_located(doc.error->to_string(), "t.yaml", 6,
                         "YAML aliases expand to more than 1000000 nodes; remove the "
                         "anchors/aliases or split the file"))
      << doc.error->to_string();
  EXPECT_LT(peak_rss_kib() - before, 64 * 1024) << "the refusal must cost little memory";
}

TEST(ReadYaml, LongTextAliasedManyTimesIsRefused) {
  // Few nodes, many bytes: a 1 MiB string met 20 times is 20 MiB for a loader that copies it.
  std::string text = "a: &a " + std::string(1 << 20, 'x') + "\nb: [";
  for (int i = 0; i < 20; ++i)
    text += i == 0 ? "*a" : ", *a";
  text += "]\n";
  const auto doc = read(text);
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error->line, 2);
  EXPECT_EQ(doc.error->message,
            "YAML aliases expand to more than 16 MiB of text; remove the anchors/aliases or "
            "split the file");
}

TEST(ReadYaml, DeepNestingIsRefusedWithoutRecursingIntoIt) {
  // 100,000 levels: the parser must stop at our limit, long before its stack could run out.
  const auto doc = read(deep_flow(100000));
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error->to_string(),
            "t.yaml:1:65: YAML nested deeper than 64 levels (aliases included); flatten the "
            "structure");
  const auto block = read("a:\n" + std::string("  - ") + deep_flow(70));
  ASSERT_FALSE(block);
  EXPECT_EQ(block.error->line, 2);
}

TEST(ReadYaml, DepthThroughAnAliasChainIsRefused) {
  // Each line is shallow; following the aliases makes 100 levels.
  std::string text = "a0: &a0 [x]\n";
  for (int i = 1; i < 100; ++i)
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" + std::to_string(i - 1) +
            "]\n";
  const auto doc = read(text);
  ASSERT_FALSE(doc);
  EXPECT_NE(doc.error->message.find("nested deeper than 64 levels"), std::string::npos);
  EXPECT_GT(doc.error->line, 60);
}

TEST(ReadYaml, AnAliasInsideItsOwnAnchorIsRefused) {
  // yaml-cpp would build a cycle: a walk of it never ends.
  const auto doc = read("a: &a [1, *a]\n");
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error->to_string(),
            "t.yaml:1:11: this alias refers to a node that contains it (a cycle); remove the "
            "alias or point it at a node defined before");
}

TEST(ReadYaml, NodeAndSizeLimitsAreTheCallers) {
  yaml_limits small = config_yaml_limits;
  small.max_nodes = 5;
  const auto many = read("[1, 2, 3, 4, 5]\n", small);  // the sequence and 5 scalars
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error->to_string(), "t.yaml:1:14: more than 5 YAML nodes; split the file");
  EXPECT_TRUE(read("[1, 2, 3, 4]\n", small));

  small = config_yaml_limits;
  small.max_bytes = 10;
  const auto big = read("[1, 2, 3, 4]\n", small);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error->to_string(),
            "t.yaml: test file is 13 bytes, more than the 10 bytes allowed; make it smaller "
            "(split it where the format allows)");
}

TEST(ReadYamlFile, OversizedOrMissingFileIsOneErrorNamingIt) {
  tunnelgate::testing::temp_dir dir;
  const auto p = dir.write("big.yaml", "a: " + std::string((4 << 20) + 1, 'x') + "\n");
  const auto doc = read_yaml_file(p, "rules file", config_yaml_limits);
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error->line, 0);
  EXPECT_EQ(doc.error->to_string(), "rules file " + p.string() + " is " +
                                        std::to_string((4 << 20) + 5) +
                                        " bytes, more than the 4 MiB allowed; make it smaller "
                                        "(split it where the format allows)");
  const auto missing = read_yaml_file(dir / "none.yaml", "rules file", config_yaml_limits);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error->message.find("No such file or directory"), std::string::npos);
  const auto ok = read_yaml_file(dir.write("ok.yaml", "a: 1\n"), "rules file", config_yaml_limits);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok.root["a"].Scalar(), "1");
}

}  // namespace
}  // namespace tunnelgate::support
