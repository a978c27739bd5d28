#!/usr/bin/env bash
# scripts/bench-ab.sh without a GPU: fake tttc binaries that print fixed timings stand in for two
# builds; checks the medians table, the interleaving, and the argument errors.
set -euo pipefail
root=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A fake `tttc bench ... --json`: variant a takes 1.5 ms forward in round-robin 1.0/1.5/9.0 (median
# 1.5) and 2.0 backward; b takes 0.5 forward and reports no backward (--no-backward).
cat >"$work/a" <<'SH'
#!/usr/bin/env bash
n=$(cat "$0.count" 2>/dev/null || echo 0); echo $((n + 1)) >"$0.count"
f=(1.0 1.5 9.0); echo "{\"forward_ms\": ${f[n % 3]}, \"backward_ms\": 2.0}"
SH
cat >"$work/b" <<'SH'
#!/usr/bin/env bash
[[ " $* " == *" --no-backward "* ]] || { echo "b expects --no-backward" >&2; exit 3; }
echo '{"forward_ms": 0.5, "backward_ms": null}'
SH
chmod +x "$work/a" "$work/b"
echo '{}' >"$work/spec.json"
fail() { echo "FAIL: $*" >&2; exit 1; }

bash "$root/scripts/bench-ab.sh" --rounds 3 --out "$work/out" a="$work/a" b="$work/b" -- \
  "$work/spec.json@1,2,64@no-backward" >"$work/log"
grep -qF "| $work/spec.json@1,2,64@no-backward | a | 1.5000 | 2.0000 | 3 |" "$work/out/ab.md" ||
  fail "median of a: $(cat "$work/out/ab.md")"
grep -qF "| $work/spec.json@1,2,64@no-backward | b | 0.5000 | - | 3 |" "$work/out/ab.md" ||
  fail "b: $(cat "$work/out/ab.md")"
# Interleaved: a, b, a, b, ...
[[ $(awk '{print $2}' "$work/out/ab.txt" | tr -d '\n') == ababab ]] || fail "order: $(cat "$work/out/ab.txt")"

status() { set +e; bash "$root/scripts/bench-ab.sh" "$@" >/dev/null 2>"$work/err"; echo $?; set -e; }
[[ $(status a="$work/a" -- "$work/missing.json@1,2,3") == 2 ]] || fail "missing spec"
grep -q "not found" "$work/err" || fail "missing spec message: $(cat "$work/err")"
[[ $(status a="$work/a" -- "$work/spec.json@1,2") == 2 ]] || fail "bad shape"
[[ $(status a="$work/nothing" -- "$work/spec.json@1,2,3") == 2 ]] || fail "missing binary"
[[ $(status --rounds 1 b="$work/b" -- "$work/spec.json@1,2,3") == 1 ]] || fail "all failed"
grep -q "no measurement succeeded" "$work/err" || fail "all failed message: $(cat "$work/err")"
echo "bench-ab: ok"
