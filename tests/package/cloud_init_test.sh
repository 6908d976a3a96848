#!/usr/bin/env bash
# cloud_init_schema: deploy/cloud-init/user-data.yaml and user-data-vpn.yaml
#   - pass `cloud-init schema --config-file` (Debian 12's cloud-init, offline);
#   - hold only the modules and write_files keys they are meant to (cloud-init 22.4 accepts any
#     top-level key, so a misspelt module would be ignored silently), fit EC2's 16 KB limit;
#   - embed deploy/cloud-init/gateway(-vpn).yaml and rules.yaml verbatim, write every file the
#     configuration names, secrets 0640, the egress address the configuration names, the
#     sysctl file and the VPN drop-in only in the VPN variant, and run --check-config before
#     starting the service; the runcmd script parses (sh -n);
#   - the configuration they write passes `tunnelgate --check-config` (with certificates from
#     tunnelctl and dummy secrets; as root in a network namespace holding its egress address,
#     otherwise with the egress address changed to 127.0.0.1) and the rules `tunnelctl dtr lint`.
#   cloud_init_test.sh SOURCE_DIR BIN_DIR
set -u
src=$1
bin=$2
. "$src/tests/cli/lib.sh"
dir=$src/deploy/cloud-init
work=$(mktemp -d)
netns=tg-ci-$$
trap 'ip netns del "$netns" 2>/dev/null; rm -rf "$work"' EXIT

if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "cloud_init_schema: python3-yaml is missing (tools/setup installs it with cloud-init)"
  exit 1
fi

# --- cloud-init's own schema --------------------------------------------------------------
for v in user-data user-data-vpn; do
  if command -v cloud-init >/dev/null; then
    run cloud-init schema --config-file "$dir/$v.yaml"
    expect_rc "cloud-init schema --config-file $v.yaml" 0
    expect_out_has "cloud-init schema: $v.yaml valid" "Valid cloud-config"
  else
    check "cloud-init installed (tools/setup installs Debian's cloud-init)" false
  fi
done

# --- our checks: keys, files, consistency ---------------------------------------------------
for v in user-data user-data-vpn; do
  vpn=0
  [ "$v" = user-data-vpn ] && vpn=1
  mkdir -p "$work/$v"
  run python3 - "$dir" "$v" "$vpn" "$work/$v" <<'PY'
import os, re, sys, yaml
d, name, vpn, out = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
path = os.path.join(d, name + ".yaml")
raw = open(path, "rb").read()
errors = []
def err(m): errors.append(f"{name}.yaml: {m}")
if not raw.startswith(b"#cloud-config\n"): err("the first line must be #cloud-config")
if len(raw) > 16384: err(f"{len(raw)} bytes: over EC2's 16 KB user-data limit")
doc = yaml.safe_load(raw)
allowed = {"package_update", "packages", "write_files", "runcmd"}
for k in doc:
    if k not in allowed: err(f"unexpected top-level key '{k}' (allowed: {sorted(allowed)})")
files = {}
for i, f in enumerate(doc.get("write_files", [])):
    for k in f:
        if k not in {"path", "owner", "permissions", "content"}: err(f"write_files[{i}]: unexpected key '{k}'")
    p = f.get("path", "")
    if p in files: err(f"write_files: {p} written twice")
    files[p] = f
    if not re.fullmatch(r"'?0[0-7]{3}'?", str(f.get("permissions", ""))) or not isinstance(f.get("permissions"), str):
        err(f"{p}: permissions must be a quoted octal string such as '0640'")
    if not re.fullmatch(r"[a-z_][a-z0-9_-]*:[a-z_][a-z0-9_-]*", str(f.get("owner", ""))):
        err(f"{p}: owner must be user:group")
    if p.startswith("/etc/tunnelgate/") and f.get("permissions") != "0640":
        err(f"{p}: files under /etc/tunnelgate must be 0640 (group tunnelgate after install)")
def content(p):
    if p not in files: err(f"does not write {p}"); return ""
    return files[p].get("content", "")
gw_name = "gateway-vpn.yaml" if vpn else "gateway.yaml"
gw_text = content("/etc/tunnelgate/gateway.yaml")
if gw_text != open(os.path.join(d, gw_name)).read():
    err(f"/etc/tunnelgate/gateway.yaml differs from deploy/cloud-init/{gw_name}")
rules_text = content("/etc/tunnelgate/rules.yaml")
if rules_text != open(os.path.join(d, "rules.yaml")).read():
    err("/etc/tunnelgate/rules.yaml differs from deploy/cloud-init/rules.yaml")
gw = yaml.safe_load(gw_text) or {}
# Every file the configuration names is written (relative to /etc/tunnelgate).
named = [gw["tls"]["cert"], gw["tls"]["key"], gw["tls"]["client_ca"], *gw["tls"].get("crl", []), gw["dtr"]]
ws1 = gw.get("uem", {}).get("ws1", {})
named += [v for k, v in ws1.items() if k.endswith("_file")]
named += [v for k, v in ws1.get("auth", {}).get("oauth", {}).items() if k.endswith("_file")]
for n in named:
    full = n if n.startswith("/") else "/etc/tunnelgate/" + n
    if full not in files: err(f"the configuration names {full}, which the user-data does not write")
