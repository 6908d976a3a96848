#!/usr/bin/env bash
# entra-sim: the real binary driven with curl over HTTPS on loopback, answer by answer as the idp
# contract (issue 6) promises: client credentials and their AADSTS errors, Graph named
# locations CRUD and validation, the ROPC login check under Conditional Access (trusted named
# locations), /ip, faults, statistics and persistence across a restart; for posture_sync
# (issue 15) Graph users, refresh tokens, revokeSignInSessions (AADSTS50173 afterwards) and the
# application permissions each call needs.
#   entra_sim_test.sh ENTRA_SIM
set -u
sim=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh"
work=$(mktemp -d)
. "$here/sim_lib.sh"
trap cleanup EXIT

make_pki
TENANT=11111111-2222-3333-4444-555555555555
APP=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
printf 's3cret~value\n' >"$work/secret"
printf 'alice-pw\n' >"$work/alice.pw"
printf 'bob pw\n' >"$work/bob.pw"
start_sim entra "$sim" --state "$work/locations.json" --tenant "$TENANT" --client-id "$APP" \
  --client-secret-file "$work/secret" --user alice@contoso.example --user-password-file "$work/alice.pw" \
  --user bob@contoso.example --user-password-file "$work/bob.pw"
B="https://127.0.0.1:$entra_port"
NL="$B/v1.0/identity/conditionalAccess/namedLocations"
JSON=(-H 'Content-Type: application/json')
check "listening line" grep -qxF "entra-sim listening on $B" "$work/entra.out"

# ---- /ip ------------------------------------------------------------------------------------
http GET "$B/ip" --interface 127.0.0.3
expect_code "ip" 200
check "ip body" test "$body" = "127.0.0.3"
http GET "$B/ip" -H 'Accept: application/json'
expect_json "ip json" 'd.ip === "127.0.0.1"'

# ---- client credentials ---------------------------------------------------------------------
cc() {  # cc [TENANT [CLIENT_ID [SECRET [SCOPE]]]] ; "-" leaves the field out
  local args=(--data-urlencode grant_type=client_credentials)
  [ "${2:-$APP}" != - ] && args+=(--data-urlencode "client_id=${2:-$APP}")
  [ "${3:-s3cret~value}" != - ] && args+=(--data-urlencode "client_secret=${3:-s3cret~value}")
  args+=(--data-urlencode "scope=${4:-https://graph.microsoft.com/.default}")
  http POST "$B/${1:-$TENANT}/oauth2/v2.0/token" "${args[@]}" "${extra[@]}"
}
extra=()
aad() {  # aad ERROR CODE : the token endpoint's error shape
  printf 'd.error === "%s" && d.error_description.startsWith("AADSTS%s: ") && JSON.stringify(d.error_codes) === "[%s]" && /^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$/.test(d.timestamp) && /^[0-9a-f-]{36}$/.test(d.trace_id) && /^[0-9a-f-]{36}$/.test(d.correlation_id) && d.error_uri === "https://login.microsoftonline.com/error?code=%s"' "$1" "$2" "$2" "$2"
}
cc
expect_code "client credentials" 200
expect_json "token body" 'd.token_type === "Bearer" && d.expires_in === 3599 && d.ext_expires_in === 3599 && d.access_token.length > 20'
TOKEN=$(jget d.access_token)
AUTH=(-H "Authorization: Bearer $TOKEN")
cc "$TENANT" "$APP" wrong-secret
expect_code "wrong secret" 401
expect_json "wrong secret body" "$(aad invalid_client 7000215) && d.error_description.startsWith('AADSTS7000215: Invalid client secret provided.')"
cc 99999999-0000-0000-0000-000000000000
expect_code "unknown tenant" 400
expect_json "unknown tenant body" "$(aad invalid_request 90002) && d.error_description.includes('99999999-0000-0000-0000-000000000000')"
cc "$TENANT" 00000000-0000-0000-0000-00000000dead
expect_code "unknown app" 400
expect_json "unknown app body" "$(aad unauthorized_client 700016) && d.error_description.includes('00000000-0000-0000-0000-00000000dead')"
cc "$TENANT" "$APP" s3cret~value "https://graph.microsoft.com/Policy.Read.All"
expect_code "wrong scope" 400
expect_json "wrong scope body" "$(aad invalid_scope 1002012)"
cc "$TENANT" "$APP" -
expect_code "no secret" 401
expect_json "no secret body" "$(aad invalid_client 7000218)"
http POST "$B/$TENANT/oauth2/v2.0/token" --data-urlencode grant_type=device_code --data-urlencode "client_id=$APP"
expect_code "unsupported grant" 400
expect_json "unsupported grant body" "$(aad unsupported_grant_type 70003)"

