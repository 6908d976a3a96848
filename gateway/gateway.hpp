// gateway — the tunnelgate daemon (DESIGN.md §1, §6, §8). Public for main.cpp and tests.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <memory>

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

}  // namespace tunnelgate::gateway
