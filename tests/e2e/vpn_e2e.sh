#!/usr/bin/env bash
# End-to-end: the stock openconnect client through tunnelgate's full-device VPN, in three
# network namespaces this test creates and deletes:
#   client       10.1.0.2  openconnect (with the test's own small vpnc-script)
#   gateway      10.1.0.1 (device side), 10.2.0.1 (egress)   tunnelgate
#   destination  10.2.0.2, 10.2.0.3, 10.2.0.4   web services that log who they see; the DNS
#                server (10.2.0.2:53) that holds the destination names
#   vpn_e2e.sh BIN_DIR
# Needs root, /dev/net/tun and openconnect (tools/setup installs it); exits 77 (skip) with a
# message when one is missing. Nothing leaves the namespaces.
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh"
. "$here/e2e_lib.sh"

[ "$(id -u)" -eq 0 ] || { echo "SKIP: the VPN test needs root (network namespaces, TUN)"; exit 77; }
[ -c /dev/net/tun ] || { echo "SKIP: /dev/net/tun is missing (modprobe tun)"; exit 77; }
command -v openconnect >/dev/null || { echo "SKIP: openconnect is not installed (tools/setup)"; exit 77; }
command -v nft >/dev/null || { echo "SKIP: nft is not installed (tools/setup)"; exit 77; }

e2e_setup
nc=tgvc$$ ng=tgvg$$ nd=tgvd$$
vpn_cleanup() {
  # Everything still running in our namespaces goes first (processes outlive a deleted
  # namespace), then the namespaces with their interfaces.
  for n in "$nc" "$ng" "$nd"; do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -TERM 2>/dev/null
  done
  sleep 0.3
  for n in "$nc" "$ng" "$nd"; do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    ip netns del "$n" 2>/dev/null
  done
  e2e_cleanup
}
trap vpn_cleanup EXIT
for n in "$nc" "$ng" "$nd"; do
  ip netns add "$n" || { echo "cannot create network namespaces"; exit 1; }
  ip -n "$n" link set lo up
done
ip link add c0 netns "$nc" type veth peer name g0 netns "$ng"
ip link add g1 netns "$ng" type veth peer name d0 netns "$nd"
ip -n "$nc" addr add 10.1.0.2/24 dev c0
ip -n "$ng" addr add 10.1.0.1/24 dev g0
ip -n "$ng" addr add 10.2.0.1/24 dev g1
for a in 10.2.0.2 10.2.0.3 10.2.0.4; do ip -n "$nd" addr add "$a/24" dev d0; done
ip -n "$nc" link set c0 up
ip -n "$ng" link set g0 up
ip -n "$ng" link set g1 up
ip -n "$nd" link set d0 up
in_c() { ip netns exec "$nc" "$@"; }
in_g() { ip netns exec "$ng" "$@"; }
in_d() { ip netns exec "$nd" "$@"; }

# ---- PKI and UEM ---------------------------------------------------------------------------
"$bin/tunnelctl" ca init ca >/dev/null
for d in WIN-1 WIN-2 MAC-1 NONC-1 REV-1 HOOK-1; do
  "$bin/tunnelctl" ca issue ca --udid "$d" --user "${d,,}@example.com" >/dev/null
done
"$bin/tunnelctl" ca init other >/dev/null
"$bin/tunnelctl" ca issue other --udid WIN-1 --user win-1@example.com >/dev/null
openssl_ca_setup
openssl_cert EXPIRED-1 ec:<(openssl ecparam -name prime256v1) clientAuth 20200101000000Z 20200201000000Z sha256
inventory() {  # inventory HOOK-STATUS
  local rec='"EnrollmentStatus":"Enrolled","CompromisedStatus":false'
  cat >devices.tmp <<EOF
[
 {"Udid":"WIN-1","SerialNumber":"S1","Platform":"WinRT","ComplianceStatus":"Compliant",$rec},
 {"Udid":"WIN-2","SerialNumber":"S2","Platform":"WinRT","ComplianceStatus":"Compliant",$rec},
 {"Udid":"MAC-1","SerialNumber":"S3","Platform":"AppleOsX","ComplianceStatus":"Compliant",$rec},
 {"Udid":"NONC-1","SerialNumber":"S4","Platform":"WinRT","ComplianceStatus":"NonCompliant",$rec},
 {"Udid":"REV-1","SerialNumber":"S5","Platform":"WinRT","ComplianceStatus":"Compliant",$rec},
 {"Udid":"EXPIRED-1","SerialNumber":"S6","Platform":"WinRT","ComplianceStatus":"Compliant",$rec},
 {"Id":{"Value":77},"Udid":"HOOK-1","SerialNumber":"S7","Platform":"WinRT","ComplianceStatus":"$1",$rec}
]
EOF
  mv devices.tmp devices.json
}
inventory Compliant

