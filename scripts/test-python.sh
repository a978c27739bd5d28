#!/usr/bin/env bash
# The Python and C++-consumer part of the test suite (run by scripts/test.sh after ctest):
#  1. `cmake --install` of build/ into build/install, then the consumer project tests/consumer
#     built against it with find_package(tttc) and run;
#  2. a fresh virtual environment build/py-venv (TTTC_REUSE_VENV=1 keeps an existing one, with
#     its torch) with the CPU torch wheel from the PyTorch index (PyPI's torch, about 5 GB with
#     its CUDA libraries, if that index cannot be reached; triton is left out: the tests compile
#     for the CPU), no pip cache, `pip install ./python`, and
#     pytest python/tests (CPU implementation: opcheck, gradcheck, torch.compile, DDP on gloo).
# Needs python3 with venv (Debian: python3-venv) and network access for the first run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${TTTC_BUILD_DIR:-$root/build}

echo "== tttc: cmake --install and the find_package(tttc) consumer"
rm -rf "$build/install" "$build/consumer"
cmake --install "$build" --prefix "$build/install" >/dev/null
cmake -S "$root/tests/consumer" -B "$build/consumer" -DCMAKE_PREFIX_PATH="$build/install" >/dev/null
cmake --build "$build/consumer" -j"$(nproc)" >/dev/null
"$build/consumer/tttc_consumer" "$root/examples/mlp2.json"

echo "== tttc: Python package"
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
  echo "python3 venv/ensurepip missing: installing python3-venv" >&2
  sudo_cmd=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $sudo_cmd apt-get install -y -qq python3-venv >/dev/null
fi
venv=$build/py-venv
if [ "${TTTC_REUSE_VENV:-0}" != 1 ] || [ ! -x "$venv/bin/python" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
fi
py=$venv/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK=1
# No wheel cache: PyPI's torch brings about 4 GB of CUDA libraries, and a cached copy of
# every wheel doubled what the install needs on disk (a CI machine ran out of space).
export PIP_NO_CACHE_DIR=1
free_gib() { df -Pk "$1" | awk 'NR == 2 { printf "%d", $4 / 1048576 }'; }
if ! "$py" -c "import torch" 2>/dev/null; then
  "$py" -m pip install -q --upgrade pip
  # torch alone first, then its requirements but triton (1 GB, used only by GPU inductor;
  # the tests compile for the CPU); pip evaluates each requirement's platform markers.
  if ! "$py" -m pip install -q --no-deps torch --index-url https://download.pytorch.org/whl/cpu; then
    echo "PyTorch CPU index unreachable: torch from PyPI (with its CUDA libraries)" >&2
    if [ "$(free_gib "$build")" -lt 6 ]; then
      echo "error: PyPI's torch needs about 6 GB free under $build; $(free_gib "$build") GB free" >&2
      exit 1
    fi
    "$py" -m pip install -q --no-deps torch
  fi
  mapfile -t torch_requirements < <("$py" -c "
from importlib.metadata import requires
print('\\n'.join(r for r in requires('torch') or [] if not r.startswith('triton')))")
  echo "torch's requirements but triton (pip may report triton as missing: left out on purpose)"
  if [ ${#torch_requirements[@]} -gt 0 ]; then "$py" -m pip install -q "${torch_requirements[@]}"; fi
fi
"$py" -m pip install -q pytest numpy
"$py" -m pip install -q "$root/python"
"$py" -c "import torch, tttc; print('torch', torch.__version__, '| tttc', tttc.__version__)"
# Fresh inductor cache per run: a stale one can replay old output strides.
inductor_cache=$(mktemp -d)
trap 'rm -rf "$inductor_cache"' EXIT
cd "$root/python"
TORCHINDUCTOR_CACHE_DIR=$inductor_cache "$py" -m pytest -q tests --durations=5
