#!/usr/bin/env bash
# Quick start, first command: install, build, then the main job on examples/mlp2.json: validate it
# and print its canonical form and signature, print its IR, compile its forward and backward
# kernels into the cache, and, where a GPU is present, run them and check them against the CPU
# reference.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh" tttc  # only what this job runs; scripts/test.sh builds the tests
tttc=$root/build/tools/tttc
spec=$root/examples/mlp2.json
echo "== tttc spec $spec"; "$tttc" spec "$spec"
echo "== tttc ir $spec"; "$tttc" ir "$spec"
echo "== tttc compile $spec"; "$tttc" compile "$spec"
echo "== tttc check $spec"
set +e
"$tttc" check "$spec" --shape 2,4,256
code=$?
set -e
if [[ $code -eq 4 ]]; then
  echo "(no GPU here: compiled only; run this again on a machine with an NVIDIA GPU to run and check)"
  exit 0
fi
exit $code
