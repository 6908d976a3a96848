#!/usr/bin/env bash
# okta-sim: the real binary driven with curl over HTTPS on loopback, answer by answer as the idp
# contract (issue 6) promises: zones CRUD and validation, SSWS and private_key_jwt (RS256, ES256)
# authentication, the login check against CIDR/RANGE/IPv6 zones and BLOCKLIST, /ip, faults,
# statistics and persistence across a restart.
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
http GET "$B/api/v1/zones" "${SSWS[@]}" --get --data-urlencode "filter=id eq \"$A\" or id eq \"$BL\"" --data-urlencode limit=1 --data-urlencode after=xyz
expect_json "filter or + limit" 'd.length === 1'
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
token "$(jwt RS256 "$work/rsa.key" "$(claims rs-scope)")" "okta.users.manage"
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

finish
