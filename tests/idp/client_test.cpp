// idp clients against the real okta-sim and entra-sim processes over HTTPS on loopback: what
// the command line cannot show — an OAuth token kept between calls and fetched again once
// after a 401, rate-limit notices and the wait budget (huge waits asked for included), the
// error fields, timeouts, names matched without case. And against an in-test fake server
// (fake_https.hpp) what the simulators cannot do on cue: another writer's full replace landing
// between our write and our read-back, Link fields sent separately in either order.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "fake_https.hpp"
#include "idp/idp.hpp"
#include "support/sim_process.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace idp = tunnelgate::idp;
using json = nlohmann::json;
using namespace std::chrono_literals;

void sh(const std::string& cmd) {
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

using tunnelgate::testing::sim_process;
using tunnelgate::testing::slurp;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto d = dir_.path().string();
    sh("cd " + d +
       " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
       "-out ca.pem -subj /CN=idp-test-ca -days 2 -addext basicConstraints=critical,CA:TRUE "
       ">/dev/null 2>&1"
       " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key "
       "-out server.csr -subj /CN=127.0.0.1 >/dev/null 2>&1"
       " && printf 'subjectAltName=IP:127.0.0.1\\n' >server.ext"
       " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 7 -days 2 "
       "-extfile server.ext -out server.pem >/dev/null 2>&1"
       " && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out app.key "
       ">/dev/null 2>&1 && openssl pkey -in app.key -pubout -out app.pub"
       " && printf 'api-token\\n' >tokens && printf 'app-secret\\n' >secret");
  }

  std::vector<std::string> sim_args(const char* bin) const {
    return {bin, "--cert", (dir_.path() / "server.pem").string(), "--key",
            (dir_.path() / "server.key").string()};
  }

  /// entra-sim's arguments for tenant `contoso`, app `app-1` with the `secret` file.
  std::vector<std::string> entra_args() const {
    auto args = sim_args(ENTRA_SIM_PATH);
    for (const char* a : {"--tenant", "contoso", "--client-id", "app-1", "--client-secret-file"})
      args.emplace_back(a);
    args.push_back((dir_.path() / "secret").string());
    return args;
  }

  /// An admin call to a simulator (no auth); returns the body.
  std::string admin(const std::string& method, const std::string& url,
                    const std::string& body = "") {
    const auto out = dir_.path() / "admin.out";
    std::string cmd = "curl -sS --cacert " + (dir_.path() / "ca.pem").string() + " -X " + method +
                      " -o " + out.string() + " '" + url + "'";
    if (!body.empty()) cmd += " -H 'Content-Type: application/json' -d '" + body + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return slurp(out);
  }

  long count(const std::string& base, const std::string& key) {
    const auto j = json::parse(admin("GET", base + "/_sim/stats"), nullptr, false);
    if (!j.is_object() || !j.contains("requests") || !j["requests"].contains(key)) return 0;
    return j["requests"][key].get<long>();
  }

  idp::http_settings http() const {
    idp::http_settings h;
    h.ca_file = dir_.path() / "ca.pem";
    h.timeout = 5s;
    return h;
  }
  /// Settings for the entra-sim started with entra_args().
  idp::entra_settings entra_settings(const sim_process& sim, std::string location) const {
    idp::entra_settings s;
    s.tenant = "contoso";
    s.location = std::move(location);
    s.client_id = "app-1";
    s.client_secret = idp::read_secret_file(dir_.path() / "secret", "secret");
    s.login_url = sim.url();
    s.graph_url = sim.url();
    s.http = http();
    return s;
  }

  tunnelgate::testing::temp_dir dir_;
};

