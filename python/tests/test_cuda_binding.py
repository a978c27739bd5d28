"""The CUDA implementation's marshalling (tttc/torch/_cuda.py), exercised without a GPU: libtttc's
kernel entry points are replaced by a fake that decodes the packed tttc_tensor array, checks it
against the kernel ABI (runtime/tensor.hpp: [B, H, T, f] token views with feature stride 1, lr
and dlr [B, H, T] views with any strides (dlr's elements distinct), contiguous parameters,
checkpoint count of the memory plan) and computes with the CPU reference, writing through the
given pointers and strides. So the layouts, strides, the inference variant, dlr written in place
through its view and dstate0 reductions of the GPU path are tested in CI."""
from __future__ import annotations

import ctypes
import struct

import pytest
import torch

import tttc.torch as tt
from conftest import make_inputs, make_spec
from tttc import _lib
from tttc.spec import Spec, spec_for_key
from tttc.torch import _cpu, _cuda

_DT = {0: torch.float32, 1: torch.float16, 2: torch.bfloat16}


def decode(buf, count):
    """tttc_tensor array -> list of (tensor view over the same memory, dtype code) or None."""
    views = []
    for i in range(count):
        ptr, code, ndim, *rest = struct.unpack_from(_lib.TENSOR_FORMAT, buf, i * _lib.TENSOR_BYTES)
        if ptr == 0:
            views.append(None)
            continue
        shape, strides = rest[:ndim], rest[4:4 + ndim]
        dtype = _DT[code]
        span = 1 + sum((s - 1) * st for s, st in zip(shape, strides))
        raw = (ctypes.c_byte * (span * dtype.itemsize)).from_address(ptr)
        flat = torch.frombuffer(raw, dtype=dtype)
        views.append(flat.as_strided(shape, strides))
    return views


def _indices(x):
    return [(b, h, t) for b in range(x.shape[0]) for h in range(x.shape[1])
            for t in range(x.shape[2])]


class FakeKernelLib:
    """Stands in for libtttc's kernel functions; forwards everything else to the real library."""

    def __init__(self, real):
        self.real, self.kernels, self.calls, self.launch_heads = real, {}, [], []
        self.adjacent, self.dfinal_absent = [], []  # per backward call

    def __getattr__(self, name):
        return getattr(self.real, name)

    def tttc_kernel_memory(self, kernel, B, H, T, plan):
        spec = self.kernels[kernel.value]
        plan.checkpoints = spec.checkpoints(T)
        plan.forward_workspace_bytes = 64
        plan.backward_workspace_bytes = 128
        return 0

    def _check_common(self, spec, t, names):
        q = t[0]
        B, H, T, f = q.shape
        assert f == spec.head_dim
        for x, n in zip(t, names):
            if x is None:
                continue
            if n in ("q", "k", "v", "out", "dout", "dq", "dk", "dv"):
                assert tuple(x.shape) == (B, H, T, f) and x.stride(-1) == 1, n
                assert x.dtype == spec.torch_dtype, n
            elif n in ("lr", "dlr"):
                assert tuple(x.shape) == (B, H, T) and min(x.stride()) >= 0, n
                if n == "dlr":  # an output: one address per element
                    assert len({x[i].data_ptr() for i in _indices(x)}) == x.numel(), n
            else:
                assert x.is_contiguous() and x.dtype == torch.float32, n
        return B, H, T

    def tttc_kernel_forward(self, kernel, buf, ws, ws_bytes, stream):
        spec = self.kernels[kernel.value]
        t = decode(buf, 11)
        names = ["q", "k", "v", "lr", "tau", "gamma", "beta", "state0", "out", "state_final",
                 "checkpoints"]
        B, H, T = self._check_common(spec, t, names)
        assert ws is not None and ws_bytes == 64 and stream == 1234
        assert tuple(t[10].shape) == (B, H, spec.checkpoints(T), spec.state_floats)
        out, final, ckpt = _cpu.forward(spec.key, *t[:8], "bhtf", True)
        t[8].copy_(out), t[9].copy_(final), t[10].copy_(ckpt)
        self.calls.append(("forward", spec.checkpoint_group, tuple(t[10].shape)))
        return 0

    def tttc_kernel_backward(self, kernel, buf, ws, ws_bytes, stream):
        spec = self.kernels[kernel.value]
        t = decode(buf, 18)
        names = ["q", "k", "v", "lr", "tau", "gamma", "beta", "checkpoints", "dout",
                 "dstate_final", "dq", "dk", "dv", "dlr", "dtau", "dgamma", "dbeta", "dstate0"]
        self._check_common(spec, t, names)
        assert ws is not None and ws_bytes == 128 and stream == 1234
        shared = t[17].dim() == 2
        # On the eager fast path, what the runtime zeroes before the kernel accumulates (dtau,
        # dgamma, dbeta, a shared dstate0) lies side by side, so that one memset clears it.
        zeroed = t[14:18] if shared else t[14:17]
        self.dfinal_absent.append(t[9] is None)
        self.adjacent.append(all(b.data_ptr() == a.data_ptr() + 4 * a.numel()
                                 for a, b in zip(zeroed, zeroed[1:])))
        grads = _cpu.backward(spec.key, *t[:10], "bhtf", shared)
        for dst, src in zip(t[10:], grads):
            dst.copy_(src)
        self.calls.append(("backward", shared))
        return 0


@pytest.fixture
def fake(monkeypatch):
    fake = FakeKernelLib(_lib.lib())
    monkeypatch.setattr(_lib, "_lib", fake)
    _cuda.clear_caches()

    def kernel(self, device, launch_heads=0):
        handle = ctypes.c_void_p(id(self))
        fake.kernels[handle.value] = self
        fake.launch_heads.append((self.checkpoint_group, launch_heads))
        return handle

    monkeypatch.setattr(Spec, "kernel", kernel)
    monkeypatch.setattr(_cuda, "_current_stream", lambda device_index: 1234)
    yield fake
    _cuda.clear_caches()