# ---- Graph authentication -------------------------------------------------------------------
graph_err() {  # graph_err CODE : Graph's error shape
  printf 'd.error.code === "%s" && typeof d.error.message === "string" && /^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$/.test(d.error.innerError.date) && /^[0-9a-f-]{36}$/.test(d.error.innerError["request-id"]) && typeof d.error.innerError["client-request-id"] === "string"' "$1"
}
http GET "$NL"
expect_code "graph without token" 401
expect_json "graph without token body" "$(graph_err InvalidAuthenticationToken)"
check "WWW-Authenticate: Bearer" grep -qi '^www-authenticate: Bearer' <<<"$hdrs"
http GET "$NL" -H 'Authorization: Bearer forged' -H 'client-request-id: 0f0f0f0f-1111-2222-3333-444444444444'
expect_code "graph with unknown token" 401
expect_json "unknown token body" "$(graph_err InvalidAuthenticationToken) && d.error.innerError['client-request-id'] === '0f0f0f0f-1111-2222-3333-444444444444'"
http GET "$NL" "${AUTH[@]}"
expect_code "list empty" 200
expect_json "list empty body" 'd["@odata.context"] === "https://graph.microsoft.com/v1.0/$metadata#identity/conditionalAccess/namedLocations" && Array.isArray(d.value) && d.value.length === 0'

# ---- ROPC login check before any location --------------------------------------------------
ropc() {  # ropc USER PASSWORD [CURL ARGS...]
  local u=$1 p=$2
  shift 2
  http POST "$B/$TENANT/oauth2/v2.0/token" --data-urlencode grant_type=password \
    --data-urlencode "client_id=$APP" --data-urlencode "username=$u" --data-urlencode "password=$p" \
    --data-urlencode scope=openid "$@"
}
ropc alice@contoso.example alice-pw --interface 127.0.0.2
expect_code "ROPC without trusted locations" 400
expect_json "ROPC blocked body" "$(aad invalid_grant 53003) && d.error_description.startsWith('AADSTS53003: Access has been blocked by Conditional Access policies.')"

# ---- create --------------------------------------------------------------------------------
http POST "$NL" "${AUTH[@]}" "${JSON[@]}" -d '{"@odata.type":"#microsoft.graph.ipNamedLocation","displayName":"WS1 Tunnel egress","isTrusted":true,
  "ipRanges":[{"@odata.type":"#microsoft.graph.iPv4CidrRange","cidrAddress":"127.0.0.2/32"},{"@odata.type":"#microsoft.graph.iPv6CidrRange","cidrAddress":"2001:db8::/48"}]}'
expect_code "create trusted location" 201
expect_json "created location" 'd["@odata.type"] === "#microsoft.graph.ipNamedLocation" && /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(d.id) && d.displayName === "WS1 Tunnel egress" && d.isTrusted === true && d.ipRanges.length === 2 && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/.test(d.createdDateTime) && d.modifiedDateTime === d.createdDateTime'
L1=$(jget d.id)
created1=$(jget d.createdDateTime)
check "Location header" test "$(header Location)" = "https://graph.microsoft.com/v1.0/identity/conditionalAccess/namedLocations/$L1"
http POST "$NL" "${AUTH[@]}" "${JSON[@]}" -d "{\"@odata.type\":\"#microsoft.graph.ipNamedLocation\",\"displayName\":\"O'Brien branch\",
  \"ipRanges\":[{\"@odata.type\":\"#microsoft.graph.iPv4CidrRange\",\"cidrAddress\":\"127.0.0.0/30\"}]}"