TEST_F(ClientTest, OktaKeepsTheOAuthTokenAndFetchesANewOneAfter401) {
  auto args = sim_args(OKTA_SIM_PATH);
  for (const char* a : {"--client-id", "0oa-app", "--client-public-key"})
    args.emplace_back(a);
  args.push_back((dir_.path() / "app.pub").string());
  sim_process sim(dir_.path(), "okta", args);
  idp::okta_settings s;
  s.org_url = sim.url();
  s.zone = "egress";
  s.auth = idp::okta_oauth{"0oa-app", dir_.path() / "app.key", "kid-1"};
  s.http = http();
  idp::okta_client client(s);
  const auto created = client.publish({"127.0.0.2"}, {.create = true});
  EXPECT_TRUE(created.created);
  EXPECT_EQ(created.id.substr(0, 3), "nzo");
  EXPECT_TRUE(client.verify({"127.0.0.2"}).ok());
  EXPECT_EQ(count(sim.url(), "POST /oauth2/v1/token"), 1);  // kept between calls

  admin("POST", sim.url() + "/_sim/tokens/revoke");
  const auto r = client.verify({"127.0.0.2"});  // 401 on the kept token, then a new one
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(count(sim.url(), "POST /oauth2/v1/token"), 2);
}

TEST_F(ClientTest, OktaErrorFieldsRateLimitNoticeAndBudget) {
  auto args = sim_args(OKTA_SIM_PATH);
  args.emplace_back("--token-file");
  args.push_back((dir_.path() / "tokens").string());
  sim_process sim(dir_.path(), "okta", args);
  idp::okta_settings s;
  s.org_url = sim.url();
  s.zone = "egress";
  s.auth = idp::okta_ssws{idp::secret("not-the-token")};
  s.http = http();
  try {
    idp::okta_client(s).verify({"127.0.0.2"});
    ADD_FAILURE() << "no error";
  } catch (const idp::error& e) {
    EXPECT_EQ(e.code(), idp::errc::unauthorized);
    EXPECT_EQ(e.http_status(), 401);
    EXPECT_EQ(e.idp_code(), "E0000011");
    EXPECT_EQ(e.idp_summary(), "Invalid token provided");
    EXPECT_EQ(std::string(e.what()).find("not-the-token"), std::string::npos);
  }

  s.auth = idp::okta_ssws{idp::read_secret_file(dir_.path() / "tokens", "token")};
  std::vector<std::string> notes;
  s.http.notice = [&notes](const std::string& n) { notes.push_back(n); };
  idp::okta_client client(s);
  EXPECT_EQ(client.publish({"127.0.0.2"}, {.create = true}).entries, 1U);
  admin("POST", sim.url() + "/_sim/faults", R"({"fault":"rate_limit","count":1,"reset_in":1})");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.verify({"127.0.0.2"}).ok());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1s);
  ASSERT_EQ(notes.size(), 1U);
  EXPECT_NE(notes[0].find("rate limited (HTTP 429); waiting"), std::string::npos) << notes[0];

  s.http.max_rate_limit_wait = 0ms;
  idp::okta_client impatient(s);
  admin("POST", sim.url() + "/_sim/faults", R"({"fault":"rate_limit","count":1,"reset_in":1})");
  try {
    impatient.verify({"127.0.0.2"});
    ADD_FAILURE() << "no error";
  } catch (const idp::error& e) {
    EXPECT_EQ(e.code(), idp::errc::rate_limited);
    EXPECT_EQ(e.http_status(), 429);
    EXPECT_EQ(e.idp_code(), "E0000047");
  }
}

TEST_F(ClientTest, EntraKeepsTheTokenAndFetchesANewOneAfter401) {
  auto args = entra_args();
  sim_process sim(dir_.path(), "entra", args);
  auto s = entra_settings(sim, "egress");
  idp::entra_client client(s);
  const auto created = client.publish({"127.0.0.2", "::1"}, {.create = true});
  EXPECT_TRUE(created.created);
  EXPECT_EQ(created.entries, 2U);
  const auto again = client.publish({"127.0.0.2", "::1"}, {});
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(again.id, created.id);
  EXPECT_EQ(count(sim.url(), "POST /contoso/oauth2/v2.0/token"), 1);
  admin("POST", sim.url() + "/_sim/tokens/revoke");
  EXPECT_TRUE(client.verify({"127.0.0.2", "::1"}).ok());
  EXPECT_EQ(count(sim.url(), "POST /contoso/oauth2/v2.0/token"), 2);
}

