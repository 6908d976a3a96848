#!/usr/bin/env bash
# Fails when any of our C++ files differs from what clang-format (.clang-format) makes of it.
# Fix with: tools/check_format.sh --fix
set -u
cd "$(dirname "$0")/.."
mapfile -d '' files < <(find support dtr certauth uem idp gateway tools tests -type f \( -name '*.cpp' -o -name '*.hpp' \) -print0 2>/dev/null)
if [ "${1:-}" = --fix ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
clang-format --dry-run --Werror "${files[@]}" 2>&1 | grep -E '^[^ ].*: (error|warning):' | cut -d: -f1 | sort -u | sed 's/$/: not clang-formatted (run tools\/check_format.sh --fix)/'
[ "${PIPESTATUS[0]}" -eq 0 ] && echo "format: ok (${#files[@]} files)"
