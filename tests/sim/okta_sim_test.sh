#!/usr/bin/env bash
# okta-sim: the real binary driven with curl over HTTPS on loopback, answer by answer as the idp
# contract (issue 6) promises: zones CRUD and validation, SSWS and private_key_jwt (RS256, ES256)
# authentication, the login check against CIDR/RANGE/IPv6 zones and BLOCKLIST, /ip, faults,
# statistics and persistence across a restart; and for posture_sync (issue 15): devices with a
# lagging search index and their lifecycle, users, sessions and refresh tokens, scopes, and the
# SSF receiver (both subject shapes, every refusal, key rotation, JWKS by file/http/https).
#   okta_sim_test.sh OKTA_SIM
set -u
sim=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cli/lib.sh"
work=$(mktemp -d)
. "$here/sim_lib.sh"
trap cleanup EXIT

make_pki
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/rsa.key" 2>/dev/null
openssl pkey -in "$work/rsa.key" -pubout -out "$work/rsa.pub"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ec.key" 2>/dev/null
openssl pkey -in "$work/ec.key" -pubout -out "$work/ec.pub"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/other.key" 2>/dev/null
printf 'first-token\nssws-token-2\n' >"$work/tokens"
CID=0oa-tunnelgate-test

start_sim okta "$sim" --state "$work/zones.json" --token-file "$work/tokens" --client-id "$CID" \
  --client-public-key "$work/rsa.pub" --client-public-key "$work/ec.pub"
B="https://127.0.0.1:$okta_port"
SSWS=(-H 'Authorization: SSWS ssws-token-2')
JSON=(-H 'Content-Type: application/json' -H 'Accept: application/json')
check "listening line" grep -qxF "okta-sim listening on $B" "$work/okta.out"

# ---- /ip ------------------------------------------------------------------------------------
http GET "$B/ip"
expect_code "ip text" 200
check "ip text body" test "$body" = "127.0.0.1"
check "ip text content type" grep -qi '^content-type: text/plain' <<<"$hdrs"
http GET "$B/ip" -H 'Accept: application/json' --interface 127.0.0.2
expect_json "ip json from 127.0.0.2" 'd.ip === "127.0.0.2"'

# ---- authentication failures ------------------------------------------------------------------
invalid_token='d.errorCode === "E0000011" && d.errorSummary === "Invalid token provided" && d.errorLink === "E0000011" && /^oae\w+$/.test(d.errorId) && Array.isArray(d.errorCauses) && d.errorCauses.length === 0'
http GET "$B/api/v1/zones"
expect_code "no auth" 401
expect_json "no auth body" "$invalid_token"
check "rate-limit headers on every API answer" test -n "$(header X-Rate-Limit-Limit)" -a -n "$(header X-Rate-Limit-Remaining)" -a "$(header X-Rate-Limit-Reset)" -gt "$(date +%s)"
http GET "$B/api/v1/zones" -H 'Authorization: SSWS wrong'
expect_code "wrong SSWS" 401
expect_json "wrong SSWS body" "$invalid_token"
http GET "$B/api/v1/zones" -H 'Authorization: Bearer nope'
expect_code "unknown bearer" 401
expect_json "unknown bearer body" "$invalid_token"
http GET "$B/api/v1/zones" -H 'Authorization: SSWS first-token'
expect_code "first token of the file" 200
expect_json "no zones yet" 'Array.isArray(d) && d.length === 0'

# ---- login check before any zone ------------------------------------------------------------
denied='d.errorCode === "E0000006" && d.errorSummary === "You do not have permission to perform the requested action" && d.errorLink === "E0000006" && typeof d.errorId === "string" && d.errorCauses.length === 0'
http GET "$B/login"
expect_code "login without zones" 403
expect_json "login without zones body" "$denied"

# ---- create --------------------------------------------------------------------------------
http POST "$B/api/v1/zones" "${SSWS[@]}" "${JSON[@]}" -d '{"type":"IP","name":"WS1 Tunnel egress","usage":"POLICY",
  "gateways":[{"type":"CIDR","value":"127.0.0.2/32"},{"type":"RANGE","value":"127.0.0.10-127.0.0.20"},{"type":"CIDR","value":"2001:db8::/32"}],
  "proxies":[{"type":"CIDR","value":"198.51.100.0/24"}],"asns":["AS64500"],"locations":[{"country":"DE","region":null}]}'
expect_code "create policy zone" 200
expect_json "created zone" 'd.type === "IP" && /^nzo[0-9A-Za-z]{17}$/.test(d.id) && d.status === "ACTIVE" && d.usage === "POLICY" && d.system === false && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(d.created) && d.lastUpdated === d.created && d.gateways.length === 3 && d.proxies.length === 1 && d._links.self.href.endsWith("/api/v1/zones/" + d.id) && d._links.deactivate.href.endsWith("/lifecycle/deactivate")'
expect_json "unknown fields kept" 'd.asns[0] === "AS64500" && d.locations[0].country === "DE"'
A=$(jget d.id)
created_a=$(jget d.created)

# ---- login check: CIDR, RANGE, other addresses ---------------------------------------------
http GET "$B/login" --interface 127.0.0.2
expect_code "login from CIDR member" 200
expect_json "login success body" 'd.status === "SUCCESS" && d.ip === "127.0.0.2"'
http GET "$B/login" --interface 127.0.0.15
expect_code "login from RANGE member" 200
http GET "$B/login" --interface 127.0.0.20
expect_code "login from RANGE end" 200
http GET "$B/login" --interface 127.0.0.21
expect_code "login just outside RANGE" 403
expect_json "login outside body" "$denied"
http GET "$B/login" --interface 127.0.0.3
expect_code "login from other address" 403

# ---- BLOCKLIST wins over POLICY --------------------------------------------------------------
http POST "$B/api/v1/zones" "${SSWS[@]}" "${JSON[@]}" -d '{"type":"IP","name":"blocked","usage":"BLOCKLIST","gateways":[{"type":"RANGE","value":"127.0.0.15-127.0.0.16"}]}'
expect_code "create blocklist zone" 200
BL=$(jget d.id)
http GET "$B/login" --interface 127.0.0.15
expect_code "blocklisted although in a policy zone" 403
expect_json "blocklisted body" "$denied"
http GET "$B/login" --interface 127.0.0.17
expect_code "policy zone member next to the blocklist" 200
http POST "$B/api/v1/zones/$BL/lifecycle/deactivate" "${SSWS[@]}"
expect_code "deactivate blocklist" 200
expect_json "deactivated" 'd.status === "INACTIVE" && d._links.activate.href.endsWith("/lifecycle/activate")'
http GET "$B/login" --interface 127.0.0.15
expect_code "inactive blocklist ignored" 200

# an INACTIVE policy zone allows nothing
http POST "$B/api/v1/zones/$A/lifecycle/deactivate" "${SSWS[@]}"
http GET "$B/login" --interface 127.0.0.2
expect_code "inactive policy zone" 403
http POST "$B/api/v1/zones/$A/lifecycle/activate" "${SSWS[@]}"
expect_code "activate" 200
expect_json "activated" 'd.status === "ACTIVE"'
http GET "$B/login" --interface 127.0.0.2
expect_code "active again" 200