expect_code "create untrusted location" 201
expect_json "isTrusted defaults to false" 'd.isTrusted === false'
L2=$(jget d.id)

# ---- ROPC login check: Conditional Access on trusted locations ------------------------------
ropc alice@contoso.example alice-pw --interface 127.0.0.2
expect_code "ROPC from the trusted location" 200
expect_json "ROPC token" 'd.token_type === "Bearer" && d.access_token.length > 20 && d.expires_in === 3599'
USER_TOKEN=$(jget d.access_token)
ropc ALICE@contoso.example alice-pw --interface 127.0.0.2
expect_code "UPN is case-insensitive" 200
ropc "bob@contoso.example" "bob pw" --interface 127.0.0.2
expect_code "second user" 200
ropc alice@contoso.example alice-pw --interface 127.0.0.3
expect_code "ROPC from an untrusted location" 400
expect_json "ROPC 53003" "$(aad invalid_grant 53003)"
ropc alice@contoso.example alice-pw
expect_code "ROPC from elsewhere" 400
expect_json "ROPC elsewhere 53003" "$(aad invalid_grant 53003)"
ropc alice@contoso.example wrong --interface 127.0.0.2
expect_code "wrong password" 400
expect_json "wrong password 50126" "$(aad invalid_grant 50126)"
ropc alice@contoso.example wrong --interface 127.0.0.3
expect_json "wrong password checked before Conditional Access" "$(aad invalid_grant 50126)"
ropc mallory@contoso.example x --interface 127.0.0.2
expect_code "unknown user" 400
expect_json "unknown user 50034" "$(aad invalid_grant 50034)"
http GET "$NL" -H "Authorization: Bearer $USER_TOKEN"
expect_code "a user's ROPC token is not a Graph app token" 401

# ---- list, filter, get ---------------------------------------------------------------------
http GET "$NL" "${AUTH[@]}"
expect_json "list two" "d.value.length === 2 && d.value[0].id === '$L1' && d.value[0]['@odata.type'] === '#microsoft.graph.ipNamedLocation'"
http GET "$NL" "${AUTH[@]}" --get --data-urlencode "\$filter=displayName eq 'WS1 Tunnel egress'"
expect_code "filter" 200
expect_json "filter result" "d.value.length === 1 && d.value[0].id === '$L1'"
http GET "$NL" "${AUTH[@]}" --get --data-urlencode "\$filter=displayName eq 'O''Brien branch'"
expect_json "filter with a quoted quote" "d.value.length === 1 && d.value[0].id === '$L2'"
http GET "$NL" "${AUTH[@]}" --get --data-urlencode "\$filter=displayName eq 'nothing'"
expect_json "filter no match" 'd.value.length === 0'
http GET "$NL" "${AUTH[@]}" --get --data-urlencode "\$filter=startswith(displayName,'WS1')"
expect_code "unsupported filter" 400
expect_json "unsupported filter body" "$(graph_err BadRequest)"
http GET "$NL/$L1" "${AUTH[@]}"
expect_code "get" 200
expect_json "get body" "d.id === '$L1' && d.isTrusted === true && d['@odata.context'].endsWith('namedLocations/\$entity')"
http GET "$NL/00000000-0000-0000-0000-000000000000" "${AUTH[@]}"
expect_code "unknown id" 404
expect_json "unknown id body" "$(graph_err ResourceNotFound)"

