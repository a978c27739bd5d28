#!/usr/bin/env bash
# gpu-tune.sh: the tuner's numbers on a GPU (issue 9, section 4) and its device-side test.
# Tunes the six anchor workloads of ../shared/docs/anchors.md (W1/W2 causal TTT-Linear, W3/W4
# causal TTT-MLP(2): B16 H12 T2048 f64 K16; W5/W6 non-causal video TTT-MLP(2): B2 H48 T4096 f64
# K64 group 16; bf16 I/O) and 20 specs drawn at random from the spec language (python3's
# random.Random(SEED), default seed 9; the drawn specs are kept in OUT/specs), each with a short
# budget, then times each at its full shape with `tttc bench` twice: the heuristic
# (TTTC_AUTOTUNE=off) and the tuned schedule (--tuned). Every process runs under `timeout`.
# Writes, row by row as it goes: OUT/gpu-tune.md (the table), OUT/logs/* (each tune's progress
# lines, its --json, each bench's output), OUT/test_gpu_tune.log (the GPU test, when its binary
# sits next to tttc: scripts/device-bundle.sh puts it there).
# Usage: scripts/gpu-tune.sh TTTC_BINARY OUT_DIR [SEED]
#   env: ROWS (anchors, random or all: default all; two GPUs can run one half each),
#        ANCHOR_BUDGET (default 30s per anchor spec), RANDOM_BUDGET (6s per random spec),
#        RUNS (bench runs, default 10), NO_TEST=1 (skip the GPU test), TTTC_CACHE_DIR (default
#        OUT/cache: a fresh cache, so the tuning wall time includes cold compiles).
# Takes about 7 minutes on one H200 for the table (3 x 30 s + 20 x 6 s of tuning, plus compiles,
# checks and benches), then about 2 minutes for the GPU test.
# Needs on the device: the tttc binary (and its libraries: scripts/device-bundle.sh packs them
# into .gpu/lib; export LD_LIBRARY_PATH=.gpu/lib), python3, the CUDA driver; run from anywhere.
set -uo pipefail
[[ $# -ge 2 ]] || { sed -n '2,20p' "$0"; exit 2; }
tttc=$(realpath "$1") out=$2 seed=${3:-9}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(dirname "$tttc")
mkdir -p "$out/specs" "$out/logs"
out=$(realpath "$out")
export TTTC_CACHE_DIR=${TTTC_CACHE_DIR:-$out/cache}
anchor_budget=${ANCHOR_BUDGET:-30s} random_budget=${RANDOM_BUDGET:-6s} runs=${RUNS:-10}
table=$out/gpu-tune.md
seconds() { local d=$1; case $d in *s) echo "${d%s}" ;; *m) echo $((${d%m} * 60)) ;; *) echo "$d" ;; esac; }

