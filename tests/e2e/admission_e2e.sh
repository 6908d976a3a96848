#!/usr/bin/env bash
# End-to-end admission: the real tunnelgate with a Workspace ONE UEM (uem-sim) as its compliance
# source and device certificates that fail each certauth check, made by `openssl ca` with the
# dev CA's key, sent by real curl over a real handshake.
#   admission_e2e.sh BIN_DIR
# Covers: expired, not_yet_valid, bad_eku, weak_key, weak_signature, no_udid, no_user,
# bad_identity_value and (after SIGHUP to a stale CRL) crl_expired refused in the handshake and
# counted by reason; a session outliving the cache TTL is re-checked with the UEM (no
# webhook) and closed when the device turned non-compliant; UEM outage: an unknown device gets
# 503 uem_unavailable, a live session survives the stale grace and is then closed (fail closed).
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh"
. "$here/e2e_lib.sh"
e2e_setup  # $work (removed at exit unless KEEP_WORK=1), $pids (killed at exit)

# ---- PKI: the dev CA, good devices, and bad ones made by openssl ---------------------------
"$bin/tunnelctl" ca init ca >/dev/null
for d in GOOD-1 RECHECK-1 OUTAGE-1 NEW-1; do
  "$bin/tunnelctl" ca issue ca --udid "$d" --user "${d,,}@example.com" --serial "SN-$d" >/dev/null
done
openssl_ca_setup
openssl_cert EXPIRED-1 ec:<(openssl ecparam -name prime256v1) clientAuth 20200101000000Z 20200201000000Z sha256
openssl_cert FUTURE-1 ec:<(openssl ecparam -name prime256v1) clientAuth 20400101000000Z 20410101000000Z sha256
openssl_cert SERVEREKU-1 ec:<(openssl ecparam -name prime256v1) serverAuth 20250101000000Z 20350101000000Z sha256
openssl_cert RSA1024-1 rsa:1024 clientAuth 20250101000000Z 20350101000000Z sha256
openssl_cert SHA1-1 ec:<(openssl ecparam -name prime256v1) clientAuth 20250101000000Z 20350101000000Z sha1
openssl_cert FINE-1 ec:<(openssl ecparam -name prime256v1) clientAuth 20250101000000Z 20350101000000Z sha256
SUBJ="/O=tunnelgate dev devices/serialNumber=SN-NOUDID" \
  openssl_cert NOUDID-1 ec:<(openssl ecparam -name prime256v1) clientAuth 20250101000000Z 20350101000000Z sha256
SAN="" openssl_cert NOUSER-1 ec:<(openssl ecparam -name prime256v1) clientAuth 20250101000000Z 20350101000000Z sha256
SUBJ="/O=tunnelgate dev devices/CN=BAD UDID;rm -rf/serialNumber=SN-BADID" \
  openssl_cert BADID-1 ec:<(openssl ecparam -name prime256v1) clientAuth 20250101000000Z 20350101000000Z sha256
# A CRL of the dev CA whose nextUpdate has passed (tls.stale_crl defaults to refuse).
openssl ca -gencrl -config x/ca.cnf -cert ca/ca.pem -keyfile ca/ca.key -md sha256 \
  -crl_lastupdate 20200101000000Z -crl_nextupdate 20200102000000Z -out x/stale-crl.pem 2>/dev/null ||
  { echo "openssl ca -gencrl failed"; exit 1; }

# ---- the UEM (uem-sim) ------------------------------------------------------------------------
device() {  # device UDID
  printf '{"Id":{"Value":%d},"Udid":"%s","SerialNumber":"SN-%s","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false}' \
    "$((RANDOM + 1))" "$1" "$1"
}
{
  echo "["
  first=1
  for d in GOOD-1 RECHECK-1 OUTAGE-1 NEW-1 FINE-1 EXPIRED-1 FUTURE-1 SERVEREKU-1 RSA1024-1 SHA1-1; do
    [ $first -eq 1 ] || echo ","
    first=0
    device "$d"
  done
  echo "]"
} >devices.json
echo "api-password" >api.pass
echo "TENANT-CODE" >tenant.code
"$bin/uem-sim" --inventory devices.json --cert ca/server.pem --key ca/server.key \
  --listen 127.0.0.1:0 --port-file uem.port --basic-user tg-api --basic-password-file api.pass \
  --tenant-code-file tenant.code \
  >uem.out 2>&1 &