# ---- list, filter, limit, get, 404 ----------------------------------------------------------
http GET "$B/api/v1/zones" "${SSWS[@]}"
expect_json "list both" 'd.length === 2'
http GET "$B/api/v1/zones" "${SSWS[@]}" --get --data-urlencode 'filter=usage eq "BLOCKLIST"'
expect_code "filter usage" 200
expect_json "filter usage result" "d.length === 1 && d[0].id === '$BL'"
http GET "$B/api/v1/zones" "${SSWS[@]}" --get --data-urlencode "filter=id eq \"$A\""
expect_json "filter id" "d.length === 1 && d[0].id === '$A'"
http GET "$B/api/v1/zones" "${SSWS[@]}" --get --data-urlencode "filter=id eq \"$A\" or id eq \"$BL\"" --data-urlencode limit=1
expect_json "filter or + limit" "d.length === 1 && d[0].id === '$A'"
check "zones: self and next are two separate Link header fields" test "$(grep -ci '^link:' <<<"$hdrs")" = 2
next=$(grep -i '^link:.*rel="next"' <<<"$hdrs" | sed 's/^[^<]*<\([^>]*\)>.*/\1/')
check "zones: next link keeps the filter and names the cursor" grep -q 'after=' <<<"$next"
http GET "$next" "${SSWS[@]}"
expect_json "zones: next page" "d.length === 1 && d[0].id === '$BL'"
check "zones: last page has only a self link" test "$(grep -ci '^link:' <<<"$hdrs")" = 1
http GET "$B/api/v1/zones" "${SSWS[@]}" --get --data-urlencode limit=1 --data-urlencode after=xyz
expect_code "zones: unknown cursor" 400
http GET "$B/api/v1/zones" "${SSWS[@]}" --get --data-urlencode "filter=usage eq \"POLICY\" and id eq \"$BL\""
expect_json "filter and" 'd.length === 0'
http GET "$B/api/v1/zones" "${SSWS[@]}" --get --data-urlencode "filter=usage eq \"BLOCKLIST\" and id eq \"$BL\" or id eq \"$A\""
expect_json "filter and/or" 'd.length === 2'
http GET "$B/api/v1/zones" "${SSWS[@]}" --get --data-urlencode 'filter=name sw "x"'
expect_code "bad filter" 400
expect_json "bad filter body" 'd.errorCode === "E0000031"'
http GET "$B/api/v1/zones/$A" "${SSWS[@]}"
expect_code "get" 200
expect_json "get body" "d.id === '$A' && d.name === 'WS1 Tunnel egress'"
http GET "$B/api/v1/zones/nzoNOSUCHZONE" "${SSWS[@]}"
expect_code "unknown id" 404
expect_json "unknown id body" 'd.errorCode === "E0000007" && d.errorSummary === "Not found: Resource not found: nzoNOSUCHZONE (NetworkZone)" && d.errorLink === "E0000007" && d.errorCauses.length === 0'

# ---- PUT: full replace, unknown fields kept, type cannot change -----------------------------
http PUT "$B/api/v1/zones/$A" "${SSWS[@]}" "${JSON[@]}" -d '{"type":"IP","name":"renamed","usage":"POLICY",
  "gateways":[{"type":"CIDR","value":"127.0.0.2/31"}],"asns":["AS64500"],"locations":[{"country":"DE","region":null}],"futureField":{"x":1}}'
expect_code "put" 200
expect_json "put replaced" "d.id === '$A' && d.name === 'renamed' && d.gateways.length === 1 && d.proxies === null && d.created === '$created_a' && d.status === 'ACTIVE'"
expect_json "put kept unknown fields" 'd.asns[0] === "AS64500" && d.locations[0].country === "DE" && d.futureField.x === 1'
http GET "$B/login" --interface 127.0.0.3
expect_code "login after put (127.0.0.2/31 holds .3)" 200
http GET "$B/login" --interface 127.0.0.15
expect_code "login after put (old RANGE gone)" 403
http PUT "$B/api/v1/zones/$A" "${SSWS[@]}" "${JSON[@]}" -d '{"type":"DYNAMIC","name":"renamed","usage":"POLICY","gateways":[{"type":"CIDR","value":"127.0.0.2/31"}]}'
expect_code "type change" 400
expect_json "type change body" 'd.errorCode === "E0000001" && d.errorSummary === "Api validation failed: type" && d.errorCauses.length === 1 && /^oae/.test(d.errorId)'
http PUT "$B/api/v1/zones/nzoNOSUCHZONE" "${SSWS[@]}" "${JSON[@]}" -d '{"type":"IP","name":"x","gateways":[{"type":"CIDR","value":"10.0.0.0/8"}]}'
expect_code "put unknown id" 404

# ---- validation: limits and bad values --------------------------------------------------------
entries() {  # entries N : N CIDR entries 10.X.Y.0/24
  local i s=
  for ((i = 0; i < $1; i++)); do s+="${s:+,}{\"type\":\"CIDR\",\"value\":\"10.$((i / 256)).$((i % 256)).0/24\"}"; done
  printf '%s' "$s"
}
gw_limit='d.errorCode === "E0000001" && d.errorSummary === "Api validation failed: gateways" && d.errorLink === "E0000001" && /^oae/.test(d.errorId) && d.errorCauses.length === 1 && typeof d.errorCauses[0].errorSummary === "string"'
http POST "$B/api/v1/zones" "${SSWS[@]}" "${JSON[@]}" -d "{\"type\":\"IP\",\"name\":\"z150\",\"gateways\":[$(entries 100)],\"proxies\":[$(entries 50)]}"
expect_code "150 entries" 200
Z150=$(jget d.id)
http POST "$B/api/v1/zones" "${SSWS[@]}" "${JSON[@]}" -d "{\"type\":\"IP\",\"name\":\"z151\",\"gateways\":[$(entries 100)],\"proxies\":[$(entries 51)]}"
expect_code "151 entries" 400
expect_json "151 entries body" "$gw_limit"
http PUT "$B/api/v1/zones/$Z150" "${SSWS[@]}" "${JSON[@]}" -d "{\"type\":\"IP\",\"name\":\"z151\",\"gateways\":[$(entries 151)]}"
expect_code "put 151 entries" 400
http POST "$B/api/v1/zones" "${SSWS[@]}" "${JSON[@]}" -d "{\"type\":\"IP\",\"name\":\"b1000\",\"usage\":\"BLOCKLIST\",\"gateways\":[$(entries 1000)]}"
expect_code "blocklist 1000 entries" 200
B1000=$(jget d.id)
http POST "$B/api/v1/zones" "${SSWS[@]}" "${JSON[@]}" -d "{\"type\":\"IP\",\"name\":\"b1001\",\"usage\":\"BLOCKLIST\",\"gateways\":[$(entries 1001)]}"
expect_code "blocklist 1001 entries" 400
expect_json "blocklist 1001 body" "$gw_limit"
for bad in '{"type":"CIDR","value":"10.0.0.0/33"}' '{"type":"CIDR","value":"10.0.0.1"}' '{"type":"RANGE","value":"10.0.0.9-10.0.0.1"}' \
  '{"type":"RANGE","value":"10.0.0.1-2001:db8::1"}' '{"type":"HOST","value":"10.0.0.1"}' '{"type":"CIDR","value":"not-an-ip/8"}'; do
  http POST "$B/api/v1/zones" "${SSWS[@]}" "${JSON[@]}" -d "{\"type\":\"IP\",\"name\":\"bad\",\"gateways\":[$bad]}"
  expect_code "bad entry $bad" 400
  expect_json "bad entry $bad body" "$gw_limit"
