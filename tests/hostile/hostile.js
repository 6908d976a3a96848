// Hostile clients (and the peers they need) against a running gateway, loopback only.
//   node hostile.js MODE key=value...
// Common keys: port (the gateway's device listener), ca, cert, key (PEM files; no cert= means
// no client certificate), src (local address to connect from), target (HOST:PORT to CONNECT).
// Attack modes print one line per failed check and "N passed, M failed", and exit 1 on any
// failure; they also print "figure NAME VALUE" lines for the shell to report. Servers print
// "ready PORT" once listening.
//
//   canary out=FILE stop=FILE     normal CONNECT tunnels to target, one after another, until
//                                 the stop file exists; one line per tunnel to FILE:
//                                 "<epoch-ms> ok <ms>" or "<epoch-ms> fail <ms> <why>"
//   garbage n=N                   bytes that are not TLS: each variant on N connections
//   tls-slowloris n=N limit=MS    a real ClientHello, one byte every 100 ms
//   slowloris n=N limit=MS        mTLS up, then a request head one byte every 100 ms
//   idle n=N limit=MS             mTLS up, then nothing
//   partial-record n=N limit=MS   mTLS up, then the first 10 bytes of a TLS record and nothing
//                                 more (the rest of the record never comes)
//   held-tcp n=N hold=MS          N TCP connections that send nothing, held hold ms
//   held-tls n=N hold=MS          N mTLS connections held hold ms with no request
//   certs n=N                     each handshake must fail (used once per bad certificate)
//   reneg n=N                     TLS 1.2 sessions asking to renegotiate
//   headers n=N                   oversized and numerous headers, N connections per shape
//   smuggle                       request smuggling shapes (beyond tests/e2e/bad_input.js)
//   forbidden n=N targets=A,B     CONNECTs the egress policy must refuse
//   noread n=N hold=MS            tunnels to a flooding destination whose client never reads
//   halfclose                     every half-close shape through a tunnel to a half-server
//   flood-server                  TCP: writes without end to whoever connects (never reads)
//   half-server                   TCP: the far end of the half-close cases (see halfServer())
"use strict";
const fs = require("fs");
const net = require("net");
const tls = require("tls");

const mode = process.argv[2];
const arg = {};
for (const kv of process.argv.slice(3)) {
  const i = kv.indexOf("=");
  arg[kv.slice(0, i)] = kv.slice(i + 1);
}
const num = (k, d) => (arg[k] === undefined ? d : Number(arg[k]));
const port = Number(arg.port);
const src = arg.src || "127.0.0.1";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function tlsOptions(extra = {}) {
  const o = {
    host: "127.0.0.1",
    port,
    localAddress: src,
    ca: fs.readFileSync(arg.ca),
    servername: "localhost",
  };
  if (arg.cert) {
    o.cert = fs.readFileSync(arg.cert);
    o.key = fs.readFileSync(arg.key);
  }
  return Object.assign(o, extra);
}

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) passed++;
  else {
    failed++;
    console.log("FAIL: " + name + (detail ? " — " + detail : ""));
  }
}
function figure(name, value) {
  console.log("figure " + name + " " + value);
}
function finish() {
  console.log(passed + " passed, " + failed + " failed");
  process.exit(failed === 0 ? 0 : 1);
}
const statusOf = (t) => Number((/^HTTP\/1\.[01] (\d+)/.exec(t) || [])[1]);
const reasonOf = (t) => (/X-Tunnel-Reason: ([^\r\n]*)/.exec(t) || [])[1];
const countResponses = (t) => (t.match(/HTTP\/1\.1 \d\d\d/g) || []).length;

/// Runs `fn(i)` for i in [0, n) with at most `width` at once.
async function pool(n, width, fn) {
  const out = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, width) }, worker));
  return out;
}

/// A raw TCP connection that writes `chunks` (each after `gap` ms) and waits for the close.
/// Resolves {closed, ms, text, connected}.
function raw(chunks, waitMs, gap = 0) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let text = "";
    let done = false;
    let connected = false;
    const s = net.connect({ host: "127.0.0.1", port, localAddress: src });
    const end = (closed) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ closed, ms: Date.now() - t0, text, connected });
    };
    s.on("connect", async () => {
      connected = true;
      for (const c of chunks) {
        if (done) return;
        s.write(c);
        if (gap) await sleep(gap);
      }
    });
    s.on("data", (d) => (text += d.toString("latin1")));
    s.on("close", () => end(true));
    s.on("error", () => end(true));
    setTimeout(() => end(false), waitMs);
  });
}

