#!/usr/bin/env bash
# tunnelctl zone / namedlocation: the real tunnelctl against the real okta-sim and entra-sim over
# HTTPS on loopback (a dev CA from `tunnelctl ca init`): output lines, exit codes, what reaches
# the simulators (their /_sim/stats) and what ends up in the zone.
#   tunnelctl_zone_test.sh TUNNELCTL OKTA_SIM ENTRA_SIM
set -u
tctl=$1 okta_sim=$2 entra_sim=$3
. "$(dirname "$0")/lib.sh"
work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() {  # wait_for SECONDS CMD...
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.05
  done
}

# start_sim NAME BINARY ARGS... : sets ${NAME}_port
start_sim() {
  local name=$1 bin=$2
  shift 2
  "$bin" --cert "$work/ca/server.pem" --key "$work/ca/server.key" --port-file "$work/$name.port" \
    "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  wait_for 10 test -s "$work/$name.port" || { echo "$name did not start"; cat "$work/$name.err"; exit 1; }
  printf -v "${name}_port" '%s' "$(cat "$work/$name.port")"
}

# api METHOD URL [CURL ARGS...] : prints the body; the status goes to $work/code
api() {
  local method=$1 url=$2
  shift 2
  curl -sS --cacert "$work/ca/ca.pem" -X "$method" -o "$work/api.body" -w '%{http_code}' "$@" \
    "$url" >"$work/code"
  cat "$work/api.body"
}
jcheck() {  # jcheck DESCRIPTION JSON JQ-EXPRESSION : the expression must be true
  check "$1" test "$(jq -r "$3" <<<"$2" 2>&1)" = true
}

"$tctl" ca init "$work/ca" >/dev/null || { echo "ca init failed"; exit 1; }
CA=(--ca-file "$work/ca/ca.pem")
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/rsa.key" 2>/dev/null
openssl pkey -in "$work/rsa.key" -pubout -out "$work/rsa.pub"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ec.key" 2>/dev/null
openssl pkey -in "$work/ec.key" -pubout -out "$work/ec.pub"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/other.key" 2>/dev/null
printf 'okta-test-token\n' >"$work/token"
printf 'wrong-token\n' >"$work/wrong-token"
CID=0oa-tunnelgate-zone-test

start_sim okta "$okta_sim" --state "$work/zones.json" --token-file "$work/token" \
  --client-id "$CID" --client-public-key "$work/rsa.pub" --client-public-key "$work/ec.pub"
O="https://127.0.0.1:$okta_port"
SSWS=(-H 'Authorization: SSWS okta-test-token')
JSON=(-H 'Content-Type: application/json')
zp=("$tctl" zone publish --okta "$O" --token-file "$work/token" "${CA[@]}")
zv=("$tctl" zone verify --okta "$O" --token-file "$work/token" "${CA[@]}")
reset_stats() { api DELETE "$1/_sim/stats" >/dev/null; }
stat_count() { api GET "$1/_sim/stats" | jq -r --arg k "$2" '.requests[$k] // 0'; }
zone_json() { api GET "$O/api/v1/zones/$1" "${SSWS[@]}"; }

# ---- usage ------------------------------------------------------------------------------------
run "${zp[@]}" --zone egress
expect_rc "no address" 2
expect_err_has "no address" "--address or --config"
run "${zp[@]}" --zone egress --address 127.0.0.300
expect_rc "bad address" 2
expect_err_has "bad address" "'127.0.0.300': not an IPv4 or IPv6 address"
run "${zp[@]}" --zone egress --address 127.0.0.2 --client-id x --private-key "$work/rsa.key"
expect_rc "two auth methods" 2
expect_err_has "two auth methods" "exactly one way to authenticate"
run "$tctl" zone publish --okta "http://127.0.0.1:$okta_port" --zone egress --token-file "$work/token" --address 127.0.0.2
expect_rc "http url" 2
expect_err_has "http url" "is not an https:// URL"

