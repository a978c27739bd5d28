"""tttc.torch decode: generation with a TTT layer, token by token (docs/decode.md).

    cache = DecodeCache(spec, slots=64, heads=H, device="cuda")
    out = ttt_prefill(spec, q, k, v, lr, tau, gamma, beta, state, cache, slots)   # the prompt
    out = ttt_decode(spec, q1, k1, v1, lr1, tau, gamma, beta, cache, slots)     # one token each

The cache is a pool of decode states (per slot and head: the mini-batch start state theta, the
accumulated lr-weighted gradients A, the position in the mini-batch); each batch row names its
slot in `slots` (int32 [B], distinct), so rows may be at different positions and sequences can
join and leave a batch (continuous batching). Decode needs a causal spec. On CUDA a decode call
allocates nothing and never synchronises, so it can be captured in a CUDA graph (with fixed
token and slot tensors) and replayed. No autograd: these ops are for inference (wrap calls in
torch.no_grad(); train with tttc.torch.ttt). On CPU the float64 reference runs instead.
Shapes as in tttc.torch.ttt (layout "bthf" or "bhtf"); for one decode step T = 1.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..spec import Spec
from . import _check, _fail, _shape_str, pack_state, unpack_state
from . import _ops

__all__ = ["DecodeCache", "ttt_prefill", "ttt_decode"]


class DecodeCache:
    """A pool of `slots` decode states for `heads` heads: theta and accum [slots, H, S] (float32,
    or float64 for the CPU reference with float64 tokens) and pos int32 [slots, H]."""

    def __init__(self, spec: Spec, slots: int, heads: int, device=None,
                 dtype: torch.dtype = torch.float32):
        if not isinstance(spec, Spec):
            raise ValueError(f"DecodeCache: argument 'spec': a tttc.Spec expected, got "
                             f"{type(spec).__name__}")
        if not spec.causal:
            raise ValueError("DecodeCache: decode needs a causal spec (a non-causal mini-batch "
                             "evaluates every token with the state updated by the whole "
                             "mini-batch)")
        if slots < 1 or heads < 1:
            raise ValueError(f"DecodeCache: 'slots' and 'heads' must be positive, got {slots}, "
                             f"{heads}")
        S = spec.state_floats
        self.spec = spec
        self.theta = torch.zeros((slots, heads, S), dtype=dtype, device=device)
        self.accum = torch.zeros((slots, heads, S), dtype=dtype, device=device)
        self.pos = torch.zeros((slots, heads), dtype=torch.int32, device=device)

    @property
    def slots(self) -> int:
        return self.theta.shape[0]

    @property
    def heads(self) -> int:
        return self.theta.shape[1]

    def state_after(self, slots: Tensor, tau: Tensor) -> list:
        """The inner-model state after the last token of each sequence in `slots`, as the
        forward's final state ([W1, b1, ...] of shape [B, H, ...]): theta - tau_{pos-1} A."""
        idx = slots.long()
        theta, accum, pos = self.theta[idx], self.accum[idx], self.pos[idx].long()
        t = torch.where(pos > 0, tau.to(theta.dtype)[(pos - 1).clamp(min=0)],
                        torch.zeros((), dtype=theta.dtype, device=theta.device))
        return unpack_state(self.spec, theta - t.unsqueeze(-1) * accum)


def _check_cache(spec: Spec, cache, slots, B: int, H: int, device):
    if not isinstance(cache, DecodeCache):
        _fail("cache", f"a tttc.torch.DecodeCache expected, got {type(cache).__name__}")
    if cache.spec.key != spec.key:
        _fail("cache", "it was made for a different spec")
    if cache.heads != H:
        _fail("cache", f"{cache.heads} heads, but the tokens have {H}")
    if not isinstance(slots, torch.Tensor) or slots.dtype != torch.int32 or slots.dim() != 1:
        _fail("slots", "an int32 tensor [B] expected" + (
            f", got {slots.dtype} {_shape_str(slots.shape)}" if isinstance(slots, torch.Tensor)
            else f", got {type(slots).__name__}"))
    if slots.shape[0] != B:
        _fail("slots", f"shape [{B}] (one slot per batch row) expected, got "
                       f"{_shape_str(slots.shape)}")
    for name, x in (("slots", slots), ("cache", cache.theta)):
        if x.device != device:
            _fail(name, f"on {x.device} but q is on {device}")
    if not slots.is_contiguous():
        _fail("slots", "must be contiguous")


def _dims(q: Tensor, layout: str):
    return (q.shape[0], q.shape[2]) if layout == "bthf" else (q.shape[0], q.shape[1])


def ttt_prefill(spec: Spec, q: Tensor, k: Tensor, v: Tensor, lr: Tensor, tau: Tensor,
                gamma: Tensor, beta: Tensor, state: Sequence[Tensor], cache: DecodeCache,
                slots: Tensor, layout: str = "bthf") -> Tensor:
    """Runs the layer on a prompt of any length T (as tttc.torch.ttt does) and leaves each row's
    decode state in cache slot slots[b], so that ttt_decode continues exactly where it ended."""
    _check(spec, q, k, v, lr, tau, gamma, beta, state, layout)
    B, H = _dims(q, layout)
    _check_cache(spec, cache, slots, B, H, q.device)
    if not spec.causal:
        _fail("spec", "decode needs a causal spec")
    return _ops.ttt_prefill(spec.key, q, k, v, lr, tau, gamma, beta, pack_state(spec, state),
                            slots, cache.theta, cache.accum, cache.pos, layout)


def ttt_decode(spec: Spec, q: Tensor, k: Tensor, v: Tensor, lr: Tensor, tau: Tensor,
               gamma: Tensor, beta: Tensor, cache: DecodeCache, slots: Tensor,
               layout: str = "bthf") -> Tensor:
    """Advances every row by T tokens (T = 1: one step) from its cache slot; returns out."""
    if not isinstance(cache, DecodeCache):
        _fail("cache", f"a tttc.torch.DecodeCache expected, got {type(cache).__name__}")
    # The shared checks, with the cache's slot 0 standing in for a shared state (its dtype and
    # device are what the state's would be).
    _check(spec, q, k, v, lr, tau, gamma, beta, unpack_state(spec, cache.theta[0]), layout)
    B, H = _dims(q, layout)
    _check_cache(spec, cache, slots, B, H, q.device)
    return _ops.ttt_decode(spec.key, q, k, v, lr, tau, gamma, beta, slots, cache.theta,
                           cache.accum, cache.pos, layout)
