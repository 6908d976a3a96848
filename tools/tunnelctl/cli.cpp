#include "cli.hpp"

#include "support/support.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

namespace tunnelctl {

bool parse_options(const args& a, const po::options_description& desc,
                   const po::positional_options_description& positional, std::string_view usage,
                   po::variables_map& vm) {
  po::options_description all = desc;
  all.add_options()("help,h", "show this help");
  try {
    po::store(po::command_line_parser(a).options(all).positional(positional).run(), vm);
    if (vm.count("help") != 0) {
      std::cout << "usage: " << usage << "\n\n" << all;
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw usage_error(e.what());
  }
  return true;
}

std::string when(std::chrono::system_clock::time_point tp) {
  const std::time_t t = std::chrono::system_clock::to_time_t(tp);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return "?";
  return buf;
}

std::string read_file(const std::string& path) {
  try {
    return tunnelgate::support::read_file(path, "");
  } catch (const tunnelgate::support::error& e) {
    throw command_error(e.message());
  }
}

namespace {

void print_overview(std::span<const group> groups) {
  std::cout << "usage: tunnelctl GROUP COMMAND [OPTIONS]\n       tunnelctl --version\n\n";
  for (const auto& g : groups) {
    std::cout << "  " << g.name << "\t" << g.summary << "\n";
    for (const auto& c : g.commands) {
      std::cout << "    " << g.name << ' ' << c.name << "\t" << c.summary << "\n";
    }
  }
  std::cout << "\nEvery command takes --help.\n";
}

}  // namespace

int dispatch(std::span<const group> groups, int argc, char** argv) {
  const args all(argv + 1, argv + argc);
  if (all.empty() || all[0] == "--help" || all[0] == "-h" || all[0] == "help") {
    print_overview(groups);
    return all.empty() ? exit_error : exit_ok;
  }
  if (all[0] == "--version") {
    std::cout << "tunnelctl " << tunnelgate::support::version() << "\n";
    return exit_ok;
  }
  const group* g = nullptr;
  for (const auto& candidate : groups) {
    if (candidate.name == all[0]) g = &candidate;
  }
  if (g == nullptr) {
    std::cerr << "tunnelctl: unknown command group '" << all[0] << "' (try tunnelctl --help)\n";
    return exit_error;
  }
  if (all.size() < 2 || all[1] == "--help" || all[1] == "-h") {
    std::cout << "usage: tunnelctl " << g->name << " COMMAND [OPTIONS]\n\n";
    for (const auto& c : g->commands)
      std::cout << "  " << c.name << "\t" << c.summary << "\n";
    return all.size() < 2 ? exit_error : exit_ok;
  }
  for (const auto& c : g->commands) {
    if (c.name != all[1]) continue;
    try {
      return c.run(args(all.begin() + 2, all.end()));
    } catch (const usage_error& e) {
      std::cerr << "tunnelctl " << g->name << ' ' << c.name << ": " << e.what()
                << " (try --help)\n";
    } catch (const std::exception& e) {
      std::cerr << "tunnelctl " << g->name << ' ' << c.name << ": " << e.what() << "\n";
    }
    return exit_error;
  }
  std::cerr << "tunnelctl: unknown command '" << g->name << ' ' << all[1] << "' (try tunnelctl "
            << g->name << " --help)\n";
  return exit_error;
}

}  // namespace tunnelctl