# ---- a missing zone, --dry-run and --create ----------------------------------------------------
run "${zp[@]}" --zone egress --address 127.0.0.2
expect_rc "missing zone without --create" 1
expect_err_has "missing zone" 'no zone in '"$O"' has the id or name "egress"'
expect_err_has "missing zone hint" "pass --create"
reset_stats "$O"
run "${zp[@]}" --zone egress --address 127.0.0.2 --create --dry-run
expect_rc "create dry-run" 0
expect_out "create dry-run" '+ 127.0.0.2/32
zone "egress" (new): --dry-run: would be created with 1 entries (nothing written)'
check "create dry-run: no POST" test "$(stat_count "$O" "POST /api/v1/zones")" = 0
check "create dry-run: no zone" test "$(api GET "$O/_sim/zones" | jq length)" = 0

run "${zp[@]}" --zone egress --address 127.0.0.2 --create
expect_rc "create" 0
Z=$(api GET "$O/_sim/zones" | jq -r '.[] | select(.name == "egress") | .id')
expect_out "create" "+ 127.0.0.2/32
zone \"egress\" ($Z): created with 1 entries"
z=$(zone_json "$Z")
jcheck "created zone shape" "$z" '.type == "IP" and .status == "ACTIVE" and .usage == "POLICY" and .gateways == [{"type":"CIDR","value":"127.0.0.2/32"}]'

# The login check of the simulator now lets 127.0.0.2 in (the point of all this).
check "login from 127.0.0.2 allowed" test "$(api GET "$O/login" --interface 127.0.0.2 | jq -r .status)" = SUCCESS
api GET "$O/login" --interface 127.0.0.3 >/dev/null
check "login from 127.0.0.3 refused" test "$(cat "$work/code")" = 403

# ---- idempotence -------------------------------------------------------------------------------
reset_stats "$O"
run "${zp[@]}" --zone egress --address 127.0.0.2
expect_rc "second run" 0
expect_out "second run" "= 127.0.0.2/32
zone \"egress\" ($Z): no change"
check "second run: no PUT" test "$(stat_count "$O" "PUT /api/v1/zones/$Z")" = 0
run "${zp[@]}" --zone "$Z" --address 127.0.0.2
expect_rc "by id" 0
expect_out_has "by id" "zone \"egress\" ($Z): no change"
check "by id: GET by id" test "$(stat_count "$O" "GET /api/v1/zones/$Z")" -ge 1
check "no PUT at all" test "$(stat_count "$O" "PUT /api/v1/zones/$Z")" = 0

# ---- merge vs --exclusive, fields sent back unchanged -------------------------------------------
S=$(api POST "$O/api/v1/zones" "${SSWS[@]}" "${JSON[@]}" -d '{"type":"IP","name":"shared","status":"ACTIVE","usage":"POLICY",
  "gateways":[{"type":"CIDR","value":"10.9.9.9/32"},{"type":"RANGE","value":"10.0.0.1-10.0.0.5"}],
  "proxies":[{"type":"CIDR","value":"198.51.100.0/24"}],"asns":["64500"],"locations":[{"country":"DE","region":null}]}' | jq -r .id)
check "shared zone created through the API" test -n "$S"
run "${zp[@]}" --zone shared --address 127.0.0.2 --address ::1
expect_rc "merge" 0
expect_out "merge" "+ 127.0.0.2/32
+ ::1/128
zone \"shared\" ($S): updated: 2 added, 0 removed"
z=$(zone_json "$S")
jcheck "merge keeps what it does not own" "$z" '.gateways == [{"type":"CIDR","value":"10.9.9.9/32"},{"type":"RANGE","value":"10.0.0.1-10.0.0.5"},{"type":"CIDR","value":"127.0.0.2/32"},{"type":"CIDR","value":"::1/128"}]'
jcheck "merge sends other fields back unchanged" "$z" '.proxies == [{"type":"CIDR","value":"198.51.100.0/24"}] and .asns == ["64500"] and .locations == [{"country":"DE","region":null}] and .name == "shared" and .usage == "POLICY"'

