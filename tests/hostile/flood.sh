#!/usr/bin/env bash
# Handshake flood from one source (tunnel-bench flood: ClientHello then reset, from 127.0.0.1)
# while a canary device tunnels from 127.0.0.2. The per-source limits close most of the flood at
# accept (no TLS work, counted by reason, logged once per source and interval); every canary
# tunnel succeeds; the daemon stays up; descriptors and pending handshakes return to baseline.
# Then the same flood with the per-source limits off: the flood is served (no accept refusals).
#   flood.sh BIN_DIR [sanitize]
set -uo pipefail
bin=$1
sanitize=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
rate=2000
secs=5
[ -n "$sanitize" ] && rate=1000

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1
fail=0
check() {  # check DESCRIPTION CMD...
  if "${@:2}"; then echo "ok   - $1"; else echo "FAIL - $1"; fail=1; fi
}
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

"$bin/tunnelctl" ca init ca >/dev/null
"$bin/tunnelctl" ca issue ca --udid CANARY-1 --user canary@example.com --serial SN-C >/dev/null
cat >devices.json <<'EOF'
[{"Udid":"CANARY-1","SerialNumber":"SN-C","Platform":"Apple","EnrollmentStatus":"Enrolled",
  "ComplianceStatus":"Compliant","CompromisedStatus":false}]
EOF
cat >rules.yaml <<'EOF'
rule_sets:
  - name: flood
    platforms: [ios]
    mode: full-device
    default: block
    rules:
      - action: tunnel
        destinations: ["127.0.0.1"]
EOF
sink_port=$(free_port)
"$bin/tunnel-bench" sink --listen "127.0.0.1:$sink_port" >sink.log 2>&1 &
pids+=($!)

gw_pid=
start_gateway() {  # start_gateway LIMITS-YAML
  gw_port=$(free_port)
  admin_port=$(free_port)
  cat >gateway.yaml <<EOF
listen: ["127.0.0.1:$gw_port"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem, crl: [ca/crl.pem]}
uem: {source: file, file: devices.json}
dtr: rules.yaml
egress: {address: 127.0.0.2, allow: ["127.0.0.1/32"]}
admin: {listen: "127.0.0.1:$admin_port"}
threads: 1
limits: {$1}
log: {level: warn, format: json}
EOF
  "$bin/tunnelgate" gateway.yaml >gw.log 2>&1 &
  gw_pid=$!
  pids+=($gw_pid)
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "gateway did not start"; cat gw.log; exit 1
}
metric() { curl -s "http://127.0.0.1:$admin_port/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
fds() { ls "/proc/$gw_pid/fd" | wc -l; }
field() { node -e 'const o=JSON.parse(process.argv[1]); const v=process.argv[2].split(".").reduce((a,k)=>a&&a[k],o); console.log(v===undefined?"":v)' "$1" "$2"; }

attack() {  # attack: flood + canary; sets canary and flood (JSON reports)
  "$bin/tunnel-bench" flood --gateway "127.0.0.1:$gw_port" --sources 127.0.0.1/32 --rate "$rate" \
    --duration "$secs" --json >flood.json 2>&1 &
  local fpid=$!
  sleep 0.3
  canary=$("$bin/tunnel-bench" tunnels --gateway "127.0.0.1:$gw_port" --ca ca/ca.pem \
    --cert ca/devices/CANARY-1.pem --key ca/devices/CANARY-1.key --origin "127.0.0.1:$sink_port" \
    --sources 127.0.0.2/32 --rate 10 --duration "$((secs - 1))" --json 2>&1)
  wait "$fpid"
  flood=$(cat flood.json)
  echo "canary: $canary"
  echo "flood:  $flood"
}

# --- 1. default limits --------------------------------------------------------------------------
start_gateway ""
base_fds=$(fds)
attack
check "the gateway is alive after the flood" kill -0 "$gw_pid"
check "every canary tunnel succeeded" [ "$(field "$canary" errors)" = 0 ]
check "the canary completed its tunnels" [ "$(field "$canary" completed)" -ge $((10 * (secs - 1) - 2)) ]
refused=$(metric 'tunnelgate_accept_refusals_total{reason="source-rate-limit"}')
echo "accept refusals (source-rate-limit): ${refused:-0} of $(field "$flood" attempts) attempts"
check "the flood was refused at accept and counted" [ "${refused:-0}" -gt $((rate * secs / 2)) ]
check "flood attempts closed unanswered" [ "$(field "$flood" closed_unanswered)" -gt $((rate * secs / 2)) ]
lines=$(grep -c '"event":"accept_refused"' gw.log || true)
echo "accept_refused log lines: $lines"
check "the refusals were logged, once per source and interval" [ "$lines" -ge 1 ] && [ "$lines" -le 3 ]
check "the log line names the source and the reason" grep -q '"source":"127.0.0.1".*"reason":"source-rate-limit"\|"reason":"source-rate-limit".*"source":"127.0.0.1"' gw.log
sleep 1
check "no handshake left pending" [ "$(metric tunnelgate_pending_handshakes)" = 0 ]
now_fds=$(fds)
echo "descriptors: $base_fds before, $now_fds after"
check "descriptors back to baseline" [ "$now_fds" -le $((base_fds + 2)) ]
kill "$gw_pid"; wait "$gw_pid" 2>/dev/null

# --- 2. per-source limits off: the flood reaches the TLS layer --------------------------------
start_gateway "max_pending_per_source: 0, handshake_rate_per_source: 0"
attack
check "without per-source limits nothing is refused at accept" [ -z "$(metric 'tunnelgate_accept_refusals_total{reason="source-rate-limit"}')" ]
check "without per-source limits the flood gets server flights" [ "$(field "$flood" server_flights)" -gt 0 ]
check "the gateway is alive" kill -0 "$gw_pid"

# --- 3. first byte: a silent connection is closed after first_byte_timeout, counted ------------
kill "$gw_pid"; wait "$gw_pid" 2>/dev/null
start_gateway "first_byte_timeout: 300ms"
node -e '
  const s = require("net").connect(+process.argv[1], "127.0.0.1");
  const t0 = Date.now();
  s.on("close", () => { console.log("closed after " + (Date.now() - t0) + " ms"); process.exit(0); });
  s.on("error", () => {});
  setTimeout(() => { console.log("still open after 5 s"); process.exit(1); }, 5000);
' "$gw_port"
check "a connection that sends nothing is closed by first_byte_timeout" [ $? = 0 ]
sleep 0.2
check "counted as first_byte_timeout" [ "$(metric 'tunnelgate_handshakes_total{result="refused",reason="first_byte_timeout"}')" = 1 ]

exit $fail
