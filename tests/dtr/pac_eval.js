// Evaluates a PAC file the way a browser does, for tests.
//   node pac_eval.js FILE.pac < cases.json    cases: [{"url": "...", "host": "...", "want": "..."}, ...]
// Prints a JSON array with FindProxyForURL's answer per case. A case with "want" is also checked:
// each mismatch is printed on stderr and the exit status is 1.
//
// The sandbox offers the PAC helper functions browsers define that need no network
// (isPlainHostName, dnsDomainIs, localHostOrDomainIs, dnsDomainLevels, shExpMatch, convert_addr),
// as in Chromium's and Mozilla's PAC runtime. The ones that resolve names or read the host's
// addresses (dnsResolve, isInNet, myIpAddress, ...) throw instead of returning null: a PAC that
// calls them would leak the name to a resolver on every request, and a test must fail on that
// rather than see a quiet "no answer".
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
  isResolvableEx: forbidden("isResolvableEx"),
  isInNet: forbidden("isInNet"),
  isInNetEx: forbidden("isInNetEx"),
  myIpAddress: forbidden("myIpAddress"),
  myIpAddressEx: forbidden("myIpAddressEx"),
  isPlainHostName: (host) => String(host).indexOf(".") < 0,
  dnsDomainIs: (host, domain) => {
    host = String(host);
    domain = String(domain);
    return host.length >= domain.length && host.substring(host.length - domain.length) === domain;
  },
  localHostOrDomainIs: (host, hostdom) => {
    host = String(host);
    hostdom = String(hostdom);
    return host === hostdom || hostdom.lastIndexOf(host + ".", 0) === 0;
  },
  dnsDomainLevels: (host) => String(host).split(".").length - 1,
  shExpMatch: (str, exp) => {
    const re = String(exp).replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
    return new RegExp("^" + re + "$").test(String(str));
  },
  convert_addr: (ip) => {
    const b = String(ip).split(".");
    return (((+b[0] & 0xff) << 24) | ((+b[1] & 0xff) << 16) | ((+b[2] & 0xff) << 8) | (+b[3] & 0xff)) >>> 0;
  },
  alert: (msg) => process.stderr.write("PAC alert: " + String(msg) + "\n"),
};
vm.createContext(sandbox);
vm.runInContext(source, sandbox, { filename: process.argv[2], timeout: 5000 });
if (typeof sandbox.FindProxyForURL !== "function") throw new Error("no FindProxyForURL");
const out = cases.map((c) => String(sandbox.FindProxyForURL(c.url, c.host)));
process.stdout.write(JSON.stringify(out));
let bad = 0;
cases.forEach((c, i) => {
  if (c.want !== undefined && out[i] !== c.want) {
    process.stderr.write("FAIL " + c.url + " (host " + c.host + "): got '" + out[i] + "', want '" + c.want + "'\n");
    bad++;
  }
});
process.exit(bad ? 1 : 0);