def feature_strided(x: torch.Tensor) -> torch.Tensor:
    """The same values with the last dimension not unit-stride (the launch plan copies it)."""
    return x.movedim(-1, 0).contiguous().movedim(0, -1)


@pytest.mark.parametrize("layout", ["bthf", "bhtf"])
@pytest.mark.parametrize("per_batch", [False, True])
@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("H,odd_strides", [(2, False), (1, False), (3, True)])
def test_cuda_path_marshalling_matches_cpu(fake, layout, per_batch, deterministic, H,
                                           odd_strides):
    spec = make_spec("mlp", dtype="f32", checkpoint_group=2)
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, H=H, T=29, layout=layout,
                                                       per_batch=per_batch, dtype=torch.float32)
    if layout == "bthf":  # a strided q: a [B, T, H, f] view of [B, H, T, f] storage
        q = q.transpose(1, 2).contiguous().transpose(1, 2)
    if odd_strides:  # inputs the kernels cannot take as they are: copied first
        k, v, gamma = feature_strided(k), feature_strided(v), feature_strided(gamma)
        assert k.stride(-1) != 1 and not gamma.is_contiguous()
    packed = tt.pack_state(spec, state)
    args = (spec.key, q, k, v, lr, tau, gamma, beta, packed, layout)
    out_g, final_g, ckpt_g = _cuda.forward(*args, True)
    out_c, final_c, ckpt_c = _cpu.forward(*args, True)
    assert out_g.shape == q.shape and out_g.is_contiguous()
    torch.testing.assert_close(out_g, out_c)
    torch.testing.assert_close(final_g, final_c)
    torch.testing.assert_close(ckpt_g, ckpt_c)
    dout = torch.randn_like(out_g)
    dfinal = torch.randn_like(final_g)
    if odd_strides:
        dout, dfinal = feature_strided(dout), dfinal.transpose(0, 1).contiguous().transpose(0, 1)
    bargs = (spec.key, q, k, v, lr, tau, gamma, beta, ckpt_g, dout, dfinal, layout, not per_batch)
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    try:
        if deterministic:
            with pytest.warns(UserWarning, match="tttc.ttt backward on CUDA"):
                grads_g = _cuda.backward(*bargs)
        else:
            grads_g = _cuda.backward(*bargs)
    finally:
        torch.use_deterministic_algorithms(prev)
    grads_c = _cpu.backward(*bargs)
    for name, a, b in zip(["dq", "dk", "dv", "dlr", "dtau", "dgamma", "dbeta", "dstate0"],
                          grads_g, grads_c):
        assert a.shape == b.shape and a.is_contiguous(), name
        assert b.abs().max() > 0, name
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)
    # In deterministic mode a shared dstate0 is computed per row and summed by torch.
    assert fake.calls[-1] == ("backward", not per_batch and not deterministic)


def test_inference_uses_the_forward_only_variant(fake):
    spec = make_spec("mlp", dtype="f32", checkpoint_group=1)
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, T=40, dtype=torch.float32)
    packed = tt.pack_state(spec, state)
    out_g, final_g, ckpt_g = _cuda.forward(spec.key, q, k, v, lr, tau, gamma, beta, packed,
                                           "bthf", False)
    assert ckpt_g.shape == (0,)
    assert fake.calls[-1] == ("forward", 4096, (2, 2, 1, spec.state_floats))
    out_c, final_c, _ = _cpu.forward(spec.key, q, k, v, lr, tau, gamma, beta, packed, "bthf", False)
    torch.testing.assert_close(out_g, out_c)
    torch.testing.assert_close(final_g, final_c)
    variant = spec_for_key(spec.key).inference_variant()
    assert variant.passes == ("forward",) and variant.checkpoint_group == 4096


@pytest.mark.parametrize("group,grad,heads", [(1, True, 6), (1, False, 0), (2, True, 0)])
def test_the_training_forward_asks_for_kernels_for_its_launch_size(fake, group, grad, heads):
    """B*H reaches get_kernel (which may then split the query off, for few heads) only where
    the forward saves every state: with a gradient and checkpoint group 1."""
    spec = make_spec("mlp", dtype="f32", checkpoint_group=group)
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, H=3, T=40, dtype=torch.float32)
    packed = tt.pack_state(spec, state)
    out, final, ckpt = _cuda.forward(spec.key, q, k, v, lr, tau, gamma, beta, packed, "bthf",
                                      grad)
    assert fake.launch_heads[-1][1] == heads
    if grad:  # the backward asks for the same kernels as its forward
        _cuda.backward(spec.key, q, k, v, lr, tau, gamma, beta, ckpt, torch.randn_like(out),
                       None, "bthf", True)
        assert fake.launch_heads[-1] == fake.launch_heads[-2]


def test_deterministic_mode_without_warn_only_is_an_error(fake):
    spec = make_spec("linear", dtype="f32")
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, dtype=torch.float32)
    packed = tt.pack_state(spec, state)
    out, final, ckpt = _cuda.forward(spec.key, q, k, v, lr, tau, gamma, beta, packed, "bthf", True)
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with pytest.raises(RuntimeError, match="does not have a deterministic implementation"):
            _cuda.backward(spec.key, q, k, v, lr, tau, gamma, beta, ckpt, out, None, "bthf", True)
    finally:
        torch.use_deterministic_algorithms(prev)
    assert fake.calls[-1][0] == "forward"  # nothing was launched
