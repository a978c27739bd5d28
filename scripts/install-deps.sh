#!/usr/bin/env bash
# Installs the Debian packages tttc builds against. Non-interactive and idempotent:
# packages already present are skipped, so a second run changes nothing.
set -euo pipefail

packages=(cmake g++ make pkg-config nlohmann-json3-dev libgtest-dev libgmock-dev
          libcli11-dev libfmt-dev libssl-dev python3 python3-numpy clang-format
          llvm-14-tools)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi

# The CUDA toolkit (NVRTC and headers) is not a Debian package here: it must already be installed.
cuda_home=${CUDA_HOME:-${CUDA_PATH:-/usr/local/cuda}}
if [[ ! -f "$cuda_home/include/nvrtc.h" ]]; then
  echo "install-deps: CUDA toolkit not found at $cuda_home (set CUDA_HOME); NVRTC is required" >&2
  exit 1
fi
