"""The CPU implementation of the tttc ops: the double-precision reference of libtttc
(compiler/reference), on contiguous float64 [B, H, T, f] copies of the inputs. Slow, exact, and
deterministic; it makes the op usable (and testable: opcheck, gradcheck, torch.compile, DDP on
gloo) without a GPU. Tokens may be the spec's dtype or float64; results are rounded to the
inputs' dtypes.
"""
from __future__ import annotations

import torch

from .. import _lib
from ..spec import spec_for_key


def bhtf(x: torch.Tensor, layout: str) -> torch.Tensor:
    """[B, T, H, ...] -> [B, H, T, ...] view for layout 'bthf'; unchanged for 'bhtf'."""
    return x.transpose(1, 2) if layout == "bthf" else x


def _f64(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to(torch.float64).contiguous()


def _p(x: torch.Tensor | None):
    return None if x is None else x.data_ptr()


def forward(key, q, k, v, lr, tau, gamma, beta, state0, layout, save_checkpoints):
    spec = spec_for_key(key)
    qb = bhtf(q, layout)
    B, H, T, _ = qb.shape
    S = spec.state_floats
    d = dict(dtype=torch.float64)
    out64 = torch.empty(qb.shape, **d)
    final64 = torch.empty((B, H, S), **d)
    C = spec.checkpoints(T)
    ckpt64 = torch.empty((B, H, C, S), **d) if save_checkpoints else None
    args = [_f64(bhtf(t, layout)) for t in (q, k, v, lr)] + [_f64(t) for t in (tau, gamma, beta, state0)]
    _lib.check(_lib.lib().tttc_reference_forward(
        spec._handle, B, H, T, int(state0.dim() == 3), *[_p(a) for a in args],
        _p(out64), _p(final64), _p(ckpt64)))
    out = torch.empty(q.shape, dtype=q.dtype)
    bhtf(out, layout).copy_(out64)
    final = final64.to(state0.dtype)
    ckpt = ckpt64.to(state0.dtype) if save_checkpoints else state0.new_empty((0,))
    return out, final, ckpt


def backward(key, q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final, layout,
             shared_state):
    spec = spec_for_key(key)
    qb = bhtf(q, layout)
    B, H, T, f = qb.shape
    S = spec.state_floats
    if checkpoints.numel() == 0:
        raise RuntimeError("tttc.ttt backward: the forward saved no checkpoints (it ran without "
                           "a gradient being needed); run it with autograd enabled")
    C = checkpoints.shape[2]
    ins = [_f64(bhtf(t, layout)) for t in (q, k, v, lr)] + [_f64(t) for t in (tau, gamma, beta)]
    ckpt = _f64(checkpoints)
    dout64 = _f64(bhtf(dout, layout))
    dfinal64 = None if dstate_final is None else _f64(dstate_final)
    d = dict(dtype=torch.float64)
    g = dict(dq=torch.empty((B, H, T, f), **d), dk=torch.empty((B, H, T, f), **d),
             dv=torch.empty((B, H, T, f), **d), dlr=torch.empty((B, H, T), **d),
             dtau=torch.empty(tau.shape, **d), dgamma=torch.empty(gamma.shape, **d),
             dbeta=torch.empty(beta.shape, **d),
             dstate0=torch.empty((H, S) if shared_state else (B, H, S), **d))
    _lib.check(_lib.lib().tttc_reference_backward(
        spec._handle, B, H, T, *[_p(a) for a in ins], _p(ckpt), C, _p(dout64), _p(dfinal64),
        int(shared_state), *[_p(t) for t in g.values()]))

    def like(grad64, x, token):
        r = torch.empty(x.shape, dtype=x.dtype)
        (bhtf(r, layout) if token else r).copy_(grad64)
        return r

    return (like(g["dq"], q, True), like(g["dk"], k, True), like(g["dv"], v, True),
            like(g["dlr"], lr, True), g["dtau"].to(tau.dtype), g["dgamma"].to(gamma.dtype),
            g["dbeta"].to(beta.dtype), g["dstate0"].to(checkpoints.dtype))


# --- decode (docs/decode.md): the reference on the pool rows that `slots` names -------------------

def _rows(pool: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    return pool.index_select(0, slots.long()).to(torch.float64 if pool.is_floating_point()
                                                 else torch.int32).contiguous()


def _scatter(pool: torch.Tensor, slots: torch.Tensor, rows: torch.Tensor) -> None:
    pool.index_copy_(0, slots.long(), rows.to(pool.dtype))


def _check_slots(slots: torch.Tensor, N: int) -> None:
    bad = (slots < 0) | (slots >= N)
    if bool(bad.any()):
        raise ValueError(f"tttc: argument 'slots': {slots.tolist()} holds values outside [0, {N})")
    if slots.unique().numel() != slots.numel():
        raise ValueError(f"tttc: argument 'slots': {slots.tolist()} names a slot twice")


def prefill(key, q, k, v, lr, tau, gamma, beta, state0, slots, theta, accum, pos, layout):
    spec = spec_for_key(key)
    _check_slots(slots, theta.shape[0])
    qb = bhtf(q, layout)
    B, H, T, _ = qb.shape
    S = spec.state_floats
    d = dict(dtype=torch.float64)
    out64 = torch.empty(qb.shape, **d)
    th, ac = torch.empty((B, H, S), **d), torch.empty((B, H, S), **d)
    ps = torch.empty((B, H), dtype=torch.int32)
    args = [_f64(bhtf(t, layout)) for t in (q, k, v, lr)] + [_f64(t) for t in (tau, gamma, beta, state0)]
    _lib.check(_lib.lib().tttc_reference_prefill(
        spec._handle, B, H, T, int(state0.dim() == 3), *[_p(a) for a in args], _p(out64), _p(th),
        _p(ac), _p(ps)))
    return _write_back(theta, accum, pos, slots, th, ac, ps, q, out64, layout)


def _write_back(theta, accum, pos, slots, th, ac, ps, q, out64, layout):
    """The rows' new decode states into their pool slots, and the output in q's dtype and layout."""
    _scatter(theta, slots, th)
    _scatter(accum, slots, ac)
    _scatter(pos, slots, ps)
    out = torch.empty(q.shape, dtype=q.dtype)
    bhtf(out, layout).copy_(out64)
    return out


def decode(key, q, k, v, lr, tau, gamma, beta, slots, theta, accum, pos, layout):
    spec = spec_for_key(key)
    _check_slots(slots, theta.shape[0])
    qb = bhtf(q, layout)
    B, H, T, _ = qb.shape
    th, ac, ps = _rows(theta, slots), _rows(accum, slots), _rows(pos, slots)
    out64 = torch.empty(qb.shape, dtype=torch.float64)
    args = [_f64(bhtf(t, layout)) for t in (q, k, v, lr)] + [_f64(t) for t in (tau, gamma, beta)]
    _lib.check(_lib.lib().tttc_reference_decode(
        spec._handle, B, H, T, *[_p(a) for a in args], _p(th), _p(ac), _p(ps), _p(out64)))
    return _write_back(theta, accum, pos, slots, th, ac, ps, q, out64, layout)


# --- the eager fast path's interface (tttc/torch/_eager.py; _cuda.py precomputes launches) -------

class _Call:
    """A forward or backward bound to its non-tensor arguments: on CPU there is nothing worth
    precomputing (the reference dominates)."""

    def __init__(self, fn, key, layout, flag):
        self.fn, self.key, self.layout, self.flag = fn, key, layout, flag

    def run(self, *tensors):
        return self.fn(self.key, *tensors, self.layout, self.flag)


def forward_plan(key, q, k, v, lr, tau, gamma, beta, state0, layout, save_checkpoints,
                 keep_final=True) -> _Call:
    return _Call(forward, key, layout, save_checkpoints)


def backward_plan(key, q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final, layout,
                  shared_state, deterministic, one_buffer=False) -> _Call:
    """one_buffer (the CUDA path's placement of gradients zeroed together) is moot here."""
    return _Call(backward, key, layout, shared_state)
