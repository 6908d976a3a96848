#!/usr/bin/env bash
# package_install: tools/package builds the .deb from this Release build, apt-get installs it on
# this machine, and then:
#   - files, owners and modes, conffiles, the tunnelgate system user, /var/log/tunnelgate,
#     Depends covering every shared library the binaries load, man pages, bash completion
#     (against tunnelctl's own --help), the logrotate snippet (a real rotation), the unit
#     (systemd-analyze verify, where installed);
#   - the shipped /etc/tunnelgate/gateway.yaml: refused with 78 as shipped (no certificates, the
#     placeholder egress address), then, with trial certificates from tunnelctl in
#     /etc/tunnelgate/tls as docs/install.md says, accepted by --check-config run as the
#     tunnelgate user in a network namespace holding its egress address;
#   - the packaged binary run as the tunnelgate user on loopback: /healthz, /readyz, /metrics,
#     --reload, SIGHUP, SIGUSR1, the access log 0640, SIGTERM ends it with 0;
#   - apt-get purge leaves none of the package's files, /etc/tunnelgate or /var/log/tunnelgate
#     (the system user may stay: Debian policy).
# Root only (exit 77 otherwise). Refuses to run where a tunnelgate package is already installed.
# A trap purges the package whatever happens.
#   install_test.sh SOURCE_DIR BUILD_DIR
set -u
src=$1
build=$2
. "$src/tests/cli/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "package_install: skipped: installing a package needs root (CI runs the suite as root)"
  exit 77
fi
state=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' tunnelgate 2>/dev/null)
if [ -n "$state" ] && [ "${state:0:2}" != "un" ]; then
  echo "package_install: a tunnelgate package is already on this machine (dpkg: $state);"
  echo "  this test installs and purges its own and would destroy that installation and its"
  echo "  configuration: remove it first (apt-get purge tunnelgate) or run the test elsewhere"
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
work=$(mktemp -d)
chmod 0711 "$work" # the tunnelgate user reaches its smoke-test folder below
netns=tg-pkg-$$
pids=()
installed=0
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  ip netns del "$netns" 2>/dev/null
  if [ "$installed" -eq 1 ]; then
    apt-get purge -y -q tunnelgate >/dev/null 2>&1 ||
      echo "package_install: cleanup: apt-get purge tunnelgate failed"
  fi
  [ -n "${KEEP_WORK:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for SECONDS CMD...
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.1
  done
}
as_gateway() { setpriv --reuid=tunnelgate --regid=tunnelgate --clear-groups -- "$@"; }
mode_of() { stat -c '%U:%G %a' "$1" 2>/dev/null; }