reset_stats "$O"
run "${zp[@]}" --zone shared --address 127.0.0.2 --address ::1 --exclusive --dry-run
expect_rc "exclusive dry-run" 0
expect_out "exclusive dry-run" "= 127.0.0.2/32
= ::1/128
- 10.9.9.9/32
- 10.0.0.1-10.0.0.5
zone \"shared\" ($S): --dry-run: would be updated: 0 added, 2 removed (nothing written)"
check "exclusive dry-run: no PUT" test "$(stat_count "$O" "PUT /api/v1/zones/$S")" = 0
jcheck "exclusive dry-run: zone unchanged" "$(zone_json "$S")" '.gateways | length == 4'

run "${zp[@]}" --zone shared --address 127.0.0.2 --address ::1 --exclusive
expect_rc "exclusive" 0
expect_out_has "exclusive" "zone \"shared\" ($S): updated: 0 added, 2 removed"
z=$(zone_json "$S")
jcheck "exclusive leaves only the owned gateways" "$z" '.gateways == [{"type":"CIDR","value":"127.0.0.2/32"},{"type":"CIDR","value":"::1/128"}]'
jcheck "exclusive never touches proxies" "$z" '.proxies == [{"type":"CIDR","value":"198.51.100.0/24"}] and .asns == ["64500"]'
run "${zp[@]}" --zone shared --address 127.0.0.2 --address ::1 --exclusive
expect_out_has "exclusive again" "zone \"shared\" ($S): no change"

# ---- the 150-entry limit: refused before writing ------------------------------------------------
gws=$(for i in $(seq 1 149); do printf '{"type":"CIDR","value":"10.1.%d.%d/32"},' $((i / 200)) $((i % 200 + 1)); done)
F=$(api POST "$O/api/v1/zones" "${SSWS[@]}" "${JSON[@]}" -d "{\"type\":\"IP\",\"name\":\"full\",\"status\":\"ACTIVE\",\"usage\":\"POLICY\",
  \"gateways\":[${gws%,}],\"proxies\":[{\"type\":\"CIDR\",\"value\":\"198.51.100.0/24\"}]}" | jq -r .id)
check "full zone (150 entries) created" test -n "$F"
reset_stats "$O"
run "${zp[@]}" --zone full --address 127.0.0.2
expect_rc "151 entries refused" 1
expect_err_has "151 entries refused" "zone \"full\" ($F) would have 151 entries (gateways + proxies); Okta allows at most 150: nothing written"
check "151 entries: no PUT" test "$(stat_count "$O" "PUT /api/v1/zones/$F")" = 0
jcheck "151 entries: zone unchanged" "$(zone_json "$F")" '(.gateways | length) == 149'