if ("vpn" in gw) != vpn: err("a vpn: section belongs in the VPN variant only")
if gw.get("admin", {}).get("listen") != "127.0.0.1:9443": err("admin.listen must be 127.0.0.1:9443 (ExecReload and the health check use it)")
addr = str(gw["egress"]["address"])
script = content("/usr/local/sbin/tunnelgate-egress-address")
m = re.search(r"^address=(\S+)", script, re.M)
if not m or m.group(1) != addr: err(f"the egress-address script adds {m.group(1) if m else '?'}, the configuration says {addr}")
content("/etc/systemd/system/tunnelgate-egress-address.service")
if "Requires=tunnelgate-egress-address.service" not in content("/etc/systemd/system/tunnelgate.service.d/egress-address.conf"):
    err("tunnelgate.service must require the egress-address unit")
sysctl = [p for p in files if p.startswith("/etc/sysctl.d/")]
if vpn:
    if sysctl != ["/etc/sysctl.d/60-tunnelgate-vpn.conf"]: err(f"the VPN variant writes one sysctl file, found {sysctl}")
    elif not re.search(r"^net\.ipv4\.ip_forward = 0$", content(sysctl[0]), re.M):
        err("the VPN's sysctl file keeps net.ipv4.ip_forward off (tunnelgate forwards per interface)")
elif sysctl: err(f"only the VPN variant writes sysctl files, found {sysctl}")
cmds = doc.get("runcmd", [])
if len(cmds) != 1 or not isinstance(cmds[0], list) or cmds[0][:2] != ["sh", "-c"]:
    err("runcmd: one [sh, -c, SCRIPT] entry")
    script_text = ""
else:
    script_text = cmds[0][2]
lines = [l.strip() for l in script_text.splitlines()]
def at(prefix):
    for i, l in enumerate(lines):
        if l.startswith(prefix): return i
    err(f"runcmd does not run '{prefix}'"); return -1
order = [at("curl -fsSL"), at('echo "$sha256  $deb" | sha256sum -c -'), at("DEBIAN_FRONTEND=noninteractive apt-get install"),
         at("chgrp -R tunnelgate /etc/tunnelgate"), at("systemctl enable --now tunnelgate-egress-address.service"),
         at("tunnelgate --check-config /etc/tunnelgate/gateway.yaml"), at("systemctl enable --now tunnelgate.service")]
if lines[:1] != ["set -e"]: err("runcmd script must start with set -e (stop at the first failure)")
if order != sorted(order): err("runcmd order: download, verify, install, chgrp, egress address, --check-config, start")
has_vpn_dropin = any("examples/tunnelgate-vpn.conf /etc/systemd/system/tunnelgate.service.d/vpn.conf" in l for l in lines)
if has_vpn_dropin != vpn: err("the VPN drop-in is installed by the VPN variant only")
if "packages" not in doc or "curl" not in doc["packages"]: err("packages: curl (runcmd downloads with it)")
open(os.path.join(out, "runcmd.sh"), "w").write(script_text)
open(os.path.join(out, "egress-address.sh"), "w").write(script)
open(os.path.join(out, "gateway.yaml"), "w").write(gw_text)
open(os.path.join(out, "rules.yaml"), "w").write(rules_text)
for p in files:
    if p.startswith("/etc/tunnelgate/uem-"):
        open(os.path.join(out, os.path.basename(p)), "w").write("dummy\n")
print(addr)
for e in errors: print(e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
  expect_rc "$v.yaml: keys, files and consistency" 0
  egress=$(tail -1 <<<"$out")
  run sh -n "$work/$v/runcmd.sh"
  expect_rc "$v.yaml: the runcmd script parses" 0
  run sh -n "$work/$v/egress-address.sh"
  expect_rc "$v.yaml: the egress-address script parses" 0

  # The configuration it writes, with real certificates in place of the placeholders.
  [ -d "$work/ca" ] || "$bin/tunnelctl" ca init "$work/ca" >/dev/null
  mkdir -p "$work/$v/tls"
  cp "$work/ca/server.pem" "$work/ca/server.key" "$work/$v/tls/"
  cp "$work/ca/ca.pem" "$work/$v/tls/device-ca.pem"
  cp "$work/ca/crl.pem" "$work/$v/tls/device-ca.crl"
  run "$bin/tunnelctl" dtr lint "$work/$v/rules.yaml"
  expect_rc "$v.yaml: tunnelctl dtr lint of the rules it writes" 0
  if [ "$(id -u)" -eq 0 ] && ip netns add "$netns" 2>/dev/null; then
    ip -n "$netns" link set lo up
    ip -n "$netns" address add "$egress/32" dev lo
    run ip netns exec "$netns" "$bin/tunnelgate" --check-config "$work/$v/gateway.yaml"
    ip netns del "$netns"
  else
    sed -i "s/^  address: $egress /  address: 127.0.0.1 /" "$work/$v/gateway.yaml"
    run "$bin/tunnelgate" --check-config "$work/$v/gateway.yaml"
  fi
  expect_rc "$v.yaml: tunnelgate --check-config of the configuration it writes" 0
  expect_out_has "$v.yaml: --check-config ok" "gateway.yaml: ok"
done

finish