TEST_F(ClientTest, ASilentServerTimesOut) {
  // Accepted by the kernel (listen backlog) but never answered: the TLS handshake must time out.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  idp::okta_settings s;
  s.org_url = "https://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  s.zone = "egress";
  s.auth = idp::okta_ssws{idp::secret("t")};
  s.http = http();
  s.http.timeout = 300ms;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    idp::okta_client(s).verify({"127.0.0.2"});
    ADD_FAILURE() << "no error";
  } catch (const idp::error& e) {
    EXPECT_EQ(e.code(), idp::errc::timeout) << e.what();
    EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  ::close(fd);
}

// ---- names compared without case (the sims, zones loaded from --state) ------------------------

TEST_F(ClientTest, EntraMatchesTheDisplayNameIgnoringCaseAndNeverCreatesASecond) {
  auto args = entra_args();
  sim_process sim(dir_.path(), "entra", args);
  auto s = entra_settings(sim, "WS1 Tunnel Egress");
  const auto created = idp::entra_client(s).publish({"127.0.0.2"}, {.create = true});
  ASSERT_TRUE(created.created);
  s.location = "ws1 TUNNEL egress";
  const auto again = idp::entra_client(s).publish({"127.0.0.2", "127.0.0.3"}, {.create = true});
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.id, created.id);
  EXPECT_EQ(again.name, "WS1 Tunnel Egress");
  EXPECT_EQ(again.added, 1U);
  const auto all = json::parse(admin("GET", sim.url() + "/_sim/locations"));
  ASSERT_EQ(all.size(), 1U) << all.dump();
  EXPECT_EQ(all[0]["ipRanges"].size(), 2U);
  EXPECT_TRUE(idp::entra_client(s).verify({"127.0.0.3"}).ok());
}