# ---- verify -----------------------------------------------------------------------------------
run "${zv[@]}" --zone egress --address 127.0.0.2
expect_rc "verify ok" 0
expect_out "verify ok" "ok: 127.0.0.2 in zone \"egress\" ($Z)"
run "${zv[@]}" --zone egress --address 127.0.0.2 --address 127.0.0.3
expect_rc "verify one missing" 1
expect_out "verify one missing" "ok: 127.0.0.2 in zone \"egress\" ($Z)
missing: 127.0.0.3 not in ACTIVE zone \"egress\" ($Z)"
# Someone removes the address through the API: verify fails.
api PUT "$O/api/v1/zones/$Z" "${SSWS[@]}" "${JSON[@]}" -d '{"type":"IP","name":"egress","status":"ACTIVE","usage":"POLICY","gateways":[{"type":"CIDR","value":"10.9.9.9/32"}]}' >/dev/null
check "address removed through the API" test "$(cat "$work/code")" = 200
run "${zv[@]}" --zone egress --address 127.0.0.2
expect_rc "verify after removal" 1
expect_out "verify after removal" "missing: 127.0.0.2 not in ACTIVE zone \"egress\" ($Z)"
# A RANGE (or wider CIDR) that contains the address is enough for verify...
api PUT "$O/api/v1/zones/$Z" "${SSWS[@]}" "${JSON[@]}" -d '{"type":"IP","name":"egress","status":"ACTIVE","usage":"POLICY","gateways":[{"type":"RANGE","value":"127.0.0.1-127.0.0.5"},{"type":"CIDR","value":"2001:db8::/64"}]}' >/dev/null
run "${zv[@]}" --zone egress --address 127.0.0.2 --address 2001:db8::7
expect_rc "verify RANGE and v6 CIDR containment" 0
expect_out "verify RANGE containment" "ok: 127.0.0.2 in zone \"egress\" ($Z)
ok: 2001:db8::7 in zone \"egress\" ($Z)"
# ...but publish still adds its own /32, so removing the range cannot drop the gateway.
run "${zp[@]}" --zone egress --address 127.0.0.2
expect_out_has "range is not ownership" "+ 127.0.0.2/32"
# INACTIVE: verify fails, publish refuses and writes nothing.
api POST "$O/api/v1/zones/$Z/lifecycle/deactivate" "${SSWS[@]}" >/dev/null
run "${zv[@]}" --zone egress --address 127.0.0.2
expect_rc "verify INACTIVE" 1
expect_out "verify INACTIVE" "missing: 127.0.0.2 not in ACTIVE zone \"egress\" ($Z)"
expect_err_has "verify INACTIVE" "zone \"egress\" ($Z) is INACTIVE"
run "${zp[@]}" --zone egress --address 127.0.0.9
expect_rc "publish INACTIVE" 1
expect_err_has "publish INACTIVE" "zone \"egress\" ($Z) is INACTIVE: publishing never changes a zone's status"
api POST "$O/api/v1/zones/$Z/lifecycle/activate" "${SSWS[@]}" >/dev/null
run "${zv[@]}" --zone nosuchzone --address 127.0.0.2
expect_rc "verify missing zone" 1
expect_err_has "verify missing zone" 'has the id or name "nosuchzone"'

# ---- --config: egress.address from the gateway's YAML -------------------------------------------
printf 'listen: ["127.0.0.1:8443"]\negress:\n  address: [127.0.0.2, "2001:db8::7"]\n' >"$work/gw.yaml"
run "${zv[@]}" --zone egress --config "$work/gw.yaml"
expect_rc "config list" 0
expect_out "config list" "ok: 127.0.0.2 in zone \"egress\" ($Z)
ok: 2001:db8::7 in zone \"egress\" ($Z)"
printf 'egress: {address: 127.0.0.9}\n' >"$work/gw1.yaml"
run "${zv[@]}" --zone egress --config "$work/gw1.yaml"
expect_rc "config scalar" 1
expect_out "config scalar" "missing: 127.0.0.9 not in ACTIVE zone \"egress\" ($Z)"
printf 'listen: ["127.0.0.1:8443"]\n' >"$work/gw2.yaml"
run "${zv[@]}" --zone egress --config "$work/gw2.yaml"
expect_rc "config without egress" 2
expect_err_has "config without egress" "gw2.yaml: egress.address: missing"
printf 'egress:\n  address: [127.0.0.2, nope]\n' >"$work/gw3.yaml"
run "${zv[@]}" --zone egress --config "$work/gw3.yaml"
expect_rc "config bad address" 2
expect_err_has "config bad address" "gw3.yaml:2: egress.address: 'nope' is not an IPv4 or IPv6 address"

