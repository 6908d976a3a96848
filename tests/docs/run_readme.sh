#!/usr/bin/env bash
# README.md's "The gateway in one minute", run as pasted: its sh code blocks, unchanged, in a
# fresh folder whose `build` is the build tree under test (so `B=$PWD/build/bin` finds the
# binaries), then every line of its ```text block(s) must appear in what they printed ("…"
# stands for text that varies). The block must also stop everything it started (`kill $GW
# $SITE`): processes still running afterwards fail the test (and are killed).
#   run_readme.sh README.md BUILD_DIR
# As root the block runs in a network namespace of its own with only loopback, which proves it
# needs no network and keeps its fixed ports (8080, 8443, 9443) apart from everything else;
# otherwise on the host, where those ports must be free (ctest: RESOURCE_LOCK).
set -u
readme=$1 build=$2
if [ ! -x "$build/bin/tunnelgate" ] || [ ! -x "$build/bin/tunnelctl" ]; then
  echo "FAIL: no tunnelgate/tunnelctl in $build/bin: build them first"
  exit 1
fi
for tool in node curl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing: tools/setup installs it"; exit 1; }
done

work=$(mktemp -d)
group=
cleanup() {
  # The block's own processes (its shell, the gateway, the site) share one process group.
  if [ -n "$group" ] && kill -0 -- "-$group" 2>/dev/null; then
    kill -TERM -- "-$group" 2>/dev/null
    sleep 1
    kill -KILL -- "-$group" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The section: from its heading to the next "## " heading.
section=$(awk '/^## The gateway in one minute[[:space:]]*$/ {f = 1; next} f && /^## / {exit} f' "$readme")
[ -n "$section" ] || { echo "FAIL: no '## The gateway in one minute' section in $readme"; exit 1; }
awk '/^```sh[[:space:]]*$/ {s = 1; next} /^```[[:space:]]*$/ {s = 0} s' <<<"$section" >"$work/minute.sh"
awk '/^```text[[:space:]]*$/ {s = 1; next} /^```[[:space:]]*$/ {s = 0} s' <<<"$section" >"$work/expected.txt"
[ -s "$work/minute.sh" ] || { echo "FAIL: the section has no \`\`\`sh block"; exit 1; }
[ -s "$work/expected.txt" ] || { echo "FAIL: the section has no \`\`\`text block of expected output"; exit 1; }

mkdir "$work/run"
ln -s "$(cd "$build" && pwd)" "$work/run/build"
if [ "$(id -u)" -eq 0 ] && unshare -n true 2>/dev/null; then
  runner=(unshare -n bash -c 'ip link set lo up && exec bash "$0"' "$work/minute.sh")
  where="a network namespace with only loopback"
else
  for port in 8080 8443 9443; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "FAIL: 127.0.0.1:$port is in use; the README's example needs it free"
      exit 1
    fi
  done
  runner=(bash "$work/minute.sh")
  where="the host's network"
fi
echo "running the README block ($(wc -l <"$work/minute.sh") lines) in $where"

# A process group of its own (job control), so that whatever the block starts can be found.
# The subshell writes the block's exit status when it ends (a zombie would still pass kill -0).
set -m
(
  cd "$work/run" && "${runner[@]}"
  echo $? >"$work/status"
) >"$work/out.txt" 2>&1 </dev/null &
group=$!
set +m
for _ in $(seq 600); do
  [ -e "$work/status" ] && break
  sleep 0.2
done
fails=0
if [ -e "$work/status" ]; then
  wait "$group"
  echo "the block exited with status $(cat "$work/status")"
else
  echo "FAIL: the block did not finish within 120 s"
  fails=$((fails + 1))
fi
echo "--- its output"
cat "$work/out.txt"
echo "---"

# Each expected line, as a whole line of the output ("…" matches anything, CRs dropped).
tr -d '\r' <"$work/out.txt" >"$work/out.clean"
while IFS= read -r line; do
  [ -n "$line" ] || continue
  pattern=$(printf '%s' "$line" | sed -e 's/[][\.*^$+?(){}|/]/\\&/g' -e 's/…/.*/g')
  if grep -qxE -- "$pattern" "$work/out.clean"; then
    echo "ok: $line"
  else
    echo "FAIL: expected the line '$line'"
    fails=$((fails + 1))
  fi
done <"$work/expected.txt"

# What the README says about the gateway's log.
log="$work/run/minute/gateway.log"
for want in ' access .*action=tunnel' ' request_refused .*reason=blocked'; do
  if grep -qE -- "$want" "$log" 2>/dev/null; then
    echo "ok: gateway.log has '$want'"
  else
    echo "FAIL: gateway.log has no line matching '$want'"
    fails=$((fails + 1))
  fi
done

# Everything the block started must be gone once it has ended (it ends with kill $GW $SITE;
# the gateway may take its shutdown_grace).
for _ in $(seq 50); do
  kill -0 -- "-$group" 2>/dev/null || break
  sleep 0.2
done
if kill -0 -- "-$group" 2>/dev/null; then
  echo "FAIL: processes the block started are still running:"
  pgrep -a -g "$group"
  fails=$((fails + 1))
else
  echo "ok: nothing the block started is still running"
fi

echo "$fails failed"
[ "$fails" -eq 0 ]
