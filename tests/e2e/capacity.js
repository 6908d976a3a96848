// Device-side driver for capacity_e2e.sh: TLS resumption, descriptor exhaustion and many
// tunnels from many loopback source addresses. Prints one JSON object on stdout.
//   node capacity.js resume PORT CERTDIR UDID TARGET SESSION-FILE
//       one CONNECT; resumes the session in SESSION-FILE when it exists, saves the new one
//   node capacity.js fill PORT CERTDIR UDID TARGET GATEWAY-PID
//       opens tunnels one by one (held) until one is refused; before that, makes the number of
//       descriptors the gateway has left odd, so the last accept() succeeds and the egress
//       socket is the one that finds no descriptor
//   node capacity.js hold PORT CERTDIR UDID N TARGET[,TARGET...]
//       N tunnels, round-robin over the targets, each from its own 127.1.x.y source address
"use strict";
const tls = require("tls");
const fs = require("fs");

const [mode, portArg, dir, udid] = process.argv.slice(2, 6);
const port = Number(portArg);
const base = {
  host: "127.0.0.1", port, servername: "localhost",
  ca: fs.readFileSync(dir + "/ca.pem"),
  cert: fs.readFileSync(`${dir}/devices/${udid}.pem`),
  key: fs.readFileSync(`${dir}/devices/${udid}.key`),
};

// Connects and sends CONNECT target (unless target is null); resolves with
// {socket, status, reason, reused, error}.
function tunnel(target, extra = {}) {
  return new Promise((resolve) => {
    const out = { status: 0, reason: "", reused: false, error: "", session: null };
    const s = tls.connect({ ...base, ...extra });
    out.socket = s;
    s.on("session", (sess) => { out.session = sess; });  // TLS 1.3: after the handshake
    const timer = setTimeout(() => { out.error = "timeout"; resolve(out); }, 5000);
    let buf = "";
    s.on("secureConnect", () => {
      out.reused = s.isSessionReused();
      if (target === null) { clearTimeout(timer); resolve(out); return; }
      s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    });
    s.on("data", (d) => {
      buf += d;
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0 || out.status) return;
      out.status = Number(buf.split(" ")[1]);
      const m = /X-Tunnel-Reason: *([^\r]*)/i.exec(buf.slice(0, end));
      out.reason = m ? m[1] : "";
      clearTimeout(timer);
      resolve(out);
    });
    s.on("error", (e) => { out.error = e.code || e.message; clearTimeout(timer); resolve(out); });
    s.on("close", () => { if (!out.status && !out.error) out.error = "closed"; clearTimeout(timer); resolve(out); });
  });
}

const print = (o) => { delete o.socket; delete o.session; console.log(JSON.stringify(o)); };

async function resume() {
  const [target, file] = process.argv.slice(6);
  const extra = fs.existsSync(file) ? { session: fs.readFileSync(file) } : {};
  const r = await tunnel(target, extra);
  // The ticket may follow the answer: give it a moment before closing.
  await new Promise((res) => setTimeout(res, 300));
  const ticket = r.session !== null;
  if (ticket) fs.writeFileSync(file, r.session);  // a client resumes with its newest ticket
  // Close as curl or a browser does: close_notify first (an abrupt close may cost the session).
  await new Promise((res) => { r.socket.end(() => res()); setTimeout(res, 1000); });
  r.socket.destroy();
  delete r.session;
  print({ ...r, ticket });
}

function descriptors(pid) {
  const open = fs.readdirSync(`/proc/${pid}/fd`).length;
  const m = /Max open files\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/limits`, "utf8"));
  return { open, limit: Number(m[1]) };
}

async function fill() {
  const [target, pid] = process.argv.slice(6);
  const held = [];
  const before = descriptors(pid);
  // Each tunnel takes two descriptors (device, egress): with an odd number left, the last
  // accept() succeeds and the egress socket cannot be opened.
  if ((before.limit - before.open) % 2 === 0) held.push((await tunnel(null)).socket);
  let last;
  for (let i = 0; i < 10000; i++) {
    last = await tunnel(target);
    if (last.status !== 200) break;
    held.push(last.socket);
  }
  if (last.status === 0 && held.length > 0) {
    // The last accept() found no descriptor (the gateway closed that connection at once): free
    // one tunnel's two, take one with an idle connection, and the next tunnel is the case.
    held.pop().destroy();
    await new Promise((r) => setTimeout(r, 300));
    held.push((await tunnel(null)).socket);
    last = await tunnel(target);
  }
  const opened = held.length;
  // Close everything, then one more tunnel must work again.
  for (const s of held) s.destroy();
  last.socket.destroy();
  await new Promise((r) => setTimeout(r, 500));
  const again = await tunnel(target);
  again.socket.destroy();
  print({ before, opened, status: last.status, reason: last.reason, error: last.error,
          again: again.status });
}

async function hold() {
  const [nArg, targets] = process.argv.slice(6);
  const n = Number(nArg);
  const list = targets.split(",");
  const res = [];
  for (let i = 0; i < n; i += 25) {
    const batch = [];
    for (let k = i; k < Math.min(n, i + 25); k++) {
      const local = `127.1.${(k >> 8) & 255}.${(k & 255) + 1 > 254 ? 254 : (k & 255) + 1}`;
      batch.push(tunnel(list[k % list.length], { localAddress: local }));
    }
    res.push(...(await Promise.all(batch)));
  }
  const ok = res.filter((r) => r.status === 200).length;
  const refused = res.filter((r) => r.status !== 200).map((r) => r.reason || r.error);
  for (const r of res) r.socket.destroy();
  print({ ok, bad: n - ok, refused: [...new Set(refused)] });
}

({ resume, fill, hold })[mode]().catch((e) => { console.log(JSON.stringify({ error: String(e) })); });
