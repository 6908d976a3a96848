// CAEP device-compliance-change Security Event Tokens (RFC 8417, CAEP 1.0) and their push
// delivery to an SSF receiver (RFC 8935), e.g. Okta's `/security/api/v1/security-events`.
// The signing is jwt.cpp's; the HTTP exchange, 429 waits and timeouts are the shared session's.
#include <array>
#include <chrono>

#include "idp/session.hpp"

namespace tunnelgate::idp {

namespace {

using detail::json;

constexpr std::array<std::string_view, 4> initiating_entities = {"admin", "user", "policy",
                                                                 "system"};

/// RFC 8935 §2.3 error codes that mean the receiver does not accept our identity or key.
constexpr std::array<std::string_view, 5> credential_errors = {
    "authentication_failed", "invalid_key", "invalid_issuer", "invalid_audience", "access_denied"};

template <std::size_t N>
bool one_of(const std::array<std::string_view, N>& set, std::string_view v) {
  for (const auto s : set)
    if (s == v) return true;
  return false;
}

void check_settings(const caep_settings& s) {
  if (s.issuer.empty()) {
    throw error(errc::bad_argument,
                "CAEP: no issuer (iss) is configured: set it to the URL that "
                "identifies the gateway to the receiver");
  }
  if (s.audience.empty()) {
    throw error(errc::bad_argument,
                "CAEP: no audience (aud) is configured: set it to the "
                "receiver's issuer, e.g. https://acme.okta.com");
  }
  if (s.key_id.empty()) {
    throw error(errc::bad_argument,
                "CAEP: no key id (kid) is configured: the receiver finds the key by it");
  }
}

void check_change(const caep_change& c) {
  if (c.device_id.empty()) {
    throw error(errc::bad_argument, "CAEP: the change has no device id (UDID or serial number)");
  }
  if (!c.initiating_entity.empty() && !one_of(initiating_entities, c.initiating_entity)) {
    throw error(errc::bad_argument, "CAEP: initiating_entity \"" + c.initiating_entity +
                                        "\" is not one of admin, user, policy, system");
  }
}

/// The subject members shared by both formats: device (iss_sub), user (email), tenant (opaque).
json subject_members(const caep_settings& s, const caep_change& c) {
  json m = {{"device", {{"format", "iss_sub"}, {"iss", s.issuer}, {"sub", c.device_id}}}};
  if (!c.user_email.empty()) m["user"] = {{"format", "email"}, {"email", c.user_email}};
  if (!c.tenant.empty()) m["tenant"] = {{"format", "opaque"}, {"id", c.tenant}};
  return m;
}

const char* status(bool compliant) {
  return compliant ? "compliant" : "not-compliant";
}

/// Throws the error for a failed delivery. RFC 8935 receivers (Okta among them) answer
/// `{"err": code, "description": text}`; the shared parser knows the same pair under the OAuth
/// names, so the body is renamed and the parser's cleaning and message format are reused.
[[noreturn]] void throw_delivery_error(const std::string& what, const detail::response& res,
                                       const caep_settings& s) {
  const auto j = json::parse(res.body, nullptr, false);
  const auto err = detail::str(j, "err");
  if (err.empty()) detail::throw_http_error(what, res);
  detail::response renamed = res;
  renamed.body = json{{"error", err}, {"error_description", detail::str(j, "description")}}.dump();
  try {
    detail::throw_http_error(what, renamed);
  } catch (const error& e) {
    if (!one_of(credential_errors, err)) throw;
    throw error(errc::unauthorized,
                std::string(e.what()) +
                    "; check that the receiver has the gateway registered "
                    "with issuer " +
                    s.issuer + " and the JWKS with kid " + s.key_id + " (docs/caep.md)",
                e.http_status(), e.idp_code(), e.idp_summary());
  }
}

/// A session without our Authorization header: the SET's signature authenticates it.
class receiver_session final : public detail::session {
 public:
  using session::session;

 private:
  bool uses_oauth() const override { return false; }
  std::string authorization(const std::string& /*what*/) override { return {}; }
};

}  // namespace

std::string_view to_string(caep_subject_format f) noexcept {
  return f == caep_subject_format::caep_final ? "caep-final" : "okta";
}

std::optional<caep_subject_format> caep_subject_format_from_string(std::string_view s) noexcept {
  if (s == "okta") return caep_subject_format::okta;
  if (s == "caep-final") return caep_subject_format::caep_final;
  return std::nullopt;
}

std::string make_caep_set(std::string_view private_key_pem, const caep_settings& settings,
                          const caep_change& change) {
  check_settings(settings);
  check_change(change);
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  const auto now = duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch());

  json event;
  if (settings.subject_format == caep_subject_format::okta) {
    event["subject"] = subject_members(settings, change);
  }
  event["current_status"] = status(change.compliant);
  event["previous_status"] = status(!change.compliant);
  event["event_timestamp"] = duration_cast<seconds>(change.when.time_since_epoch()).count();
  if (!change.initiating_entity.empty()) event["initiating_entity"] = change.initiating_entity;
  if (!change.reason_admin.empty()) event["reason_admin"] = {{"en", change.reason_admin}};

  json claims = {{"iss", settings.issuer},
                 {"jti", detail::random_id()},
                 {"iat", now.count()},
                 {"aud", settings.audience}};
  if (!change.txn.empty()) claims["txn"] = change.txn;
  if (settings.subject_format == caep_subject_format::caep_final) {
    json sub_id = {{"format", "complex"}};
    const auto members = subject_members(settings, change);
    for (const auto& [name, value] : members.items())
      sub_id[name] = value;
    claims["sub_id"] = std::move(sub_id);
  }
  claims["events"] = {{caep_device_compliance_change, std::move(event)}};

  const json header = {{"typ", "secevent+jwt"}, {"kid", settings.key_id}};
  return detail::sign_jws(private_key_pem, header, claims);
}

struct caep_client::impl {
  explicit impl(caep_settings s)
      : settings(std::move(s)),
        base(detail::parse_https_url(settings.receiver_url, "the SSF receiver URL")),
        session(settings.http) {
    check_settings(settings);
    if (settings.private_key.empty()) {
      throw error(errc::bad_argument, "CAEP: no private key file is configured for signing SETs");
    }
    pem = read_secret_file(settings.private_key, "SET signing key");
    jwks = make_jwks(pem.reveal(), settings.key_id);
  }

  caep_settings settings;
  detail::url base;
  receiver_session session;
  secret pem;
  std::string jwks;
};

caep_client::caep_client(caep_settings settings)
    : impl_(std::make_unique<impl>(std::move(settings))) {}
caep_client::~caep_client() = default;

const std::string& caep_client::jwks() const noexcept {
  return impl_->jwks;
}

void caep_client::send(const caep_change& change) {
  auto& s = *impl_;
  const auto set = make_caep_set(s.pem.reveal(), s.settings, change);
  const std::string what = "delivering a device-compliance-change SET to " + s.base.text;
  s.session.begin();
  // A 429 resends the same SET: the receiver did not accept it, so its jti is still unused.
  const auto res = s.session.call_unauthenticated(what, s.base, [&] {
    detail::request r;
    r.method = "POST";
    r.target = s.base.path;
    r.content_type = "application/secevent+jwt";
    r.body = set;
    if (!s.settings.bearer_token.empty()) {
      r.headers.emplace_back("Authorization", "Bearer " + s.settings.bearer_token.reveal());
    }
    return r;
  });
  if (res.status == 202 || res.status == 204) return;
  throw_delivery_error(what, res, s.settings);
}

}  // namespace tunnelgate::idp
