#!/usr/bin/env bash
# End-to-end: the gateway in a failing world (issue 13). Everything around it breaks in turn and
# comes back; the gateway must answer clearly, never crash, and recover by itself.
#   failing_world_e2e.sh BIN_DIR
# The UEM (uem-sim, OAuth) slow, down, answering 500, 429, truncated bodies, non-JSON, wrong
# records, a record of another device, and a certificate from an unknown CA: for each, the
# grace-then-fail-closed rule of docs/uem.md holds exactly (a device not in the cache gets
# 503 uem_unavailable at once; a device with a live session keeps it, and may reconnect, until
# positive_ttl + stale_grace after its last good answer, then the session closes and the device
# gets 503 uem_unavailable), and when the UEM is back every device is admitted again without a
# restart. Then an upstream proxy that goes away (502 proxy-failed), a destination name server
# that goes away (504 resolve-timeout) or says NXDOMAIN (502 resolve-failed), and `kill -9` of
# the gateway under load followed by a restart: every device's sessions come back.
# As root, in a network namespace this test creates and deletes: the UEM's host name failing in
# DNS (the namespace's resolv.conf points at a name server the test runs on its loopback), and
# the egress address removed at run time. Without root that part is skipped with a message.
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh"
. "$here/e2e_lib.sh"
e2e_setup  # $work (removed at exit unless KEEP_WORK=1), $pids (killed at exit)