done
http POST "$B/api/v1/zones" "${SSWS[@]}" "${JSON[@]}" -d '{"type":"IP","name":"empty","gateways":[]}'
expect_code "no entries" 400
http POST "$B/api/v1/zones" "${SSWS[@]}" "${JSON[@]}" -d '{"type":"IP","gateways":[{"type":"CIDR","value":"10.0.0.0/8"}]}'
expect_code "no name" 400
expect_json "no name body" 'd.errorSummary === "Api validation failed: name"'
http POST "$B/api/v1/zones" "${SSWS[@]}" "${JSON[@]}" -d '{not json'
expect_code "malformed body" 400
expect_json "malformed body code" 'd.errorCode === "E0000003"'

# ---- DELETE ------------------------------------------------------------------------------------
http DELETE "$B/api/v1/zones/$Z150" "${SSWS[@]}"
expect_code "delete active zone" 400
expect_json "delete active body" 'd.errorCode === "E0000001"'
http POST "$B/api/v1/zones/$Z150/lifecycle/deactivate" "${SSWS[@]}"
http DELETE "$B/api/v1/zones/$Z150" "${SSWS[@]}"
expect_code "delete inactive zone" 204
check "delete: empty body" test -z "$body"
http GET "$B/api/v1/zones/$Z150" "${SSWS[@]}"
expect_code "deleted zone gone" 404
http POST "$B/api/v1/zones/$B1000/lifecycle/deactivate" "${SSWS[@]}"
http DELETE "$B/api/v1/zones/$B1000" "${SSWS[@]}"
expect_code "delete blocklist" 204

# ---- OAuth 2.0 client credentials with private_key_jwt -----------------------------------
AUD="$B/oauth2/v1/token"
claims() {  # claims JTI [EXP_OFFSET [IAT_OFFSET [AUD [ISS]]]]
  local now
  now=$(date +%s)
  printf '{"iss":"%s","sub":"%s","aud":"%s","iat":%d,"exp":%d,"jti":"%s"}' "${5:-$CID}" "${5:-$CID}" \
    "${4:-$AUD}" $((now + ${3:-0})) $((now + ${2:-300})) "$1"
}
token() {  # token ASSERTION [SCOPE [GRANT]]
  http POST "$B/oauth2/v1/token" -H 'Accept: application/json' \
    --data-urlencode "grant_type=${3:-client_credentials}" --data-urlencode "scope=${2:-okta.networkZones.manage}" \
    --data-urlencode 'client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer' \
    --data-urlencode "client_assertion=$1"
}
invalid_client='d.error === "invalid_client" && typeof d.error_description === "string" && d.error_description.length > 0'

token "$(jwt RS256 "$work/rsa.key" "$(claims rs-1)")"
expect_code "RS256 token" 200
expect_json "RS256 token body" 'd.token_type === "Bearer" && d.expires_in === 3600 && d.access_token.length > 20 && d.scope === "okta.networkZones.manage"'
check "token answer has rate-limit headers" test -n "$(header X-Rate-Limit-Remaining)"
RS_TOKEN=$(jget d.access_token)
http GET "$B/api/v1/zones" -H "Authorization: Bearer $RS_TOKEN"
expect_code "bearer (RS256) reads zones" 200
http POST "$B/api/v1/zones/$A/lifecycle/activate" -H "Authorization: Bearer $RS_TOKEN"
expect_code "bearer with manage scope writes" 200

token "$(jwt ES256 "$work/ec.key" "$(claims es-1)")" "okta.networkZones.read"
expect_code "ES256 token" 200
expect_json "ES256 token body" 'd.token_type === "Bearer" && d.scope === "okta.networkZones.read"'
ES_TOKEN=$(jget d.access_token)
http GET "$B/api/v1/zones/$A" -H "Authorization: Bearer $ES_TOKEN"
expect_code "read scope reads" 200
http PUT "$B/api/v1/zones/$A" -H "Authorization: Bearer $ES_TOKEN" "${JSON[@]}" -d '{"type":"IP","name":"x","gateways":[{"type":"CIDR","value":"10.0.0.0/8"}]}'
expect_code "read scope cannot write" 403
expect_json "read scope body" "$denied"

token "$(jwt ES256 "$work/ec.key" "$(claims es-1)")"
expect_code "jti replay" 401
expect_json "jti replay body" "$invalid_client"
token "$(jwt RS256 "$work/rsa.key" "$(claims rs-expired -10 -100)")"
expect_code "expired assertion" 401
expect_json "expired body" "$invalid_client && /expired/.test(d.error_description)"
token "$(jwt RS256 "$work/rsa.key" "$(claims rs-long 3700)")"
expect_code "exp more than 1 h after iat" 401
expect_json "exp too far body" "$invalid_client"
token "$(jwt RS256 "$work/rsa.key" "$(claims rs-aud 300 0 "https://other.example/oauth2/v1/token")")"
expect_code "wrong audience" 401
expect_json "wrong audience body" "$invalid_client && /audience/.test(d.error_description)"
token "$(jwt RS256 "$work/rsa.key" "$(claims rs-iss 300 0 "$AUD" someone-else)")"
expect_code "wrong iss/sub" 401
expect_json "wrong iss body" "$invalid_client"
token "$(jwt ES256 "$work/other.key" "$(claims other-1)")"
expect_code "unknown key" 401
expect_json "unknown key body" "$invalid_client && /signature/.test(d.error_description)"
token "$(jwt RS256 "$work/rsa.key" "$(claims rs-tamper)")x"
expect_code "tampered signature" 401
token "not.a.jwt"
expect_code "malformed assertion" 401
expect_json "malformed assertion body" "$invalid_client"
token "$(jwt RS256 "$work/rsa.key" "$(claims rs-scope)")" "okta.groups.manage"
expect_code "scope not granted" 400
expect_json "scope not granted body" 'd.error === "invalid_scope"'
token "$(jwt RS256 "$work/rsa.key" "$(claims rs-grant)")" "okta.networkZones.manage" password
expect_code "unsupported grant" 400
expect_json "unsupported grant body" 'd.error === "unsupported_grant_type"'

http POST "$B/_sim/tokens/revoke"
expect_code "revoke tokens" 200
http GET "$B/api/v1/zones" -H "Authorization: Bearer $RS_TOKEN"
expect_code "revoked bearer" 401
expect_json "revoked bearer body" "$invalid_token"
http GET "$B/api/v1/zones" "${SSWS[@]}"
expect_code "SSWS survives token revocation" 200

