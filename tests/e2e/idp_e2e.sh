#!/usr/bin/env bash
# End-to-end: the daemon keeps its egress address in the Okta zone (okta-sim) and the Entra
# named location (entra-sim), detects and repairs drift, reports the state in /readyz and
# /metrics, checks what address the outside world sees (egress.check_url), and the whole story:
# a compliant device logs in through the tunnel (seen from the egress address, allowed by the
# zone), the same login sent directly is refused by the identity provider.
#   idp_e2e.sh BIN_DIR
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh"
. "$here/e2e_lib.sh"
e2e_setup  # $work (removed at exit unless KEEP_WORK=1), $pids (killed at exit)

"$bin/tunnelctl" ca init ca >/dev/null
"$bin/tunnelctl" ca issue ca --udid GOOD-1 --user good@example.com --serial SN-1 >/dev/null
"$bin/tunnelctl" ca issue ca --udid BAD-1 --user bad@example.com --serial SN-2 >/dev/null
cat >devices.json <<'EOF'
[{"Udid":"GOOD-1","SerialNumber":"SN-1","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":false},
 {"Udid":"BAD-1","SerialNumber":"SN-2","Platform":"Apple","EnrollmentStatus":"Enrolled","ComplianceStatus":"NonCompliant","CompromisedStatus":false}]
EOF
cat >rules.yaml <<'EOF'
rule_sets:
  - name: ios
    platforms: [ios]
    mode: full-device
    default: block
    rules:
      - action: tunnel
        destinations: ["127.0.0.1"]
EOF

# ---- the identity providers -----------------------------------------------------------------
echo "okta-api-token-1" >okta.token
echo "wrong-token" >wrong.token
"$bin/okta-sim" --cert ca/server.pem --key ca/server.key --listen 127.0.0.1:0 --port-file okta.port \
  --state zones.json --token-file okta.token >okta.out 2>&1 &
pids+=($!)
echo "entra-secret" >entra.secret
echo "user-password" >user.pass
"$bin/entra-sim" --cert ca/server.pem --key ca/server.key --listen 127.0.0.1:0 --port-file entra.port \
  --state locations.json --tenant contoso.example --client-id tg-app --client-secret-file entra.secret \
  --user alice@contoso.example --user-password-file user.pass >entra.out 2>&1 &
pids+=($!)
wait_for 10 test -s okta.port || { echo "okta-sim did not start"; cat okta.out; exit 1; }
wait_for 10 test -s entra.port || { echo "entra-sim did not start"; cat entra.out; exit 1; }
okta_port=$(cat okta.port) entra_port=$(cat entra.port)
okta="https://127.0.0.1:$okta_port" entra="https://127.0.0.1:$entra_port"
okta_api() {  # okta_api METHOD PATH [JSON]
  curl -sS --cacert ca/ca.pem -X "$1" -H "Authorization: SSWS okta-api-token-1" \
    -H 'Content-Type: application/json' -H 'Accept: application/json' ${3:+-d "$3"} "$okta$2"
}
zone_json() { curl -sS --cacert ca/ca.pem "$okta/_sim/zones"; }
locations_json() { curl -sS --cacert ca/ca.pem "$entra/_sim/locations"; }
# A zone someone else also uses: an office range the gateway must leave alone.
run okta_api POST /api/v1/zones '{"type":"IP","name":"Corporate egress","status":"ACTIVE","usage":"POLICY","gateways":[{"type":"CIDR","value":"198.51.100.0/24"}],"proxies":null}'
zone_id=$(node -e 'console.log(JSON.parse(process.argv[1]).id)' "$out")
check "zone created in okta-sim" test -n "$zone_id"

