#!/usr/bin/env bash
# Smoke runs of every tunnel-bench mode against a real tunnelgate (ws1 compliance from uem-sim,
# the UEM webhook, egress 127.0.0.2 to the sink on loopback), each brief. Figures are not
# checked (no timed assertions): each mode must exit 0, with zero errors, every request
# answered and every byte counted, as its --json report says.
#   bench_modes_smoke.sh BIN_DIR
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh"
. "$here/e2e_lib.sh"
e2e_setup  # $work (removed at exit unless KEEP_WORK=1), $pids (killed at exit)

# jcheck DESCRIPTION JS-EXPRESSION : the expression over `j` (the JSON report in $out) is true
jcheck() {
  local what=$1 expr=$2
  check "$what ($expr)" node -e '
    let j; try { j = JSON.parse(process.argv[1]); } catch (e) { process.exit(1); }
    process.exit(eval(process.argv[2]) ? 0 : 1);' "$out" "$expr"
}
# started_line FILE PATTERN: waits for PATTERN in FILE, prints the matching line
wait_line() { wait_for 10 grep -q "$2" "$1" && grep -m1 "$2" "$1"; }

# ---- PKI, the UEM, the sink ------------------------------------------------------------------
"$bin/tunnelctl" ca init ca >/dev/null
"$bin/tunnelctl" ca issue ca --udid BENCH-1 --user bench@example.com --serial SN-BENCH >/dev/null
cat >devices.json <<'EOF'
[{"Id":{"Value":1},"Udid":"BENCH-1","SerialNumber":"SN-BENCH","Platform":"Apple",
  "EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false}]
EOF
echo "api-password" >api.pass
echo "hook-password" >hook.pass
echo "TENANT-CODE" >tenant.code
"$bin/uem-sim" --inventory devices.json --cert ca/server.pem --key ca/server.key \
  --listen 127.0.0.1:0 --port-file uem.port --basic-user tg-api --basic-password-file api.pass \
  --tenant-code-file tenant.code >uem.out 2>&1 &
pids+=($!)
wait_for 10 test -s uem.port || { echo "uem-sim did not start"; cat uem.out; exit 1; }
uem_port=$(cat uem.port)

: >sink.out
"$bin/tunnel-bench" sink --listen 127.0.0.1:0 >sink.out 2>sink.err &
pids+=($!)
sink=$(wait_line sink.out '^listening ' | awk '{print $2}')
[ -n "$sink" ] || { echo "the sink did not start"; cat sink.out sink.err; exit 1; }

# ---- the gateway -----------------------------------------------------------------------------
gw_port=$(free_port)
admin_port=$(free_port)
hook_port=$(free_port)
cat >rules.yaml <<'EOF'
rule_sets:
  - name: bench
    platforms: [ios]
    mode: full-device
    default: block
    rules:
      - action: tunnel
        destinations: ["127.0.0.1"]
EOF
write_config() {  # write_config [EXTRA-TLS-KEYS]
  cat >gateway.yaml <<EOF
listen: ["127.0.0.1:$gw_port"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem, crl: [ca/crl.pem]$1}
uem:
  source: ws1
  ws1:
    base_url: https://127.0.0.1:$uem_port
    tenant_code_file: tenant.code
    auth: {basic: {username: tg-api, password_file: api.pass}}
    ca_file: ca/ca.pem
  webhook: {listen: "127.0.0.1:$hook_port", username: uem, password_file: hook.pass}
dtr: rules.yaml
egress: {address: 127.0.0.2, allow: ["127.0.0.1/32"]}   # the sink is on loopback
admin: {listen: "127.0.0.1:$admin_port"}
limits: {max_sessions_per_device: 1000, max_pending_per_source: 0, handshake_rate_per_source: 0}
threads: 1
log: {level: warn}
EOF
}
# Session tickets when this gateway has them (tls.session_tickets: N); resume runs against it then.
tickets=0
write_config ""
run "$bin/tunnelgate" --check-config gateway.yaml
expect_rc "the gateway configuration" 0
write_config ", session_tickets: 2"
if "$bin/tunnelgate" --check-config gateway.yaml >/dev/null 2>&1; then
  tickets=1
else
  write_config ""
fi
"$bin/tunnelgate" gateway.yaml >gw.out 2>&1 &
gw_pid=$!
pids+=($gw_pid)
wait_for 10 curl -sf "http://127.0.0.1:$admin_port/readyz" -o /dev/null ||
  { echo "gateway did not start"; cat gw.out; exit 1; }

base=(--gateway "127.0.0.1:$gw_port" --ca ca/ca.pem --cert ca/devices/BENCH-1.pem
  --key ca/devices/BENCH-1.key --target-pid "$gw_pid")
common=("${base[@]}" --json)
ok_fields='j.errors === 0 && Object.keys(j.error_kinds).length === 0 && j.server_cpu_s !== null'

# ---- tunnels: each iteration answered with its 1 KiB --------------------------------------
run "$bin/tunnel-bench" tunnels "${common[@]}" --origin "$sink" --duration 1 --concurrency 4
expect_rc "tunnels" 0
jcheck "tunnels: all answered" "$ok_fields && j.completed > 0 && j.started === j.completed"
jcheck "tunnels: every byte" "j.body_bytes === j.completed * 1024 && j.latency_ms.count === j.completed"
run "$bin/tunnel-bench" tunnels "${common[@]}" --origin "$sink" --duration 1 --rate 50 --sources 127.1.0.0/24
expect_rc "tunnels open loop" 0
jcheck "tunnels open loop: all answered" "$ok_fields && j.skipped === 0 && j.started === j.completed && j.completed > 0"

# ---- handshakes and throughput (two streams, external sink) -------------------------------
run "$bin/tunnel-bench" handshakes "${common[@]}" --duration 1 --concurrency 4
expect_rc "handshakes" 0
jcheck "handshakes: every CONNECT answered 403" "$ok_fields && j.completed > 0 && j.answers['403'] === j.completed"
run "$bin/tunnel-bench" throughput "${common[@]}" --origin "$sink" --streams 2 --megabytes 5
expect_rc "throughput" 0
jcheck "throughput: every byte counted" "j.errors === 0 && j.up.bytes === 10000000 && j.down.bytes === 10000000 && j.up.bytes_expected === j.up.bytes"
run "$bin/tunnel-bench" throughput "${base[@]}" --megabytes 2
expect_rc "throughput, in-process sink, table" 0
expect_out_has "throughput table: the line bench-gateway reads" "throughput up  : 2 MB in"

# ---- hold: 200 tunnels over 8 source addresses; RSS read ------------------------------------
run "$bin/tunnel-bench" hold "${common[@]}" --origin "$sink" --sessions 200 --sources 127.1.0.0/28 --settle 1
expect_rc "hold" 0
jcheck "hold: every tunnel opened and answered through" "$ok_fields && j.opened === 200 && j.verified === 200 && j.body_bytes === 200 * 1024"
jcheck "hold: RSS figures" "j.rss.baseline_kib > 0 && j.rss.peak_kib > 0 && j.rss.per_session_kib !== null && j.sources === 14"
run "$bin/tunnel-bench" hold "${common[@]}" --origin "$sink" --sessions 1000000
expect_rc "hold beyond the open-files limit is refused" 2
expect_err_has "hold refusal says why" "open files"

# ---- revoke: 20 devices, 3 rounds through uem-sim and the webhook ---------------------------
run "$bin/tunnel-bench" revoke "${common[@]}" --ca-key ca/ca.key --origin "$sink" \
  --uem-admin "https://127.0.0.1:$uem_port" --webhook "http://127.0.0.1:$hook_port/" \
  --webhook-user uem --webhook-password-file hook.pass --devices 20 --rounds 3 --concurrency 4
expect_rc "revoke" 0
jcheck "revoke: every round closed its tunnel" "$ok_fields && j.opened === 20 && j.rounds === 3 && j.closed === 3 && j.close_latency_ms.count === 3"
jcheck "revoke: revoked devices reconnected, every tunnel answers" "j.reconnected === 3 && j.verified === 20 && j.sessions_up === 20 && j.body_bytes === 20 * 1024"

# ---- resume ------------------------------------------------------------------------------------
if [ $tickets -eq 1 ]; then
  resume_args=("${common[@]}")
  resume_target="the gateway (tls.session_tickets)"
else
  base_port=$(free_port)
  : >base.out
  "$bin/tunnel-bench" baseline-server --gateway "127.0.0.1:$base_port" --ca ca/ca.pem \
    --cert ca/server.pem --key ca/server.key --session-tickets --tunnel-answers >base.out 2>&1 &
  base_pid=$!
  pids+=($base_pid)
  wait_line base.out listening >/dev/null || { echo "baseline-server did not start"; cat base.out; exit 1; }
  resume_args=(--gateway "127.0.0.1:$base_port" --ca ca/ca.pem --cert ca/devices/BENCH-1.pem
    --key ca/devices/BENCH-1.key --target-pid "$base_pid" --json)
  resume_target="baseline-server --session-tickets"
fi
for v in 1.3 1.2; do
  run "$bin/tunnel-bench" resume "${resume_args[@]}" --origin "$sink" --duration 1 --concurrency 2 --tls $v
  expect_rc "resume TLS $v against $resume_target" 0
  jcheck "resume TLS $v: resumed after the first full handshakes" "$ok_fields && j.completed > 2 && j.resumed > 0 && j.resumed + j.full === j.completed && j.body_bytes === j.completed * 1024"
done
# A server that sends no ticket: said so, exit 1.
nt_port=$(free_port)
: >nt.out
"$bin/tunnel-bench" baseline-server --gateway "127.0.0.1:$nt_port" --ca ca/ca.pem \
  --cert ca/server.pem --key ca/server.key --tunnel-answers >nt.out 2>&1 &
pids+=($!)
wait_line nt.out listening >/dev/null || { echo "baseline-server did not start"; cat nt.out; exit 1; }
run "$bin/tunnel-bench" resume --gateway "127.0.0.1:$nt_port" --ca ca/ca.pem --cert ca/devices/BENCH-1.pem \
  --key ca/devices/BENCH-1.key --origin "$sink" --duration 0.5 --concurrency 1
expect_rc "resume without tickets fails" 1
expect_err_has "resume without tickets says so" "sent no session ticket"

check "the gateway is still running" kill -0 "$gw_pid"
finish