# --- build and install ------------------------------------------------------------------------
run "$src/tools/package" --build-dir "$build"
expect_rc "tools/package" 0
deb=$(tail -1 <<<"$out")
check "tools/package names a .deb in the build folder" test -f "$deb"
[ -f "$deb" ] || { finish; exit 1; }
version=$(sed -n 's/^project(tunnelgate VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
check "package named tunnelgate_${version}_amd64.deb" test "$(basename "$deb")" = "tunnelgate_${version}_$(dpkg --print-architecture).deb"

installed=1
run apt-get install -y -q --no-install-recommends "$deb"
expect_rc "apt-get install $deb" 0
expect_out_has "postinst says the gateway was not started" "/etc/tunnelgate/gateway.yaml"
check "dpkg: installed" test "$(dpkg-query -W -f='${db:Status-Abbrev}' tunnelgate)" = "ii "
check "dpkg: version $version" test "$(dpkg-query -W -f='${Version}' tunnelgate)" = "$version"
mapfile -t files < <(dpkg -L tunnelgate | while read -r f; do [ -f "$f" ] && echo "$f"; done)

# --- files --------------------------------------------------------------------------------
for f in /usr/bin/tunnelgate /usr/bin/tunnelctl; do
  check "$f root:root 755" test "$(mode_of $f)" = "root:root 755"
done
run /usr/bin/tunnelgate --version
check "tunnelgate --version: 'tunnelgate $version'" test "$(head -1 <<<"$out")" = "tunnelgate $version"
run /usr/bin/tunnelctl --version
check "tunnelctl --version: 'tunnelctl $version'" test "$(head -1 <<<"$out")" = "tunnelctl $version"
for b in /usr/bin/tunnelgate /usr/bin/tunnelctl; do
  check "$b stripped (no .symtab)" sh -c "! readelf -S $b | grep -q '\\.symtab'"
done

conffiles=$(dpkg-query -W -f='${Conffiles}\n' tunnelgate | awk 'NF {print $1}' | sort | tr '\n' ' ')
check "conffiles: config, rules, inventory, logrotate" test "$conffiles" = \
  "/etc/logrotate.d/tunnelgate /etc/tunnelgate/devices.json /etc/tunnelgate/gateway.yaml /etc/tunnelgate/rules.yaml "
check "gateway.yaml is deploy/gateway.yaml" cmp -s /etc/tunnelgate/gateway.yaml "$src/deploy/gateway.yaml"
check "rules.yaml is deploy/rules.okta-entra.yaml" cmp -s /etc/tunnelgate/rules.yaml "$src/deploy/rules.okta-entra.yaml"
check "devices.json is deploy/devices.example.json" cmp -s /etc/tunnelgate/devices.json "$src/deploy/devices.example.json"
check "unit is deploy/tunnelgate.service" cmp -s /lib/systemd/system/tunnelgate.service "$src/deploy/tunnelgate.service"
for f in /usr/share/man/man8/tunnelgate.8.gz /usr/share/man/man8/tunnelctl.8.gz \
  /usr/share/bash-completion/completions/tunnelctl /usr/share/doc/tunnelgate/copyright \
  /usr/share/doc/tunnelgate/changelog.gz /usr/share/doc/tunnelgate/install.md.gz \
  /usr/share/doc/tunnelgate/examples/tunnelgate-vpn.conf \
  /usr/share/doc/tunnelgate/examples/cloud-init/user-data.yaml; do
  check "$f installed" test -f "$f"
done
check "changelog.gz: a Debian changelog for $version" sh -c "zcat /usr/share/doc/tunnelgate/changelog.gz | head -1 | grep -q '^tunnelgate ($version) '"
for m in tunnelgate tunnelctl; do
  check "man page $m(8) has its title" sh -c "zcat /usr/share/man/man8/$m.8.gz | grep -q '^\\.TH ${m^^} 8 '"
  if command -v groff >/dev/null; then
    run sh -c "zcat /usr/share/man/man8/$m.8.gz | groff -man -ww -z 2>&1"
    check "man page $m(8): no groff warnings" test -z "$out"
  fi
done

# --- user and folders -----------------------------------------------------------------------
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd tunnelgate)
check "system user tunnelgate" test -n "${uid:-}" -a "${uid:-1000}" -lt 1000
check "tunnelgate: home /nonexistent" test "${home:-}" = /nonexistent
check "tunnelgate: no login shell" test "${shell:-}" = /usr/sbin/nologin
check "group tunnelgate" getent group tunnelgate
check "/etc/tunnelgate root:tunnelgate 750" test "$(mode_of /etc/tunnelgate)" = "root:tunnelgate 750"
check "/etc/tunnelgate/tls root:tunnelgate 750" test "$(mode_of /etc/tunnelgate/tls)" = "root:tunnelgate 750"
check "/var/log/tunnelgate tunnelgate:adm 2750" test "$(mode_of /var/log/tunnelgate)" = "tunnelgate:adm 2750"

# --- Depends: every shared library the binaries link (NEEDED) comes from a package in Depends
# (or from one that Provides a name there, as libspdlog1.10 provides libspdlog1.10-fmt9) ------
depends=$(dpkg-query -W -f='${Depends}' tunnelgate | sed 's/([^)]*)//g; s/|/,/g' | tr ',' '\n' | tr -d ' ')
check "Depends: adduser" grep -qxF adduser <<<"$depends"
in_depends() { # in_depends PACKAGE: it or a name it provides is in Depends
  local p
  grep -qxF "$1" <<<"$depends" && return 0
  for p in $(dpkg-query -W -f='${Provides}' "$1" 2>/dev/null | sed 's/([^)]*)//g' | tr ',' ' '); do
    grep -qxF "$p" <<<"$depends" && return 0
  done
  return 1
}
for b in /usr/bin/tunnelgate /usr/bin/tunnelctl; do
  for soname in $(objdump -p "$b" | awk '$1 == "NEEDED" {print $2}'); do
    lib=$(ldd "$b" | awk -v n="$soname" '$1 == n {print $3}')
    pkg=""
    for p in "$lib" "$(readlink -f "$lib")" "/usr${lib}" "${lib#/usr}"; do
      pkg=$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$pkg" ] && break
    done
    check "$b links $soname ($lib): its package '${pkg:-?}' is in Depends" in_depends "${pkg:-NONE}"
  done
