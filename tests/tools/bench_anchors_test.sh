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
if [[ $1 == compile ]]; then  # the heuristic of a tile forward beside an arena backward
  echo '[{"schedule": {"lowering": "tile", "backward_lowering": "arena", "convert_checkpoints": true, "global_state": 1, "tile_shared_kib": 160, "threads": 512}}]'
  exit 0
fi
[[ $1 == bench ]] || { echo "unexpected: $*" >&2; exit 3; }
# An arena schedule must not keep the tile forward's fields (the validator refuses them).
for ((i = 1; i <= $#; ++i)); do
  if [[ ${!i} == --schedule ]]; then
    j=$((i + 1))
    python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); sys.exit(s["convert_checkpoints"] or s["global_state"] or s["tile_shared_kib"] or s["lowering"] != "arena")' "${!j}" ||
      { echo "error: the arena schedule keeps tile fields: $(cat "${!j}")"; exit 2; }
  fi
done
echo "$2 B=1 H=12 T=32768 precision=accurate: forward tile (4 warps per team, 1 teams per CTA, query split), backward tile (4 warps per team, 1 teams per CTA, backward split in three): forward 3.562 ms, backward 8.901 ms (median of 20)"
SH
chmod +x "$work/tttc"
fail() { echo "FAIL: $*" >&2; exit 1; }
RUNS=2 bash "$root/scripts/bench-anchors.sh" "$work/tttc" "$work/out" long >"$work/log" 2>&1 ||
  fail "exit status $?: $(cat "$work/log")"
grep -qF "| tile/tile | accurate | 3.562 | 8.901 | 12.463 |" "$work/out/bench-anchors.md" ||
  fail "table: $(cat "$work/out/bench-anchors.md")"
RUNS=2 bash "$root/scripts/bench-anchors.sh" "$work/tttc" "$work/k64" k64 >"$work/log" 2>&1 ||
  fail "exit status $?: $(cat "$work/log")"
[[ $(grep -c "| 3.562 | 8.901 |" "$work/k64/bench-anchors.md") == 4 ]] ||
  fail "K = 64 rows (the arena row included): $(cat "$work/k64/bench-anchors.md")"
echo "bench-anchors: ok"
