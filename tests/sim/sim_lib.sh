# Helpers shared by the okta-sim and entra-sim tests: a test PKI, starting a simulator on port
# 0, HTTPS requests with curl, JSON expectations with node, JWTs signed with openssl, JWKs.
# Source after tests/cli/lib.sh; needs $work (a fresh temp dir) and fills $pids.
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "${KEEP_WORK:-}" ] && echo "kept $work" || rm -rf "$work"
}

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

# make_pki : ca.pem, server.pem/server.key for 127.0.0.1 and ::1 in $work
make_pki() {
  (
    cd "$work" || exit 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
      -out ca.pem -subj /CN=sim-test-ca -days 2 \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
      -out server.csr -subj /CN=127.0.0.1
    printf 'subjectAltName=IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 0x5151 -days 2 \
      -extfile server.ext -out server.pem
  ) >"$work/pki.log" 2>&1 || { cat "$work/pki.log"; exit 1; }
}

# start_sim NAME BINARY ARGS... : starts it on port 0; sets ${NAME}_pid and ${NAME}_port
start_sim() {
  local name=$1 bin=$2
  shift 2
  rm -f "$work/$name.port"
  "$bin" --cert "$work/server.pem" --key "$work/server.key" --port-file "$work/$name.port" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  local pid=$!
  pids+=("$pid")
  printf -v "${name}_pid" '%s' "$pid"
  wait_for 10 test -s "$work/$name.port" || { echo "$name did not start"; cat "$work/$name.err"; exit 1; }
  printf -v "${name}_port" '%s' "$(cat "$work/$name.port")"
}

# stop_sim NAME : SIGTERM, waits; sets $rc to its exit status
stop_sim() {
  local pid_var="${1}_pid"
  kill -TERM "${!pid_var}"
  wait "${!pid_var}"
  rc=$?
}

# http METHOD URL [CURL ARGS...] : sets $code, $body (also $out) and $hdrs (also $err)
http() {
  local method=$1 url=$2
  shift 2
  code=$(curl -sS -g --cacert "$work/ca.pem" -X "$method" -o "$work/body" -D "$work/hdrs" \
    -w '%{http_code}' "$@" "$url" 2>"$work/curl.err")
  rc=$?
  [ -f "$work/body" ] || : >"$work/body"
  mv "$work/body" "$work/last.body"  # node reads it from there: bodies can exceed one argument
  body=$(cat "$work/last.body")
  hdrs=$(cat "$work/hdrs" 2>/dev/null; cat "$work/curl.err")
  out=${body:0:2000} err=$hdrs
  rm -f "$work/hdrs"
}

# header NAME : the value of response header NAME from the last http call
header() { grep -i "^$1:" <<<"$hdrs" | head -1 | cut -d: -f2- | tr -d ' \r'; }

expect_code() { check "$1: HTTP $2" test "$code" = "$2"; }
# expect_json DESCRIPTION JS-EXPRESSION : `d` is the parsed body of the last answer
expect_json() {
  check "$1: $2" node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); if (!(eval(process.argv[2]))) process.exit(1);' "$work/last.body" "$2"
}
# jget JS-EXPRESSION : prints the value of the expression over the last body
jget() { node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const v = eval(process.argv[2]); console.log(typeof v === "string" ? v : JSON.stringify(v));' "$work/last.body" "$1"; }

b64url() { basenc --base64url -w0 | tr -d '='; }

# jws HEADER-JSON KEY.pem CLAIMS-JSON : a compact JWS signed with openssl; the header's "alg"
# (RS256 or ES256; ES256: DER -> raw r||s) picks the signature form
jws() {
  local header=$1 key=$2 claims=$3 h p sig
  h=$(printf '%s' "$header" | b64url)
  p=$(printf '%s' "$claims" | b64url)
  printf '%s.%s' "$h" "$p" >"$work/jws.in"
  openssl dgst -sha256 -sign "$key" -out "$work/jws.sig" "$work/jws.in" || return 1
  if [[ $header == *'"ES256"'* ]]; then
    # ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }: each left-padded to 32 bytes.
    sig=$(openssl asn1parse -inform DER -in "$work/jws.sig" |
      awk -F: '/INTEGER/ { v = $NF; while (length(v) < 64) v = "0" v; printf "%s", substr(v, length(v) - 63) }' |
      basenc --base16 -d | b64url)
  else
    sig=$(b64url <"$work/jws.sig")
  fi
  printf '%s.%s.%s' "$h" "$p" "$sig"
}

# jwt ALG KEY.pem CLAIMS-JSON : a compact JWS with header {"alg":ALG,"typ":"JWT"}
jwt() { jws "$(printf '{"alg":"%s","typ":"JWT"}' "$1")" "$2" "$3"; }

# jwk_rsa KID PUB.pem / jwk_ec KID PUB.pem : the public key as a JWK (RFC 7517/7518)
jwk_rsa() {
  local n
  n=$(openssl rsa -pubin -in "$2" -noout -modulus | cut -d= -f2 | basenc --base16 -d | b64url)
  printf '{"kty":"RSA","kid":"%s","use":"sig","alg":"RS256","n":"%s","e":"AQAB"}' "$1" "$n"
}
jwk_ec() {
  local xy=$work/ec-xy.$$
  openssl pkey -pubin -in "$2" -outform DER | tail -c 64 >"$xy"  # SPKI ends with 04||x||y
  printf '{"kty":"EC","kid":"%s","crv":"P-256","x":"%s","y":"%s"}' "$1" \
    "$(head -c 32 "$xy" | b64url)" "$(tail -c 32 "$xy" | b64url)"
  rm -f "$xy"
}