TEST_F(ClientTest, AnAmbiguousNameIsRefusedNamingTheIds) {
  const json locations = json::array({{{"@odata.type", "#microsoft.graph.ipNamedLocation"},
                                       {"id", "11111111-1111-1111-1111-111111111111"},
                                       {"displayName", "Egress"},
                                       {"isTrusted", true},
                                       {"ipRanges", json::array()}},
                                      {{"@odata.type", "#microsoft.graph.ipNamedLocation"},
                                       {"id", "22222222-2222-2222-2222-222222222222"},
                                       {"displayName", "EGRESS"},
                                       {"isTrusted", true},
                                       {"ipRanges", json::array()}}});
  std::ofstream(dir_.path() / "locations.json") << locations.dump();
  const json zones = json::array({{{"id", "nzoUpper0000001"},
                                   {"name", "Egress"},
                                   {"type", "IP"},
                                   {"status", "ACTIVE"},
                                   {"usage", "POLICY"},
                                   {"gateways", {{{"type", "CIDR"}, {"value", "10.0.0.1/32"}}}}},
                                  {{"id", "nzoLower0000002"},
                                   {"name", "egress"},
                                   {"type", "IP"},
                                   {"status", "ACTIVE"},
                                   {"usage", "POLICY"},
                                   {"gateways", {{{"type", "CIDR"}, {"value", "10.0.0.2/32"}}}}}});
  std::ofstream(dir_.path() / "zones.json") << zones.dump();

  auto eargs = sim_args(ENTRA_SIM_PATH);
  for (const char* a : {"--tenant", "contoso", "--client-id", "app-1", "--client-secret-file"})
    eargs.emplace_back(a);
  eargs.push_back((dir_.path() / "secret").string());
  eargs.emplace_back("--state");
  eargs.push_back((dir_.path() / "locations.json").string());
  sim_process entra(dir_.path(), "entra", eargs);
  idp::entra_settings e;
  e.tenant = "contoso";
  e.location = "egress";
  e.client_id = "app-1";
  e.client_secret = idp::read_secret_file(dir_.path() / "secret", "secret");
  e.login_url = entra.url();
  e.graph_url = entra.url();
  e.http = http();
  try {
    idp::entra_client(e).publish({"127.0.0.2"}, {.create = true});
    ADD_FAILURE() << "no error";
  } catch (const idp::error& err) {
    EXPECT_EQ(err.code(), idp::errc::ambiguous) << err.what();
    const std::string what = err.what();
    EXPECT_NE(what.find("11111111-1111-1111-1111-111111111111"), std::string::npos) << what;
    EXPECT_NE(what.find("22222222-2222-2222-2222-222222222222"), std::string::npos) << what;
    EXPECT_NE(what.find("give the id instead"), std::string::npos) << what;
  }
  EXPECT_EQ(json::parse(admin("GET", entra.url() + "/_sim/locations")).size(), 2U);
  e.location = "22222222-2222-2222-2222-222222222222";  // the id settles it
  EXPECT_TRUE(idp::entra_client(e).publish({"127.0.0.2"}, {}).changed);

  auto oargs = sim_args(OKTA_SIM_PATH);
  oargs.emplace_back("--token-file");
  oargs.push_back((dir_.path() / "tokens").string());
  oargs.emplace_back("--state");
  oargs.push_back((dir_.path() / "zones.json").string());
  sim_process okta(dir_.path(), "okta", oargs);
  idp::okta_settings o;
  o.org_url = okta.url();
  o.zone = "EGRESS";
  o.auth = idp::okta_ssws{idp::read_secret_file(dir_.path() / "tokens", "token")};
  o.http = http();
  try {
    idp::okta_client(o).verify({"10.0.0.1"});
    ADD_FAILURE() << "no error";
  } catch (const idp::error& err) {
    EXPECT_EQ(err.code(), idp::errc::ambiguous) << err.what();
    const std::string what = err.what();
    EXPECT_NE(what.find("nzoUpper0000001"), std::string::npos) << what;
    EXPECT_NE(what.find("nzoLower0000002"), std::string::npos) << what;
  }
  o.zone = "nzoLower0000002";
  EXPECT_TRUE(idp::okta_client(o).verify({"10.0.0.2"}).ok());
}

TEST_F(ClientTest, OktaMatchesTheZoneNameIgnoringCaseAndNeverCreatesASecond) {
  auto args = sim_args(OKTA_SIM_PATH);
  args.emplace_back("--token-file");
  args.push_back((dir_.path() / "tokens").string());
  sim_process sim(dir_.path(), "okta", args);
  idp::okta_settings s;
  s.org_url = sim.url();
  s.zone = "Tunnel Egress";
  s.auth = idp::okta_ssws{idp::read_secret_file(dir_.path() / "tokens", "token")};
  s.http = http();
  const auto created = idp::okta_client(s).publish({"127.0.0.2"}, {.create = true});
  ASSERT_TRUE(created.created);
  s.zone = "tunnel EGRESS";
  const auto again = idp::okta_client(s).publish({"127.0.0.2", "127.0.0.3"}, {.create = true});
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.id, created.id);
  EXPECT_EQ(again.writes, 1U);
  EXPECT_EQ(json::parse(admin("GET", sim.url() + "/_sim/zones")).size(), 1U);
}

// ---- huge rate-limit waits (the sims' rate_limit fault) ---------------------------------------

