#!/usr/bin/env bash
# End-to-end posture_sync (issue 15): the real tunnelgate with uem-sim (compliance, webhook),
# okta-sim (devices, users, sessions, SSF receiver that verifies our SET against the JWKS the
# gateway serves) and entra-sim (users, revokeSignInSessions). A compliant device with an Okta
# session, an Okta refresh token and an Entra refresh token turns non-compliant: its tunnel is
# closed, its Okta device is SUSPENDED, both refresh tokens are refused, the receiver holds a
# valid signed event; back to compliant: unsuspended and a `compliant` event. Then: a desktop
# found by serial number, Okta down during the flip (the tunnel is still cut; the suspend lands
# when Okta returns), a 429 storm, an unknown device, an ambiguous user, a device an
# administrator suspended (left suspended on restore), and tunnelctl posture-sync apply/jwks.
#   posture_sync_e2e.sh BIN_DIR
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh"
. "$here/e2e_lib.sh"
e2e_setup

"$bin/tunnelctl" ca init ca >/dev/null
for d in POST-1 DESK-1 DOWN-1 STORM-1 NOOKTA-1 AMBIG-1 ADMIN-1 RUN-1; do
  "$bin/tunnelctl" ca issue ca --udid "$d" --user "${d,,}@example.com" --serial "SN-$d" >/dev/null
done

# ---- the UEM -----------------------------------------------------------------------------------
gw_port=$(free_port)
admin_port=$(free_port)
hook_port=$(free_port)
device() {  # device UDID PLATFORM USERNAME EMAIL
  printf '{"Id":{"Value":%d},"Udid":"%s","SerialNumber":"SN-%s","Platform":"%s","UserName":"%s","UserEmailAddress":"%s","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false}' \
    "$((RANDOM + 1))" "$1" "$1" "$2" "$3" "$4"
}
{
  echo "["
  device POST-1 Apple alice alice@example.com
  echo ","
  device DESK-1 AppleOsX bob bob@example.com
  echo ","
  device DOWN-1 Android dora dora@example.com
  echo ","
  device STORM-1 Apple stan stan@example.com
  echo ","
  device NOOKTA-1 Apple nina nina@example.com
  echo ","
  device AMBIG-1 Apple carol carol@example.com
  echo ","
  device ADMIN-1 Apple adam adam@example.com
  echo ","
  device RUN-1 Apple rita rita@example.com
  echo "]"
} >devices.json
echo "api-password" >api.pass
echo "TENANT-CODE" >tenant.code
echo "hook-password" >hook.pass
"$bin/uem-sim" --inventory devices.json --cert ca/server.pem --key ca/server.key \
  --listen 127.0.0.1:0 --port-file uem.port --basic-user tg-api --basic-password-file api.pass \
  --tenant-code-file tenant.code --webhook-url "http://127.0.0.1:$hook_port/" \
  --webhook-user uem --webhook-password-file hook.pass >uem.out 2>&1 &
pids+=($!)

# ---- Okta and Entra ----------------------------------------------------------------------------
echo "okta-api-token-1" >okta.token
"$bin/okta-sim" --cert ca/server.pem --key ca/server.key --listen 127.0.0.1:0 --port-file okta.port \
  --token-file okta.token --search-lag-ms 2000 --ssf-issuer https://tunnelgate.test \
  --ssf-jwks-url "http://127.0.0.1:$admin_port/.well-known/jwks.json" >okta.out 2>&1 &
okta_pid=$!
pids+=($okta_pid)
echo "entra-secret" >entra.secret
echo "user-password" >user.pass
"$bin/entra-sim" --cert ca/server.pem --key ca/server.key --listen 127.0.0.1:0 --port-file entra.port \
  --tenant contoso.example --client-id tg-app --client-secret-file entra.secret \
  --user alice@example.com --user-password-file user.pass >entra.out 2>&1 &
pids+=($!)
for s in uem okta entra; do
  wait_for 10 test -s $s.port || { echo "$s-sim did not start"; cat $s.out; exit 1; }
