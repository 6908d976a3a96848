#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy) over our .cpp files using BUILD_DIR/compile_commands.json.
#   tools/check_tidy.sh [BUILD_DIR] [--all]     (default: build)
# By default it checks the libraries and tools that do not include Asio/Beast (dtr, certauth,
# tunnelctl, gateway/netops and the pure pieces of gateway/vpn), which keeps the test suite
# within its time budget on two cores; --all adds the rest of gateway/, uem/, uem-sim and
# tests/ (clang-tidy spends about a minute per Beast unit there).
set -u
cd "$(dirname "$0")/.."
build=build
all=0
for a in "$@"; do
  case "$a" in
    --all) all=1 ;;
    *) build=$a ;;
  esac
done
[ -f "$build/compile_commands.json" ] || { echo "no $build/compile_commands.json: configure with cmake first" >&2; exit 2; }
if [ "$all" -eq 1 ]; then
  mapfile -d '' files < <(find support dtr certauth uem idp gateway tools tests -type f -name '*.cpp' -print0 2>/dev/null)
else
  # device_cmd.cpp includes the uem (Asio) header: --all covers it.
  mapfile -d '' files < <(find support dtr certauth idp tools/tunnelctl gateway/netops -type f -name '*.cpp' ! -name device_cmd.cpp -print0 2>/dev/null)
  for f in auth cstp dns_map packet pool tunnel; do files+=("gateway/vpn/$f.cpp"); done
fi
# Two at a time: the machine has two cores.
printf '%s\0' "${files[@]}" | xargs -0 -n 4 -P 2 clang-tidy -p "$build" --quiet 2>/dev/null >"$build/clang-tidy.log"
rc=$?
grep -E '(warning|error):' "$build/clang-tidy.log" | sort -u
[ $rc -eq 0 ] && echo "clang-tidy: ok (${#files[@]} files)"
exit $rc