gw_port=$(free_port)
admin_port=$(free_port)
config() {  # config OKTA_TOKEN_FILE PUBLISH [CHECK_URL]
  cat >gateway.yaml <<EOF
listen: ["127.0.0.1:$gw_port"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem}
uem: {source: file, file: devices.json}
dtr: rules.yaml
egress: {address: 127.0.0.2, check_url: "${3:-$okta/ip}", check_ca: ca/ca.pem, allow: ["127.0.0.1/32"]}
admin: {listen: "127.0.0.1:$admin_port"}
log: {format: json}
idp_sync:
  interval: 1s
  publish: $2
  create: true
  okta: {org_url: "$okta", zone: "Corporate egress", token_file: $1, ca_file: ca/ca.pem, timeout: 3s}
  entra:
    tenant: contoso.example
    location: tunnelgate egress
    client_id: tg-app
    client_secret_file: entra.secret
    login_url: "$entra"
    graph_url: "$entra"
    ca_file: ca/ca.pem
    timeout: 3s
EOF
}
config okta.token true
run "$bin/tunnelgate" --check-config gateway.yaml
expect_rc "check-config with idp_sync" 0

"$bin/tunnelgate" gateway.yaml >gw.out 2>&1 &
gw_pid=$!
pids+=($gw_pid)
wait_for 10 grep -q '"event":"started"' gw.out || { echo "gateway did not start"; cat gw.out; exit 1; }

state_is() { metric_is "tunnelgate_idp_zone_state{provider=\"$1\",state=\"$2\"}" 1; }
check "okta: in_zone after the start-up publish" wait_for 10 state_is okta in_zone
check "entra: in_zone after creating the named location" wait_for 10 state_is entra in_zone
check "zone holds the egress address" bash -c "curl -sS --cacert ca/ca.pem $okta/_sim/zones | grep -q '127.0.0.2/32'"
check "the office range someone else owns is kept" bash -c "curl -sS --cacert ca/ca.pem $okta/_sim/zones | grep -q '198.51.100.0/24'"
check "named location created, trusted, with the address" bash -c "curl -sS --cacert ca/ca.pem $entra/_sim/locations | grep -q '127.0.0.2/32'"
check "publish logged with its diff" grep -q '"event":"idp_published","target":"okta".*"changes":"+127.0.0.2/32"' gw.out
check "egress check: the outside sees the egress address" wait_for 5 metric_is 'tunnelgate_egress_check_state{state="match"}' 1
run curl -s "http://127.0.0.1:$admin_port/readyz"
expect_out_has "readyz: ready" "ready"
expect_out_has "readyz names the okta zone state" 'okta: in_zone (127.0.0.2 in zone "Corporate egress"'
expect_out_has "readyz names the entra state" "entra: in_zone"
expect_out_has "readyz names the egress check" "egress_check: match"
check "last sync time exported" bash -c "[ \"\$(curl -s http://127.0.0.1:$admin_port/metrics | sed -n 's/^tunnelgate_idp_last_sync_timestamp_seconds{provider=\"okta\"} \\([0-9]*\\).*/\\1/p')\" -gt 1700000000 ]"

# ---- the story: login through the tunnel vs. directly ---------------------------------------
run gw_curl GOOD-1 --cacert ca/ca.pem "$okta/login"
expect_out_has "Okta login through the tunnel: allowed" '"status":"SUCCESS"'
expect_out_has "... seen from the egress address" '"ip":"127.0.0.2"'
run curl -sS --cacert ca/ca.pem "$okta/login"
expect_out_has "the same login sent directly: refused by the zone policy" '"errorCode":"E0000006"'
check "the non-compliant device never reaches the login host" test "$(reason_of BAD-1 "$okta/login" --cacert ca/ca.pem)" = noncompliant
ropc="grant_type=password&client_id=tg-app&username=alice@contoso.example&password=user-password&scope=openid"
run gw_curl GOOD-1 --cacert ca/ca.pem -d "$ropc" "$entra/contoso.example/oauth2/v2.0/token"
expect_out_has "Entra sign-in through the tunnel: token issued" '"access_token"'
run curl -sS --cacert ca/ca.pem -d "$ropc" "$entra/contoso.example/oauth2/v2.0/token"
expect_out_has "Entra sign-in sent directly: blocked by Conditional Access" "AADSTS53003"

