"""The torch.library registrations: tttc::ttt_forward and tttc::ttt_backward (custom ops with fake
implementations for tracing), the CPU and CUDA kernels behind them, and the autograd formula
that connects them. Layout-aware shapes: tokens are [B, T, H, f] ('bthf') or [B, H, T, f]
('bhtf') and every output has a fixed, contiguous layout (inductor checks output strides).

  ttt_forward(spec_key, q, k, v, lr, tau, gamma, beta, state0, layout, save_checkpoints)
      -> (out, state_final [B, H, S], checkpoints [B, H, C, S] or [0])
  ttt_backward(spec_key, q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final?,
               layout, shared_state) -> (dq, dk, dv, dlr, dtau, dgamma, dbeta, dstate0)
  ttt_prefill(spec_key, q, k, v, lr, tau, gamma, beta, state0, slots, theta, accum, pos, layout)
      -> out; writes the decode state of row b into pool slot slots[b] (docs/decode.md)
  ttt_decode(spec_key, q, k, v, lr, tau, gamma, beta, slots, theta, accum, pos, layout) -> out;
      advances every row by T tokens in its pool slot
The decode ops mutate the pool (theta, accum, pos) and have no autograd: they are for inference.
"""

from typing import Optional

import torch
from torch import Tensor

from ..spec import spec_for_key
from . import _cpu, _cuda


def _impl(device: torch.device):
    return _cuda if device.type == "cuda" else _cpu


@torch.library.custom_op("tttc::ttt_forward", mutates_args=())
def ttt_forward(spec: str, q: Tensor, k: Tensor, v: Tensor, lr: Tensor, tau: Tensor,
                gamma: Tensor, beta: Tensor, state0: Tensor, layout: str,
                save_checkpoints: bool) -> tuple[Tensor, Tensor, Tensor]:
    return _impl(q.device).forward(spec, q, k, v, lr, tau, gamma, beta, state0, layout,
                                   save_checkpoints)


def _dims(q: Tensor, layout: str):
    B = q.shape[0]
    H, T = (q.shape[2], q.shape[1]) if layout == "bthf" else (q.shape[1], q.shape[2])
    return B, H, T


@ttt_forward.register_fake
def _(spec, q, k, v, lr, tau, gamma, beta, state0, layout, save_checkpoints):
    s = spec_for_key(spec)
    B, H, T = _dims(q, layout)
    S = s.state_floats
    out = q.new_empty(q.shape)
    final = state0.new_empty((B, H, S))
    if save_checkpoints:
        ckpt = state0.new_empty((B, H, s.checkpoints(T), S))
    else:
        ckpt = state0.new_empty((0,))
    return out, final, ckpt


@torch.library.custom_op("tttc::ttt_backward", mutates_args=())
def ttt_backward(spec: str, q: Tensor, k: Tensor, v: Tensor, lr: Tensor, tau: Tensor,
                 gamma: Tensor, beta: Tensor, checkpoints: Tensor, dout: Tensor,
                 dstate_final: Optional[Tensor], layout: str,
                 shared_state: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor,
                                              Tensor, Tensor]:
    return _impl(q.device).backward(spec, q, k, v, lr, tau, gamma, beta, checkpoints, dout,
                                    dstate_final, layout, shared_state)


@ttt_backward.register_fake
def _(spec, q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final, layout, shared_state):
    s = spec_for_key(spec)
    B, H, _ = _dims(q, layout)
    S = s.state_floats
    dstate0 = checkpoints.new_empty((H, S) if shared_state else (B, H, S))
    return (q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape),
            lr.new_empty(lr.shape), tau.new_empty(tau.shape), gamma.new_empty(gamma.shape),
            beta.new_empty(beta.shape), dstate0)


def _setup_context(ctx, inputs, output):
    spec, q, k, v, lr, tau, gamma, beta, state0, layout, save_checkpoints = inputs
    _, _, checkpoints = output
    ctx.spec, ctx.layout, ctx.shared_state = spec, layout, state0.dim() == 2
    ctx.save_for_backward(q, k, v, lr, tau, gamma, beta, checkpoints)


def _backward(ctx, dout, dstate_final, _dcheckpoints):
    q, k, v, lr, tau, gamma, beta, checkpoints = ctx.saved_tensors
    if dout is None:
        dout = torch.zeros_like(q)
    grads = ttt_backward(ctx.spec, q, k, v, lr, tau, gamma, beta, checkpoints, dout,
                         dstate_final, ctx.layout, ctx.shared_state)
    return (None, *grads, None, None)


ttt_forward.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("tttc::ttt_prefill", mutates_args=("theta", "accum", "pos"))
def ttt_prefill(spec: str, q: Tensor, k: Tensor, v: Tensor, lr: Tensor, tau: Tensor,
                gamma: Tensor, beta: Tensor, state0: Tensor, slots: Tensor, theta: Tensor,
                accum: Tensor, pos: Tensor, layout: str) -> Tensor:
    return _impl(q.device).prefill(spec, q, k, v, lr, tau, gamma, beta, state0, slots, theta,
                                   accum, pos, layout)


@ttt_prefill.register_fake
def _(spec, q, k, v, lr, tau, gamma, beta, state0, slots, theta, accum, pos, layout):
    return q.new_empty(q.shape)


@torch.library.custom_op("tttc::ttt_decode", mutates_args=("theta", "accum", "pos"))
def ttt_decode(spec: str, q: Tensor, k: Tensor, v: Tensor, lr: Tensor, tau: Tensor,
               gamma: Tensor, beta: Tensor, slots: Tensor, theta: Tensor, accum: Tensor,
               pos: Tensor, layout: str) -> Tensor:
    return _impl(q.device).decode(spec, q, k, v, lr, tau, gamma, beta, slots, theta, accum, pos,
                                  layout)


@ttt_decode.register_fake
def _(spec, q, k, v, lr, tau, gamma, beta, slots, theta, accum, pos, layout):
    return q.new_empty(q.shape)
