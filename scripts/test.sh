#!/usr/bin/env bash
# Quick start, second command: install, build, and run every test (GPU tests skip without a GPU).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh"
cd "$root/build"
ctest --output-on-failure -j"$(nproc)" --timeout 1800
# The Python package (CPU implementation) and the find_package(tttc) consumer project.
bash "$root/scripts/test-python.sh"
