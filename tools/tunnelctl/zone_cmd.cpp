// tunnelctl zone ... and tunnelctl namedlocation ... — publish the gateway's egress addresses
// to the Okta network zone and the Entra named location, and verify them (issue 6).
#include <yaml-cpp/yaml.h>

#include <iostream>
#include <optional>

#include "commands.hpp"
#include "idp/idp.hpp"

namespace tunnelctl {

namespace {

namespace idp = tunnelgate::idp;

/// Options both groups share: where the addresses come from, TLS trust, time limits.
struct common_options {
  std::vector<std::string> addresses;
  std::string config;
  std::string ca_file;
  int timeout = 10;
  int max_wait = 60;
  bool dry_run = false;
  bool exclusive = false;
  bool create = false;
};

void add_common(po::options_description& desc, common_options& o, bool publish) {
  desc.add_options()("address", po::value(&o.addresses)->composing(),
                     "an egress address (IPv4 or IPv6); repeatable")(
      "config", po::value(&o.config),
      "the gateway's YAML config: its egress.address (a string or a list) is used")(
      "ca-file", po::value(&o.ca_file),
      "PEM CA bundle to trust instead of the system store (a private CA)")(
      "timeout", po::value(&o.timeout)->default_value(10),
      "seconds allowed for each step (connect, TLS, request)")(
      "max-wait", po::value(&o.max_wait)->default_value(60),
      "seconds the command may spend in total waiting for rate limits (HTTP 429) to reset");
  if (publish) {
    desc.add_options()("dry-run", po::bool_switch(&o.dry_run), "show the diff; write nothing")(
        "exclusive", po::bool_switch(&o.exclusive),
        "remove every entry of the list that is not an egress address; only for a list this "
        "one gateway owns (two gateways publishing with --exclusive remove each other's "
        "addresses)")("create", po::bool_switch(&o.create),
                      "create it (by name) when it does not exist");
  }
}

/// egress.address of the gateway's config: a string or a list of strings.
std::vector<std::string> config_addresses(const std::string& path) {
  const auto text = read_file(path);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw command_error(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  const auto missing = [&] {
    return command_error(path + ": egress.address: missing (the gateway's egress address)");
  };
  if (!root.IsMap()) throw missing();
  const auto egress = root["egress"];
  if (!egress || !egress.IsMap()) throw missing();
  const auto a = egress["address"];
  if (!a || a.IsNull()) throw missing();
  const auto where = [&](const YAML::Node& n) {
    return path + ":" + std::to_string(n.Mark().line + 1) + ": egress.address";
  };
  std::vector<std::string> out;
  if (a.IsScalar()) {
    out.push_back(a.Scalar());
  } else if (a.IsSequence()) {
    for (const auto& n : a) {
      if (!n.IsScalar()) throw command_error(where(n) + ": each entry must be an address");
      out.push_back(n.Scalar());
    }
  } else {
    throw command_error(where(a) + ": expected an address or a list of addresses");
  }
  for (const auto& s : out) {
    if (!idp::normalize_address(s)) {
      throw command_error(where(a) + ": '" + s + "' is not an IPv4 or IPv6 address");
    }
  }
  return out;
}

/// The addresses from --address and --config, checked and normalized, at least one.
std::vector<std::string> egress_addresses(const common_options& o) {
  std::vector<std::string> raw = o.addresses;
  if (!o.config.empty()) {
    const auto more = config_addresses(o.config);
    raw.insert(raw.end(), more.begin(), more.end());
  }
  if (raw.empty()) throw usage_error("give the egress address with --address or --config");
  std::vector<std::string> out;
  for (const auto& a : raw) {
    const auto n = idp::normalize_address(a);
    if (!n) throw usage_error("--address '" + a + "': not an IPv4 or IPv6 address");
    if (std::find(out.begin(), out.end(), *n) == out.end()) out.push_back(*n);
  }
  return out;
}

idp::http_settings http_of(const common_options& o, const std::string& cmd) {
  if (o.timeout <= 0) throw usage_error("--timeout must be at least 1 second");
  if (o.max_wait < 0) throw usage_error("--max-wait must not be negative");
  idp::http_settings h;
  h.ca_file = o.ca_file;
  h.timeout = std::chrono::seconds(o.timeout);
  h.max_rate_limit_wait = std::chrono::seconds(o.max_wait);
  h.notice = [cmd](const std::string& note) {
    std::cerr << "tunnelctl " << cmd << ": " << note << "\n";
  };
  return h;
}

/// What to try when an error has a known fix.
std::string hint(const idp::error& e, bool okta, bool oauth) {
  const std::string what = e.what();
  switch (e.value()) {
    case idp::errc::unreachable:
      if (what.find("certificate") != std::string::npos) {
        return "pass --ca-file with the CA that issued the server's certificate";
      }
      return {};
    case idp::errc::unauthorized:
      if (e.http_status() == 403) {
        return okta ? "the token's administrator or the service app's scopes do not allow "
                      "managing network zones (okta.networkZones.manage)"
                    : "the app needs Policy.Read.All and Policy.ReadWrite.ConditionalAccess";
      }
      if (!okta) return "check --tenant, --client-id and --client-secret-file";
      return oauth ? "check --client-id, --private-key and --key-id against the service app"
                   : "check --token-file (an Okta API token, sent as SSWS)";
    case idp::errc::http_error:
      // The token endpoint's 400s name a wrong tenant or app (AADSTS90002, AADSTS700016).
      if (e.http_status() == 400 &&
          (e.idp_code() == "invalid_request" || e.idp_code() == "unauthorized_client")) {
        return okta ? "check --client-id and --scope" : "check --tenant and --client-id";
      }
      return {};
    case idp::errc::rate_limited:
      return "try again later or raise --max-wait";
    case idp::errc::not_found:
      return "check the name or id, or pass --create to create it";
    case idp::errc::conflict:
      return "make sure no other gateway or script publishes to it with --exclusive (or "
             "idp_sync.exclusive), then run again";
    default:
      return {};
  }
}

/// Runs `body`, mapping the library's errors to stderr and the exit code (refusals 1 in
/// publish; not found and inactive 1 in verify; everything else, ambiguous and conflict
/// included, 2).
template <class Body>
int guarded(const std::string& cmd, bool okta, bool oauth, bool verify, Body body) {
  try {
    return body();
  } catch (const idp::error& e) {
    std::string msg = e.what();
    const auto h = hint(e, okta, oauth);
    if (!h.empty() && !(verify && e.value() == idp::errc::not_found)) msg += "; " + h;
    std::cerr << "tunnelctl " << cmd << ": " << msg << "\n";
    if (verify) {
      return e.value() == idp::errc::not_found || e.value() == idp::errc::inactive ? exit_no
                                                                                   : exit_error;
    }
    return idp::is_refusal(e.value()) ? exit_no : exit_error;
  }
}

void print_publish(const idp::publish_result& r, const std::string& kind, const std::string& cmd) {
  for (const auto& c : r.diff)
    std::cout << static_cast<char>(c.kind) << ' ' << c.value << "\n";
  const auto label = kind + " \"" + r.name + "\" (" + (r.id.empty() ? "new" : r.id) + ")";
  std::cout << label << ": ";
  if (!r.changed) {
    std::cout << "no change\n";
    return;
  }
  if (r.dry_run) std::cout << "--dry-run: would be ";
  if (r.created) {
    std::cout << "created with " << r.entries << " entries";
  } else {
    std::cout << "updated: " << r.added << " added, " << r.removed << " removed";
  }
  std::cout << (r.dry_run ? " (nothing written)\n" : "\n");
  if (r.writes > 1) {
    // stderr, so the summary line on stdout keeps its format for scripts.
    std::cerr << "tunnelctl " << cmd << ": " << label << ": took " << r.writes
              << " writes: another writer replaced the list between our read and our write; "
                 "every egress address was read back in it after the last\n";
  }
}

int print_verify(const idp::verify_result& r, const std::string& kind, const std::string& cmd) {
  const auto label = kind + " \"" + r.name + "\" (" + r.id + ")";
  for (const auto& a : r.present)
    std::cout << "ok: " << a << " in " << label << "\n";
  const auto trusted = kind == "zone" ? "ACTIVE " : "trusted ";
  for (const auto& a : r.missing)
    std::cout << "missing: " << a << " not in " << trusted << label << "\n";
  if (!r.active) {
    std::cerr << "tunnelctl " << cmd << ": " << label << " is " << r.status << ": "
              << (kind == "zone" ? "only an ACTIVE IP zone of usage POLICY trusts its addresses"
                                 : "only a trusted ipNamedLocation counts")
              << "\n";
  }
  return r.ok() ? exit_ok : exit_no;
}

// --- zone ------------------------------------------------------------------------------------

struct okta_options {
  std::string org, zone, token_file, client_id, private_key, key_id, scope;
};

constexpr std::string_view zone_auth_usage =
    "(--token-file F | --client-id ID --private-key KEY.pem [--key-id KID] [--scope S])";

po::options_description zone_desc(okta_options& k, common_options& o, bool publish) {
  po::options_description desc("options");
  desc.add_options()("okta", po::value(&k.org)->required(),
                     "the Okta org URL, e.g. https://acme.okta.com")(
      "zone", po::value(&k.zone)->required(),
      "the network zone's id (nzo...) or name (compared ignoring case)")(
      "token-file", po::value(&k.token_file), "file holding an Okta API token (SSWS)")(
      "client-id", po::value(&k.client_id), "OAuth service app client id (private_key_jwt)")(
      "private-key", po::value(&k.private_key),
      "the service app's private key, PEM, RSA (RS256) or EC P-256 (ES256)")(
      "key-id", po::value(&k.key_id), "the key's kid in the app's JWKS (optional)")(
      "scope", po::value(&k.scope)->default_value("okta.networkZones.manage"),
      "OAuth scopes to request");
  add_common(desc, o, publish);
  return desc;
}

idp::okta_settings okta_settings_of(const okta_options& k, const common_options& o,
                                    const po::variables_map& vm, const std::string& cmd) {
  const bool ssws = vm.count("token-file") != 0;
  const bool oauth = vm.count("client-id") != 0 || vm.count("private-key") != 0;
  if (ssws == oauth) {
    throw usage_error(
        "give exactly one way to authenticate: --token-file, or --client-id with "
        "--private-key");
  }
  if (oauth && (k.client_id.empty() || k.private_key.empty())) {
    throw usage_error("OAuth needs both --client-id and --private-key");
  }
  if (ssws && (vm.count("key-id") != 0 || !vm["scope"].defaulted())) {
    throw usage_error("--key-id and --scope go with --client-id/--private-key, not --token-file");
  }
  idp::okta_settings s;
  s.org_url = k.org;
  s.zone = k.zone;
  s.http = http_of(o, cmd);
  if (ssws) {
    s.auth = idp::okta_ssws{idp::read_secret_file(k.token_file, "--token-file")};
  } else {
    idp::okta_oauth a;
    a.client_id = k.client_id;
    a.private_key = k.private_key;
    a.key_id = k.key_id;
    a.scopes = k.scope;
    s.auth = a;
  }
  return s;
}

int zone_run(const args& a, bool publish) {
  const std::string cmd = publish ? "zone publish" : "zone verify";
  okta_options k;
  common_options o;
  const auto desc = zone_desc(k, o, publish);
  po::variables_map vm;
  const std::string usage =
      publish ? "tunnelctl zone publish --okta ORG_URL --zone ZONE_ID_OR_NAME " +
                    std::string(zone_auth_usage) +
                    " (--address A ... | --config gateway.yaml) [--dry-run] [--exclusive] "
                    "[--create] [--ca-file F]\n\n"
                    "Puts each egress address as a /32 or /128 CIDR into the zone's gateways "
                    "(PUT, a full replace: every other field is sent back unchanged), then reads "
                    "it back and writes again (up to 5 times) while another writer has dropped "
                    "one. Entries it does not own are kept; --exclusive removes the other "
                    "gateways entries (proxies are never touched): use it only on a zone this "
                    "one gateway owns. A name matches ignoring case; two zones matching is an "
                    "error naming their ids, and --create never makes a second. Refuses more "
                    "than 150 entries, an INACTIVE zone and a missing one without --create.\n"
                    "Exit 0 done (changed or not), 1 refused, 2 error."
              : "tunnelctl zone verify --okta ORG_URL --zone ZONE_ID_OR_NAME " +
                    std::string(zone_auth_usage) +
                    " (--address A ... | --config gateway.yaml) [--ca-file F]\n\n"
                    "Exit 0 when every egress address is inside the ACTIVE zone's gateways "
                    "(CIDR or RANGE), 1 when one is not (or the zone is missing or INACTIVE), 2 "
                    "when it cannot be checked.";
  if (!parse_options(a, desc, {}, usage, vm)) return exit_ok;
  const auto addresses = egress_addresses(o);
  const bool oauth = vm.count("client-id") != 0;
  return guarded(cmd, true, oauth, !publish, [&] {
    idp::okta_client client(okta_settings_of(k, o, vm, cmd));
    if (!publish) return print_verify(client.verify(addresses), "zone", cmd);
    print_publish(client.publish(addresses, {o.dry_run, o.exclusive, o.create}), "zone", cmd);
    return exit_ok;
  });
}

int cmd_zone_publish(const args& a) {
  return zone_run(a, true);
}
int cmd_zone_verify(const args& a) {
  return zone_run(a, false);
}

// --- namedlocation ---------------------------------------------------------------------------

struct entra_options {
  std::string tenant, location, client_id, secret_file, login_url, graph_url;
};

int location_run(const args& a, bool publish) {
  const std::string cmd = publish ? "namedlocation publish" : "namedlocation verify";
  entra_options k;
  common_options o;
  po::options_description desc("options");
  desc.add_options()("tenant", po::value(&k.tenant)->required(), "the Entra tenant id or domain")(
      "location", po::value(&k.location)->required(),
      "the named location's id or display name (compared ignoring case, as Graph does)")(
      "client-id", po::value(&k.client_id)->required(), "the app registration's client id")(
      "client-secret-file", po::value(&k.secret_file)->required(),
      "file holding the app's client secret")(
      "login-url", po::value(&k.login_url)->default_value("https://login.microsoftonline.com"),
      "the token service")("graph-url",
                           po::value(&k.graph_url)->default_value("https://graph.microsoft.com"),
                           "Microsoft Graph");
  add_common(desc, o, publish);
  po::variables_map vm;
  const std::string usage =
      std::string("tunnelctl namedlocation ") + (publish ? "publish" : "verify") +
      " --tenant T --location ID_OR_NAME --client-id ID --client-secret-file F (--address A ... "
      "| --config gateway.yaml) [--login-url URL] [--graph-url URL] [--ca-file F]" +
      (publish ? " [--dry-run] [--exclusive] [--create]\n\n"
                 "Puts each egress address as a /32 or /128 CIDR into the ipNamedLocation's "
                 "ipRanges (PATCH), then reads it back and writes again (up to 5 times) while "
                 "another writer has dropped one. Ranges it does not own are kept unless "
                 "--exclusive (only for a location this one gateway owns). A display name "
                 "matches ignoring case, as in Graph; two locations matching is an error naming "
                 "their ids, and --create never makes a second. Refuses an untrusted location "
                 "and a missing one without --create (which creates it with isTrusted: true).\n"
                 "Exit 0 done (changed or not), 1 refused, 2 error."
               : "\n\nExit 0 when every egress address is inside the trusted location's "
                 "ipRanges, 1 when one is not (or the location is missing or untrusted), 2 when "
                 "it cannot be checked.");
  if (!parse_options(a, desc, {}, usage, vm)) return exit_ok;
  const auto addresses = egress_addresses(o);
  return guarded(cmd, false, true, !publish, [&] {
    idp::entra_settings s;
    s.tenant = k.tenant;
    s.location = k.location;
    s.client_id = k.client_id;
    s.client_secret = idp::read_secret_file(k.secret_file, "--client-secret-file");
    s.login_url = k.login_url;
    s.graph_url = k.graph_url;
    s.http = http_of(o, cmd);
    idp::entra_client client(std::move(s));
    if (!publish) return print_verify(client.verify(addresses), "named location", cmd);
    print_publish(client.publish(addresses, {o.dry_run, o.exclusive, o.create}), "named location",
                  cmd);
    return exit_ok;
  });
}

int cmd_location_publish(const args& a) {
  return location_run(a, true);
}
int cmd_location_verify(const args& a) {
  return location_run(a, false);
}

constexpr command zone_commands[] = {
    {"publish", "put the egress addresses into the Okta network zone", cmd_zone_publish},
    {"verify", "check that every egress address is in the ACTIVE Okta zone", cmd_zone_verify},
};

constexpr command location_commands[] = {
    {"publish", "put the egress addresses into the Entra ipNamedLocation", cmd_location_publish},
    {"verify", "check that every egress address is in the trusted named location",
     cmd_location_verify},
};

}  // namespace

const group zone_group{"zone", "the Okta network zone of the egress addresses", zone_commands};
const group namedlocation_group{"namedlocation", "the Entra named location of the egress addresses",
                                location_commands};

}  // namespace tunnelctl