cat >rules.yaml <<'EOF'
rule_sets:
  - name: windows
    platforms: [windows]
    mode: full-device
    default: block
    rules:
      - action: block
        destinations: ["blocked.okta.test"]
      - action: tunnel
        destinations: ["*.okta.test", "login.microsoftonline.test", "10.2.0.3/32"]
      - action: bypass
        destinations: ["*.bypass.test"]
  - name: macos
    platforms: [macos]
    mode: full-device
    default: tunnel
EOF
echo "hook-pass" >hook.pass
cat >gateway.yaml <<'EOF'
listen: ["10.1.0.1:8443"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem, crl: [ca/crl.pem]}
uem:
  source: file
  file: devices.json
  webhook: {listen: "127.0.0.1:9444", username: uem, password_file: hook.pass}
dtr: rules.yaml
egress: {address: 10.2.0.1, resolver: ["10.2.0.2:53"], allow: ["10.2.0.2/32"], connect_timeout: 2s}
admin: {listen: "127.0.0.1:9443"}
log: {format: json}
limits: {shutdown_grace: 3s}
vpn: {pool: 10.77.0.0/24, mapped_pool: 100.64.0.0/16, dpd: 10s, default_domain: corp.test}
EOF

# ---- the destination: web services and the name server ----------------------------------
for a in 10.2.0.2 10.2.0.3 10.2.0.4; do
  : >"web-$a.out"
  ip netns exec "$nd" node "$here/servers.js" echo 80 "$a" >"web-$a.out" 2>&1 &
  pids+=($!)
done
: >dns.out
ip netns exec "$nd" env DNS_ADDRESS=10.2.0.2 node "$here/servers.js" dns 53 \
  "login.okta.test=10.2.0.2;blocked.okta.test=10.2.0.2;x.bypass.test=10.2.0.4;login.microsoftonline.test=10.2.0.2;local.okta.test=127.0.0.1" \
  >dns.out 2>&1 &
pids+=($!)
wait_for 10 grep -q '^ready' dns.out || { echo "name server did not start"; cat dns.out; exit 1; }
for a in 10.2.0.2 10.2.0.3 10.2.0.4; do
  wait_for 10 grep -q '^ready' "web-$a.out" || { echo "web server $a did not start"; exit 1; }
done

# ---- the gateway -------------------------------------------------------------------------
run in_g "$bin/tunnelgate" --check-config gateway.yaml
expect_rc "check-config with a vpn section" 0
: >gw.out
start_gw() {
  ip netns exec "$ng" "$bin/tunnelgate" gateway.yaml >>gw.out 2>&1 &  # ip execs: $! is the gateway
  gw_pid=$!
  pids+=($gw_pid)
  wait_for 10 bash -c "[ \$(grep -c '\"event\":\"started\"' gw.out) -ge $1 ]" ||
    { echo "gateway did not start"; cat gw.out; exit 1; }
}
start_gw 1
check "TUN up with the tunnel address" bash -c "ip -n $ng -br addr show tunnelgate0 | grep -q 10.77.0.1/24"
check "nft table inet tunnelgate installed" bash -c "ip netns exec $ng nft list table inet tunnelgate >/dev/null"
metric() { in_g curl -s "http://127.0.0.1:9443/metrics" | awk -v n="$1" '$1 == n {print $2}'; }

