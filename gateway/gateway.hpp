// gateway — the tunnelgate daemon (DESIGN.md §1, §6, §8). Public for main.cpp and tests.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <memory>
#include <string>

namespace tunnelgate::gateway {

class compliance;

/// tunnelgate's exit codes (docs/gateway.md "Exit codes"; the systemd unit does not restart
/// on exit_usage or exit_config: RestartPreventExitStatus=2 78).
enum exit_code : int {
  exit_ok = 0,
  exit_runtime = 1,  ///< a runtime failure: a listener could not be bound, the daemon refused a
                     ///< reload request's delivery, ...
  exit_usage = 2,    ///< the command line is wrong
  exit_config = 78,  ///< the configuration is invalid (EX_CONFIG of sysexits.h)
};

/// Validates a configuration file and everything it references (rules, certificates, CRLs,
/// secrets, the compliance source, egress addresses) without serving. Prints every problem to
/// `err` as `file:line:column: key.path: message` and returns false when there is any.
bool check_config(const std::filesystem::path& file, std::ostream& err);

/// Runs the daemon until SIGTERM or SIGINT (graceful: stop accepting, close the connections
/// that wait for a request, let tunnels drain for limits.shutdown_grace, then close them);
/// SIGUSR1 reopens the access log; SIGHUP reopens it too and reloads the configuration,
/// certificates, CRLs, rules and inventory without dropping live sessions, keeping the old
/// configuration if the new one is broken. Returns the process exit code (exit_code).
int run(const std::filesystem::path& file);

/// `tunnelgate --reload FILE`: checks FILE as check_config does, then asks the running daemon
/// (POST /api/v1/reload on admin.listen, with admin.token when set) to reload and waits for
/// its answer. Prints what happened; returns exit_ok when the daemon applied the new
/// configuration, exit_config when it (or the check) refused it, exit_runtime when the daemon
/// could not be asked.
int request_reload(const std::filesystem::path& file, std::ostream& out, std::ostream& err);

/// `tunnelctl posture-sync run --config FILE`: posture_sync in the foreground on a host of its
/// own, driven by the UEM's webhook events (uem.webhook is required), until SIGTERM or SIGINT.
/// Reads only the `uem`, `posture_sync` and `log` sections of FILE. Returns an exit_code.
int posture_sync_run(const std::filesystem::path& file, std::ostream& err);

/// `tunnelctl posture-sync apply --config FILE --udid U | --serial S`: asks the UEM about one
/// device and runs posture_sync's actions for its verdict once, now, printing one line per
/// action. exit_ok (0) when every action ended done or already; exit_runtime (1) when an
/// action failed or found nothing to act on; 2 when the UEM could not be asked; exit_config
/// for a bad FILE.
int posture_sync_apply(const std::filesystem::path& file, bool by_udid, const std::string& value,
                       std::ostream& out, std::ostream& err);

/// `tunnelctl posture-sync jwks --config FILE`: the public JWKS of posture_sync.caep's key
/// (what the gateway serves at /.well-known/jwks.json on admin.listen).
int posture_sync_jwks(const std::filesystem::path& file, std::ostream& out, std::ostream& err);

}  // namespace tunnelgate::gateway
