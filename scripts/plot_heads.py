"""A pass's ms against heads, one kernel vs a split (scripts/plot-heads.sh)."""
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

data, out = sys.argv[1], sys.argv[2]
which = sys.argv[3] if len(sys.argv) > 3 else "forward"
# One label per split column after the one-kernel column, comma-separated; the last column of
# a line is the round.
labels = ["one kernel"] + (sys.argv[4] if len(sys.argv) > 4 else "query split").split(",")
series = [defaultdict(list) for _ in labels]
title = f"{which} time against heads"
for line in open(data):
    if line.startswith("#"):  # "# heads fused_ms split_ms ... round (what was measured)"
        if "(" in line and title == f"{which} time against heads":
            title = f"{which} time against heads: " + line[line.index("(") + 1 : line.rindex(")")]
        continue
    parts = line.split()
    if len(parts) < len(labels) + 1:
        continue
    heads = int(parts[0])
    for i, column in enumerate(series):
        column[heads].append(float(parts[1 + i]))
heads = sorted(series[0])
fig, ax = plt.subplots(figsize=(7, 4.2))
for column, label, marker in zip(series, labels, "os^dv"):
    ax.plot(heads, [statistics.median(column[h]) for h in heads], marker + "-", label=label)
ax.set_xscale("log", base=2)
ax.set_xticks(heads)
ax.set_xticklabels([str(h) for h in heads])
ax.set_xlabel("heads (B*H)")
ax.set_ylabel(f"{which} ms")
ax.set_ylim(bottom=0)
ax.set_title(title, fontsize=9)
ax.grid(True, alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(out, dpi=120)
print(f"wrote {out}")
