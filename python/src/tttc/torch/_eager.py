"""The eager fast path of tttc.torch.ttt: the implementation behind the registered ops (_cuda or
_cpu), called without the dispatcher, through an autograd.Function that mirrors the op's
registered autograd formula (_ops.py). The torch.library route costs tens of microseconds per
call in Python (schema handling, redispatch, the generated autograd.Function); this one runs the
same kernels on the same arguments, so results are bit-identical.

It is taken only when nothing could tell the difference: not compiling (tttc.torch.ttt checks
that first, so dynamo never traces this module), no TorchDispatchMode or TorchFunctionMode (fake
tensors, functionalization, selective checkpointing, schema checks), no functorch transform
(vmap, grad), no forward-mode AD, no JIT tracer, no profiler (whose traces should show
tttc::ttt_forward), every tensor a plain torch.Tensor or nn.Parameter, and the spec a tttc.Spec.
Anything else returns None and the caller takes the registered op. A double backward
(create_graph=True) calls the registered backward op, as the op's own formula does.

Everything that depends only on the call's signature (spec, layout, output_final_state and each
tensor's shape, strides, dtype and device) lives in one _Entry found by one dict lookup; an
entry exists only for signatures that passed the argument checks.
"""
from __future__ import annotations

import torch
import torch.autograd.forward_ad as _forward_ad
from torch import _C

from ..spec import Spec
from . import _check, _ops, unpack_state

_PLAIN = frozenset((torch.Tensor, torch.nn.Parameter))
_LAYOUTS = ("bthf", "bhtf")
_ENTRY_LIMIT = 4096
_entries: dict = {}

try:
    _dispatch_modes = _C._len_torch_dispatch_stack
    _function_modes = _C._len_torch_function_stack
    _transforms = _C._are_functorch_transforms_active
    _tracing = _C._get_tracing_state
    _profiling = torch.autograd._profiler_enabled
    AVAILABLE = hasattr(_forward_ad, "_current_level")
except AttributeError:  # a torch without these: always the registered op
    AVAILABLE = False

_any_requires_grad = getattr(_C, "_any_requires_grad", None) or (
    lambda *ts: any(t.requires_grad for t in ts))


def clear_cache() -> None:
    """Forget every entry (tests that swap the implementation or fake libtttc call this)."""
    _entries.clear()


def _quiet() -> bool:
    """No mode, transform, tracer or profiler that must see the registered op."""
    return (not _dispatch_modes() and not _function_modes() and not _transforms()
            and _forward_ad._current_level < 0 and _tracing() is None and not _profiling())


def _signature(spec, q, k, v, lr, tau, gamma, beta, state, layout, output_final_state):
    plain = _PLAIN
    if (type(spec) is not Spec or type(state) not in (list, tuple) or type(layout) is not str
            or layout not in _LAYOUTS
            or type(q) not in plain or type(k) not in plain or type(v) not in plain
            or type(lr) not in plain or type(tau) not in plain or type(gamma) not in plain
            or type(beta) not in plain):
        return None
    for x in state:
        if type(x) not in plain:
            return None
    # Spelled out: this runs on every eager call.
    return (spec.key, layout, bool(output_final_state), q.device,
            q.shape, q.stride(), q.dtype, k.shape, k.stride(), k.dtype, k.get_device(),
            v.shape, v.stride(), v.dtype, v.get_device(), lr.shape, lr.stride(), lr.dtype,
            lr.get_device(), tau.shape, tau.stride(), tau.dtype, tau.get_device(),
            gamma.shape, gamma.stride(), gamma.dtype, gamma.get_device(),
            beta.shape, beta.stride(), beta.dtype, beta.get_device(),
            # the state is packed by torch.cat: its strides do not matter
            *[(x.shape, x.dtype, x.get_device()) for x in state])


