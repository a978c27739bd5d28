#!/usr/bin/env bash
# Nsight Compute profile of the tile kernels of one spec on a small shape (stall reasons, issue
# activity), for docs/results.md. Usage: scripts/profile-tile.sh TTTC_BINARY SPEC OUT_DIR [B,H,T]
set -uo pipefail
tttc=$1 spec=$2 out=$3 shape=${4:-16,12,512}
mkdir -p "$out"
ncu --clock-control none --section WarpStateStats --section SchedulerStats --section LaunchStats \
  --section Occupancy --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
  --kernel-name regex:tttc_ "$tttc" bench "$spec" --shape "$shape" --runs 1 >"$out/ncu-$(basename "$spec" .json).txt" 2>&1
echo "ncu exit $?"