/// An mTLS connection: resolves {s} once the handshake is done, or {err}.
function mtls(extra = {}) {
  return new Promise((resolve) => {
    const s = tls.connect(tlsOptions(extra), () => {
      s.setTimeout(0);  // held from here on: only the handshake is timed
      resolve({ s });
    });
    s.on("error", (e) => resolve({ err: e.code || e.message }));
    s.setTimeout(10000, () => {
      s.destroy();
      resolve({ err: "timeout" });
    });
  });
}

/// Writes `data` on a fresh mTLS connection and collects the answer until close or `until`.
function exchange(data, waitMs = 3000, until) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let text = "";
    let done = false;
    const s = tls.connect(tlsOptions(), () => {
      for (const c of [].concat(data)) s.write(c);
    });
    const end = (closed) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ text, closed, ms: Date.now() - t0 });
    };
    s.on("data", (d) => {
      text += d.toString("latin1");
      if (until && until(text)) end(false);
    });
    s.on("close", () => end(true));
    s.on("error", () => end(true));
    setTimeout(() => end(false), waitMs);
  });
}

/// Opens a tunnel to `target` over a new mTLS connection: resolves {s, leftover} after the
/// 200, or {err, text}.
function tunnel(target, extra = {}) {
  return new Promise((resolve) => {
    let text = "";
    let done = false;
    const s = tls.connect(tlsOptions(extra), () =>
      s.write("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n"));
    const onData = (d) => {
      text += d.toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0 || done) return;
      done = true;
      s.removeListener("data", onData);
      if (statusOf(text) === 200) resolve({ s, leftover: Buffer.from(text.slice(end + 4), "latin1") });
      else {
        s.destroy();
        resolve({ err: "status " + statusOf(text), text });
      }
    };
    s.on("data", onData);
    s.on("error", (e) => {
      if (!done) {
        done = true;
        resolve({ err: e.code || e.message, text });
      }
    });
    s.on("close", () => {
      if (!done) {
        done = true;
        resolve({ err: "closed", text });
      }
    });
    s.setTimeout(8000, () => s.destroy());
  });
}

// ---- the canary ------------------------------------------------------------------------------
async function canary() {
  const out = arg.out;
  const once = () => new Promise((resolve) => {
    const t0 = Date.now();
    let text = "";
    let stage = 0;
    let done = false;
    const s = tls.connect(tlsOptions(), () =>
      s.write("CONNECT " + arg.target + " HTTP/1.1\r\nHost: " + arg.target + "\r\n\r\n"));
    const end = (ok, why) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ ok, ms: Date.now() - t0, why });
    };
    s.on("data", (d) => {
      text += d.toString("latin1");
      if (stage === 0 && text.includes("\r\n\r\n")) {
        if (statusOf(text) !== 200) return end(false, "status-" + statusOf(text));
        stage = 1;
        text = "";
        s.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      } else if (stage === 1 && /peer=[0-9.]+\n/.test(text)) {
        end(true);
      }
    });
    s.on("error", (e) => end(false, e.code || "error"));
    s.on("close", () => end(false, "closed-at-stage-" + stage));
    setTimeout(() => end(false, "timeout-at-stage-" + stage), 5000);
  });
  let stopping = false;
  process.on("SIGTERM", () => (stopping = true));
  while (!stopping && !fs.existsSync(arg.stop)) {
    const r = await once();
    fs.appendFileSync(out, Date.now() + " " + (r.ok ? "ok" : "fail") + " " + r.ms +
                      (r.ok ? "" : " " + r.why) + "\n");
    await sleep(40);
  }
  process.exit(0);
}

// ---- bytes that are not TLS ------------------------------------------------------------------
async function garbage() {
  const n = num("n", 10);
  const limit = num("limit", 4000);
  const rnd = (k) => Buffer.from(Array.from({ length: k }, () => Math.floor(Math.random() * 256)));
  const hello = (ver) => {  // a ClientHello record of protocol `ver` (no usable suites)
    const body = Buffer.concat([Buffer.from([ver >> 8, ver & 0xff]), rnd(32), Buffer.from([0]),
                                Buffer.from([0, 2, 0x00, 0x05]), Buffer.from([1, 0])]);
    const hs = Buffer.concat([Buffer.from([1, 0, 0, body.length]), body]);
    return Buffer.concat([Buffer.from([0x16, ver >> 8, ver & 0xff, 0, hs.length]), hs]);
  };
  const variants = [
    ["random bytes", [rnd(4096)]],
    ["plain HTTP", [Buffer.from("CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n")]],
    ["SSLv2 ClientHello", [Buffer.from("801f010002000600000010000000070700c000000000000000000000000000000000", "hex")]],
    ["SSLv3 ClientHello", [hello(0x0300)]],
    ["TLS record of 16 KiB announced, 5 bytes sent", [Buffer.from([0x16, 3, 1, 0x40, 0, 1, 2, 3, 4, 5])]],
    ["oversized TLS record", [Buffer.concat([Buffer.from([0x16, 3, 1, 0xff, 0xff]), rnd(65535)])]],
    ["application data before the handshake", [Buffer.concat([Buffer.from([0x17, 3, 3, 0, 16]), rnd(16)])]],
    ["an alert record", [Buffer.from([0x15, 3, 3, 0, 2, 2, 40])]],
    ["1 MiB of zeros", [Buffer.alloc(1 << 20)]],
  ];
  for (const [name, chunks] of variants) {
    const rs = await Promise.all(Array.from({ length: n }, () => raw(chunks, limit + 2000)));
    const slow = rs.filter((r) => !r.closed || r.ms > limit);
    check(name + ": every connection closed by the gateway within " + limit + " ms", slow.length === 0,
          slow.length + " of " + n + " not (slowest " + Math.max(...rs.map((r) => r.ms)) + " ms)");
    check(name + ": no HTTP answer", rs.every((r) => !r.text.includes("HTTP/")), "");
  }
  // TLS 1.0 and 1.1 with real clients: refused by the protocol floor.
  for (const v of ["TLSv1", "TLSv1.1"]) {
    const r = await mtls({ minVersion: v, maxVersion: v, ciphers: "DEFAULT@SECLEVEL=0" });
    check(v + " handshake refused", r.err !== undefined, r.err || "handshake succeeded");
    if (r.s) r.s.destroy();
  }
  figure("garbage_connections", variants.length * n + 2);
  finish();
}

