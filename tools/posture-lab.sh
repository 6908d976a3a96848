# tools/posture-lab.sh — sourced by tools/demo-posture and tools/bench-posture: uem-sim (with its
# webhook), okta-sim (devices, users, sessions, SSF receiver checking our JWKS), entra-sim and a
# tunnelgate with posture_sync, all on 127.0.0.1, in the current directory.
#   posture_lab_start NAME:USER...   iPhones NAME (UDID NAME, serial SN-NAME) of USER@acme.example
# Sets: bin, gw_port, admin_port, uem, okta, entra (URLs), gw_pid; pids (killed by the caller).
# Helpers: post URL JSON, js EXPR (on stdin JSON), flip NAME Compliant|NonCompliant.
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "   $1 did not appear" >&2; return 1; }
js() { node -e "const d=JSON.parse(require('fs').readFileSync(0,'utf8')); const v=($1); console.log(typeof v==='string'?v:JSON.stringify(v))"; }
post() { curl -sS --cacert ca/ca.pem -X POST -H 'Content-Type: application/json' -d "$2" "$1"; }
flip() { post "$uem/_sim/devices/$1" "{\"ComplianceStatus\":\"$2\"}" >/dev/null; }

posture_lab_start() {
  local pair name user first=1 inv okta_devs okta_users entra_users
  "$bin/tunnelctl" ca init ca >/dev/null
  gw_port=$(free_port) admin_port=$(free_port)
  local hook_port
  hook_port=$(free_port)
  inv="[" okta_devs="[" okta_users="[" entra_users="["
  for pair in "$@"; do
    name=${pair%%:*} user=${pair#*:}@acme.example
    [ $first -eq 1 ] || { inv+=","; okta_devs+=","; okta_users+=","; entra_users+=","; }
    first=0
    "$bin/tunnelctl" ca issue ca --udid "$name" --user "$user" --serial "SN-$name" >/dev/null
    inv+="{\"Id\":{\"Value\":$((RANDOM + 1))},\"Udid\":\"$name\",\"SerialNumber\":\"SN-$name\",\"UserName\":\"${pair#*:}\",\"UserEmailAddress\":\"$user\",\"Platform\":\"Apple\",\"EnrollmentStatus\":\"Enrolled\",\"ComplianceStatus\":\"Compliant\",\"CompromisedStatus\":false}"
    okta_devs+="{\"udid\":\"$name\",\"serialNumber\":\"SN-$name\",\"displayName\":\"$name\",\"platform\":\"IOS\"}"
    okta_users+="{\"login\":\"$user\",\"email\":\"$user\",\"firstName\":\"F\",\"lastName\":\"L\"}"
    entra_users+="{\"userPrincipalName\":\"$user\",\"mail\":\"$user\"}"
  done
  echo "$inv]" >devices.json
  echo api-password >api.pass
  echo TENANT >tenant.code
  echo hook-password >hook.pass
  echo okta-demo-token >okta.token
  echo entra-secret >entra.secret
  "$bin/uem-sim" --inventory devices.json --cert ca/server.pem --key ca/server.key --listen 127.0.0.1:0 \
    --port-file uem.port --basic-user tg-api --basic-password-file api.pass --tenant-code-file tenant.code \
    --webhook-url "http://127.0.0.1:$hook_port/" --webhook-user uem --webhook-password-file hook.pass \
    >uem.log 2>&1 &
  pids+=($!)
  "$bin/okta-sim" --cert ca/server.pem --key ca/server.key --listen 127.0.0.1:0 --port-file okta.port \
    --token-file okta.token --ssf-issuer https://tunnelgate.demo \
    --ssf-jwks-url "http://127.0.0.1:$admin_port/.well-known/jwks.json" >okta.log 2>&1 &
  pids+=($!)
  "$bin/entra-sim" --cert ca/server.pem --key ca/server.key --listen 127.0.0.1:0 --port-file entra.port \
    --tenant acme.example --client-id tg-app --client-secret-file entra.secret >entra.log 2>&1 &
  pids+=($!)
  wait_file uem.port && wait_file okta.port && wait_file entra.port || return 1
  uem="https://127.0.0.1:$(cat uem.port)" okta="https://127.0.0.1:$(cat okta.port)"
  entra="https://127.0.0.1:$(cat entra.port)"
  post "$okta/_sim/devices" "$okta_devs]" >okta-devices.json
  post "$okta/_sim/users" "$okta_users]" >/dev/null
  post "$entra/_sim/users" "$entra_users]" >/dev/null
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out caep.key 2>/dev/null
  cat >rules.yaml <<'EOF'
rule_sets:
  - {name: phones, platforms: [ios], mode: full-device, default: block,
     rules: [{action: tunnel, destinations: ["127.0.0.1"]}]}
EOF
  cat >gateway.yaml <<EOF
listen: ["127.0.0.1:$gw_port"]
tls: {cert: ca/server.pem, key: ca/server.key, client_ca: ca/ca.pem, crl: [ca/crl.pem]}
uem:
  source: ws1
  ws1:
    base_url: $uem
    tenant_code_file: tenant.code
    auth: {basic: {username: tg-api, password_file: api.pass}}
    ca_file: ca/ca.pem
  webhook: {listen: "127.0.0.1:$hook_port", username: uem, password_file: hook.pass, max_connections: 512}
dtr: rules.yaml
egress: {address: 127.0.0.2, allow: ["127.0.0.1/32"]}
admin: {listen: "127.0.0.1:$admin_port"}
log: {format: json}
posture_sync:
  okta: {org_url: "$okta", token_file: okta.token, ca_file: ca/ca.pem}
  entra: {tenant: acme.example, client_id: tg-app, client_secret_file: entra.secret,
          login_url: "$entra", graph_url: "$entra", ca_file: ca/ca.pem}
  caep: {receiver_url: "$okta/security/api/v1/security-events", issuer: "https://tunnelgate.demo",
         audience: "$okta", private_key: caep.key, key_id: demo-1, ca_file: ca/ca.pem}
EOF
  "$bin/tunnelgate" gateway.yaml >gateway.log 2>&1 &
  gw_pid=$!
  pids+=($gw_pid)
  for _ in $(seq 200); do grep -q '"event":"started"' gateway.log && return 0; sleep 0.05; done
  echo "   the gateway did not start:" >&2
  cat gateway.log >&2
  return 1
}
