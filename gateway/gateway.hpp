// gateway — the tunnelgate daemon (DESIGN.md §1, §6, §8). Public for main.cpp and tests.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <memory>

namespace tunnelgate::gateway {

class compliance;

/// Validates a configuration file and everything it references (rules, certificates, CRLs,
/// secrets, the compliance source, egress addresses) without serving. Prints every problem to
/// `err` as `file:line:column: key.path: message` and returns false when there is any.
bool check_config(const std::filesystem::path& file, std::ostream& err);

/// Runs the daemon until SIGTERM or SIGINT (graceful: stop accepting, close sessions, exit
/// within limits.shutdown_grace); SIGHUP reloads the configuration, certificates, CRLs, rules
/// and inventory without dropping live sessions, keeping the old configuration if the new one
/// is broken. Returns the process exit code (0 clean stop, 2 configuration error at start).
int run(const std::filesystem::path& file);

}  // namespace tunnelgate::gateway