// ---- slow and silent clients -----------------------------------------------------------------
/// A real ClientHello of this client (without sending it to the gateway): captured from a
/// throwaway local listener.
function captureHello() {
  return new Promise((resolve) => {
    const srv = net.createServer((c) => {
      c.once("data", (d) => {
        resolve(d);
        c.destroy();
        srv.close();
      });
    }).listen(0, "127.0.0.1", () => {
      const s = tls.connect(Object.assign(tlsOptions(), { port: srv.address().port }));
      s.on("error", () => {});
    });
  });
}

async function tlsSlowloris() {
  const n = num("n", 50);
  const limit = num("limit", 3000);
  const hello = await captureHello();
  const chunks = [...hello].map((b) => Buffer.from([b]));
  const rs = await Promise.all(Array.from({ length: n }, () => raw(chunks, limit + 3000, 100)));
  const late = rs.filter((r) => !r.closed || r.ms > limit);
  figure("tls_slowloris_slowest_ms", Math.max(...rs.map((r) => r.ms)));
  check("ClientHello trickled at 10 bytes/s: every connection closed within " + limit + " ms",
        late.length === 0, late.length + " of " + n + " not");
  finish();
}

async function slowOrIdle(trickle) {
  const n = num("n", 50);
  const limit = num("limit", 3000);
  const head = "CONNECT " + arg.target + " HTTP/1.1\r\nHost: " + arg.target + "\r\nX-Slow: " + "a".repeat(200);
  const one = async () => {
    const c = await mtls();
    if (c.err) return { err: c.err };
    const t0 = Date.now();
    return new Promise((resolve) => {
      let text = "";
      let stop = false;
      c.s.on("data", (d) => (text += d.toString("latin1")));
      c.s.on("close", () => {
        stop = true;
        resolve({ closed: true, ms: Date.now() - t0, text });
      });
      c.s.on("error", () => {});
      setTimeout(() => {
        stop = true;
        c.s.destroy();
        resolve({ closed: false, ms: Date.now() - t0, text });
      }, limit + 3000);
      if (trickle) {
        (async () => {
          for (const ch of head) {
            if (stop) break;
            c.s.write(ch);
            await sleep(100);
          }
        })();
      }
    });
  };
  const rs = await pool(n, 50, one);
  const errs = rs.filter((r) => r.err);
  check("every attacking connection completed its handshake", errs.length === 0,
        errs.length + " failed: " + (errs[0] || {}).err);
  const ok = rs.filter((r) => !r.err);
  const late = ok.filter((r) => !r.closed || r.ms > limit);
  figure((trickle ? "slowloris" : "idle") + "_slowest_ms", Math.max(0, ...ok.map((r) => r.ms)));
  check((trickle ? "request head trickled at 10 bytes/s" : "silent after the handshake") +
        ": every connection closed within " + limit + " ms", late.length === 0,
        late.length + " of " + ok.length + " not");
  check("nothing was tunnelled", ok.every((r) => !r.text.includes(" 200 ")), "");
  finish();
}