done
uem_port=$(cat uem.port) okta_port=$(cat okta.port) entra_port=$(cat entra.port)
okta="https://127.0.0.1:$okta_port" entra="https://127.0.0.1:$entra_port"
sim() { curl -sS --cacert ca/ca.pem -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} "https://127.0.0.1:$uem_port$2"; }
okta_sim() { curl -sS --cacert ca/ca.pem -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} "$okta$2"; }
entra_sim() { curl -sS --cacert ca/ca.pem -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} "$entra$2"; }
js() { node -e "const d=JSON.parse(require('fs').readFileSync(0,'utf8')); const v=($1); console.log(typeof v==='string'?v:JSON.stringify(v))"; }

okta_sim POST /_sim/devices '[
  {"udid":"POST-1","serialNumber":"SN-POST-1","displayName":"Alice iPhone","platform":"IOS"},
  {"udid":"MAC-UDID-OTHER","serialNumber":"SN-DESK-1","displayName":"Bob Mac","platform":"MACOS"},
  {"udid":"DOWN-1","serialNumber":"SN-DOWN-1","displayName":"Dora Pixel","platform":"ANDROID"},
  {"udid":"STORM-1","serialNumber":"SN-STORM-1","displayName":"Stan iPhone","platform":"IOS"},
  {"udid":"AMBIG-1","serialNumber":"SN-AMBIG-1","displayName":"Carol iPhone","platform":"IOS"},
  {"udid":"ADMIN-1","serialNumber":"SN-ADMIN-1","displayName":"Adam iPhone","platform":"IOS"},
  {"udid":"RUN-1","serialNumber":"SN-RUN-1","displayName":"Rita iPhone","platform":"IOS"}]' >okta-devices.json
okta_id() { js "d.find(x => x.profile.udid === '$1' || x.profile.serialNumber === '$1').id" <okta-devices.json; }
okta_status() { okta_sim GET /_sim/devices | js "d.find(x => x.id === '$1').status"; }
okta_sim POST /_sim/users '[
  {"login":"alice@example.com","email":"alice@example.com","firstName":"Alice","lastName":"A"},
  {"login":"bob@example.com","email":"bob@example.com","firstName":"Bob","lastName":"B"},
  {"login":"dora@example.com","email":"dora@example.com","firstName":"Dora","lastName":"D"},
  {"login":"stan@example.com","email":"stan@example.com","firstName":"Stan","lastName":"S"},
  {"login":"carol.one","email":"carol@example.com","firstName":"Carol","lastName":"One"},
  {"login":"carol.two","email":"carol@example.com","firstName":"Carol","lastName":"Two"},
  {"login":"adam@example.com","email":"adam@example.com","firstName":"Adam","lastName":"A"},
  {"login":"rita@example.com","email":"rita@example.com","firstName":"Rita","lastName":"R"}]' >/dev/null
entra_sim POST /_sim/users '[{"userPrincipalName":"bob@example.com","mail":"bob@example.com"},
  {"userPrincipalName":"dora@example.com","mail":"dora@example.com"},
  {"userPrincipalName":"stan@example.com","mail":"stan@example.com"},
  {"userPrincipalName":"carol@example.com","mail":"carol@example.com"},
  {"userPrincipalName":"adam@example.com","mail":"adam@example.com"},
  {"userPrincipalName":"rita@example.com","mail":"rita@example.com"}]' >/dev/null
okta_rt=$(okta_sim POST /_sim/sessions '{"login":"alice@example.com"}' | js d.refresh_token)
entra_rt=$(entra_sim POST /_sim/sessions '{"upn":"alice@example.com"}' | js d.refresh_token)
check "an Okta refresh token for alice" test -n "$okta_rt"
check "an Entra refresh token for alice" test -n "$entra_rt"
okta_refresh() {  # HTTP status of a refresh with the token
  curl -s -o /dev/null -w '%{http_code}' --cacert ca/ca.pem -d grant_type=refresh_token \
    --data-urlencode "refresh_token=$okta_rt" -d client_id=sim-app "$okta/oauth2/v1/token"
}
entra_refresh() {
  curl -s -o /dev/null -w '%{http_code}' --cacert ca/ca.pem -d grant_type=refresh_token \
    --data-urlencode "refresh_token=$entra_rt" -d client_id=tg-app \
    "$entra/contoso.example/oauth2/v2.0/token"
}
check "the Okta refresh token works before" test "$(okta_refresh)" = 200
check "the Entra refresh token works before" test "$(entra_refresh)" = 200