class _Entry:
    """One checked signature: the implementation, packing, and the launch plans as used."""

    def __init__(self, spec, q, layout, output_final_state, state):
        self.spec, self.key, self.layout = spec, spec.key, layout
        self.keep_final = bool(output_final_state)
        self.impl = _ops._impl(q.device)
        self.lead = state[0].dim() - 2                 # 1: shared [H, ...]; 2: [B, H, ...]
        self.shared = self.lead == 1
        self.flatten = tuple(x.dim() > self.lead + 1 for x in state)
        B, H = (q.shape[0], q.shape[2]) if layout == "bthf" else (q.shape[0], q.shape[1])
        self.out_shape, self.out_dtype = tuple(q.shape), q.dtype
        self.final_shape, self.state_dtype = (B, H, spec.state_floats), state[0].dtype
        self.forward_plans: dict = {}
        self.backward_plans: dict = {}

    def pack(self, state):
        """pack_state without the reshape calls (bias tensors need none): the same values."""
        lead = self.lead
        return torch.cat([x.flatten(lead) if flat else x for x, flat in zip(state, self.flatten)],
                         dim=-1)

    def forward(self, save_checkpoints, q, k, v, lr, tau, gamma, beta, state0):
        plan = self.forward_plans.get(save_checkpoints)
        if plan is None:
            plan = self.forward_plans[save_checkpoints] = self.impl.forward_plan(
                self.key, q, k, v, lr, tau, gamma, beta, state0, self.layout, save_checkpoints,
                self.keep_final)
        return plan.run(q, k, v, lr, tau, gamma, beta, state0)

    def backward(self, q, k, v, lr, tau, gamma, beta, ckpt, dout, dfinal):
        deterministic = torch.are_deterministic_algorithms_enabled()
        key = (dout.stride(), None if dfinal is None else dfinal.stride(), deterministic)
        plan = self.backward_plans.get(key)
        if plan is None:
            plan = self.impl.backward_plan(self.key, q, k, v, lr, tau, gamma, beta, ckpt, dout,
                                           dfinal, self.layout, self.shared, deterministic,
                                           one_buffer=True)
            if len(self.backward_plans) < 64:
                self.backward_plans[key] = plan
        return plan.run(q, k, v, lr, tau, gamma, beta, ckpt, dout, dfinal)


class _TTTFunction(torch.autograd.Function):
    """tttc::ttt_forward's autograd (_ops._setup_context, _ops._backward) without the op."""

    @staticmethod
    def forward(ctx, entry, q, k, v, lr, tau, gamma, beta, *state):
        state0 = entry.pack(state)
        out, final, ckpt = entry.forward(True, q, k, v, lr, tau, gamma, beta, state0)
        ctx.entry = entry
        ctx.save_for_backward(q, k, v, lr, tau, gamma, beta, ckpt)
        ctx.mark_non_differentiable(ckpt)
        ctx.set_materialize_grads(False)
        return (out, ckpt, final) if entry.keep_final else (out, ckpt)

    @staticmethod
    def backward(ctx, dout, _dckpt, dfinal=None):
        q, k, v, lr, tau, gamma, beta, ckpt = ctx.saved_tensors
        e = ctx.entry
        # An unused output's gradient is zero: dout materialised (the kernels need it), dfinal
        # passed as absent (the kernels read it as zero; no fill to launch).
        if dout is None:
            dout = torch.zeros(e.out_shape, dtype=e.out_dtype, device=q.device)
        args = (q, k, v, lr, tau, gamma, beta, ckpt, dout, dfinal)
        if (_C.is_grad_enabled() or type(dout) not in _PLAIN
                or (dfinal is not None and type(dfinal) not in _PLAIN)):
            grads = _ops.ttt_backward(e.key, *args, e.layout, e.shared)  # create_graph
        else:
            grads = e.backward(*args)
        return (None, *grads[:7], *unpack_state(e.spec, grads[7]))


def ttt(spec, q, k, v, lr, tau, gamma, beta, state, layout, output_final_state):
    """tttc.torch.ttt's eager fast path, or None where the registered op must run."""
    if not _quiet():
        return None
    sig = _signature(spec, q, k, v, lr, tau, gamma, beta, state, layout, output_final_state)
    if sig is None:
        return None
    e = _entries.get(sig)
    if e is None:
        _check(spec, q, k, v, lr, tau, gamma, beta, state, layout)  # names a bad argument
        e = _Entry(spec, q, layout, output_final_state, state)
        if len(_entries) < _ENTRY_LIMIT:
            _entries[sig] = e
    if _C.is_grad_enabled() and _any_requires_grad(q, k, v, lr, tau, gamma, beta, *state):
        outputs = _TTTFunction.apply(e, q, k, v, lr, tau, gamma, beta, *state)
        out, final = outputs[0], (outputs[2] if e.keep_final else None)
    else:
        out, final, _ = e.forward(False, q, k, v, lr, tau, gamma, beta, e.pack(state))
    return out, (unpack_state(spec, final) if e.keep_final else None)
