#!/usr/bin/env bash
# Enforces the layering of DESIGN.md §2 / STYLE.md §3 by reading #include lines:
#   1. code outside X/ includes only "X/X.hpp" of a library X (its one public header), except
#      X's own unit tests in tests/X/, which may test internals, and the fuzz targets in
#      tests/fuzz/, which call the parsers where they live;
#   2. the libraries (dtr, certauth, uem, idp) include no other library of ours but support/,
#      support/ includes nothing of ours, and nothing includes gateway/ internals (tests/vpn and
#      tests/netops test gateway/vpn and gateway/netops);
#   3. only gateway/netops/ includes netlink, nftables or TUN headers (DESIGN.md §2).
# support/ has two public headers: support/support.hpp and support/yaml.hpp (the YAML reader,
# apart so that libraries reading no YAML do not compile against yaml-cpp). Test helpers under
# tests/support/ (included as "support/temp_dir.hpp" from tests/) are not the library.
# Exit 0 when clean; otherwise prints each offending line and exits 1.
set -u
cd "${1:-$(dirname "$0")/..}"
libs=(support dtr certauth uem idp gateway)
bad=0
while IFS= read -r -d '' f; do
  dir=${f%%/*}
  [ "$dir" = tests ] && { sub=${f#tests/}; sub=${sub%%/*}; }
  while IFS= read -r line; do
    inc=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/' <<<"$line")
    lib=${inc%%/*}
    [[ " ${libs[*]} " == *" $lib "* ]] || continue
    [ "$dir" = tests ] && [ -f "tests/$inc" ] && continue  # a test helper of tests/support/
    if [ "$lib" != "$dir" ] && [ "$inc" != "$lib/$lib.hpp" ] &&
       ! { [ "$lib" = support ] && [ "$inc" = support/yaml.hpp ]; } &&
       ! { [ "$dir" = tests ] && { [ "$sub" = "$lib" ] || [ "$sub" = fuzz ] || [[ "$inc" == "$lib/$sub/"* ]]; }; }; then
      echo "$f: includes $inc: outside $lib/ only \"$lib/$lib.hpp\" may be included"
      bad=1
    fi
    case "$dir" in
      dtr|certauth|uem|idp|support)
        # support/ is beneath them all (so it may depend on none of them).
        if [ "$lib" != "$dir" ] && [ "$lib" != support ]; then
          echo "$f: includes $inc: the $dir library must not depend on $lib"
          bad=1
        fi ;;
    esac
  done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f")
done < <(find support dtr certauth uem idp gateway tools tests -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \) -print0 2>/dev/null)
while IFS= read -r hit; do
  case "$hit" in
    gateway/netops/*|tests/netops/*) ;;
    *) echo "$hit: only gateway/netops/ may touch netlink, nftables or TUN"; bad=1 ;;
  esac
done < <(grep -rlE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<(netlink/|nftables/|linux/if_tun\.h)' \
  support dtr certauth uem idp gateway tools tests 2>/dev/null)
if [ "$bad" -eq 0 ]; then echo "layering: ok"; fi
exit "$bad"
