// The byte relay over real loopback TCP pairs: counting, leftovers first, half-close, who
// closed first, the idle timeout and kills. Every test runs its io_context with a deadline, so
// a relay that never ends fails the test instead of hanging it.
//
// Coroutines follow STYLE §4: named coroutine functions taking pointers (no capturing
// coroutine lambdas); everything they point at lives in the test's harness.
#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include "gateway/relay.hpp"

namespace tunnelgate::gateway {

[[maybe_unused]] static void PrintTo(relay_end e, std::ostream* os) {
  *os << to_string(e);
}

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

/// A connected loopback pair: the connecting end first, the accepted end second.
std::pair<tcp::socket, tcp::socket> socket_pair(net::io_context& io) {
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  tcp::socket server = acceptor.accept();
  return {std::move(client), std::move(server)};
}

/// device_peer (the test, as the device) <-> device (the gateway's end) ... relay ...
/// destination (the gateway's egress end) <-> destination_peer (the test, as the destination).
struct harness {
  net::io_context io;
  tcp::socket device_peer{io};
  tcp::socket device{io};
  tcp::socket destination{io};
  tcp::socket destination_peer{io};
  beast::flat_buffer device_leftover;
  beast::flat_buffer destination_leftover;
  relay_counters counters;
  bool killed = false;
  std::optional<relay_end> end;
  clock_type::time_point started;
  clock_type::time_point ended;
  bool script_done = false;

  harness() {
    std::tie(device_peer, device) = socket_pair(io);
    std::tie(destination, destination_peer) = socket_pair(io);
  }
  ~harness() {
    // After a failure work may be pending: close everything and let it unwind.
    boost::system::error_code ignored;
    for (auto* s : {&device_peer, &device, &destination, &destination_peer})
      s->close(ignored);
    try {
      io.restart();
      io.run_for(2s);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "unwinding the relay: " << e.what();
    }
  }
  harness(const harness&) = delete;
  harness& operator=(const harness&) = delete;

