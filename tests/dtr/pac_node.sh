#!/usr/bin/env bash
# The PAC file `tunnelctl dtr pac` writes, evaluated by node the way a browser evaluates it
# (pac_eval.js): http: and ws: URLs go DIRECT before any rule, since the gateway tunnels only
# CONNECT (an absolute-form GET http://... gets 400 use-connect); https: and wss: URLs follow the
# rules: tunnel -> HTTPS <gateway>, bypass -> DIRECT, block -> PROXY 127.0.0.1:9.
#   pac_node.sh TUNNELCTL PAC_EVAL_JS
set -u
tctl=$1 pac_eval=$2
. "$(dirname "$0")/../cli/lib.sh"
command -v node >/dev/null || { echo "node is missing: tools/setup installs nodejs"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/rules.yaml" <<'YAML'
rule_sets:
  - name: laptops
    platforms: [windows, macos]
    mode: full-device
    default: bypass
    rules:
      - action: block
        destinations: [ads.example]
      - action: bypass
        destinations: [static.okta.com]
      - action: tunnel
        preset: {name: okta-entra-login, okta_tenant: acme}
      - action: tunnel
        destinations: ["10.20.0.0/16", "*.tunnel.example"]
YAML

run "$tctl" dtr pac "$work/rules.yaml" --platform windows --gateway gw.example:8443
expect_rc "pac" 0
printf '%s\n' "$out" >"$work/proxy.pac"
expect_out_has "pac names the refusal" "400 use-connect"
expect_out_has "pac says why http goes direct" "tunnels only CONNECT"
expect_out_has "pac checks the scheme" 'if (tgPlain(url)) return "DIRECT";'
plain_line=$(grep -n 'tgPlain(url)) return' "$work/proxy.pac" | head -1 | cut -d: -f1)
rule_line=$(grep -n '// rule 1 ' "$work/proxy.pac" | head -1 | cut -d: -f1)
check "the scheme check comes before rule 1 ($plain_line < $rule_line)" \
  test "${plain_line:-999999}" -lt "${rule_line:-0}"

cat >"$work/cases.json" <<'JSON'
[
 {"url": "http://acme.okta.com/app/login", "host": "acme.okta.com", "want": "DIRECT"},
 {"url": "ws://acme.okta.com/socket", "host": "acme.okta.com", "want": "DIRECT"},
 {"url": "http://login.microsoftonline.com:8080/", "host": "login.microsoftonline.com", "want": "DIRECT"},
 {"url": "http://10.20.1.2/", "host": "10.20.1.2", "want": "DIRECT"},
 {"url": "http://ads.example/", "host": "ads.example", "want": "DIRECT"},
 {"url": "https://acme.okta.com/", "host": "acme.okta.com", "want": "HTTPS gw.example:8443"},
 {"url": "https://login.microsoftonline.com/", "host": "login.microsoftonline.com", "want": "HTTPS gw.example:8443"},
 {"url": "wss://a.tunnel.example/socket", "host": "a.tunnel.example", "want": "HTTPS gw.example:8443"},
 {"url": "https://10.20.1.2/", "host": "10.20.1.2", "want": "HTTPS gw.example:8443"},
 {"url": "https://static.okta.com/app.js", "host": "static.okta.com", "want": "DIRECT"},
 {"url": "https://www.example.org/", "host": "www.example.org", "want": "DIRECT"},
 {"url": "https://ads.example/", "host": "ads.example", "want": "PROXY 127.0.0.1:9"}
]
JSON
run node "$pac_eval" "$work/proxy.pac" <"$work/cases.json"
expect_rc "every case answered as expected" 0
[ -n "$err" ] && echo "$err"

# The harness itself must be able to fail: a wrong expectation exits 1 and names the URL.
echo '[{"url": "http://acme.okta.com/", "host": "acme.okta.com", "want": "HTTPS gw.example:8443"}]' \
  >"$work/wrong.json"
run node "$pac_eval" "$work/proxy.pac" <"$work/wrong.json"
expect_rc "a wrong expectation fails" 1
expect_err_has "a wrong expectation names the URL" "FAIL http://acme.okta.com/"

# And a PAC that asks DNS fails instead of quietly getting no answer.
printf 'function FindProxyForURL(url, host) { return dnsResolve(host) ? "DIRECT" : "DIRECT"; }\n' \
  >"$work/dns.pac"
run node "$pac_eval" "$work/dns.pac" <"$work/cases.json"
check "a PAC calling dnsResolve fails" test "$rc" -ne 0
expect_err_has "a PAC calling dnsResolve fails" "DNS is not allowed"

finish
