// Shared plumbing for tunnelctl sub-commands: dispatch, option parsing, file reading.
#pragma once

#include <chrono>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/program_options.hpp>

namespace tunnelctl {

namespace po = boost::program_options;

/// Exit codes shared by every command. Commands with a yes/no answer (eval, inspect, check)
/// use 0 and 1 for the answer; 2 is always "could not answer" (bad usage, unreadable input).
inline constexpr int exit_ok = 0;
inline constexpr int exit_no = 1;
inline constexpr int exit_error = 2;

/// Thrown for a bad command line; main prints it with a pointer to --help and exits 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Thrown for any other failure a command reports (unreadable file, bad input); exits 2.
struct command_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using args = std::vector<std::string>;

struct command {
  std::string_view name;
  std::string_view summary;
  int (*run)(const args& a);  ///< a excludes the group and command names
};

struct group {
  std::string_view name;
  std::string_view summary;
  std::span<const command> commands;
};

/// Parses `a` against `desc` (plus positional arguments) into `vm`. Returns false when --help
/// was asked for, after printing `usage` and `desc` to stdout. Throws usage_error otherwise.
bool parse_options(const args& a, const po::options_description& desc,
                   const po::positional_options_description& positional, std::string_view usage,
                   po::variables_map& vm);

/// A time as UTC ISO 8601, e.g. 2026-11-29T00:00:00Z ("?" if it cannot be formatted).
std::string when(std::chrono::system_clock::time_point tp);

/// Reads a whole file; throws command_error naming the path and the OS error.
std::string read_file(const std::string& path);

/// Runs `tunnelctl GROUP COMMAND ARGS...` against the table; returns the exit code.
int dispatch(std::span<const group> groups, int argc, char** argv);

}  // namespace tunnelctl
