# Small assertion helpers for CLI tests. Each failure prints what was expected and what came.
fails=0
passes=0

# run CMD... : sets $out, $err, $rc
run() {
  local o e
  o=$(mktemp) e=$(mktemp)
  "$@" >"$o" 2>"$e"
  rc=$?
  out=$(cat "$o") err=$(cat "$e")
  rm -f "$o" "$e"
}

check() {  # check DESCRIPTION CONDITION-COMMAND...
  local what=$1
  shift
  if "$@"; then
    passes=$((passes + 1))
  else
    fails=$((fails + 1))
    echo "FAIL: $what"
    echo "  rc=$rc"
    echo "  stdout: ${out:0:2000}"
    echo "  stderr: ${err:0:2000}"
  fi
}

expect_rc() { check "$1: exit $2" test "$rc" -eq "$2"; }
expect_out() { check "$1: stdout = '$2'" test "$out" = "$2"; }
expect_out_has() { check "$1: stdout contains '$2'" grep -qF -- "$2" <<<"$out"; }
expect_err_has() { check "$1: stderr contains '$2'" grep -qF -- "$2" <<<"$err"; }

finish() {
  echo "$passes passed, $fails failed"
  [ "$fails" -eq 0 ]
}
