// Internals of the idp library: the authenticated API sessions every client builds on (the
// zone and named-location clients, the directory clients of posture_sync). Not public.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "idp/internal.hpp"

namespace tunnelgate::idp::detail {

inline constexpr const char* json_type = "application/json";
inline constexpr const char* form_type = "application/x-www-form-urlencoded";
/// Pages a listing follows at most.
inline constexpr std::size_t max_pages = 100;

/// The target (path and query) of a pagination link, when it points at the same server;
/// empty otherwise (a link elsewhere is not followed: it would get our token).
std::string same_server_target(const std::string& link, const url& base);
/// The URL of `rel="next"` in a Link header value (several links comma-joined), or empty.
std::string next_link(const std::string& header);

/// What every client shares: the HTTPS client, the OAuth token kept between calls (empty for
/// SSWS), the 429 loop (one wait budget per public call) and the one-time token refresh after
/// a 401.
class session {
 public:
  using steady = std::chrono::steady_clock;

  explicit session(http_settings h) : http_(std::move(h)) {}
  virtual ~session() = default;
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  /// Starts a public call: a fresh rate-limit budget.
  void begin() { budget_ = rate_budget{http_.max_rate_limit_wait}; }

  /// One API request with authentication, 429 waits and one token refresh after a 401 on a
  /// kept token. Returns any other answer.
  response call(const std::string& what, const url& base, request req) {
    bool refreshed = false;
    const auto base_headers = req.headers;
    for (;;) {
      const bool kept = !token_.empty() && steady::now() < token_refresh_at_;
      req.headers = base_headers;
      req.headers.emplace_back("Authorization", authorization(what));
      auto res = raw(what, base, req);
      if (res.status == 429) {
        wait_for_rate_limit(what, res, budget_, http_.notice);
        continue;
      }
      if (res.status == 401 && kept && !refreshed && uses_oauth()) {
        // The token may have been revoked or expired early: fetch a new one once.
        token_.clear();
        refreshed = true;
        if (http_.notice) http_.notice(what + ": the OAuth token was refused; fetching a new one");
        continue;
      }
      return res;
    }
  }

  /// A request without our Authorization header (token endpoints), with 429 waits. `make`
  /// builds the request anew for each attempt (a client assertion must not be replayed).
  template <class Make>
  response call_unauthenticated(const std::string& what, const url& base, Make make) {
    for (;;) {
      auto res = raw(what, base, make());
      if (res.status != 429) return res;
      wait_for_rate_limit(what, res, budget_, http_.notice);
    }
  }

  /// Stores a token answer (`access_token`, `expires_in`); throws errc::bad_response.
  void take_token(const std::string& what, const response& res) {
    const auto j = parse_object(what, res);
    const auto tok = j.find("access_token");
    const auto life = j.find("expires_in");
    if (tok == j.end() || !tok->is_string() || tok->get<std::string>().empty()) {
      throw error(errc::bad_response, what + ": the answer has no access_token", res.status);
    }
    long long secs = 3600;
    if (life != j.end() && life->is_number_integer() && life->get<long long>() > 0) {
      secs = life->get<long long>();
    }
    // Refresh shortly before expiry: a tenth of the lifetime, at most a minute.
    const auto margin = std::min<long long>(60, secs / 10);
    token_ = tok->get<std::string>();
    token_refresh_at_ = steady::now() + std::chrono::seconds(secs - margin);
  }

 protected:
  virtual bool uses_oauth() const = 0;
  /// The Authorization header value; fetches a token when needed.
  virtual std::string authorization(const std::string& what) = 0;
  bool token_valid() const { return !token_.empty() && steady::now() < token_refresh_at_; }
  const std::string& token() const { return token_; }
  const http_settings& http() const { return http_; }

 private:
  response raw(const std::string& what, const url& base, const request& req) {
    if (!client_) client_ = std::make_unique<https_client>(http_.ca_file, http_.timeout);
    try {
      return client_->send(base, req);
    } catch (const error& e) {
      if (e.value() != errc::unreachable && e.value() != errc::timeout) throw;
      throw error(e.value(), what + ": " + e.what());
    }
  }

  http_settings http_;
  std::unique_ptr<https_client> client_;  // made on first use (it loads the CA file)
  rate_budget budget_{};
  std::string token_;
  steady::time_point token_refresh_at_{};
};

/// An Okta org: SSWS or OAuth (private_key_jwt) authentication and API calls under org_url.
class okta_api : public session {
 public:
  /// Checks the URL and the authentication settings (errc::bad_argument).
  okta_api(const std::string& org_url, okta_auth auth, http_settings http);

  bool uses_oauth() const override { return std::holds_alternative<okta_oauth>(auth_); }
  std::string authorization(const std::string& what) override;
  /// One call to `target` (a path under the org URL, query included).
  response api(const std::string& what, const std::string& method, const std::string& target,
               std::string body = {});

  const url& base() const noexcept { return base_; }

 private:
  void fetch_token();

  okta_auth auth_;
  url base_;
};

/// An Entra tenant: a client-credentials token for Graph, and Graph calls.
class entra_api : public session {
 public:
  entra_api(const std::string& tenant, const std::string& client_id, secret client_secret,
            const std::string& login_url, const std::string& graph_url, http_settings http);

  bool uses_oauth() const override { return true; }
  std::string authorization(const std::string& what) override;
  /// One Graph call; `target` is the full path (graph().path included).
  response api(const std::string& what, const std::string& method, const std::string& target,
               std::string body = {});

  const url& login() const noexcept { return login_; }
  const url& graph() const noexcept { return graph_; }

 private:
  void fetch_token();

  std::string tenant_;
  std::string client_id_;
  secret client_secret_;
  url login_;
  url graph_;
};

}  // namespace tunnelgate::idp::detail
