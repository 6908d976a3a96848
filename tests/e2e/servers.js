// Loopback servers for the end-to-end tests. Each prints "ready PORT" once listening and
// appends one line per event to stdout. Only loopback addresses are used, or addresses inside
// network namespaces the calling test created (DNS_ADDRESS below).
//   node servers.js echo PORT [ADDRESS] HTTP on ADDRESS (loopback, or an address in a network
//                                      namespace the test made; default 127.0.0.1):
//                                      "/" answers "peer=<address>", "/slow?ms=N" waits N ms
//   node servers.js proxy PORT [CREDS] HTTP CONNECT proxy to 127.0.0.1 only; CREDS = user:password
//   node servers.js dns PORT [NAME=IP[,IP...];...]  UDP name server for *.dns.test (see below),
//                                      plus the given names' A records
//   node servers.js ip PORT [ADDRESS]  HTTP: answers ADDRESS (or the caller's address) + "\n"
"use strict";
const http = require("http");
const net = require("net");

const [mode, portArg, creds] = process.argv.slice(2);
const port = Number(portArg || 0);

if (mode === "echo") {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    const reply = () => res.end("peer=" + req.socket.remoteAddress + "\n");
    if (url.pathname === "/slow") setTimeout(reply, Number(url.searchParams.get("ms") || 1000));
    else reply();
  });
  const address = creds || "127.0.0.1";
  server.listen(port, address, () => console.log("ready " + server.address().port));
} else if (mode === "proxy") {
  const server = http.createServer((req, res) => { res.statusCode = 405; res.end(); });
  server.on("connect", (req, client, head) => {
    const auth = req.headers["proxy-authorization"] || "";
    const want = creds ? "Basic " + Buffer.from(creds).toString("base64") : "";
    console.log("connect " + req.url + " from=" + client.remoteAddress + " auth=" + (auth === want ? "ok" : "bad"));
    if (auth !== want) {
      client.end("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const [host, p] = req.url.split(":");
    if (host !== "127.0.0.1") {
      client.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const upstream = net.connect(Number(p), "127.0.0.1", () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
  });
  server.listen(port, "127.0.0.1", () => console.log("ready " + server.address().port));
} else if (mode === "ip") {
  // A "what is my IP" service that lies: always answers FIXED (default: the caller's address).
  const fixed = creds;
  const server = http.createServer((req, res) => res.end((fixed || req.socket.remoteAddress) + "\n"));
  server.listen(port, "127.0.0.1", () => console.log("ready " + server.address().port));
} else if (mode === "dns") {
  // A name server for the *.dns.test zone (UDP, 127.0.0.1). Logs "query NAME TYPE" per query.
  //   ok.dns.test -> A 127.0.0.1, AAAA ::1      alias.dns.test -> CNAME ok.dns.test + its A
  //   gone.dns.test -> NXDOMAIN                  fail.dns.test -> SERVFAIL
  //   silent.dns.test -> no answer at all        stray.dns.test -> an A record of another name
  //   garbage.dns.test -> bytes that are not DNS
  const dgram = require("dgram");
  const sock = dgram.createSocket("udp4");
  const encodeName = (name) => Buffer.concat([
    ...name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from([0]),
  ]);
  const rr = (name, type, data) => {
    const h = Buffer.alloc(10);
    h.writeUInt16BE(type, 0); h.writeUInt16BE(1, 2); h.writeUInt32BE(60, 4); h.writeUInt16BE(data.length, 8);
    return Buffer.concat([encodeName(name), h, data]);
  };
  const a = (ip) => Buffer.from(ip.split(".").map(Number));
  const aaaaLoopback = () => { const b = Buffer.alloc(16); b[15] = 1; return b; };
  // Extra names from the command line: "a.dns.test=127.0.0.1;b.dns.test=127.0.0.5,127.0.0.6".
  const extra = new Map();
  for (const item of (creds || "").split(";").filter(Boolean)) {
    const [n, ips] = item.split("=");
    const list = ips.split(",");
    extra.set(n.toLowerCase(), list);
  }
  sock.on("message", (msg, rinfo) => {
    let off = 12;
    const labels = [];
    while (off < msg.length && msg[off] !== 0) { labels.push(msg.slice(off + 1, off + 1 + msg[off]).toString()); off += msg[off] + 1; }
    const name = labels.join(".").toLowerCase();
    const qtype = msg.readUInt16BE(off + 1);
    const question = msg.slice(12, off + 5);
    console.log("query " + name + " " + qtype);
    if (name === "silent.dns.test") return;
    if (name === "garbage.dns.test") { sock.send(Buffer.from("not dns at all"), rinfo.port, rinfo.address); return; }
    let rcode = 0;
    const answers = [];
    if (extra.has(name)) {
      if (qtype === 1) for (const ip of extra.get(name)) answers.push(rr(name, 1, a(ip)));
    } else if (name === "ok.dns.test" || name === "alias.dns.test") {
      let target = name;
      if (name === "alias.dns.test") { answers.push(rr(name, 5, encodeName("ok.dns.test"))); target = "ok.dns.test"; }
      if (qtype === 1) answers.push(rr(target, 1, a("127.0.0.1")));
      if (qtype === 28) answers.push(rr(target, 28, aaaaLoopback()));
    } else if (name === "stray.dns.test") {
      if (qtype === 1) answers.push(rr("elsewhere.test", 1, a("127.0.0.1")));
    } else if (name === "fail.dns.test") {
      rcode = 2;
    } else {
      rcode = 3;
    }
    const h = Buffer.alloc(12);
    msg.copy(h, 0, 0, 2);
    h[2] = 0x81; h[3] = 0x80 | rcode;  // QR, RD, RA
    h.writeUInt16BE(1, 4); h.writeUInt16BE(answers.length, 6);
    sock.send(Buffer.concat([h, question, ...answers]), rinfo.port, rinfo.address);
  });
  sock.bind(port, process.env.DNS_ADDRESS || "127.0.0.1", () => console.log("ready " + sock.address().port));
} else {
  console.error("usage: node servers.js echo|proxy|dns|ip PORT [CREDS|ADDRESS]");
  process.exit(2);
}
