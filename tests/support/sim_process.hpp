// A simulator process (okta-sim, entra-sim, ...) for unit tests: started on port 0 with
// `--port-file`, its output in DIR/NAME.log, SIGTERM and reaped on destruction. Needs gtest.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace tunnelgate::testing {

/// The whole file, or "" when it cannot be read.
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// One simulator process on port 0; SIGTERM on destruction.
class sim_process {
 public:
  /// `args[0]` is the binary's path; `--port-file` is added. Waits up to 10 s for the port.
  sim_process(const std::filesystem::path& dir, const std::string& name,
              std::vector<std::string> args) {
    using namespace std::chrono_literals;
    const auto port_file = dir / (name + ".port");
    const auto log = dir / (name + ".log");
    pid_ = ::fork();
    if (pid_ == 0) {
      const auto fd = std::fopen(log.c_str(), "w");
      if (fd != nullptr) {
        ::dup2(::fileno(fd), 1);
        ::dup2(::fileno(fd), 2);
      }
      args.push_back("--port-file");
      args.push_back(port_file.string());
      std::vector<char*> argv;
      argv.reserve(args.size() + 1);
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < end) {
      const auto p = slurp(port_file);
      if (!p.empty() && p.back() == '\n') {
        port_ = std::stoi(p);
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << name << " did not start: " << slurp(log);
  }
  ~sim_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  sim_process(const sim_process&) = delete;
  sim_process& operator=(const sim_process&) = delete;
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace tunnelgate::testing
