"""tttc.torch: the TTT layer as a PyTorch op.

    spec = tttc.Spec.from_file("examples/mlp2.json")
    out, final_state = tttc.torch.ttt(spec, q, k, v, lr, tau, gamma, beta, state,
                                      layout="bthf", output_final_state=False)

Shapes (f = spec.head_dim, K = spec.mini_batch, d_l = spec.widths[l]):
  q, k, v   [B, T, H, f] for layout "bthf" (default), [B, H, T, f] for "bhtf"
  lr        [B, T, H] or [B, H, T] likewise
  tau       [K];  gamma, beta [H, f]
  state     [W1, b1, W2, b2, ...]: W_l [H, d_{l-1}, d_l], b_l [H, d_l] shared over the batch, or
            each with a leading B (one state per sequence)
Returns out (like q) and, with output_final_state=True, the final state as a list shaped like a
per-sequence state ([B, H, ...]); else None.

Dtypes: on CUDA, q, k, v in the spec's dtype and everything else float32. On CPU (the float64
reference) the same, or everything float64 (for gradcheck). Every argument is checked, and an
error names it. Checkpoints are saved only when a gradient is needed.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..spec import Spec
from . import _ops

__all__ = ["ttt", "pack_state", "unpack_state", "ttt_prefill", "ttt_decode", "DecodeCache"]

_LAYOUTS = ("bthf", "bhtf")


def _fail(name: str, what: str):
    raise ValueError(f"tttc.torch.ttt: argument '{name}': {what}")


def _shape_str(shape) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _tensor(name: str, x, ndim: int):
    if not isinstance(x, torch.Tensor):
        _fail(name, f"a torch.Tensor expected, got {type(x).__name__}")
    if x.dim() != ndim:
        _fail(name, f"{ndim} dimensions expected, got shape {_shape_str(x.shape)}")


def _expect_shape(name: str, x: Tensor, shape, meaning: str):
    if tuple(x.shape) != tuple(shape):
        _fail(name, f"shape {_shape_str(shape)} ({meaning}) expected, got {_shape_str(x.shape)}")


def pack_state(spec: Spec, state: Sequence[Tensor]) -> Tensor:
    """[W1, b1, ...] -> packed [H, S] or [B, H, S] (differentiable)."""
    lead = state[0].dim() - 2
    return torch.cat([t.reshape(*t.shape[:lead], -1) for t in state], dim=-1)


def unpack_state(spec: Spec, packed: Tensor) -> list:
    """Packed [..., S] -> [W1, b1, ...] views shaped [..., d_in, d_out] / [..., d_out]."""
    lead = packed.shape[:-1]
    # One split (the slices are contiguous and in order), then a reshape of the matrices only.
    return [x.reshape(*lead, *t.shape) if len(t.shape) > 1 else x
            for x, t in zip(packed.split_with_sizes(spec.state_sizes, -1), spec.state_layout)]


def _check(spec, q, k, v, lr, tau, gamma, beta, state, layout):
    if not isinstance(spec, Spec):
        _fail("spec", f"a tttc.Spec expected (Spec.from_file / from_dict), got {type(spec).__name__}")
    if layout not in _LAYOUTS:
        _fail("layout", f"'bthf' or 'bhtf' expected, got {layout!r}")
    f, K = spec.head_dim, spec.mini_batch
    _tensor("q", q, 4)
    if layout == "bthf":
        B, T, H, qf = q.shape
        token_shape, lr_shape = "[B, T, H, f]", "[B, T, H]"
    else:
        B, H, T, qf = q.shape
        token_shape, lr_shape = "[B, H, T, f]", "[B, H, T]"
    if qf != f:
        _fail("q", f"last dimension {qf} but the spec's head_dim is {f} ({token_shape})")
    if B < 1 or H < 1 or T < 1:
        _fail("q", f"empty shape {_shape_str(q.shape)} ({token_shape})")
    device = q.device
    if device.type not in ("cpu", "cuda"):
        _fail("q", f"device {device}: cpu or cuda expected")
    cuda = device.type == "cuda"
    token_dtypes = (spec.torch_dtype,) if cuda else (spec.torch_dtype, torch.float64)
    if q.dtype not in token_dtypes:
        _fail("q", f"dtype {q.dtype}: the spec's dtype {spec.torch_dtype}"
                   + ("" if cuda else " (or torch.float64 on CPU)") + " expected")
    f64 = q.dtype == torch.float64
    param_dtype = torch.float64 if f64 else torch.float32
    for name, x in (("k", k), ("v", v)):
        _tensor(name, x, 4)
        _expect_shape(name, x, q.shape, f"like q, {token_shape}")
    _tensor("lr", lr, 3)
    _expect_shape("lr", lr, q.shape[:3], lr_shape)
    _tensor("tau", tau, 1)
    _expect_shape("tau", tau, (K,), "[K], K = the spec's mini_batch")
    for name, x in (("gamma", gamma), ("beta", beta)):
        _tensor(name, x, 2)
        _expect_shape(name, x, (H, f), "[H, f]")
    if not isinstance(state, (list, tuple)):
        _fail("state", f"a list [W1, b1, ...] of {2 * spec.depth} tensors expected, "
                       f"got {type(state).__name__}")
    if len(state) != len(spec.state_layout):
        _fail("state", f"{len(spec.state_layout)} tensors "
                       f"[{', '.join(t.name for t in spec.state_layout)}] expected, got {len(state)}")
    per_batch = None
    for i, (part, x) in enumerate(zip(spec.state_layout, state)):
        name = f"state[{i}] ({part.name})"
        if not isinstance(x, torch.Tensor):
            _fail(name, f"a torch.Tensor expected, got {type(x).__name__}")
        shared, batched = (H, *part.shape), (B, H, *part.shape)
        this = tuple(x.shape) == batched and x.dim() == len(batched)
        if tuple(x.shape) != shared and not this:
            _fail(name, f"shape {_shape_str(shared)} (shared) or {_shape_str(batched)} "
                        f"(per sequence) expected, got {_shape_str(x.shape)}")
        if per_batch is None:
            per_batch = this
        elif per_batch != this:
            _fail(name, "every state tensor must be shared ([H, ...]) or every one per sequence "
                        "([B, H, ...]); they are mixed")
    for name, x in (("k", k), ("v", v)):
        if x.dtype != q.dtype:
            _fail(name, f"dtype {x.dtype}; expected {q.dtype} like q")
    named = [("lr", lr), ("tau", tau), ("gamma", gamma), ("beta", beta)] + [
        (f"state[{i}] ({p.name})", x) for i, (p, x) in enumerate(zip(spec.state_layout, state))]
    for name, x in named:
        if x.dtype != param_dtype:
            _fail(name, f"dtype {x.dtype}; {param_dtype} expected"
                        + (" (float64 tokens make every argument float64)" if f64 else ""))
    for name, x in [("k", k), ("v", v)] + named:
        if x.device != device:
            _fail(name, f"on {x.device} but q is on {device}")
    if cuda and "forward" not in spec.passes:
        _fail("spec", "the spec's passes lack 'forward'")


_checked: set = set()  # signatures of argument sets that passed _check (eager calls only)


def _signature(spec, tensors, layout):
    """(spec, layout, shape, dtype, device of every tensor) or None when one is not a tensor."""
    sig = [spec.key if isinstance(spec, Spec) else None, layout]
    for x in tensors:
        if type(x) is not torch.Tensor and not isinstance(x, torch.Tensor):
            return None
        sig += (x.shape, x.dtype, x.device)
    return tuple(sig)


def ttt(spec: Spec, q: Tensor, k: Tensor, v: Tensor, lr: Tensor, tau: Tensor, gamma: Tensor,
        beta: Tensor, state: Sequence[Tensor], layout: str = "bthf",
        output_final_state: bool = False) -> tuple[Tensor, Optional[list]]:
    """The TTT layer's inner loop (see the module doc). Differentiable in every tensor argument."""
    if not torch.compiler.is_compiling() and _fast_path:
        # Eager: the same implementation without the dispatcher where nothing can tell (_eager).
        result = _eager.ttt(spec, q, k, v, lr, tau, gamma, beta, state, layout,
                            output_final_state)
        if result is not None:
            return result
    # The registered op: torch.compile, modes, subclasses, functorch, and the first error.
    if torch.compiler.is_compiling() or not isinstance(state, (list, tuple)):
        _check(spec, q, k, v, lr, tau, gamma, beta, state, layout)  # traced once: no cache
    else:
        # Eager calls repeat the same shapes: a passed signature skips the checks.
        sig = _signature(spec, (q, k, v, lr, tau, gamma, beta, *state), layout)
        if sig is None or sig not in _checked:
            _check(spec, q, k, v, lr, tau, gamma, beta, state, layout)
            if sig is not None and len(_checked) < 4096:
                _checked.add(sig)
    packed = pack_state(spec, state)
    tensors = (q, k, v, lr, tau, gamma, beta, packed)
    need_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    out, final, _ = _ops.ttt_forward(spec.key, q, k, v, lr, tau, gamma, beta, packed, layout,
                                     need_grad)
    return out, (unpack_state(spec, final) if output_final_state else None)


# Generation (docs/decode.md) and the eager fast path: imported last, they use the checks above.
from .decode import DecodeCache, ttt_decode, ttt_prefill  # noqa: E402
from . import _eager  # noqa: E402

# TTTC_EAGER_FAST_PATH=0 (or tttc.torch._fast_path = False) sends eager calls through the
# registered op too, as compiled code goes: for debugging and for the equivalence tests.
_fast_path = _eager.AVAILABLE and os.environ.get("TTTC_EAGER_FAST_PATH", "1") != "0"
