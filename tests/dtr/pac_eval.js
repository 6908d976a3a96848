// Evaluates a PAC file the way a browser does, for tests.
//   node pac_eval.js FILE.pac < cases.json    cases: [{"url": "...", "host": "..."}, ...]
// Prints a JSON array with FindProxyForURL's answer per case. The sandbox has no DNS: the
// PAC helper functions that resolve names throw, so a PAC that would leak a lookup fails.
"use strict";
const fs = require("fs");
const vm = require("vm");

const source = fs.readFileSync(process.argv[2], "utf8");
const cases = JSON.parse(fs.readFileSync(0, "utf8"));

const forbidden = (name) => () => { throw new Error("PAC called " + name + " (DNS is not allowed)"); };
const sandbox = {
  dnsResolve: forbidden("dnsResolve"),
  dnsResolveEx: forbidden("dnsResolveEx"),
  isResolvable: forbidden("isResolvable"),
  isInNet: forbidden("isInNet"),
  myIpAddress: forbidden("myIpAddress"),
};
vm.createContext(sandbox);
vm.runInContext(source, sandbox, { filename: process.argv[2], timeout: 5000 });
if (typeof sandbox.FindProxyForURL !== "function") throw new Error("no FindProxyForURL");
const out = cases.map((c) => String(sandbox.FindProxyForURL(c.url, c.host)));
process.stdout.write(JSON.stringify(out));
