#!/usr/bin/env bash
# Packs the GPU test binaries and the shared libraries a bare GPU machine may lack into .gpu/
# (ignored by git), for running on a lent GPU machine that cannot install packages.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
cmake --build "$build" -j"$(nproc)" --target tttc test_gpu_kernels test_tttc_cli test_gpu_tune \
  tttc_tune_probe test_gpu_decode test_gpu_autotune_on
rm -rf "$root/.gpu" && mkdir -p "$root/.gpu/bin" "$root/.gpu/lib"
cp "$build/tools/tttc" "$build/tests/gpu/test_gpu_kernels" "$build/tests/tools/test_tttc_cli" \
   "$build/tests/gpu/test_gpu_tune" "$build/tests/gpu/tttc_tune_probe" \
   "$build/tests/gpu/test_gpu_decode" "$build/tests/gpu/test_gpu_autotune_on" "$root/.gpu/bin/"
for lib in libfmt.so.9 libcrypto.so.3; do cp -L "/lib/x86_64-linux-gnu/$lib" "$root/.gpu/lib/"; done
# The arena matmul's unit check (CUDA runtime, built with nvcc; run it on the GPU machine).
nvcc=${CUDA_HOME:-/usr/local/cuda}/bin/nvcc
"$nvcc" -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I"$root/templates" \
  "$root/tests/gpu/standalone/arena_mma_check.cu" -o "$root/.gpu/bin/arena_mma_check"
du -sh "$root/.gpu"