# ---- validation --------------------------------------------------------------------------------
post_bad() {  # post_bad DESCRIPTION BODY (from a file: 2001 ranges exceed one argument's limit)
  printf '%s' "$2" >"$work/req.json"
  http POST "$NL" "${AUTH[@]}" "${JSON[@]}" --data-binary @"$work/req.json"
  expect_code "$1" 400
  expect_json "$1 body" "$(graph_err BadRequest)"
}
post_bad "POST without @odata.type" '{"displayName":"x","ipRanges":[{"@odata.type":"#microsoft.graph.iPv4CidrRange","cidrAddress":"10.0.0.0/8"}]}'
post_bad "not a CIDR" '{"@odata.type":"#microsoft.graph.ipNamedLocation","displayName":"x","ipRanges":[{"@odata.type":"#microsoft.graph.iPv4CidrRange","cidrAddress":"10.0.0.1-10.0.0.9"}]}'
post_bad "bare address" '{"@odata.type":"#microsoft.graph.ipNamedLocation","displayName":"x","ipRanges":[{"@odata.type":"#microsoft.graph.iPv4CidrRange","cidrAddress":"10.0.0.1"}]}'
post_bad "v4 CIDR typed as v6" '{"@odata.type":"#microsoft.graph.ipNamedLocation","displayName":"x","ipRanges":[{"@odata.type":"#microsoft.graph.iPv6CidrRange","cidrAddress":"10.0.0.0/8"}]}'
post_bad "v6 CIDR typed as v4" '{"@odata.type":"#microsoft.graph.ipNamedLocation","displayName":"x","ipRanges":[{"@odata.type":"#microsoft.graph.iPv4CidrRange","cidrAddress":"2001:db8::/32"}]}'
post_bad "range without type" '{"@odata.type":"#microsoft.graph.ipNamedLocation","displayName":"x","ipRanges":[{"cidrAddress":"10.0.0.0/8"}]}'
post_bad "no ranges" '{"@odata.type":"#microsoft.graph.ipNamedLocation","displayName":"x","ipRanges":[]}'
post_bad "no displayName" '{"@odata.type":"#microsoft.graph.ipNamedLocation","ipRanges":[{"@odata.type":"#microsoft.graph.iPv4CidrRange","cidrAddress":"10.0.0.0/8"}]}'
post_bad "country location" '{"@odata.type":"#microsoft.graph.countryNamedLocation","displayName":"x","countriesAndRegions":["DE"]}'
post_bad "not JSON" '{nope'
ranges() {  # ranges N : N IPv4 /32 ranges
  local i s=
  for ((i = 0; i < $1; i++)); do s+="${s:+,}{\"@odata.type\":\"#microsoft.graph.iPv4CidrRange\",\"cidrAddress\":\"10.$((i / 65536)).$((i / 256 % 256)).$((i % 256))/32\"}"; done
  printf '%s' "$s"
}
printf '{"@odata.type":"#microsoft.graph.ipNamedLocation","displayName":"big","ipRanges":[%s]}' "$(ranges 2000)" >"$work/req.json"
http POST "$NL" "${AUTH[@]}" "${JSON[@]}" --data-binary @"$work/req.json"
expect_code "2000 ranges" 201
BIG=$(jget d.id)
post_bad "2001 ranges" "{\"@odata.type\":\"#microsoft.graph.ipNamedLocation\",\"displayName\":\"bigger\",\"ipRanges\":[$(ranges 2001)]}"