# ---- the gateway -------------------------------------------------------------------------------
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out caep.key 2>/dev/null
start_server echo echo 0
cat >rules.yaml <<EOF
rule_sets:
  - name: all
    platforms: [ios, android, macos]
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
  ws1:
    base_url: https://127.0.0.1:$uem_port
    tenant_code_file: tenant.code
    auth: {basic: {username: tg-api, password_file: api.pass}}
    ca_file: ca/ca.pem
  webhook: {listen: "127.0.0.1:$hook_port", username: uem, password_file: hook.pass}
dtr: rules.yaml
egress: {address: 127.0.0.2, allow: ["127.0.0.1/32"]}
admin: {listen: "127.0.0.1:$admin_port"}
log: {format: json}
posture_sync:
  retry: {initial: 200ms, max: 1s}
  okta:
    org_url: $okta
    token_file: okta.token
    ca_file: ca/ca.pem
    max_rate_limit_wait: 100ms
  entra:
    tenant: contoso.example
    client_id: tg-app
    client_secret_file: entra.secret
    login_url: $entra
    graph_url: $entra
    ca_file: ca/ca.pem
  caep:
    receiver_url: $okta/security/api/v1/security-events
    issuer: https://tunnelgate.test
    audience: $okta
    private_key: caep.key
    key_id: tg-caep-1
    ca_file: ca/ca.pem
EOF
run "$bin/tunnelgate" --check-config gateway.yaml
expect_rc "--check-config accepts the posture_sync section" 0
"$bin/tunnelgate" gateway.yaml >gw.out 2>&1 &
gw_pid=$!
pids+=($gw_pid)
wait_for 10 grep -q '"event":"started"' gw.out || { echo "gateway did not start"; cat gw.out; exit 1; }

run curl -s "http://127.0.0.1:$admin_port/.well-known/jwks.json"
expect_out_has "the JWKS is served without a token on the admin listener" '"kid":"tg-caep-1"'
run "$bin/tunnelctl" posture-sync jwks --config gateway.yaml
expect_out_has "tunnelctl posture-sync jwks prints the same key" '"kid":"tg-caep-1"'

audit() {  # audit DEVICE ACTION RESULT : an audit line says so
  grep '"event":"posture_sync"' gw.out | grep "\"device\":\"$1\"" | grep "\"action\":\"$2\"" |
    grep -q "\"result\":\"$3\""
}
all_done() {  # all_done DEVICE : the four revocation actions are done
  audit "$1" suspend_device done && audit "$1" clear_sessions done &&
    audit "$1" revoke_sessions done && audit "$1" send_event done
}
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

# ---- the story: compliant → non-compliant → compliant ---------------------------------------
gw_curl POST-1 "http://127.0.0.1:$echo_port/slow?ms=20000" >post.out 2>&1 &
post_curl=$!
check "the device's tunnel is up" wait_for 5 session_up POST-1 "$echo_port"
t0=$(date +%s%N)
run sim POST /_sim/devices/POST-1 '{"ComplianceStatus":"NonCompliant"}'
expect_out_has "uem-sim fired the webhook" '"status":200'
wait "$post_curl"
cut_ms=$(ms "$t0")
check "tunnel closed after the flip (${cut_ms} ms)" test "$cut_ms" -lt 5000
check "all four IdP actions done" wait_for 10 all_done udid:POST-1
all_ms=$(ms "$t0")
post_id=$(okta_id POST-1)
check "the Okta device is SUSPENDED" test "$(okta_status "$post_id")" = SUSPENDED
check "the Okta refresh token is refused" test "$(okta_refresh)" = 400
check "the Entra refresh token is refused" test "$(entra_refresh)" = 400
run okta_sim GET /_sim/security-events
expect_out_has "the SSF receiver verified and recorded the event" '"current_status":"not-compliant"'
expect_out_has "... with Okta's subject shape" '"subject_format":"event"'
expect_out_has "... naming the device" 'POST-1'
audit_line=$(grep '"event":"posture_sync"' gw.out | grep 'udid:POST-1' | grep '"action":"clear_sessions"' | head -1)
check "audit line names the Okta user" grep -qF '"user":"alice@example.com"' <<<"$audit_line"
check "... and the UEM event that caused it" grep -q '"uem_event":"webhook ..Compliance Status Changed' <<<"$audit_line"
check "actions counted" metric_at_least 'tunnelgate_posture_sync_actions_total{provider="okta",action="suspend_device",result="done"}' 1
check "latency observed" metric_at_least 'tunnelgate_posture_sync_action_seconds_count{provider="okta",action="suspend_device"}' 1
# The latency of each action from the webhook's arrival, as the gateway measured it.
for a in suspend_device clear_sessions revoke_sessions send_event; do
  s=$(grep '"event":"posture_sync"' gw.out | grep 'udid:POST-1' | grep "\"action\":\"$a\"" |
    grep '"result":"done"' | head -1 | sed -n 's/.*"seconds":\([0-9.e-]*\).*/\1/p')
  echo "    timing: webhook -> $a done: ${s} s"
  check "$a done within 2 s of the webhook, as the gateway measured it (${s} s)" \
    node -e "process.exit(Number('$s') < 2 ? 0 : 1)"
