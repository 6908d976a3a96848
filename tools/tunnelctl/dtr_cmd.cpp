// tunnelctl dtr ... — evaluate, lint and export Device Traffic Rules files.
#include <charconv>
#include <iostream>

#include "commands.hpp"
#include "dtr/dtr.hpp"

namespace tunnelctl {

namespace {

namespace dtr = tunnelgate::dtr;

/// Loads a rules file or throws command_error listing every problem as file:line:col.
std::shared_ptr<const dtr::policy> load(const std::string& path) {
  auto r = dtr::load_rules(read_file(path), path);
  if (!r) {
    std::string msg = "cannot load rules:";
    for (const auto& e : r.errors)
      msg += "\n  " + e.to_string();
    throw command_error(msg);
  }
  return r.value;
}

dtr::platform platform_arg(const std::string& s) {
  auto p = dtr::parse_platform(s);
  if (!p)
    throw usage_error("unknown platform '" + s +
                      "'; expected ios, android, macos, windows or linux");
  return *p;
}

std::uint16_t port_arg(std::string_view s, const std::string& whole) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < 1 || v > 65535) {
    throw usage_error("bad port in '" + whole + "': expected 1-65535");
  }
  return static_cast<std::uint16_t>(v);
}

/// HOST[:PORT] with IPv6 as [addr]:port or a bare address (no port). Port defaults to 443.
std::pair<std::string, std::uint16_t> split_target(const std::string& t) {
  if (t.empty()) throw usage_error("missing HOST[:PORT]");
  if (t.front() == '[') {
    const auto close = t.find(']');
    if (close == std::string::npos) throw usage_error("unbalanced '[' in '" + t + "'");
    const auto host = t.substr(1, close - 1);
    const auto rest = std::string_view(t).substr(close + 1);
    if (rest.empty()) return {host, 443};
    if (rest.front() != ':') throw usage_error("expected :PORT after ']' in '" + t + "'");
    return {host, port_arg(rest.substr(1), t)};
  }
  const auto colon = t.find(':');
  if (colon == std::string::npos) return {t, 443};
  if (t.find(':', colon + 1) != std::string::npos) return {t, 443};  // bare IPv6
  return {t.substr(0, colon), port_arg(std::string_view(t).substr(colon + 1), t)};
}

std::string action_word(const dtr::decision& d) {
  if (d.refused()) return "refused:" + std::string(d.refusal);
  if (d.act == dtr::action::proxy) return "proxy:" + (d.proxy ? d.proxy->name : std::string("?"));
  return std::string(dtr::to_string(d.act));
}

int cmd_eval(const args& a) {
  po::options_description desc("options");
  std::string rules, plat, app, target;
  bool json = false;
  desc.add_options()("rules", po::value(&rules)->required(), "rules file (YAML)")(
      "platform", po::value(&plat)->required(), "ios, android, macos, windows or linux")(
      "app", po::value(&app), "app id (bundle id, package name, path) for per-app rule sets")(
      "json", po::bool_switch(&json), "print the decision as JSON")(
      "target", po::value(&target)->required(), "HOST[:PORT], port 443 when omitted");
  po::positional_options_description pos;
  pos.add("target", 1);
  po::variables_map vm;
  if (!parse_options(a, desc, pos,
                     "tunnelctl dtr eval --rules FILE --platform P [--app ID] [--json] HOST[:PORT]",
                     vm)) {
    return exit_ok;
  }
  const auto p = platform_arg(plat);
  const auto [host, port] = split_target(target);
  const auto policy = load(rules);
  const auto d = policy->evaluate({host, port, p, app});

  if (json) {
    std::cout << dtr::decision_json(d, {host, port, p, app}) << "\n";
    return exit_ok;
  }
  std::cout << action_word(d);
  if (d.set) {
    std::cout << " set=" << d.set->name
              << " rank=" << (d.rank == 0 ? std::string("default") : std::to_string(d.rank))
              << " line=" << d.line;
  } else {
    std::cout << " set=- rank=- line=-";
  }
  std::cout << "\n";
  return exit_ok;
}