{
  echo "# tttc tune on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
  echo
  echo "$("$tttc" --version | head -1), seed $seed, budgets: anchors $anchor_budget, random specs $random_budget;"
  echo "times: \`tttc bench\` medians of $runs at the full shape (heuristic: TTTC_AUTOTUNE=off; tuned: --tuned)."
  echo
  echo "| workload | spec | shape | measured | heuristic ms | tuned ms | speed-up | tuning wall s | candidates tried | tuned schedule (vs the heuristic) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} >"$table"

# spec FILE NAME MODEL_JSON F K CAUSAL DTYPE PRECISION GROUP
spec() {
  cat >"$1" <<JSON
{"tttc_spec": 1, "name": "$2", "inner_model": $3, "head_dim": $4, "mini_batch": $5,
 "causal": $6, "dtype": "$7", "precision": "$8", "checkpoint_group": $9}
JSON
}

# row LABELS SPEC SHAPE BUDGET: tunes, benches both ways, appends one table row per label
# (W1:forward, W2:total, W6:backward, ... or rN:total).
row() {
  local labels=$1 file=$2 shape=$3 budget=$4 name
  name=$(basename "$file" .json)
  local log=$out/logs/$name
  echo "== $name $shape: tuning (budget $budget)" >&2
  local start end rc
  start=$(date +%s.%N)
  timeout $(($(seconds "$budget") + 90)) "$tttc" tune "$file" --shape "$shape" --budget "$budget" --json \
    >"$log.tune.json" 2> >(tee "$log.tune.log" >&2)
  rc=$?
  end=$(date +%s.%N)
  TTTC_AUTOTUNE=off timeout 120 "$tttc" bench "$file" --shape "$shape" --runs "$runs" --json \
    >"$log.bench-heuristic.json" 2>&1
  timeout 120 "$tttc" bench "$file" --shape "$shape" --runs "$runs" --tuned --json \
    >"$log.bench-tuned.json" 2>&1
  python3 - "$labels" "$name" "$shape" "$log" "$start" "$end" "$rc" >>"$table" <<'PY'
import json, sys
labels, name, shape, log, start, end, rc = sys.argv[1:]
def load(path):
    try:
        text = open(path).read()
        return json.loads(text[text.index("{"):])
    except Exception:
        return None
tune, heur, tuned = load(log + ".tune.json"), load(log + ".bench-heuristic.json"), load(log + ".bench-tuned.json")
job = (tune or {}).get("jobs", [{}])[0] if tune and tune.get("jobs") else {}
tried = job.get("candidates", {}).get("timed", "-")
passes = job.get("passes", {})
summary = "; ".join(f"{p[:3]}: {v.get('summary', '-')}" for p, v in passes.items()) or f"tune exit {rc}"
def ms(b, what):
    if not b: return None
    f, w = b.get("forward_ms", -1), b.get("backward_ms", -1)
    v = {"forward": f, "backward": w, "total": f + w if f >= 0 and w >= 0 else -1}[what]
    return v if v >= 0 else None
for item in labels.split(","):
    label, what = item.split(":")
    h, t = ms(heur, what), ms(tuned, what)
    fmt = lambda v: f"{v:.3f}" if v is not None else "-"
    speed = f"{h / t:.2f}x" if h and t else "-"
    print(f"| {label} | {name} | {shape} | {what} | {fmt(h)} | {fmt(t)} | {speed} | "
          f"{float(end) - float(start):.0f} | {tried} | {summary} |")
PY
  tail -n "$(tr ',' '\n' <<<"$labels" | wc -l)" "$table"
}

# The anchors.
spec "$out/specs/anchor-linear.json" anchor-linear '"linear"' 64 16 true bf16 accurate 1
spec "$out/specs/anchor-mlp2.json" anchor-mlp2 '{"type": "mlp", "depth": 2}' 64 16 true bf16 accurate 1
spec "$out/specs/anchor-video.json" anchor-video \
  '{"type": "mlp", "depth": 2, "expansion": 4, "activation": "gelu_tanh"}' 64 64 false bf16 accurate 16
rows=${ROWS:-all}
if [[ $rows != random ]]; then
  row "W1:forward,W2:total" "$out/specs/anchor-linear.json" 16,12,2048 "$anchor_budget"
  row "W3:forward,W4:total" "$out/specs/anchor-mlp2.json" 16,12,2048 "$anchor_budget"
  row "W5:forward,W6:backward" "$out/specs/anchor-video.json" 2,48,4096 "$anchor_budget"
fi

# 20 random specs: each drawn field from the language's range, redrawn until `tttc spec` accepts it.
python3 - "$seed" "$out/specs" "$tttc" >"$out/specs/random.txt" <<'PY'
import json, random, subprocess, sys
seed, folder, tttc = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = random.Random(seed)
n = 0
while n < 20:
    depth = rng.choice([1, 2, 3, 4])
    model = "linear" if depth == 1 else {"type": "mlp", "depth": depth,
                                         "activation": rng.choice(["gelu_tanh", "relu", "silu"])}
    spec = {"tttc_spec": 1, "name": f"random-{n + 1:02d}", "inner_model": model,
            "head_dim": rng.choice([32, 64, 64, 128]), "mini_batch": rng.choice([8, 16, 16, 32, 64]),
            "causal": rng.choice([True, False]), "dtype": rng.choice(["bf16", "bf16", "f16", "f32"]),
            "precision": rng.choice(["accurate", "accurate", "tf32", "bf16"]),
            "checkpoint_group": rng.choice([1, 1, 4, 16])}
    B, H = rng.choice([(16, 12), (8, 16), (2, 48), (4, 8)])
    T = rng.choice([1024, 2048])
    path = f"{folder}/random-{n + 1:02d}.json"
    with open(path, "w") as f:
        json.dump(spec, f)
    if subprocess.run([tttc, "spec", path], capture_output=True).returncode != 0:
        continue
    print(path, f"{B},{H},{T}")
    n += 1
PY
i=0
while [[ $rows != anchors ]] && read -r file shape; do
  i=$((i + 1))
  row "r$i:total" "$file" "$shape" "$random_budget"
done <"$out/specs/random.txt"

# The device-side test (two specs end to end, records picked up by a new process).
if [[ -z ${NO_TEST:-} && -x $bin/test_gpu_tune ]]; then
  echo "== test_gpu_tune" >&2
  TTTC_TEST_BINARY=$tttc TTTC_TEST_SOURCE_DIR=$root TTTC_TEST_TUNE_PROBE=$bin/tttc_tune_probe \
    timeout 420 "$bin/test_gpu_tune" >"$out/test_gpu_tune.log" 2>&1
  echo "test_gpu_tune: exit $? (log: $out/test_gpu_tune.log)" | tee -a "$table"
fi
"$tttc" tune ls >"$out/logs/tune-ls.txt" 2>&1
echo "table: $table"