# ---- authentication -----------------------------------------------------------------------------
run "$tctl" zone verify --okta "$O" --token-file "$work/wrong-token" "${CA[@]}" --zone egress --address 127.0.0.2
expect_rc "wrong SSWS token" 2
expect_err_has "wrong SSWS token" "Invalid token provided (HTTP 401 E0000011)"
expect_err_has "wrong SSWS token hint" "check --token-file"
check "the token is never printed" bash -c '! grep -q "wrong-token" <<<"$1"' _ "$err"
oauth=("$tctl" zone publish --okta "$O" --client-id "$CID" "${CA[@]}")
run "${oauth[@]}" --private-key "$work/rsa.key" --zone oauth-rsa --address 127.0.0.2 --create
expect_rc "OAuth RS256 create" 0
expect_out_has "OAuth RS256 create" 'zone "oauth-rsa" (nzo'
run "${oauth[@]}" --private-key "$work/ec.key" --key-id ec-1 --zone oauth-rsa --address 127.0.0.2 --address 127.0.0.4
expect_rc "OAuth ES256 update" 0
expect_out_has "OAuth ES256 update" "+ 127.0.0.4/32"
expect_out_has "OAuth ES256 update" "updated: 1 added, 0 removed"
run "$tctl" zone verify --okta "$O" --client-id "$CID" "${CA[@]}" --private-key "$work/ec.key" --zone oauth-rsa --address 127.0.0.4
expect_rc "OAuth ES256 verify" 0
run "${oauth[@]}" --private-key "$work/other.key" --zone oauth-rsa --address 127.0.0.2
expect_rc "OAuth unknown key" 2
expect_err_has "OAuth unknown key" "getting an OAuth token from $O/oauth2/v1/token:"
expect_err_has "OAuth unknown key" "invalid_client)"
run "${oauth[@]}" --private-key "$work/rsa.key" --scope okta.networkZones.read --zone oauth-rsa --address 127.0.0.9
expect_rc "OAuth read-only scope cannot write" 2
expect_err_has "OAuth read-only scope" "(HTTP 403 E0000006)"
run "${oauth[@]}" --private-key "$work/nokey.pem" --zone oauth-rsa --address 127.0.0.2
expect_rc "OAuth missing key file" 2
expect_err_has "OAuth missing key file" "nokey.pem"

# ---- rate limits --------------------------------------------------------------------------------
api POST "$O/_sim/faults" "${JSON[@]}" -d '{"fault":"rate_limit","count":2,"reset_in":1}' >/dev/null
start=$SECONDS
run "${zv[@]}" --zone egress --address 127.0.0.2
expect_rc "rate limited, then success" 0
expect_err_has "rate limited, then success" "rate limited (HTTP 429); waiting"
check "rate limit: waited for the reset" test $((SECONDS - start)) -ge 1
api POST "$O/_sim/faults" "${JSON[@]}" -d '{"fault":"rate_limit","count":1,"reset_in":1}' >/dev/null
run "${oauth[@]}" --private-key "$work/rsa.key" --zone oauth-rsa --address 127.0.0.2
expect_rc "rate limit at the token endpoint" 0
api POST "$O/_sim/faults" "${JSON[@]}" -d '{"fault":"rate_limit","count":5,"reset_in":30}' >/dev/null
start=$SECONDS
run "${zv[@]}" --zone egress --address 127.0.0.2 --max-wait 5
expect_rc "rate limit: giving up" 2
expect_err_has "rate limit: giving up" "API call exceeded rate limit due to too many requests. (HTTP 429 E0000047); gave up"
expect_err_has "rate limit: giving up hint" "raise --max-wait"
check "rate limit: gave up at once" test $((SECONDS - start)) -lt 5
api DELETE "$O/_sim/faults" >/dev/null
api POST "$O/_sim/faults" "${JSON[@]}" -d '{"fault":"status","status":500,"count":1}' >/dev/null
run "${zv[@]}" --zone egress --address 127.0.0.2
expect_rc "HTTP 500" 2
expect_err_has "HTTP 500" "(HTTP 500"
api POST "$O/_sim/faults" "${JSON[@]}" -d '{"fault":"garbage","count":1}' >/dev/null
run "${zv[@]}" --zone egress --address 127.0.0.2
expect_rc "garbage answer" 2
expect_err_has "garbage answer" "not a JSON"
api DELETE "$O/_sim/faults" >/dev/null