// ---- thousands of held connections -----------------------------------------------------------
async function heldTcp() {
  const n = num("n", 2000);
  const hold = num("hold", 3000);
  const quick = num("quick", 500);  // a life shorter than this: closed at accept
  const t0 = Date.now();
  const socks = [];
  const life = new Array(n).fill(-1);  // ms from connect to close; -1: still open
  let connected = 0;
  let resets = 0;
  for (let i = 0; i < n; i++) {
    const s = net.connect({ host: "127.0.0.1", port, localAddress: src });
    let at = 0;
    s.on("connect", () => {
      connected++;
      at = Date.now();
    });
    s.on("error", () => resets++);
    s.on("close", () => (life[i] = at ? Date.now() - at : 0));
    socks.push(s);
    if (i % 200 === 199) await sleep(10);
  }
  figure("held_tcp_open_ms", Date.now() - t0);
  await sleep(hold);
  const closed = life.filter((t) => t >= 0);
  const early = closed.filter((t) => t < quick).length;
  figure("held_tcp_connected", connected);
  figure("held_tcp_closed_at_once", early);  // lived < quick ms: refused at accept
  figure("held_tcp_closed_later", closed.length - early);
  figure("held_tcp_longest_closed_life_ms", Math.max(0, ...closed));
  figure("held_tcp_still_open_at_end", n - closed.length);
  figure("held_tcp_resets", resets);
  socks.forEach((s) => s.destroy());
  finish();
}

async function heldTls() {
  const n = num("n", 2000);
  const hold = num("hold", 3000);
  const t0 = Date.now();
  const held = await pool(n, num("width", 32), async () => {
    const c = await mtls();
    return c;
  });
  const ok = held.filter((c) => c.s);
  const up = Date.now() - t0;
  figure("held_tls_established", ok.length);
  figure("held_tls_setup_ms", up);
  check("all " + n + " mTLS connections established", ok.length === n,
        ok.length + " (first error: " + (held.find((c) => c.err) || {}).err + ")");
  if (arg.ready) fs.writeFileSync(arg.ready, String(ok.length));
  await sleep(hold);
  const alive = ok.filter((c) => !c.s.destroyed).length;
  figure("held_tls_alive_after_hold", alive);
  check("the held connections stayed open for " + hold + " ms", alive === ok.length,
        alive + " of " + ok.length);
  ok.forEach((c) => c.s.destroy());
  finish();
}

// ---- bad certificates ------------------------------------------------------------------------
async function certs() {
  const n = num("n", 20);
  const rs = await pool(n, 10, () => exchange(
      "CONNECT " + arg.target + " HTTP/1.1\r\nHost: " + arg.target + "\r\n\r\n", 4000));
  const answered = rs.filter((r) => r.text.includes("HTTP/"));
  const open = rs.filter((r) => !r.closed);
  check(arg.label + ": no request answered (the handshake failed)", answered.length === 0,
        answered.length + " of " + n + " answered: " + (answered[0] || {}).text);
  check(arg.label + ": every connection closed", open.length === 0, open.length + " left open");
  finish();
}

// ---- a TLS record cut short ------------------------------------------------------------------
// Node's TLS runs over a stream of our own, so the bytes of a record can be cut: after the
// handshake the device's first record (a request head) reaches the gateway as its first 10
// bytes only. The gateway holds a partial record it can neither decrypt nor discard; it must
// wait for the rest like for any read (no busy loop), and cut the connection at the header
// timeout like a silent one.
async function partialRecord() {
  const n = num("n", 20);
  const limit = num("limit", 3000);
  const stream = require("stream");
  const one = () =>
    new Promise((resolve) => {
      const raw = net.connect({ host: "127.0.0.1", port, localAddress: src });
      let cut = false;  // set once the handshake is done: the next write is cut, the rest dropped
      let sent = false;
      const wire = new stream.Duplex({
        read() {},
        write(chunk, _enc, cb) {
          if (!cut) raw.write(chunk);
          else if (!sent) {
            sent = true;
            raw.write(chunk.subarray(0, 10));
          }
          cb();
        },
      });
      raw.on("data", (d) => wire.push(d));
      raw.on("error", () => {});
      let t0 = 0;
      let settled = false;
      const fin = (r) => {
        if (settled) return;
        settled = true;
        raw.destroy();
        resolve(r);
      };
      raw.on("close", () => (t0 ? fin({ closed: true, ms: Date.now() - t0 }) : fin({ err: "closed in handshake" })));
      // The client's last handshake flight reaches `wire` after this callback: cut later.
      const s = tls.connect(Object.assign(tlsOptions(), { socket: wire }), () =>
        setTimeout(() => {
          cut = true;
          t0 = Date.now();
          s.write("CONNECT " + arg.target + " HTTP/1.1\r\nHost: " + arg.target + "\r\n\r\n");
          setTimeout(() => fin({ closed: false, ms: Date.now() - t0 }), limit + 3000);
        }, 200));
      s.on("error", (e) => (t0 ? undefined : fin({ err: e.code || e.message })));
      setTimeout(() => (t0 ? undefined : fin({ err: "handshake timeout" })), 10000);
    });
  const rs = await pool(n, 20, one);
  const errs = rs.filter((r) => r.err);
  check("every attacking connection completed its handshake", errs.length === 0,
        errs.length + " failed: " + (errs[0] || {}).err);
  const ok = rs.filter((r) => !r.err);
  figure("partial_record_slowest_ms", Math.max(0, ...ok.map((r) => r.ms)));
  const late = ok.filter((r) => !r.closed || r.ms > limit);
  check("a record cut short: every connection closed within " + limit + " ms", late.length === 0,
        late.length + " of " + ok.length + " not");
  finish();
}