# ---- the client ----------------------------------------------------------------------------
cat >vpnc.sh <<'EOF'
#!/bin/sh
# The test's vpnc-script: the address, MTU, the tunnel network, one route per split include
# (the default route when there is none); what the gateway sent is recorded for the test.
env | grep -E '^(reason|TUNDEV|INTERNAL_IP4|CISCO|VPNGATEWAY)' | sort >"$VPNC_RECORD.tmp"
case "$reason" in
connect)
  ip addr add "$INTERNAL_IP4_ADDRESS/32" dev "$TUNDEV"
  ip link set "$TUNDEV" up mtu "${INTERNAL_IP4_MTU:-1400}"
  ip route add "$INTERNAL_IP4_NETADDR/$INTERNAL_IP4_NETMASKLEN" dev "$TUNDEV"
  i=0
  while [ "$i" -lt "${CISCO_SPLIT_INC:-0}" ]; do
    eval "a=\$CISCO_SPLIT_INC_${i}_ADDR m=\$CISCO_SPLIT_INC_${i}_MASKLEN"
    ip route add "$a/$m" dev "$TUNDEV"
    i=$((i + 1))
  done
  [ "${CISCO_SPLIT_INC:-0}" -eq 0 ] && ip route add default dev "$TUNDEV"
  ;;
esac
mv "$VPNC_RECORD.tmp" "$VPNC_RECORD.$reason"  # last: the test waits for it
exit 0
EOF
chmod +x vpnc.sh
pin=$(openssl x509 -in ca/server.pem -noout -pubkey | openssl pkey -pubin -outform der |
  openssl dgst -sha256 -binary | base64)
# oc NAME DEVICE [CADIR] [more openconnect args]: openconnect in the client namespace, in the
# background; its output in NAME.out, its vpnc-script record in NAME.connect
oc() {
  local name=$1 dev=$2 cadir=${3:-ca}
  shift 3 2>/dev/null || shift $#
  : >"$name.out"
  ip netns exec "$nc" env VPNC_RECORD="$work/$name" openconnect -v --certificate "$cadir/devices/$dev.pem" \
    --sslkey "$cadir/devices/$dev.key" --servercert "pin-sha256:$pin" --no-dtls \
    -s "$work/vpnc.sh" "$@" https://10.1.0.1:8443/ >"$name.out" 2>&1 &
  oc_pid=$!
  pids+=($oc_pid)
}
oc_up() { grep -q 'CSTP connected' "$1.out" && [ -s "$1.connect" ]; }  # and routes are set
oc_gone() { ! kill -0 "$1" 2>/dev/null; }
dns_q() {  # dns_q NAME [TYPE]: the in-tunnel DNS answer, as the client sees it
  in_c node -e '
    const r = new (require("dns").Resolver)({timeout: 2000, tries: 1});
    r.setServers(["10.77.0.1"]);
    r.resolve(process.argv[1], process.argv[2] || "A", (e, a) => console.log(e ? "error " + e.code : a.join(",")));' "$1" "${2:-A}"
}

oc win WIN-1
check "compliant device connects with openconnect" wait_for 10 oc_up win
expect_out_has_file() { check "$1" grep -qF -- "$2" "$3"; }
expect_out_has_file "address from the pool" "INTERNAL_IP4_ADDRESS=10.77.0.2" win.connect
expect_out_has_file "the in-tunnel DNS server" "INTERNAL_IP4_DNS=10.77.0.1" win.connect
check "split DNS for the tunnelled host rules, and nothing else" bash -c "grep '^CISCO_SPLIT_DNS=' win.connect | tr '=,' '\n\n' | sed 1d | sort | tr '\n' ' ' | grep -qx 'login.microsoftonline.test okta.test '"
expect_out_has_file "two split includes" "CISCO_SPLIT_INC=2" win.connect
expect_out_has_file "split include: the mapped pool" "CISCO_SPLIT_INC_1_ADDR=100.64.0.0" win.connect
expect_out_has_file "split include: the tunnelled CIDR" "CISCO_SPLIT_INC_0_ADDR=10.2.0.3" win.connect
expect_out_has_file "its mask" "CISCO_SPLIT_INC_0_MASKLEN=32" win.connect
expect_out_has_file "default domain" "CISCO_DEF_DOMAIN=corp.test" win.connect
check "no split include for bypass or block rules" bash -c "! grep -q '10.2.0.4\|10.2.0.2' win.connect"