# ---- faults ------------------------------------------------------------------------------------
http POST "$B/_sim/faults" -d '{"fault":"rate_limit","count":2,"reset_in":30}'
expect_code "set rate_limit fault" 200
now=$(date +%s)
http GET "$B/api/v1/zones" "${SSWS[@]}"
expect_code "rate limited" 429
expect_json "rate limited body" 'd.errorCode === "E0000047" && d.errorSummary === "API call exceeded rate limit due to too many requests." && d.errorLink === "E0000047"'
check "429 remaining 0" test "$(header X-Rate-Limit-Remaining)" = 0
reset=$(header X-Rate-Limit-Reset)
check "429 reset = now + 30 ($reset vs $now)" test "$reset" -ge $((now + 29)) -a "$reset" -le $((now + 32))
check "429 limit header" test -n "$(header X-Rate-Limit-Limit)"
token "$(jwt RS256 "$work/rsa.key" "$(claims rs-429)")"
expect_code "token endpoint rate limited too" 429
http GET "$B/api/v1/zones" "${SSWS[@]}"
expect_code "fault count used up" 200
http POST "$B/_sim/faults" -d '{"fault":"status","status":503,"count":1}'
http GET "$B/ip"
expect_code "/ip is not faulted" 200
http GET "$B/api/v1/zones" "${SSWS[@]}"
expect_code "status fault" 503
http POST "$B/_sim/faults" -d '{"fault":"garbage","count":1}'
http GET "$B/api/v1/zones" "${SSWS[@]}"
expect_code "garbage fault" 200
check "garbage is not JSON" bash -c '! node -e "JSON.parse(process.argv[1])" "$1" 2>/dev/null' _ "$body"
http POST "$B/_sim/faults" -d '{"fault":"status","status":500,"count":0}'
http DELETE "$B/_sim/faults"
expect_json "faults cleared" 'd.fault === "none"'
http GET "$B/api/v1/zones" "${SSWS[@]}"
expect_code "after clearing faults" 200
http POST "$B/_sim/faults" -d '{"fault":"explode"}'
expect_code "unknown fault" 400

# ---- stats and raw zones ------------------------------------------------------------------
http GET "$B/_sim/stats"
expect_code "stats" 200
expect_json "stats counts" 'd.requests["GET /api/v1/zones"] >= 5 && d.requests["POST /oauth2/v1/token"] >= 10 && d.total > 50'
http DELETE "$B/_sim/stats"
http GET "$B/api/v1/zones" "${SSWS[@]}"
http GET "$B/_sim/stats"
expect_json "stats reset" 'd.total === 1 && d.requests["GET /api/v1/zones"] === 1'
http GET "$B/_sim/zones"
expect_json "raw zones" "d.length === 2 && d.some(z => z.id === '$A')"

# ---- persistence across a restart --------------------------------------------------------
stop_sim okta
check "SIGTERM exits 0" test "$rc" -eq 0
check "state file is a JSON array of 2 zones" node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1])); if (d.length !== 2) process.exit(1)' "$work/zones.json"
check "no temporary state files left" test -z "$(find "$work" -name 'zones.json.tmp*')"
start_sim okta "$sim" --state "$work/zones.json" --token-file "$work/tokens"
B="https://127.0.0.1:$okta_port"
http GET "$B/api/v1/zones/$A" "${SSWS[@]}"
expect_code "zone after restart" 200
expect_json "zone after restart body" "d.name === 'renamed' && d.created === '$created_a' && d.asns[0] === 'AS64500' && d.futureField.x === 1"
http GET "$B/login" --interface 127.0.0.2
expect_code "login check after restart" 200
http GET "$B/api/v1/zones" -H "Authorization: Bearer $ES_TOKEN"
expect_code "tokens do not survive a restart" 401
token "$(jwt RS256 "$work/rsa.key" "$(claims rs-nokey)")"
expect_code "no service app configured" 401

# ---- IPv6: CIDR and RANGE containment of ::1 -----------------------------------------------
if ! grep -qs ' lo$' /proc/net/if_inet6; then
  echo "skip: no IPv6 loopback"
else
  start_sim okta6 "$sim" --listen '[::1]:0' --token-file "$work/tokens"
  B6="https://[::1]:$okta6_port"
  check "v6 listening line" grep -qxF "okta-sim listening on $B6" "$work/okta6.out"
  http GET "$B6/ip"
  check "ip over IPv6" test "$body" = "::1"
  http POST "$B6/api/v1/zones" "${SSWS[@]}" "${JSON[@]}" -d '{"type":"IP","name":"v6","gateways":[{"type":"CIDR","value":"::1/128"}]}'
  expect_code "v6 zone" 200
  Z6=$(jget d.id)
  http GET "$B6/login"
  expect_code "login from ::1 in ::1/128" 200
  expect_json "login v6 body" 'd.ip === "::1"'
  v6put() {
    http PUT "$B6/api/v1/zones/$Z6" "${SSWS[@]}" "${JSON[@]}" -d "{\"type\":\"IP\",\"name\":\"v6\",\"gateways\":[$1]}"
    http GET "$B6/login"
  }
  v6put '{"type":"RANGE","value":"::-::1"}'
  expect_code "login from ::1 in RANGE ::-::1" 200
  v6put '{"type":"RANGE","value":"::2-::ffff"}'
  expect_code "::1 outside RANGE ::2-::ffff" 403
  v6put '{"type":"CIDR","value":"2001:db8::/32"},{"type":"CIDR","value":"127.0.0.0/8"}'
  expect_code "::1 outside 2001:db8::/32 and not IPv4" 403
  v6put '{"type":"CIDR","value":"::/64"}'
  expect_code "::1 in ::/64" 200
fi


# ==== posture_sync (issue 15): devices, users, sessions, SSF receiver ========================
# A second instance with a search lag, the service app, and the SSF receiver reading the
# transmitter's JWKS from a throwaway python3 http.server on 127.0.0.1.
LAG=3000
SSF_ISS=https://tunnelgate.test/ssf
DCC=https://schemas.openid.net/secevent/caep/event-type/device-compliance-change
mkdir -p "$work/jwks"
printf '{"keys":[%s]}' "$(jwk_rsa rs-1 "$work/rsa.pub")" >"$work/jwks/jwks.json"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$work/jwks" >"$work/jwks.out" 2>"$work/jwks.err" &
pids+=($!)
wait_for 10 grep -q 'port [0-9]' "$work/jwks.out" || { echo "http.server did not start"; cat "$work/jwks.err"; exit 1; }
JWKS_URL="http://127.0.0.1:$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$work/jwks.out" | head -1)/jwks.json"
start_sim okta2 "$sim" --token-file "$work/tokens" --client-id "$CID" --client-public-key "$work/rsa.pub" \
  --search-lag-ms "$LAG" --ssf-issuer "$SSF_ISS" --ssf-jwks-url "$JWKS_URL"
B="https://127.0.0.1:$okta2_port"
AUD="$B/oauth2/v1/token"

# ---- devices: seeding and the device object ------------------------------------------------
http POST "$B/_sim/devices" "${JSON[@]}" -d '[
  {"udid":"U-1","serialNumber":"S-1","displayName":"alice-iphone","platform":"IOS"},
  {"udid":"U-2","displayName":"bob-laptop","platform":"WINDOWS"},
  {"udid":"u-1","serialNumber":"S-3","displayName":"carol-mac","platform":"MACOS","status":"SUSPENDED"}]'
