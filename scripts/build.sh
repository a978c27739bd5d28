#!/usr/bin/env bash
# Installs missing Debian packages, then configures and builds into build/ (Release).
# Shared by the two quick-start commands. Arguments are CMake targets to build (default: all):
# the main job builds only the tttc CLI, the test command everything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$root/build" -j"$(nproc)" "${targets[@]}"