pids+=($!)
wait_for 10 test -s uem.port || { echo "uem-sim did not start"; cat uem.out; exit 1; }
uem_port=$(cat uem.port)
sim() {  # sim METHOD PATH [JSON]
  curl -sS --cacert ca/ca.pem -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} \
    "https://127.0.0.1:$uem_port$2"
}

start_server echo echo 0
gw_port=$(free_port)
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
listen: ["127.0.0.1:$gw_port"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem, crl: [ca/crl.pem]}
uem:
  source: ws1
  poll_interval: 100ms
  ws1:
    base_url: https://127.0.0.1:$uem_port
    tenant_code_file: tenant.code
    auth: {basic: {username: tg-api, password_file: api.pass}}
    ca_file: ca/ca.pem
    connect_timeout: 1s
    request_timeout: 1s
  cache: {positive_ttl: 1s, negative_ttl: 1s, stale_grace: 2s}
dtr: rules.yaml
egress: {address: 127.0.0.2, allow: ["127.0.0.1/32"]}
admin: {listen: "127.0.0.1:$admin_port"}
log: {format: json}
EOF
${TUNNELGATE_WRAPPER:-} "$bin/tunnelgate" gateway.yaml >gw.out 2>&1 &
gw_pid=$!
pids+=($gw_pid)
wait_for 10 grep -q '"event":"started"' gw.out || { echo "gateway did not start"; cat gw.out; exit 1; }

# ---- admitted through the UEM ---------------------------------------------------------------
run gw_curl GOOD-1 "http://127.0.0.1:$echo_port/"
expect_out "compliant in the UEM: tunnel from the egress address" "peer=127.0.0.2"
run gw_curl FINE-1 "http://127.0.0.1:$echo_port/"
expect_out "an openssl-made certificate that passes every check is admitted (control)" "peer=127.0.0.2"

# ---- idle devices leave the UEM cache: no background refresh for devices not connected --------
uem_total() { sim GET /_sim/stats | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).total))'; }
check "both idle devices forgotten after the 1 s TTL" wait_for 6 metric_at_least tunnelgate_uem_devices_forgotten_total 2
before=$(uem_total)
sleep 2.5
after=$(uem_total)
check "no UEM requests for forgotten devices ($before -> $after over 2.5 s, TTL 1 s)" test "$after" = "$before"
run gw_curl GOOD-1 "http://127.0.0.1:$echo_port/"
expect_out "a forgotten device is simply looked up again" "peer=127.0.0.2"
check "... with a fresh UEM request" test "$(uem_total)" -gt "$after"

