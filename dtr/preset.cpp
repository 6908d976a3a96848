// The okta-entra-login preset: the sign-in hosts whose source address Okta network zones and
// Entra named locations judge (shared/docs/domain.md §6). Only sign-in hosts: CDNs and static
// assets stay out, their addresses are not what the identity provider checks.
#include <stdexcept>

#include "dtr/dtr.hpp"

namespace tunnelgate::dtr {

namespace {

std::string checked_host(const std::string& h, const char* what) {
  auto n = normalize_host(h);
  if (!n) throw std::invalid_argument(std::string(what) + " '" + h + "': " + n.error().message());
  return n.value();
}

}  // namespace

std::vector<std::string> okta_entra_login_destinations(const okta_entra_params& p) {
  if (p.okta_tenant.empty()) throw std::invalid_argument("the Okta tenant is required");
  std::vector<std::string> out;
  // "acme" means acme.okta.com; a dotted name is the org host itself (acme.oktapreview.com).
  const auto tenant = checked_host(p.okta_tenant, "Okta tenant");
  const auto dot = tenant.find('.');
  const std::string org = dot == std::string::npos ? tenant + ".okta.com" : tenant;
  const auto org_dot = org.find('.');
  out.push_back(org);
  out.push_back(org.substr(0, org_dot) + "-admin" + org.substr(org_dot));
  if (!p.okta_custom_domain.empty()) {
    out.push_back(checked_host(p.okta_custom_domain, "Okta custom domain"));
  }
  // Entra ID sign-in (Microsoft 365 endpoint set 56, plus the token issuer).
  for (const char* h : {
           "login.microsoftonline.com",
           "*.login.microsoftonline.com",  // ccs., device.
           "login-us.microsoftonline.com",
           "logincert.microsoftonline.com",
           "loginex.microsoftonline.com",
           "login.microsoft.com",
           "login.windows.net",
           "sts.windows.net",
           "autologon.microsoftazuread-sso.com",
           "login.microsoftonline-p.com",
       }) {
    out.emplace_back(h);
  }
  if (!p.ip_echo_host.empty()) out.push_back(checked_host(p.ip_echo_host, "IP echo host"));
  return out;
}

}  // namespace tunnelgate::dtr
