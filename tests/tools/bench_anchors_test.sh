#!/usr/bin/env bash
# scripts/bench-anchors.sh without a GPU: a fake tttc prints `tttc bench`'s line for a split
# schedule, whose kernel descriptions also say "forward" and "backward" ("backward split in
# three"); the table must take the times, not the words before them.
set -euo pipefail
root=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/tttc" <<'SH'
#!/usr/bin/env bash
[[ $1 == bench ]] || { echo "unexpected: $*" >&2; exit 3; }
echo "$2 B=1 H=12 T=32768 precision=accurate: forward tile (4 warps per team, 1 teams per CTA, query split), backward tile (4 warps per team, 1 teams per CTA, backward split in three): forward 3.562 ms, backward 8.901 ms (median of 20)"
SH
chmod +x "$work/tttc"
fail() { echo "FAIL: $*" >&2; exit 1; }
RUNS=2 bash "$root/scripts/bench-anchors.sh" "$work/tttc" "$work/out" long >"$work/log" 2>&1 ||
  fail "exit status $?: $(cat "$work/log")"
grep -qF "| tile/tile | accurate | 3.562 | 8.901 | 12.463 |" "$work/out/bench-anchors.md" ||
  fail "table: $(cat "$work/out/bench-anchors.md")"
echo "bench-anchors: ok"
