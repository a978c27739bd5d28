#!/usr/bin/env bash
# Plots a pass's time against the number of heads, one kernel vs a split, from a table written by
# a device run ("heads fused_ms split_ms round" per line, '#' comments; median over rounds), e.g.
# docs/results/query-split-heads-h200-run14.txt -> docs/results/query-split-heads.png, or with
# PASS = backward and LABEL = "backward split", backward-split-heads-h200-s20.txt.
# Installs Debian's python3-matplotlib when it is missing (non-interactive, idempotent).
# LABEL may name several split columns, comma-separated (backward-split3-heads-h200-s21.txt:
# "split in two,split in three").
# Usage: scripts/plot-heads.sh DATA.txt OUT.png [PASS [LABEL[,LABEL...]]]
set -euo pipefail
data=$1 out=$2
shift 2
if ! /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends python3-matplotlib
fi
/usr/bin/python3 "$(dirname "$0")/plot_heads.py" "$data" "$out" "$@"
