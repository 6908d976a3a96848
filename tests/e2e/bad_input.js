// Bad input against a running gateway, over real mTLS connections (loopback only).
//   node bad_input.js PORT CA CERT KEY
// Prints one line per check and "N passed, M failed"; exit 1 on any failure.
"use strict";
const fs = require("fs");
const net = require("net");
const tls = require("tls");

const [port, caFile, certFile, keyFile] = process.argv.slice(2);
const options = {
  host: "127.0.0.1",
  port: Number(port),
  ca: fs.readFileSync(caFile),
  cert: fs.readFileSync(certFile),
  key: fs.readFileSync(keyFile),
  servername: "localhost",
};

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) passed++;
  else {
    failed++;
    console.log("FAIL: " + name + (detail ? " — " + detail : ""));
  }
}

/// Opens an mTLS connection, writes `data` (string or array of chunks), and collects what
/// comes back until the server closes or `waitMs` passes. Resolves {text, closed, ms}.
function exchange(data, waitMs = 3000, opts = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let text = "";
    let done = false;
    const s = tls.connect(options, () => {
      if (opts.halfClose) {
        s.write(data);
        s.end();
      } else if (data !== null) {
        s.write(data);
      }
    });
    const finish = (closed) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ text, closed, ms: Date.now() - t0 });
    };
    s.on("data", (d) => {
      text += d.toString("latin1");
      if (opts.until && opts.until(text)) finish(false);
    });
    s.on("close", () => finish(true));
    s.on("error", () => finish(true));
    setTimeout(() => finish(false), waitMs);
  });
}

const reason = (text) => (/X-Tunnel-Reason: ([^\r\n]*)/.exec(text) || [])[1];
const statusOf = (text) => Number((/^HTTP\/1\.1 (\d+)/.exec(text) || [])[1]);
const untilHead = (t) => t.includes("\r\n\r\n");

