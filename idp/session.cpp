// okta_api and entra_api: authentication (SSWS, OAuth private_key_jwt, Entra client
// credentials) and authenticated API calls, shared by every client of the library.
#include "idp/session.hpp"

namespace tunnelgate::idp::detail {

/// The target (path and query) of a pagination link, when it points at the same server;
/// empty otherwise (a link elsewhere is not followed: it would get our token).
std::string same_server_target(const std::string& link, const url& base) {
  try {
    const auto u = parse_https_url(link, "link");
    if (u.host_header != base.host_header) return {};
    return u.path.empty() ? "/" : u.path;
  } catch (const error&) {
    return {};
  }
}

/// `<https://...>; rel="next"` from an Okta Link header (several links may be comma-joined).
std::string next_link(const std::string& header) {
  std::size_t pos = 0;
  while ((pos = header.find('<', pos)) != std::string::npos) {
    const auto close = header.find('>', pos);
    if (close == std::string::npos) return {};
    const auto end = header.find('<', close);
    const auto params = header.substr(close, end == std::string::npos ? end : end - close);
    if (params.find("rel=\"next\"") != std::string::npos) {
      return header.substr(pos + 1, close - pos - 1);
    }
    pos = close;
  }
  return {};
}

okta_api::okta_api(const std::string& org_url, okta_auth auth, http_settings http)
    : session(std::move(http)),
      auth_(std::move(auth)),
      base_(parse_https_url(org_url, "the Okta org URL")) {
  if (const auto* o = std::get_if<okta_oauth>(&auth_)) {
    if (o->client_id.empty() || o->private_key.empty()) {
      throw error(errc::bad_argument, "Okta OAuth needs a client id and a private key file");
    }
  } else if (std::get<okta_ssws>(auth_).token.empty()) {
    throw error(errc::bad_argument, "the Okta API token is empty");
  }
}

std::string okta_api::authorization(const std::string& /*what*/) {
  if (const auto* t = std::get_if<okta_ssws>(&auth_)) return "SSWS " + t->token.reveal();
  if (!token_valid()) fetch_token();
  return "Bearer " + token();
}

void okta_api::fetch_token() {
  const auto& o = std::get<okta_oauth>(auth_);
  const auto endpoint = base_.text + "/oauth2/v1/token";
  const std::string what = "getting an OAuth token from " + endpoint;
  const auto pem = read_secret_file(o.private_key, "private key");
  const auto res = call_unauthenticated(what, base_, [&] {
    assertion_claims c;
    c.client_id = o.client_id;
    c.audience = endpoint;
    c.key_id = o.key_id;
    request r;
    r.method = "POST";
    r.target = base_.path + "/oauth2/v1/token";
    r.content_type = form_type;
    r.body = "grant_type=client_credentials&scope=" + url_encode(o.scopes) +
             "&client_assertion_type=" +
             url_encode("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") +
             "&client_assertion=" + make_client_assertion(pem.reveal(), c);
    return r;
  });
  if (res.status != 200) throw_http_error(what, res);
  take_token(what, res);
}

response okta_api::api(const std::string& what, const std::string& method,
                       const std::string& target, std::string body) {
  request r;
  r.method = method;
  r.target = base_.path + target;
  r.body = std::move(body);
  if (!r.body.empty()) r.content_type = json_type;
  return call(what, base_, std::move(r));
}

entra_api::entra_api(const std::string& tenant, const std::string& client_id, secret client_secret,
                     const std::string& login_url, const std::string& graph_url, http_settings http)
    : session(std::move(http)),
      tenant_(tenant),
      client_id_(client_id),
      client_secret_(std::move(client_secret)),
      login_(parse_https_url(login_url, "the Entra login URL")),
      graph_(parse_https_url(graph_url, "the Graph URL")) {
  if (tenant_.empty()) throw error(errc::bad_argument, "no tenant given");
  if (client_id_.empty() || client_secret_.empty()) {
    throw error(errc::bad_argument, "Entra needs a client id and a client secret");
  }
}

std::string entra_api::authorization(const std::string& /*what*/) {
  if (!token_valid()) fetch_token();
  return "Bearer " + token();
}

void entra_api::fetch_token() {
  const auto target = login_.path + "/" + url_encode(tenant_) + "/oauth2/v2.0/token";
  const std::string what =
      "getting a token from " + login_.text + "/" + tenant_ + "/oauth2/v2.0/token";
  const auto res = call_unauthenticated(what, login_, [&] {
    request r;
    r.method = "POST";
    r.target = target;
    r.content_type = form_type;
    r.body = "grant_type=client_credentials&client_id=" + url_encode(client_id_) +
             "&client_secret=" + url_encode(client_secret_.reveal()) +
             "&scope=" + url_encode("https://graph.microsoft.com/.default");
    return r;
  });
  if (res.status != 200) throw_http_error(what, res);
  take_token(what, res);
}

response entra_api::api(const std::string& what, const std::string& method,
                        const std::string& target, std::string body) {
  request r;
  r.method = method;
  r.target = target;
  r.body = std::move(body);
  if (!r.body.empty()) r.content_type = json_type;
  return call(what, graph_, std::move(r));
}

}  // namespace tunnelgate::idp::detail
