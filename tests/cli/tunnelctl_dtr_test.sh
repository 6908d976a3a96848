#!/usr/bin/env bash
# tunnelctl dtr: output lines and exit codes exactly as the admin interface promises.
#   tunnelctl_dtr_test.sh TUNNELCTL PAC_EVAL_JS EXAMPLE_RULES
set -u
tctl=$1 pac_eval=$2 example=$3
. "$(dirname "$0")/lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/rules.yaml" <<'YAML'
proxies:
  corp: https://proxy.corp.example:3128
rule_sets:
  - name: okta-app
    platforms: [ios]
    mode: per-app
    apps: [com.okta.mobile]
    default: bypass
    rules:
      - action: tunnel
        destinations: ["*.acme.okta.com", acme.okta.com]
      - action: proxy
        proxy: corp
        destinations: ["10.0.0.0/8:1-1024", "[2001:db8::/32]:443"]
      - action: block
        destinations: [ads.example]
  - name: laptops
    platforms: [windows]
    mode: full-device
    default: tunnel
YAML
R="$work/rules.yaml"

# --- eval: one line, first word the action, then set= rank= line=; exit 0
run "$tctl" dtr eval --rules "$R" --platform ios --app com.okta.mobile acme.okta.com
expect_rc "eval tunnel" 0
expect_out "eval tunnel" "tunnel set=okta-app rank=1 line=10"

run "$tctl" dtr eval --rules "$R" --platform ios --app com.okta.mobile 10.9.8.7:1024
expect_out "eval proxy" "proxy:corp set=okta-app rank=2 line=12"

run "$tctl" dtr eval --rules "$R" --platform ios --app com.okta.mobile '[2001:db8::5]:443'
expect_out "eval ipv6 with port" "proxy:corp set=okta-app rank=2 line=12"

run "$tctl" dtr eval --rules "$R" --platform ios --app com.okta.mobile '[2001:db8::5]:80'
expect_out "eval ipv6 other port" "bypass set=okta-app rank=default line=8"

run "$tctl" dtr eval --rules "$R" --platform ios --app com.okta.mobile ads.example:80
expect_out "eval block" "block set=okta-app rank=3 line=15"

run "$tctl" dtr eval --rules "$R" --platform ios --app com.okta.mobile www.example.com
expect_out "eval default bypass" "bypass set=okta-app rank=default line=8"

run "$tctl" dtr eval --rules "$R" --platform windows anything.example
expect_out "eval full-device default" "tunnel set=laptops rank=default line=20"

run "$tctl" dtr eval --rules "$R" --platform ios --app com.other acme.okta.com
expect_rc "eval refused" 0
check "eval refused: first word" test "${out%% *}" = "refused:no-rule-set"

run "$tctl" dtr eval --rules "$R" --platform ios --app com.okta.mobile --json x.acme.okta.com:8443
expect_rc "eval json" 0
check "eval json fields" node -e '
  const d = JSON.parse(process.argv[1]);
  if (d.action !== "tunnel" || d.set !== "okta-app" || d.rank !== 1 || d.line !== 10 ||
      d.port !== 8443 || d.destination !== "*.acme.okta.com") process.exit(1);' "$out"

run "$tctl" dtr eval --rules "$R" --platform ios --app com.other --json acme.okta.com
check "eval json refused" node -e '
  const d = JSON.parse(process.argv[1]);
  if (d.action !== "refused" || d.reason !== "no-rule-set" || d.set !== null) process.exit(1);' "$out"

run "$tctl" dtr eval --rules "$R" --platform ios --app com.okta.mobile 10.9.8.7:1025
expect_out "eval default port 443 vs explicit" "bypass set=okta-app rank=default line=8"

# --- eval errors: stderr, exit 2
run "$tctl" dtr eval --rules "$R" --platform blackberry x.example
expect_rc "eval bad platform" 2
expect_err_has "eval bad platform" "unknown platform 'blackberry'"
run "$tctl" dtr eval --rules "$R" --platform ios x.example:99999
expect_rc "eval bad port" 2
expect_err_has "eval bad port" "bad port"
run "$tctl" dtr eval --rules "$work/missing.yaml" --platform ios x.example
expect_rc "eval missing file" 2
expect_err_has "eval missing file" "cannot read $work/missing.yaml"
run "$tctl" dtr eval --platform ios x.example
expect_rc "eval no rules" 2
expect_err_has "eval no rules" "--rules"

