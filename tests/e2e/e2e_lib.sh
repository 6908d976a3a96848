# Helpers shared by the end-to-end scripts (sourced after tests/cli/lib.sh). They read the
# caller's globals: $work, $here, $pids (array), $gw_port, $admin_port.

# e2e_setup: a fresh work directory as the current directory, removed at exit (KEEP_WORK=1 keeps
# it and says where); every pid in $pids is killed at exit.
e2e_setup() {
  work=$(mktemp -d)
  pids=()
  trap e2e_cleanup EXIT
  cd "$work" || exit 1
}
e2e_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "${KEEP_WORK:-}" ] && echo "kept $work" || rm -rf "$work"
}

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# wait_for SECONDS CMD... : polls CMD every 50 ms
wait_for() {
  local limit=$1
  shift
  local end=$((SECONDS + limit))
  until "$@"; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.05
  done
}

start_server() {  # start_server NAME ARGS... ; sets ${NAME}_port
  local name=$1
  shift
  : >"$work/$name.out"  # exists before the first poll (the background redirection may lag)
  node "$here/servers.js" "$@" >"$work/$name.out" 2>&1 &
  pids+=($!)
  wait_for 10 grep -q '^ready ' "$work/$name.out" || { echo "server $name did not start"; cat "$work/$name.out"; exit 1; }
  printf -v "${name}_port" '%s' "$(sed -n 's/^ready //p' "$work/$name.out")"
}

gw_curl() {  # gw_curl DEVICE-FILE-STEM [--ca CA_DIR] -- CURL_ARGS...
  local dev=$1 cadir=ca
  shift
  if [ "${1:-}" = --ca ]; then cadir=$2; shift 2; fi
  curl -sS --max-time 10 -p --proxy "https://127.0.0.1:$gw_port" --proxy-cacert ca/ca.pem \
    --proxy-cert "$cadir/devices/$dev.pem" --proxy-key "$cadir/devices/$dev.key" "$@"
}
reason_of() {  # reason_of DEVICE URL [curl args] : prints X-Tunnel-Reason of the CONNECT answer
  local dev=$1 url=$2
  shift 2
  gw_curl "$dev" -v "$@" "$url" 2>&1 >/dev/null | sed -n 's/^< X-Tunnel-Reason: //p' | tr -d '\r'
}
status_of() {
  local dev=$1 url=$2
  shift 2
  gw_curl "$dev" -v "$@" "$url" 2>&1 >/dev/null | sed -n 's/^< HTTP\/1.1 \([0-9]*\).*/\1/p' | head -1
}
metric() { curl -s "http://127.0.0.1:$admin_port/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }
metric_at_least() { local v; v=$(metric "$1"); [ -n "$v" ] && [ "$v" -ge "$2" ]; }
session_up() {  # session_up UDID PORT : the admin API lists a tunnel of UDID to 127.0.0.1:PORT
  curl -s "http://127.0.0.1:$admin_port/api/v1/sessions" | grep -q "\"udid\":\"$1\".*\"destination\":\"127.0.0.1:$2\""
}

# openssl_ca_setup: an `openssl ca` configuration (in ./x) over the dev CA in ./ca, for device
# certificates tunnelctl will not make: expired, other EKUs, weak keys or signatures.
openssl_ca_setup() {
  mkdir -p x
  : >x/index.txt
  echo 1000 >x/serial
  cat >x/ca.cnf <<EOF
[ca]
default_ca = dev
[dev]
database = $work/x/index.txt
new_certs_dir = $work/x
serial = $work/x/serial
policy = any
unique_subject = no
[any]
commonName = optional
EOF
}
# [SUBJ=/...] [SAN=...] openssl_cert NAME KEY-SPEC EKU START END DIGEST  (SAN= empty: no SAN)
# writes ca/devices/NAME.{pem,key}
openssl_cert() {
  local name=$1 keyspec=$2 eku=$3 start=$4 end=$5 md=$6
  local subj=${SUBJ:-"/O=tunnelgate dev devices/CN=$name/serialNumber=SN-$name"}
  local san=${SAN-"email:${name,,}@example.com"}
  openssl req -new -newkey "$keyspec" -nodes -keyout "ca/devices/$name.key" -out "x/$name.csr" \
    -subj "$subj" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n' \
    "$eku" >"x/$name.ext"
  [ -n "$san" ] && echo "subjectAltName=$san" >>"x/$name.ext"
  openssl ca -batch -config x/ca.cnf -cert ca/ca.pem -keyfile ca/ca.key -in "x/$name.csr" \
    -out "ca/devices/$name.pem" -startdate "$start" -enddate "$end" -md "$md" \
    -extfile "x/$name.ext" -notext -preserveDN >/dev/null 2>&1 ||
    { echo "openssl ca failed for $name"; exit 1; }
}
