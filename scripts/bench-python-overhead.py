#!/usr/bin/env python3
"""Host time per eager call of tttc.torch.ttt on the CUDA code path, without a GPU.

The CUDA implementation (python/src/tttc/torch/_cuda.py) is driven with CPU tensors: the op's
device -> implementation choice is pointed at _cuda, kernel handles and memory plans are faked
(as python/tests/test_cuda_binding.py does), the current stream is a constant, and libtttc's
tttc_kernel_forward / tttc_kernel_backward are replaced by a C function that returns 0 at once,
called through ctypes with the real argument types (so ctypes' conversion cost is counted). What
remains is what Python, torch and ctypes cost per call; the GPU-side parts (the launch in
libtttc, the CUDA caching allocator instead of the CPU one, the real current-stream query) are
not measured.

    python3 scripts/bench-python-overhead.py [--calls N] [--rounds R] [--spec examples/mlp2.json]
                                             [--shape B,H,T] [--src DIR] [--json FILE] [--profile]

Needs TTTC_LIBRARY (default build/capi/libtttc.so), torch, and a C compiler (cc) for the no-op.
Reports, per case, the lowest of --rounds medians of per-call perf_counter_ns over --calls calls,
the cases measured in turn (other load comes in bursts). --src DIR measures another copy of the
package (e.g. an older commit's python/src from `git archive`) for before/after comparisons.
--json FILE writes the numbers too.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TTTC_LIBRARY", str(ROOT / "build/capi/libtttc.so"))
# --src DIR: another copy of python/src (e.g. `git archive` of an older commit) to compare with.
_src = sys.argv[sys.argv.index("--src") + 1] if "--src" in sys.argv else str(ROOT / "python/src")
sys.path.insert(0, _src)

import torch  # noqa: E402

import tttc  # noqa: E402
import tttc.torch as tt  # noqa: E402
from tttc import _lib  # noqa: E402
from tttc.spec import Spec  # noqa: E402
from tttc.torch import _cuda, _ops  # noqa: E402

NOOP_C = ("#include <stdint.h>\n"
          "int tttc_noop_launch(const void* k, const void* t, void* ws, uint64_t n, void* s)"
          " { (void)k; (void)t; (void)ws; (void)n; (void)s; return 0; }\n")


def noop_launch(tmp: Path):
    """A C function with the launch signature that does nothing, declared like the real ones."""
    src, so = tmp / "noop.c", tmp / "libnoop.so"
    src.write_text(NOOP_C)
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    fn = ctypes.CDLL(str(so)).tttc_noop_launch
    real = _lib.lib()
    fn.argtypes, fn.restype = real.tttc_kernel_forward.argtypes, real.tttc_kernel_forward.restype
    return fn


class NoopKernelLib:
    """libtttc with the kernel entry points faked: memory plans computed here, launches no-ops."""

    def __init__(self, real, launch):
        self.real, self.specs = real, {}
        self.tttc_kernel_forward = self.tttc_kernel_backward = launch

    def __getattr__(self, name):
        return getattr(self.real, name)

    def tttc_kernel_memory(self, kernel, B, H, T, plan):
        spec = self.specs[kernel.value]
        plan.checkpoints = spec.checkpoints(T)
        plan.forward_workspace_bytes = 256
        plan.backward_workspace_bytes = 256
        return 0


def install_fakes(launch):
    fake = NoopKernelLib(_lib.lib(), launch)
    _lib._lib = fake

    def kernel(self, device):
        handle = self._kernels.get("fake")
        if handle is None:
            handle = self._kernels["fake"] = ctypes.c_void_p(id(self))
            fake.specs[handle.value] = self
        return handle

    Spec.kernel = kernel
    _ops._impl = lambda device: _cuda  # CPU tensors take the CUDA implementation
    if hasattr(_cuda, "_current_stream"):
        _cuda._current_stream = lambda device_index: 0
    else:  # before the launch plans (the "before" numbers of docs/python.md)
        stream = SimpleNamespace(cuda_stream=0)
        _cuda.torch.cuda.current_stream = lambda device=None: stream
    for module in (_cuda, getattr(tt, "_eager", None)):
        for name in ("clear_caches", "clear_cache"):
            if hasattr(module, name):
                getattr(module, name)()
    return fake


def median_us(fn, calls: int) -> float:
    for _ in range(max(20, calls // 20)):
        fn()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(calls):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return statistics.median(samples) / 1000


def best_of_rounds(cases: dict, calls: int, rounds: int) -> dict:
    """Per case, the lowest of `rounds` medians, the cases taken in turn: other load on a shared
    machine comes in bursts, and the round robin keeps one burst from landing on one case."""
    best = {}
    for _ in range(rounds):
        for name, fn in cases.items():
            us = median_us(fn, calls)
            best[name] = min(us, best.get(name, us))
    return best


def no_grad(fn):
    def run():
        with torch.no_grad():
            fn()
    return run


def fast_path(on: bool, fn):
    def run():
        saved, tt._fast_path = tt._fast_path, on
        try:
            fn()
        finally:
            tt._fast_path = saved
    return run


def inputs(spec: Spec, B: int, H: int, T: int):
    f, K = spec.head_dim, spec.mini_batch
    d = spec.torch_dtype
    q, k, v = (torch.randn(B, T, H, f).to(d) for _ in range(3))
    lr = torch.full((B, T, H), 0.01)
    tau, gamma, beta = torch.ones(K), torch.ones(H, f), torch.zeros(H, f)
    state = [0.1 * torch.randn(H, *t.shape) for t in spec.state_layout]
    return [q, k, v, lr, tau, gamma, beta], state


def measure(spec: Spec, calls: int, rounds: int, B: int, H: int, T: int) -> dict:
    tensors, state = inputs(spec, B, H, T)
    leaves = [t.clone().requires_grad_() for t in tensors]
    leaf_state = [s.clone().requires_grad_() for s in state]
    all_leaves = leaves + leaf_state
    dout = torch.randn_like(tensors[0])
    key, layout = spec.key, "bthf"
    cases = {}

    def fwd():
        tt.ttt(spec, *tensors, state)

    def fwd_grad():
        tt.ttt(spec, *leaves, leaf_state)

    def fwd_bwd():
        out, _ = tt.ttt(spec, *leaves, leaf_state)
        torch.autograd.grad(out, all_leaves, dout)

    # What torch's autograd costs any op with these leaves: a trivial autograd.Function.
    class Trivial(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *xs):
            return torch.empty_like(xs[0])

        @staticmethod
        def backward(ctx, g):
            return tuple(torch.empty_like(x) for x in all_leaves)

    cases["ttt forward, no grad"] = no_grad(fwd)
    cases["ttt forward, grad"] = fwd_grad
    cases["ttt forward + backward"] = fwd_bwd
    has_fast_path = hasattr(tt, "_fast_path")
    if has_fast_path:  # the same through the registered op only (fast path off)
        cases["via registered op: forward, no grad"] = fast_path(False, no_grad(fwd))
        cases["via registered op: forward, grad"] = fast_path(False, fwd_grad)
        cases["via registered op: forward + backward"] = fast_path(False, fwd_bwd)
    cases["floor: trivial autograd.Function fwd + bwd"] = \
        lambda: torch.autograd.grad(Trivial.apply(*all_leaves), all_leaves, dout)

    # The registered op's parts (no grad).
    packed = tt.pack_state(spec, state)
    fargs = (key, *tensors, packed, layout, False)
    with torch.no_grad():
        _, final, ckpt = _cuda.forward(key, *tensors, packed, layout, True)
    bargs = (key, *tensors, ckpt, dout, torch.zeros_like(final), layout, True)
    cases["argument checks (tt._check, uncached)"] = \
        lambda: tt._check(spec, *tensors, state, layout)
    cases["state packing (tt.pack_state)"] = lambda: tt.pack_state(spec, state)
    cases["registered op tttc::ttt_forward, no grad"] = no_grad(lambda: _ops.ttt_forward(*fargs))
    cases["implementation _cuda.forward, no grad"] = no_grad(lambda: _cuda.forward(*fargs))
    cases["registered op tttc::ttt_backward"] = no_grad(lambda: _ops.ttt_backward(*bargs))
    cases["implementation _cuda.backward"] = no_grad(lambda: _cuda.backward(*bargs))

    eager = getattr(tt, "_eager", None)
    if eager is not None:  # the fast path's stages (no grad)
        tt.ttt(spec, *tensors, state)
        sig_args = (spec, *tensors, state, layout, False)
        entry = eager._entries[eager._signature(*sig_args)]
        plan = entry.forward_plans[False]
        cases["fast path: mode checks (_eager._quiet)"] = eager._quiet
        cases["fast path: signature + lookup"] = \
            lambda: eager._entries.get(eager._signature(*sig_args))
        cases["fast path: state packing (torch.cat)"] = lambda: entry.pack(state)
        cases["fast path: launch plan run (allocs, pointers, ctypes)"] = \
            lambda: plan.run(*tensors, packed)
        cases["fast path: unpack_state (of dstate0 in backward)"] = \
            lambda: tt.unpack_state(spec, packed)
    # Unit costs.
    launch = _lib.lib().tttc_kernel_forward
    buf = ctypes.create_string_buffer(_lib.TENSOR_BYTES * 11)
    cases["ctypes call of the no-op launch"] = lambda: launch(None, buf, None, 0, None)
    if eager is None:
        entries = [(t.data_ptr(), 0, t.shape, t.stride()) for t in (tensors * 2)[:11]]
        cases["_lib.pack_tensors, 11 tensors"] = lambda: _lib.pack_tensors(entries)
    cases["torch.empty (one allocation)"] = lambda: torch.empty((B, H, 8))

    r = best_of_rounds(cases, calls, rounds)
    r["= torch.library dispatch, no grad"] = (r["registered op tttc::ttt_forward, no grad"]
                                              - r["implementation _cuda.forward, no grad"])
    return r


def profile(spec: Spec, B: int, H: int, T: int, calls: int) -> None:
    import cProfile
    import pstats
    tensors, state = inputs(spec, B, H, T)
    leaves = [t.requires_grad_() for t in tensors] + [s.requires_grad_() for s in state]
    dout = torch.randn_like(tensors[0])

    def fwd_bwd():
        out, _ = tt.ttt(spec, *leaves[:7], leaves[7:])
        torch.autograd.grad(out, leaves, dout)

    for _ in range(20):
        fwd_bwd()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fwd_bwd()
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=1000, help="calls per median")
    ap.add_argument("--rounds", type=int, default=5, help="medians per case (the lowest counts)")
    ap.add_argument("--spec", action="append",
                    help="spec files (default: examples/linear.json and examples/mlp2.json)")
    ap.add_argument("--shape", default="1,1,16", help="B,H,T (default 1,1,16: one mini-batch)")
    ap.add_argument("--profile", action="store_true", help="cProfile of forward + backward")
    ap.add_argument("--json", help="write the numbers to this file")
    ap.add_argument("--src", help="the tttc package sources to measure (default python/src)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    B, H, T = (int(x) for x in a.shape.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        install_fakes(noop_launch(Path(tmp)))
        results = {"torch": torch.__version__, "src": _src, "shape": [B, H, T], "calls": a.calls,
                   "specs": {}}
        for path in a.spec or [str(ROOT / "examples/linear.json"), str(ROOT / "examples/mlp2.json")]:
            spec = tttc.Spec.from_file(path)
            if a.profile:
                profile(spec, B, H, T, a.calls // 4)
                continue
            r = measure(spec, a.calls, a.rounds, B, H, T)
            results["specs"][Path(path).name] = r
            print(f"{Path(path).name} (B={B} H={H} T={T}), median us per call:")
            for name, us in r.items():
                print(f"  {name:<55} {us:8.1f}")
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
