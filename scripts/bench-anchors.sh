#!/usr/bin/env bash
# Times the anchor workloads of docs/results.md (issue 7, section 4) with `tttc bench` (CUDA
# events, median of --runs after a warm-up) in every precision mode, and the arena lowering beside
# the tile lowering where both apply. Writes one line per row to OUT/bench-anchors.log and a
# Markdown table to OUT/bench-anchors.md.
# Usage: scripts/bench-anchors.sh TTTC_BINARY OUT_DIR [ROWS...]
#   rows: w1w2 f128 k64 mlp2 video long long-mlp2 (default: all)
set -uo pipefail
tttc=$1 out=$2
shift 2
rows=${*:-w1w2 f128 k64 mlp2 video long long-mlp2}
mkdir -p "$out"
specs=$(mktemp -d)
log=$out/bench-anchors.log
table=$out/bench-anchors.md
[[ -f $table ]] || echo "| row | spec | shape | lowering | precision | forward ms | backward ms | fwd+bwd ms |" >"$table"
[[ $(wc -l <"$table") -gt 1 ]] || echo "|---|---|---|---|---|---|---|---|" >>"$table"

# spec NAME MODEL DEPTH F K CAUSAL PRECISION [GROUP]
spec() {
  local model=$2
  [[ $2 == mlp ]] && model="{\"type\": \"mlp\", \"depth\": $3}"
  [[ $2 == linear ]] && model='"linear"'
  cat >"$specs/$1.json" <<EOF
{"tttc_spec": 1, "name": "$1", "inner_model": $model, "head_dim": $4, "mini_batch": $5,
 "causal": $6, "dtype": "bf16", "precision": "$7", "checkpoint_group": ${8:-1}}
EOF
  echo "$specs/$1.json"
}

# row LABEL SPEC_FILE SHAPE [SCHEDULE_FILE]
row() {
  local label=$1 file=$2 shape=$3 schedule=${4:-} lowering=default
  local extra=()
  if [[ -n $schedule ]]; then
    extra=(--schedule "$schedule")
    lowering=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["lowering"] + "/" + s.get("backward_lowering", s["lowering"]))' "$schedule")
  fi
  local text
  text=$("$tttc" bench "$file" --shape "$shape" --runs "${RUNS:-20}" "${extra[@]}" 2>&1)
  # The heuristic's choice, as tttc bench describes it ("forward tile (...), backward arena (...)").
  [[ -z $schedule ]] && lowering=$(echo "$text" | grep -oE '(forward|backward) (tile|arena)' | awk '{print $2}' | paste -sd/)
  echo "== $label $(basename "$file") $shape $lowering" >>"$log"
  echo "$text" >>"$log"
  local fwd bwd
  # The times, as "forward 3.562 ms, backward 8.901 ms" (a kernel's description before them may
  # also say "forward" or "backward": "backward split in three").
  fwd=$(echo "$text" | grep -oE '(^|[ :,])forward [0-9.]+ ms' | tail -1 | grep -oE '[0-9.]+')
  bwd=$(echo "$text" | grep -oE '(^|[ :,])backward [0-9.]+ ms' | tail -1 | grep -oE '[0-9.]+')
  local total=""
  [[ -n $fwd && -n $bwd ]] && total=$(awk "BEGIN { printf \"%.3f\", $fwd + $bwd }")
  local precision
  precision=$(grep -o '"precision": "[a-z0-9]*"' "$file" | cut -d'"' -f4)
  echo "| $label | $(basename "$file" .json) | $shape | $lowering | $precision | ${fwd:-?} | ${bwd:-?} | ${total:-?} |" | tee -a "$table"
}

# arena_schedule SPEC [heuristic]: the arena lowering for both kernels, as a file: the heuristic's
# arena knobs with "heuristic", else the best arena schedule measured at W1/W2's shape.
arena_schedule() {
  "$tttc" compile "$1" --arch sm_90a --json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]["schedule"]
s["lowering"] = s["backward_lowering"] = "arena"
s["convert_checkpoints"] = False  # refused without a tile forward
s["global_state"] = s["tile_shared_kib"] = 0
if len(sys.argv) > 1:
    print(json.dumps(s))
    raise SystemExit
s["forward_arena"] = s["forward_state"] = s["backward_arena"] = "shared"
s["threads"] = 256
s["forward_matmul"] = s["backward_matmul"] = "mma_bf16x6"
s["forward_blocks_per_sm"] = s["backward_blocks_per_sm"] = 2
print(json.dumps(s))' ${2:+"$2"} >"$specs/arena.json"
  echo "$specs/arena.json"
}

for r in $rows; do
  case $r in
    w1w2)
      for p in accurate tf32 bf16; do row "W1/W2" "$(spec lin64 linear 1 64 16 true $p)" 16,12,2048; done
      row "W1/W2" "$(spec lin64 linear 1 64 16 true accurate)" 16,12,2048 "$(arena_schedule "$specs/lin64.json")" ;;
    f128)
      for p in accurate tf32 bf16; do row "f=128" "$(spec lin128 linear 1 128 16 true $p)" 16,12,2048; done
      row "f=128" "$(spec lin128 linear 1 128 16 true accurate)" 16,12,2048 "$(arena_schedule "$specs/lin128.json" heuristic)" ;;
    k64)
      for p in accurate tf32 bf16; do row "K=64" "$(spec lin64k64 linear 1 64 64 true $p)" 16,12,2048; done
      row "K=64" "$(spec lin64k64 linear 1 64 64 true accurate)" 16,12,2048 "$(arena_schedule "$specs/lin64k64.json" heuristic)" ;;
    mlp2)
      for p in accurate bf16; do row "W3/W4" "$(spec mlp2 mlp 2 64 16 true $p)" 16,12,2048; done ;;
    video)
      for p in accurate bf16; do row "W5/W6" "$(spec video mlp 2 64 64 false $p 16)" 2,48,4096; done ;;
    long)
      for p in accurate bf16; do row "W7" "$(spec lin64 linear 1 64 16 true $p)" 1,12,32768; done ;;
    long-mlp2)
      for p in accurate bf16; do row "W7 mlp2" "$(spec mlp2 mlp 2 64 16 true $p)" 1,12,32768; done ;;
  esac
done
rm -rf "$specs"