# ---- host names through the mapped pool; CIDRs directly --------------------------------------
mapped=$(dns_q login.okta.test)
check "a tunnel name resolves to a mapped address ($mapped)" bash -c "[[ '$mapped' == 100.64.* ]]"
run in_c curl -sS --max-time 5 "http://$mapped/"
expect_out "the login host through the mapped pool sees the egress address" "peer=10.2.0.1"
check "the same name keeps its mapped address" test "$(dns_q LOGIN.okta.test)" = "$mapped"
run in_c curl -sS --max-time 5 "http://10.2.0.3/"
expect_out "a tunnelled CIDR sees the egress address" "peer=10.2.0.1"
check "the flow is logged with its host name and rule" grep -q '"kind":"vpn_flow","udid":"WIN-1".*"host":"login.okta.test","destination":"'"$mapped"':80","remote":"10.2.0.2:80","protocol":"tcp","action":"tunnel","set":"windows","rank":"2","line":9,"egress":"10.2.0.1"' gw.out
check "a block name does not resolve" test "$(dns_q blocked.okta.test)" = "error ENOTFOUND"
check "... and the refusal is logged" grep -q '"event":"vpn_dns_refused","udid":"WIN-1".*"name":"blocked.okta.test".*"reason":"blocked"' gw.out
check "a bypass name resolves to its real address" test "$(dns_q x.bypass.test)" = "10.2.0.4"
check "... which is not routed into the tunnel" bash -c "! ip netns exec $nc ip route get 10.2.0.4 | grep -q tun0"
check "a name resolving to loopback is refused by the egress policy" test "$(dns_q local.okta.test)" = "error ENOTFOUND"
check "... logged with the policy's reason" grep -q '"name":"local.okta.test".*"reason":"forbidden-destination".*127.0.0.1 (loopback)' gw.out
check "AAAA for a tunnel name: no records" test "$(dns_q login.okta.test AAAA)" = "error ENODATA"
dns_tcp() {  # dns_tcp NAME: rcode and the first A record of an answer over TCP
  in_c node -e '
    const name = process.argv[1];
    const q = Buffer.concat([Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
      ...name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
      Buffer.from([0, 0, 1, 0, 1])]);
    const len = Buffer.alloc(2); len.writeUInt16BE(q.length);
    const s = require("net").connect(53, "10.77.0.1", () => s.write(Buffer.concat([len, q])));
    let got = Buffer.alloc(0);
    s.on("data", (d) => {
      got = Buffer.concat([got, d]);
      if (got.length < 2 || got.length < 2 + got.readUInt16BE(0)) return;
      const m = got.subarray(2);
      const a = m.readUInt16BE(6) > 0 ? m.subarray(m.length - 4).join(".") : "-";
      console.log("rcode=" + (m[3] & 15) + " a=" + a);
      process.exit(0);
    });
    s.on("error", (e) => console.log("error " + e.code));
    setTimeout(() => { console.log("timeout"); process.exit(0); }, 3000);' "$1"
}
check "the in-tunnel DNS answers over TCP too" test "$(dns_tcp login.okta.test)" = "rcode=0 a=$mapped"
check "... NXDOMAIN over TCP for a block name" test "$(dns_tcp blocked.okta.test)" = "rcode=3 a=-"

# ---- what no tunnel decision allows is dropped and counted ---------------------------------
in_c ip route add 10.2.0.4/32 dev tun0
run in_c curl -sS --max-time 2 "http://10.2.0.4/"
check "a packet to an address no rule tunnels, injected into the tunnel, goes nowhere" test "$rc" -ne 0
check "... the destination never saw it" bash -c "! grep -q peer= web-10.2.0.4.out"
blocked_drops=$(metric 'tunnelgate_vpn_dropped_packets_total{reason="blocked"}')
check "... dropped and counted (blocked by the set's default: $blocked_drops)" test "${blocked_drops:-0}" -ge 1
check "... the refused flow is logged once with its rule" bash -c "[ \$(grep -c '\"event\":\"vpn_flow_refused\",\"udid\":\"WIN-1\",\"reason\":\"blocked\".*\"destination\":\"10.2.0.4:80\".*\"rank\":\"default\"' gw.out) -eq 1 ]"
in_c ip route del 10.2.0.4/32 dev tun0
in_c ip route add 100.64.9.9/32 dev tun0 2>/dev/null
run in_c curl -sS --max-time 2 "http://100.64.9.9/"
check "a mapped address without a mapping is dropped" test "$rc" -ne 0
check "... counted as unmapped" bash -c "ip netns exec $ng curl -s http://127.0.0.1:9443/metrics | grep -q 'tunnelgate_vpn_dropped_packets_total{reason=\"unmapped\"} [1-9]'"

