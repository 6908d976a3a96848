#!/usr/bin/env bash
# End-to-end: the egress policy decides on the addresses actually used, whatever the rules say
# about names. The rules tunnel everything by default; a loopback name server answers names
# that point at the gateway's own loopback, at a blocked CIDR and at an allowed address.
#   egress_e2e.sh BIN_DIR
# Loopback only (127.0.0.0/8, ::1). The cloud-metadata case (169.254.169.254) runs only inside
# a network namespace this test creates (with no route out) and needs root; without root that
# part is skipped with a message.
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh"
. "$here/e2e_lib.sh"
e2e_setup  # $work (removed at exit unless KEEP_WORK=1), $pids (killed at exit)

"$bin/tunnelctl" ca init ca >/dev/null
# The certificate spells the UDID in lower case; the inventory in upper case: one device.
"$bin/tunnelctl" ca issue ca --udid good-1 --user good@example.com >/dev/null
cat >devices.json <<'EOF'
[{"Udid":"GOOD-1","SerialNumber":"SN-1","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false}]
EOF
cat >rules.yaml <<'EOF'
rule_sets:
  - name: ios
    platforms: [ios]
    mode: full-device
    default: tunnel
    rules:
      - action: block
        destinations: ["127.0.0.66/32"]
EOF

start_server echo echo 0                 # 127.0.0.1: a local service the policy must protect
start_server allowed echo 0 127.0.0.65   # inside egress.allow
start_server blocked echo 0 127.0.0.66   # inside egress.allow, but a block rule names it
start_server dns dns 0 "loop.dns.test=127.0.0.1;blocked.dns.test=127.0.0.66;allowed.dns.test=127.0.0.65;mixed.dns.test=127.0.0.1,127.0.0.65"
gw_port=$(free_port)
admin_port=$(free_port)
closed_port=$(free_port)
cat >gateway.yaml <<EOF
listen: ["127.0.0.1:$gw_port"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem, crl: [ca/crl.pem]}
uem: {source: file, file: devices.json}
dtr: rules.yaml
egress:
  address: 127.0.0.2
  resolver: ["127.0.0.1:$dns_port"]
  connect_timeout: 2s
  allow: ["127.0.0.64/26"]
admin: {listen: "127.0.0.1:$admin_port"}
log: {format: json}
EOF

# ---- configuration: egress.allow / egress.deny are validated --------------------------------
sed 's|allow: \["127.0.0.64/26"\]|allow: ["127.0.0.65/26", "banana", "10.0.0.0/8"]\n  deny: ["10.0.0.0/8", "10.0.0.0/8"]|' gateway.yaml >bad.yaml
run "$bin/tunnelgate" --check-config bad.yaml
expect_rc "bad egress ranges refused" 78
expect_err_has "host bits named, with the fix" "egress.allow[0]: '127.0.0.65/26' has host bits set; did you mean 127.0.0.64/26?"
expect_err_has "not a range" "egress.allow[1]: 'banana' is not an address or CIDR"
expect_err_has "allow inside deny" "egress.allow[2]: 10.0.0.0/8 lies inside egress.deny 10.0.0.0/8"
expect_err_has "duplicate deny" "egress.deny[1]: 10.0.0.0/8 is listed twice"
check "errors carry file:line:col" grep -q "bad.yaml:[0-9]*:[0-9]*: egress.allow\[1\]" <<<"$err"
run "$bin/tunnelgate" --check-config gateway.yaml
expect_rc "the good configuration" 0

"$bin/tunnelgate" gateway.yaml >gw.out 2>&1 &
gw_pid=$!
pids+=($gw_pid)
wait_for 10 grep -q '"event":"started"' gw.out || { echo "gateway did not start"; cat gw.out; exit 1; }

# ---- the gateway itself and this host's loopback: never, whatever the rules say ------------
check "CONNECT 127.0.0.1:<admin port> -> forbidden" test "$(reason_of good-1 "http://127.0.0.1:$admin_port/")" = forbidden-destination
check "CONNECT localhost:<admin port> -> forbidden" test "$(reason_of good-1 "http://localhost:$admin_port/")" = forbidden-destination
check "CONNECT [::ffff:127.0.0.1]:<port> -> forbidden" test "$(reason_of good-1 "http://[::ffff:127.0.0.1]:$echo_port/")" = forbidden-destination
check "CONNECT [::1]:<port> -> forbidden" test "$(reason_of good-1 "http://[::1]:$echo_port/")" = forbidden-destination
check "CONNECT 127.0.0.1:<local service> -> forbidden" test "$(reason_of good-1 "http://127.0.0.1:$echo_port/")" = forbidden-destination
check "403 status" test "$(status_of good-1 "http://127.0.0.1:$echo_port/")" = 403
check "CONNECT to the egress address itself -> forbidden" test "$(reason_of good-1 "http://127.0.0.2:$echo_port/")" = forbidden-destination
check "a name resolving to 127.0.0.1 -> forbidden" test "$(reason_of good-1 "http://loop.dns.test:$echo_port/")" = forbidden-destination
check "the refusal names the name, the address and why" \
  grep -q '"event":"request_refused".*"reason":"forbidden-destination".*"destination":"loop.dns.test:'"$echo_port"'".*"refused_addresses":"127.0.0.1:'"$echo_port"' (loopback)"' gw.out
check "the local service never saw a connection" bash -c "! grep -q peer= $work/echo.out"

# ---- the rules again on the resolved address ---------------------------------------------------
check "a name resolving into a block CIDR -> blocked" test "$(reason_of good-1 "http://blocked.dns.test:$blocked_port/")" = blocked
check "... logged with the CIDR rule's rank and line" \
  grep -q '"event":"request_refused".*"reason":"blocked".*"destination":"blocked.dns.test:'"$blocked_port"'".*"set":"ios","rank":"1","line":7.*"refused_addresses":"127.0.0.66:'"$blocked_port"' (rule-block)"' gw.out
check "the blocked address literal -> blocked" test "$(reason_of good-1 "http://127.0.0.66:$blocked_port/")" = blocked

# ---- egress.allow opens an address; refused addresses are skipped, not fatal -----------------
run gw_curl good-1 "http://allowed.dns.test:$allowed_port/"
expect_out "egress.allow opens 127.0.0.65: tunnelled from the egress address" "peer=127.0.0.2"
run gw_curl good-1 "http://mixed.dns.test:$allowed_port/"
expect_out "a name with a refused and an allowed address: the allowed one is used" "peer=127.0.0.2"
run gw_curl good-1 "http://[::ffff:127.0.0.65]:$allowed_port/"
expect_out "an IPv4-mapped literal is dialled as IPv4" "peer=127.0.0.2"

# ---- the device learns the decision, not the network's error text -------------------------
raw_connect() {  # raw_connect HOST:PORT : the whole answer to one CONNECT, over mTLS
  node -e '
    const [port, target] = process.argv.slice(1);
    const fs = require("fs");
    const s = require("tls").connect({host: "127.0.0.1", port: Number(port), servername: "localhost",
      ca: fs.readFileSync("ca/ca.pem"), cert: fs.readFileSync("ca/devices/good-1.pem"),
      key: fs.readFileSync("ca/devices/good-1.key")},
      () => s.write("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n"));
    let text = "";
    s.on("data", (d) => { text += d; if (/\r\n\r\n[^]*\n/.test(text)) { console.log(text); process.exit(0); } });
    s.on("error", () => {});
    setTimeout(() => { console.log(text); process.exit(0); }, 5000);' "$gw_port" "$1"
}
run raw_connect "127.0.0.65:$closed_port"
expect_out_has "connect failure -> 502" "HTTP/1.1 502"
expect_out_has "... with the reason connect-failed" "X-Tunnel-Reason: connect-failed"
check "no kernel error text and no address in the answer" bash -c "! grep -qi 'refused\|errno\|127.0.0.65' <<<\"\$0\"" "$out"
check "... while the log keeps the detail" grep -q '"reason":"connect-failed".*"detail":"connecting to 127.0.0.65:'"$closed_port"' failed: Connection refused"' gw.out

# ---- counted ---------------------------------------------------------------------------------
check "egress refusals counted by reason" metric_at_least 'tunnelgate_egress_refusals_total{reason="loopback"}' 5
check "rule-block counted" metric_at_least 'tunnelgate_egress_refusals_total{reason="rule-block"}' 1
check "own-listener counted" metric_at_least 'tunnelgate_egress_refusals_total{reason="own-listener"}' 2
check "requests counted by outcome" metric_at_least 'tunnelgate_requests_total{outcome="forbidden-destination"}' 6

# ---- one device, one key: the UDID's spelling does not matter --------------------------------
gw_curl good-1 "http://allowed.dns.test:$allowed_port/slow?ms=20000" >slow.out 2>&1 &
slow=$!
check "the session is listed under the canonical UDID" wait_for 5 bash -c "curl -s http://127.0.0.1:$admin_port/api/v1/sessions | grep -q '\"udid\":\"GOOD-1\"'"
run curl -s -X DELETE "http://127.0.0.1:$admin_port/api/v1/devices/Good-1/sessions"
expect_out_has "DELETE with another spelling closes it" '"closed":1'
check "the tunnel ends" wait_for 2 bash -c "! kill -0 $slow 2>/dev/null"

# ---- cloud metadata: refused by policy, not by the network (inside a namespace) -------------
ns=tgegress$$
if [ "$(id -u)" -ne 0 ] || ! ip netns add "$ns" 2>/dev/null; then
  echo "SKIP: the 169.254.169.254 case needs root and network namespaces (ip netns add failed)"
else
  trap 'e2e_cleanup; ip netns del "$ns" 2>/dev/null' EXIT
  ip -n "$ns" link set lo up
  # The same gateway in a namespace that has nothing but lo: no route anywhere.
  cat >ns.yaml <<EOF
listen: ["127.0.0.1:$gw_port"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem, crl: [ca/crl.pem]}
uem: {source: file, file: devices.json}
dtr: rules.yaml
egress: {address: 127.0.0.2, connect_timeout: 2s}
admin: {listen: "127.0.0.1:$admin_port"}
log: {format: json}
EOF
  : >ns.out
  ip netns exec "$ns" "$bin/tunnelgate" ns.yaml >ns.out 2>&1 &
  ns_pid=$!
  pids+=($ns_pid)
  ns_started() { grep -q '"event":"started"' ns.out; }
  if wait_for 10 ns_started; then
    ns_reason() {
      ip netns exec "$ns" curl -sS --max-time 10 -p --proxy "https://127.0.0.1:$gw_port" --proxy-cacert ca/ca.pem \
        --proxy-cert ca/devices/good-1.pem --proxy-key ca/devices/good-1.key -v "$1" 2>&1 >/dev/null |
        sed -n 's/^< X-Tunnel-Reason: //p' | tr -d '\r'
    }
    check "169.254.169.254:80 -> 403 forbidden-destination (policy, not network)" test "$(ns_reason http://169.254.169.254:80/)" = forbidden-destination
    check "... refused as link-local" grep -q '"refused_addresses":"169.254.169.254:80 (link-local)"' ns.out
    check "[::ffff:169.254.169.254]:80 -> forbidden too" test "$(ns_reason "http://[::ffff:169.254.169.254]:80/")" = forbidden-destination
    check "[fe80::1]:80 -> forbidden" test "$(ns_reason "http://[fe80::1]:80/")" = forbidden-destination
  else
    check "gateway in the namespace started" false
    cat ns.out
  fi
  kill "$ns_pid" 2>/dev/null
  wait "$ns_pid" 2>/dev/null
  ip netns del "$ns"
  check "namespace removed" bash -c "! ip netns list | grep -q '^$ns\\b'"
fi

finish
