// Internal: the gateway's YAML configuration, validated whole (every error reported as
// file:line:column: key.path: message), immutable once loaded.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "certauth/certauth.hpp"
#include "dtr/dtr.hpp"
#include "gateway/egress_policy.hpp"
#include "gateway/net.hpp"
#include "idp/idp.hpp"

namespace tunnelgate::gateway {

using std::chrono::milliseconds;

struct tls_config {
  std::filesystem::path cert;       ///< server certificate chain (PEM)
  std::filesystem::path key;        ///< server private key (PEM)
  std::filesystem::path client_ca;  ///< device CA bundle
  std::vector<std::filesystem::path> crl;
  int min_version = 0;  ///< TLS1_2_VERSION or TLS1_3_VERSION
  std::chrono::seconds clock_skew{300};
  certauth::stale_crl_policy stale_crl = certauth::stale_crl_policy::refuse;
  /// Refuse (no_crl) certificates whose issuer has no CRL; unset: on iff any CRL is configured.
  std::optional<bool> crl_required;
  /// TLS 1.3 session tickets sent after a full handshake (0 = no resumption). The tickets are
  /// stateful: a reference into this process's session cache, never the session itself.
  unsigned session_tickets = 1;
  std::chrono::seconds session_lifetime{3600};  ///< a ticket resumes for at most this long
  std::size_t session_cache_size = 20480;       ///< sessions remembered (oldest dropped first)
  /// Accepted device chains remembered by certauth (a returning device's chain is not verified
  /// again while nothing that could change the verdict changed): how long, how many.
  std::chrono::seconds verify_cache_ttl{60};
  std::size_t verify_cache_size = 20480;
};

struct egress_config {
  std::optional<net::ip::address> v4;
  std::optional<net::ip::address> v6;
  milliseconds resolve_timeout{5000};
  milliseconds connect_timeout{10000};
  std::vector<net::ip::udp::endpoint> resolver;  ///< empty: the system resolver
  std::string check_url;           ///< "what is my IP" service fetched from the egress address
  std::filesystem::path check_ca;  ///< trust for check_url instead of the system store
  std::filesystem::path proxy_ca;  ///< extra CA bundle for https upstream proxies
  std::vector<cidr> allow;         ///< egress.allow: opens special and private ranges
  std::vector<cidr> deny;          ///< egress.deny: always refused, even where allow lists it
};

struct admin_config {
  std::optional<tcp::endpoint> listen;
  std::filesystem::path token_file;
  std::string token;  ///< loaded from token_file; required when listen is not loopback
  /// HTTPS for the admin API (both set) or plain HTTP (both empty); required when listen is
  /// not loopback, so the token never crosses a network in clear.
  std::filesystem::path tls_cert;
  std::filesystem::path tls_key;
  bool tls() const noexcept { return !tls_cert.empty(); }
};

struct limits_config {
  std::size_t max_sessions_per_device = 64;
  std::size_t max_connections = 10000;
  std::size_t max_handshakes_per_thread = 1000;      ///< in progress at once, per gateway thread
  std::size_t max_pending_per_source = 256;          ///< unfinished handshakes per source; 0: off
  double handshake_rate_per_source = 100;            ///< new connections/s per source; 0: off
  double handshake_burst_per_source = 200;           ///< ... with bursts up to this many
  std::size_t header_limit = std::size_t{8} * 1024;  ///< request line + headers, bytes
  std::size_t target_limit = 1024;                   ///< request target, bytes (414 beyond)
  std::size_t max_headers = 64;
  milliseconds first_byte_timeout{3000};  ///< accept to the ClientHello's first byte (at most
                                          ///< handshake_timeout)
  milliseconds handshake_timeout{10000};  ///< from accept to a complete handshake
  milliseconds header_timeout{10000};     ///< for each request head
  milliseconds idle_timeout{300000};      ///< no byte either way on a tunnel
  milliseconds upstream_timeout{10000};   ///< upstream proxy CONNECT answer
  milliseconds shutdown_grace{5000};
};

struct log_config {
  std::string format = "text";  ///< text | json
  std::string level = "info";
  std::filesystem::path access_log;  ///< empty: access lines go to the main log
};

/// idp_sync: keep the egress addresses in the Okta zone / Entra named location (issue 6).
struct idp_sync_config {
  milliseconds interval{300'000};
  bool publish = true;           ///< false: verify only
  idp::publish_options options;  ///< exclusive, create (dry_run never)
  std::optional<idp::okta_settings> okta;
  std::optional<idp::entra_settings> entra;
};

/// posture_sync: when the UEM reports a device no longer admitted, suspend it in Okta and
/// end its user's Okta and Entra sessions, and send a CAEP event; undo the suspension when it
/// is admitted again (issue 15, docs/posture-sync.md). Absent = off.
struct posture_sync_config {
  struct okta_part {
    idp::okta_directory_settings settings;
    bool suspend_devices = true;  ///< suspend / unsuspend the Okta device
    bool clear_sessions = true;   ///< DELETE the user's sessions with oauthTokens=true
  };
  /// Which UEM field names the Entra user: the enrollment e-mail or the enrollment user name.
  enum class entra_user { email, user_name };
  struct entra_part {
    idp::entra_directory_settings settings;
    entra_user user = entra_user::email;
  };
  std::optional<okta_part> okta;
  std::optional<entra_part> entra;
  std::optional<idp::caep_settings> caep;
  unsigned workers = 4;              ///< threads calling the IdPs (each with its own clients)
  milliseconds retry_initial{1000};  ///< first wait after a failed action; doubles each time
  milliseconds retry_max{300'000};   ///< the longest wait between two attempts
  bool restore = true;  ///< unsuspend and send `compliant` when the device is admitted again
};

/// vpn: the full-device VPN (openconnect/CSTP on the device listener), absent = no VPN.
struct vpn_config {
  std::string tun = "tunnelgate0";  ///< TUN device name
  cidr pool;                        ///< IPv4 client pool; its first host is the gateway's
                                    ///< tunnel address (and in-tunnel DNS server)
  std::optional<cidr> pool6;        ///< optional IPv6 client pool (one address per session)
  cidr mapped_pool;                 ///< addresses handed out for tunnelled host names
  unsigned mtu = 1400;
  bool dns = true;  ///< serve DNS (UDP and TCP 53) on the tunnel address
  std::string default_domain;
  milliseconds dpd{30'000};
  milliseconds keepalive{20'000};
  milliseconds idle_timeout{1'800'000};
  milliseconds cookie_ttl{60'000};
  std::size_t max_sessions = 1000;
  std::size_t max_tunnels_per_device =
      2;  ///< a device's tunnels at once (ocserv's max-same-clients)
  /// The interface replies arrive on when the egress address sits on loopback or a dummy
  /// (empty: the interface holding egress.address).
  std::string egress_interface;
  net::ip::address_v4 tunnel_address() const;  ///< the pool's first host
  friend bool operator==(const vpn_config&, const vpn_config&) = default;
};

/// listen[i].proxy_protocol: connections arrive through L4 load balancers that write a PROXY
/// protocol v2 header first (gateway/proxy_accept.cpp).
struct proxy_protocol_config {
  std::vector<cidr> senders;  ///< the balancers' addresses; never empty; others are reset
  friend bool operator==(const proxy_protocol_config&, const proxy_protocol_config&) = default;
};

/// What a device listener does besides TLS (listen[i] written as a mapping).
struct listener_options {
  std::optional<proxy_protocol_config> proxy_protocol;  ///< absent: devices connect directly
  friend bool operator==(const listener_options&, const listener_options&) = default;
};

struct config {
  std::filesystem::path file;
  std::vector<tcp::endpoint> listen;
  /// Parallel to `listen` (same index, same size when loaded from a file; code that builds a
  /// config by hand may leave it shorter: a missing entry is a plain listener).
  std::vector<listener_options> listen_options;
  tls_config tls;
  certauth::identity_mapping identity;
  std::filesystem::path dtr_file;
  std::shared_ptr<const dtr::policy> rules;
  egress_config egress;
  admin_config admin;
  limits_config limits;
  log_config log;
  unsigned threads = 0;  ///< 0: one per core
  /// upstream proxy name -> "user:password", from `upstream_credentials.<name>.file`.
  std::map<std::string, std::string> proxy_credentials;
  std::optional<idp_sync_config> idp_sync;
  std::optional<vpn_config> vpn;
  std::optional<posture_sync_config> posture_sync;
};

struct config_result {
  std::shared_ptr<const config> value;
  std::vector<std::string> errors;  ///< "file:line:col: key.path: message"
  explicit operator bool() const noexcept { return value != nullptr; }
};

/// Loads and validates the file and everything it references (rules file, secret files).
/// Relative paths resolve against the config file's folder.
/// What a load reads: the whole gateway, or only `log` and `posture_sync` (tunnelctl
/// posture-sync on a separate host; the file may hold the gateway's other sections too).
enum class load_scope { gateway, posture_sync };
config_result load_config(const std::filesystem::path& file,
                          load_scope scope = load_scope::gateway);

/// "250ms", "10s", "5m", "1h" -> milliseconds; nullopt when malformed.
std::optional<milliseconds> parse_duration(std::string_view s);

}  // namespace tunnelgate::gateway
