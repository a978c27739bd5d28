#!/usr/bin/env bash
# scripts/ptx-mix.py on the linear example's backward (nvcc, no GPU): every f32 add is attributed
# to a source line, the operand splits' residuals (tile.cuh's `x.x -= back.x`) are among them,
# with --ops all every instruction of the forward is, and a bad spec or binary is a clear error.
# Usage: ptx_mix_test.sh SOURCE_DIR TTTC_BINARY
set -euo pipefail
root=$1 tttc=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
err=$(mktemp)
trap 'rm -f "$err"' EXIT
out=$(python3 "$root/scripts/ptx-mix.py" "$root/examples/linear.json" --tttc "$tttc" --json --top 50)
python3 - "$out" <<'PY' || fail "report: $out"
import json, sys
r = json.loads(sys.argv[1])
adds = r["opcodes"].get("add.f32", 0) + r["opcodes"].get("sub.f32", 0)
assert r["instructions"] > 1000, r["instructions"]
assert r["selected"] == adds > 0, (r["selected"], adds)
assert sum(l["count"] for l in r["lines"]) == adds, "every add has a line (top 50 covers them)"
assert any(l["file"] == "templates/tttc/tile.cuh" and "back.x" in l["text"] for l in r["lines"]), \
    "the splits' residuals"
PY
# --ops all: every instruction is attributed to a line (the forward: a smaller kernel).
all=$(python3 "$root/scripts/ptx-mix.py" "$root/examples/linear.json" --pass forward --tttc "$tttc" \
  --ops all --json --top 100000)
python3 - "$all" <<'PY' || fail "--ops all: $all"
import json, sys
r = json.loads(sys.argv[1])
assert r["selected"] == r["instructions"] > 1000, (r["selected"], r["instructions"])
assert sum(l["count"] for l in r["lines"]) == r["instructions"]
PY
if python3 "$root/scripts/ptx-mix.py" "$root/examples/no-such.json" --tttc "$tttc" 2>"$err"; then
  fail "a missing spec should fail"
fi
grep -q "^error: .*emit" "$err" || fail "message: $(cat "$err")"
if python3 "$root/scripts/ptx-mix.py" "$root/examples/linear.json" --tttc /nonexistent 2>/dev/null; then
  fail "a missing binary should fail"
fi
echo "ptx-mix: pass"
