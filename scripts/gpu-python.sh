#!/usr/bin/env bash
# GPU checks of the Python op, in two steps:
#   scripts/gpu-python.sh bundle [BUILD]   here: build libtttc and copy it, with the shared
#                                          libraries a bare GPU machine may lack, into .gpu/python
#   scripts/gpu-python.sh run OUT [ARGS]   on the GPU machine (repo root, .gpu/python carried):
#                                          python/tests/gpu/gpu_check.py OUT (sweep vs the CPU
#                                          reference, inference path, CUDA graph, two streams,
#                                          determinism, 200-step training, timings) and the DDP
#                                          check (nccl over 2 GPUs, or gloo as 2 processes on one)
# The run step needs python3 with torch (CUDA) there and nothing else: no build, no downloads.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:?usage: gpu-python.sh bundle [BUILD] | run OUT [gpu_check args]}
shift
case "$mode" in
  bundle)
    build=${1:-$root/build}
    cmake --build "$build" -j"$(nproc)" --target tttc_shared
    rm -rf "$root/.gpu/python" && mkdir -p "$root/.gpu/python"
    cp -L "$build/capi/libtttc.so" "$root/.gpu/python/libtttc.so"
    for lib in libfmt.so.9 libcrypto.so.3; do cp -L "/lib/x86_64-linux-gnu/$lib" "$root/.gpu/python/"; done
    du -sh "$root/.gpu/python"
    ;;
  run)
    out=$(mkdir -p "${1:?OUT}" && cd "$1" && pwd)
    shift
    lib=$root/.gpu/python
    [ -f "$lib/libtttc.so" ] || { echo "missing $lib/libtttc.so: run 'gpu-python.sh bundle' first" >&2; exit 2; }
    # NVRTC: the toolkit's, else the one that comes with torch's CUDA wheels.
    nvrtc_dir=$(python3 -c 'import glob, os, site
for d in site.getsitepackages():
    for p in glob.glob(os.path.join(d, "nvidia", "**", "libnvrtc.so*"), recursive=True):
        print(os.path.dirname(p)); raise SystemExit' 2>/dev/null || true)
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}${nvrtc_dir:+:$nvrtc_dir}"
    export TTTC_LIBRARY=$lib/libtttc.so PYTHONPATH=$root/python/src${PYTHONPATH:+:$PYTHONPATH}
    export TTT_CACHE_DIR=${TTT_CACHE_DIR:-$out/kernel-cache}
    status=0
    python3 "$root/python/tests/gpu/gpu_check.py" "$out" "$@" 2>&1 | tee "$out/gpu-python.log" || status=1
    gpus=$(python3 -c 'import torch; print(torch.cuda.device_count())')
    if [ "$gpus" -ge 2 ]; then ddp=(--device cuda --backend nccl); else ddp=(--device cuda --backend gloo --one-gpu); fi
    python3 "$root/python/tests/ddp_check.py" "${ddp[@]}" --out "$out/ddp" 2>&1 | tee "$out/ddp.log" || status=1
    echo "gpu-python: $([ $status = 0 ] && echo PASS || echo FAIL); results in $out"
    exit $status
    ;;
  *) echo "unknown mode '$mode' (bundle | run)" >&2; exit 2 ;;
esac