# ---- TLS ----------------------------------------------------------------------------------------
run "$tctl" zone verify --okta "$O" --token-file "$work/token" --zone egress --address 127.0.0.2
expect_rc "TLS without --ca-file" 2
expect_err_has "TLS without --ca-file" "certificate verify failed"
expect_err_has "TLS without --ca-file hint" "pass --ca-file"
run "$tctl" zone verify --okta "https://localhost:$okta_port" --token-file "$work/token" "${CA[@]}" --zone egress --address 127.0.0.2
expect_rc "TLS by host name" 0
run "$tctl" zone verify --okta "https://127.0.0.1:1" --token-file "$work/token" "${CA[@]}" --zone egress --address 127.0.0.2
expect_rc "nothing listening" 2
expect_err_has "nothing listening" "Connection refused"

# ---- Entra named location -----------------------------------------------------------------------
TENANT=11111111-2222-3333-4444-555555555555
APP=22222222-3333-4444-5555-666666666666
printf 's3cret~value\n' >"$work/secret"
printf 'wrong~value\n' >"$work/wrong-secret"
start_sim entra "$entra_sim" --state "$work/locations.json" --tenant "$TENANT" --client-id "$APP" \
  --client-secret-file "$work/secret"
E="https://127.0.0.1:$entra_port"
nl=(--tenant "$TENANT" --client-id "$APP" --client-secret-file "$work/secret" --login-url "$E"
  --graph-url "$E" "${CA[@]}")
np=("$tctl" namedlocation publish "${nl[@]}")
nv=("$tctl" namedlocation verify "${nl[@]}")
graph_token() {
  api POST "$E/$TENANT/oauth2/v2.0/token" --data-urlencode grant_type=client_credentials \
    --data-urlencode "client_id=$APP" --data-urlencode "client_secret=s3cret~value" \
    --data-urlencode scope=https://graph.microsoft.com/.default | jq -r .access_token
}
GA=(-H "Authorization: Bearer $(graph_token)")
NLP="$E/v1.0/identity/conditionalAccess/namedLocations"

run "${np[@]}" --location "WS1 Tunnel egress" --address 127.0.0.2
expect_rc "entra missing without --create" 1
expect_err_has "entra missing" 'has the id or name "WS1 Tunnel egress"; check the name or id, or pass --create'
run "${np[@]}" --location "WS1 Tunnel egress" --address 127.0.0.2 --address 2001:db8::2 --create
expect_rc "entra create" 0
L=$(api GET "$E/_sim/locations" | jq -r '.[] | select(.displayName == "WS1 Tunnel egress") | .id')
expect_out "entra create" "+ 127.0.0.2/32
+ 2001:db8::2/128
named location \"WS1 Tunnel egress\" ($L): created with 2 entries"
loc=$(api GET "$NLP/$L" "${GA[@]}")
jcheck "entra created location" "$loc" '.["@odata.type"] == "#microsoft.graph.ipNamedLocation" and .isTrusted == true and .ipRanges == [{"@odata.type":"#microsoft.graph.iPv4CidrRange","cidrAddress":"127.0.0.2/32"},{"@odata.type":"#microsoft.graph.iPv6CidrRange","cidrAddress":"2001:db8::2/128"}]'
reset_stats "$E"
run "${np[@]}" --location "WS1 Tunnel egress" --address 127.0.0.2 --address 2001:db8::2
expect_rc "entra second run" 0
expect_out "entra second run" "= 127.0.0.2/32
= 2001:db8::2/128
named location \"WS1 Tunnel egress\" ($L): no change"
check "entra second run: no PATCH" test "$(stat_count "$E" "PATCH /v1.0/identity/conditionalAccess/namedLocations/$L")" = 0
run "${nv[@]}" --location "$L" --address 127.0.0.2
expect_rc "entra verify by id" 0
expect_out "entra verify by id" "ok: 127.0.0.2 in named location \"WS1 Tunnel egress\" ($L)"

