#!/usr/bin/env bash
# Runs the GPU validation this project records in docs/: the sweep test against the CPU reference,
# the CLI end-to-end tests (tttc run checked against the reference on the GPU), compute-sanitizer
# (memcheck, racecheck) on a few specs, and the anchor-shape timings.
# Usage: scripts/gpu-validate.sh BIN_DIR OUT_DIR [sweep|cli|sanitize|bench]...  (default: all)
set -uo pipefail
bin=$1 out=$2
shift 2
steps=${*:-sweep cli sanitize bench}
mkdir -p "$out"
export TTTC_CACHE_DIR=${TTTC_CACHE_DIR:-${TTT_CACHE_DIR:-/tmp/tttc-gpu-cache}}
root=$(cd "$(dirname "$0")/.." && pwd)

for step in $steps; do
  case $step in
    sweep)
      # Sharded over the CPUs: the shards compile their kernels in parallel (NVRTC is the slow
      # part of a cold sweep). TTTC_FILTER narrows it (a gtest filter), TTTC_SWEEP_PRECISION picks
      # the precision mode.
      shards=${TTTC_SHARDS:-$(nproc)}
      tag=sweep-${TTTC_SWEEP_PRECISION:-accurate}
      for ((i = 0; i < shards; ++i)); do
        GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$i TTTC_GPU_REPORT=$out/$tag-$i.md \
          "$bin/test_gpu_kernels" --gtest_brief=1 ${TTTC_FILTER:+--gtest_filter=$TTTC_FILTER} \
          >"$out/$tag-$i.log" 2>&1 &
      done
      wait
      cat "$out"/$tag-[0-9]*.log >"$out/$tag.log"
      { head -2 "$out/$tag-0.md"; for f in "$out"/$tag-[0-9]*.md; do tail -n +3 "$f"; done; } >"$out/$tag.md" 2>/dev/null
      rm -f "$out"/$tag-[0-9]*.log "$out"/$tag-[0-9]*.md
      echo "$tag: $(grep -c '^\[  PASSED' "$out/$tag.log") shards passed, $(grep -hE '^\[  FAILED  \].*\(' "$out/$tag.log" | wc -l) failed tests" ;;
    cli)
      TTTC_TEST_BINARY=$bin/tttc TTTC_TEST_SOURCE_DIR=$root "$bin/test_tttc_cli" --gtest_brief=1 >"$out/cli.log" 2>&1
      echo "cli: exit $? ($(grep -E 'PASSED|FAILED|SKIPPED' "$out/cli.log" | tail -3 | tr '\n' ' '))" ;;
    sanitize)
      for spec in linear mlp2 video-mlp2-noncausal mlp4-d128; do
        for tool in memcheck racecheck; do
          compute-sanitizer --tool $tool --error-exitcode 9 "$bin/tttc" check "$root/examples/$spec.json" \
            --shape 1,2,150 >"$out/sanitize-$tool-$spec.log" 2>&1
          echo "$tool $spec: exit $? $(grep -E 'ERROR SUMMARY|PASS|FAIL' "$out/sanitize-$tool-$spec.log" | tr '\n' ' ')"
        done
      done ;;
    bench)
      for spec in linear mlp2; do
        "$bin/tttc" bench "$root/examples/$spec.json" --shape 16,12,2048 --runs 10 2>&1 | tee -a "$out/bench.log"
      done
      "$bin/tttc" bench "$root/examples/video-mlp2-noncausal.json" --shape 2,48,4096 --runs 10 2>&1 | tee -a "$out/bench.log" ;;
  esac
done