// ---- renegotiation ---------------------------------------------------------------------------
async function reneg() {
  const n = num("n", 20);
  const rs = await pool(n, 10, async () => {
    const c = await mtls({ maxVersion: "TLSv1.2" });
    if (c.err) return { err: c.err };
    const outcome = await new Promise((resolve) => {
      let settled = false;
      const fin = (v) => {
        if (!settled) {
          settled = true;
          resolve(v);
        }
      };
      c.s.on("error", (e) => fin("error:" + (e.code || e.message)));
      c.s.on("close", () => fin("closed"));
      const okCall = c.s.renegotiate({ rejectUnauthorized: true }, (err) =>
        fin(err ? "refused:" + (err.code || err.message) : "renegotiated"));
      if (okCall === false) fin("refused:not-started");
      setTimeout(() => fin("no-answer"), 3000);
    });
    // After the refused renegotiation, what does the connection do? A request must not be
    // served as if the renegotiation had happened; an answer or a close are both acceptable.
    c.s.destroy();
    return { outcome, protocol: c.s.getProtocol ? c.s.getProtocol() : "" };
  });
  const errs = rs.filter((r) => r.err);
  check("TLS 1.2 handshakes for the renegotiation attempts", errs.length === 0,
        errs.length + " failed: " + (errs[0] || {}).err);
  const done = rs.filter((r) => r.outcome === "renegotiated");
  check("no renegotiation succeeded", done.length === 0, done.length + " of " + n + " renegotiated");
  const outcomes = {};
  rs.forEach((r) => (outcomes[r.outcome] = (outcomes[r.outcome] || 0) + 1));
  console.log("renegotiation outcomes: " + JSON.stringify(outcomes));
  finish();
}

// ---- oversized and numerous headers ----------------------------------------------------------
async function headers() {
  const n = num("n", 20);
  const limit = num("header_limit", 4096);
  const maxHeaders = num("max_headers", 20);
  const t = arg.target;
  const line = "CONNECT " + t + " HTTP/1.1\r\nHost: " + t + "\r\n";
  const shapes = [
    // [name, chunks, expected status, expected reason]
    ["a 1 MiB header value", [line + "X-Big: ", "a".repeat(1 << 20), "\r\n\r\n"], 431, "header-too-large"],
    ["4,000 one-byte headers", [line + "A: b\r\n".repeat(4000) + "\r\n"], 431, null],
    ["headers past max_headers, each tiny", [line + "A: b\r\n".repeat(maxHeaders + 1) + "\r\n"], 431, "too-many-headers"],
    ["a head without end (1 MiB of header lines)", [line + "X-More: 0123456789abcdef\r\n".repeat(40000)], 431, null],
    ["a 64 KiB header name", [line + "X".repeat(65536) + ": v\r\n\r\n"], 431, "header-too-large"],
  ];
  for (const [name, chunks, status, reason] of shapes) {
    const rs = await pool(n, 20, () => exchange(chunks, 4000));
    // When the gateway closes with the rest of a big request unread, the kernel resets the
    // connection and the answer may be lost: judge only the answers that arrived.
    const answered = rs.filter((r) => r.text.includes("HTTP/"));
    const wrong = answered.filter((r) => statusOf(r.text) !== status || (reason && reasonOf(r.text) !== reason));
    check(name + ": answered " + status + (reason ? " " + reason : ""), wrong.length === 0,
          wrong.length + " wrong: " + (wrong[0] || {}).text);
    check(name + ": some answers arrived", answered.length > 0, "none of " + n);
    const open = rs.filter((r) => !r.closed);
    check(name + ": connection closed after the refusal", open.length === 0, open.length + " left open");
    figure("headers_answered_" + name.replace(/[^a-z0-9]+/gi, "_"), answered.length + "/" + n);
  }
  // The boundary: a head one byte under the limit reaches the rules; a head past it does not.
  const pad = (total) => {
    const base = line + "X-Pad: \r\n\r\n";
    return line + "X-Pad: " + "p".repeat(total - base.length) + "\r\n\r\n";
  };
  let r = await exchange(pad(limit - 1), 3000, (x) => x.includes("\r\n\r\n"));
  check("a head of header_limit - 1 bytes is accepted", statusOf(r.text) === 200 || statusOf(r.text) === 403 && reasonOf(r.text) !== "header-too-large",
        r.text.slice(0, 80));
  r = await exchange(pad(limit + 1), 3000, (x) => x.includes("\r\n\r\n"));
  check("a head of header_limit + 1 bytes is refused 431", statusOf(r.text) === 431, r.text.slice(0, 80));
  finish();
}

