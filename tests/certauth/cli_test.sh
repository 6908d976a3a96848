#!/bin/sh
# tunnelctl ca / cert inspect: the documented output lines and exit codes.
# usage: cli_test.sh PATH/TO/tunnelctl
set -u
T="$1"
D=$(mktemp -d "${TMPDIR:-/tmp}/certauth-cli-XXXXXX")
trap 'rm -rf "$D"' EXIT
fails=0
check() {  # check NAME WANT_RC GOT_RC
  if [ "$2" != "$3" ]; then echo "FAIL $1: exit $3, want $2"; fails=$((fails + 1)); else echo "ok   $1"; fi
}
contains() {  # contains NAME FILE TEXT
  if grep -qF -- "$3" "$2"; then echo "ok   $1"; else echo "FAIL $1: '$3' not in:"; cat "$2"; fails=$((fails + 1)); fi
}

"$T" ca init "$D/ca" >"$D/out" 2>&1; check "ca init" 0 $?
"$T" ca init "$D/ca" >"$D/out" 2>"$D/err"; check "ca init twice" 2 $?
contains "ca init twice names the problem" "$D/err" "already holds a CA"
"$T" ca issue "$D/ca" --udid DEV-1 --user alice@example.com --serial SN1 --platform ios >"$D/out" 2>&1
check "ca issue" 0 $?
contains "ca issue prints serial" "$D/out" "issued serial="
[ -f "$D/ca/devices/DEV-1.p12" ]; check "p12 written" 0 $?

"$T" cert inspect --ca "$D/ca/ca.pem" --crl "$D/ca/crl.pem" "$D/ca/devices/DEV-1.pem" >"$D/out" 2>"$D/err"
check "inspect ok" 0 $?
[ "$(cat "$D/out")" = "ok udid=DEV-1 user=alice@example.com serial=SN1" ]; check "inspect ok line" 0 $?

"$T" ca revoke "$D/ca" DEV-1 >"$D/out" 2>&1; check "ca revoke" 0 $?
"$T" ca crl "$D/ca" >"$D/out" 2>&1; check "ca crl" 0 $?
"$T" cert inspect --ca "$D/ca/ca.pem" --crl "$D/ca/crl.pem" "$D/ca/devices/DEV-1.pem" >"$D/out" 2>"$D/err"
check "inspect revoked" 1 $?
contains "inspect revoked line" "$D/out" "refused revoked: "

"$T" ca issue "$D/ca" --udid DEV-2 --user bob@example.com --rsa 2048 >/dev/null 2>&1; check "ca issue --rsa" 0 $?
"$T" cert inspect --ca "$D/ca/ca.pem" "$D/ca/devices/DEV-2.pem" >"$D/out" 2>&1; check "inspect rsa" 0 $?
"$T" ca issue "$D/ca" --udid DEV-3 --user bob@example.com --rsa 1024 >"$D/out" 2>"$D/err"
check "ca issue --rsa 1024 refused" 2 $?

"$T" ca init "$D/other" --rsa 2048 >/dev/null 2>&1; check "ca init --rsa" 0 $?
"$T" cert inspect --ca "$D/other/ca.pem" "$D/ca/devices/DEV-2.pem" >"$D/out" 2>&1
check "inspect unknown_ca" 1 $?
contains "inspect unknown_ca line" "$D/out" "refused unknown_ca: "

"$T" cert inspect --ca "$D/ca/ca.pem" "$D/ca/server.pem" >"$D/out" 2>&1; check "inspect server cert" 1 $?
contains "server cert is bad_eku" "$D/out" "refused bad_eku: "

printf 'garbage' >"$D/garbage.der"
"$T" cert inspect --ca "$D/ca/ca.pem" "$D/garbage.der" >"$D/out" 2>&1; check "inspect malformed" 1 $?
contains "malformed line" "$D/out" "refused malformed: "

"$T" cert inspect --ca "$D/ca/ca.pem" "$D/missing.pem" >"$D/out" 2>"$D/err"; check "unreadable cert" 2 $?
[ ! -s "$D/out" ]; check "errors go to stderr only" 0 $?
contains "unreadable names the file" "$D/err" "missing.pem"
"$T" cert inspect --ca "$D/missing-ca.pem" "$D/ca/devices/DEV-2.pem" >"$D/out" 2>"$D/err"; check "unreadable bundle" 2 $?
"$T" cert inspect --ca "$D/ca/ca.pem" --crl "$D/garbage.der" "$D/ca/devices/DEV-2.pem" >"$D/out" 2>"$D/err"
check "bad crl" 2 $?
"$T" cert inspect "$D/ca/devices/DEV-2.pem" >"$D/out" 2>"$D/err"; check "missing --ca" 2 $?
"$T" ca revoke "$D/ca" nobody >"$D/out" 2>"$D/err"; check "revoke unknown" 2 $?
"$T" ca issue "$D/nowhere" --udid X --user x@example.com >"$D/out" 2>"$D/err"; check "issue without init" 2 $?
contains "issue without init says how" "$D/err" "tunnelctl ca init"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
