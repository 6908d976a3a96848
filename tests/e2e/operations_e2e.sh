#!/usr/bin/env bash
# End-to-end: what an administrator and systemd see of the daemon. --version, exit codes,
# listener collisions in --check-config, sd_notify (READY, RELOADING, STOPPING, WATCHDOG) on a
# datagram socket of our own, /healthz without the token, /readyz while the UEM cannot answer,
# JSON logs from every library with numbers as numbers, the access log's modes and reopening
# (SIGUSR1, SIGHUP), --reload and POST /api/v1/reload (applied, refused, restart needed), and a
# SIGTERM that closes idle connections at once and lets tunnels drain for shutdown_grace.
#   operations_e2e.sh BIN_DIR
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh"
. "$here/e2e_lib.sh"
e2e_setup

"$bin/tunnelctl" ca init ca >/dev/null
"$bin/tunnelctl" ca issue ca --udid OPS-1 --user ops@example.com --serial SN-OPS >/dev/null
cat >devices.json <<'EOF'
[{"Udid":"OPS-1","SerialNumber":"SN-OPS","Platform":"WinRT","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false}]
EOF
start_server echo echo 0
gw_port=$(free_port)
admin_port=$(free_port)
cat >rules.yaml <<EOF
rule_sets:
  - name: laptops
    platforms: [windows]
    mode: full-device
    default: block
    rules:
      - action: tunnel
        destinations: ["127.0.0.1:$echo_port"]
EOF
echo "s3cret-admin-token" >admin.token
config() {  # config LOG_FORMAT LISTEN_PORT
  cat >gateway.yaml <<EOF
listen: ["127.0.0.1:$2"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem, crl: [ca/crl.pem]}
uem: {source: file, file: devices.json}
dtr: rules.yaml
egress: {address: 127.0.0.2, allow: ["127.0.0.1/32"]}
admin: {listen: "127.0.0.1:$admin_port", token_file: admin.token}
log: {format: $1, access_log: logs/access.log}
limits: {shutdown_grace: 3s}
EOF
}
config json "$gw_port"

# ---- versions and exit codes --------------------------------------------------------------
run "$bin/tunnelgate" --version
expect_rc "tunnelgate --version" 0
check "tunnelgate --version names the program and a version" grep -qE '^tunnelgate [0-9]+\.[0-9]+\.[0-9]+$' <<<"$out"
run "$bin/tunnelctl" --version
expect_rc "tunnelctl --version" 0
check "tunnelctl --version names the program and a version" grep -qE '^tunnelctl [0-9]+\.[0-9]+\.[0-9]+$' <<<"$out"
run "$bin/tunnelgate" --bogus
expect_rc "unknown option: usage error" 2
expect_err_has "usage lists the exit codes" "78 configuration error"

# ---- --check-config catches listener collisions, each located -------------------------------
sed "s/^listen: .*/listen: [\"127.0.0.1:$gw_port\", \"127.0.0.1:$gw_port\"]/" gateway.yaml >dup.yaml
run "$bin/tunnelgate" --check-config dup.yaml
expect_rc "duplicate listen: configuration error" 78
expect_err_has "duplicate listen located" "dup.yaml:1:"
expect_err_has "duplicate listen named" "listen[1]: 127.0.0.1:$gw_port is also listen[0]"
sed "s/^admin: {listen: \"127.0.0.1:$admin_port\", token_file: admin.token}/admin: {listen: \"0.0.0.0:$gw_port\", token_file: admin.token, tls: {cert: ca\/server.pem, key: ca\/server.key}}/" gateway.yaml >admin.yaml
sed "s/^admin: {listen: \"127.0.0.1:$admin_port\"/admin: {listen: \"0.0.0.0:$admin_port\"/" gateway.yaml >adminplain.yaml
run "$bin/tunnelgate" --check-config admin.yaml
expect_rc "admin on the device port (wildcard): configuration error" 78
expect_err_has "admin collision named" "admin.listen: 0.0.0.0:$gw_port is also listen[0]"
sed "s|^uem: .*|uem: {source: file, file: devices.json, webhook: {listen: \"127.0.0.1:$admin_port\", username: u, password_file: admin.token}}|" gateway.yaml >hook.yaml
run "$bin/tunnelgate" --check-config hook.yaml
expect_rc "webhook on the admin address: configuration error" 78
expect_err_has "webhook collision named" "uem.webhook.listen: 127.0.0.1:$admin_port is also admin.listen"
run "$bin/tunnelgate" hook.yaml
expect_rc "the daemon refuses the same file at start: configuration error" 78

# Every missing file in one pass, each at its key; a key mismatch at tls.key; an egress
# address that is not on this host at egress.address.
sed 's#cert: ca/server.pem#cert: ca/missing.pem#; s#^dtr: rules.yaml#dtr: norules.yaml#; s#file: devices.json#file: nodevices.json#' gateway.yaml >missing.yaml
run "$bin/tunnelgate" --check-config missing.yaml
expect_rc "missing files: configuration error" 78
expect_err_has "missing certificate located" "missing.yaml:2:13: tls.cert: file ca/missing.pem does not exist"
expect_err_has "missing rules located in the same pass" "missing.yaml:4:6: dtr: file norules.yaml does not exist"
expect_err_has "missing inventory located in the same pass" "missing.yaml:3:27: uem.file: cannot read inventory file"
sed 's#key: ca/server.key#key: ca/ca.key#; s#address: 127.0.0.2#address: 192.0.2.1#' gateway.yaml >mismatch.yaml
run "$bin/tunnelgate" --check-config mismatch.yaml
expect_rc "key mismatch and foreign egress address: configuration error" 78
expect_err_has "key mismatch located" "mismatch.yaml:2:33: tls.key: cannot load the server private key"
run "$bin/tunnelgate" mismatch.yaml
expect_rc "... refused at start too" 78
expect_err_has "... located at start too" "mismatch.yaml:2:33: tls.key:"
sed 's#address: 127.0.0.2#address: 192.0.2.1#' gateway.yaml >egress.yaml
run "$bin/tunnelgate" --check-config egress.yaml
expect_err_has "egress address located" "egress.yaml:5:19: egress.address: 192.0.2.1 is not assigned on this host"

# ---- a bind failure is a runtime failure (1), not a configuration error ----------------------
: >holder.out
python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("held", flush=True)
time.sleep(60)' "$gw_port" >holder.out 2>&1 &
holder=$!
pids+=("$holder")
check "the port is held by another program" wait_for 5 grep -q held holder.out
run timeout 10 "$bin/tunnelgate" gateway.yaml
expect_rc "listener address in use: runtime failure" 1
expect_err_has "... says which listener" "listen 127.0.0.1:$gw_port: cannot listen"
kill "$holder"
wait "$holder" 2>/dev/null

# ---- start under a fake systemd: NOTIFY_SOCKET and WATCHDOG_USEC ----------------------------
cat >notify.py <<'EOF'
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print("listening", flush=True)
with open(sys.argv[2], "a") as out:
    while True:
        msg = s.recv(4096).decode()
        out.write(msg.replace("\n", " ") + "\n")
        out.flush()
EOF
: >notify.log
: >notify.out
python3 notify.py "$work/notify.sock" notify.log >notify.out 2>&1 &
pids+=($!)
wait_for 5 grep -q listening notify.out
NOTIFY_SOCKET="$work/notify.sock" WATCHDOG_USEC=400000 "$bin/tunnelgate" gateway.yaml >gw.out 2>&1 &
gw_pid=$!
pids+=("$gw_pid")
check "READY=1 sent once ready" wait_for 10 grep -q "^READY=1" notify.log
check "watchdog pings (WATCHDOG_USEC/2)" wait_for 3 bash -c "[ \$(grep -c '^WATCHDOG=1' notify.log) -ge 3 ]"

# ---- admin: /healthz open, the rest behind the token ------------------------------------------
admin() { curl -s --max-time 10 -H "Authorization: Bearer s3cret-admin-token" "$@"; }
export -f admin
run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/healthz"
expect_out "/healthz needs no token" 200
run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/readyz"
expect_out "/readyz needs the token" 401
run admin "http://127.0.0.1:$admin_port/readyz"
expect_out "/readyz ready" "ready"
run admin "http://127.0.0.1:$admin_port/metrics"
expect_out_has "build info" 'tunnelgate_build_info{version="'
expect_out_has "process metrics" "process_resident_memory_bytes "
expect_out_has "open descriptors" "process_open_fds "
check "server certificate expiry in days" grep -qE '^tunnelgate_certificate_expiry_days\{kind="server",file="ca/server.pem"\} [0-9]+\.[0-9]{3}$' <<<"$out"
check "device CA expiry in days" grep -qE '^tunnelgate_certificate_expiry_days\{kind="device-ca",subject="[^"]+"\} [0-9]+\.[0-9]{3}$' <<<"$out"
check "CRL next update in days" grep -qE '^tunnelgate_crl_next_update_days\{file="ca/crl.pem"\} [0-9]+\.[0-9]{3}$' <<<"$out"

# ---- a tunnel; the access log's modes; JSON lines with numbers ------------------------------
run gw_curl OPS-1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$echo_port/"
expect_out "a tunnel" 200
# A browser's plain-HTTP request (absolute form, no CONNECT): refused, said why, logged.
run curl -sS --max-time 10 --proxy "https://127.0.0.1:$gw_port" --proxy-cacert ca/ca.pem \
  --proxy-cert ca/devices/OPS-1.pem --proxy-key ca/devices/OPS-1.key -D - -o /dev/null \
  "http://127.0.0.1:$echo_port/plain"
expect_out_has "absolute-form request: 400" "HTTP/1.1 400"
expect_out_has "... with the reason" "X-Tunnel-Reason: use-connect"
check "... logged with the target" wait_for 5 grep -q '"event":"request_refused".*"reason":"use-connect".*absolute-form target http://127.0.0.1:'"$echo_port"'/plain' gw.out
check "access log folder created 0750" test "$(stat -c %a logs)" = 750
check "access log created 0640" test "$(stat -c %a logs/access.log)" = 640
check "the access line is in the file" grep -q '"event":"access".*"udid":"OPS-1"' logs/access.log
check "every stderr line is JSON" python3 -c '
import json, sys
n = 0
for line in open("gw.out"):
    json.loads(line); n += 1
assert n > 3, n'
check "numbers are JSON numbers" grep -q '"event":"listening".*"threads":[0-9]' gw.out
check "the uem library line is JSON too" grep -q '"event":"log".*"source":"uem".*"message":"inventory' gw.out
check "handshake latency histogram" bash -c "admin http://127.0.0.1:$admin_port/metrics | grep -q '^tunnelgate_handshake_seconds_count [1-9]'"
check "admission latency histogram" bash -c "admin http://127.0.0.1:$admin_port/metrics | grep -q '^tunnelgate_admission_seconds_bucket{le=\"+Inf\"} [1-9]'"

# logrotate's move, then SIGUSR1: a new file (0640), the old one keeps the old lines.
mv logs/access.log logs/access.log.1
kill -USR1 "$gw_pid"
check "SIGUSR1 reopens the access log" wait_for 5 test -f logs/access.log
run gw_curl OPS-1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$echo_port/again"
check "the new access line goes to the new file" wait_for 5 grep -q '"event":"access"' logs/access.log
check "... and the reopened file is 0640" test "$(stat -c %a logs/access.log)" = 640
check "the moved file is not written any more" bash -c "[ \$(grep -c '\"event\":\"access\"' logs/access.log.1) -eq 1 ]"

# ---- reloads ---------------------------------------------------------------------------------
run "$bin/tunnelgate" --reload gateway.yaml
expect_rc "--reload applied" 0
expect_out "--reload says so" "reloaded: gateway.yaml"
check "RELOADING=1 then READY=1" bash -c "grep -n 'RELOADING=1' notify.log | tail -1 | cut -d: -f1 | { read r; [ -n \"\$r\" ] && tail -n +\$r notify.log | grep -q '^READY=1'; }"
check "RELOADING carries MONOTONIC_USEC" grep -q '^RELOADING=1 MONOTONIC_USEC=[0-9]' notify.log
other_port=$(free_port)
config text "$other_port"
run "$bin/tunnelgate" --reload gateway.yaml
expect_rc "--reload with a listen change: applied" 0
expect_err_has "... but listen waits for a restart" "warning: listen changed: it takes effect at the next restart"
check "log.format applied live: new lines are text" wait_for 5 grep -q ' info reloaded config=gateway.yaml' gw.out
config json "$gw_port"
run "$bin/tunnelgate" --reload gateway.yaml
expect_rc "--reload back" 0
check "the reloads are counted" bash -c "admin http://127.0.0.1:$admin_port/metrics | grep -q '^tunnelgate_config_reloads_total{result=\"applied\"} 3'"
cp gateway.yaml good.yaml
echo "bogus_key: 1" >>gateway.yaml
run "$bin/tunnelgate" --reload gateway.yaml
expect_rc "--reload of a broken file: configuration error" 78
expect_err_has "... names the problem" "bogus_key"
expect_err_has "... and that the daemon was not asked" "the running gateway was not asked"
run admin -X POST "http://127.0.0.1:$admin_port/api/v1/reload"
expect_out_has "POST /api/v1/reload refused" '"result":"refused"'
expect_out_has "... with the error" "bogus_key"
check "a refused reload sets the gauge to 0" bash -c "admin http://127.0.0.1:$admin_port/metrics | grep -q '^tunnelgate_config_last_reload_successful 0'"
kill -HUP "$gw_pid"
check "SIGHUP with a broken file: reload_refused logged" wait_for 5 grep -q '"event":"reload_refused".*bogus_key' gw.out
run gw_curl OPS-1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$echo_port/"
expect_out "the previous configuration still serves" 200
cp good.yaml gateway.yaml
run admin -X POST "http://127.0.0.1:$admin_port/api/v1/reload"
expect_out_has "fixed file: applied" '"result":"applied"'

# ---- SIGTERM: idle connections close now, tunnels drain ----------------------------------------
gw_curl OPS-1 "http://127.0.0.1:$echo_port/slow?ms=20000" >slow.out 2>&1 &
slow=$!
pids+=("$slow")
wait_for 5 session_up OPS-1 "$echo_port"
# An admitted connection waiting for its next request (openssl, silent after the handshake).
sleep 30 | openssl s_client -quiet -connect "127.0.0.1:$gw_port" -CAfile ca/ca.pem \
  -cert ca/devices/OPS-1.pem -key ca/devices/OPS-1.key >idle.out 2>&1 &
idle=$!
pids+=("$idle")
check "the idle connection is admitted" wait_for 5 bash -c "[ \$(curl -s -H 'Authorization: Bearer s3cret-admin-token' http://127.0.0.1:$admin_port/api/v1/sessions | grep -o '\"udid\":\"OPS-1\"' | wc -l) -ge 2 ]"
t0=$(date +%s%N)
kill -TERM "$gw_pid"
check "STOPPING=1 sent" wait_for 2 grep -q '^STOPPING=1' notify.log
check "the idle connection is closed at once" wait_for 1 bash -c "! kill -0 $idle 2>/dev/null"
check "the tunnel still runs during the grace" kill -0 "$slow"
run admin "http://127.0.0.1:$admin_port/readyz"
expect_out_has "/readyz says stopping during the drain" "stopping"
wait "$gw_pid"
gw_rc=$?
t1=$(date +%s%N)
check "SIGTERM: exit 0" test "$gw_rc" -eq 0
check "SIGTERM: exit after the 3 s grace" test $(((t1 - t0) / 1000000)) -ge 2900
check "... the tunnel closed at its end" wait_for 3 bash -c "! kill -0 $slow 2>/dev/null"
check "grace end logged" grep -q '"event":"shutdown_grace_over"' gw.out

# ---- the admin API over TLS (admin.tls; required off loopback) -------------------------------
run "$bin/tunnelgate" --check-config adminplain.yaml
expect_err_has "a non-loopback admin listener without TLS is refused" "admin.listen: a non-loopback admin listener needs admin.tls {cert, key}"
sed "s|^admin: .*|admin: {listen: \"127.0.0.1:$admin_port\", token_file: admin.token, tls: {cert: ca/server.pem, key: ca/ca.key}}|" gateway.yaml >tlsbad.yaml
run "$bin/tunnelgate" --check-config tlsbad.yaml
expect_rc "admin.tls key that does not match: configuration error" 78
expect_err_has "... located and named" "tlsbad.yaml:6:"
expect_err_has "... says what" "admin.tls.key: cannot load the private key of admin.tls.cert"
sed "s|^admin: .*|admin: {listen: \"127.0.0.1:$admin_port\", token_file: admin.token, tls: {cert: ca/server.pem, key: ca/server.key}}|" gateway.yaml >tls.yaml
"$bin/tunnelgate" tls.yaml >tls.out 2>&1 &
gw3=$!
pids+=("$gw3")
check "admin over HTTPS: /healthz" wait_for 10 bash -c "curl -s --cacert ca/ca.pem https://127.0.0.1:$admin_port/healthz | grep -q ok"
run curl -s --cacert ca/ca.pem -H "Authorization: Bearer s3cret-admin-token" "https://127.0.0.1:$admin_port/readyz"
expect_out "admin over HTTPS: /readyz with the token" "ready"
run curl -s --max-time 5 "http://127.0.0.1:$admin_port/healthz"
check "plain HTTP to the HTTPS admin port gets no answer" test -z "$out"
run "$bin/tunnelgate" --reload tls.yaml
expect_rc "--reload over HTTPS" 0
expect_out "... applied" "reloaded: tls.yaml"
kill "$gw3"
wait "$gw3"
check "TLS admin gateway stopped cleanly" test $? -eq 0

# ---- /readyz while the UEM cannot answer ----------------------------------------------------
dead_port=$(free_port)
echo TENANT >tenant.code
echo pass >api.pass
cat >ws1.yaml <<EOF
listen: ["127.0.0.1:$gw_port"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem, crl: [ca/crl.pem]}
uem:
  source: ws1
  ws1:
    base_url: https://127.0.0.1:$dead_port
    tenant_code_file: tenant.code
    auth: {basic: {username: tg-api, password_file: api.pass}}
    ca_file: ca/ca.pem
    connect_timeout: 1s
    request_timeout: 1s
  cache: {positive_ttl: 1s, negative_ttl: 1s, stale_grace: 1s}
dtr: rules.yaml
egress: {address: 127.0.0.2, allow: ["127.0.0.1/32"]}
admin: {listen: "127.0.0.1:$admin_port"}
log: {format: json}
EOF
"$bin/tunnelgate" ws1.yaml >ws1.out 2>&1 &
gw2=$!
pids+=("$gw2")
check "ws1 gateway up" wait_for 10 bash -c "curl -s http://127.0.0.1:$admin_port/healthz | grep -q ok"
run status_of OPS-1 "http://127.0.0.1:$echo_port/"
expect_out "the device is refused: the UEM does not answer" 503
run curl -s "http://127.0.0.1:$admin_port/readyz"
expect_out_has "/readyz not ready while the UEM cannot answer" "not ready: uem"
expect_out_has "... and says why" "the UEM did not answer"
run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/readyz"
expect_out "... with 503" 503
kill "$gw2"
wait "$gw2"
check "ws1 gateway stopped cleanly" test $? -eq 0

finish