done

# --- bash completion against tunnelctl's own --help ------------------------------------------
completion=/usr/share/bash-completion/completions/tunnelctl
complete_words() { # complete_words WORD... : what completing the last word offers
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1));
           COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; _tunnelctl; printf "%s\n" "${COMPREPLY[@]}" | sort' \
    _ "$completion" "$@"
}
groups=$(/usr/bin/tunnelctl --help | awk -F'\t' '/^  [a-z-]+\t/ {sub(/^  /, "", $1); print $1}' | sort)
check "completion offers tunnelctl's groups" test "$(complete_words tunnelctl "" | grep -v '^--')" = "$groups"
for g in $groups; do
  cmds=$(/usr/bin/tunnelctl "$g" --help | awk -F'\t' '/^  [a-z-]+\t/ {sub(/^  /, "", $1); print $1}' | sort)
  check "completion offers the commands of '$g'" test "$(complete_words tunnelctl "$g" "" | grep -v '^--')" = "$cmds"
  for c in $cmds; do
    opts=$(/usr/bin/tunnelctl "$g" "$c" --help | grep -oE '^  (-[a-z] \[ )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+' | sort -u)
    got=$(complete_words tunnelctl "$g" "$c" "--" | sort -u)
    check "completion offers the options of '$g $c'" test "$got" = "$opts"
  done
done

# --- logrotate: a real rotation with the installed snippet ----------------------------------
if command -v logrotate >/dev/null; then
  echo "a line" >/var/log/tunnelgate/test.log
  chown tunnelgate:adm /var/log/tunnelgate/test.log
  run logrotate -f -s "$work/logrotate.state" /etc/logrotate.d/tunnelgate
  expect_rc "logrotate -f /etc/logrotate.d/tunnelgate" 0
  check "logrotate moved the log away" test -f /var/log/tunnelgate/test.log.1
  check "logrotate created the new log tunnelgate:adm 640" test "$(mode_of /var/log/tunnelgate/test.log)" = "tunnelgate:adm 640"
  rm -f /var/log/tunnelgate/test.log*
else
  echo "note: logrotate not installed: the rotation check was not run"
fi

# --- the unit -------------------------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
  run systemd-analyze verify /lib/systemd/system/tunnelgate.service
  check "systemd-analyze verify of the installed unit (binaries, user, man pages)" test -z "$out$err"
fi

# --- the shipped example --------------------------------------------------------------------
run as_gateway /usr/bin/tunnelgate --check-config /etc/tunnelgate/gateway.yaml
expect_rc "--check-config on the example as shipped (no certificates yet)" 78
expect_err_has "as shipped: names the missing server certificate" "tls/server.pem"

# Trial certificates, as docs/install.md does it.
/usr/bin/tunnelctl ca init "$work/ca" >/dev/null
install -o root -g tunnelgate -m 0640 "$work/ca/server.pem" /etc/tunnelgate/tls/server.pem
install -o root -g tunnelgate -m 0640 "$work/ca/server.key" /etc/tunnelgate/tls/server.key
install -o root -g tunnelgate -m 0640 "$work/ca/ca.pem" /etc/tunnelgate/tls/device-ca.pem
install -o root -g tunnelgate -m 0640 "$work/ca/crl.pem" /etc/tunnelgate/tls/device-ca.crl
egress=$(sed -n 's/^  address: \([0-9.]*\).*/\1/p' /etc/tunnelgate/gateway.yaml)
run as_gateway /usr/bin/tunnelgate --check-config /etc/tunnelgate/gateway.yaml
expect_rc "--check-config with certificates but the placeholder egress address $egress" 78
expect_err_has "names the egress address" "$egress"
if ip netns add "$netns" 2>/dev/null; then
  ip -n "$netns" link set lo up
  ip -n "$netns" address add "$egress/32" dev lo
  run ip netns exec "$netns" setpriv --reuid=tunnelgate --regid=tunnelgate --clear-groups -- \
    /usr/bin/tunnelgate --check-config /etc/tunnelgate/gateway.yaml
  expect_rc "--check-config on the shipped example, certificates in place, $egress on the host" 0
  expect_out_has "--check-config says ok" "/etc/tunnelgate/gateway.yaml: ok"
  ip netns del "$netns"
