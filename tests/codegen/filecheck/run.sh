#!/usr/bin/env bash
# run.sh TEST TTTC FILECHECK SOURCE_DIR WORK_DIR: runs the `// RUN:` lines of one FileCheck test
# (a small subset of LLVM lit) with bash -o pipefail, after these substitutions:
#   %tttc  the tttc tool         %FileCheck  LLVM's FileCheck      %src  the source tree
#   %s     the test file itself  %t          a fresh scratch path for this test
# Exits 77 (CTest's skip) with a message when FileCheck is not installed.
set -euo pipefail
test_file=$1 tttc=$2 filecheck=$3 src=$4 work=$5

if [[ -z $filecheck || ! -x $filecheck ]]; then
  echo "SKIP: LLVM FileCheck not found (Debian package llvm-14-tools; scripts/install-deps.sh installs it)"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work"

mapfile -t runs < <(sed -n 's|^// RUN: ||p' "$test_file")
if ((${#runs[@]} == 0)); then
  echo "$test_file: no '// RUN:' line" >&2
  exit 1
fi
for run in "${runs[@]}"; do
  cmd=${run//%tttc/$tttc}
  cmd=${cmd//%FileCheck/$filecheck}
  cmd=${cmd//%src/$src}
  cmd=${cmd//%s/$test_file}
  cmd=${cmd//%t/$work/t}
  echo "RUN: $cmd"
  if ! bash -o pipefail -c "$cmd"; then
    echo "FAILED: $run" >&2
    exit 1
  fi
done