# ---- certauth refusals over a real handshake -------------------------------------------------
# The client runs at OpenSSL security level 0 so that it is willing to present the weak
# certificates at all (Debian's default level 2 refuses to load them); the gateway must still
# refuse them.
cat >x/weak-client.cnf <<'EOF'
openssl_conf = init
[init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = sys
[sys]
CipherString = DEFAULT:@SECLEVEL=0
EOF
weak=(--proxy-ciphers 'DEFAULT:@SECLEVEL=0')
export OPENSSL_CONF=$work/x/weak-client.cnf
for pair in EXPIRED-1:expired FUTURE-1:not_yet_valid SERVEREKU-1:bad_eku RSA1024-1:weak_key \
  SHA1-1:weak_signature NOUDID-1:no_udid NOUSER-1:no_user BADID-1:bad_identity_value; do
  dev=${pair%%:*} reason=${pair#*:}
  run gw_curl "$dev" "${weak[@]}" "http://127.0.0.1:$echo_port/"
  check "$dev: handshake refused" test "$rc" -ne 0
  check "$dev: counted as $reason" metric_at_least "tunnelgate_handshakes_total{result=\"refused\",reason=\"$reason\"}" 1
  check "$dev: logged with reason $reason" grep -q "\"event\":\"handshake_refused\".*\"reason\":\"$reason\"" gw.out
  check "$dev: never reached admission" bash -c "! grep -Eq '\"event\":\"(admitted|refused)\",\"udid\":\"$dev\"' gw.out"
done
unset OPENSSL_CONF
check "the identity text of a refused certificate is not logged raw" bash -c "! grep -q 'rm -rf' gw.out"

# A stale CRL (past nextUpdate): every device is refused until a fresh CRL arrives.
sed -i 's|crl: \[ca/crl.pem\]|crl: [x/stale-crl.pem]|' gateway.yaml
kill -HUP "$gw_pid"
stale_refused() { ! gw_curl GOOD-1 "http://127.0.0.1:$echo_port/" >/dev/null 2>&1; }
check "stale CRL after SIGHUP: even a good device is refused" wait_for 5 stale_refused
# A connection whose handshake raced the SIGHUP is closed by the recheck instead (counted as a
# closed session); the next handshakes are refused and counted as crl_expired.
stale_counted() { stale_refused; metric_at_least 'tunnelgate_handshakes_total{result="refused",reason="crl_expired"}' 1; }
check "counted as crl_expired" wait_for 5 stale_counted
sed -i 's|crl: \[x/stale-crl.pem\]|crl: [ca/crl.pem]|' gateway.yaml
kill -HUP "$gw_pid"
fresh_ok() { [ "$(gw_curl GOOD-1 "http://127.0.0.1:$echo_port/" 2>/dev/null)" = "peer=127.0.0.2" ]; }
check "fresh CRL after SIGHUP: admitted again" wait_for 5 fresh_ok

# ---- re-check after the TTL, without any webhook --------------------------------------------
gw_curl RECHECK-1 "http://127.0.0.1:$echo_port/slow?ms=20000" >recheck.out 2>&1 &
recheck_curl=$!
check "RECHECK-1 tunnel up" wait_for 5 session_up RECHECK-1 "$echo_port"
run sim POST /_sim/devices/RECHECK-1 '{"ComplianceStatus":"NonCompliant","_notify":false}'
expect_out_has "device turned non-compliant in the UEM, no event sent" '"NonCompliant"'
t0=$(date +%s%N)
wait "$recheck_curl"
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
check "session re-checked after the 1 s TTL and closed (${ms} ms)" test "$ms" -lt 3000
check "re-check revocation logged" grep -q '"event":"device_revoked".*"udid":"RECHECK-1"' gw.out
check "the slow answer never arrived" bash -c "! grep -q peer= recheck.out"

# ---- UEM outage: unknown devices fail closed, live sessions after the stale grace -----------
gw_curl OUTAGE-1 "http://127.0.0.1:$echo_port/slow?ms=20000" >outage.out 2>&1 &
outage_curl=$!
check "OUTAGE-1 tunnel up" wait_for 5 session_up OUTAGE-1 "$echo_port"
run sim POST /_sim/faults '{"fault":"status","status":503}'
t0=$(date +%s%N)
run status_of NEW-1 "http://127.0.0.1:$echo_port/"
expect_out "UEM down: a device not in the cache gets 503" 503
check "... with reason uem_unavailable" test "$(reason_of NEW-1 "http://127.0.0.1:$echo_port/")" = uem_unavailable
check "uem_unavailable counted" metric_at_least 'tunnelgate_admissions_total{result="refused",reason="uem_unavailable"}' 1
check "OUTAGE-1 still up within the stale grace" kill -0 "$outage_curl"
wait "$outage_curl"
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
check "stale admit closed after TTL + grace (${ms} ms, expected 1-5 s)" test "$ms" -ge 1000 -a "$ms" -lt 5000
check "outage revocation logged" grep -q '"event":"device_revoked".*"udid":"OUTAGE-1".*"reason":"uem_unavailable"' gw.out
run sim DELETE /_sim/faults
ok_again() { [ "$(gw_curl NEW-1 "http://127.0.0.1:$echo_port/" 2>/dev/null)" = "peer=127.0.0.2" ]; }
check "UEM back: the device is admitted again" wait_for 5 ok_again

finish
