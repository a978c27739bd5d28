"""The CUDA implementation of the tttc ops: libtttc's generated kernels, launched on the tensors'
device and on PyTorch's current stream of that device. Every buffer (outputs, checkpoints,
workspace) comes from PyTorch's caching allocator and nothing synchronises, so calls can be
captured in a CUDA graph. Token tensors are passed as [B, H, T, f] views through strides (no
copy for 'bthf'); lr is made unit-stride in T (a small copy for 'bthf').

Host time: what depends only on a call's signature (spec, layout, device, shapes, strides and
dtypes) is worked out once into a launch plan: the kernel handle, its memory plan, the output
shapes, which inputs need a copy, and the tttc_tensor array with every field but the data
pointers filled in. A call then allocates (outputs, plus one scratch buffer for the workspace and
whatever the caller does not keep), patches the pointers and launches.
"""
from __future__ import annotations

import ctypes
import warnings

import torch

from .. import _lib
from ..spec import spec_for_key
from ._cpu import bhtf

_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.int32: 3}
_FIELDS = 11       # int64 fields of one tttc_tensor: data, dtype, ndim, shape[4], strides[4]
_ALIGN = 256       # byte alignment of the buffers placed in one scratch allocation
_CACHE_LIMIT = 4096
_memory_plans: dict = {}
_forward_plans: dict = {}
_backward_plans: dict = {}


def clear_caches() -> None:
    """Forget memory and launch plans (tests that fake libtttc's kernels call this)."""
    _memory_plans.clear()
    _forward_plans.clear()
    _backward_plans.clear()


def _current_stream(device_index: int) -> int:
    """The raw CUstream of PyTorch's current stream on that device."""
    return _raw_stream(device_index)


try:  # what inductor's generated code uses; a Stream object per call costs microseconds
    _raw_stream = torch._C._cuda_getCurrentRawStream
except AttributeError:  # pragma: no cover
    def _raw_stream(device_index):
        return torch.cuda.current_stream(device_index).cuda_stream


def _t(x: torch.Tensor):
    return (x.data_ptr(), _CODES[x.dtype], x.shape, x.stride())