expect_code "seed devices" 200
expect_json "seeded device objects" 'd.length === 3 && d.every(x => /^guo[0-9A-Za-z]{17}$/.test(x.id) && x.resourceId === x.id && x.resourceType === "UDDevice" && x.resourceAlternateId === null && x.resourceDisplayName.value === x.profile.displayName && x.resourceDisplayName.sensitive === false && x.profile.registered === true && x.profile.secureHardwarePresent === false && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(x.created) && x._links.self.href.endsWith("/api/v1/devices/" + x.id))'
expect_json "status default ACTIVE, links follow the status" 'd[0].status === "ACTIVE" && d[0]._links.suspend.href.endsWith("/lifecycle/suspend") && d[0]._links.deactivate && !d[0]._links.unsuspend && d[2].status === "SUSPENDED" && d[2]._links.unsuspend && !d[2]._links.suspend'
expect_json "profile fields not given are left out" '!("serialNumber" in d[1].profile) && d[1].profile.udid === "U-2" && d[0].profile.serialNumber === "S-1" && d[0].profile.platform === "IOS"'
D1=$(jget 'd[0].id') D2=$(jget 'd[1].id') D3=$(jget 'd[2].id')
http POST "$B/_sim/devices" "${JSON[@]}" -d '[{"udid":"X","displayName":"x","platform":"BEOS"}]'
expect_code "seed: bad platform" 400
http GET "$B/_sim/devices"
expect_json "raw devices" 'd.length === 3'

# ---- devices: search, pagination, get ------------------------------------------------------
dsearch() { http GET "$B/api/v1/devices" "${SSWS[@]}" --get --data-urlencode "search=$1" "${@:2}"; }
dsearch 'profile.udid eq "U-1"'
expect_code "search by udid" 200
expect_json "udid match is case-sensitive" "d.length === 1 && d[0].id === '$D1'"
dsearch 'profile.serialNumber eq "S-3"'
expect_json "search by serial" "d.length === 1 && d[0].id === '$D3'"
dsearch 'status eq "SUSPENDED"'
expect_json "search by status" "d.length === 1 && d[0].id === '$D3'"
dsearch "profile.udid eq \"U-2\" or id eq \"$D3\""
expect_json "search or" "d.length === 2 && d[0].id === '$D2' && d[1].id === '$D3'"
dsearch 'profile.udid eq "U-1" and status eq "SUSPENDED"'
expect_json "search and" 'd.length === 0'
dsearch 'profile.udid sw "U"'
expect_code "unsupported search" 400
expect_json "unsupported search body" 'd.errorCode === "E0000031"'
http GET "$B/api/v1/devices" "${SSWS[@]}" --get --data-urlencode limit=2
expect_json "page 1" "d.length === 2 && d[0].id === '$D1'"
check "devices: self and next are two separate Link header fields" test "$(grep -ci '^link:' <<<"$hdrs")" = 2
check "devices: self link" grep -qi '^link: <https://127.0.0.1:[0-9]*/api/v1/devices?limit=2>; rel="self"' <<<"$hdrs"
next=$(grep -i '^link:.*rel="next"' <<<"$hdrs" | sed 's/^[^<]*<\([^>]*\)>.*/\1/')
http GET "$next" "${SSWS[@]}"
expect_json "page 2 via the next link" "d.length === 1 && d[0].id === '$D3'"
check "devices: last page has no next" test "$(grep -ci 'rel="next"' <<<"$hdrs")" = 0
http GET "$B/api/v1/devices/$D1" "${SSWS[@]}"
expect_code "get device" 200
expect_json "get device body" "d.id === '$D1' && d.profile.udid === 'U-1'"
http GET "$B/api/v1/devices/guoNOSUCHDEVICE00000" "${SSWS[@]}"
expect_code "unknown device" 404
expect_json "unknown device body" 'd.errorCode === "E0000007" && d.errorSummary === "Not found: Resource not found: guoNOSUCHDEVICE00000 (Device)"'

# ---- devices: lifecycle, and the search index lagging behind ---------------------------------
http POST "$B/api/v1/devices/$D1/lifecycle/suspend" "${SSWS[@]}"
expect_code "suspend" 204
check "suspend: empty body" test -z "$body"
http GET "$B/api/v1/devices/$D1" "${SSWS[@]}"
expect_json "GET by id shows SUSPENDED at once" 'd.status === "SUSPENDED" && d._links.unsuspend && !d._links.suspend'
dsearch 'profile.udid eq "U-1"'
expect_json "search still shows ACTIVE (lag ${LAG} ms)" "d.length === 1 && d[0].status === 'ACTIVE'"
dsearch 'status eq "SUSPENDED"'
expect_json "search by the new status misses it yet" "d.length === 1 && d[0].id === '$D3'"
http GET "$B/api/v1/devices" "${SSWS[@]}"
expect_json "a plain list is current" "d.find(x => x.id === '$D1').status === 'SUSPENDED'"
lagged_done() { dsearch 'profile.udid eq "U-1"'; [ "$(jget 'd[0].status')" = SUSPENDED ]; }
check "search catches up after the lag" wait_for 15 lagged_done
http POST "$B/api/v1/devices/$D1/lifecycle/suspend" "${SSWS[@]}"
expect_code "suspend twice" 400
expect_json "suspend twice body" 'd.errorCode === "E0000001" && d.errorSummary === "Api validation failed: status" && d.errorCauses.length === 1 && /ACTIVE/.test(d.errorCauses[0].errorSummary)'
http POST "$B/api/v1/devices/$D1/lifecycle/unsuspend" "${SSWS[@]}"
expect_code "unsuspend" 204
http POST "$B/api/v1/devices/$D1/lifecycle/unsuspend" "${SSWS[@]}"
expect_code "unsuspend an ACTIVE device" 400
http POST "$B/api/v1/devices/$D2/lifecycle/deactivate" "${SSWS[@]}"
expect_code "deactivate" 204
http POST "$B/api/v1/devices/$D2/lifecycle/suspend" "${SSWS[@]}"
expect_code "a DEACTIVATED device cannot be suspended" 400
http DELETE "$B/api/v1/devices/$D1" "${SSWS[@]}"
expect_code "delete an ACTIVE device" 400
http POST "$B/api/v1/devices/$D2/lifecycle/activate" "${SSWS[@]}"
expect_code "activate" 204
http GET "$B/api/v1/devices/$D2" "${SSWS[@]}"
expect_json "activated" 'd.status === "ACTIVE"'
http POST "$B/api/v1/devices/guoNOSUCHDEVICE00000/lifecycle/suspend" "${SSWS[@]}"
expect_code "suspend unknown device" 404
expect_json "suspend unknown device body" 'd.errorCode === "E0000007"'
http GET "$B/api/v1/devices/$D2/lifecycle/suspend" "${SSWS[@]}"
expect_code "lifecycle needs POST" 405

