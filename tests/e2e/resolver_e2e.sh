#!/usr/bin/env bash
# End-to-end: the gateway resolving destination names through the name servers configured in
# egress.resolver (a UDP name server on loopback that this test starts), never the system's.
#   resolver_e2e.sh BIN_DIR
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh"
. "$here/e2e_lib.sh"
e2e_setup  # $work (removed at exit unless KEEP_WORK=1), $pids (killed at exit)

"$bin/tunnelctl" ca init ca >/dev/null
"$bin/tunnelctl" ca issue ca --udid GOOD-1 --user good@example.com >/dev/null
cat >devices.json <<'EOF'
[{"Udid":"GOOD-1","SerialNumber":"SN-1","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false}]
EOF
cat >rules.yaml <<'EOF'
rule_sets:
  - name: ios
    platforms: [ios]
    mode: full-device
    default: block
    rules:
      - action: tunnel
        destinations: ["*.dns.test", localhost]
EOF
start_server echo echo 0
start_server dns dns 0
dead_port=$(free_port)  # nothing listens there: a name server that never answers
gw_port=$(free_port)
admin_port=$(free_port)
config() {  # config RESOLVER-LIST
  cat >gateway.yaml <<EOF
listen: ["127.0.0.1:$gw_port"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem}
uem: {source: file, file: devices.json}
dtr: rules.yaml
egress: {address: 127.0.0.2, resolve_timeout: 1500ms, connect_timeout: 2s, resolver: $1, allow: ["127.0.0.1/32"]}
admin: {listen: "127.0.0.1:$admin_port"}
log: {format: json}
EOF
}

# ---- configuration errors ---------------------------------------------------------------------
config '["dns.example.com", "127.0.0.1:99999", "[::1]:53", "127.0.0.1"]'
run "$bin/tunnelgate" --check-config gateway.yaml
expect_rc "bad resolver entries refused" 78
expect_err_has "a name is not a name server address" "egress.resolver: 'dns.example.com' is not a name server address"
expect_err_has "a bad port is refused" "'127.0.0.1:99999' is not a name server address"
check "the good entries are not reported" bash -c "! grep -q \"'\\[::1\\]:53'\\|'127.0.0.1' is not\" <<<\"\$0\"" "$err"
config '[]'
run "$bin/tunnelgate" --check-config gateway.yaml
expect_err_has "an empty list is refused, with the way out" "leave it out to use the system resolver"

# ---- one name server ----------------------------------------------------------------------------
config "[\"127.0.0.1:$dns_port\"]"
"$bin/tunnelgate" gateway.yaml >gw.out 2>&1 &
gw_pid=$!
pids+=($gw_pid)
wait_for 10 grep -q '"event":"started"' gw.out || { echo "gateway did not start"; cat gw.out; exit 1; }

run gw_curl GOOD-1 "http://ok.dns.test:$echo_port/"
expect_out "a name from the configured server: tunnel from the egress address" "peer=127.0.0.2"
check "the name server was asked for A" grep -q '^query ok.dns.test 1$' "$work/dns.out"
check "no AAAA query without an IPv6 egress address" bash -c "! grep -q '^query ok.dns.test 28$' $work/dns.out"
run gw_curl GOOD-1 "http://alias.dns.test:$echo_port/"
expect_out "a CNAME is followed" "peer=127.0.0.2"
run gw_curl GOOD-1 "http://localhost:$echo_port/"
expect_out "localhost needs no query" "peer=127.0.0.2"
check "localhost was not sent to the name server" bash -c "! grep -q '^query localhost' $work/dns.out"
for pair in gone:resolve-failed fail:resolve-failed stray:resolve-failed garbage:resolve-failed; do
  name=${pair%%:*}.dns.test want=${pair#*:}
  check "$name -> $want" test "$(reason_of GOOD-1 "http://$name:$echo_port/")" = "$want"
done
check "NXDOMAIN named in the log" grep -q 'cannot resolve gone.dns.test: no such name (NXDOMAIN)' gw.out
check "a record of another name is not used" grep -q 'cannot resolve stray.dns.test: the name has no address records' gw.out
t0=$(date +%s%N)
check "silent server -> 504 resolve-timeout" test "$(reason_of GOOD-1 "http://silent.dns.test:$echo_port/")" = resolve-timeout
ms=$((($(date +%s%N) - t0) / 1000000))
check "timeout within resolve_timeout 1.5 s (${ms} ms)" test "$ms" -ge 1400 -a "$ms" -lt 3000

# ---- fail-over: a silent server first, then the real one (SIGHUP) -------------------------
config "[\"127.0.0.1:$dead_port\", \"127.0.0.1:$dns_port\"]"
kill -HUP "$gw_pid"
check "reloaded" wait_for 5 grep -q '"event":"reloaded"' gw.out
run gw_curl GOOD-1 "http://ok.dns.test:$echo_port/"
expect_out "the second server answers when the first is silent" "peer=127.0.0.2"
check "gone still NXDOMAIN through fail-over" test "$(reason_of GOOD-1 "http://gone.dns.test:$echo_port/")" = resolve-failed

finish