// ---- request smuggling shapes ----------------------------------------------------------------
// tests/e2e/bad_input.js covers: Transfer-Encoding chunked and identity, obs-fold (space, tab),
// duplicate Host, Host naming another authority or port, bare LF, bare CR, over-long targets,
// CONNECT with a body. Here: the rest of the usual list, and what happens to bytes pipelined
// behind a request.
async function smuggle() {
  const t = arg.target;          // a destination the rules tunnel (the echo server)
  const b = "x.bypass.test:443";  // refused by the rules with 403 bypass: the head was accepted
  const head = (extra, target = b) => "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n" + extra + "\r\n";
  const bad = [
    // [name, bytes]: each must be refused 400 and the connection closed, never reach the rules
    ["Content-Length and Transfer-Encoding together", head("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n") + "0\r\n\r\n"],
    ["Transfer-Encoding: chunked, identity", head("Transfer-Encoding: chunked, identity\r\n") + "0\r\n\r\n"],
    ["Transfer-Encoding with a tab", head("Transfer-Encoding:\tchunked\r\n") + "0\r\n\r\n"],
    ["Transfer-Encoding: xchunked", head("Transfer-Encoding: xchunked\r\n")],
    ["two Transfer-Encoding headers", head("Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n") + "0\r\n\r\n"],
    ["space before the colon", head("Transfer-Encoding : chunked\r\n") + "0\r\n\r\n"],
    ["two different Content-Length values", head("Content-Length: 0\r\nContent-Length: 5\r\n") + "hello"],
    ["Content-Length list", head("Content-Length: 5, 5\r\n") + "hello"],
    ["Content-Length: +5", head("Content-Length: +5\r\n") + "hello"],
    ["Content-Length: -1", head("Content-Length: -1\r\n")],
    ["Content-Length: 0x5", head("Content-Length: 0x5\r\n") + "hello"],
    ["Content-Length too big for 64 bits", head("Content-Length: 99999999999999999999999\r\n")],
    ["NUL in a header value", head("X-A: a\x00b\r\n")],
    ["control byte in a header name", head("X\x01A: b\r\n")],
    ["space inside a header name", head("X A: b\r\n")],
    ["header line without a colon", head("XA\r\n")],
    ["empty header name", head(": b\r\n")],
    ["two spaces in the request line", "CONNECT  " + b + " HTTP/1.1\r\nHost: " + b + "\r\n\r\n"],
    ["a tab in the request line", "CONNECT\t" + b + " HTTP/1.1\r\nHost: " + b + "\r\n\r\n"],
    ["request line without a version", "CONNECT " + b + "\r\nHost: " + b + "\r\n\r\n"],
    ["HTTP/1.2", "CONNECT " + b + " HTTP/1.2\r\nHost: " + b + "\r\n\r\n"],
    ["HTTP/2 connection preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"],
    ["absolute-form CONNECT target", "CONNECT http://" + b + "/ HTTP/1.1\r\nHost: " + b + "\r\n\r\n"],
    ["CONNECT target with userinfo", "CONNECT user@" + b + " HTTP/1.1\r\nHost: " + b + "\r\n\r\n"],
  ];
  for (const [name, bytes] of bad) {
    const r = await exchange(bytes, 3000);
    const st = statusOf(r.text);
    console.log("shape: " + name + " -> " + st + " " + reasonOf(r.text) + (r.closed ? ", closed" : ", left open"));
    check(name + " -> 4xx (never the rules' 403 bypass) and close",
          st >= 400 && st < 500 && reasonOf(r.text) !== "bypass" && r.closed && countResponses(r.text) === 1,
          (r.closed ? "closed: " : "open: ") + JSON.stringify(r.text.slice(0, 120)));
  }
  // Lower-case method: methods are case-sensitive; never a tunnel.
  let r = await exchange("connect " + t + " HTTP/1.1\r\nHost: " + t + "\r\n\r\n", 3000, (x) => x.includes("\r\n\r\n"));
  console.log("shape: lower-case connect -> " + statusOf(r.text) + " " + reasonOf(r.text));
  check("lower-case connect is not a tunnel", statusOf(r.text) >= 400, JSON.stringify(r.text.slice(0, 80)));

  // A refusal that ends the connection: what was pipelined behind it is never answered.
  r = await exchange(head("Host: " + b + "\r\n") + head("", t), 3000);
  check("pipelined request behind a connection-ending refusal: one answer, then close",
        countResponses(r.text) === 1 && statusOf(r.text) === 400 && r.closed, JSON.stringify(r.text.slice(0, 200)));
  // A refusal that keeps the connection (bypass): the next pipelined request is decided on its own.
  r = await exchange(head("") + head("Content-Length: 1\r\n") + "Z", 3000);
  check("pipelined body-carrying request behind a keep-alive refusal is refused for its body",
        countResponses(r.text) === 2 && /X-Tunnel-Reason: body-not-allowed/.test(r.text) && r.closed,
        JSON.stringify(r.text.slice(0, 300)));
  // Bytes pipelined behind a CONNECT that opens a tunnel belong to the tunnel: the destination
  // (an HTTP server) answers them, and the gateway never reads them as a second request.
  const adminTarget = "127.0.0.1:" + arg.admin;
  r = await exchange("CONNECT " + t + " HTTP/1.1\r\nHost: " + t + "\r\n\r\n" +
                     "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 3000, (x) => /peer=[0-9.]+\n/.test(x));
  check("bytes behind a tunnel's CONNECT reach the destination",
        statusOf(r.text) === 200 && /peer=127\.0\.0\./.test(r.text), JSON.stringify(r.text.slice(0, 200)));
  r = await exchange("CONNECT " + t + " HTTP/1.1\r\nHost: " + t + "\r\n\r\n" +
                     "CONNECT " + adminTarget + " HTTP/1.1\r\nHost: " + adminTarget + "\r\n\r\n", 3000);
  check("a CONNECT pipelined behind a tunnel's CONNECT goes to the destination, not the gateway",
        countResponses(r.text) >= 1 && !/X-Tunnel-Reason/.test(r.text) && (r.text.match(/200 Connection Established/g) || []).length === 1,
        JSON.stringify(r.text.slice(0, 300)));
  finish();
}

// ---- forbidden destinations ------------------------------------------------------------------
async function forbidden() {
  const n = num("n", 5);
  const targets = arg.targets.split(",");
  const outcomes = {};
  for (const target of targets) {
    const rs = await pool(n, n, () => exchange(
        "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n", 3000, (x) => x.includes("\r\n\r\n")));
    const wrong = rs.filter((r) => statusOf(r.text) !== 403 || reasonOf(r.text) !== "forbidden-destination");
    check("CONNECT " + target + " -> 403 forbidden-destination", wrong.length === 0,
          JSON.stringify((wrong[0] || { text: "" }).text.slice(0, 100)));
    outcomes[target] = reasonOf(rs[0].text);
  }
  figure("forbidden_requests", targets.length * n);
  finish();
}

// ---- a client that never reads ---------------------------------------------------------------
async function noread() {
  const n = num("n", 40);
  const hold = num("hold", 4000);
  const ts = await pool(n, 20, () => tunnel(arg.target));
  const ok = ts.filter((x) => x.s);
  check("every never-reading tunnel opened", ok.length === n,
        ok.length + " of " + n + " (" + (ts.find((x) => x.err) || {}).err + ")");
  let received = 0;
  for (const x of ok) {
    x.s.pause();  // read nothing more: the gateway's writes to us stall
    x.s.on("error", () => {});
  }
  if (arg.ready) fs.writeFileSync(arg.ready, String(ok.length));
  await sleep(hold);
  // The gateway's own count of open tunnels (the canary holds at most one).
  const metrics = await new Promise((resolve) => {
    require("http").get({ host: "127.0.0.1", port: Number(arg.admin), path: "/metrics" }, (res) => {
      let t = "";
      res.on("data", (d) => (t += d));
      res.on("end", () => resolve(t));
    }).on("error", () => resolve(""));
  });
  const active = Number((/^tunnelgate_active_tunnels (\d+)/m.exec(metrics) || [])[1]);
  for (const x of ok) received += x.s.bytesRead;
  figure("noread_tunnels", ok.length);
  figure("noread_client_bytes_read", received);
  figure("noread_gateway_tunnels_open_after_hold", active);
  ok.forEach((x) => x.s.destroy());
  finish();
}

/// Writes to every connection as fast as the kernel takes it, never reads (the other side of
/// "noread"). Prints "ready PORT".
function floodServer() {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let open = 0;
  const srv = net.createServer((c) => {
    open++;
    c.on("error", () => {});
    c.on("close", () => open--);
    const pump = () => {
      while (!c.destroyed && c.write(chunk)) { /* until the kernel buffer is full */ }
    };
    c.on("drain", pump);
    pump();
  });
  srv.listen(0, "127.0.0.1", () => console.log("ready " + srv.address().port));
}

// ---- half-close ------------------------------------------------------------------------------
// The far end reads a first line "CASE BYTES\n", then behaves as the case says. It prints one
// line per connection: "<case> received <n> eof <yes|no>".
//   client-first: read until EOF, then send "got N\n" and BYTES bytes, then FIN
//   server-first: send BYTES bytes and FIN at once, keep reading until EOF
//   both:         send BYTES bytes and FIN at once, read until EOF (the client does the same)
function halfServer() {
  const srv = net.createServer({ allowHalfOpen: true }, (c) => {
    let head = null;
    let received = 0;
    let buf = "";
    c.on("error", () => {});
    const payload = (k) => Buffer.alloc(k, 0x62);
    c.on("data", (d) => {
      if (head === null) {
        buf += d.toString("latin1");
        const i = buf.indexOf("\n");
        if (i < 0) return;
        head = buf.slice(0, i).split(" ");
        received = buf.length - i - 1;
        if (head[0] === "server-first" || head[0] === "both") c.end(payload(Number(head[1])));
      } else {
        received += d.length;
      }
    });
    c.on("end", () => {
      const kase = head ? head[0] : "?";
      console.log(kase + " received " + received + " eof yes");
      if (kase === "client-first") c.end(Buffer.concat([Buffer.from("got " + received + "\n"), payload(Number(head[1]))]));
      else if (!c.writableEnded) c.end();
    });
  });
  srv.listen(0, "127.0.0.1", () => console.log("ready " + srv.address().port));
}

async function halfclose() {
  const size = num("bytes", 1 << 20);
  const payload = Buffer.alloc(size, 0x63);
  /// One case: opens a tunnel, runs `act(s, state)`, resolves with what the client saw.
  const run = (kase, act, waitMs = 6000) => new Promise(async (resolve) => {
    const x = await tunnel(arg.target, { allowHalfOpen: true });
    if (x.err) return resolve({ err: x.err });
    const s = x.s;
    const st = { got: x.leftover.length, text: x.leftover.toString("latin1").slice(0, 64), ended: false, closed: false, t0: Date.now() };
    s.on("data", (d) => {
      st.got += d.length;
      if (st.text.length < 64) st.text += d.toString("latin1").slice(0, 64);
    });
    s.on("end", () => {
      st.ended = true;
      st.endMs = Date.now() - st.t0;
      if (st.onEnd) st.onEnd();
    });
    s.on("error", (e) => (st.error = e.code || e.message));
    const t = setTimeout(() => { s.destroy(); }, waitMs);
    s.on("close", () => {
      clearTimeout(t);
      st.closed = true;
      resolve(st);
    });
    act(s, st);
  });
  const cases = [
    ["client FIN first, 1 MiB in flight each way", "client-first", (s) => {
      s.write("client-first " + size + "\n");
      s.end(payload);
    }, (st) => st.text.startsWith("got " + size + "\n") && st.got === ("got " + size + "\n").length + size && st.ended],
    ["client FIN first, no data", "client-first", (s) => {
      s.end("client-first 0\n");
    }, (st) => st.text.startsWith("got 0\n") && st.ended],
    ["server FIN first, 1 MiB in flight to the client", "server-first", (s) => {
      s.write("server-first " + size + "\n");
      // Stay open for writing: the far end's FIN must not cost us its bytes.
    }, (st) => st.got === size && st.ended],
    ["server FIN first, the client still sends afterwards", "server-first", (s, st) => {
      s.write("server-first 0\n");
      st.onEnd = () => s.end(payload);
    }, (st) => st.ended],
    ["both FIN at once, 1 MiB in flight each way", "both", (s) => {
      s.write("both " + size + "\n");
      s.end(payload);
    }, (st) => st.got === size && st.ended],
    ["both FIN at once, no data", "both", (s) => {
      s.end("both 0\n");
    }, (st) => st.got === 0 && st.ended],
  ];
  for (const [name, kase, act, good] of cases) {
    const st = await run(kase, act);
    check(name + ": the client received everything and the end", !st.err && good(st),
          JSON.stringify({ err: st.err, got: st.got, ended: st.ended, closed: st.closed, error: st.error, text: (st.text || "").slice(0, 20) }));
    console.log("case " + kase + " client_got " + st.got + " ended " + st.ended + " end_ms " + st.endMs);
    await sleep(100);
  }
  finish();
}

const modes = {
  canary, garbage, "tls-slowloris": tlsSlowloris, slowloris: () => slowOrIdle(true),
  idle: () => slowOrIdle(false), "partial-record": partialRecord, "held-tcp": heldTcp, "held-tls": heldTls, certs, reneg, headers,
  smuggle, forbidden, noread, "flood-server": floodServer, "half-server": halfServer, halfclose,
};
if (!modes[mode]) {
  console.error("usage: node hostile.js " + Object.keys(modes).join("|") + " key=value...");
  process.exit(2);
}
modes[mode]();
