#!/usr/bin/env bash
# deploy/tunnelgate.service passes `systemd-analyze verify` with the built binary in place of
# /usr/local/bin/tunnelgate. Skipped (77) where systemd-analyze is not installed.
#   systemd_unit_test.sh BIN_DIR UNIT
set -u
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed: skipped"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|/usr/local/bin/tunnelgate|$1/tunnelgate|g" "$2" >"$work/tunnelgate.service"
out=$(systemd-analyze verify "$work/tunnelgate.service" 2>&1)
if [ -n "$out" ]; then
  echo "systemd-analyze verify complained:"
  echo "$out"
  exit 1
fi
echo "deploy/tunnelgate.service: verified"