# ---- PATCH ------------------------------------------------------------------------------------
http PATCH "$NL/$L2" "${AUTH[@]}" "${JSON[@]}" -d '{"isTrusted":true}'
expect_code "PATCH without @odata.type" 400
expect_json "PATCH without @odata.type body" "$(graph_err BadRequest)"
http PATCH "$NL/$L2" "${AUTH[@]}" "${JSON[@]}" -d '{"@odata.type":"#microsoft.graph.ipNamedLocation","ipRanges":[{"@odata.type":"#microsoft.graph.iPv4CidrRange","cidrAddress":"999.0.0.0/8"}]}'
expect_code "PATCH with a bad range" 400
sleep 0.01
http PATCH "$NL/$L2" "${AUTH[@]}" "${JSON[@]}" -d '{"@odata.type":"#microsoft.graph.ipNamedLocation","isTrusted":true}'
expect_code "PATCH isTrusted" 204
check "PATCH: empty body" test -z "$body"
ropc alice@contoso.example alice-pw --interface 127.0.0.3
expect_code "ROPC from a location now trusted" 200
http PATCH "$NL/$L2" "${AUTH[@]}" "${JSON[@]}" -d '{"@odata.type":"#microsoft.graph.ipNamedLocation","displayName":"renamed","ipRanges":[{"@odata.type":"#microsoft.graph.iPv6CidrRange","cidrAddress":"::1/128"}]}'
expect_code "PATCH ranges" 204
http GET "$NL/$L2" "${AUTH[@]}"
expect_json "PATCH applied" "d.displayName === 'renamed' && d.isTrusted === true && d.ipRanges.length === 1 && d.ipRanges[0].cidrAddress === '::1/128' && d.modifiedDateTime !== d.createdDateTime"
ropc alice@contoso.example alice-pw --interface 127.0.0.3
expect_code "ROPC after its range moved away" 400
http PATCH "$NL/00000000-0000-0000-0000-000000000000" "${AUTH[@]}" "${JSON[@]}" -d '{"@odata.type":"#microsoft.graph.ipNamedLocation","isTrusted":false}'
expect_code "PATCH unknown id" 404
expect_json "PATCH unknown id body" "$(graph_err ResourceNotFound)"

# ---- DELETE ------------------------------------------------------------------------------------
http DELETE "$NL/$BIG" "${AUTH[@]}"
expect_code "delete" 204
http GET "$NL/$BIG" "${AUTH[@]}"
expect_code "deleted location gone" 404
http DELETE "$NL/$BIG" "${AUTH[@]}"
expect_code "delete again" 404

# ---- faults and tokens ---------------------------------------------------------------------
http POST "$B/_sim/faults" -d '{"fault":"rate_limit","count":2,"reset_in":7}'
expect_code "set rate_limit fault" 200
http GET "$NL" "${AUTH[@]}"
expect_code "graph rate limited" 429
expect_json "graph 429 body" "$(graph_err TooManyRequests)"
check "Retry-After: 7" test "$(header Retry-After)" = 7
cc
expect_code "token endpoint rate limited" 429
check "token 429 Retry-After" test "$(header Retry-After)" = 7
http GET "$NL" "${AUTH[@]}"
expect_code "fault used up" 200
http POST "$B/_sim/faults" -d '{"fault":"status","status":503,"count":1}'
http GET "$B/ip"
expect_code "/ip is not faulted" 200
http GET "$NL" "${AUTH[@]}"
expect_code "status fault" 503
expect_json "status fault body" "$(graph_err ServiceUnavailable)"
http POST "$B/_sim/faults" -d '{"fault":"garbage","count":1}'
http GET "$NL" "${AUTH[@]}"
expect_code "garbage fault" 200
check "garbage is not JSON" bash -c '! node -e "JSON.parse(process.argv[1])" "$1" 2>/dev/null' _ "$body"
http GET "$B/_sim/faults"
expect_json "fault cleared after count" 'd.fault === "none"'
http POST "$B/_sim/tokens/revoke"
expect_code "revoke" 200
http GET "$NL" "${AUTH[@]}"
expect_code "revoked token" 401
expect_json "revoked token body" "$(graph_err InvalidAuthenticationToken)"

# ---- stats, raw locations ------------------------------------------------------------------
http GET "$B/_sim/stats"
expect_json "stats" "d.requests['GET /v1.0/identity/conditionalAccess/namedLocations'] >= 5 && d.requests['POST /$TENANT/oauth2/v2.0/token'] >= 10 && d.total > 40"
http DELETE "$B/_sim/stats"
expect_json "stats reset" 'd.total === 0'
http GET "$B/_sim/locations"
expect_json "raw locations" "d.length === 2 && d[0].id === '$L1'"

