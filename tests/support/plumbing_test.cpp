// support/support.hpp: files and secrets with size limits, base64 (RFC 4648 §10 vectors), URLs.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "support/support.hpp"
#include "support/temp_dir.hpp"

namespace tunnelgate::support {
namespace {

using tunnelgate::testing::temp_dir;

/// Runs `f`, expecting a support::error of `code`; returns its message ("" when none came).
template <class F>
std::string error_of(F f, errc code) {
  try {
    f();
  } catch (const error& e) {
    EXPECT_EQ(e.code(), make_error_code(code)) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no support::error";
  return {};
}

TEST(ReadFile, ReadsTheWholeFile) {
  temp_dir dir;
  const std::string content = std::string("a\0b\n", 4) + std::string(200000, 'x');
  EXPECT_EQ(read_file(dir.write("f", content), "test file"), content);
  EXPECT_EQ(read_file(dir.write("empty", ""), "test file"), "");
}

TEST(ReadFile, MissingFileAndDirectoryNameThePathAndTheCause) {
  temp_dir dir;
  const auto missing = (dir / "nope.yaml").string();
  const auto msg = error_of([&] { read_file(missing, "rules file"); }, errc::file_unreadable);
  EXPECT_EQ(msg, "cannot read rules file " + missing + ": No such file or directory");
  const auto dmsg = error_of([&] { read_file(dir.path(), "rules file"); }, errc::file_unreadable);
  EXPECT_NE(dmsg.find("Is a directory"), std::string::npos) << dmsg;
}

TEST(ReadFile, RefusesARegularFileOverTheLimit) {
  temp_dir dir;
  const auto p = dir.write("big", std::string(1025, 'x'));
  EXPECT_EQ(read_file(p, "test file", 1025).size(), 1025U);
  const auto msg = error_of([&] { read_file(p, "test file", 1024); }, errc::file_too_large);
  EXPECT_EQ(msg, "test file " + p.string() +
                     " is 1025 bytes, more than the 1 KiB allowed; make it smaller (split it "
                     "where the format allows)");
}

TEST(ReadFile, StopsAnEndlessDeviceAtTheLimit) {
  // /dev/zero has no size: the limit must hold while reading, not only from fstat.
  const auto msg =
      error_of([] { read_file("/dev/zero", "test file", 1 << 20); }, errc::file_too_large);
  EXPECT_NE(msg.find("more than 1 MiB"), std::string::npos) << msg;
}

TEST(ReadSecret, TrimsLineBreaksAndRefusesEmptyOrLarge) {
  temp_dir dir;
  EXPECT_EQ(read_secret(dir.write("s", "hunter2\r\n"), "token file"), "hunter2");
  EXPECT_EQ(read_secret(dir.write("s2", "a b\n\n"), "token file"), "a b");
  const auto empty = dir.write("e", "\n");
  EXPECT_EQ(error_of([&] { read_secret(empty, "token file"); }, errc::secret_empty),
            "token file " + empty.string() + " is empty; write the secret into it (one line)");
  const auto big = dir.write("b", std::string(max_secret_bytes + 1, 's'));
  const auto msg = error_of([&] { read_secret(big, "token file"); }, errc::file_too_large);
  EXPECT_EQ(msg.find("sss"), std::string::npos) << "the value never appears";
}

TEST(Base64, Rfc4648Vectors) {
  const std::pair<std::string, std::string> v[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, coded] : v) {
    EXPECT_EQ(base64_encode(plain), coded);
    EXPECT_EQ(base64_decode(coded), plain) << coded;
  }
  EXPECT_EQ(base64_encode("\xfb\xff"), "+/8=");
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_decode("-_8"), "\xfb\xff");
  std::string all;
  for (int i = 0; i < 256; ++i)
    all += static_cast<char>(i);
  EXPECT_EQ(base64_decode(base64_encode(all)), all);
  EXPECT_EQ(base64url_decode(base64url_encode(all)), all);
}

TEST(Base64, RefusesEverySecondSpelling) {
  for (const char* bad :
       {"Zg", "Zg=", "Zh==", "Zm9=", "Z===", "====", "Zm 9v", "Zm9v\n", "-_8=", "Zm9v*A=="}) {
    EXPECT_FALSE(base64_decode(bad)) << bad;
  }
  for (const char* bad : {"Zg==", "Z", "Zh", "+/8", "Zm9v Zg"})
    EXPECT_FALSE(base64url_decode(bad)) << bad;
}

TEST(HttpsUrl, SplitsHostPortAndPath) {
  auto u = parse_https_url("https://acme.okta.com/", "the Okta org URL");
  EXPECT_EQ(u.host, "acme.okta.com");
  EXPECT_EQ(u.port, "443");
  EXPECT_EQ(u.host_header, "acme.okta.com");
  EXPECT_EQ(u.path, "");
  EXPECT_EQ(u.text, "https://acme.okta.com");
  u = parse_https_url("https://[::1]:8443/api/v1?x=1", "url");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, "8443");
  EXPECT_EQ(u.host_header, "[::1]:8443");
  EXPECT_EQ(u.path, "/api/v1?x=1");
  u = parse_https_url("https://127.0.0.1:9/p", "url");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, "9");
}

TEST(HttpsUrl, RefusesWithTheProblemAndTheForm) {
  const std::pair<const char*, const char*> cases[] = {
      {"http://a.example", "not an https:// URL"},
      {"https://user:pw@a.example", "credentials never go in a URL"},
      {"https://a.example:0", "port is not a number from 1 to 65535"},
      {"https://a.example:65536", "port is not a number from 1 to 65535"},
      {"https://a.example:", "port is not a number"},
      {"https://:443", "no host"},
      {"https://[::1", "unclosed '['"},
      {"https://a.example/x#frag", "a fragment"},
      {"https://a.example/a b", "blanks, control or non-ASCII"},
  };
  for (const auto& [url, problem] : cases) {
    const auto msg = error_of([&] { parse_https_url(url, "the URL"); }, errc::bad_url);
    EXPECT_NE(msg.find(problem), std::string::npos) << url << " -> " << msg;
    EXPECT_NE(msg.find("expected https://HOST[:PORT][/PATH]"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace tunnelgate::support
