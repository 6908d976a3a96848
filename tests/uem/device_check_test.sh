#!/usr/bin/env bash
# tunnelctl device check: the one output line and the exit codes administrators' scripts rely
# on, for the file source and for ws1 against uem-sim.
#   device_check_test.sh TUNNELCTL UEM_SIM EXAMPLE_INVENTORY
set -u
tctl=$1 sim=$2 example=$3
. "$(dirname "$0")/../cli/lib.sh"
work=$(mktemp -d)
sim_pid=
cleanup() {
  if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null; wait "$sim_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

cp "$example" "$work/devices.json"
cat >"$work/gw.yaml" <<'YAML'
listen: 127.0.0.1:8443   # the gateway's own keys are not checked here
uem:
  source: file
  file: devices.json      # relative to this file
YAML
G="$work/gw.yaml"

run "$tctl" device check --config "$G" --udid 00008110-001A2B3C4D5E6F70
expect_rc "admit" 0
expect_out "admit" "admit reason=ok platform=ios enrollment=Enrolled compliance=Compliant compromised=false"

run "$tctl" device check --config "$G" --serial R58N90ABCDE
expect_rc "noncompliant" 1
expect_out "noncompliant" "refuse reason=noncompliant platform=android enrollment=Enrolled compliance=NonCompliant compromised=false"

run "$tctl" device check --config "$G" --udid no-such-device
expect_rc "unknown" 1
expect_out "unknown" "refuse reason=unknown_device platform=- enrollment=- compliance=- compromised=-"

cat >"$work/more.yaml" <<'YAML'
uem:
  source: file
  file: more.json
  posture: {require_compliant: false}
YAML
cat >"$work/more.json" <<'JSON'
[{"Udid":"C1","SerialNumber":"S1","Platform":"AppleOsX","EnrollmentStatus":"Enrolled","ComplianceStatus":"Compliant","CompromisedStatus":true},
 {"Udid":"U1","SerialNumber":"S2","Platform":"WinRT","EnrollmentStatus":"Unenrolled","ComplianceStatus":"Compliant","CompromisedStatus":false},
 {"Udid":"N1","SerialNumber":"S3","Platform":"Android","EnrollmentStatus":"Enrolled","ComplianceStatus":"NonCompliant","CompromisedStatus":false}]
JSON
run "$tctl" device check --config "$work/more.yaml" --udid C1
expect_rc "compromised" 1
expect_out "compromised" "refuse reason=compromised platform=macos enrollment=Enrolled compliance=Compliant compromised=true"
run "$tctl" device check --config "$work/more.yaml" --udid U1
expect_out "not enrolled" "refuse reason=not_enrolled platform=windows enrollment=Unenrolled compliance=Compliant compromised=false"
run "$tctl" device check --config "$work/more.yaml" --udid N1
expect_rc "posture check off" 0
expect_out_has "posture check off" "admit reason=ok platform=android"

# --- errors: exit 2, message on stderr, nothing on stdout
run "$tctl" device check --config "$G"
expect_rc "no device" 2
expect_err_has "no device" "--udid or --serial"
run "$tctl" device check --config "$G" --udid a --serial b
expect_rc "both ids" 2
run "$tctl" device check --config "$work/nope.yaml" --udid a
expect_rc "missing config" 2
expect_err_has "missing config" "nope.yaml"
printf 'uem:\n  source: file\n  file: devices.json\n  colour: blue\n' >"$work/bad.yaml"
run "$tctl" device check --config "$work/bad.yaml" --udid a
expect_rc "bad config" 2
expect_err_has "bad config" "bad.yaml:4:3: uem.colour: unknown key"
check "bad config: stdout empty" test -z "$out"
printf 'uem:\n  source: file\n  file: missing.json\n' >"$work/nofile.yaml"
run "$tctl" device check --config "$work/nofile.yaml" --udid a
expect_rc "missing inventory" 2
expect_err_has "missing inventory" "missing.json"

# --- ws1 against uem-sim
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=uem-sim" -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$work/sim.key" -out "$work/sim.pem" 2>/dev/null
printf 'TENANT\n' >"$work/tenant"
printf 'pw\n' >"$work/pw"
"$sim" --inventory "$example" --listen 127.0.0.1:0 --port-file "$work/port" \
  --cert "$work/sim.pem" --key "$work/sim.key" --tenant-code-file "$work/tenant" \
  --basic-user api --basic-password-file "$work/pw" >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
port=$(cat "$work/port")
cat >"$work/ws1.yaml" <<YAML
uem:
  source: ws1
  ws1:
    base_url: https://127.0.0.1:$port
    tenant_code_file: tenant
    ca_file: sim.pem
    request_timeout: 2s
    auth:
      basic: {username: api, password_file: pw}
YAML
run "$tctl" device check --config "$work/ws1.yaml" --udid 00008110-001A2B3C4D5E6F70
expect_rc "ws1 admit" 0
expect_out "ws1 admit" "admit reason=ok platform=ios enrollment=Enrolled compliance=Compliant compromised=false"
run "$tctl" device check --config "$work/ws1.yaml" --serial R58N90ABCDE
expect_rc "ws1 refuse" 1
expect_out_has "ws1 refuse" "refuse reason=noncompliant"
check "secrets never printed" bash -c "! grep -q -e TENANT -e 'pw' <<<\"\$0\"" "$out$err"

kill "$sim_pid"; wait "$sim_pid"; sim_rc=$?; sim_pid=
check "uem-sim exits 0 on SIGTERM" test "$sim_rc" -eq 0
run "$tctl" device check --config "$work/ws1.yaml" --udid 00008110-001A2B3C4D5E6F70
expect_rc "ws1 unreachable" 2
expect_err_has "ws1 unreachable" "cannot connect to 127.0.0.1:$port"
check "ws1 unreachable: stdout empty" test -z "$out"

finish
