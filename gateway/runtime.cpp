#include <stdexcept>

#include "gateway/state.hpp"
#include "gateway/tls.hpp"
#include "gateway/vpn/hub.hpp"

namespace tunnelgate::gateway {

std::shared_ptr<runtime> make_runtime(std::shared_ptr<const config> cfg,
                                      const std::vector<tcp::endpoint>& own_endpoints,
                                      std::shared_ptr<const host_addresses> host) {
  auto rt = std::make_shared<runtime>();
  rt->cfg = cfg;
  try {
    certauth::trust_options to;
    to.ca_bundle = cfg->tls.client_ca;
    to.crls = cfg->tls.crl;
    to.crl_required = cfg->tls.crl_required;
    rt->trust = std::make_shared<certauth::trust_store>(to);
    certauth::verify_policy vp;
    vp.clock_skew = cfg->tls.clock_skew;
    vp.stale_crl = cfg->tls.stale_crl;
    vp.identity = cfg->identity;
    vp.cache_ttl = cfg->tls.verify_cache_ttl;
    vp.cache_size = cfg->tls.verify_cache_size;
    rt->verifier = std::make_unique<certauth::verifier>(rt->trust, vp);
  } catch (const std::system_error& e) {
    throw std::runtime_error(cfg->file.string() + ": tls: " + e.what());
  }
  rt->tls = make_server_context(cfg->tls, *rt->verifier);

  rt->upstream_tls = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(rt->upstream_tls->native_handle(), TLS1_2_VERSION);
  rt->upstream_tls->set_default_verify_paths();
  if (!cfg->egress.proxy_ca.empty()) {
    boost::system::error_code ec;
    rt->upstream_tls->load_verify_file(cfg->egress.proxy_ca.string(), ec);
    if (ec) {
      throw std::runtime_error(cfg->file.string() + ": egress.proxy_ca: cannot load " +
                               cfg->egress.proxy_ca.string() + ": " + ec.message());
    }
  }

  rt->egress.v4 = cfg->egress.v4;
  rt->egress.v6 = cfg->egress.v6;
  rt->egress.resolve_timeout = cfg->egress.resolve_timeout;
  rt->egress.resolver = cfg->egress.resolver;
  rt->egress.connect_timeout = cfg->egress.connect_timeout;
  egress_policy_options po;
  po.allow = cfg->egress.allow;
  po.deny = cfg->egress.deny;
  po.own_endpoints = own_endpoints;
  po.host = std::move(host);
  if (cfg->vpn) {
    // Devices never reach each other or the gateway's mapped addresses as destinations.
    po.never.push_back(cfg->vpn->pool);
    po.never.push_back(cfg->vpn->mapped_pool);
    if (cfg->vpn->pool6) po.never.push_back(*cfg->vpn->pool6);
  }
  rt->policy = std::make_shared<const egress_policy>(std::move(po));
  if (auto err = check_egress_addresses(rt->egress); !err.empty()) {
    throw std::runtime_error(cfg->file.string() + ": " + err);
  }
  return rt;
}

void revoke_device(shared_state& st, const std::string& udid, const std::string& reason) {
  const auto device = canonical_udid(udid);
  if (st.vpn) st.vpn->cookies().revoke_device(device);  // its unredeemed VPN cookies die too
  const auto n = st.registry.kill_device(device, "compliance:" + reason);
  if (n > 0) {
    st.log->event(spdlog::level::warn, "device_revoked",
                  {{"udid", device}, {"reason", reason}, {"sessions", n}});
  }
}

}  // namespace tunnelgate::gateway
