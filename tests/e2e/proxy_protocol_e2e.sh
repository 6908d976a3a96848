#!/usr/bin/env bash
# End-to-end: PROXY protocol v2 on a device listener (issue 14). One gateway with a plain
# listener, a proxy_protocol listener whose senders include 127.0.0.1, and one whose senders do
# not. A small relay (python3, below) plays the L4 load balancer: it prepends a v2 header that
# claims a device address (192.0.2.x: only bytes in a header, no packet goes there) and pipes a
# real curl device TLS session to the gateway.
#   proxy_protocol_e2e.sh BIN_DIR
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh"
. "$here/e2e_lib.sh"
e2e_setup

"$bin/tunnelctl" ca init ca >/dev/null
for d in PP-1 PP-2 PP-3; do
  "$bin/tunnelctl" ca issue ca --udid "$d" --user "${d,,}@example.com" --serial "SN-$d" >/dev/null
done
cat >devices.json <<EOF
[
 {"Udid":"PP-1","SerialNumber":"SN-PP-1","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false},
 {"Udid":"PP-2","SerialNumber":"SN-PP-2","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false},
 {"Udid":"PP-3","SerialNumber":"SN-PP-3","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false}
]
EOF

# The balancer. relay GW_PORT SRC_IP SRC_PORT: prints "ready PORT", then for each connection
# writes a PROXY v2 header (TCP/IPv4, SRC -> 127.0.0.1:GW_PORT) to the gateway and pipes.
# send GW_PORT WHAT [HOLD_SECONDS]: one connection writing WHAT (local: a LOCAL header; proxy:SRC:
# a PROXY header claiming SRC:5555; partial: half a header; tls: a ClientHello's first bytes;
# none: nothing), then prints how the gateway ended it: eof, reset, open (still open after
# HOLD_SECONDS) or data.
cat >pp.py <<'EOF'
import socket, struct, sys, threading, time
SIG = b"\r\n\r\n\x00\r\nQUIT\n"

def header(cmd, src, sport, dport):
    rest = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + struct.pack(">HH", sport, dport)
    return SIG + bytes([cmd, 0x11]) + struct.pack(">H", len(rest)) + rest

def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

mode, gw = sys.argv[1], int(sys.argv[2])
if mode == "relay":
    src, sport = sys.argv[3], int(sys.argv[4])
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print("ready", ls.getsockname()[1], flush=True)
    while True:
        c, _ = ls.accept()
        g = socket.create_connection(("127.0.0.1", gw))
        g.sendall(header(0x21, src, sport, gw))
        threading.Thread(target=pipe, args=(c, g), daemon=True).start()
        threading.Thread(target=pipe, args=(g, c), daemon=True).start()
else:
    what = sys.argv[3]
    hold = float(sys.argv[4]) if len(sys.argv) > 4 else 5
    s = socket.create_connection(("127.0.0.1", gw))
    if what == "local":
        s.sendall(header(0x20, "0.0.0.0", 0, 0))
    elif what.startswith("proxy:"):
        s.sendall(header(0x21, what[6:], 5555, gw))
    elif what == "partial":
        s.sendall(header(0x21, "192.0.2.1", 5555, gw)[:10])
    elif what == "tls":
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    s.settimeout(hold)
    try:
        d = s.recv(100)
        print("eof" if not d else "data")
    except ConnectionResetError:
        print("reset")
    except socket.timeout:
        print("open")
EOF

start_server echo echo 0
gw_port=$(free_port)
pp_port=$(free_port)
deny_port=$(free_port)
admin_port=$(free_port)
cat >rules.yaml <<EOF
rule_sets:
  - name: ios
    platforms: [ios]
    mode: full-device
    default: block
    rules:
      - action: tunnel
        destinations: ["127.0.0.1"]
EOF
cat >gateway.yaml <<EOF
listen:
  - "127.0.0.1:$gw_port"
  - address: "127.0.0.1:$pp_port"
    proxy_protocol: {senders: ["127.0.0.1/32", "2001:db8::/64"]}
  - {address: "127.0.0.1:$deny_port", proxy_protocol: {senders: ["127.0.0.9/32"]}}
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem}
uem: {source: file, file: devices.json}
dtr: rules.yaml
egress: {address: 127.0.0.2, allow: ["127.0.0.1/32"]}
admin: {listen: "127.0.0.1:$admin_port"}
limits: {first_byte_timeout: 3s, handshake_timeout: 6s, max_pending_per_source: 1}
log: {format: json}
EOF

# ---- configuration: senders are required ----------------------------------------------------
sed 's/proxy_protocol: {senders: \["127.0.0.9\/32"\]}/proxy_protocol: {}/' gateway.yaml >nosenders.yaml
run "$bin/tunnelgate" --check-config nosenders.yaml
expect_rc "proxy_protocol without senders: configuration error" 78
expect_err_has "the error names file, line and key" "nosenders.yaml:"
expect_err_has "the error names the key" "listen[2].proxy_protocol.senders"
sed 's/"127.0.0.9\/32"/"10.0.0.0\/33"/' gateway.yaml >badsender.yaml
run "$bin/tunnelgate" --check-config badsender.yaml
expect_rc "a bad sender CIDR: configuration error" 78
expect_err_has "the bad CIDR is named" "listen[2].proxy_protocol.senders[0]"
run "$bin/tunnelgate" --check-config gateway.yaml
expect_rc "check-config good" 0

: >gw.out
"$bin/tunnelgate" gateway.yaml >gw.out 2>&1 &
pids+=($!)
wait_for 10 grep -q '"event":"started"' gw.out || { echo "gateway did not start"; cat gw.out; exit 1; }

start_relay() {  # start_relay NAME SRC_IP : sets ${NAME}_port
  : >"$1.out"
  python3 -u pp.py relay "$pp_port" "$2" 5555 >"$1.out" 2>&1 &
  pids+=($!)
  wait_for 10 grep -q '^ready ' "$1.out" || { echo "relay $1 did not start"; exit 1; }
  printf -v "${1}_port" '%s' "$(sed -n 's/^ready //p' "$1.out")"
}
via() {  # via RELAY_PORT DEVICE CURL_ARGS... : a device session through the relay
  local port=$1 dev=$2
  shift 2
  curl -sS --max-time 10 -p --proxy "https://127.0.0.1:$port" --proxy-cacert ca/ca.pem \
    --proxy-cert "ca/devices/$dev.pem" --proxy-key "ca/devices/$dev.key" "$@"
}
refusals() { metric "tunnelgate_accept_refusals_total{reason=\"$1\"}"; }

# ---- the plain listener is unchanged ---------------------------------------------------------
run gw_curl PP-3 "http://127.0.0.1:$echo_port/"
expect_out "plain listener: tunnel works" "peer=127.0.0.2"

# ---- through the balancer: the device's address from the header ------------------------------
start_relay lb 192.0.2.44
run via "$lb_port" PP-1 "http://127.0.0.1:$echo_port/"
expect_out "tunnel through the PROXY listener" "peer=127.0.0.2"
check "admitted line shows the claimed device address" \
  grep -q '"event":"admitted".*"udid":"PP-1".*"peer":"192.0.2.44:5555"' gw.out
check "access line shows the claimed device address" wait_for 5 \
  grep -q '"event":"access".*"udid":"PP-1".*"peer":"192.0.2.44:5555"' gw.out
check "a PROXY header counted" metric_is 'tunnelgate_proxy_headers_total{command="proxy"}' 1
via "$lb_port" PP-1 "http://127.0.0.1:$echo_port/slow?ms=3000" >slow.out 2>&1 &
slow_pid=$!
check "/api/v1/sessions shows the device address as peer" wait_for 5 bash -c \
  "curl -s http://127.0.0.1:$admin_port/api/v1/sessions | grep -q '\"peer\":\"192.0.2.44:5555\"'"
wait "$slow_pid"
check "the slow tunnel answered" grep -q "peer=127.0.0.2" slow.out

# ---- refusals at accept -----------------------------------------------------------------------
run curl -sS --max-time 5 -p --proxy "https://127.0.0.1:$pp_port" --proxy-cacert ca/ca.pem \
  --proxy-cert ca/devices/PP-1.pem --proxy-key ca/devices/PP-1.key "http://127.0.0.1:$echo_port/"
check "a device straight to the PROXY listener fails" test "$rc" -ne 0
run python3 pp.py send "$pp_port" tls
expect_out "TLS bytes instead of a header: reset" reset
check "... counted as proxy-header-invalid" test "$(refusals proxy-header-invalid)" -ge 2
check "... logged with the parser's reason" \
  grep -q '"event":"accept_refused".*"reason":"proxy-header-invalid".*bad-signature' gw.out
run python3 pp.py send "$pp_port" partial
expect_out "half a header: reset after first_byte_timeout" reset
check "... counted as proxy-header-timeout" metric_is 'tunnelgate_accept_refusals_total{reason="proxy-header-timeout"}' 1
run python3 pp.py send "$deny_port" none
expect_out "a sender outside senders: reset at accept" reset
check "... counted as proxy-sender-not-allowed" metric_is 'tunnelgate_accept_refusals_total{reason="proxy-sender-not-allowed"}' 1
check "... logged with the remedy" \
  grep -q '"event":"accept_refused".*"reason":"proxy-sender-not-allowed".*proxy_protocol.senders' gw.out
run python3 pp.py send "$pp_port" local
expect_out "LOCAL (a health check): closed quietly" eof
check "... counted" metric_is 'tunnelgate_proxy_headers_total{command="local"}' 1
check "... not a refusal, no handshake" bash -c "! grep -q '\"event\":\"handshake_refused\".*\"peer\":\"127.0.0.1:' gw.out"

# ---- per-source limits count the device the header names, not the balancer ------------------
# A connection claiming 192.0.2.50 sends its header and holds its handshake open: with
# max_pending_per_source 1 the same claimed source is refused meanwhile, another one is not.
# (Within first_byte_timeout, 3 s, after which the held connection's handshake is refused.)
start_relay same 192.0.2.50
start_relay other 192.0.2.51
python3 pp.py send "$pp_port" proxy:192.0.2.50 8 >hold.out &
hold_pid=$!
pids+=($hold_pid)
check "the held connection is admitted" wait_for 2 metric_is 'tunnelgate_pending_handshakes' 1
run via "$same_port" PP-2 "http://127.0.0.1:$echo_port/"
check "same claimed source while one is pending: refused" test "$rc" -ne 0
check "... as source-pending-limit for that source" \
  grep -q '"event":"accept_refused".*"peer":"192.0.2.50:5555".*"source":"192.0.2.50".*"reason":"source-pending-limit"' gw.out
run via "$other_port" PP-2 "http://127.0.0.1:$echo_port/"
expect_out "another claimed source through the same balancer: admitted" "peer=127.0.0.2"
check "admitted with its own address" \
  grep -q '"event":"admitted".*"udid":"PP-2".*"peer":"192.0.2.51:5555"' gw.out
wait "$hold_pid"
check "the held connection was refused at first_byte_timeout, as the device" \
  grep -q '"event":"handshake_refused".*"peer":"192.0.2.50:5555".*"reason":"first_byte_timeout"' gw.out

finish
