#!/usr/bin/env bash
# End-to-end: what a gateway at scale owes its devices.
#   - TLS 1.3 resumption: a returning device resumes (identity from the session, compliance
#     decided afresh); a revoked certificate's session does not resume; tls.session_tickets: 0
#     sends no ticket.
#   - Out of descriptors: the tunnel that finds none is answered 503 gateway-overloaded (never
#     blamed on the destination), logged and counted; the gateway recovers.
#   - Egress source ports: in a network namespace whose ephemeral range is 100 ports, 150
#     tunnels leave from one egress address to two destinations at once (the port is chosen at
#     connect(), IP_BIND_ADDRESS_NO_PORT). Root only; skipped with a message otherwise.
#   capacity_e2e.sh BIN_DIR
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh"
. "$here/e2e_lib.sh"
e2e_setup
rc=0 out= err=

"$bin/tunnelctl" ca init ca >/dev/null
for d in GOOD-1 FLIP-1 REV-1; do "$bin/tunnelctl" ca issue ca --udid $d --user "$d@example.com" >/dev/null; done
inventory() {  # inventory FLIP-STATUS
  cat >devices.json.new <<EOF
[{"Udid":"GOOD-1","SerialNumber":"SN-1","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false},
 {"Udid":"FLIP-1","SerialNumber":"SN-2","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"$1","CompromisedStatus":false},
 {"Udid":"REV-1","SerialNumber":"SN-3","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false}]
EOF
  mv devices.json.new devices.json
}
inventory Compliant
cat >rules.yaml <<'EOF'
rule_sets:
  - name: ios
    platforms: [ios]
    mode: full-device
    default: block
    rules:
      - action: tunnel
        destinations: ["127.0.0.1", "127.0.0.3"]
EOF
start_server echo echo 0
target="127.0.0.1:$echo_port"
gw_port=$(free_port)
admin_port=$(free_port)
config() {  # config TICKETS
  cat >gateway.yaml <<EOF
listen: ["127.0.0.1:$gw_port"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem, crl: [ca/crl.pem], session_tickets: $1}
uem: {source: file, file: devices.json, poll_interval: 1s}
dtr: rules.yaml
egress: {address: 127.0.0.2, allow: ["127.0.0.1/32", "127.0.0.3/32"]}
admin: {listen: "127.0.0.1:$admin_port"}
threads: 1
limits: {max_sessions_per_device: 1000}
log: {format: json}
EOF
}
config 1
"$bin/tunnelgate" gateway.yaml >gw.out 2>&1 &
gw_pid=$!
pids+=($gw_pid)
wait_for 10 curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null
check "start-up reports the descriptor limit and the capacity" \
  grep -q '"event":"descriptor_limit".*"tunnel_capacity":' gw.out
check "the descriptor limit is exported" metric_at_least tunnelgate_descriptor_limit 1
check "the tunnel capacity is exported" metric_at_least tunnelgate_tunnel_capacity 1

drive() { node "$here/capacity.js" "$@"; }
field() { node -e 'const o=JSON.parse(require("fs").readFileSync(0,"utf8"));console.log(o[process.argv[1]])' "$1"; }

# ---- resumption -----------------------------------------------------------------------------
r=$(drive resume "$gw_port" ca GOOD-1 "$target" good.sess)
check "first connection: full handshake, tunnel opened" test "$(field status <<<"$r")/$(field reused <<<"$r")" = "200/false"
check "first connection: a session ticket arrives" test "$(field ticket <<<"$r")" = true
r=$(drive resume "$gw_port" ca GOOD-1 "$target" good.sess)
check "second connection resumes and tunnels" test "$(field status <<<"$r")/$(field reused <<<"$r")" = "200/true"
r=$(drive resume "$gw_port" ca GOOD-1 "$target" good.sess)
echo "  third connection: $r"
check "a resumed connection brings a new ticket, and it resumes too" \
  test "$(field status <<<"$r")/$(field reused <<<"$r")" = "200/true"
check "resumed handshakes are counted" metric_is 'tunnelgate_handshakes_total{result="ok",reason="resumed"}' 2
check "a resumed device is admitted afresh (an admission line each time)" \
  test "$(grep -c '"event":"admitted".*"udid":"GOOD-1"' gw.out)" -eq 3

r=$(drive resume "$gw_port" ca FLIP-1 "$target" flip.sess)
check "FLIP-1 tunnels while compliant" test "$(field status <<<"$r")" = 200
inventory NonCompliant
wait_for 10 grep -q '"udid":"FLIP-1".*noncompliant\|uem: FLIP-1\|FLIP-1.*-> noncompliant' gw.out
sleep 1.5
r=$(drive resume "$gw_port" ca FLIP-1 "$target" flip.sess)
check "a resumed session of a device that turned non-compliant is refused" \
  test "$(field reused <<<"$r")/$(field status <<<"$r")/$(field reason <<<"$r")" = "true/403/noncompliant"

r=$(drive resume "$gw_port" ca REV-1 "$target" rev.sess)
check "REV-1 tunnels before revocation" test "$(field status <<<"$r")" = 200
"$bin/tunnelctl" ca revoke ca REV-1 >/dev/null
wait_for 10 grep -q '"event":"trust_reloaded"' gw.out
r=$(drive resume "$gw_port" ca REV-1 "$target" rev.sess)
check "a revoked certificate's session does not resume" test "$(field reused <<<"$r")" = false
check "and the full handshake refuses it" test "$(field status <<<"$r")" = 0
check "counted as revoked" metric_at_least 'tunnelgate_handshakes_total{result="refused",reason="revoked"}' 1

config 0
kill -HUP $gw_pid
wait_for 10 grep -q '"event":"reloaded"' gw.out
rm -f good0.sess
r=$(drive resume "$gw_port" ca GOOD-1 "$target" good0.sess)
check "tls.session_tickets: 0 sends no ticket" test "$(field status <<<"$r")/$(field ticket <<<"$r")" = "200/false"
r=$(drive resume "$gw_port" ca GOOD-1 "$target" good.sess)
check "a ticket from before the reload does not resume" test "$(field status <<<"$r")/$(field reused <<<"$r")" = "200/false"
kill $gw_pid
wait $gw_pid 2>/dev/null

# ---- out of descriptors -----------------------------------------------------------------------
# Not under the sanitizer build: UBSan's vptr check probes an object's memory through a pipe the
# first time it meets a type at an address (sanitizer_common's IsAccessibleMemoryRange); with
# every descriptor taken the pipe fails and UBSan aborts on a valid object ("invalid vptr ...
# <memory cannot be printed>"). The sanitizer runtime itself cannot run out of descriptors.
if ldd "$bin/tunnelgate" 2>/dev/null | grep -q libubsan; then
  echo "SKIP: descriptor exhaustion under the sanitizer build (its runtime needs descriptors)"
else
  config 0
  (ulimit -Hn 96 -Sn 96 && exec "$bin/tunnelgate" gateway.yaml) >fd.out 2>&1 &
  fd_pid=$!
  pids+=($fd_pid)
  wait_for 10 curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null
  check "a descriptor limit below max_connections is a start-up warning" \
    grep -q '"event":"descriptor_limit".*"limit":96.*limits.max_connections exceeds' fd.out
  r=$(drive fill "$gw_port" ca GOOD-1 "$target" "$fd_pid")
  echo "  fill: $r"
  check "tunnels open until the descriptors run out" test "$(field opened <<<"$r")" -ge 5
  check "the tunnel without a descriptor gets 503 gateway-overloaded" \
    test "$(field status <<<"$r")/$(field reason <<<"$r")" = "503/gateway-overloaded"
  check "logged once with the shortage" \
    test "$(grep -c '"event":"request_refused".*"reason":"gateway-overloaded".*descriptors' fd.out)" -eq 1
  check "counted" metric_is 'tunnelgate_resource_exhausted_total{where="egress",resource="descriptors"}' 1
  check "never blamed on the destination" bash -c "! grep -q 'connect-failed' fd.out"
  check "tunnels work again once descriptors are free" test "$(field again <<<"$r")" = 200
  kill $fd_pid
  wait $fd_pid 2>/dev/null
fi

# ---- egress source ports in a namespace with a 100-port ephemeral range ----------------------
ns=tg-ports-$$
if [ "$(id -u)" -ne 0 ] || ! ip netns add "$ns" 2>/dev/null; then
  echo "SKIP: the port-range case needs root and network namespaces (ip netns add failed)"
else
  trap 'e2e_cleanup; ip netns del "$ns" 2>/dev/null' EXIT
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="40000 40099"
  nsx() { ip netns exec "$ns" "$@"; }
  # Started with `ip netns exec` itself (not through nsx, a function: backgrounded, that would be
  # a subshell and $! its pid): ip execs the program, so $! is the program and cleanup kills it.
  ip netns exec "$ns" node "$here/servers.js" echo 18080 127.0.0.1 >a.out 2>&1 &
  pids+=($!)
  ip netns exec "$ns" node "$here/servers.js" echo 18080 127.0.0.3 >b.out 2>&1 &
  pids+=($!)
  sed -e "s|127.0.0.1:$gw_port|127.0.0.1:18443|" -e "s|127.0.0.1:$admin_port|127.0.0.1:18444|" gateway.yaml >ns.yaml
  ip netns exec "$ns" "$bin/tunnelgate" ns.yaml >ns.out 2>&1 &
  ns_pid=$!
  pids+=($ns_pid)
  wait_for 10 nsx curl -sf http://127.0.0.1:18444/readyz >/dev/null
  wait_for 10 grep -q ready b.out
  r=$(nsx node "$here/capacity.js" hold 18443 ca GOOD-1 150 "127.0.0.1:18080,127.0.0.3:18080")
  echo "  hold: $r"
  check "150 tunnels through 100 ephemeral ports (two destinations)" test "$(field ok <<<"$r")" = 150
  kill "${pids[@]: -3}" 2>/dev/null  # the gateway and the two servers in the namespace
  wait "${pids[@]: -3}" 2>/dev/null
  check "nothing left running in the namespace" test -z "$(ip netns pids "$ns")"
  ip netns del "$ns"
  check "namespace removed" bash -c "! ip netns list | grep -q '^$ns\\b'"
fi

finish