# ---- posture_sync (issue 15): users, refresh tokens, revokeSignInSessions ------------------
cc
TOKEN=$(jget d.access_token)
AUTH=(-H "Authorization: Bearer $TOKEN")
check "app token is a JWT whose roles are the default app permissions" node -e '
  const p = JSON.parse(Buffer.from(process.argv[1].split(".")[1], "base64url"));
  const want = ["Policy.Read.All", "Policy.ReadWrite.ConditionalAccess", "User.Read.All", "User.RevokeSessions.All"];
  if (JSON.stringify(p.roles) !== JSON.stringify(want) || p.tid !== process.argv[2] || p.appid !== process.argv[3]) process.exit(1)' "$TOKEN" "$TENANT" "$APP"
U="$B/v1.0/users"
http GET "$U/alice@contoso.example" "${AUTH[@]}"
expect_code "a --user exists in Graph" 200
expect_json "user body" 'd["@odata.context"] === "https://graph.microsoft.com/v1.0/$metadata#users/$entity" && /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(d.id) && d.userPrincipalName === "alice@contoso.example" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(d.signInSessionsValidFromDateTime) && "mail" in d && "displayName" in d'
ALICE=$(jget d.id)
valid0=$(jget d.signInSessionsValidFromDateTime)
http GET "$U/ALICE%40Contoso.example" "${AUTH[@]}"
expect_json "UPN lookup is case-insensitive and percent-decoded" "d.id === '$ALICE'"
http GET "$U/$ALICE" "${AUTH[@]}" --get --data-urlencode '$select=signInSessionsValidFromDateTime'
expect_json "by id, with \$select" "d.id === '$ALICE' && d.signInSessionsValidFromDateTime === '$valid0' && !('userPrincipalName' in d)"
http POST "$B/_sim/users" "${JSON[@]}" -d '[{"userPrincipalName":"dave@contoso.example","mail":"dave@contoso.example","displayName":"Dave D"},{"userPrincipalName":"erin@contoso.example"}]'
expect_code "seed users" 200
expect_json "seeded users" 'd.length === 2 && /^[0-9a-f-]{36}$/.test(d[0].id) && d[0].displayName === "Dave D" && d[1].mail === null'
DAVE=$(jget 'd[0].id')
http POST "$B/_sim/users" "${JSON[@]}" -d '[{"userPrincipalName":"Dave@contoso.example"}]'
expect_code "duplicate UPN" 400
http GET "$U/$DAVE" "${AUTH[@]}"
expect_json "seeded user by id" "d.userPrincipalName === 'dave@contoso.example' && d.mail === 'dave@contoso.example'"
http GET "$U/nobody@contoso.example" "${AUTH[@]}"
expect_code "unknown user" 404
expect_json "unknown user body" "$(graph_err Request_ResourceNotFound) && d.error.message === \"Resource 'nobody@contoso.example' does not exist or one of its queried reference-property objects are not present.\""
http GET "$B/_sim/users"
expect_json "raw users" 'd.length === 4'

# ROPC with offline_access returns a refresh token; the refresh_token grant redeems it
ropc alice@contoso.example alice-pw --interface 127.0.0.2 --data-urlencode 'scope=openid offline_access'
expect_code "ROPC with offline_access" 200
expect_json "ROPC refresh token" 'd.refresh_token.length > 20 && d.scope === "openid offline_access"'
R_ROPC=$(jget d.refresh_token)
ropc alice@contoso.example alice-pw --interface 127.0.0.2
expect_json "no offline_access, no refresh token" '!("refresh_token" in d)'
rt() { http POST "$B/$TENANT/oauth2/v2.0/token" --data-urlencode grant_type=refresh_token --data-urlencode "client_id=$APP" --data-urlencode "refresh_token=$1"; }
rt "$R_ROPC"
expect_code "refresh_token grant" 200
expect_json "refresh_token grant body" "d.token_type === 'Bearer' && d.access_token.length > 20 && d.refresh_token.length > 20 && d.refresh_token !== '$R_ROPC' && d.expires_in === 3599"
R_CHAIN=$(jget d.refresh_token)
http POST "$B/_sim/sessions" "${JSON[@]}" -d '{"upn":"alice@contoso.example"}'
expect_code "session shortcut" 200
R_BEFORE=$(jget d.refresh_token)
http POST "$B/_sim/sessions" "${JSON[@]}" -d '{"upn":"dave@contoso.example"}'
R_DAVE=$(jget d.refresh_token)
http POST "$B/_sim/sessions" "${JSON[@]}" -d '{"upn":"zed@contoso.example"}'
expect_code "session shortcut, unknown user" 404
rt nonsense
expect_code "unknown refresh token" 400
expect_json "unknown refresh token body" "$(aad invalid_grant 9002313)"
rt "$R_BEFORE"
expect_code "refresh token before the revoke works" 200

