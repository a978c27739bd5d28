#!/usr/bin/env bash
# Installs missing Debian packages, then configures and builds tttc into build/ (Release).
# Shared by the two quick-start commands.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$root/build" -j"$(nproc)"
