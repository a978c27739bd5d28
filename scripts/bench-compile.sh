#!/usr/bin/env bash
# Cold-compile time of a spec (default examples/mlp2.json): N runs of `tttc compile` into an
# empty cache; prints each wall time and the median. Needs a build (scripts/build.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
spec=${1:-$root/examples/mlp2.json}
runs=${2:-5}
arch=${ARCH:-sm_90a}
times=()
for ((i = 0; i < runs; ++i)); do
  dir=$(mktemp -d)
  start=$(date +%s.%N)
  TTTC_CACHE_DIR=$dir "$root/build/tools/tttc" compile "$spec" --arch "$arch" >/dev/null
  end=$(date +%s.%N)
  rm -rf "$dir"
  times+=("$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", (e - s) * 1000 }')")
  echo "run $((i + 1)): ${times[-1]} ms"
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print "median: " a[int((NR+1)/2)] " ms"}'
