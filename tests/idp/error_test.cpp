// idp errors: the IdPs' error answers (Okta API, OAuth token endpoints, Graph) and secrets.
#include <gtest/gtest.h>

#include <fstream>

#include "idp/idp.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace idp = tunnelgate::idp;

TEST(ErrorBody, OktaApiWithCauses) {
  const auto b = idp::parse_error_body(
      R"({"errorCode":"E0000001","errorSummary":"Api validation failed: gateways","errorLink":"E0000001","errorId":"oae1","errorCauses":[{"errorSummary":"gateways: Invalid CIDR 10.0.0.0/33"}]})");
  EXPECT_EQ(b.code, "E0000001");
  EXPECT_EQ(b.summary, "Api validation failed: gateways (gateways: Invalid CIDR 10.0.0.0/33)");
  const auto t = idp::parse_error_body(
      R"({"errorCode":"E0000011","errorSummary":"Invalid token provided","errorLink":"E0000011","errorId":"oae2","errorCauses":[]})");
  EXPECT_EQ(t.code, "E0000011");
  EXPECT_EQ(t.summary, "Invalid token provided");
}

TEST(ErrorBody, OAuthAndEntraTokenEndpoint) {
  const auto o = idp::parse_error_body(
      R"({"error":"invalid_client","error_description":"The client_assertion token has an invalid jti."})");
  EXPECT_EQ(o.code, "invalid_client");
  EXPECT_EQ(o.summary, "The client_assertion token has an invalid jti.");
  const auto e = idp::parse_error_body(
      "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client "
      "secret provided.\\r\\nTrace ID: abc\\r\\nCorrelation ID: def\",\"error_codes\":[7000215],"
      "\"timestamp\":\"2024-01-01 00:00:00Z\",\"trace_id\":\"abc\",\"correlation_id\":\"def\"}");
  EXPECT_EQ(e.code, "invalid_client");
  EXPECT_EQ(e.summary,
            "AADSTS7000215: Invalid client secret provided. Trace ID: abc Correlation ID: def");
}

TEST(ErrorBody, Graph) {
  const auto g = idp::parse_error_body(
      R"({"error":{"code":"InvalidAuthenticationToken","message":"Access token is empty.","innerError":{"date":"2024-01-01T00:00:00","request-id":"r","client-request-id":"c"}}})");
  EXPECT_EQ(g.code, "InvalidAuthenticationToken");
  EXPECT_EQ(g.summary, "Access token is empty.");
}

TEST(ErrorBody, AnythingElseIsEmptyAndSafe) {
  for (const char* body :
       {"", "<html>502</html>", "[]", "{}", R"({"message":"x"})", "{\"error\":3}"}) {
    const auto b = idp::parse_error_body(body);
    EXPECT_TRUE(b.code.empty()) << body;
    EXPECT_TRUE(b.summary.empty()) << body;
  }
  const auto c = idp::parse_error_body("{\"errorSummary\":\"a\\u0007b\\nc\"}");
  EXPECT_EQ(c.summary, "a?b c");
  const auto long_text =
      idp::parse_error_body("{\"errorSummary\":\"" + std::string(5000, 'x') + "\"}");
  EXPECT_LT(long_text.summary.size(), 700U);
}

TEST(Error, CarriesStatusCodeAndCategory) {
  const idp::error e(idp::errc::unauthorized,
                     "reading zone: Invalid token provided (HTTP 401 E0000011)", 401, "E0000011",
                     "Invalid token provided");
  EXPECT_EQ(e.code(), idp::errc::unauthorized);
  EXPECT_EQ(std::string(e.code().category().name()), "idp");
  EXPECT_EQ(e.http_status(), 401);
  EXPECT_EQ(e.idp_code(), "E0000011");
  EXPECT_EQ(e.idp_summary(), "Invalid token provided");
  EXPECT_STREQ(e.what(), "reading zone: Invalid token provided (HTTP 401 E0000011)");
  EXPECT_TRUE(idp::is_refusal(idp::errc::too_many_entries));
  EXPECT_TRUE(idp::is_refusal(idp::errc::inactive));
  EXPECT_FALSE(idp::is_refusal(idp::errc::rate_limited));
  EXPECT_FALSE(idp::is_refusal(idp::errc::unauthorized));
}

TEST(Secret, ReadTrimsTrailingNewlines) {
  tunnelgate::testing::temp_dir dir;
  const auto path = dir.path() / "token";
  std::ofstream(path) << "00abcDEF-token\r\n\n";
  EXPECT_EQ(idp::read_secret_file(path, "token").reveal(), "00abcDEF-token");
  std::ofstream(path, std::ios::trunc) << "\n";
  try {
    idp::read_secret_file(path, "--token-file");
    ADD_FAILURE();
  } catch (const idp::error& e) {
    EXPECT_EQ(e.value(), idp::errc::bad_argument);
    EXPECT_NE(std::string(e.what()).find("is empty"), std::string::npos);
  }
  try {
    idp::read_secret_file(dir.path() / "none", "--token-file");
    ADD_FAILURE();
  } catch (const idp::error& e) {
    EXPECT_EQ(e.value(), idp::errc::file_unreadable);
  }
}

TEST(Clients, SettingsAreCheckedUpFront) {
  idp::okta_settings s;
  s.org_url = "http://acme.okta.com";
  s.zone = "z";
  s.auth = idp::okta_ssws{idp::secret("t")};
  EXPECT_THROW(idp::okta_client{s}, idp::error);
  s.org_url = "https://acme.okta.com/";
  EXPECT_NO_THROW(idp::okta_client{s});
  s.zone.clear();
  EXPECT_THROW(idp::okta_client{s}, idp::error);
  idp::entra_settings e;
  e.tenant = "t";
  e.location = "l";
  e.client_id = "c";
  EXPECT_THROW(idp::entra_client{e}, idp::error);  // no secret
  e.client_secret = idp::secret("s");
  e.graph_url = "https://[::1]:8443";
  EXPECT_NO_THROW(idp::entra_client{e});
  e.graph_url = "https://[::1";
  EXPECT_THROW(idp::entra_client{e}, idp::error);
}

}  // namespace
