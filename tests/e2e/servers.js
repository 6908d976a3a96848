// Loopback servers for the end-to-end tests. Each prints "ready PORT" once listening and
// appends one line per event to stdout. Only 127.0.0.1 is ever contacted.
//   node servers.js echo PORT         HTTP: "/" answers "peer=<address>", "/slow?ms=N" waits N ms
//   node servers.js proxy PORT [CREDS] HTTP CONNECT proxy to 127.0.0.1 only; CREDS = user:password
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
  server.listen(port, "127.0.0.1", () => console.log("ready " + server.address().port));
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
} else {
  console.error("usage: node servers.js echo|proxy PORT [CREDS]");
  process.exit(2);
}