# revoke: every refresh token from an earlier sign-in dies, even one issued within the second
http POST "$B/_sim/sessions" "${JSON[@]}" -d '{"upn":"alice@contoso.example"}'
R_SAME=$(jget d.refresh_token)
http POST "$U/alice@contoso.example/revokeSignInSessions" "${AUTH[@]}"
expect_code "revokeSignInSessions" 200
expect_json "revoke body" 'd["@odata.context"] === "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean" && d.value === true && Object.keys(d).length === 2'
revoked="$(aad invalid_grant 50173) && d.error_description.startsWith('AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed.')"
for r in R_ROPC R_CHAIN R_BEFORE R_SAME; do
  rt "${!r}"
  expect_code "after the revoke: $r" 400
  expect_json "after the revoke: $r body" "$revoked"
done
rt "$R_DAVE"
expect_code "another user's refresh token is untouched" 200
http POST "$B/_sim/sessions" "${JSON[@]}" -d '{"upn":"alice@contoso.example"}'
rt "$(jget d.refresh_token)"
expect_code "a refresh token from a later sign-in works" 200
ropc alice@contoso.example alice-pw --interface 127.0.0.2 --data-urlencode 'scope=openid offline_access'
rt "$(jget d.refresh_token)"
expect_code "a later ROPC sign-in works" 200
http GET "$U/$ALICE" "${AUTH[@]}"
check "signInSessionsValidFromDateTime moved ($valid0 -> $(jget d.signInSessionsValidFromDateTime))" test "$(jget d.signInSessionsValidFromDateTime)" \> "$valid0" -o "$(jget d.signInSessionsValidFromDateTime)" = "$valid0"
http POST "$U/$DAVE/revokeSignInSessions" "${AUTH[@]}"
expect_code "revoke by id" 200
rt "$R_DAVE"
expect_code "revoke by id takes effect" 400
http POST "$U/nobody@contoso.example/revokeSignInSessions" "${AUTH[@]}"
expect_code "revoke unknown user" 404
expect_json "revoke unknown user body" "$(graph_err Request_ResourceNotFound)"
http GET "$U/$ALICE/revokeSignInSessions" "${AUTH[@]}"
expect_code "revoke needs POST" 405
http POST "$U/$ALICE/revokeSignInSessions" -H "Authorization: Bearer $USER_TOKEN"
expect_code "a user's token cannot revoke" 401

# application permissions: a second instance with fewer roles
start_sim entra2 "$sim" --tenant "$TENANT" --client-id "$APP" --client-secret-file "$work/secret" \
  --user alice@contoso.example --user-password-file "$work/alice.pw" --app-permission Policy.Read.All
B2="https://127.0.0.1:$entra2_port"
http POST "$B2/$TENANT/oauth2/v2.0/token" --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$APP" \
  --data-urlencode client_secret=s3cret~value --data-urlencode scope=https://graph.microsoft.com/.default