(async () => {
  let r;
  r = await exchange("CONNECT 127.0.0.1:" + "9".repeat(1) + " HTTP/1.1\r\nHost: x\r\nX-Pad: " + "a".repeat(5000) + "\r\n\r\n");
  check("oversized header -> 431", statusOf(r.text) === 431 && reason(r.text) === "header-too-large", r.text.slice(0, 80));

  let many = "CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n";
  for (let i = 0; i < 30; i++) many += "X-H" + i + ": v\r\n";
  r = await exchange(many + "\r\n");
  check("too many headers -> 431", statusOf(r.text) === 431 && reason(r.text) === "too-many-headers", r.text.slice(0, 80));

  for (const [target, want] of [["127.0.0.1:0", "bad-port"], ["127.0.0.1:99999", "bad-port"],
                                ["127.0.0.1:-1", "bad-port"], ["127.0.0.1", "missing-port"],
                                ["[::1", "bad-host"], ["bad host:443", "bad-request"],
                                ["127.1:80", "bad-host"]]) {
    r = await exchange("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n", 3000, { until: untilHead });
    const got = reason(r.text);
    check("CONNECT " + target + " -> " + want, got === want && (statusOf(r.text) === 400 || statusOf(r.text) === 403), r.text.slice(0, 100));
  }

  r = await exchange("\x00\x01garbage\r\n\r\n");
  check("garbage request -> 400 and close", statusOf(r.text) === 400 && r.closed, r.text.slice(0, 80));

  r = await exchange("CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  check("CONNECT with a body -> 400", statusOf(r.text) === 400 && reason(r.text) === "body-not-allowed", r.text.slice(0, 80));

  // Request smuggling shapes: each refused with its reason, and the connection closed (nothing
  // after such a head can be trusted). x.bypass.test is refused by the rules (403 bypass), so
  // reaching the rules shows the head was accepted.
  const t = "x.bypass.test:443";
  for (const [name, head, status, want] of [
    ["Transfer-Encoding: chunked", "CONNECT " + t + " HTTP/1.1\r\nHost: " + t + "\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400, "body-not-allowed"],
    ["Transfer-Encoding: identity", "CONNECT " + t + " HTTP/1.1\r\nHost: " + t + "\r\nTransfer-Encoding: identity\r\n\r\n", 400, "body-not-allowed"],
    ["obsolete line folding", "CONNECT " + t + " HTTP/1.1\r\nHost: " + t + "\r\nX-A: a\r\n b\r\n\r\n", 400, "obs-fold"],
    ["folding with a tab", "CONNECT " + t + " HTTP/1.1\r\nHost: " + t + "\r\nX-A: a\r\n\tb\r\n\r\n", 400, "obs-fold"],
    ["duplicate Host", "CONNECT " + t + " HTTP/1.1\r\nHost: " + t + "\r\nHost: " + t + "\r\n\r\n", 400, "duplicate-host"],
    ["Host naming another authority", "CONNECT " + t + " HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 400, "host-mismatch"],
    ["Host with another port", "CONNECT " + t + " HTTP/1.1\r\nHost: x.bypass.test:8443\r\n\r\n", 400, "host-mismatch"],
    ["bare LF line endings", "CONNECT " + t + " HTTP/1.1\nHost: " + t + "\n\n", 400, "bad-line-ending"],
    ["bare CR", "CONNECT " + t + " HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400, "bad-line-ending"],
    ["target over the limit", "CONNECT " + "a".repeat(1100) + ".test:443 HTTP/1.1\r\nHost: x\r\n\r\n", 414, "target-too-long"],
    ["request line longer than the header limit", "CONNECT " + "a".repeat(5000) + ".test:443 HTTP/1.1\r\n\r\n", 414, "target-too-long"],
  ]) {
    r = await exchange(head, 3000);
    check(name + " -> " + status + " " + want + " and close",
          statusOf(r.text) === status && reason(r.text) === want && r.closed, r.text.slice(0, 100));
  }
  r = await exchange("CONNECT " + t + " HTTP/1.1\r\nHost: " + t + "\r\nContent-Length: 0\r\n\r\n", 3000, { until: untilHead });
  check("Content-Length: 0 is harmless", reason(r.text) === "bypass", r.text.slice(0, 100));
  r = await exchange("CONNECT " + t + " HTTP/1.1\r\nhost: X.Bypass.Test\r\n\r\n", 3000, { until: untilHead });
  check("Host without port, other case: the same authority", reason(r.text) === "bypass", r.text.slice(0, 100));

  r = await exchange("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: x\r\nCookie: webvpn=0123456789abcdef0123\r\n\r\n", 3000, { until: untilHead });
  check("openconnect's tunnel request without a vpn section -> 404 vpn-not-configured", statusOf(r.text) === 404 && reason(r.text) === "vpn-not-configured", r.text.slice(0, 80));
  r = await exchange("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 3000, { until: untilHead });
  check("POST -> 405", statusOf(r.text) === 405, r.text.slice(0, 80));

  // Keep-alive: after a refusal the same connection takes another request.
  r = await exchange("CONNECT x.bypass.test:443 HTTP/1.1\r\nHost: x.bypass.test:443\r\n\r\n" +
                     "CONNECT y.elsewhere.example:443 HTTP/1.1\r\nHost: y.elsewhere.example:443\r\n\r\n", 3000,
                     { until: (t) => (t.match(/HTTP\/1\.1 403/g) || []).length === 2 });
  const reasons = [...r.text.matchAll(/X-Tunnel-Reason: ([^\r\n]*)/g)].map((m) => m[1]);
  check("two refused requests on one connection (keep-alive)", reasons.join(",") === "bypass,blocked", reasons.join(","));

  r = await exchange("GET /dtr/profile HTTP/1.1\r\nHost: gw\r\n\r\n", 3000, { until: (t) => t.includes("}\n") });
  check("GET /dtr/profile -> the device's rules as JSON", statusOf(r.text) === 200 && r.text.includes('"tunnelgate-dtr-profile"') && r.text.includes('"platform": "ios"'), r.text.slice(0, 120));
  r = await exchange("GET /proxy.pac HTTP/1.1\r\nHost: gw.example:8443\r\n\r\n", 3000, { until: (t) => t.includes("function tgIn6") });
  check("GET /proxy.pac -> a PAC naming this gateway", statusOf(r.text) === 200 && r.text.includes("FindProxyForURL") && r.text.includes("HTTPS gw.example:8443"), r.text.slice(0, 120));

  // Slow client: TLS up, then nothing: closed after the header timeout (1 s in the test config).
  r = await exchange(null, 5000);
  check("idle client closed by the header timeout", r.closed && r.ms >= 800 && r.ms < 3000, "after " + r.ms + " ms");

  // Slowloris: headers trickling in never complete.
  r = await exchange("CONNECT 127.0.0.1:80 HTTP/1.1\r\nX-A: ", 5000);
  check("incomplete head closed by the header timeout", r.closed && r.ms < 3000, "after " + r.ms + " ms");

  // Half-closed socket mid-request: no answer expected, no crash.
  r = await exchange("CONNECT 127.0.0.1:80 HTTP/1.1\r\n", 3000, { halfClose: true });
  check("half-closed request ends the connection", r.closed, "");

  // No TLS at all: a plain TCP client that says nothing is cut by the handshake timeout.
  const plain = await new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(Number(port), "127.0.0.1");
    s.on("close", () => resolve(Date.now() - t0));
    s.on("error", () => {});
    setTimeout(() => { s.destroy(); resolve(-1); }, 6000);
  });
  check("silent TCP client closed by the handshake timeout", plain > 1500 && plain < 4000, plain + " ms");

  // Plain HTTP on the TLS port: refused by the handshake, gateway unharmed.
  const http = await new Promise((resolve) => {
    const s = net.connect(Number(port), "127.0.0.1", () => s.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    s.on("close", () => resolve(true));
    s.on("error", () => resolve(true));
    setTimeout(() => { s.destroy(); resolve(false); }, 4000);
  });
  check("plain HTTP on the TLS port is dropped", http, "");

  // Per-device session limit (3 in the test config): three admitted connections, then a fourth.
  const held = [];
  for (let i = 0; i < 3; i++) {
    held.push(await new Promise((resolve) => {
      const s = tls.connect(options, () => resolve(s));
      s.on("error", () => {});
    }));
  }
  await new Promise((res) => setTimeout(res, 150));
  r = await exchange("CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n", 3000, { until: untilHead });
  check("fourth session of a device -> 429 session-limit", statusOf(r.text) === 429 && reason(r.text) === "session-limit", r.text.slice(0, 80));
  held.forEach((s) => s.destroy());
  await new Promise((res) => setTimeout(res, 200));

  console.log(passed + " passed, " + failed + " failed");
  process.exit(failed === 0 ? 0 : 1);
})();