# --- lint: clean 0, warnings 1, errors 2
run "$tctl" dtr lint "$example"
expect_rc "lint clean example" 0
cat >"$work/warn.yaml" <<'YAML'
proxies:
  spare: http://p.example:8080
rule_sets:
  - name: s
    platforms: [macos]
    mode: full-device
    default: block
    rules:
      - action: tunnel
        destinations: ["*okta.com", "*"]
      - action: block
        destinations: [evil.example]
YAML
run "$tctl" dtr lint "$work/warn.yaml"
expect_rc "lint warnings" 1
expect_out_has "lint unused proxy" "warn.yaml:2:10: warning: proxy 'spare' is not used"
expect_out_has "lint string suffix" "[string-suffix]"
expect_out_has "lint shadowed rule" "warn.yaml:11:9: warning: rule 2 of set 's' never matches"
cat >"$work/bad.yaml" <<'YAML'
rule_sets:
  - name: s
    platforms: [macos]
    mode: full-device
    default: block
    rules:
      - action: tunnle
        destinations: [10.0.0.0/33]
YAML
run "$tctl" dtr lint "$work/bad.yaml"
expect_rc "lint errors" 2
expect_out_has "lint error unknown action" "bad.yaml:7:17: error: rule_sets[0].rules[0].action: unknown action 'tunnle'"
expect_out_has "lint error bad cidr" "bad.yaml:8:24: error: rule_sets[0].rules[0].destinations[0]: '10.0.0.0/33': bad CIDR"

# eval on a broken file: every error on stderr, exit 2
run "$tctl" dtr eval --rules "$work/bad.yaml" --platform macos x.example
expect_rc "eval bad file" 2
expect_err_has "eval bad file" "bad.yaml:7:17:"

# --- pac: valid JavaScript that a PAC engine evaluates to the same decisions
run "$tctl" dtr pac "$example" --platform windows --gateway gw.example:8443
expect_rc "pac" 0
printf '%s\n' "$out" >"$work/proxy.pac"
echo '[{"url":"https://acme.okta.com/","host":"acme.okta.com"},
       {"url":"https://login.microsoftonline.com/","host":"login.microsoftonline.com"},
       {"url":"https://intranet.corp.example/","host":"intranet.corp.example"},
       {"url":"https://192.0.2.7/","host":"192.0.2.7"},
       {"url":"https://www.example.org/","host":"www.example.org"}]' >"$work/cases.json"
run node "$pac_eval" "$work/proxy.pac" <"$work/cases.json"
expect_rc "pac evaluates" 0
expect_out "pac answers" '["HTTPS gw.example:8443","HTTPS gw.example:8443","HTTPS proxy.corp.example:3128","PROXY 127.0.0.1:9","DIRECT"]'
run "$tctl" dtr pac "$example" --platform windows
expect_rc "pac without gateway" 2
run "$tctl" dtr pac "$R" --platform ios --gateway gw.example:443
expect_rc "pac without a set" 2
expect_err_has "pac without a set" "no rule set applies to platform ios"

# --- profile: JSON for the platform's sets
run "$tctl" dtr profile "$R" --platform ios
expect_rc "profile" 0
check "profile json" node -e '
  const p = JSON.parse(process.argv[1]);
  if (p.platform !== "ios" || p.rule_sets.length !== 1 || p.rule_sets[0].name !== "okta-app" ||
      p.rule_sets[0].rules[1].proxy !== "corp" || p.proxies.corp.url !== "https://proxy.corp.example:3128")
    process.exit(1);' "$out"

# --- preset
run "$tctl" dtr preset okta-entra-login --tenant acme --custom-domain sso.acme.example
expect_rc "preset" 0
expect_out_has "preset okta" "acme.okta.com"
expect_out_has "preset custom domain" "sso.acme.example"
expect_out_has "preset entra" "login.microsoftonline.com"
run "$tctl" dtr preset okta-entra-login --tenant 'bad tenant'
expect_rc "preset bad tenant" 2

# --- help and usage
for c in eval lint pac profile preset; do
  run "$tctl" dtr $c --help
  expect_rc "dtr $c --help" 0
  expect_out_has "dtr $c --help" "usage: tunnelctl dtr $c"
done
run "$tctl" --help
expect_rc "tunnelctl --help" 0
run "$tctl" dtr nonsense
expect_rc "unknown command" 2
expect_err_has "unknown command" "unknown command 'dtr nonsense'"
run "$tctl" dtr eval --rules "$R" --platform ios --bogus x.example
expect_rc "unknown option" 2
expect_err_has "unknown option" "(try --help)"

finish
