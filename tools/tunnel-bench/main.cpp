// tunnel-bench — the gateway's load driver (DESIGN.md §9), also used against other TLS tunnel
// servers (tools/bench-peers: HAProxy in TCP mode, Squid's https_port):
//   handshakes       full mTLS handshakes per second, each followed by one refused CONNECT;
//   throughput       bytes through N tunnels to a sink, each way;
//   tunnels          new connection + handshake + CONNECT + GET 1 KiB + close, per second;
//   resume           the same with TLS session resumption;
//   hold             K idle tunnels: the server's RSS per tunnel, and after they close;
//   revoke           D devices' tunnels; time from the UEM webhook to the revoked one's close;
//   flood            an attacker's handshake flood: ClientHello then reset, at a fixed rate;
//   sink             the origin behind the server (own process, epoll);
//   baseline-server  a bare OpenSSL mTLS server, for comparison.
// With --target-pid every mode reads the server's CPU seconds (and RSS) from /proc, so figures
// read as work per server CPU-second. --json prints one JSON object instead of the table.
// The client side runs on one io_context (one thread) so it can be pinned to one core with
// taskset, apart from the server. See tools/bench-gateway for the whole measurement.
#include <boost/program_options.hpp>
#include <iostream>

#include "bench.hpp"

namespace po = boost::program_options;

namespace {

constexpr const char* usage = R"(tunnel-bench MODE [options]

  handshakes  --gateway A:P --ca CA --cert C --key K [--concurrency N] [--duration S] [--target H:P]
  throughput  --gateway A:P --ca CA --cert C --key K [--origin SINK] [--streams N] [--megabytes M]
              [--direction up|down|both]
  tunnels     --gateway A:P --ca CA --cert C --key K --origin SINK [--concurrency N | --rate R]
              [--duration S]
  resume      --gateway A:P --ca CA --cert C --key K --origin SINK [--concurrency N] [--duration S]
  hold        --gateway A:P --ca CA --cert C --key K --origin SINK --sessions K
              [--sources 127.1.0.0/16] [--settle S]
  revoke      --gateway A:P --ca CA --ca-key CA.key --origin SINK --uem-admin https://A:P
              --webhook http://A:P/ [--webhook-user U --webhook-password-file F]
              [--devices D] [--rounds R]
  flood       --gateway A:P --rate R [--duration S] [--sources CIDR] [--flight-wait MS]
  sink        --listen A:P [--listen A:P ...]
  baseline-server --gateway LISTEN:P --ca CLIENT_CA --cert SERVER.pem --key SERVER.key
              [--session-tickets] [--tunnel-answers]
Common: --tls 1.2|1.3, --target-pid PID (the server measured), --json, --no-connect (the
server forwards the TLS connection straight to the origin: no CONNECT), --sources CIDR.
Exit 0 when every request was answered and every byte counted, 1 otherwise, 2 on bad usage.
)";