  /// Runs the io_context until it has no more work or `limit` passes; true when the relay
  /// ended (tests check their script's own flag).
  bool run(std::chrono::seconds limit = 5s) {
    io.run_for(limit);
    return end.has_value();
  }
};

void rethrow(const std::exception_ptr& e) {
  if (e) std::rethrow_exception(e);
}

awaitable<void> run_relay(harness* h, std::chrono::milliseconds idle) {
  h->started = clock_type::now();
  const relay_end e = co_await relay(h->device, h->destination, h->device_leftover,
                                     h->destination_leftover, h->counters, idle, h->killed);
  h->ended = clock_type::now();
  h->end = e;
}

void start_relay(harness& h, std::chrono::milliseconds idle) {
  net::co_spawn(h.io, run_relay(&h, idle), rethrow);
}

awaitable<void> write(tcp::socket* s, std::string_view text) {
  co_await net::async_write(*s, net::buffer(text.data(), text.size()), use_awaitable);
}

awaitable<std::string> read_exactly(tcp::socket* s, std::size_t n) {
  std::string out(n, '\0');
  co_await net::async_read(*s, net::buffer(out), use_awaitable);
  co_return out;
}

/// Reads once more: the error (eof expected), or success when a byte arrived instead.
awaitable<boost::system::error_code> read_end(tcp::socket* s) {
  char c = 0;
  boost::system::error_code ec;
  co_await s->async_read_some(net::buffer(&c, 1), net::redirect_error(use_awaitable, ec));
  co_return ec;
}

awaitable<void> pause(std::chrono::milliseconds d) {
  net::steady_timer t(co_await net::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(use_awaitable);
}

void fill(beast::flat_buffer& b, std::string_view text) {
  const auto n = net::buffer_copy(b.prepare(text.size()), net::buffer(text.data(), text.size()));
  b.commit(n);
}

// ---- bytes both ways, then the device finishes first -----------------------------------------

struct both_ways_result {
  std::string up, down, after_eof;
  boost::system::error_code destination_saw, device_saw;
};

awaitable<void> both_ways_script(harness* h, both_ways_result* r) {
  co_await write(&h->device_peer, "hello-up");
  r->up = co_await read_exactly(&h->destination_peer, 8);
  co_await write(&h->destination_peer, "downstream!");
  r->down = co_await read_exactly(&h->device_peer, 11);
  // The device is done sending: the destination sees EOF ...
  h->device_peer.shutdown(tcp::socket::shutdown_send);
  r->destination_saw = co_await read_end(&h->destination_peer);
  // ... and can still answer: the other direction keeps flowing.
  co_await pause(50ms);
  co_await write(&h->destination_peer, "after-eof");
  r->after_eof = co_await read_exactly(&h->device_peer, 9);
  h->destination_peer.shutdown(tcp::socket::shutdown_send);
  h->script_done = true;
}

TEST(Relay, BytesBothWaysCountedAndDeviceEofHalfCloses) {
  harness h;
  both_ways_result r;
  start_relay(h, 10s);
  net::co_spawn(h.io, both_ways_script(&h, &r), rethrow);
  ASSERT_TRUE(h.run()) << "the relay did not end within the deadline";
  EXPECT_TRUE(h.script_done);
  EXPECT_EQ(r.up, "hello-up");
  EXPECT_EQ(r.down, "downstream!");
  EXPECT_EQ(r.destination_saw, net::error::eof) << "device EOF is passed on as a half-close";
  EXPECT_EQ(r.after_eof, "after-eof");
  EXPECT_EQ(*h.end, relay_end::device_closed);
  EXPECT_EQ(h.counters.up.load(), 8U);
  EXPECT_EQ(h.counters.down.load(), 11U + 9U);
  // The relay does not close the streams: the caller owns that.
  EXPECT_TRUE(h.device.is_open());
  EXPECT_TRUE(h.destination.is_open());
}

// ---- leftovers --------------------------------------------------------------------------------

struct leftover_result {
  std::string at_destination, at_device;
};

awaitable<void> leftover_script(harness* h, leftover_result* r) {
  r->at_destination = co_await read_exactly(&h->destination_peer, 12);
  r->at_device = co_await read_exactly(&h->device_peer, 14);
  h->destination_peer.shutdown(tcp::socket::shutdown_send);
  (void)co_await read_end(&h->device_peer);  // the half-close, passed on
  h->device_peer.shutdown(tcp::socket::shutdown_send);
  h->script_done = true;
}

TEST(Relay, LeftoversAreDeliveredFirst) {
  harness h;
  leftover_result r;
  fill(h.device_leftover, "LEFT-UP|");
  fill(h.destination_leftover, "LEFT-DOWN|");
  // New bytes are already waiting on both sockets before the relay starts: the leftovers,
  // read earlier, must still arrive first.
  net::write(h.device_peer, net::buffer(std::string_view("more")));
  net::write(h.destination_peer, net::buffer(std::string_view("down")));
  start_relay(h, 10s);
  net::co_spawn(h.io, leftover_script(&h, &r), rethrow);
  ASSERT_TRUE(h.run()) << "the relay did not end within the deadline";
  EXPECT_TRUE(h.script_done);
  EXPECT_EQ(r.at_destination, "LEFT-UP|more");
  EXPECT_EQ(r.at_device, "LEFT-DOWN|down");
  EXPECT_EQ(h.device_leftover.size(), 0U);
  EXPECT_EQ(h.destination_leftover.size(), 0U);
  EXPECT_EQ(h.counters.up.load(), 12U);
  EXPECT_EQ(h.counters.down.load(), 14U);
  EXPECT_EQ(*h.end, relay_end::destination_closed);
}

// ---- the destination closes first ------------------------------------------------------------

struct destination_first_result {
  std::string at_device;
  boost::system::error_code device_saw;
  std::string late_at_destination;
};

awaitable<void> destination_first_script(harness* h, destination_first_result* r) {
  co_await write(&h->device_peer, "request");
  (void)co_await read_exactly(&h->destination_peer, 7);
  co_await write(&h->destination_peer, "bye");
  h->destination_peer.shutdown(tcp::socket::shutdown_send);
  r->at_device = co_await read_exactly(&h->device_peer, 3);
  r->device_saw = co_await read_end(&h->device_peer);
  // The device's direction stays open after the destination's half-close: nothing is lost.
  co_await write(&h->device_peer, "late");
  r->late_at_destination = co_await read_exactly(&h->destination_peer, 4);
  h->device_peer.shutdown(tcp::socket::shutdown_send);
  h->script_done = true;
}

TEST(Relay, DestinationHalfCloseIsPassedOnAndTheDeviceMayStillSend) {
  harness h;
  destination_first_result r;
  start_relay(h, 10s);
  net::co_spawn(h.io, destination_first_script(&h, &r), rethrow);
  ASSERT_TRUE(h.run()) << "the relay did not end within the deadline";
  EXPECT_TRUE(h.script_done);
  EXPECT_EQ(r.at_device, "bye") << "bytes before the close are delivered";
  EXPECT_EQ(r.device_saw, net::error::eof) << "destination EOF is passed on as a half-close";
  EXPECT_EQ(r.late_at_destination, "late");
  EXPECT_EQ(*h.end, relay_end::destination_closed) << "the destination finished first";
  EXPECT_EQ(h.counters.up.load(), 11U);
  EXPECT_EQ(h.counters.down.load(), 3U);
}

TEST(Relay, DestinationResetIsAnError) {
  harness h;
  start_relay(h, 10s);
  h.destination_peer.set_option(net::socket_base::linger(true, 0));
  h.destination_peer.close();  // RST
  ASSERT_TRUE(h.run()) << "the relay did not end within the deadline";
  EXPECT_EQ(*h.end, relay_end::error);
}

// ---- idle timeout ----------------------------------------------------------------------------

TEST(Relay, IdleTimeout) {
  harness h;
  const auto idle = 150ms;
  start_relay(h, idle);
  ASSERT_TRUE(h.run()) << "the relay did not end within the deadline";
  EXPECT_EQ(*h.end, relay_end::idle_timeout);
  const auto took = h.ended - h.started;
  EXPECT_GE(took, idle);
  EXPECT_LT(took, 3s) << "an idle relay must end soon after the timeout";
}

awaitable<void> trickle_script(harness* h, int* delivered) {
  for (int i = 0; i < 5; ++i) {
    co_await pause(100ms);
    co_await write(&h->device_peer, "x");
    (void)co_await read_exactly(&h->destination_peer, 1);
    ++*delivered;
  }
  h->script_done = true;
}

TEST(Relay, TrafficPostponesTheIdleTimeout) {
  harness h;
  int delivered = 0;
  // Five bytes 100ms apart take longer than one idle period, but no gap reaches it.
  const auto idle = 250ms;
  start_relay(h, idle);
  net::co_spawn(h.io, trickle_script(&h, &delivered), rethrow);
  ASSERT_TRUE(h.run()) << "the relay did not end within the deadline";
  EXPECT_EQ(delivered, 5) << "no timeout while bytes flow every 100ms";
  EXPECT_TRUE(h.script_done);
  EXPECT_EQ(*h.end, relay_end::idle_timeout);
  // The last byte left no earlier than 5 pauses of 100ms after the start.
  EXPECT_GE(h.ended - h.started, 500ms + idle);
  EXPECT_EQ(h.counters.up.load(), 5U);
}

// ---- killed ------------------------------------------------------------------------------------

awaitable<void> kill_script(harness* h, std::string* seen) {
  co_await write(&h->device_peer, "x");
  *seen = co_await read_exactly(&h->destination_peer, 1);
  // What the registry's kill does, on the session's executor: set the flag, then cancel.
  h->killed = true;
  h->device.cancel();
  h->destination.cancel();
  h->script_done = true;
}

TEST(Relay, KilledFromOutside) {
  harness h;
  std::string seen;
  start_relay(h, 10s);
  net::co_spawn(h.io, kill_script(&h, &seen), rethrow);
  ASSERT_TRUE(h.run()) << "the relay did not end within the deadline";
  EXPECT_EQ(seen, "x");
  EXPECT_EQ(*h.end, relay_end::killed);
  EXPECT_EQ(h.counters.up.load(), 1U);
  EXPECT_LT(h.ended - h.started, 5s);
}

awaitable<void> kill_after_device_eof_script(harness* h) {
  h->device_peer.shutdown(tcp::socket::shutdown_send);
  (void)co_await read_end(&h->destination_peer);
  h->killed = true;
  h->device.cancel();
  h->destination.cancel();
  h->script_done = true;
}

TEST(Relay, KilledWhileHalfClosed) {
  harness h;
  start_relay(h, 10s);
  net::co_spawn(h.io, kill_after_device_eof_script(&h), rethrow);
  ASSERT_TRUE(h.run()) << "the relay did not end within the deadline";
  EXPECT_EQ(*h.end, relay_end::killed);
}

// A kill that lands while a pump's completion is already queued. Deterministic on Asio's epoll
// reactor: the destination and an auxiliary socket become readable in that order, so in one
// reactor turn the destination pump reads "A" and posts its (speculatively finished) write to
// the device, and then the auxiliary read resumes the script, which kills the relay exactly as
// relay.hpp asks (flag, then cancel) while no operation of the relay is pending to cancel.
struct kill_race {
  tcp::socket* aux_peer = nullptr;
  tcp::socket* aux = nullptr;
  clock_type::time_point killed_at;
};

void write_a_then_z(harness* h, kill_race* r) {
  net::write(h->destination_peer, net::buffer(std::string_view("A")));
  net::write(*r->aux_peer, net::buffer(std::string_view("Z")));
}

awaitable<void> kill_race_script(harness* h, kill_race* r, bool close) {
  h->device_peer.shutdown(tcp::socket::shutdown_send);
  (void)co_await read_end(&h->destination_peer);  // the device pump has ended
  net::post(h->io, [h, r] { write_a_then_z(h, r); });
  (void)co_await read_exactly(r->aux, 1);
  h->killed = true;
  if (close) {
    h->device.close();
    h->destination.close();
  } else {
    h->device.cancel();
    h->destination.cancel();
  }
  r->killed_at = clock_type::now();
  h->script_done = true;
}

// What session.cpp's kill does (close, not cancel) ends the relay at once even then.
TEST(Relay, KillByCloseWhileACompletionIsQueued) {
  harness h;
  auto [aux_peer, aux] = socket_pair(h.io);
  kill_race r{&aux_peer, &aux, {}};
  start_relay(h, 2s);
  net::co_spawn(h.io, kill_race_script(&h, &r, true), rethrow);
  ASSERT_TRUE(h.run()) << "the relay did not end within the deadline";
  EXPECT_TRUE(h.script_done);
  EXPECT_EQ(*h.end, relay_end::killed);
  EXPECT_LT(h.ended - r.killed_at, 500ms);
}

// Regression: when the kill's cancel() finds no pending operation (a completion is already
// queued, as here), the pumps must still stop at once: they check `killed` after every
// completion, instead of relaying on until the idle timeout.
TEST(Relay, KillWhileACompletionIsQueuedStopsTheRelay) {
  harness h;
  auto [aux_peer, aux] = socket_pair(h.io);
  kill_race r{&aux_peer, &aux, {}};
  start_relay(h, 2s);
  net::co_spawn(h.io, kill_race_script(&h, &r, false), rethrow);
  ASSERT_TRUE(h.run()) << "the relay did not end within the deadline";
  EXPECT_TRUE(h.script_done);
  EXPECT_EQ(*h.end, relay_end::killed);
  EXPECT_LT(h.ended - r.killed_at, 500ms) << "the kill waited for the idle timer";
  // "A" may be relayed in the same turn as the kill (its write completed before the kill ran);
  // nothing after it is.
  EXPECT_LE(h.counters.down.load(), 1U) << "bytes were relayed after the kill";
}

TEST(RelayEnd, Names) {
  EXPECT_EQ(to_string(relay_end::device_closed), "device-closed");
  EXPECT_EQ(to_string(relay_end::destination_closed), "destination-closed");
  EXPECT_EQ(to_string(relay_end::idle_timeout), "idle-timeout");
  EXPECT_EQ(to_string(relay_end::error), "error");
  EXPECT_EQ(to_string(relay_end::killed), "killed");
}

}  // namespace
}  // namespace tunnelgate::gateway