TEST_F(ClientTest, AHugeRateLimitWaitFailsAtOnceSayingHowLong) {
  auto oargs = sim_args(OKTA_SIM_PATH);
  oargs.emplace_back("--token-file");
  oargs.push_back((dir_.path() / "tokens").string());
  sim_process okta(dir_.path(), "okta", oargs);
  idp::okta_settings o;
  o.org_url = okta.url();
  o.zone = "egress";
  o.auth = idp::okta_ssws{idp::read_secret_file(dir_.path() / "tokens", "token")};
  o.http = http();
  idp::okta_client oc(o);
  ASSERT_TRUE(oc.publish({"127.0.0.2"}, {.create = true}).created);
  // X-Rate-Limit-Reset = now + 4e18: the wait used to overflow to a negative sleep and retry
  // at once (here: succeed on the second try); it must give up at once instead.
  admin("POST", okta.url() + "/_sim/faults",
        R"({"fault":"rate_limit","count":1,"reset_in":4000000000000000000})");
  try {
    oc.verify({"127.0.0.2"});
    ADD_FAILURE() << "no error";
  } catch (const idp::error& e) {
    EXPECT_EQ(e.code(), idp::errc::rate_limited) << e.what();
    EXPECT_NE(std::string(e.what()).find("gave up: the limit resets in more than 2147483647 s"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("X-Rate-Limit-Reset: 4000"), std::string::npos)
        << e.what();
  }

  auto eargs = sim_args(ENTRA_SIM_PATH);
  for (const char* a : {"--tenant", "contoso", "--client-id", "app-1", "--client-secret-file"})
    eargs.emplace_back(a);
  eargs.push_back((dir_.path() / "secret").string());
  sim_process entra(dir_.path(), "entra", eargs);
  idp::entra_settings e;
  e.tenant = "contoso";
  e.location = "egress";
  e.client_id = "app-1";
  e.client_secret = idp::read_secret_file(dir_.path() / "secret", "secret");
  e.login_url = entra.url();
  e.graph_url = entra.url();
  e.http = http();
  idp::entra_client ec(e);
  ASSERT_TRUE(ec.publish({"127.0.0.2"}, {.create = true}).created);
  admin("POST", entra.url() + "/_sim/faults",
        R"({"fault":"rate_limit","count":1,"reset_in":9223372036854775807})");
  try {
    ec.verify({"127.0.0.2"});
    ADD_FAILURE() << "no error";
  } catch (const idp::error& err) {
    EXPECT_EQ(err.code(), idp::errc::rate_limited) << err.what();
    EXPECT_NE(std::string(err.what()).find("Retry-After: 9223372036854775807"), std::string::npos)
        << err.what();
  }
}

// ---- another writer between our write and our read-back (fake server) --------------------------

/// An Okta zone endpoint where, after each of our PUTs, another gateway's PUT built from an
/// older read lands before we read back: `drops` times our address disappears again.
struct racing_okta {
  json zone = {{"id", "nzoRace00000001"},
               {"name", "egress"},
               {"type", "IP"},
               {"status", "ACTIVE"},
               {"usage", "POLICY"},
               {"gateways", {{{"type", "CIDR"}, {"value", "198.51.100.9/32"}}}}};
  int drops = 0;
  int puts = 0;

  tunnelgate::testing::fake_https::response operator()(
      const tunnelgate::testing::fake_https::request& req) {
    const std::string target(req.target());
    if (target != "/api/v1/zones/nzoRace00000001") return fake_https_json(404, "{}");
    if (req.method_string() == "PUT") {
      ++puts;
      const auto stale = zone;  // what the other gateway read before our write
      zone = json::parse(req.body());
      const auto answer = zone.dump();
      if (drops > 0) {
        --drops;
        zone = stale;
        zone["gateways"].push_back(
            {{"type", "CIDR"}, {"value", "198.51.100." + std::to_string(10 + puts) + "/32"}});
      }
      return fake_https_json(200, answer);
    }
    return fake_https_json(200, zone.dump());
  }

  static tunnelgate::testing::fake_https::response fake_https_json(unsigned s, std::string b) {
    return tunnelgate::testing::fake_https::json(s, std::move(b));
  }
};

bool has_gateway(const json& zone, const std::string& value) {
  for (const auto& g : zone["gateways"]) {
    if (g["value"] == value) return true;
  }
  return false;
}

TEST_F(ClientTest, OktaWritesAgainWhenAConcurrentReplaceDroppedOurAddress) {
  racing_okta state;
  state.drops = 2;
  tunnelgate::testing::fake_https fake(dir_.path() / "server.pem", dir_.path() / "server.key",
                                       [&state](const auto& req) { return state(req); });
  idp::okta_settings s;
  s.org_url = fake.url();
  s.zone = "nzoRace00000001";
  s.auth = idp::okta_ssws{idp::secret("t")};
  s.http = http();
  std::vector<std::string> notes;
  s.http.notice = [&notes](const std::string& n) { notes.push_back(n); };
  const auto r = idp::okta_client(s).publish({"127.0.0.2"}, {});
  EXPECT_EQ(r.writes, 3U);
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(r.added, 1U);
  const std::lock_guard lock(fake.mutex());
  EXPECT_EQ(state.puts, 3);
  EXPECT_TRUE(has_gateway(state.zone, "127.0.0.2/32")) << state.zone.dump();
  // Nobody else's entry was lost on the way: the other writers' addresses are kept.
  EXPECT_TRUE(has_gateway(state.zone, "198.51.100.9/32")) << state.zone.dump();
  EXPECT_TRUE(has_gateway(state.zone, "198.51.100.11/32")) << state.zone.dump();
  EXPECT_TRUE(has_gateway(state.zone, "198.51.100.12/32")) << state.zone.dump();
  ASSERT_EQ(notes.size(), 2U);
  EXPECT_NE(notes[0].find("127.0.0.2/32 missing when read back after write 1"), std::string::npos)
      << notes[0];
}

TEST_F(ClientTest, OktaGivesUpWithConflictWhenTheAddressKeepsDisappearing) {
  racing_okta state;
  state.drops = 1000;
  tunnelgate::testing::fake_https fake(dir_.path() / "server.pem", dir_.path() / "server.key",
                                       [&state](const auto& req) { return state(req); });
  idp::okta_settings s;
  s.org_url = fake.url();
  s.zone = "nzoRace00000001";
  s.auth = idp::okta_ssws{idp::secret("t")};
  s.http = http();
  try {
    idp::okta_client(s).publish({"127.0.0.2"}, {});
    ADD_FAILURE() << "no error";
  } catch (const idp::error& e) {
    EXPECT_EQ(e.code(), idp::errc::conflict) << e.what();
    EXPECT_FALSE(idp::is_refusal(e.value()));
    EXPECT_NE(std::string(e.what()).find("127.0.0.2/32 still missing after 5 writes"),
              std::string::npos)
        << e.what();
  }
  const std::lock_guard lock(fake.mutex());
  EXPECT_EQ(state.puts, 5);  // bounded
}

TEST_F(ClientTest, EntraWritesAgainWhenAConcurrentPatchDroppedOurRange) {
  const std::string id = "0b6d7e7a-1111-2222-3333-444455556666";
  const std::string path = "/v1.0/identity/conditionalAccess/namedLocations/" + id;
  const auto range = [](const std::string& cidr) {
    return json{{"@odata.type", "#microsoft.graph.iPv4CidrRange"}, {"cidrAddress", cidr}};
  };
  json location = {{"@odata.type", "#microsoft.graph.ipNamedLocation"},
                   {"id", id},
                   {"displayName", "egress"},
                   {"isTrusted", true},
                   {"ipRanges", {range("198.51.100.9/32")}}};
  int patches = 0;
  int drops = 1;
  tunnelgate::testing::fake_https fake(
      dir_.path() / "server.pem", dir_.path() / "server.key",
      [&](const tunnelgate::testing::fake_https::request& req) {
        using tunnelgate::testing::fake_https;
        const std::string target(req.target());
        if (target == "/contoso/oauth2/v2.0/token") {
          return fake_https::json(200, R"({"access_token":"tok","expires_in":3600})");
        }
        if (target != path) return fake_https::json(404, "{}");
        if (req.method_string() == "PATCH") {
          ++patches;
          const auto stale = location;
          location["ipRanges"] = json::parse(req.body())["ipRanges"];
          if (drops > 0) {
            --drops;
            location = stale;
            location["ipRanges"].push_back(range("198.51.100.20/32"));
          }
          return fake_https::json(204, "");
        }
        return fake_https::json(200, location.dump());
      });
  idp::entra_settings s;
  s.tenant = "contoso";
  s.location = id;
  s.client_id = "app-1";
  s.client_secret = idp::secret("x");
  s.login_url = fake.url();
  s.graph_url = fake.url();
  s.http = http();
  const auto r = idp::entra_client(s).publish({"127.0.0.2"}, {});
  EXPECT_EQ(r.writes, 2U);
  const std::lock_guard lock(fake.mutex());
  EXPECT_EQ(patches, 2);
  std::vector<std::string> cidrs;
  for (const auto& e : location["ipRanges"])
    cidrs.push_back(e["cidrAddress"]);
  EXPECT_EQ(cidrs,
            (std::vector<std::string>{"198.51.100.9/32", "198.51.100.20/32", "127.0.0.2/32"}));
}

// ---- Link fields sent separately (fake server) -------------------------------------------------

class SeparateLinkFields : public ClientTest, public ::testing::WithParamInterface<bool> {};

TEST_P(SeparateLinkFields, ZoneListingFollowsNextWhicheverOrder) {
  const bool next_first = GetParam();
  std::string base;
  int pages = 0;
  tunnelgate::testing::fake_https fake(
      dir_.path() / "server.pem", dir_.path() / "server.key",
      [&](const tunnelgate::testing::fake_https::request& req) {
        using tunnelgate::testing::fake_https;
        namespace bhttp = boost::beast::http;
        const std::string target(req.target());
        ++pages;
        if (target == "/api/v1/zones?limit=200") {
          auto res = fake_https::json(
              200, R"([{"id":"nzoFirst0000001","name":"other","type":"IP","status":"ACTIVE"}])");
          const auto self = "<" + base + "/api/v1/zones?limit=200>; rel=\"self\"";
          const auto next =
              "<" + base + "/api/v1/zones?after=nzoFirst0000001&limit=200>; rel=\"next\"";
          res.insert(bhttp::field::link, next_first ? next : self);
          res.insert(bhttp::field::link, next_first ? self : next);
          return res;
        }
        if (target == "/api/v1/zones?after=nzoFirst0000001&limit=200") {
          auto res =
              fake_https::json(200, R"([{"id":"nzoSecond000002","name":"egress",)"
                                    R"("type":"IP","status":"ACTIVE","usage":"POLICY",)"
                                    R"("gateways":[{"type":"CIDR","value":"127.0.0.2/32"}]}])");
          res.insert(bhttp::field::link,
                     "<" + base + "/api/v1/zones?after=nzoFirst0000001&limit=200>; rel=\"self\"");
          return res;
        }
        return fake_https::json(404, R"({"errorCode":"E0000007","errorSummary":"Not found"})");
      });
  {
    const std::lock_guard lock(fake.mutex());
    base = fake.url();
  }
  idp::okta_settings s;
  s.org_url = fake.url();
  s.zone = "egress";
  s.auth = idp::okta_ssws{idp::secret("t")};
  s.http = http();
  const auto v = idp::okta_client(s).verify({"127.0.0.2"});
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.id, "nzoSecond000002");
  const std::lock_guard lock(fake.mutex());
  EXPECT_EQ(pages, 2);
}

INSTANTIATE_TEST_SUITE_P(Order, SeparateLinkFields, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "NextFirst" : "SelfFirst"; });

}  // namespace
