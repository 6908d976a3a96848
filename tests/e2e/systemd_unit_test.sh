#!/usr/bin/env bash
# deploy/tunnelgate.service passes `systemd-analyze verify` with the built binary in place of
# /usr/bin/tunnelgate (man pages not looked up: they are installed by the package, whose test
# package_install checks them). Skipped (77) where systemd-analyze is not installed.
#   systemd_unit_test.sh BIN_DIR UNIT
set -u
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed: skipped"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|/usr/bin/tunnelgate|$1/tunnelgate|g" "$2" >"$work/tunnelgate.service"
out=$(systemd-analyze verify --man=no "$work/tunnelgate.service" 2>&1)
if [ -n "$out" ]; then
  echo "systemd-analyze verify complained:"
  echo "$out"
  exit 1
fi
# The VPN drop-in, applied on top.
vpn_conf=$(dirname "$2")/tunnelgate-vpn.conf
mkdir -p "$work/tunnelgate.service.d"
cp "$vpn_conf" "$work/tunnelgate.service.d/vpn.conf"
# By name, so that systemd looks for drop-ins in SYSTEMD_UNIT_PATH.
out=$(cd "$work" && SYSTEMD_UNIT_PATH="$work:" systemd-analyze verify --man=no tunnelgate.service 2>&1)
if [ -n "$out" ]; then
  echo "systemd-analyze verify complained with the VPN drop-in:"
  echo "$out"
  exit 1
fi
echo "deploy/tunnelgate.service (with and without tunnelgate-vpn.conf): verified"
