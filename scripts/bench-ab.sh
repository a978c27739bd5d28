#!/usr/bin/env bash
# A/B timing of tttc builds on one GPU: every variant runs every case once per round, the rounds
# interleaved (so clock and thermal drift hit all variants alike), and the table gives each
# variant's median over the rounds of `tttc bench`'s medians (CUDA events), forward and backward.
# Each binary carries its own templates, so two builds of tttc are two kernel versions.
#
# Usage: scripts/bench-ab.sh [--rounds N] [--runs N] [--out DIR] NAME=TTTC_BINARY... -- CASE...
#   CASE: SPEC_FILE@B,H,T[@no-backward][@SCHEDULE_FILE]
# Example (the W2 and W7 shapes, base against a change):
#   scripts/bench-ab.sh base=old/tttc new=build/tools/tttc -- w1.json@16,12,2048 w1.json@1,12,32768
# Writes DIR/ab.txt (one line per measurement) and DIR/ab.md (the medians); DIR defaults to a
# fresh temporary folder, printed at the end. Each variant uses its own kernel cache under DIR.
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
rounds=3 runs=20 out=""
variants=() cases=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --rounds) rounds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; cases=("$@"); break ;;
    *=*) variants+=("$1"); shift ;;
    *) echo "error: unexpected argument '$1' (expected NAME=BINARY or --; see --help)" >&2; exit 2 ;;
  esac
done
if [[ ${#variants[@]} -eq 0 || ${#cases[@]} -eq 0 ]]; then
  echo "error: need at least one NAME=BINARY and one case after --" >&2
  usage >&2
  exit 2
fi
for v in "${variants[@]}"; do
  bin=${v#*=}
  [[ -x $bin ]] || { echo "error: variant '${v%%=*}': '$bin' is not an executable" >&2; exit 2; }
done
for c in "${cases[@]}"; do
  IFS=@ read -r spec shape _ <<<"$c"
  [[ -f $spec ]] || { echo "error: case '$c': spec file '$spec' not found" >&2; exit 2; }
  [[ $shape =~ ^[0-9]+,[0-9]+,[0-9]+$ ]] || { echo "error: case '$c': shape must be B,H,T" >&2; exit 2; }
done
out=${out:-$(mktemp -d)}
mkdir -p "$out"
: >"$out/ab.txt"

for ((round = 1; round <= rounds; ++round)); do
  for c in "${cases[@]}"; do
    IFS=@ read -r -a parts <<<"$c"
    spec=${parts[0]} shape=${parts[1]}
    extra=()
    for p in "${parts[@]:2}"; do
      if [[ $p == no-backward ]]; then extra+=(--no-backward); else extra+=(--schedule "$p"); fi
    done
    for v in "${variants[@]}"; do
      name=${v%%=*} bin=${v#*=}
      json=$(TTTC_CACHE_DIR="$out/cache-$name" "$bin" bench "$spec" --shape "$shape" --runs "$runs" \
        --json "${extra[@]}" 2>>"$out/errors.log") || { echo "warning: $name $c failed (see $out/errors.log)" >&2; continue; }
      fb=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["forward_ms"], r.get("backward_ms") or "-")' "$json")
      echo "$round $name $c $fb" | tee -a "$out/ab.txt"
    done
  done
done

if [[ ! -s $out/ab.txt ]]; then
  echo "error: no measurement succeeded; $out/errors.log says why:" >&2
  tail -5 "$out/errors.log" >&2
  exit 1
fi
python3 - "$out/ab.txt" >"$out/ab.md" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(lambda: ([], []))
variants, cases = [], []
for line in open(sys.argv[1]):
    _, name, case, fwd, bwd = line.split()
    if name not in variants: variants.append(name)
    if case not in cases: cases.append(case)
    rows[(case, name)][0].append(float(fwd))
    if bwd != "-": rows[(case, name)][1].append(float(bwd))
med = lambda xs: "%.4f" % statistics.median(xs) if xs else "-"
print("| case | variant | forward ms | backward ms | rounds |")
print("|---|---|---|---|---|")
for c in cases:
    for v in variants:
        f, b = rows[(c, v)]
        print(f"| {c} | {v} | {med(f)} | {med(b)} | {len(f)} |")
PY
cat "$out/ab.md"
echo "results: $out"
