// tunnel-bench's shared pieces: the options, the client side of a tunnel (connect from a source
// address, mTLS handshake, CONNECT, one HTTP answer), the server measurements from /proc and the
// report (one JSON object or an aligned table). One io_context, one thread: the driver can be
// pinned to a core apart from the server it measures.
#pragma once

#include <utility>  // before Asio (STYLE P1)

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace bench {

namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;
using tls_stream = ssl::stream<tcp::socket>;
using json = nlohmann::ordered_json;
using error_code = boost::system::error_code;

/// Every await on a peer while setting a tunnel up (connect, handshake, CONNECT, answer) is
/// bounded by this; a stuck connection is closed and counted as an error.
constexpr auto io_timeout = std::chrono::seconds(10);
/// The body the sink answers to every GET.
constexpr std::size_t answer_body_size = 1024;

struct options {
  std::string mode;
  std::string gateway;
  std::string ca, cert, key;
  std::string tls = "1.3";
  unsigned concurrency = 16;
  double duration = 5;
  int target_pid = 0;  ///< 0: no server process measured
  bool json = false;
  bool no_connect = false;
  std::string sources;  ///< CIDR of local source addresses, round robin; empty: the kernel's
  // handshakes
  std::string target = "refused.bench.test:443";
  // throughput
  std::uint64_t megabytes = 256;
  std::string direction = "both";
  unsigned streams = 1;
  // tunnels, resume, hold, revoke, throughput (external sink)
  std::string origin;
  double rate = 0;  ///< tunnels: open loop at this many per second; 0: closed loop
  // flood
  double flight_wait_ms = 200;  ///< how long an attempt waits for the server's first byte
  // hold
  unsigned sessions = 0;
  double settle = 3;
  // sink
  std::vector<std::string> listen;
  // baseline-server
  bool session_tickets = false;
  bool tunnel_answers = false;
  // revoke
  unsigned devices = 100;
  unsigned rounds = 10;
  std::string ca_key, ca_cert;
  std::string uem_admin, uem_ca;
  std::string webhook, webhook_user, webhook_password_file;
  std::string udid_prefix = "BENCH-REV-";
  double revoke_timeout = 10;
  bool reconnect = true;
};

// ---- addresses ----------------------------------------------------------------------------

/// "ADDRESS:PORT" or "[V6]:PORT"; throws std::runtime_error.
tcp::endpoint parse_endpoint(const std::string& s);

/// Local source addresses taken round robin from a CIDR (IPv4), so that no single source
/// address runs out of ephemeral ports towards the server. Empty CIDR: no binding.
class source_pool {
 public:
  /// Uses at most `limit` addresses of the CIDR (the hosts after the network address).
  source_pool(const std::string& cidr, std::size_t limit);
  std::optional<net::ip::address> next();
  std::size_t size() const { return count_; }

 private:
  std::uint32_t first_ = 0;
  std::size_t count_ = 0;
  std::size_t next_ = 0;
};

// ---- the client side of a tunnel ----------------------------------------------------------

/// A client TLS context for `o.tls`, trusting `o.ca`, with the device certificate `o.cert` and
/// `o.key` when given (revoke sets one per connection instead). Full handshakes only unless
/// `resumption`: then tickets are accepted and sessions may be set per connection.
ssl::context make_client_context(const options& o, bool resumption);

/// "CONNECT origin HTTP/1.1" with its Host header.
std::string connect_request(const std::string& origin);
/// "GET / HTTP/1.1" for the origin; `close` asks it to close after the answer.
std::string get_request(const std::string& origin, bool close);

/// One HTTP answer as the driver sees it.
struct http_answer {
  int status = 0;
  std::size_t body_bytes = 0;  ///< bytes of body read (Content-Length)
};

/// What went wrong in one step, as counted in the report ("handshake: ...", "CONNECT 403").
/// Empty when the step worked.
using failure = std::string;

/// Connects `s` to `to` (bound to `from` when given), completes the mTLS handshake and, unless
/// `connect_req` is empty, sends it and reads the answer, which must be 200. Bytes read past the
/// answer's head stay in `buf`. The caller bounds the whole by closing the socket (see guard).
net::awaitable<failure> open_tunnel(tls_stream& s, tcp::endpoint to,
                                    std::optional<net::ip::address> from,
                                    const std::string& connect_req, std::string& buf);

/// Reads one HTTP answer (head, then a Content-Length body) from `s`; `buf` holds bytes already
/// read and keeps what follows the answer. Returns the failure, or "" with `a` filled.
template <class Stream>
net::awaitable<failure> read_answer(Stream& s, std::string& buf, http_answer& a,
                                    std::string* body = nullptr);

/// Closes the socket of `s` when it fires, unless cancelled first: the bound on a tunnel's
/// setup. Destroying the guard cancels it.
class guard {
 public:
  guard(const net::any_io_executor& ex, tcp::socket& s, clock_type::duration limit);
  ~guard();
  guard(const guard&) = delete;
  guard& operator=(const guard&) = delete;
  bool fired() const { return state_->fired; }

 private:
  struct state {
    bool fired = false;  ///< the limit passed and the socket was closed
    bool done = false;   ///< the guard is gone: the handler must not touch the socket
  };
  net::steady_timer timer_;
  std::shared_ptr<state> state_;
};

// ---- the server process -------------------------------------------------------------------

/// utime + stime of the process in seconds (/proc/PID/stat), or nullopt.
std::optional<double> cpu_seconds(int pid);
/// VmRSS of the process in KiB (/proc/PID/status), or nullopt.
std::optional<long> rss_kib(int pid);
/// The soft "Max open files" of the process (/proc/PID/limits), or nullopt.
std::optional<long> open_files_limit(int pid);
/// Raises this process's RLIMIT_NOFILE soft limit to the hard limit; returns the new soft limit.
long raise_open_files_limit();

/// CPU seconds the target used between start() and stop(); nullopt without --target-pid.
class cpu_meter {
 public:
  explicit cpu_meter(int pid) : pid_(pid) {}
  void start();
  std::optional<double> stop();

 private:
  int pid_;
  std::optional<double> before_;
};

// ---- the report ---------------------------------------------------------------------------

/// Latency percentiles in milliseconds ({"count","p50","p90","p99","max"}) of samples in µs.
json latency_json(std::vector<double> micros);
/// `count / cpu` or null.
json per_cpu(double count, const std::optional<double>& cpu);
/// A number with at most three decimals, or null.
json num(const std::optional<double>& v);
/// The fields every report starts with.
json report_head(const options& o);
/// Prints the report: the object as one line of JSON (--json) or a two-column table.
void print_report(const options& o, const json& r);

// ---- modes --------------------------------------------------------------------------------

int run_handshakes(const options& o);
int run_throughput(const options& o);
int run_baseline_server(const options& o);
int run_sink(const options& o);
int run_tunnels(const options& o, bool resume);
int run_hold(const options& o);
int run_revoke(const options& o);
int run_flood(const options& o);

// ---- template definitions ----------------------------------------------------------------

namespace detail {
/// Status code and Content-Length of an answer head ("HTTP/1.1 200 ...\r\n...\r\n\r\n").
/// Content-Length -1 when absent; status 0 when the head is not HTTP.
void parse_head(std::string_view head, int& status, long long& content_length);
}  // namespace detail

template <class Stream>
net::awaitable<failure> read_answer(Stream& s, std::string& buf, http_answer& a,
                                    std::string* body) {
  error_code ec;
  int status = 0;
  long long length = -1;
  const std::size_t n = co_await net::async_read_until(s, net::dynamic_buffer(buf), "\r\n\r\n",
                                                       net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return "answer: " + ec.message();
  detail::parse_head(std::string_view(buf).substr(0, n), status, length);
  if (status == 0) co_return "answer: not HTTP";
  a.status = status;
  buf.erase(0, n);
  if (length > 0) {
    const auto want = static_cast<std::size_t>(length);
    if (buf.size() < want) {
      co_await net::async_read(s, net::dynamic_buffer(buf),
                               net::transfer_exactly(want - buf.size()),
                               net::redirect_error(net::use_awaitable, ec));
      if (ec) co_return "answer body: " + ec.message();
    }
    if (body != nullptr) body->assign(buf, 0, want);
    buf.erase(0, want);
    a.body_bytes = want;
  }
  co_return "";
}

}  // namespace bench