# ---- the admin API and bytes ---------------------------------------------------------------
run in_g curl -s http://127.0.0.1:9443/api/v1/sessions
expect_out_has "the VPN session is listed with its address" '"udid":"WIN-1"'
expect_out_has "... as a vpn action" '"destination":"10.77.0.2","action":"vpn"'
check "bytes counted per session" bash -c "grep -q '\"bytes_up\":[1-9]' <<<'$out'"

# ---- SIGHUP keeps the session and applies new rules to new DNS answers -------------------
sed -i 's/"\*.bypass.test"/"*.bypass.test", "login.microsoftonline.test"/' rules.yaml
sed -i 's/destinations: \["\*.okta.test", "login.microsoftonline.test", "10.2.0.3\/32"\]/destinations: ["*.okta.test", "10.2.0.3\/32"]/' rules.yaml
kill -HUP "$gw_pid"
check "reloaded" wait_for 5 grep -q '"event":"reloaded"' gw.out
check "the client stays connected across SIGHUP" kill -0 "$oc_pid"
check "new rules apply to new DNS answers" test "$(dns_q login.microsoftonline.test)" = "10.2.0.2"
run in_c curl -sS --max-time 5 "http://$mapped/"
expect_out "traffic still flows after SIGHUP" "peer=10.2.0.1"

# ---- cookies: a reused or stolen cookie is refused --------------------------------------------
auth_cookie() {  # auth_cookie DEVICE [CADIR]: the webvpn cookie openconnect obtains
  in_c openconnect --authenticate --certificate "${2:-ca}/devices/$1.pem" --sslkey "${2:-ca}/devices/$1.key" \
    --servercert "pin-sha256:$pin" https://10.1.0.1:8443/ 2>/dev/null | sed -n "s/^COOKIE='\(.*\)'$/\1/p"
}
cookie=$(auth_cookie WIN-2)
check "openconnect --authenticate gets a cookie" test -n "$cookie"
oc reuse1 WIN-2 ca --cookie "$cookie"
check "the cookie opens a tunnel" wait_for 10 oc_up reuse1
reuse1_pid=$oc_pid
# The same device and certificate presenting it again while its tunnel is up is a reconnect
# (openconnect gives up on a silent connection before the gateway does): the old tunnel goes.
oc reuse2 WIN-2 ca --cookie "$cookie"
check "the same device reconnecting with its cookie takes over" wait_for 10 oc_up reuse2
check "... and the old tunnel ends" wait_for 5 oc_gone "$reuse1_pid"
check "... logged" grep -q '"event":"vpn_tunnel_replaced","udid":"WIN-2"' gw.out
kill "$oc_pid" 2>/dev/null  # openconnect says goodbye (DISCONNECT): the cookie is used up
wait_for 5 oc_gone "$oc_pid"
oc reuse3 WIN-2 ca --cookie "$cookie"
check "a cookie whose tunnel ended is refused" wait_for 10 oc_gone "$oc_pid"
check "... as rejected by the server" grep -q "Cookie was rejected" reuse3.out
check "... logged with the reason cookie-used" grep -q '"event":"request_refused","udid":"WIN-2","reason":"cookie-used"' gw.out
stolen=$(auth_cookie WIN-2)
oc thief MAC-1 ca --cookie "$stolen"
check "a cookie presented with another device's certificate is refused" wait_for 10 oc_gone "$oc_pid"
check "... as cookie-mismatch" grep -q '"event":"request_refused","udid":"MAC-1","reason":"cookie-mismatch"' gw.out

