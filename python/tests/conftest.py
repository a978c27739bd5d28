"""Shared helpers for the CPU test suite: small specs, seeded random inputs in either layout, and
a fresh TorchInductor cache per session (a stale cache can replay old strides)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="tttc-inductor-"))
os.environ.setdefault("TTTC_REF_THREADS", "2")

import pytest  # noqa: E402
import torch  # noqa: E402

import tttc  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def make_spec(model="linear", head_dim=16, mini_batch=8, causal=True, dtype="f32",
              checkpoint_group=1, depth=2, activation="gelu_tanh", name=None) -> tttc.Spec:
    inner = "linear" if model == "linear" else {"type": "mlp", "depth": depth, "expansion": 4,
                                                "activation": activation}
    return tttc.Spec.from_dict({"name": name or f"{model}-{head_dim}-{mini_batch}",
                                "inner_model": inner, "head_dim": head_dim,
                                "mini_batch": mini_batch, "causal": causal, "dtype": dtype,
                                "checkpoint_group": checkpoint_group})


def make_inputs(spec: tttc.Spec, B=2, H=2, T=20, layout="bthf", per_batch=False,
                dtype=torch.float64, seed=0, requires_grad=False):
    """q, k, v, lr, tau, gamma, beta, state of valid ranges (lr small, tau = 1/(i+1), gamma ~ 1)."""
    g = torch.Generator().manual_seed(seed)
    f, K = spec.head_dim, spec.mini_batch
    tok_dtype = dtype if dtype == torch.float64 else spec.torch_dtype
    shape = (B, T, H, f) if layout == "bthf" else (B, H, T, f)
    q, k, v = (torch.randn(shape, generator=g, dtype=torch.float64).to(tok_dtype)
               for _ in range(3))
    lr_shape = shape[:3]
    lr = (0.05 + 0.1 * torch.rand(lr_shape, generator=g, dtype=torch.float64)).to(dtype)
    tau = (1.0 / torch.arange(1, K + 1, dtype=torch.float64)
           + 0.05 * torch.rand(K, generator=g, dtype=torch.float64)).to(dtype)
    gamma = (1 + 0.1 * torch.randn(H, f, generator=g, dtype=torch.float64)).to(dtype)
    beta = (0.1 * torch.randn(H, f, generator=g, dtype=torch.float64)).to(dtype)
    state = []
    for t in spec.state_layout:
        sh = ((B, H) if per_batch else (H,)) + t.shape
        scale = 1.0 / (t.shape[0] ** 0.5) if t.name.startswith("W") else 0.1
        state.append((scale * torch.randn(sh, generator=g, dtype=torch.float64)).to(dtype))
    tensors = [q, k, v, lr, tau, gamma, beta, *state]
    if requires_grad:
        for t in tensors:
            t.requires_grad_()
    return q, k, v, lr, tau, gamma, beta, state


@pytest.fixture(scope="session")
def linear_spec():
    return make_spec("linear")


@pytest.fixture(scope="session")
def mlp_spec():
    return make_spec("mlp")