done
echo "    timing: flip -> tunnel closed ${cut_ms} ms; flip -> every action seen in the log ${all_ms} ms"

run sim POST /_sim/devices/POST-1 '{"ComplianceStatus":"Compliant"}'
check "back to compliant: unsuspended" wait_for 3 audit udid:POST-1 unsuspend_device done
check "... the Okta device is ACTIVE" test "$(okta_status "$post_id")" = ACTIVE
check "... and a compliant event was delivered" wait_for 3 bash -c "curl -sS --cacert ca/ca.pem $okta/_sim/security-events | grep -q '\"current_status\":\"compliant\"'"
check "... sessions are not restored (the Okta token stays refused)" test "$(okta_refresh)" = 400
run gw_curl POST-1 "http://127.0.0.1:$echo_port/"
expect_out "... and the device tunnels again" "peer=127.0.0.2"

# ---- a desktop is found by its serial number (its Okta UDID differs) -------------------------
run sim POST /_sim/devices/DESK-1 '{"ComplianceStatus":"NonCompliant"}'
check "desktop: suspended" wait_for 3 audit udid:DESK-1 suspend_device done
check "... found by its serial number" bash -c "grep '\"event\":\"posture_sync\"' gw.out | grep udid:DESK-1 | grep -q '(serial number SN-DESK-1) suspended'"
check "... SUSPENDED in okta-sim" test "$(okta_status "$(okta_id SN-DESK-1)")" = SUSPENDED

# ---- Okta down during the flip: the tunnel is still cut; the suspend lands later -------------
gw_curl DOWN-1 "http://127.0.0.1:$echo_port/slow?ms=20000" >down.out 2>&1 &
down_curl=$!
check "DOWN-1's tunnel is up" wait_for 5 session_up DOWN-1 "$echo_port"
kill -STOP "$okta_pid"
t0=$(date +%s%N)
run sim POST /_sim/devices/DOWN-1 '{"ComplianceStatus":"NonCompliant"}'
wait "$down_curl"
check "Okta frozen: the tunnel is still closed at once ($(ms "$t0") ms)" test "$(ms "$t0")" -lt 2000
check "Entra is not held up by Okta" wait_for 3 audit udid:DOWN-1 revoke_sessions done
kill -CONT "$okta_pid"
check "Okta back: the suspend lands" wait_for 30 audit udid:DOWN-1 suspend_device done
check "... SUSPENDED in okta-sim" test "$(okta_status "$(okta_id DOWN-1)")" = SUSPENDED

# ---- a 429 storm: retried until it passes ----------------------------------------------------
okta_sim POST /_sim/faults '{"fault":"rate_limit","count":6,"reset_in":1}' >/dev/null
run sim POST /_sim/devices/STORM-1 '{"ComplianceStatus":"NonCompliant"}'
check "429 storm: the suspend is retried, then done" wait_for 20 audit udid:STORM-1 suspend_device done
check "... retries counted" metric_at_least 'tunnelgate_posture_sync_actions_total{provider="okta",action="suspend_device",result="retry"}' 1
okta_sim DELETE /_sim/faults >/dev/null

