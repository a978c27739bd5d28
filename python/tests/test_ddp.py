"""DDP with the gloo backend as two CPU processes: the same parameters as one process on the
concatenated batch, and heads sharded over ranks equal one call over every head (ddp_check.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_ddp_two_processes_gloo_cpu(tmp_path):
    script = Path(__file__).with_name("ddp_check.py")
    env = dict(os.environ, TTTC_REF_THREADS="1")
    r = subprocess.run([sys.executable, str(script), "--device", "cpu", "--backend", "gloo",
                        "--out", str(tmp_path)], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads((tmp_path / "ddp.json").read_text())
    assert result["pass"]
    assert result["max_param_rel_err"] < 1e-5
    assert result["param_change_max_abs"] > 1e-3
    assert result["heads_dtau_rel_err"] < 1e-5
    assert result["reference_losses"][-1] < result["reference_losses"][0]