# ---- drift: someone removes the address; the gateway notices and repairs it ------------------
zone=$(okta_api GET "/api/v1/zones/$zone_id")
stripped=$(node -e 'const z=JSON.parse(process.argv[1]);z.gateways=z.gateways.filter(g=>g.value!=="127.0.0.2/32");console.log(JSON.stringify(z))' "$zone")
run okta_api PUT "/api/v1/zones/$zone_id" "$stripped"
# (The PUT's answer is the zone as written: the daemon may repair it within a second.)
check "address removed from the zone by hand" bash -c "! grep -q '127.0.0.2/32' <<<\"\$0\"" "$out"
check "drift logged as an error" wait_for 5 grep -q '"event":"idp_drift","target":"okta".*"missing":"127.0.0.2".*"action":"repairing"' gw.out
check "drift counted" wait_for 5 metric_is 'tunnelgate_idp_drift_total{provider="okta"}' 1
check "drift repaired: the address is back" wait_for 5 bash -c "curl -sS --cacert ca/ca.pem $okta/_sim/zones | grep -q '127.0.0.2/32'"
check "back in_zone" wait_for 5 state_is okta in_zone
check "the office range survived the repair" bash -c "curl -sS --cacert ca/ca.pem $okta/_sim/zones | grep -q '198.51.100.0/24'"

# ---- verify only (publish: false): drift is reported, not repaired, and blocks readiness ----
config okta.token false
kill -HUP "$gw_pid"
check "reloaded" wait_for 5 grep -q '"event":"reloaded"' gw.out
sleep 1  # let a sync round still running with the old configuration (publish: true) end
zone=$(okta_api GET "/api/v1/zones/$zone_id")
stripped=$(node -e 'const z=JSON.parse(process.argv[1]);z.gateways=z.gateways.filter(g=>g.value!=="127.0.0.2/32");console.log(JSON.stringify(z))' "$zone")
run okta_api PUT "/api/v1/zones/$zone_id" "$stripped"
check "publish: false -> missing" wait_for 5 state_is okta missing
check "drift logged without repair" grep -q '"event":"idp_drift","target":"okta".*"action":"none' gw.out
check "not repaired" bash -c "! curl -sS --cacert ca/ca.pem $okta/_sim/zones | grep -q '127.0.0.2/32'"
run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/readyz"
expect_out "readyz 503 while the address is missing" 503
run curl -s "http://127.0.0.1:$admin_port/readyz"
expect_out_has "readyz says what is missing" "okta: missing (missing 127.0.0.2"
run curl -sS --cacert ca/ca.pem "$okta/ip"
run gw_curl GOOD-1 --cacert ca/ca.pem "$okta/login"
expect_out_has "login through the tunnel now refused: the zone really matters" '"errorCode":"E0000006"'

# ---- errors: a wrong token, a check URL that sees another address ---------------------------
start_server fixedip ip 0 198.51.100.7
config wrong.token true "http://127.0.0.1:$fixedip_port/"
kill -HUP "$gw_pid"
check "wrong token -> error state" wait_for 5 state_is okta error
check "the IdP's error text logged" grep -q '"event":"idp_sync_failed","target":"okta".*Invalid token provided' gw.out
check "egress check mismatch" wait_for 5 metric_is 'tunnelgate_egress_check_state{state="mismatch"}' 1
check "mismatch logged" grep -q '"event":"egress_mismatch".*"seen":"198.51.100.7".*"egress":"127.0.0.2"' gw.out
run curl -s "http://127.0.0.1:$admin_port/readyz"
expect_out_has "readyz reports the mismatch" "sees 198.51.100.7, not the egress address 127.0.0.2"

finish