AUTH2=(-H "Authorization: Bearer $(jget d.access_token)")
denied_graph="$(graph_err Authorization_RequestDenied) && d.error.message === 'Insufficient privileges to complete the operation.'"
http POST "$B2/v1.0/users/alice@contoso.example/revokeSignInSessions" "${AUTH2[@]}"
expect_code "revoke without User.RevokeSessions.All" 403
expect_json "revoke without permission body" "$denied_graph"
http GET "$B2/v1.0/users/alice@contoso.example" "${AUTH2[@]}"
expect_code "read user without User.Read.All" 403
http GET "$B2/v1.0/identity/conditionalAccess/namedLocations" "${AUTH2[@]}"
expect_code "Policy.Read.All reads named locations" 200
http POST "$B2/v1.0/identity/conditionalAccess/namedLocations" "${AUTH2[@]}" "${JSON[@]}" -d '{"@odata.type":"#microsoft.graph.ipNamedLocation","displayName":"x","ipRanges":[{"@odata.type":"#microsoft.graph.iPv4CidrRange","cidrAddress":"10.0.0.0/8"}]}'
expect_code "Policy.Read.All cannot write named locations" 403
expect_json "write without permission body" "$denied_graph"
stop_sim entra2
start_sim entra3 "$sim" --tenant "$TENANT" --client-id "$APP" --client-secret-file "$work/secret" \
  --user alice@contoso.example --user-password-file "$work/alice.pw" --app-permission User.ReadWrite.All
B3="https://127.0.0.1:$entra3_port"
http POST "$B3/$TENANT/oauth2/v2.0/token" --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$APP" \
  --data-urlencode client_secret=s3cret~value --data-urlencode scope=https://graph.microsoft.com/.default
AUTH3=(-H "Authorization: Bearer $(jget d.access_token)")
http POST "$B3/v1.0/users/alice@contoso.example/revokeSignInSessions" "${AUTH3[@]}"
expect_code "User.ReadWrite.All may revoke" 200
http GET "$B3/v1.0/identity/conditionalAccess/namedLocations" "${AUTH3[@]}"
expect_code "User.ReadWrite.All cannot read named locations" 403
stop_sim entra3

# faults apply to the new endpoints
http POST "$B/_sim/faults" -d '{"fault":"status","status":503,"count":2}'
http POST "$U/$ALICE/revokeSignInSessions" "${AUTH[@]}"
expect_code "revoke faulted" 503
rt "$R_DAVE"
expect_code "refresh grant faulted" 503
http GET "$B/_sim/faults"
expect_json "fault used up" 'd.fault === "none"'

# ---- persistence across a restart --------------------------------------------------------
stop_sim entra
check "SIGTERM exits 0" test "$rc" -eq 0
check "state file is a JSON array of 2 locations" node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1])); if (d.length !== 2) process.exit(1)' "$work/locations.json"
start_sim entra "$sim" --state "$work/locations.json" --tenant "$TENANT" --client-id "$APP" \
  --client-secret-file "$work/secret" --user alice@contoso.example --user-password-file "$work/alice.pw"
B="https://127.0.0.1:$entra_port"
NL="$B/v1.0/identity/conditionalAccess/namedLocations"
cc
TOKEN=$(jget d.access_token)
http GET "$NL/$L1" -H "Authorization: Bearer $TOKEN"
expect_code "location after restart" 200
expect_json "location after restart body" "d.displayName === 'WS1 Tunnel egress' && d.createdDateTime === '$created1' && d.ipRanges[1].cidrAddress === '2001:db8::/48'"
ropc alice@contoso.example alice-pw --interface 127.0.0.2
expect_code "ROPC after restart" 200
ropc bob@contoso.example "bob pw" --interface 127.0.0.2
expect_code "users come from the command line" 400

# ---- bad command lines ---------------------------------------------------------------------
run "$sim" --cert "$work/server.pem" --key "$work/server.key" --tenant t --client-id c
expect_rc "missing --client-secret-file" 2
expect_err_has "missing option named" "client-secret-file"
run "$sim" --cert "$work/server.pem" --key "$work/server.key" --tenant t --client-id c \
  --client-secret-file "$work/secret" --user u
expect_rc "--user without password file" 2

finish
