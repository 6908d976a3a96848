#!/usr/bin/env bash
# End-to-end: the real tunnelgate process, real certificates from `tunnelctl ca`, real curl as
# the device app, a file inventory, a destination and an upstream proxy on loopback.
#   gateway_e2e.sh BIN_DIR
# Everything listens on 127.0.0.1; the egress address is 127.0.0.2 (on lo by default).
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh"
. "$here/e2e_lib.sh"
e2e_setup  # $work (removed at exit unless KEEP_WORK=1), $pids (killed at exit)

# ---- PKI: one dev CA, devices of every kind, and a stranger's CA ---------------------------
"$bin/tunnelctl" ca init ca >/dev/null
for d in GOOD-1 NONCOMPLIANT-1 UNENROLLED-1 COMPROMISED-1 UNKNOWN-1 DROID-1 REVOKED-1 KILL-1 HOOK-1 HUP-1 TERM-1; do
  "$bin/tunnelctl" ca issue ca --udid "$d" --user "${d,,}@example.com" --serial "SN-$d" >/dev/null
done
"$bin/tunnelctl" ca init other >/dev/null
"$bin/tunnelctl" ca issue other --udid GOOD-1 --user good-1@example.com >/dev/null

inventory() {  # inventory HOOK_STATUS : writes devices.json atomically
  local hook=${1:-Compliant}
  cat >devices.tmp <<EOF
[
 {"Udid":"GOOD-1","SerialNumber":"SN-GOOD-1","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false},
 {"Udid":"NONCOMPLIANT-1","SerialNumber":"SN-N","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"NonCompliant","CompromisedStatus":false},
 {"Udid":"UNENROLLED-1","SerialNumber":"SN-U","Platform":"Apple","EnrollmentStatus":"Unenrolled","ComplianceStatus":"Compliant","CompromisedStatus":false},
 {"Udid":"COMPROMISED-1","SerialNumber":"SN-C","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":true},
 {"Udid":"DROID-1","SerialNumber":"SN-D","Platform":"Android","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false},
 {"Udid":"REVOKED-1","SerialNumber":"SN-R","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false},
 {"Udid":"KILL-1","SerialNumber":"SN-K","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false},
 {"Id":{"Value":4242},"Udid":"HOOK-1","SerialNumber":"SN-H","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"$hook","CompromisedStatus":false},
 {"Udid":"HUP-1","SerialNumber":"SN-HUP","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false},
 {"Udid":"TERM-1","SerialNumber":"SN-T","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false}
]
EOF
  mv devices.tmp devices.json
}
inventory Compliant

# ---- loopback peers --------------------------------------------------------------------------
start_server echo echo 0
start_server proxy proxy 0 "relay:s3cret"
echo "relay:s3cret" >proxy.creds
echo "hook-password" >hook.pass
gw_port=$(free_port)
admin_port=$(free_port)
hook_port=$(free_port)

rules() {  # rules BYPASS_ACTION
  cat >rules.yaml <<EOF
proxies:
  upstream: http://127.0.0.1:$proxy_port
rule_sets:
  - name: ios-apps
    platforms: [ios]
    mode: per-app
    apps: [com.example.proxied]
    default: block
    rules:
      - action: proxy
        proxy: upstream
        destinations: ["127.0.0.1:$echo_port"]
  - name: ios
    platforms: [ios]
    mode: full-device
    default: block
    rules:
      - action: tunnel
        destinations: ["127.0.0.1", localhost, "*.tunnel.test"]
      - action: ${1:-bypass}
        destinations: ["*.bypass.test"]
EOF
}
rules bypass

cat >gateway.yaml <<EOF
listen: ["127.0.0.1:$gw_port"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem, crl: [ca/crl.pem]}
uem:
  source: file
  file: devices.json
  poll_interval: 200ms
  webhook: {listen: "127.0.0.1:$hook_port", username: uem, password_file: hook.pass}
dtr: rules.yaml
egress: {address: 127.0.0.2, resolve_timeout: 2s, connect_timeout: 2s, allow: ["127.0.0.1/32"]}
admin: {listen: "127.0.0.1:$admin_port"}
limits: {header_timeout: 1s, handshake_timeout: 2s, max_sessions_per_device: 3, shutdown_grace: 3s, header_limit: 4096, max_headers: 20}
upstream_credentials: {upstream: {file: proxy.creds}}
log: {format: json}
EOF

run "$bin/tunnelgate" --check-config gateway.yaml
expect_rc "check-config good" 0

start_gateway() {
  ${TUNNELGATE_WRAPPER:-} "$bin/tunnelgate" gateway.yaml >gw.out 2>&1 &
  gw_pid=$!
  pids+=($gw_pid)
  wait_for 10 grep -q '"event":"started"' gw.out || { echo "gateway did not start"; cat gw.out; exit 1; }
}
start_gateway

# ---- tunnel: the destination sees the egress address --------------------------------------
run gw_curl GOOD-1 "http://127.0.0.1:$echo_port/"
expect_rc "tunnel to IP" 0
expect_out "tunnel: destination sees egress 127.0.0.2" "peer=127.0.0.2"
run gw_curl GOOD-1 "http://localhost:$echo_port/"
expect_out "tunnel by name" "peer=127.0.0.2"
run gw_curl GOOD-1 "https://127.0.0.1:$gw_port/" -o /dev/null
check "access log line for the tunnel" grep -q '"event":"access".*"udid":"GOOD-1".*"destination":"127.0.0.1:'"$echo_port"'".*"action":"tunnel".*"egress":"127.0.0.2:' gw.out

# ---- every DTR outcome ------------------------------------------------------------------------
check "bypass -> 403 bypass" test "$(reason_of GOOD-1 http://x.bypass.test/)" = bypass
check "default block -> 403 blocked" test "$(reason_of GOOD-1 http://elsewhere.example/)" = blocked
check "android without a rule set -> no-rule-set" test "$(reason_of DROID-1 "http://127.0.0.1:$echo_port/")" = no-rule-set
run gw_curl GOOD-1 -H "X-Tunnel-App: com.example.proxied" --proxy-header "X-Tunnel-App: com.example.proxied" "http://127.0.0.1:$echo_port/"
expect_out "proxy rule: chained through the upstream proxy" "peer=127.0.0.1"
check "upstream proxy saw the egress address and the credentials" grep -q "^connect 127.0.0.1:$echo_port from=127.0.0.2 auth=ok" proxy.out
check "access log line for the proxied tunnel names the egress address and the proxy" \
  grep -q '"event":"access".*"udid":"GOOD-1".*"action":"proxy:upstream".*"egress":"127.0.0.2:[0-9]*","remote":"127.0.0.1:'"$proxy_port"'"' gw.out
check "resolve failure -> 502 resolve-failed" test "$(reason_of GOOD-1 http://nowhere.tunnel.test/)" = resolve-failed
closed_port=$(free_port)
check "connect refused -> 502 connect-failed" test "$(reason_of GOOD-1 "http://127.0.0.1:$closed_port/")" = connect-failed
check "502 status for connect failure" test "$(status_of GOOD-1 "http://127.0.0.1:$closed_port/")" = 502
check "CONNECT to the gateway itself -> forbidden" test "$(reason_of GOOD-1 "https://127.0.0.1:$gw_port/")" = forbidden-destination
check "CONNECT to the admin port -> forbidden" test "$(reason_of GOOD-1 "http://127.0.0.1:$admin_port/")" = forbidden-destination
check "CONNECT to the webhook port -> forbidden" test "$(reason_of GOOD-1 "http://127.0.0.1:$hook_port/")" = forbidden-destination

# ---- every compliance refusal -----------------------------------------------------------------
check "noncompliant" test "$(reason_of NONCOMPLIANT-1 "http://127.0.0.1:$echo_port/")" = noncompliant
check "not enrolled" test "$(reason_of UNENROLLED-1 "http://127.0.0.1:$echo_port/")" = not_enrolled
check "compromised" test "$(reason_of COMPROMISED-1 "http://127.0.0.1:$echo_port/")" = compromised
check "unknown device" test "$(reason_of UNKNOWN-1 "http://127.0.0.1:$echo_port/")" = unknown_device
check "refusal is 403" test "$(status_of NONCOMPLIANT-1 "http://127.0.0.1:$echo_port/")" = 403
check "audit line for a refusal" grep -q '"event":"refused".*"udid":"NONCOMPLIANT-1".*"reason":"noncompliant"' gw.out

# ---- certauth refusals over a real handshake ----------------------------------------------
run curl -sS --max-time 5 -p --proxy "https://127.0.0.1:$gw_port" --proxy-cacert ca/ca.pem "http://127.0.0.1:$echo_port/"
check "no client certificate: refused" test "$rc" -ne 0
check "no_certificate counted" metric_at_least 'tunnelgate_handshakes_total{result="refused",reason="no_certificate"}' 1
run gw_curl GOOD-1 --ca other "http://127.0.0.1:$echo_port/"
check "certificate from another CA: refused" test "$rc" -ne 0
check "unknown_ca counted" metric_at_least 'tunnelgate_handshakes_total{result="refused",reason="unknown_ca"}' 1
run gw_curl REVOKED-1 "http://127.0.0.1:$echo_port/"
expect_out "before revocation the device passes" "peer=127.0.0.2"
gw_curl REVOKED-1 "http://127.0.0.1:$echo_port/slow?ms=20000" >revoked.out 2>&1 &
revoked_curl=$!
check "the device's long tunnel is up" wait_for 5 session_up REVOKED-1 "$echo_port"
"$bin/tunnelctl" ca revoke ca REVOKED-1 >/dev/null
check "CRL change closes the open tunnel within the reload period" wait_for 4 bash -c "! kill -0 $revoked_curl 2>/dev/null"
check "... logged with reason=revoked" grep -q '"event":"session_closed".*"udid":"REVOKED-1","reason":"revoked"' gw.out
check "... counted" metric_at_least 'tunnelgate_sessions_closed_total{reason="revoked"}' 1
check "the killed tunnel did not deliver the slow answer" bash -c "! grep -q peer= revoked.out"
revoked_refused() { ! gw_curl REVOKED-1 "http://127.0.0.1:$echo_port/" >/dev/null 2>&1; }
check "CRL change picked up without restart: revoked device refused" wait_for 6 revoked_refused
# (a handshake that raced the CRL change is closed by the recheck; the next ones are refused)
revoked_counted() { revoked_refused; metric_at_least 'tunnelgate_handshakes_total{result="refused",reason="revoked"}' 1; }
check "revoked counted" wait_for 5 revoked_counted
check "handshake refusal logged with its reason" grep -q '"event":"handshake_refused".*"reason":"revoked"' gw.out

# ---- live revocation: admin API ---------------------------------------------------------------
gw_curl KILL-1 "http://127.0.0.1:$echo_port/slow?ms=20000" >kill.out 2>&1 &
kill_curl=$!
check "long tunnel listed in /api/v1/sessions" wait_for 5 session_up KILL-1 "$echo_port"
run curl -s -X DELETE "http://127.0.0.1:$admin_port/api/v1/devices/KILL-1/sessions"
expect_out_has "DELETE device sessions answers the count" '"closed":1'
t0=$(date +%s%N)
wait "$kill_curl"
t1=$(date +%s%N)
check "tunnel torn down within 1 s of DELETE" test $(((t1 - t0) / 1000000)) -lt 1000
check "killed tunnel did not deliver the slow answer" bash -c "! grep -q peer= kill.out"
check "kill counted" metric_at_least 'tunnelgate_sessions_closed_total{reason="admin"}' 1
gw_curl KILL-1 "http://127.0.0.1:$echo_port/slow?ms=20000" >kill2.out 2>&1 &
kill_curl=$!
wait_for 5 session_up KILL-1 "$echo_port"
sid=$(curl -s "http://127.0.0.1:$admin_port/api/v1/sessions" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const x=JSON.parse(s).sessions.find(v=>v.udid==="KILL-1");console.log(x?x.id:"")})')
run curl -s -X DELETE "http://127.0.0.1:$admin_port/api/v1/sessions/$sid"
expect_out_has "DELETE one session" '"closed":1'
check "that session ends" wait_for 2 bash -c "! kill -0 $kill_curl 2>/dev/null"
run curl -s -o /dev/null -w '%{http_code}' -X DELETE "http://127.0.0.1:$admin_port/api/v1/sessions/999999"
expect_out "DELETE unknown session -> 404" 404

# ---- admin: the running rules' decision -----------------------------------------------------
eval_api() { curl -s -G "http://127.0.0.1:$admin_port/api/v1/dtr/eval" "$@"; }
run eval_api --data-urlencode platform=ios --data-urlencode destination=x.bypass.test:443
expect_out_has "dtr/eval: bypass with its rule set and rank" '"action":"bypass","set":"ios","rank":2'
run eval_api --data-urlencode platform=ios --data-urlencode app=com.example.proxied --data-urlencode "destination=127.0.0.1:$echo_port"
expect_out_has "dtr/eval: per-app proxy rule" '"action":"proxy","proxy":"upstream"'
run eval_api --data-urlencode platform=android --data-urlencode destination=127.0.0.1:443
expect_out_has "dtr/eval: no rule set" '"action":"refused","reason":"no-rule-set"'
run eval_api --data-urlencode platform=ios --data-urlencode 'destination=[2001:db8::1]:443'
expect_out_has "dtr/eval: IPv6 destination falls to the default" '"action":"block","set":"ios","rank":"default"'
run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/api/v1/dtr/eval?platform=ios&destination=nohost"
expect_out "dtr/eval without a port -> 400" 400
run curl -s "http://127.0.0.1:$admin_port/api/v1/dtr/eval?platform=beos&destination=a.test:443"
expect_out_has "dtr/eval: unknown platform named" "platform must be one of"
run curl -s "http://127.0.0.1:$admin_port/api/v1/dtr/eval?platform=ios&platform=android&destination=a.test:443"
expect_out_has "dtr/eval: a repeated key is refused" "repeated key"

# ---- live revocation: UEM webhook ------------------------------------------------------------
gw_curl HOOK-1 "http://127.0.0.1:$echo_port/slow?ms=20000" >hook.out 2>&1 &
hook_curl=$!
check "webhook device's tunnel is up" wait_for 5 session_up HOOK-1 "$echo_port"
run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hook_port/"
expect_out "webhook without credentials -> 401" 401
inventory NonCompliant
t0=$(date +%s%N)
run curl -s -o /dev/null -w '%{http_code}' -u uem:hook-password -H 'Content-Type: application/json' \
  -d '{"EventId":9001,"EventType":"Compliance Status Changed","DeviceId":4242,"Udid":"HOOK-1","SerialNumber":"SN-H","ComplianceStatus":"NonCompliant","CompromisedStatus":"false","EventTime":"2026-11-29T00:00:00.0000000Z"}' \
  "http://127.0.0.1:$hook_port/"
check "webhook accepted" test "$out" -ge 200 -a "$out" -lt 300
check "webhook event counted" metric_at_least 'tunnelgate_uem_webhook_events_total{result="accepted"}' 1
check "webhook without credentials counted as rejected" metric_at_least 'tunnelgate_uem_webhook_events_total{result="rejected"}' 1
wait "$hook_curl"
t1=$(date +%s%N)
check "tunnel torn down within 1 s of the compliance change" test $(((t1 - t0) / 1000000)) -lt 1000
check "revocation logged" grep -q '"event":"device_revoked".*"udid":"HOOK-1"' gw.out
check "new connection of that device is refused" test "$(reason_of HOOK-1 "http://127.0.0.1:$echo_port/")" = noncompliant

# ---- SIGHUP with a good and a broken configuration while a tunnel is open ----------------
gw_curl HUP-1 "http://127.0.0.1:$echo_port/slow?ms=2500" >hup.out 2>&1 &
hup_curl=$!
wait_for 5 session_up HUP-1 "$echo_port"
rules block
kill -HUP "$gw_pid"
check "reload logged" wait_for 5 grep -q '"event":"reloaded"' gw.out
check "new rules apply after SIGHUP" test "$(reason_of GOOD-1 http://x.bypass.test/)" = blocked
echo "rule_sets: [oops" >rules.yaml
kill -HUP "$gw_pid"
check "broken config refused on SIGHUP" wait_for 5 grep -q '"event":"reload_refused"' gw.out
check "old rules kept after a broken reload" test "$(reason_of GOOD-1 http://x.bypass.test/)" = blocked
wait "$hup_curl"
check "tunnel open across both reloads completed" grep -q "peer=127.0.0.2" hup.out
check "gateway still running" kill -0 "$gw_pid"
rules bypass
kill -HUP "$gw_pid"
check "rules restored by a third SIGHUP" wait_for 5 bash -c "[ \$(grep -c '\"event\":\"reloaded\"' gw.out) -ge 2 ]"

# ---- bad input --------------------------------------------------------------------------------
run node "$here/bad_input.js" "$gw_port" ca/ca.pem ca/devices/GOOD-1.pem ca/devices/GOOD-1.key
expect_rc "bad input cases" 0
[ "$rc" -eq 0 ] || echo "$out"
for why in obs-fold duplicate-host host-mismatch bad-line-ending target-too-long body-not-allowed header-too-large too-many-headers; do
  check "refused request logged with its reason: $why" grep -q '"event":"request_refused","udid":"GOOD-1","reason":"'"$why"'"' gw.out
  check "... and counted: $why" metric_at_least "tunnelgate_requests_total{outcome=\"$why\"}" 1
done
check "the session limit is counted as a refused admission" metric_at_least 'tunnelgate_admissions_total{result="refused",reason="session-limit"}' 1
check "... and audited as a refusal" grep -q '"event":"refused".*"reason":"session-limit"' gw.out
check "gateway survived bad input" kill -0 "$gw_pid"
run gw_curl GOOD-1 "http://127.0.0.1:$echo_port/"
expect_out "still serving after bad input" "peer=127.0.0.2"

# ---- metrics and health -----------------------------------------------------------------------
run curl -s "http://127.0.0.1:$admin_port/healthz"
expect_out "healthz" "ok"
run curl -s "http://127.0.0.1:$admin_port/readyz"
expect_out "readyz" "ready"
check "tunnels counted by action" metric_at_least 'tunnelgate_tunnels_total{action="tunnel"}' 3
check "proxy tunnels counted" metric_at_least 'tunnelgate_tunnels_total{action="proxy"}' 1
check "admissions counted by reason" metric_at_least 'tunnelgate_admissions_total{result="refused",reason="noncompliant"}' 1
check "bytes counted" metric_at_least 'tunnelgate_tunnel_bytes_total{direction="down"}' 100

# ---- SIGTERM: stop accepting, drain the tunnels for the grace, then close them and exit -------
gw_curl TERM-1 "http://127.0.0.1:$echo_port/slow?ms=20000" >term.out 2>&1 &
term_curl=$!
wait_for 5 session_up TERM-1 "$echo_port"
t0=$(date +%s%N)
kill -TERM "$gw_pid"
sleep 1
check "SIGTERM: the open tunnel drains (still open 1 s later)" kill -0 "$term_curl"
check "SIGTERM: no new connections" bash -c "! curl -s --max-time 2 -k https://127.0.0.1:$gw_port/ -o /dev/null"
wait "$gw_pid"
gw_rc=$?
t1=$(date +%s%N)
check "SIGTERM: exit 0" test "$gw_rc" -eq 0
check "SIGTERM: exits after the 3 s grace, not long after" \
  test $(((t1 - t0) / 1000000)) -ge 2900 -a $(((t1 - t0) / 1000000)) -lt 6000
check "SIGTERM: the tunnel is closed once the grace is over" wait_for 2 bash -c "! kill -0 $term_curl 2>/dev/null"
check "grace end logged" grep -q '"event":"shutdown_grace_over"' gw.out
check "stopped logged" grep -q '"event":"stopped"' gw.out

# ---- a broken configuration is refused at start, with file:line ---------------------------
sed 's/egress: {address: 127.0.0.2/egress: {address: 127.0.0.2, bogus: 1/' gateway.yaml >broken.yaml
run "$bin/tunnelgate" --check-config broken.yaml
expect_rc "check-config broken: configuration error" 78
expect_err_has "check-config names file, line and key" "broken.yaml:"
expect_err_has "check-config names the key" "egress.bogus: unknown key"
sed 's/address: 127.0.0.2/address: 192.0.2.77/' gateway.yaml >noegress.yaml
run "$bin/tunnelgate" noegress.yaml
expect_rc "egress address not on this host: refused at start (configuration error)" 78
expect_err_has "egress error says how to fix it" "is not assigned on this host"

finish
