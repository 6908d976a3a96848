#!/usr/bin/env bash
# Enforces the layering of DESIGN.md §2 / STYLE.md §3 by reading #include lines:
#   1. code outside X/ includes only "X/X.hpp" of a library X (its one public header), except
#      X's own unit tests in tests/X/, which may test internals;
#   2. the libraries (dtr, certauth, uem, idp) include no other library of ours, and nothing
#      includes gateway/ internals (tests/vpn and tests/netops test gateway/vpn and
#      gateway/netops);
#   3. only gateway/netops/ includes netlink, nftables or TUN headers (DESIGN.md §2).
# Exit 0 when clean; otherwise prints each offending line and exits 1.
set -u
cd "${1:-$(dirname "$0")/..}"
libs=(dtr certauth uem idp gateway)
bad=0
while IFS= read -r -d '' f; do
  dir=${f%%/*}
  [ "$dir" = tests ] && { sub=${f#tests/}; sub=${sub%%/*}; }
  while IFS= read -r line; do
    inc=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/' <<<"$line")
    lib=${inc%%/*}
    [[ " ${libs[*]} " == *" $lib "* ]] || continue
    if [ "$lib" != "$dir" ] && [ "$inc" != "$lib/$lib.hpp" ] &&
       ! { [ "$dir" = tests ] && { [ "$sub" = "$lib" ] || [[ "$inc" == "$lib/$sub/"* ]]; }; }; then
      echo "$f: includes $inc: outside $lib/ only \"$lib/$lib.hpp\" may be included"
      bad=1
    fi
    case "$dir" in
      dtr|certauth|uem|idp)
        if [ "$lib" != "$dir" ]; then
          echo "$f: includes $inc: the $dir library must not depend on $lib"
          bad=1
        fi ;;
    esac
  done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f")
done < <(find dtr certauth uem idp gateway tools tests -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \) -print0 2>/dev/null)
while IFS= read -r hit; do
  case "$hit" in
    gateway/netops/*|tests/netops/*) ;;
    *) echo "$hit: only gateway/netops/ may touch netlink, nftables or TUN"; bad=1 ;;
  esac
done < <(grep -rlE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<(netlink/|nftables/|linux/if_tun\.h)' \
  dtr certauth uem idp gateway tools tests 2>/dev/null)
if [ "$bad" -eq 0 ]; then echo "layering: ok"; fi
exit "$bad"
