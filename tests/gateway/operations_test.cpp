// The daemon's operational pieces: sd_notify datagrams, the metrics histogram, log values,
// and the access log's modes and reopening.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <variant>

#include "gateway/logging.hpp"
#include "gateway/metrics.hpp"
#include "gateway/sd_notify.hpp"
#include "support/temp_dir.hpp"

namespace tunnelgate::gateway {
namespace {

/// Sets environment variables for one test and restores them.
class scoped_env {
 public:
  scoped_env(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~scoped_env() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

/// A bound datagram socket standing in for systemd's notification socket.
class fake_systemd {
 public:
  explicit fake_systemd(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path_.data(), path_.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size());
    if (path_[0] == '@') {
      a.sun_path[0] = '\0';
    } else {
      ++len;
    }
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), len), 0) << std::strerror(errno);
  }
  ~fake_systemd() {
    ::close(fd_);
    if (path_[0] == '/') ::unlink(path_.c_str());
  }
  fake_systemd(const fake_systemd&) = delete;
  fake_systemd& operator=(const fake_systemd&) = delete;
  std::string receive() {
    char buf[512];
    const auto n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    return n < 0 ? std::string("<nothing>") : std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST(SdNotify, WithoutNotifySocketEveryCallIsANoOp) {
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  sd_notifier n;
  EXPECT_FALSE(n.enabled());
  EXPECT_TRUE(n.ready("serving"));
  EXPECT_FALSE(n.watchdog_interval());
}

TEST(SdNotify, SendsEachStateAsOneDatagramToAPathSocket) {
  testing::temp_dir dir;
  const auto path = (dir.path() / "notify").string();
  fake_systemd systemd(path);
  scoped_env socket("NOTIFY_SOCKET", path);
  sd_notifier n;
  ASSERT_TRUE(n.enabled());
  EXPECT_TRUE(n.ready("serving"));
  EXPECT_EQ(systemd.receive(), "READY=1\nSTATUS=serving");
  EXPECT_TRUE(n.reloading());
  const auto r = systemd.receive();
  EXPECT_TRUE(r.starts_with("RELOADING=1\nMONOTONIC_USEC=")) << r;
  EXPECT_GT(r.size(), std::string("RELOADING=1\nMONOTONIC_USEC=").size());
  EXPECT_TRUE(n.stopping());
  EXPECT_EQ(systemd.receive(), "STOPPING=1");
}

TEST(SdNotify, AbstractSocketNamesStartWithAt) {
  const std::string name = "@tunnelgate-test-" + std::to_string(::getpid());
  fake_systemd systemd(name);
  scoped_env socket("NOTIFY_SOCKET", name);
  sd_notifier n;
  EXPECT_TRUE(n.watchdog());
  EXPECT_EQ(systemd.receive(), "WATCHDOG=1");
}

TEST(SdNotify, AFailedSendIsReportedWithItsReason) {
  testing::temp_dir dir;
  scoped_env socket("NOTIFY_SOCKET", (dir.path() / "nobody-listens").string());
  sd_notifier n;
  EXPECT_FALSE(n.ready("serving"));
  EXPECT_NE(n.last_error().find("nobody-listens"), std::string::npos) << n.last_error();
}

TEST(SdNotify, WatchdogIntervalIsHalfOfWatchdogUsecForThisProcessOnly) {
  {
    scoped_env usec("WATCHDOG_USEC", "30000000");
    sd_notifier n;
    ASSERT_TRUE(n.watchdog_interval());
    EXPECT_EQ(n.watchdog_interval()->count(), 15000000);
  }
  {
    scoped_env usec("WATCHDOG_USEC", "30000000");
    scoped_env pid("WATCHDOG_PID", std::to_string(::getpid() + 1));
    EXPECT_FALSE(sd_notifier().watchdog_interval()) << "meant for another process";
  }
  {
    scoped_env usec("WATCHDOG_USEC", "30s");
    EXPECT_FALSE(sd_notifier().watchdog_interval()) << "not a number of microseconds";
  }
}

TEST(Histogram, BucketsAreCumulativeWithCountAndSum) {
  histogram h("t_seconds", "test", {0.01, 0.1, 1});
  h.observe(0.005);
  h.observe(0.05);
  h.observe(0.05);
  h.observe(5);
  h.observe(-1);  // a clock step: counted as 0
  std::string out;
  h.render(out);
  EXPECT_NE(out.find("# TYPE t_seconds histogram\n"), std::string::npos);
  EXPECT_NE(out.find("t_seconds_bucket{le=\"0.01\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_bucket{le=\"0.1\"} 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_bucket{le=\"1\"} 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_bucket{le=\"+Inf\"} 5\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_sum 5.105000000\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_count 5\n"), std::string::npos) << out;
}

TEST(ProcessMetrics, NameTheProcessAsPrometheusClientsDo) {
  const auto out = render_process_metrics();
  for (const char* name : {"process_cpu_seconds_total ", "process_resident_memory_bytes ",
                           "process_open_fds ", "process_max_fds ", "process_start_time_seconds "})
    EXPECT_NE(out.find(std::string("\n") + name), std::string::npos) << name << "\n" << out;
}

TEST(LogValue, NumbersStayNumbersAndTextStaysText) {
  EXPECT_EQ(log_value(std::uint64_t{42}).text(), "42");
  EXPECT_TRUE(std::holds_alternative<std::uint64_t>(log_value(std::size_t{42}).value()));
  EXPECT_TRUE(std::holds_alternative<std::int64_t>(log_value(-3).value()));
  EXPECT_TRUE(std::holds_alternative<bool>(log_value(true).value()));
  EXPECT_EQ(log_value(true).text(), "true");
  EXPECT_TRUE(std::holds_alternative<std::string>(log_value("12345").value()))
      << "a serial number of digits is text";
  EXPECT_EQ(log_value(0.25).text(), "0.25");
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 0777U;
}

TEST(AccessLog, CreatedPrivateAndReopenedAfterAMove) {
  testing::temp_dir dir;
  const auto file = dir.path() / "logs" / "access.log";
  log_config cfg;
  cfg.format = "json";
  cfg.access_log = file;
  const auto old_umask = ::umask(0);  // the modes must not depend on the umask
  {
    event_log log(cfg);
    ::umask(old_umask);
    EXPECT_EQ(mode_of(dir.path() / "logs"), 0750U);
    EXPECT_EQ(mode_of(file), 0640U);
    log.access({{"udid", "A-1"}, {"bytes_up", std::uint64_t{7}}});
    std::filesystem::rename(file, dir.path() / "logs" / "access.log.1");
    EXPECT_EQ(log.reopen_access_log(), "");
    log.access({{"udid", "B-2"}, {"bytes_up", std::uint64_t{8}}});
    EXPECT_EQ(mode_of(file), 0640U);
  }
  const auto before = slurp(dir.path() / "logs" / "access.log.1");
  const auto after = slurp(file);
  EXPECT_NE(before.find("\"udid\":\"A-1\",\"bytes_up\":7}"), std::string::npos) << before;
  EXPECT_EQ(before.find("B-2"), std::string::npos) << before;
  EXPECT_NE(after.find("\"udid\":\"B-2\",\"bytes_up\":8}"), std::string::npos) << after;
}

TEST(AccessLog, AnUnwritablePlaceIsRefusedWithTheFix) {
  testing::temp_dir dir;
  std::ofstream(dir.path() / "not-a-folder") << "x";
  log_config cfg;
  cfg.access_log = dir.path() / "not-a-folder" / "access.log";
  try {
    event_log log(cfg);
    FAIL() << "opened an access log under a file";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cannot open the access log (log.access_log)"), std::string::npos) << m;
    EXPECT_NE(m.find("/var/log/tunnelgate"), std::string::npos) << m;
  }
}

TEST(AccessLog, ReconfigureSwitchesTheFileAndKeepsTheOldOneWhenTheNewFails) {
  testing::temp_dir dir;
  log_config cfg;
  cfg.access_log = dir.path() / "a.log";
  event_log log(cfg);
  log_config next = cfg;
  next.access_log = dir.path() / "b.log";
  next.level = "debug";
  EXPECT_TRUE(log.reconfigure(next).empty());
  log.access({{"udid", "C-3"}});
  EXPECT_NE(slurp(dir.path() / "b.log").find("udid=C-3"), std::string::npos);
  std::ofstream(dir.path() / "file") << "x";
  log_config bad = next;
  bad.access_log = dir.path() / "file" / "c.log";
  const auto notes = log.reconfigure(bad);
  ASSERT_EQ(notes.size(), 1U);
  EXPECT_NE(notes[0].find("the previous access log stays in use"), std::string::npos);
  log.access({{"udid", "D-4"}});
  EXPECT_NE(slurp(dir.path() / "b.log").find("udid=D-4"), std::string::npos);
}

}  // namespace
}  // namespace tunnelgate::gateway