# ---- users ------------------------------------------------------------------------------------
http POST "$B/_sim/users" "${JSON[@]}" -d '[
  {"login":"alice@example.com","email":"alice@example.com","firstName":"Alice","lastName":"Anders"},
  {"login":"bob@example.com","email":"bob@example.com","firstName":"Bob","lastName":"Brown","status":"SUSPENDED"},
  {"login":"carol@example.com","email":"carol@corp.example","firstName":"Carol","lastName":"Clark"}]'
expect_code "seed users" 200
expect_json "user objects" 'd.length === 3 && d.every(u => /^00u[0-9A-Za-z]{17}$/.test(u.id) && /^oty/.test(u.type.id) && u._links.self.href.endsWith("/api/v1/users/" + u.id) && u.lastLogin === null && u.passwordChanged === null && typeof u.created === "string" && u.lastUpdated === u.created && u.statusChanged === u.created)'
expect_json "user status and profile" 'd[0].status === "ACTIVE" && d[0].activated === d[0].created && d[1].status === "SUSPENDED" && d[1].activated === null && d[0].profile.login === "alice@example.com" && d[0].profile.firstName === "Alice" && d[2].profile.email === "carol@corp.example"'
U1=$(jget 'd[0].id') U2=$(jget 'd[1].id')
http POST "$B/_sim/users" "${JSON[@]}" -d '[{"login":"ALICE@example.com"}]'
expect_code "duplicate login" 409
usearch() { http GET "$B/api/v1/users" "${SSWS[@]}" --get --data-urlencode "$1"; }
usearch 'search=profile.login eq "ALICE@Example.com"'
expect_code "user search" 200
expect_json "login search is case-insensitive" "d.length === 1 && d[0].id === '$U1'"
usearch 'filter=status eq "SUSPENDED"'
expect_json "filter by status" "d.length === 1 && d[0].id === '$U2'"
usearch 'search=profile.email eq "carol@corp.example" or profile.login eq "bob@example.com"'
expect_json "search or" 'd.length === 2'
usearch 'search=profile.email eq "alice@example.com" and status eq "SUSPENDED"'
expect_json "search and" 'd.length === 0'
usearch 'q=ali'
expect_json "q: firstName prefix" "d.length === 1 && d[0].id === '$U1'"
usearch 'q=BROW'
expect_json "q: lastName prefix, any case" "d.length === 1 && d[0].id === '$U2'"
usearch 'q=carol@corp'
expect_json "q: email prefix" 'd.length === 1'
usearch 'search=profile.login co "a"'
expect_code "unsupported user search" 400
expect_json "unsupported user search body" 'd.errorCode === "E0000031"'
http GET "$B/api/v1/users/$U1" "${SSWS[@]}"
expect_json "get user by id" "d.id === '$U1'"
http GET "$B/api/v1/users/Alice@Example.com" "${SSWS[@]}"
expect_json "get user by login" "d.id === '$U1'"
http GET "$B/api/v1/users/00uNOSUCHUSER0000000" "${SSWS[@]}"
expect_code "unknown user" 404
expect_json "unknown user body" 'd.errorCode === "E0000007" && d.errorSummary === "Not found: Resource not found: 00uNOSUCHUSER0000000 (User)"'

# ---- sessions and refresh tokens --------------------------------------------------------------
new_session() { http POST "$B/_sim/sessions" "${JSON[@]}" -d "{\"login\":\"$1\"}"; }
refresh() { http POST "$B/oauth2/v1/token" --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$1" --data-urlencode client_id=0oa-some-app; }
new_session alice@example.com
expect_code "new session" 200
expect_json "new session body" "d.userId === '$U1' && /^102/.test(d.sessionId) && d.refresh_token.length > 20"
R1=$(jget d.refresh_token)
new_session ALICE@example.com
R2=$(jget d.refresh_token)
new_session bob@example.com
R3=$(jget d.refresh_token)
new_session nobody@example.com
expect_code "session for an unknown login" 404
refresh "$R1"
expect_code "refresh grant" 200
expect_json "refresh grant body" "d.token_type === 'Bearer' && d.expires_in === 3600 && d.access_token.length > 20 && d.refresh_token === '$R1' && d.scope === 'offline_access openid'"
A1=$(jget d.access_token)
http POST "$B/oauth2/v1/introspect" --data-urlencode "token=$A1"
expect_json "introspect: access token active" "d.active === true && d.uid === '$U1' && d.username === 'alice@example.com'"
http GET "$B/api/v1/devices" -H "Authorization: Bearer $A1"
expect_code "a user's access token is no admin token" 401
http DELETE "$B/api/v1/users/$U1/sessions" "${SSWS[@]}"
expect_code "clear sessions (oauthTokens defaults to false)" 204
http GET "$B/_sim/sessions"
expect_json "sessions revoked, tokens kept" "const a = d.find(u => u.userId === '$U1'); a.sessions.length === 2 && a.sessions.every(s => s.state === 'revoked') && a.refresh_tokens.every(r => r.state === 'active')"
refresh "$R1"
expect_code "refresh token survives oauthTokens=false" 200
http DELETE "$B/api/v1/users/$U1/sessions?oauthTokens=true&forgetDevices=false" "${SSWS[@]}"
expect_code "clear sessions with oauthTokens=true" 204
check "clear sessions: empty body" test -z "$body"
refresh "$R1"
expect_code "revoked refresh token" 400
expect_json "revoked refresh token body" 'd.error === "invalid_grant" && d.error_description === "The refresh token is invalid or expired."'
refresh "$R2"
expect_code "the user's other refresh token too" 400
http POST "$B/oauth2/v1/introspect" --data-urlencode "token=$A1"
expect_json "access token issued from it revoked" 'd.active === false'
refresh "$R3"
expect_code "another user's refresh token untouched" 200
refresh "nonsense"
expect_code "unknown refresh token" 400
expect_json "unknown refresh token body" 'd.error === "invalid_grant"'
http GET "$B/_sim/sessions"
expect_json "sessions report" "const a = d.find(u => u.userId === '$U1'); a.login === 'alice@example.com' && a.refresh_tokens.length === 2 && a.refresh_tokens[0].refresh_token === '$R1' && a.refresh_tokens.every(r => r.state === 'revoked') && a.access_tokens.every(t => t.state === 'revoked') && d.find(u => u.userId === '$U2').refresh_tokens[0].state === 'active'"
http DELETE "$B/api/v1/users/00uNOSUCHUSER0000000/sessions?oauthTokens=true" "${SSWS[@]}"
expect_code "clear sessions of an unknown user" 404
expect_json "clear sessions unknown user body" 'd.errorCode === "E0000007"'
http DELETE "$B/api/v1/users/$U1/sessions?oauthTokens=yes" "${SSWS[@]}"
expect_code "oauthTokens must be true or false" 400

# ---- scopes -------------------------------------------------------------------------------------
scoped() {  # scoped SCOPE : a bearer token with that scope in $SCOPED
  token "$(jwt RS256 "$work/rsa.key" "$(claims "scope-$1-$RANDOM$RANDOM")")" "$1"
  SCOPED=(-H "Authorization: Bearer $(jget d.access_token)")
}
scoped okta.devices.read
http GET "$B/api/v1/devices/$D1" "${SCOPED[@]}"
expect_code "devices.read reads devices" 200
http POST "$B/api/v1/devices/$D1/lifecycle/suspend" "${SCOPED[@]}"
expect_code "devices.read cannot suspend" 403
expect_json "devices.read cannot suspend body" "$denied"
scoped okta.devices.manage
http GET "$B/api/v1/devices" "${SCOPED[@]}" --get --data-urlencode 'search=status eq "ACTIVE"'
expect_code "devices.manage reads devices" 200
http POST "$B/api/v1/devices/$D1/lifecycle/suspend" "${SCOPED[@]}"
expect_code "devices.manage suspends" 204
http GET "$B/api/v1/users/$U1" "${SCOPED[@]}"
expect_code "devices.manage cannot read users" 403
scoped okta.users.read
http GET "$B/api/v1/users" "${SCOPED[@]}"
expect_code "users.read reads users" 200
http DELETE "$B/api/v1/users/$U2/sessions?oauthTokens=true" "${SCOPED[@]}"
expect_code "users.read cannot clear sessions" 403
http GET "$B/api/v1/devices" "${SCOPED[@]}"
expect_code "users.read cannot read devices" 403
scoped okta.users.manage
http DELETE "$B/api/v1/users/$U2/sessions?oauthTokens=true" "${SCOPED[@]}"
expect_code "users.manage clears sessions" 204
http GET "$B/api/v1/users/$U2" "${SCOPED[@]}"
expect_code "users.manage reads users" 200
http GET "$B/api/v1/zones" "${SCOPED[@]}"
expect_code "users.manage cannot read zones" 403
scoped okta.networkZones.manage
http GET "$B/api/v1/devices" "${SCOPED[@]}"
expect_code "zones scope cannot read devices" 403

# ---- SSF receiver ------------------------------------------------------------------------------
RS_HDR='{"alg":"RS256","typ":"secevent+jwt","kid":"rs-1"}'
EC_HDR='{"alg":"ES256","typ":"secevent+jwt","kid":"ec-1"}'
# set_claims JTI SHAPE : a device-compliance-change SET's claims; SHAPE event|sub_id|none;
# ISS, AUD, IAT (offset s), TS (event_timestamp) override the defaults
set_claims() {
  local now ev sub= st='"current_status":"not-compliant","previous_status":"compliant"'
  now=$(date +%s)
  case $2 in
    event) ev="{$st,\"event_timestamp\":${TS:-$now},\"subject\":{\"device\":{\"format\":\"opaque\",\"id\":\"$D1\"},\"user\":{\"format\":\"email\",\"email\":\"alice@example.com\"}}}" ;;
    sub_id) ev="{$st,\"event_timestamp\":${TS:-$now},\"initiating_entity\":\"policy\"}"
      sub=",\"sub_id\":{\"format\":\"complex\",\"device\":{\"format\":\"iss_sub\",\"iss\":\"$SSF_ISS\",\"sub\":\"U-1\"},\"user\":{\"format\":\"email\",\"email\":\"alice@example.com\"}}" ;;
    *) ev="{$st,\"event_timestamp\":$now}" ;;
  esac
  printf '{"iss":"%s","aud":%s,"iat":%d,"jti":"%s","events":{"%s":%s}%s}' "${ISS:-$SSF_ISS}" \
    "${AUD_SET:-\"$B\"}" $((now + ${IAT:-0})) "$1" "$DCC" "$ev" "$sub"
}
push() {  # push SET [CONTENT-TYPE]
  http POST "$B/security/api/v1/security-events" -H "Content-Type: ${2:-application/secevent+jwt}" --data-binary "$1"
}
rfc8935() { printf 'd.err === "%s" && typeof d.description === "string" && d.description.length > 10' "$1"; }