# Someone adds a range through Graph; merge keeps it, --exclusive removes it.
api PATCH "$NLP/$L" "${GA[@]}" "${JSON[@]}" -d '{"@odata.type":"#microsoft.graph.ipNamedLocation","ipRanges":[{"@odata.type":"#microsoft.graph.iPv4CidrRange","cidrAddress":"10.9.0.0/16"}]}' >/dev/null
check "range replaced through Graph" test "$(cat "$work/code")" = 204
run "${nv[@]}" --location "WS1 Tunnel egress" --address 127.0.0.2
expect_rc "entra verify after removal" 1
expect_out "entra verify after removal" "missing: 127.0.0.2 not in trusted named location \"WS1 Tunnel egress\" ($L)"
run "${np[@]}" --location "WS1 Tunnel egress" --address 127.0.0.2
expect_rc "entra merge" 0
expect_out_has "entra merge" "updated: 1 added, 0 removed"
jcheck "entra merge keeps the other range" "$(api GET "$NLP/$L" "${GA[@]}")" '[.ipRanges[].cidrAddress] == ["10.9.0.0/16","127.0.0.2/32"] and .isTrusted == true and .displayName == "WS1 Tunnel egress"'
run "${np[@]}" --location "WS1 Tunnel egress" --address 127.0.0.2 --exclusive --dry-run
expect_out "entra exclusive dry-run" "= 127.0.0.2/32
- 10.9.0.0/16
named location \"WS1 Tunnel egress\" ($L): --dry-run: would be updated: 0 added, 1 removed (nothing written)"
run "${np[@]}" --location "WS1 Tunnel egress" --address 127.0.0.2 --exclusive
expect_rc "entra exclusive" 0
jcheck "entra exclusive" "$(api GET "$NLP/$L" "${GA[@]}")" '[.ipRanges[].cidrAddress] == ["127.0.0.2/32"]'
run "${nv[@]}" --location "WS1 Tunnel egress" --config "$work/gw.yaml"
expect_rc "entra verify from config" 1
expect_out "entra verify from config" "ok: 127.0.0.2 in named location \"WS1 Tunnel egress\" ($L)
missing: 2001:db8::7 not in trusted named location \"WS1 Tunnel egress\" ($L)"

# An untrusted location: verify fails, publish refuses.
U=$(api POST "$NLP" "${GA[@]}" "${JSON[@]}" -d '{"@odata.type":"#microsoft.graph.ipNamedLocation","displayName":"branch","ipRanges":[{"@odata.type":"#microsoft.graph.iPv4CidrRange","cidrAddress":"127.0.0.0/24"}]}' | jq -r .id)
run "${nv[@]}" --location branch --address 127.0.0.2
expect_rc "entra verify untrusted" 1
expect_err_has "entra verify untrusted" "named location \"branch\" ($U) is untrusted"
run "${np[@]}" --location branch --address 127.0.0.2
expect_rc "entra publish untrusted" 1
expect_err_has "entra publish untrusted" "is not marked trusted"

# Credentials, rate limits.
run "$tctl" namedlocation verify --tenant "$TENANT" --client-id "$APP" --client-secret-file "$work/wrong-secret" \
  --login-url "$E" --graph-url "$E" "${CA[@]}" --location "WS1 Tunnel egress" --address 127.0.0.2
expect_rc "entra wrong secret" 2
expect_err_has "entra wrong secret" "AADSTS7000215: Invalid client secret provided."
expect_err_has "entra wrong secret" "(HTTP 401 invalid_client)"
check "the secret is never printed" bash -c '! grep -q "wrong~value" <<<"$1"' _ "$err"
api POST "$E/_sim/faults" "${JSON[@]}" -d '{"fault":"rate_limit","count":2,"reset_in":1}' >/dev/null
run "${nv[@]}" --location "WS1 Tunnel egress" --address 127.0.0.2
expect_rc "entra rate limited, then success" 0
expect_err_has "entra rate limited" "waiting 1 s"
api POST "$E/_sim/faults" "${JSON[@]}" -d '{"fault":"rate_limit","count":3,"reset_in":20}' >/dev/null
run "${nv[@]}" --location "WS1 Tunnel egress" --address 127.0.0.2 --max-wait 3
expect_rc "entra rate limit: giving up" 2
expect_err_has "entra rate limit: giving up" "(HTTP 429 TooManyRequests); gave up"
api DELETE "$E/_sim/faults" >/dev/null

finish
