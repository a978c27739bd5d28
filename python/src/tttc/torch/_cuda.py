"""The CUDA implementation of the tttc ops: libtttc's generated kernels, launched on the tensors'
device and on PyTorch's current stream of that device. Every buffer (outputs, checkpoints,
workspace) comes from PyTorch's caching allocator and nothing synchronises, so calls can be
captured in a CUDA graph. Token tensors are passed as [B, H, T, f] views through strides (no
copy for 'bthf'); lr is made unit-stride in T (a small copy for 'bthf').
"""
from __future__ import annotations

import ctypes
import warnings

import torch

from .. import _lib
from ..spec import spec_for_key
from ._cpu import bhtf

_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.int32: 3}
_plans: dict = {}


def _t(x: torch.Tensor):
    return (x.data_ptr(), _CODES[x.dtype], x.shape, x.stride())


def _feature_unit(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


def _plan(spec, kernel, B, H, T):
    key = (kernel.value, B, H, T)  # the kernel handle: one per (spec, device)
    plan = _plans.get(key)
    if plan is None:
        plan = _lib.MemoryPlan()
        _lib.check(_lib.lib().tttc_kernel_memory(kernel, B, H, T, plan))
        _plans[key] = plan
    return plan


def _workspace(nbytes: int, device) -> torch.Tensor | None:
    return torch.empty(nbytes, dtype=torch.uint8, device=device) if nbytes else None


def _alert_not_deterministic(what: str) -> None:
    """As torch does for its own nondeterministic ops: an error, or with warn_only a warning."""
    message = (f"{what} does not have a deterministic implementation, but you set "
               "'torch.use_deterministic_algorithms(True)'. Use "
               "'torch.use_deterministic_algorithms(True, warn_only=True)' to be warned instead, "
               "or run this layer on the CPU implementation (deterministic).")
    if torch.is_deterministic_algorithms_warn_only_enabled():
        warnings.warn(message, UserWarning, stacklevel=3)
    else:
        raise RuntimeError(message)


def forward(key, q, k, v, lr, tau, gamma, beta, state0, layout, save_checkpoints):
    spec = spec_for_key(key)
    # Without a gradient, the forward-only variant saves one state per (b, h) instead of C.
    run_spec = spec if save_checkpoints else spec.inference_variant()
    device = q.device
    kernel = run_spec.kernel(device.index)
    qb = bhtf(_feature_unit(q), layout)
    B, H, T, _ = qb.shape
    plan = _plan(run_spec, kernel, B, H, T)
    S = spec.state_floats
    out = torch.empty(q.shape, dtype=q.dtype, device=device)
    final = torch.empty((B, H, S), dtype=torch.float32, device=device)
    ckpt = torch.empty((B, H, plan.checkpoints, S), dtype=torch.float32, device=device)
    ws = _workspace(plan.forward_workspace_bytes, device)
    lrb = bhtf(lr, layout)
    if lrb.stride(-1) != 1:
        lrb = lrb.contiguous()
    tensors = [qb, bhtf(_feature_unit(k), layout), bhtf(_feature_unit(v), layout), lrb,
               tau.contiguous(), gamma.contiguous(), beta.contiguous(), state0.contiguous(),
               bhtf(out, layout), final, ckpt]
    buf = _lib.pack_tensors([_t(t) for t in tensors])
    stream = torch.cuda.current_stream(device).cuda_stream
    _lib.check(_lib.lib().tttc_kernel_forward(
        kernel, buf, None if ws is None else ws.data_ptr(), plan.forward_workspace_bytes, stream))
    if not save_checkpoints:
        ckpt = state0.new_empty((0,))
    return out, final, ckpt


def backward(key, q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final, layout,
             shared_state):
    spec = spec_for_key(key)
    if checkpoints.numel() == 0:
        raise RuntimeError("tttc.ttt backward: the forward saved no checkpoints (it ran without "
                           "a gradient being needed); run it with autograd enabled")
    device = q.device
    kernel = spec.kernel(device.index)
    qb = bhtf(_feature_unit(q), layout)
    B, H, T, f = qb.shape
    plan = _plan(spec, kernel, B, H, T)
    S = spec.state_floats
    deterministic = torch.are_deterministic_algorithms_enabled()
    if deterministic:
        # dtau, dgamma and dbeta are summed over (b, h) with atomicAdd in the kernel: say so the
        # way torch does (an error, or a warning with warn_only=True). A shared dstate0 is
        # instead computed per batch row and summed here in a fixed order.
        _alert_not_deterministic(
            "tttc.ttt backward on CUDA (dtau, dgamma and dbeta are summed with atomicAdd)")
    f32 = dict(dtype=torch.float32, device=device)
    dq = torch.empty(q.shape, dtype=q.dtype, device=device)
    dk = torch.empty(k.shape, dtype=k.dtype, device=device)
    dv = torch.empty(v.shape, dtype=v.dtype, device=device)
    dlr_bht = torch.empty((B, H, T), **f32)
    dtau = torch.empty(tau.shape, **f32)
    dgamma = torch.empty(gamma.shape, **f32)
    dbeta = torch.empty(beta.shape, **f32)
    per_row = deterministic or not shared_state
    dstate0 = torch.empty((B, H, S) if per_row else (H, S), **f32)
    ws = _workspace(plan.backward_workspace_bytes, device)
    lrb = bhtf(lr, layout)
    if lrb.stride(-1) != 1:
        lrb = lrb.contiguous()
    tensors = [qb, bhtf(_feature_unit(k), layout), bhtf(_feature_unit(v), layout), lrb,
               tau.contiguous(), gamma.contiguous(), beta.contiguous(), checkpoints.contiguous(),
               bhtf(_feature_unit(dout), layout),
               None if dstate_final is None else dstate_final.contiguous(),
               bhtf(dq, layout), bhtf(dk, layout), bhtf(dv, layout), dlr_bht, dtau, dgamma,
               dbeta, dstate0]
    buf = _lib.pack_tensors([None if t is None else _t(t) for t in tensors])
    stream = torch.cuda.current_stream(device).cuda_stream
    _lib.check(_lib.lib().tttc_kernel_backward(
        kernel, buf, None if ws is None else ws.data_ptr(), plan.backward_workspace_bytes, stream))
    if shared_state and per_row:
        dstate0 = dstate0.sum(0)
    dlr = torch.empty(lr.shape, **f32)
    bhtf(dlr, layout).copy_(dlr_bht)
    return dq, dk, dv, dlr, dtau, dgamma, dbeta, dstate0


# --- decode (docs/decode.md) ----------------------------------------------------------------------

def _token_views(q, k, v, lr, layout):
    lrb = bhtf(lr, layout)
    if lrb.stride(-1) != 1:
        lrb = lrb.contiguous()
    return [bhtf(_feature_unit(x), layout) for x in (q, k, v)] + [lrb]


def prefill(key, q, k, v, lr, tau, gamma, beta, state0, slots, theta, accum, pos, layout):
    spec = spec_for_key(key).decode_variant()
    device = q.device
    kernel = spec.kernel(device.index)
    B, H, T, _ = bhtf(q, layout).shape
    nbytes = ctypes.c_int64()
    _lib.check(_lib.lib().tttc_kernel_prefill_workspace(kernel, B, H, T, ctypes.byref(nbytes)))
    ws = _workspace(nbytes.value, device)
    out = torch.empty(q.shape, dtype=q.dtype, device=device)
    tensors = _token_views(q, k, v, lr, layout) + [
        tau.contiguous(), gamma.contiguous(), beta.contiguous(), state0.contiguous(), slots,
        theta, accum, pos, bhtf(out, layout)]
    buf = _lib.pack_tensors([_t(t) for t in tensors])
    stream = torch.cuda.current_stream(device).cuda_stream
    _lib.check(_lib.lib().tttc_kernel_prefill(
        kernel, buf, None if ws is None else ws.data_ptr(), nbytes.value, stream))
    return out


def decode(key, q, k, v, lr, tau, gamma, beta, slots, theta, accum, pos, layout):
    spec = spec_for_key(key).decode_variant()
    device = q.device
    kernel = spec.kernel(device.index)
    out = torch.empty(q.shape, dtype=q.dtype, device=device)
    tensors = _token_views(q, k, v, lr, layout) + [
        tau.contiguous(), gamma.contiguous(), beta.contiguous(), slots, theta, accum, pos,
        bhtf(out, layout)]
    buf = _lib.pack_tensors([_t(t) for t in tensors])
    stream = torch.cuda.current_stream(device).cuda_stream
    _lib.check(_lib.lib().tttc_kernel_decode(kernel, buf, stream))
    return out