push "$(jws "$RS_HDR" "$work/rsa.key" "$(set_claims set-1 event)")"
expect_code "SET, subject in the event (Okta's shape), RS256" 202
check "202 has an empty body" test -z "$body"
push "$(jws "$RS_HDR" "$work/rsa.key" "$(AUD_SET="[\"https://other.example\",\"$B\"]" set_claims set-2 sub_id)")"
expect_code "SET, top-level sub_id (CAEP 1.0 Final), aud an array" 202
http GET "$B/_sim/security-events"
expect_json "accepted SETs recorded" "d.length === 2 && d[0].kid === 'rs-1' && d[0].alg === 'RS256' && d[0].event_type === '$DCC' && d[0].current_status === 'not-compliant' && d[0].previous_status === 'compliant' && d[0].subject_format === 'event' && d[0].subject.device.id === '$D1' && d[0].claims.jti === 'set-1' && Math.abs(d[0].received_ms - Date.now()) < 60000"
expect_json "sub_id shape recorded" "d[1].subject_format === 'sub_id' && d[1].subject.format === 'complex' && d[1].subject.device.sub === 'U-1' && d[1].subject.user.email === 'alice@example.com'"

# key rotation: a kid not seen yet makes the receiver fetch the JWKS again
push "$(jws "$EC_HDR" "$work/ec.key" "$(set_claims set-ec-early event)")"
expect_code "ES256 kid not yet published" 400
expect_json "unknown kid body" "$(rfc8935 invalid_key) && d.description.includes('ec-1')"
printf '{"keys":[%s,%s]}' "$(jwk_rsa rs-1 "$work/rsa.pub")" "$(jwk_ec ec-1 "$work/ec.pub")" >"$work/jwks/jwks.json"
push "$(jws "$EC_HDR" "$work/ec.key" "$(set_claims set-ec event)")"
expect_code "ES256 after the key was published (JWKS fetched again)" 202