bool needs(const std::string& mode, std::initializer_list<const char*> modes) {
  for (const char* m : modes)
    if (mode == m) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  bench::options o;
  po::options_description desc("options");
  desc.add_options()("help,h", "this help")(
      "gateway", po::value(&o.gateway), "the server's device listener (baseline-server: listen)")(
      "ca", po::value(&o.ca), "CA that signed the server's certificate (PEM)")(
      "cert", po::value(&o.cert), "device certificate (PEM, chain)")(
      "key", po::value(&o.key), "device key")("tls", po::value(&o.tls)->default_value("1.3"),
                                              "TLS version: 1.2 or 1.3")(
      "duration", po::value(&o.duration)->default_value(5), "handshakes, tunnels, resume: seconds")(
      "concurrency", po::value(&o.concurrency)->default_value(16),
      "connections in flight (hold, revoke: while opening)")(
      "target-pid", po::value(&o.target_pid)->default_value(0),
      "the server process measured: CPU seconds and RSS from /proc")(
      "json", po::bool_switch(&o.json), "print one JSON object instead of the table")(
      "no-connect", po::bool_switch(&o.no_connect),
      "no CONNECT: the server forwards the connection to the origin itself (HAProxy TCP mode)")(
      "sources", po::value(&o.sources),
      "bind each connection to the next address of this IPv4 CIDR (e.g. 127.1.0.0/16)")(
      "target", po::value(&o.target)->default_value(o.target),
      "handshakes: the CONNECT target (one the rules refuse); \"\" sends GET / HTTP/1.0")(
      "megabytes", po::value(&o.megabytes)->default_value(256),
      "throughput: MB each way per stream")(
      "direction", po::value(&o.direction)->default_value("both"), "throughput: up, down or both")(
      "streams", po::value(&o.streams)->default_value(1), "throughput: parallel tunnels")(
      "origin", po::value(&o.origin), "the sink behind the server, ADDR:PORT")(
      "rate", po::value(&o.rate)->default_value(0),
      "tunnels: open loop, new tunnels per second; flood: attempts per second")(
      "flight-wait", po::value(&o.flight_wait_ms)->default_value(200),
      "flood: milliseconds an attempt waits for the server's answer before its reset")(
      "sessions", po::value(&o.sessions)->default_value(0), "hold: tunnels to hold")(
      "settle", po::value(&o.settle)->default_value(3),
      "hold: seconds after closing before the last RSS reading")(
      "listen", po::value(&o.listen)->composing(), "sink: ADDR:PORT to listen on; repeatable")(
      "session-tickets", po::bool_switch(&o.session_tickets),
      "baseline-server: issue session tickets")(
      "tunnel-answers", po::bool_switch(&o.tunnel_answers),
      "baseline-server: answer CONNECT with 200 and GET with 1 KiB")(
      "devices", po::value(&o.devices)->default_value(100), "revoke: devices (one tunnel each)")(
      "rounds", po::value(&o.rounds)->default_value(10), "revoke: devices revoked, one by one")(
      "ca-key", po::value(&o.ca_key), "revoke: the dev CA's key, to make device certificates")(
      "ca-cert", po::value(&o.ca_cert), "revoke: the CA certificate for --ca-key (default --ca)")(
      "uem-admin", po::value(&o.uem_admin), "revoke: uem-sim's base URL (https://IP:PORT)")(
      "uem-ca", po::value(&o.uem_ca), "revoke: CA for uem-sim and an https webhook (default --ca)")(
      "webhook", po::value(&o.webhook),
      "revoke: the gateway's uem.webhook URL (http(s)://IP:PORT/)")(
      "webhook-user", po::value(&o.webhook_user), "revoke: uem.webhook.username")(
      "webhook-password-file", po::value(&o.webhook_password_file),
      "revoke: a file holding uem.webhook's password")(
      "udid-prefix", po::value(&o.udid_prefix)->default_value(o.udid_prefix),
      "revoke: device UDIDs are PREFIX1..PREFIXD")(
      "revoke-timeout", po::value(&o.revoke_timeout)->default_value(10),
      "revoke: seconds a revoked tunnel may stay open")(
      "no-reconnect", "revoke: leave revoked devices disconnected");
  po::options_description hidden;
  hidden.add_options()("mode", po::value(&o.mode));
  po::positional_options_description pos;
  pos.add("mode", 1);
  po::options_description all;
  all.add(desc).add(hidden);
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    if (vm.count("help") != 0 || argc == 1) {
      std::cout << usage << "\n" << desc << "\n";
      return 0;
    }
    po::notify(vm);
    o.reconnect = vm.count("no-reconnect") == 0;
    const auto& m = o.mode;
    if (!needs(m, {"handshakes", "throughput", "tunnels", "resume", "hold", "revoke", "sink",
                   "baseline-server", "flood"})) {
      throw std::runtime_error("unknown mode '" + m + "' (see --help)");
    }
    if (o.tls != "1.2" && o.tls != "1.3") throw std::runtime_error("--tls must be 1.2 or 1.3");
    if (o.direction != "up" && o.direction != "down" && o.direction != "both")
      throw std::runtime_error("--direction must be up, down or both");
    if (o.concurrency == 0 || o.streams == 0)
      throw std::runtime_error("--concurrency and --streams must be at least 1");
    if (m == "flood" && o.gateway.empty()) throw std::runtime_error("flood: --gateway is required");
    if (m != "sink" && m != "flood" && (o.gateway.empty() || o.ca.empty()))
      throw std::runtime_error(m + ": --gateway and --ca are required");
    if (m == "flood") return bench::run_flood(o);
    if (m != "sink" && m != "revoke" && (o.cert.empty() || o.key.empty()))
      throw std::runtime_error(m + ": --cert and --key are required");
    if (m == "handshakes") return bench::run_handshakes(o);
    if (m == "throughput") return bench::run_throughput(o);
    if (m == "baseline-server") return bench::run_baseline_server(o);
    if (m == "sink") return bench::run_sink(o);
    if (m == "tunnels") return bench::run_tunnels(o, false);
    if (m == "resume") return bench::run_tunnels(o, true);
    if (m == "hold") return bench::run_hold(o);
    return bench::run_revoke(o);
  } catch (const std::exception& e) {
    std::cerr << "tunnel-bench: " << e.what() << "\n";
    return 2;
  }
}
