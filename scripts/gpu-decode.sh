#!/usr/bin/env bash
# Runs the decode validation and benchmark of issue 12 on a GPU machine (docs/decode.md):
#  1. test_gpu_decode: prefill + decode against the forward on the whole sequence (linear,
#     mlp2..4; f32/f16/bf16; rows at mixed positions in permuted slots), CUDA-graph replay of 1000
#     steps bit for bit, a batch larger than the GPU holds at once equal to one row per launch
#     bit for bit, argument checks;
#  2. compute-sanitizer memcheck, racecheck and synccheck on one decode case and a batch larger than the GPU
#     holds at once (TTTC_DECODE_SANITIZE=1);
#  3. the benchmark: the 125M (H = 12) and 1.3B (H = 32) shapes, f = 64, K = 16, linear and mlp2,
#     bf16: decode step (CUDA-graph replay) at batch 1, 32 and 256 with tokens/s and the state
#     bandwidth against a measured copy, and prefill at B = 32, T = 512; a Markdown table.
# Usage: scripts/gpu-decode.sh BIN_DIR OUT_DIR [test|sanitize|bench]...   (default: all three)
# BIN_DIR holds tttc and test_gpu_decode (scripts/device-bundle.sh puts them in .gpu/bin, with
# the shared libraries a bare machine may lack in .gpu/lib). Every process runs under `timeout`.
set -uo pipefail
bin=$(cd "$1" && pwd) out=$2
shift 2
steps=${*:-test sanitize bench}
mkdir -p "$out"
out=$(cd "$out" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
export TTTC_CACHE_DIR=${TTTC_CACHE_DIR:-/tmp/tttc-gpu-cache}
[ -d "$bin/../lib" ] && export LD_LIBRARY_PATH=$(cd "$bin/../lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
status=0

for step in $steps; do
  case $step in
    test)
      timeout 1200 "$bin/test_gpu_decode" --gtest_brief=0 >"$out/gpu-decode.log" 2>&1
      rc=$?
      [ $rc = 0 ] || status=1
      echo "test_gpu_decode: exit $rc ($(grep -E '^\[  (PASSED|FAILED|SKIPPED)' "$out/gpu-decode.log" | tr '\n' ' '))" ;;
    sanitize)
      for tool in memcheck racecheck synccheck; do
        TTTC_DECODE_SANITIZE=1 timeout 1800 compute-sanitizer --tool $tool --error-exitcode 9 \
          "$bin/test_gpu_decode" --gtest_filter='Models/GpuDecode*' >"$out/sanitize-$tool-decode.log" 2>&1
        rc=$?
        [ $rc = 0 ] || status=1
        echo "$tool decode (mlp2 bf16): exit $rc $(grep -E 'ERROR SUMMARY|PASSED|FAILED' "$out/sanitize-$tool-decode.log" | tr '\n' ' ')"
      done ;;
    bench)
      : >"$out/decode-bench.jsonl"
      for spec in linear mlp2; do
        for H in 12 32; do
          for batch in 1 32 256; do
            timeout 600 "$bin/tttc" bench "$root/examples/$spec.json" --decode --batch $batch \
              --shape 32,$H,512 --runs 50 --json >"$out/bench-$spec-H$H-b$batch.json" 2>"$out/bench-$spec-H$H-b$batch.err"
            rc=$?
            if [ $rc = 0 ]; then
              tr -d '\n' <"$out/bench-$spec-H$H-b$batch.json" >>"$out/decode-bench.jsonl"
              echo >>"$out/decode-bench.jsonl"
            else
              status=1
              echo "bench $spec H=$H batch=$batch: exit $rc: $(tail -2 "$out/bench-$spec-H$H-b$batch.err")"
            fi
          done
        done
      done
      command -v python3 >/dev/null || { echo "no python3: raw results in $out/decode-bench.jsonl"; continue; }
      python3 - "$out/decode-bench.jsonl" >"$out/decode-bench.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if rows:
    print(f"Device: {rows[0]['device']} ({rows[0]['arch']}); measured device-to-device copy "
          f"{rows[0]['copy_gb_per_s']:.0f} GB/s (read + write).\n")
print("| spec | H | batch | decode step (us) | tokens/s | state MB/step | state GB/s | "
      "fraction of copy bw | prefill B=32 T=512 (ms) | prefill tokens/s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['name']} | {r['heads']} | {r['batch']} | {r['step_us']:.2f} | "
          f"{r['tokens_per_s']:.3g} | {r['state_bytes_per_step'] / 1e6:.2f} | "
          f"{r['state_gb_per_s']:.0f} | {100 * r['bandwidth_fraction']:.0f}% | "
          f"{r['prefill_ms']:.3f} | {r['prefill_tokens_per_s']:.3g} |")
PY
      cat "$out/decode-bench.md" ;;
  esac
done
exit $status