# refusals, one check each
tampered=$(jws "$RS_HDR" "$work/rsa.key" "$(set_claims set-t event)")
other_payload=$(set_claims set-t2 event | b64url)
push "${tampered%%.*}.$other_payload.${tampered##*.}"
expect_code "bad signature" 400
expect_json "bad signature body" "$(rfc8935 invalid_key) && /signature/.test(d.description)"
push "$(jws '{"alg":"RS256","typ":"secevent+jwt","kid":"nope"}' "$work/rsa.key" "$(set_claims set-k event)")"
expect_code "unknown kid" 400
expect_json "unknown kid body" "$(rfc8935 invalid_key) && d.description.includes('nope')"
push "$(printf '{"alg":"none","typ":"secevent+jwt","kid":"rs-1"}' | b64url).$(set_claims set-none event | b64url)."
expect_code "alg none" 400
expect_json "alg none body" "$(rfc8935 invalid_request) && d.description.includes('none')"
push "$(jws '{"alg":"RS256","typ":"JWT","kid":"rs-1"}' "$work/rsa.key" "$(set_claims set-typ event)")"
expect_code "typ not secevent+jwt" 400
expect_json "typ body" "$(rfc8935 invalid_request) && d.description.includes('secevent+jwt')"
push "$(jws '{"alg":"RS256","typ":"secevent+jwt"}' "$work/rsa.key" "$(set_claims set-nokid event)")"
expect_code "no kid" 400
push "$(jws "$RS_HDR" "$work/rsa.key" "$(AUD_SET='"https://other.example"' set_claims set-aud event)")"
expect_code "wrong aud" 400
expect_json "wrong aud body" "$(rfc8935 invalid_audience)"
push "$(jws "$RS_HDR" "$work/rsa.key" "$(ISS=https://evil.example set_claims set-iss event)")"
expect_code "wrong iss" 400
expect_json "wrong iss body" "$(rfc8935 invalid_issuer)"
push "$(jws "$RS_HDR" "$work/rsa.key" "$(set_claims set-1 event)")"
expect_code "replayed jti" 400
expect_json "replayed jti body" "$(rfc8935 invalid_request) && /replay/.test(d.description)"
now=$(date +%s)
push "$(jws "$RS_HDR" "$work/rsa.key" "{\"iss\":\"$SSF_ISS\",\"aud\":\"$B\",\"iat\":$now,\"jti\":\"set-st\",\"events\":{\"$DCC\":{\"previous_status\":\"compliant\",\"event_timestamp\":$now,\"subject\":{\"user\":{\"format\":\"email\",\"email\":\"a@b.c\"}}}}}")"
expect_code "missing current_status" 400
expect_json "missing status body" "$(rfc8935 invalid_request) && d.description.includes('current_status')"
push "$(jws "$RS_HDR" "$work/rsa.key" "$(set_claims set-nosub none)")"
expect_code "no subject at all" 400
expect_json "no subject body" "$(rfc8935 invalid_request) && /subject/.test(d.description)"
push "$(jws "$RS_HDR" "$work/rsa.key" "$(TS=$(date +%s%3N) set_claims set-ms event)")"
expect_code "event_timestamp in ms" 400
push "$(jws "$RS_HDR" "$work/rsa.key" "$(IAT=600 set_claims set-future event)")"
expect_code "iat in the future" 400
push "$(jws "$RS_HDR" "$work/rsa.key" "$(set_claims set-ct event)")" application/jwt
expect_code "wrong content type" 400
push "not-a-jws"
expect_code "not a JWS" 400
expect_json "not a JWS body" "$(rfc8935 invalid_request)"
push "$(jws "$RS_HDR" "$work/rsa.key" "$(set_claims set-1b event)")"
expect_code "after the refusals, a fresh jti passes" 202
http GET "$B/_sim/security-events/rejected"
expect_json "rejections recorded" "d.length === 15 && d.filter(r => r.err === 'invalid_key').length === 4 && d.some(r => r.err === 'invalid_audience') && d.some(r => r.err === 'invalid_issuer')"
http GET "$B/_sim/security-events"
expect_json "accepted count" 'd.length === 4'
http DELETE "$B/_sim/security-events"
expect_json "cleared" 'd.length === 0'

# ---- faults apply to the new endpoints ------------------------------------------------------------
http POST "$B/_sim/faults" -d '{"fault":"status","status":503,"count":3}'
push "$(jws "$RS_HDR" "$work/rsa.key" "$(set_claims set-fault event)")"
expect_code "receiver faulted" 503
http POST "$B/api/v1/devices/$D2/lifecycle/suspend" "${SSWS[@]}"
expect_code "lifecycle faulted" 503
http DELETE "$B/api/v1/users/$U1/sessions?oauthTokens=true" "${SSWS[@]}"
expect_code "sessions faulted" 503
push "$(jws "$RS_HDR" "$work/rsa.key" "$(set_claims set-fault event)")"
expect_code "after the fault, the same SET is taken (its jti was not used)" 202
stop_sim okta2
check "okta2 SIGTERM exits 0" test "$rc" -eq 0

# ---- SSF with a JWKS file, and over https -------------------------------------------------------
printf '{"keys":[%s]}' "$(jwk_ec ec-1 "$work/ec.pub")" >"$work/jwks.file"
start_sim okta3 "$sim" --ssf-issuer "$SSF_ISS" --ssf-jwks-file "$work/jwks.file"
B="https://127.0.0.1:$okta3_port"
push "$(jws "$EC_HDR" "$work/ec.key" "$(set_claims f-1 sub_id)")"
expect_code "JWKS from a file" 202
push "$(jws "$RS_HDR" "$work/rsa.key" "$(set_claims f-2 sub_id)")"
expect_code "kid not in the file" 400
printf '{"keys":[%s,%s]}' "$(jwk_ec ec-1 "$work/ec.pub")" "$(jwk_rsa rs-1 "$work/rsa.pub")" >"$work/jwks.file"
push "$(jws "$RS_HDR" "$work/rsa.key" "$(set_claims f-2 sub_id)")"
expect_code "the file is read again for an unknown kid" 202
stop_sim okta3

cat >"$work/https_jwks.py" <<'PY'
import http.server, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=sys.argv[1], **k)
srv = http.server.HTTPServer(("127.0.0.1", 0), handler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("port", srv.server_address[1], flush=True)
srv.serve_forever()
PY
python3 "$work/https_jwks.py" "$work/jwks" "$work/server.pem" "$work/server.key" >"$work/https.out" 2>"$work/https.err" &
pids+=($!)
wait_for 10 grep -q '^port ' "$work/https.out" || { echo "https JWKS server did not start"; cat "$work/https.err"; exit 1; }
HTTPS_JWKS="https://127.0.0.1:$(cut -d' ' -f2 "$work/https.out")/jwks.json"
start_sim okta4 "$sim" --ssf-issuer "$SSF_ISS" --ssf-jwks-url "$HTTPS_JWKS" --ssf-ca-file "$work/ca.pem"
B="https://127.0.0.1:$okta4_port"
push "$(jws "$EC_HDR" "$work/ec.key" "$(set_claims h-1 event)")"
expect_code "JWKS over https, verified against --ssf-ca-file" 202
stop_sim okta4
openssl req -x509 -key "$work/other.key" -out "$work/other-ca.pem" -subj /CN=other-ca -days 1 2>/dev/null
start_sim okta5 "$sim" --ssf-issuer "$SSF_ISS" --ssf-jwks-url "$HTTPS_JWKS" --ssf-ca-file "$work/other-ca.pem"
B="https://127.0.0.1:$okta5_port"
push "$(jws "$EC_HDR" "$work/ec.key" "$(set_claims h-2 event)")"
expect_code "JWKS server not trusted" 400
expect_json "untrusted JWKS body" "$(rfc8935 invalid_key) && /JWKS/.test(d.description)"
stop_sim okta5

# ---- bad SSF command lines --------------------------------------------------------------------------
run "$sim" --cert "$work/server.pem" --key "$work/server.key" --ssf-issuer x --ssf-jwks-url http://10.0.0.1/jwks.json
expect_rc "JWKS URL off loopback" 2
expect_err_has "JWKS URL off loopback names the rule" "127.0.0.0/8"
run "$sim" --cert "$work/server.pem" --key "$work/server.key" --ssf-issuer x
expect_rc "--ssf-issuer without a JWKS" 2
run "$sim" --cert "$work/server.pem" --key "$work/server.key" --ssf-jwks-file "$work/jwks.file"
expect_rc "a JWKS without --ssf-issuer" 2

finish