# ---- devices that must not connect -----------------------------------------------------------
for pair in NONC-1:noncompliant EXPIRED-1:expired; do
  dev=${pair%%:*} why=${pair#*:}
  oc "bad-$dev" "$dev"
  check "$dev cannot connect" wait_for 10 oc_gone "$oc_pid"
  check "$dev never got an address" bash -c "! grep -q 'CSTP connected' bad-$dev.out"
  check "$dev refused as $why" grep -q "\"reason\":\"$why\"" gw.out
done
oc bad-other WIN-1 other
check "a certificate from another CA cannot connect" wait_for 10 oc_gone "$oc_pid"
check "... refused in the handshake as unknown_ca" grep -q '"event":"handshake_refused".*"reason":"unknown_ca"' gw.out

# ---- live revocation: CRL, webhook, admin ---------------------------------------------------
oc rev REV-1
check "REV-1 connects" wait_for 10 oc_up rev
rev_pid=$oc_pid
"$bin/tunnelctl" ca revoke ca REV-1 >/dev/null
check "a CRL revoking the certificate cuts the tunnel (within the reload period)" wait_for 5 oc_gone "$rev_pid"
check "... TERMINATE received" grep -q "received server terminate packet" rev.out
check "... logged with reason=revoked" grep -q '"event":"session_closed".*"udid":"REV-1","reason":"revoked"' gw.out

oc hook HOOK-1
check "HOOK-1 connects" wait_for 10 oc_up hook
hook_pid=$oc_pid
in_use=$(metric tunnelgate_vpn_addresses_in_use)
inventory NonCompliant
t0=$(date +%s%N)
in_g curl -s -o /dev/null -u uem:hook-pass -H 'Content-Type: application/json' \
  -d '{"EventId":1,"EventType":"Compliance Status Changed","DeviceId":77,"Udid":"HOOK-1","ComplianceStatus":"NonCompliant","CompromisedStatus":"false","EventTime":"2026-12-02T00:00:00.0000000Z"}' \
  http://127.0.0.1:9444/
check "webhook revocation drops the client" wait_for 3 oc_gone "$hook_pid"
t1=$(date +%s%N)
check "... in under a second ($(((t1 - t0) / 1000000)) ms)" test $(((t1 - t0) / 1000000)) -lt 1000
check "... with TERMINATE" grep -q "received server terminate packet" hook.out
address_returned() { [ "$(metric tunnelgate_vpn_addresses_in_use)" -lt "$in_use" ]; }
check "its address returns to the pool" wait_for 3 address_returned
oc hook2 HOOK-1
check "the non-compliant device cannot come back" wait_for 10 oc_gone "$oc_pid"

# ---- SIGTERM sends TERMINATE; kill -9 leaves nothing a restart does not clean ---------------
kill -TERM "$gw_pid"
wait "$gw_pid" 2>/dev/null
check "SIGTERM: the client got TERMINATE" grep -q "received server terminate packet" win.out
check "SIGTERM: the TUN is gone" bash -c "! ip -n $ng link show tunnelgate0 >/dev/null 2>&1"
check "SIGTERM: the nft table is gone" bash -c "! ip netns exec $ng nft list table inet tunnelgate >/dev/null 2>&1"
check "SIGTERM: forwarding restored" test "$(in_g cat /proc/sys/net/ipv4/conf/g1/forwarding)" = 0
inventory Compliant
start_gw 2
oc again WIN-1
check "after a restart a client connects again" wait_for 10 oc_up again
again_pid=$oc_pid
kill -9 "$gw_pid"
wait "$gw_pid" 2>/dev/null
check "kill -9: the TUN goes with the process" bash -c "! ip -n $ng link show tunnelgate0 >/dev/null 2>&1"
start_gw 3
check "restart after kill -9: one fresh table" test "$(in_g nft list tables | grep -c 'inet tunnelgate')" = 1
# The old client's cookie died with the killed gateway; a user reconnects (a new openconnect).
kill "$again_pid" 2>/dev/null
wait_for 10 oc_gone "$again_pid"
oc after WIN-1
check "restart after kill -9: clients connect" wait_for 10 oc_up after
run in_c curl -sS --max-time 5 "http://10.2.0.3/"
expect_out "... and reach the destination" "peer=10.2.0.1"
kill -TERM "$gw_pid"
wait "$gw_pid" 2>/dev/null
check "forwarding restored after all" test "$(in_g cat /proc/sys/net/ipv4/conf/g1/forwarding)" = 0

finish
