#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy) over our .cpp files using BUILD_DIR/compile_commands.json.
#   tools/check_tidy.sh [BUILD_DIR]       (default: build)
set -u
cd "$(dirname "$0")/.."
build=${1:-build}
[ -f "$build/compile_commands.json" ] || { echo "no $build/compile_commands.json: configure with cmake first" >&2; exit 2; }
mapfile -d '' files < <(find dtr certauth uem gateway tools tests -type f -name '*.cpp' -print0 2>/dev/null)
# Two at a time: the machine has two cores.
printf '%s\0' "${files[@]}" | xargs -0 -n 4 -P 2 clang-tidy -p "$build" --quiet 2>/dev/null >"$build/clang-tidy.log"
rc=$?
grep -E '(warning|error):' "$build/clang-tidy.log" | sort -u
[ $rc -eq 0 ] && echo "clang-tidy: ok (${#files[@]} files)"
exit $rc