# Every curl of this script, and of the e2e_lib helpers, runs where the gateway under test runs:
# here, or inside the namespace of the last part (in_ns set there).
in_ns=()
curl() {
  if [ ${#in_ns[@]} -eq 0 ]; then command curl "$@"; else "${in_ns[@]}" curl "$@"; fi
}

session_up() {  # session_up UDID PORT : the admin API lists a tunnel of UDID to the echo server
  curl -s "http://127.0.0.1:$admin_port/api/v1/sessions" | grep -q "\"udid\":\"$1\".*\"destination\":\"$echo_host:$2\""
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
sleep_until() {  # sleep_until MS (a now_ms value)
  local d=$(($1 - $(now_ms)))
  [ "$d" -gt 0 ] && sleep "$(awk -v d="$d" 'BEGIN {print d / 1000}')"
  return 0
}
answer_of() {  # answer_of DEVICE URL [curl args] : "STATUS REASON" of the CONNECT answer
  local dev=$1 url=$2
  shift 2
  gw_curl "$dev" -v "$@" "$url" 2>&1 >/dev/null | tr -d '\r' |
    awk '/^< HTTP\/1.1/ && !s {s = $3} /^< X-Tunnel-Reason:/ {r = $3} END {print s, r}'
}
admitted() {  # admitted DEVICE : a tunnel to the echo server works, leaving from the egress address
  [ "$(gw_curl "$1" "http://$echo_host:$echo_port/" 2>/dev/null)" = "peer=$egress" ]
}
log_since() { tail -c +"$(($1 + 1))" gw.out; }  # log_since BYTE-OFFSET
start_gateway() {
  : >gw.out
  "${in_ns[@]}" ${TUNNELGATE_WRAPPER:-} "$bin/tunnelgate" gateway.yaml >gw.out 2>&1 &
  gw_pid=$!
  pids+=($gw_pid)
  wait_for 10 grep -q '"event":"started"' gw.out || { echo "gateway did not start"; cat gw.out; exit 1; }
}

# ---- devices, the UEM, the peers ----------------------------------------------------------------
faults=(slow down status-500 rate-limit truncated garbage bad-record wrong-device unknown-ca uem-dns-nxdomain uem-dns-down)
devices=(PROXY-1 LOAD-1 LOAD-2 LOAD-3 LOAD-4)
for i in "${!faults[@]}"; do devices+=("HELD-$i" "NEW-$i"); done
"$bin/tunnelctl" ca init ca --san uem.fw.test >/dev/null
"$bin/tunnelctl" ca init impostor >/dev/null  # a CA the gateway does not trust for the UEM
for d in "${devices[@]}"; do
  "$bin/tunnelctl" ca issue ca --udid "$d" --user "${d,,}@example.com" --serial "SN-$d" >/dev/null
done
{
  sep="["
  for d in "${devices[@]}"; do
    printf '%s{"Id":{"Value":%d},"Udid":"%s","SerialNumber":"SN-%s","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false}\n' \
      "$sep" "$((RANDOM + 1))" "$d" "$d"
    sep=","
  done
  echo "]"
} >devices.json
echo "TENANT-CODE" >tenant.code
echo "client-secret-1" >client.secret

uem_host=127.0.0.1
uem_port=$(free_port)
start_uem() {  # start_uem [CA-DIR] : uem-sim on $uem_port with the server certificate of CA-DIR
  local cadir=${1:-ca}
  "${in_ns[@]}" "$bin/uem-sim" --inventory devices.json --cert "$cadir/server.pem" --key "$cadir/server.key" \
    --listen "127.0.0.1:$uem_port" --tenant-code-file tenant.code \
    --client-id tunnelgate --client-secret-file client.secret >>uem.out 2>&1 &
  uem_pid=$!
  pids+=($uem_pid)
  wait_for 10 sim GET /_sim/stats || { echo "uem-sim did not start"; cat uem.out; exit 1; }
}
stop_uem() { kill "$uem_pid"; wait "$uem_pid" 2>/dev/null; }
sim() {  # sim METHOD PATH [JSON] (-k: the impostor's certificate too)
  curl -sSf -k -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} \
    "https://127.0.0.1:$uem_port$2" >/dev/null 2>&1
}
start_uem

echo_host=127.0.0.1
egress=127.0.0.2
start_server echo echo 0
start_server proxy proxy 0 "relay:s3cret"
proxy_pid=${pids[-1]}
start_server dns dns 0
dns_pid=${pids[-1]}
echo "relay:s3cret" >proxy.creds
gw_port=$(free_port)
admin_port=$(free_port)
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
        destinations: ["127.0.0.1", "10.99.0.3", "*.dns.test"]
EOF
gateway_config() {  # gateway_config EGRESS ALLOW
  cat >gateway.yaml <<EOF
listen: ["127.0.0.1:$gw_port"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem}
uem:
  source: ws1
  poll_interval: 100ms
  ws1:
    base_url: https://$uem_host:$uem_port
    tenant_code_file: tenant.code
    auth: {oauth: {token_url: "https://$uem_host:$uem_port/connect/token", client_id: tunnelgate, client_secret_file: client.secret}}
    ca_file: ca/ca.pem
    connect_timeout: 1s
    request_timeout: 1s
  cache: {positive_ttl: 1s, negative_ttl: 1s, stale_grace: 4s}
dtr: rules.yaml
egress: {address: $1, resolver: ["127.0.0.1:$dns_port"], resolve_timeout: 1s, connect_timeout: 2s, allow: ["$2"]}
admin: {listen: "127.0.0.1:$admin_port"}
upstream_credentials: {upstream: {file: proxy.creds}}
log: {format: json}
EOF
}
gateway_config 127.0.0.2 127.0.0.1/32
start_gateway

# ---- the UEM fails in every way; the grace-then-fail-closed rule, then recovery ----------------
# TTL 1 s, grace 4 s, expired admits re-read every 100 ms: when the UEM breaks at F, the last
# good answer for a connected device came at F - 1.1 s at the earliest, so its grace ends
# between F + 3.9 s and F + 5 s.
uem_outage() {  # uem_outage INDEX LOG-TEXT BREAK-CMD REPAIR-CMD
  local i=$1 text=$2 break_cmd=$3 repair_cmd=$4
  local name=${faults[$i]} held=HELD-$i new=NEW-$i
  gw_curl "$held" --max-time 60 "http://$echo_host:$echo_port/slow?ms=40000" >/dev/null 2>&1 &
  local held_curl=$!
  check "$name: $held has a tunnel before the fault" wait_for 5 session_up "$held" "$echo_port"
  local offset
  offset=$(stat -c %s gw.out)
  $break_cmd
  local t0
  t0=$(now_ms)
  check "$name: a device not in the cache gets 503 uem_unavailable" \
    test "$(answer_of "$new" "http://$echo_host:$echo_port/")" = "503 uem_unavailable"
  sleep_until $((t0 + 1500))
  check "$name: 1.5 s in, $held connects again (stale admit within the grace)" admitted "$held"
  sleep_until $((t0 + 3300))
  check "$name: 3.3 s in, $held's tunnel is still up" kill -0 "$held_curl"
  wait "$held_curl"
  local ms=$(($(now_ms) - t0))
  check "$name: fail closed: $held's tunnel closed ${ms} ms in (grace ends 3.9-5 s)" \
    test "$ms" -ge 3700 -a "$ms" -lt 6500
  check "$name: ... closed as uem_unavailable" \
    bash -c "tail -c +$((offset + 1)) gw.out | grep -q '\"event\":\"device_revoked\".*\"udid\":\"$held\".*\"reason\":\"uem_unavailable\"'"
  check "$name: ... and now refused 503 uem_unavailable" \
    test "$(answer_of "$held" "http://$echo_host:$echo_port/")" = "503 uem_unavailable"
  check "$name: the log says what failed ('$text')" bash -c "tail -c +$((offset + 1)) gw.out | grep -qF -- \"\$0\"" "$text"
  $repair_cmd
  check "$name: UEM back: $new admitted, no restart" wait_for 10 admitted "$new"
  check "$name: UEM back: $held admitted again" wait_for 10 admitted "$held"
  check "$name: the gateway is still the same process" kill -0 "$gw_pid"
}
fault() { sim POST /_sim/faults "$1"; }
no_fault() { sim DELETE /_sim/faults; }
set_fault_slow() { fault '{"latency_ms":2500}'; }
set_fault_500() { fault '{"fault":"status","status":500}'; }
set_fault_429() { fault '{"fault":"rate_limit","retry_after":1}'; }
set_fault_truncated() { fault '{"fault":"truncated"}'; }
set_fault_garbage() { fault '{"fault":"garbage"}'; }
set_fault_bad_record() { fault '{"fault":"bad_record"}'; }
set_fault_wrong_device() { fault '{"fault":"wrong_device"}'; }
impostor_uem() { stop_uem; start_uem impostor; }
real_uem() { stop_uem; start_uem ca; }

uem_outage 0 "did not answer within 1000 ms" set_fault_slow no_fault
uem_outage 1 "cannot connect to 127.0.0.1:$uem_port" stop_uem start_uem
uem_outage 2 "the UEM answered HTTP 500" set_fault_500 no_fault
uem_outage 3 "the UEM answered 429" set_fault_429 no_fault
uem_outage 4 "request to the UEM failed" set_fault_truncated no_fault
uem_outage 5 "is not a valid device record" set_fault_garbage no_fault
uem_outage 6 "ComplianceStatus: missing" set_fault_bad_record no_fault
uem_outage 7 "with a different device" set_fault_wrong_device no_fault
uem_outage 8 "TLS handshake with 127.0.0.1:$uem_port failed" impostor_uem real_uem

# ---- upstream proxy and destination name server go away ---------------------------------------
app=(-H "X-Tunnel-App: com.example.proxied" --proxy-header "X-Tunnel-App: com.example.proxied")
run gw_curl PROXY-1 "${app[@]}" "http://127.0.0.1:$echo_port/"
expect_out "proxy rule with the proxy up: tunnelled through it" "peer=127.0.0.1"
kill "$proxy_pid"
wait "$proxy_pid" 2>/dev/null
run answer_of PROXY-1 "http://127.0.0.1:$echo_port/" "${app[@]}"
expect_out "upstream proxy down: a clear answer" "502 proxy-failed"
check "... logged with the detail" grep -q '"reason":"proxy-failed"' gw.out
: >proxy2.out  # exists before the first poll
node "$here/servers.js" proxy "$proxy_port" "relay:s3cret" >proxy2.out 2>&1 &
pids+=($!)
wait_for 10 grep -q '^ready ' proxy2.out || { echo "proxy did not restart"; exit 1; }
proxy_back() { [ "$(gw_curl PROXY-1 "${app[@]}" "http://127.0.0.1:$echo_port/" 2>/dev/null)" = "peer=127.0.0.1" ]; }
check "upstream proxy back: tunnelled again" wait_for 5 proxy_back

run gw_curl LOAD-1 "http://ok.dns.test:$echo_port/"
expect_out "destination name resolved through egress.resolver" "peer=127.0.0.2"
check "NXDOMAIN: 502 resolve-failed" test "$(answer_of LOAD-1 "http://gone.dns.test:$echo_port/")" = "502 resolve-failed"
kill "$dns_pid"
wait "$dns_pid" 2>/dev/null
check "name server down: 504 resolve-timeout" \
  test "$(answer_of LOAD-1 "http://ok.dns.test:$echo_port/")" = "504 resolve-timeout"
: >dns2.out
node "$here/servers.js" dns "$dns_port" >dns2.out 2>&1 &
pids+=($!)
wait_for 10 grep -q '^ready ' dns2.out || { echo "name server did not restart"; exit 1; }
dns_back() { [ "$(gw_curl LOAD-1 "http://ok.dns.test:$echo_port/" 2>/dev/null)" = "peer=127.0.0.2" ]; }
check "name server back: resolved again" wait_for 5 dns_back
check "the gateway survived all of it" kill -0 "$gw_pid"

# ---- kill -9 under load, restart: every device's sessions come back -----------------------
load() {  # load DEVICE : tunnels one after another until ./stop exists; one line per attempt
  while [ ! -e stop ]; do
    if [ "$(gw_curl "$1" --max-time 5 "http://127.0.0.1:$echo_port/slow?ms=200" 2>/dev/null)" = "peer=127.0.0.2" ]; then
      echo "ok $(now_ms)"
    else
      echo "fail $(now_ms)"
      sleep 0.1
    fi
  done >"load-$1.log"
}
load_pids=()
for d in LOAD-1 LOAD-2 LOAD-3 LOAD-4; do
  load "$d" &
  load_pids+=($!)
  pids+=($!)
done
gw_curl LOAD-1 --max-time 60 "http://127.0.0.1:$echo_port/slow?ms=40000" >/dev/null 2>&1 &
held_curl=$!
oks_after() { [ "$(awk -v t="$2" '$1 == "ok" && $2 > t' "load-$1.log" | wc -l)" -ge "$3" ]; }
all_ok_after() { for d in LOAD-1 LOAD-2 LOAD-3 LOAD-4; do oks_after "$d" "$1" "$2" || return 1; done; }
check "under load: every device tunnelling" wait_for 10 all_ok_after 0 3
check "a long tunnel is up" wait_for 5 session_up LOAD-1 "$echo_port"
kill -9 "$gw_pid"
killed=$(now_ms)
wait "$gw_pid" 2>/dev/null
wait "$held_curl"
check "the long tunnel ended with the process ($(($(now_ms) - killed)) ms), not hanging" \
  test $(($(now_ms) - killed)) -lt 3000
sleep 0.5
fails_after() { [ "$(awk -v t="$2" '$1 == "fail" && $2 > t' "load-$1.log" | wc -l)" -ge 1 ]; }
check "the load saw the gateway gone" fails_after LOAD-2 "$killed"
mv gw.out gw-killed.out
start_gateway
restarted=$(now_ms)
check "after the restart every device tunnels again" wait_for 15 all_ok_after "$restarted" 3
sessions_back() { for d in LOAD-1 LOAD-2 LOAD-3 LOAD-4; do session_up "$d" "$echo_port" || return 1; done; }
check "... and the new process lists their sessions" wait_for 10 sessions_back
check "... admitted through the UEM again" metric_at_least 'tunnelgate_admissions_total{result="admitted",reason="ok"}' 4
touch stop
for p in "${load_pids[@]}"; do wait "$p"; done
rm -f stop

# ---- as root, in a network namespace: the UEM's name in DNS, the egress address removed ---------
ns=""
ns_cleanup() {
  if [ -n "$ns" ]; then
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
  fi
}
if [ "$(id -u)" -ne 0 ] || ! ip netns add "tgfw-$$" 2>/dev/null; then
  echo "SKIP (needs root and network namespaces): the UEM's host name failing in DNS, the egress address removed at run time"
  finish
  exit
fi
ns=tgfw-$$
trap 'ns_cleanup; e2e_cleanup' EXIT
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
wait 2>/dev/null
pids=()
in_ns=(ip netns exec "$ns")
# `ip netns exec` mounts /etc/netns/NAME/* over /etc: the namespace's resolver asks only the
# name server this test runs on the namespace's loopback.
mkdir -p "/etc/netns/$ns"
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"/etc/netns/$ns/resolv.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"/etc/netns/$ns/hosts"
ip -n "$ns" link set lo up
ip -n "$ns" addr add 10.99.0.2/32 dev lo  # the egress address
ip -n "$ns" addr add 10.99.0.3/32 dev lo  # the destination
ns_server() {  # ns_server NAME ARGS... : servers.js inside the namespace; sets ${NAME}_port
  local name=$1
  shift
  : >"$work/$name.out"
  "${in_ns[@]}" node "$here/servers.js" "$@" >"$work/$name.out" 2>&1 &
  pids+=($!)
  wait_for 10 grep -q '^ready ' "$work/$name.out" || { echo "server $name did not start"; cat "$work/$name.out"; exit 1; }
  printf -v "${name}_port" '%s' "$(sed -n 's/^ready //p' "$work/$name.out")"
}
uem_dns() {  # uem_dns [NAMES] : (re)starts the name server on the namespace's port 53
  [ -n "${uem_dns_pid:-}" ] && { kill "$uem_dns_pid"; wait "$uem_dns_pid" 2>/dev/null; }
  uem_dns_pid=""
  [ $# -eq 0 ] && return 0
  ns_server nsdns dns 53 "$1"
  uem_dns_pid=${pids[-1]}
}
uem_dns "uem.fw.test=127.0.0.1"
ns_server echo echo 0 10.99.0.3
ns_server dns dns 0  # destinations (egress.resolver), as above
echo_host=10.99.0.3
egress=10.99.0.2
uem_host=uem.fw.test
uem_port=$(free_port)  # a port free in the namespace is free (it is empty)
start_uem
gateway_config 10.99.0.2 10.99.0.3/32
start_gateway
check "in the namespace: admitted through uem.fw.test" admitted LOAD-1

# Kept-alive connections to the UEM need no name: the UEM restarts too (as when it moves), so
# the gateway has to resolve its name again.
uem_name_gone() { uem_dns "other.fw.test=127.0.0.1"; stop_uem; start_uem; }  # NXDOMAIN
uem_name_back() { uem_dns "uem.fw.test=127.0.0.1"; }
uem_dns_down() { uem_dns; stop_uem; start_uem; }  # nothing answers on port 53
uem_outage 9 "cannot resolve uem.fw.test" uem_name_gone uem_name_back
uem_outage 10 "cannot resolve uem.fw.test" uem_dns_down uem_name_back

# The egress address removed at run time, then put back.
ip -n "$ns" addr del 10.99.0.2/32 dev lo
run answer_of LOAD-2 "http://10.99.0.3:$echo_port/"
check "egress address gone: a clear refusal ($out)" bash -c '[[ "$0" =~ ^50[23]\ [a-z-]+$ ]]' "$out"
check "... the log names the egress address" grep -q 'egress address 10.99.0.2' gw.out
check "... the gateway still runs" kill -0 "$gw_pid"
ip -n "$ns" addr add 10.99.0.2/32 dev lo
check "egress address back: tunnelled again" wait_for 5 admitted LOAD-2

finish