def _feature_unit(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


def _memory_plan(kernel, B, H, T):
    key = (kernel.value, B, H, T)  # the kernel handle: one per (spec, device)
    plan = _memory_plans.get(key)
    if plan is None:
        plan = _lib.MemoryPlan()
        _lib.check(_lib.lib().tttc_kernel_memory(kernel, B, H, T, plan))
        _memory_plans[key] = plan
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
        warnings.warn(message, UserWarning, stacklevel=4)
    else:
        raise RuntimeError(message)


# --- launch plans -----------------------------------------------------------------------------

def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _contiguous_strides(shape) -> tuple:
    strides, n = [], 1
    for d in reversed(shape):
        strides.append(n)
        n *= max(int(d), 1)
    return tuple(reversed(strides))


def _as_bhtf(shape, strides, layout: str):
    """(shape, strides) of the [B, H, T, ...] view of a [B, T, H, ...] tensor (see bhtf)."""
    shape, strides = tuple(shape), tuple(strides)
    if layout == "bthf":
        return (shape[0], shape[2], shape[1], *shape[3:]), (strides[0], strides[2], strides[1],
                                                            *strides[3:])
    return shape, strides


class _Arguments:
    """The tttc_tensor array of one signature with every field but `data` filled in: a call
    copies it and writes the data pointers (one strided slice assignment)."""

    def __init__(self, descriptors):
        self.Array = ctypes.c_int64 * (_FIELDS * len(descriptors))
        fields = []
        for d in descriptors:
            if d is None:  # an absent optional tensor: data == NULL
                fields += [0] * _FIELDS
                continue
            dtype, shape, strides = d
            pad = [0] * (4 - len(shape))
            fields += [0, _CODES[dtype], len(shape), *shape, *pad, *strides, *pad]
        self.template = bytes(self.Array(*fields))

    def fill(self, pointers) -> ctypes.Array:
        a = self.Array.from_buffer_copy(self.template)
        a[0::_FIELDS] = pointers
        return a


class _Scratch:
    """Buffers that live only for the launch (the workspace first), placed in one allocation."""

    def __init__(self):
        self.nbytes = 0

    def place(self, nbytes: int) -> int:
        at = self.nbytes
        self.nbytes += -(-nbytes // _ALIGN) * _ALIGN
        return at


def _token_descriptor(x, layout):
    """q, k, v, dout: feature stride 1 (else a contiguous copy), passed as a [B, H, T, f] view."""
    copy = x.stride(-1) != 1
    strides = _contiguous_strides(x.shape) if copy else x.stride()
    return copy, (x.dtype, *_as_bhtf(x.shape, strides, layout))


def _lr_descriptor(lr, layout):
    """lr: its [B, H, T] view, any strides (the kernels read lr with all three)."""
    return False, (lr.dtype, *_as_bhtf(lr.shape, lr.stride(), layout))


def _dense_descriptor(x, layout):
    """Parameters, state, checkpoints, dstate_final: contiguous (else a copy)."""
    copy = not x.is_contiguous()
    return copy, (x.dtype, tuple(x.shape), _contiguous_strides(x.shape) if copy else x.stride())


_DESCRIBE = {"token": _token_descriptor, "lr": _lr_descriptor, "dense": _dense_descriptor}
_FORWARD_INPUTS = ("token",) * 3 + ("lr",) + ("dense",) * 4
_BACKWARD_INPUTS = _FORWARD_INPUTS + ("token", "dense")


def _describe(kinds, tensors, layout):
    """The descriptors of the inputs as the kernels take them, and the copy each needs first
    (None everywhere, the usual case: None)."""
    copies, descriptors = [], []
    for kind, x in zip(kinds, tensors):
        copy, d = (False, None) if x is None else _DESCRIBE[kind](x, layout)
        copies.append(kind if copy else None)
        descriptors.append(d)
    return (copies if any(copies) else None), descriptors


def _prepare(copies, layout, tensors):
    """The copies _describe asked for (only for unusual strides)."""
    return [x if how is None else x.contiguous() for x, how in zip(tensors, copies)]


def _training_kernel(spec, index, B, H):
    """The kernels of a training step (forward with checkpoints, and its backward): one handle
    for both, asked for with the launch size, which picks the query split for few heads (it
    needs every state saved: checkpoint group 1)."""
    return spec.kernel(index, B * H if spec.checkpoint_group == 1 else 0)


class ForwardPlan:
    """tttc_kernel_forward for one signature. run() returns (out, state_final, checkpoints);
    state_final is None unless keep_final, checkpoints None unless save_checkpoints (both then
    live in the scratch buffer)."""

    def __init__(self, key, q, k, v, lr, tau, gamma, beta, state0, layout, save_checkpoints,
                 keep_final):
        spec = spec_for_key(key)
        # Without a gradient, the forward-only variant saves one state per (b, h) instead of C.
        run_spec = spec if save_checkpoints else spec.inference_variant()
        self.device, self.index = q.device, q.device.index
        B, H, T, _ = _as_bhtf(q.shape, q.stride(), layout)[0]
        self.kernel = _training_kernel(spec, self.index, B, H) if save_checkpoints \
            else run_spec.kernel(self.index)
        memory = _memory_plan(self.kernel, B, H, T)
        S = spec.state_floats
        self.layout, self.save, self.keep_final = layout, save_checkpoints, keep_final
        self.out_shape, self.out_dtype = tuple(q.shape), q.dtype
        self.final_shape = (B, H, S)
        self.ckpt_shape = (B, H, memory.checkpoints, S)
        self.copies, descriptors = _describe(
            _FORWARD_INPUTS, (q, k, v, lr, tau, gamma, beta, state0), layout)
        f32 = torch.float32
        descriptors += [(q.dtype, *_as_bhtf(self.out_shape, _contiguous_strides(self.out_shape),
                                             layout)),
                        (f32, self.final_shape, _contiguous_strides(self.final_shape)),
                        (f32, self.ckpt_shape, _contiguous_strides(self.ckpt_shape))]
        self.arguments = _Arguments(descriptors)
        scratch = _Scratch()
        self.ws_bytes = memory.forward_workspace_bytes
        scratch.place(self.ws_bytes)
        self.final_at = None if keep_final else scratch.place(4 * B * H * S)
        self.ckpt_at = None if save_checkpoints else scratch.place(4 * B * H * memory.checkpoints * S)
        self.scratch_bytes = scratch.nbytes

    def run(self, q, k, v, lr, tau, gamma, beta, state0):
        if self.copies:
            q, k, v, lr, tau, gamma, beta, state0 = _prepare(
                self.copies, self.layout, (q, k, v, lr, tau, gamma, beta, state0))
        device = self.device
        out = torch.empty(self.out_shape, dtype=self.out_dtype, device=device)
        final = torch.empty(self.final_shape, dtype=torch.float32, device=device) \
            if self.keep_final else None
        ckpt = torch.empty(self.ckpt_shape, dtype=torch.float32, device=device) \
            if self.save else None
        scratch = torch.empty(self.scratch_bytes, dtype=torch.uint8, device=device) \
            if self.scratch_bytes else None
        at = scratch.data_ptr() if scratch is not None else 0
        arguments = self.arguments.fill((
            q.data_ptr(), k.data_ptr(), v.data_ptr(), lr.data_ptr(), tau.data_ptr(),
            gamma.data_ptr(), beta.data_ptr(), state0.data_ptr(), out.data_ptr(),
            final.data_ptr() if final is not None else at + self.final_at,
            ckpt.data_ptr() if ckpt is not None else at + self.ckpt_at))
        _lib.check(_lib.lib().tttc_kernel_forward(
            self.kernel, arguments, at if self.ws_bytes else None, self.ws_bytes,
            _current_stream(self.index)))
        return out, final, ckpt


class BackwardPlan:
    """tttc_kernel_backward for one signature; run() returns the eight gradients."""

    def __init__(self, key, q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final,
                 layout, shared_state, deterministic, one_buffer=False):
        if checkpoints.numel() == 0:
            raise RuntimeError("tttc.ttt backward: the forward saved no checkpoints (it ran "
                               "without a gradient being needed); run it with autograd enabled")
        spec = spec_for_key(key)
        self.device, self.index = q.device, q.device.index
        B, H, T, f = _as_bhtf(q.shape, q.stride(), layout)[0]
        self.kernel = _training_kernel(spec, self.index, B, H)
        memory = _memory_plan(self.kernel, B, H, T)
        S = spec.state_floats
        self.layout, self.deterministic = layout, deterministic
        self.token_shape, self.token_dtype = tuple(q.shape), q.dtype
        self.lr_shape, self.tau_shape = tuple(lr.shape), tuple(tau.shape)
        self.hf_shape = tuple(gamma.shape)
        # dtau, dgamma and dbeta are summed over (b, h) with atomics. In deterministic mode a
        # shared dstate0 is instead computed per batch row and summed here in a fixed order.
        per_row = deterministic or not shared_state
        self.sum_rows = shared_state and per_row
        self.dstate0_shape = (B, H, S) if per_row else (H, S)
        # With one_buffer (the eager fast path; a registered op's outputs may not alias), the
        # gradients the runtime zeroes before the kernel accumulates into them lie side by side
        # in one buffer, so that one memset clears them all: dtau, dgamma, dbeta (and dstate0
        # when it is summed atomically).
        zeroed = [self.tau_shape, self.hf_shape, self.hf_shape] + ([] if per_row else
                                                                   [self.dstate0_shape])
        self.zeroed_shapes = zeroed if one_buffer else None
        self.zeroed_sizes = [_numel(s) for s in zeroed]
        self.copies, descriptors = _describe(
            _BACKWARD_INPUTS,
            (q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final), layout)
        f32 = torch.float32
        token = (q.dtype, *_as_bhtf(self.token_shape, _contiguous_strides(self.token_shape),
                                     layout))
        # dlr straight into the result, through its [B, H, T] view
        dlr = (f32, *_as_bhtf(self.lr_shape, _contiguous_strides(self.lr_shape), layout))
        descriptors += [token, token, token, dlr] + [
            (f32, s, _contiguous_strides(s))
            for s in (self.tau_shape, self.hf_shape, self.hf_shape, self.dstate0_shape)]
        self.arguments = _Arguments(descriptors)
        self.ws_bytes = memory.backward_workspace_bytes

    def run(self, q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final):
        if self.deterministic:
            _alert_not_deterministic(
                "tttc.ttt backward on CUDA (dtau, dgamma and dbeta are summed with atomicAdd)")
        if self.copies:
            q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final = _prepare(
                self.copies, self.layout,
                (q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final))
        device, f32 = self.device, torch.float32
        dq = torch.empty(self.token_shape, dtype=self.token_dtype, device=device)
        dk = torch.empty(self.token_shape, dtype=self.token_dtype, device=device)
        dv = torch.empty(self.token_shape, dtype=self.token_dtype, device=device)
        dlr = torch.empty(self.lr_shape, dtype=f32, device=device)
        if self.zeroed_shapes:
            zeroed = [z.view(s) for z, s in zip(
                torch.empty(sum(self.zeroed_sizes), dtype=f32, device=device).split(
                    self.zeroed_sizes), self.zeroed_shapes)]
        else:
            zeroed = [torch.empty(s, dtype=f32, device=device) for s in
                      (self.tau_shape, self.hf_shape, self.hf_shape)]
        dtau, dgamma, dbeta = zeroed[:3]
        dstate0 = zeroed[3] if len(zeroed) > 3 else \
            torch.empty(self.dstate0_shape, dtype=f32, device=device)
        ws = _workspace(self.ws_bytes, device)
        arguments = self.arguments.fill((
            q.data_ptr(), k.data_ptr(), v.data_ptr(), lr.data_ptr(), tau.data_ptr(),
            gamma.data_ptr(), beta.data_ptr(), checkpoints.data_ptr(), dout.data_ptr(),
            0 if dstate_final is None else dstate_final.data_ptr(), dq.data_ptr(),
            dk.data_ptr(), dv.data_ptr(), dlr.data_ptr(), dtau.data_ptr(),
            dgamma.data_ptr(), dbeta.data_ptr(), dstate0.data_ptr()))
        _lib.check(_lib.lib().tttc_kernel_backward(
            self.kernel, arguments, None if ws is None else ws.data_ptr(), self.ws_bytes,
            _current_stream(self.index)))
        if self.sum_rows:
            dstate0 = dstate0.sum(0)
        return dq, dk, dv, dlr, dtau, dgamma, dbeta, dstate0


def _signature(tensors) -> tuple:
    """Device, shapes, strides and dtypes: what a launch plan depends on (None: absent)."""
    sig = [tensors[0].device]
    for x in tensors:
        sig += (None, None, None) if x is None else (x.shape, x.stride(), x.dtype)
    return tuple(sig)


def _cached(cache: dict, key, make):
    plan = cache.get(key)
    if plan is None:
        plan = make()
        if len(cache) < _CACHE_LIMIT:
            cache[key] = plan
    return plan


def forward_plan(key, q, k, v, lr, tau, gamma, beta, state0, layout, save_checkpoints,
                 keep_final=True) -> ForwardPlan:
    tensors = (q, k, v, lr, tau, gamma, beta, state0)
    return _cached(_forward_plans, (key, layout, save_checkpoints, keep_final,
                                    _signature(tensors)),
                   lambda: ForwardPlan(key, *tensors, layout, save_checkpoints, keep_final))


def backward_plan(key, q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final, layout,
                  shared_state, deterministic, one_buffer=False) -> BackwardPlan:
    tensors = (q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final)
    return _cached(_backward_plans, (key, layout, shared_state, deterministic, one_buffer,
                                     _signature(tensors)),
                   lambda: BackwardPlan(key, *tensors, layout, shared_state, deterministic,
                                        one_buffer))


def forward(key, q, k, v, lr, tau, gamma, beta, state0, layout, save_checkpoints):
    out, final, ckpt = forward_plan(key, q, k, v, lr, tau, gamma, beta, state0, layout,
                                    save_checkpoints).run(q, k, v, lr, tau, gamma, beta, state0)
    return out, final, (ckpt if save_checkpoints else state0.new_empty((0,)))


def backward(key, q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final, layout,
             shared_state):
    deterministic = torch.are_deterministic_algorithms_enabled()
    return backward_plan(key, q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final,
                         layout, shared_state, deterministic).run(
        q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final)


# --- decode (docs/decode.md) ----------------------------------------------------------------------

def _token_views(q, k, v, lr, layout):
    return [bhtf(_feature_unit(x), layout) for x in (q, k, v)] + [bhtf(lr, layout)]


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
    _lib.check(_lib.lib().tttc_kernel_prefill(
        kernel, buf, None if ws is None else ws.data_ptr(), nbytes.value,
        _current_stream(device.index)))
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
    _lib.check(_lib.lib().tttc_kernel_decode(kernel, buf, _current_stream(device.index)))
    return out