int cmd_lint(const args& a) {
  po::options_description desc("options");
  std::string file;
  desc.add_options()("file", po::value(&file)->required(), "rules file (YAML)");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_options(a, desc, pos, "tunnelctl dtr lint FILE", vm)) return exit_ok;

  auto r = dtr::load_rules(read_file(file), file);
  if (!r) {
    for (const auto& e : r.errors) {
      std::cout << e.file << ":" << e.line << ":" << e.column << ": error: " << e.message << "\n";
    }
    std::cout << r.errors.size() << " error(s)\n";
    return 2;
  }
  const auto findings = dtr::lint(*r.value);
  for (const auto& f : findings) {
    std::cout << f.where.file << ":" << f.where.line << ":" << f.where.column
              << ": warning: " << f.where.message << " [" << f.code << "]\n";
  }
  if (!findings.empty()) {
    std::cout << findings.size() << " warning(s)\n";
    return 1;
  }
  std::cout << file << ": ok\n";
  return exit_ok;
}

int cmd_pac(const args& a) {
  po::options_description desc("options");
  std::string file, plat, gateway, app;
  desc.add_options()("file", po::value(&file)->required(), "rules file (YAML)")(
      "platform", po::value(&plat)->required(), "ios, android, macos, windows or linux")(
      "gateway", po::value(&gateway)->required(), "HOST:PORT of the gateway's TLS listener")(
      "app", po::value(&app), "use the per-app rule set of this app (a browser's app id)");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_options(a, desc, pos,
                     "tunnelctl dtr pac FILE --platform P --gateway HOST:PORT [--app ID]", vm)) {
    return exit_ok;
  }
  const auto p = platform_arg(plat);
  if (gateway.find(':') == std::string::npos || !dtr::valid_pac_gateway(gateway)) {
    throw usage_error("--gateway must be HOST:PORT (e.g. gateway.example.com:8443), got '" +
                      gateway + "'");
  }
  const auto policy = load(file);
  const auto pac = dtr::to_pac(*policy, p, gateway, app);
  if (pac.empty()) {
    throw command_error("no rule set applies to platform " + plat +
                        (app.empty() ? std::string(" (no full-device set)") : " and app " + app));
  }
  std::cout << pac;
  return exit_ok;
}

int cmd_profile(const args& a) {
  po::options_description desc("options");
  std::string file, plat;
  desc.add_options()("file", po::value(&file)->required(), "rules file (YAML)")(
      "platform", po::value(&plat)->required(), "ios, android, macos, windows or linux");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_options(a, desc, pos, "tunnelctl dtr profile FILE --platform P", vm)) return exit_ok;
  const auto p = platform_arg(plat);
  std::cout << dtr::to_profile_json(*load(file), p);
  return exit_ok;
}

int cmd_preset(const args& a) {
  po::options_description desc("options");
  std::string name;
  dtr::okta_entra_params params;
  desc.add_options()("name", po::value(&name)->required(), "preset name: okta-entra-login")(
      "tenant", po::value(&params.okta_tenant)->required(), "Okta tenant (acme for acme.okta.com)")(
      "custom-domain", po::value(&params.okta_custom_domain), "Okta custom URL domain")(
      "ip-echo", po::value(&params.ip_echo_host), "a 'what is my IP' host to tunnel too");
  po::positional_options_description pos;
  pos.add("name", 1);
  po::variables_map vm;
  if (!parse_options(a, desc, pos,
                     "tunnelctl dtr preset okta-entra-login --tenant T [--custom-domain D] "
                     "[--ip-echo HOST]",
                     vm)) {
    return exit_ok;
  }
  if (name != "okta-entra-login") {
    throw usage_error("unknown preset '" + name + "'; the preset is okta-entra-login");
  }
  try {
    for (const auto& d : dtr::okta_entra_login_destinations(params))
      std::cout << d << "\n";
  } catch (const std::invalid_argument& e) {
    throw usage_error(e.what());
  }
  return exit_ok;
}

constexpr std::array<command, 5> dtr_commands{{
    {"eval", "decide one destination: tunnel, proxy:<name>, bypass, block or refused", &cmd_eval},
    {"lint", "check a rules file: errors exit 2, warnings exit 1, clean exit 0", &cmd_lint},
    {"pac", "print a PAC file for browsers of a platform", &cmd_pac},
    {"profile", "print the JSON profile a client downloads", &cmd_profile},
    {"preset", "print the destinations of a preset (okta-entra-login)", &cmd_preset},
}};

}  // namespace

const group dtr_group{"dtr", "Device Traffic Rules: eval, lint, pac, profile, preset",
                      dtr_commands};

}  // namespace tunnelctl