# ---- mapping problems are reported, never guessed --------------------------------------------
run sim POST /_sim/devices/NOOKTA-1 '{"ComplianceStatus":"NonCompliant"}'
check "unknown Okta device: reported as device_not_found" wait_for 5 audit udid:NOOKTA-1 suspend_device device_not_found
check "... and counted" metric_at_least 'tunnelgate_posture_sync_actions_total{provider="okta",action="suspend_device",result="device_not_found"}' 1
run sim POST /_sim/devices/AMBIG-1 '{"ComplianceStatus":"NonCompliant"}'
check "two Okta users with one e-mail: user_ambiguous" wait_for 5 audit udid:AMBIG-1 clear_sessions user_ambiguous
check "... and not retried" bash -c "! grep '\"event\":\"posture_sync\"' gw.out | grep 'udid:AMBIG-1' | grep clear_sessions | grep -q '\"result\":\"retry\"'"

# ---- a device an administrator suspended stays suspended -------------------------------------
admin_id=$(okta_id ADMIN-1)
curl -sS --cacert ca/ca.pem -X POST -H "Authorization: SSWS okta-api-token-1" \
  "$okta/api/v1/devices/$admin_id/lifecycle/suspend" >/dev/null
run sim POST /_sim/devices/ADMIN-1 '{"ComplianceStatus":"NonCompliant"}'
check "already suspended: not suspended again" wait_for 5 audit udid:ADMIN-1 suspend_device already
run sim POST /_sim/devices/ADMIN-1 '{"ComplianceStatus":"Compliant"}'
check "restore sends the compliant event" wait_for 5 bash -c "grep '\"event\":\"posture_sync\"' gw.out | grep udid:ADMIN-1 | grep send_event | grep -c '\"result\":\"done\"' | grep -q 2"
check "... but leaves the administrator's suspension alone" test "$(okta_status "$admin_id")" = SUSPENDED

# ---- tunnelctl posture-sync apply: one device, once -------------------------------------------
run "$bin/tunnelctl" posture-sync apply --config gateway.yaml --udid ADMIN-1
expect_rc "apply on a compliant, suspended device exits 0" 0
expect_out_has "... unsuspends it (the operator asked)" "unsuspend_device  done"
check "... ACTIVE in okta-sim" test "$(okta_status "$admin_id")" = ACTIVE
run "$bin/tunnelctl" posture-sync apply --config gateway.yaml --udid NOOKTA-1
expect_rc "apply on a device Okta does not know exits 1" 1
expect_out_has "... and says why" "device_not_found"
run "$bin/tunnelctl" posture-sync apply --config gateway.yaml
expect_rc "apply without a device is a usage error" 2

# ---- tunnelctl posture-sync run: the same work on a host of its own --------------------------
kill "$gw_pid"
wait "$gw_pid" 2>/dev/null
"$bin/tunnelctl" posture-sync run --config gateway.yaml 2>run.out &
run_pid=$!
pids+=($run_pid)
check "posture-sync run listens for the UEM's webhook" wait_for 10 grep -q '"event":"posture_sync_running"' run.out
run sim POST /_sim/devices/RUN-1 '{"ComplianceStatus":"NonCompliant"}'
expect_out_has "uem-sim's webhook reached posture-sync run" '"status":200'
run_suspended() { [ "$(okta_status "$(okta_id RUN-1)")" = SUSPENDED ]; }
check "posture-sync run suspended the device" wait_for 10 run_suspended
check "... and audited it" grep -q '"event":"posture_sync".*"device":"udid:RUN-1".*"action":"suspend_device".*"result":"done"' run.out
kill -TERM "$run_pid"
wait "$run_pid"
check "posture-sync run exits 0 on SIGTERM" test $? -eq 0

[ "$fails" -eq 0 ] || { echo "--- posture_sync lines of the gateway:"; grep -E '"event":"posture_sync"|"level":"(warning|error)"' gw.out | tail -40; }
finish