else
  check "a network namespace for the egress address (ip netns add)" false
fi

# --- smoke run of the packaged binary as the tunnelgate user --------------------------------
smoke=$work/smoke
mkdir -p "$smoke/log"
cp "$work/ca/server.pem" "$work/ca/server.key" "$work/ca/ca.pem" "$work/ca/crl.pem" "$smoke/"
gw_port=$(free_port)
admin_port=$(free_port)
cat >"$smoke/gateway.yaml" <<EOF
listen: ["127.0.0.1:$gw_port"]
tls: {cert: server.pem, key: server.key, client_ca: ca.pem, crl: [crl.pem]}
uem: {source: file, file: /etc/tunnelgate/devices.json}
dtr: /etc/tunnelgate/rules.yaml
egress: {address: 127.0.0.1}
admin: {listen: "127.0.0.1:$admin_port"}
log: {access_log: $smoke/log/access.log}
limits: {shutdown_grace: 2s}
EOF
chown -R tunnelgate:tunnelgate "$smoke"
# setpriv itself in the background (not a shell function): $! is then the gateway's pid.
setpriv --reuid=tunnelgate --regid=tunnelgate --clear-groups -- \
  /usr/bin/tunnelgate "$smoke/gateway.yaml" >"$work/gateway.log" 2>&1 &
gw_pid=$!
pids+=("$gw_pid")
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$admin_port$1"; }
healthy() { [ "$(http_code /healthz)" = 200 ]; }
check "the packaged gateway answers /healthz as the tunnelgate user" wait_for 20 healthy
check "/readyz 200 (inventory, rules, CA loaded)" wait_for 10 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$admin_port/readyz)\" = 200 ]"
run curl -s --max-time 5 "http://127.0.0.1:$admin_port/metrics"
expect_out_has "/metrics" "tunnelgate_"
check "runs as tunnelgate" test "$(awk '$1 == "Uid:" {print $3}' "/proc/$gw_pid/status" 2>/dev/null)" = "$(id -u tunnelgate)"
check "access log created 0640" sh -c "stat -c '%U %a' '$smoke/log/access.log' | grep -qx 'tunnelgate 640'"
run as_gateway /usr/bin/tunnelgate --reload "$smoke/gateway.yaml"
expect_rc "tunnelgate --reload (the unit's ExecReload) against the running gateway" 0
kill -HUP "$gw_pid"
kill -USR1 "$gw_pid"
sleep 0.5
check "still healthy after SIGHUP and SIGUSR1" wait_for 5 healthy
kill -TERM "$gw_pid"
wait "$gw_pid"
rc=$?
pids=()
check "SIGTERM: exit 0" test "$rc" -eq 0
[ "$fails" -eq 0 ] || { echo "gateway log:"; tail -30 "$work/gateway.log"; }

# --- purge ----------------------------------------------------------------------------------
run apt-get purge -y -q tunnelgate
expect_rc "apt-get purge tunnelgate" 0
installed=0
check "dpkg: not installed after purge" sh -c "! dpkg-query -W -f='\${db:Status-Abbrev}' tunnelgate 2>/dev/null | grep -q '^[a-z]i'"
left=()
for f in "${files[@]}"; do [ -e "$f" ] && left+=("$f"); done
check "no file of the package left (${left[*]:-none})" test ${#left[@]} -eq 0
check "/etc/tunnelgate removed (certificates included)" test ! -e /etc/tunnelgate
check "/var/log/tunnelgate removed" test ! -e /var/log/tunnelgate
check "no enablement link left" test ! -e /etc/systemd/system/multi-user.target.wants/tunnelgate.service

finish
