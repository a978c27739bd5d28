"""The eager fast path of tttc.torch.ttt (tttc/torch/_eager.py): bit-identical outputs and
gradients to the registered op, on the CPU implementation and on the CUDA implementation's
marshalling (libtttc's kernels faked as in test_cuda_binding.py); and the registered op is what
runs wherever something must see it (torch.compile, a TorchDispatchMode, FakeTensorMode, a tensor
subclass, functorch transforms, the profiler)."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import tttc.torch as tt
from conftest import make_inputs, make_spec
from test_cuda_binding import fake  # noqa: F401 (the fixture)
from tttc.torch import _cuda, _eager, _ops

GRAD_NAMES = ["q", "k", "v", "lr", "tau", "gamma", "beta"]


@pytest.fixture
def op_calls(monkeypatch):
    """Counts calls of the registered forward op made by tttc.torch.ttt."""
    calls = []
    op = _ops.ttt_forward

    def counted(*args):
        calls.append(args[0])
        return op(*args)

    monkeypatch.setattr(_ops, "ttt_forward", counted)
    return calls


@pytest.fixture
def route(monkeypatch):
    """route(False) sends eager calls through the registered op (as TTTC_EAGER_FAST_PATH=0)."""
    def set_route(fast: bool):
        monkeypatch.setattr(tt, "_fast_path", fast)
    yield set_route
    _eager.clear_cache()


def run(spec, inputs, layout, output_final_state, seed=1):
    """Outputs and the gradients of every input, for fixed random output gradients."""
    q, k, v, lr, tau, gamma, beta, state = inputs
    leaves = [q, k, v, lr, tau, gamma, beta, *state]
    out, final = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state, layout=layout,
                        output_final_state=output_final_state)
    g = torch.Generator().manual_seed(seed)
    if not out.requires_grad:
        return out, final, None, out.grad_fn
    outputs, cotangents = [out], [torch.randn(out.shape, generator=g).to(out.dtype)]
    if final is not None:
        outputs.append(final[0])  # W1 only: the other parts of the final state get zeros
        cotangents.append(torch.randn(final[0].shape, generator=g, dtype=final[0].dtype))
    grads = torch.autograd.grad(outputs, leaves, cotangents)
    return out, final, grads, out.grad_fn


def assert_identical(a, b):
    out_a, final_a, grads_a, _ = a
    out_b, final_b, grads_b, _ = b
    assert torch.equal(out_a, out_b)
    assert (final_a is None) == (final_b is None)
    for x, y in zip(final_a or [], final_b or []):
        assert torch.equal(x, y) and x.shape == y.shape
    assert (grads_a is None) == (grads_b is None)
    for i, (x, y) in enumerate(zip(grads_a or [], grads_b or [])):
        name = GRAD_NAMES[i] if i < 7 else f"state[{i - 7}]"
        assert x.shape == y.shape and x.dtype == y.dtype, name
        assert torch.equal(x, y), name


def both_routes(route, make, layout, output_final_state):
    route(True)
    fast = run(*make(), layout, output_final_state)
    route(False)
    slow = run(*make(), layout, output_final_state)
    return fast, slow


@pytest.mark.parametrize("model", ["linear", "mlp"])
@pytest.mark.parametrize("layout", ["bthf", "bhtf"])
@pytest.mark.parametrize("per_batch", [False, True])
@pytest.mark.parametrize("output_final_state", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_fast_path_matches_the_op_on_cpu(route, op_calls, model, layout, per_batch,
                                         output_final_state, grad):
    spec = make_spec(model, checkpoint_group=2)

    def make():
        return spec, make_inputs(spec, T=21, layout=layout, per_batch=per_batch,
                                 dtype=torch.float32, requires_grad=grad)

    fast, slow = both_routes(route, make, layout, output_final_state)
    assert_identical(fast, slow)
    assert len(op_calls) == 1  # the registered op ran for the slow route only
    if grad:
        assert type(fast[3]).__name__ == "_TTTFunctionBackward"
        assert "GeneratedBackwardFor_tttc_ttt_forward" in type(slow[3]).__name__


@pytest.mark.parametrize("layout", ["bthf", "bhtf"])
@pytest.mark.parametrize("per_batch", [False, True])
@pytest.mark.parametrize("deterministic", [False, True])
def test_fast_path_matches_the_op_on_the_cuda_path(fake, monkeypatch, route, op_calls, layout,
                                                   per_batch, deterministic):
    monkeypatch.setattr(_ops, "_impl", lambda device: _cuda)  # CPU tensors, CUDA marshalling
    _eager.clear_cache()
    spec = make_spec("mlp", dtype="f32", checkpoint_group=2)
    for seed in (0, 1):  # the second call reuses the cached entry and launch plans

        def make():
            q, k, v, lr, tau, gamma, beta, state = make_inputs(
                spec, T=29, layout=layout, per_batch=per_batch, dtype=torch.float32, seed=seed)
            if layout == "bthf":  # a strided q: a [B, T, H, f] view of [B, H, T, f] storage
                q = q.transpose(1, 2).contiguous().transpose(1, 2)
            for t in [q, k, v, lr, tau, gamma, beta, *state]:
                t.requires_grad_()
            return spec, (q, k, v, lr, tau, gamma, beta, state)

        prev = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        try:
            if deterministic:
                with pytest.warns(UserWarning, match="tttc.ttt backward on CUDA"):
                    fast, slow = both_routes(route, make, layout, True)
            else:
                fast, slow = both_routes(route, make, layout, True)
        finally:
            torch.use_deterministic_algorithms(prev)
        assert_identical(fast, slow)
        assert type(fast[3]).__name__ == "_TTTFunctionBackward"
        # Inference: the forward-only variant (one checkpoint per (b, h), in scratch memory).
        with torch.no_grad():
            route(True)
            spec_, (q, k, v, lr, tau, gamma, beta, state) = make()
            out_fast, _ = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state, layout=layout)
            assert fake.calls[-1][:2] == ("forward", 4096)
            route(False)
            out_slow, _ = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state, layout=layout)
        assert torch.equal(out_fast, out_slow)
    assert len(op_calls) == 4
    # The fast path puts the gradients the runtime zeroes in one buffer (one memset); its
    # results equal the op's above.
    assert fake.adjacent[0::2] == [True, True] and not any(fake.dfinal_absent)
    # Without a final state to differentiate, it passes dfinal as absent (the kernel reads zero)
    # rather than launching a fill.
    route(True)
    run(*make(), layout, False)
    assert fake.dfinal_absent[-1]


class RecordingMode(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("grad", [False, True])
def test_a_dispatch_mode_sees_the_registered_op(route, op_calls, linear_spec, grad):
    route(True)
    spec = linear_spec
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, requires_grad=grad)
    expected, _ = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state)
    assert op_calls == []  # plain eager: the fast path
    with RecordingMode() as mode:
        out, _ = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state)
    assert len(op_calls) == 1
    assert "tttc.ttt_forward.default" in mode.ops
    assert torch.equal(out, expected)


def test_fake_tensors_and_subclasses_take_the_registered_op(route, op_calls, linear_spec):
    from torch._subclasses.fake_tensor import FakeTensorMode
    route(True)
    spec = linear_spec
    inputs = make_inputs(spec)
    with FakeTensorMode() as mode:
        q, k, v, lr, tau, gamma, beta, state = (
            [mode.from_tensor(s) for s in x] if isinstance(x, list) else mode.from_tensor(x)
            for x in inputs)
        out, _ = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state)
        assert out.shape == q.shape
    assert len(op_calls) == 1

    class Logged(torch.Tensor):  # a subclass with the default __torch_function__
        pass

    q, k, v, lr, tau, gamma, beta, state = inputs
    out, _ = tt.ttt(spec, q.as_subclass(Logged), k, v, lr, tau, gamma, beta, state)
    assert len(op_calls) == 2
    assert torch.equal(out.as_subclass(torch.Tensor), tt.ttt(spec, *inputs[:7], inputs[7])[0])
    assert len(op_calls) == 2  # plain tensors again: the fast path


def test_torch_compile_and_functorch_and_profiler_take_the_registered_op(route, op_calls,
                                                                         linear_spec):
    route(True)
    spec = linear_spec
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec)
    targets = []

    def backend(gm, example_inputs):
        targets.extend(str(n.target) for n in gm.graph.nodes)
        return gm

    def f(q):
        return tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state)[0]

    torch._dynamo.reset()
    compiled = torch.compile(f, backend=backend, fullgraph=True)
    assert torch.equal(compiled(q), f(q))
    assert "tttc.ttt_forward.default" in targets
    assert len(op_calls) == 1  # the traced call; the eager f(q) took the fast path
    torch._dynamo.reset()

    with torch.profiler.profile() as prof:
        tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state)
    assert len(op_calls) == 2
    assert any(e.name == "tttc::ttt_forward" for e in prof.events())

    # functorch: vmap sees the op (no vmap rule: torch's batched fallback loops over it).
    with pytest.warns(UserWarning, match="batching rule for tttc::ttt_forward"):
        batched = torch.func.vmap(f)(q.unsqueeze(0))
    assert len(op_calls) == 3
    assert torch.equal(batched[0], f(q))


def test_double_backward_goes_through_the_registered_backward(route, linear_spec):
    spec = linear_spec
    results = []
    for fast in (True, False):
        route(fast)
        q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, requires_grad=True)
        out, _ = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state)
        grads = torch.autograd.grad(out.sum(), [q, gamma, *state], create_graph=True)
        assert all(g.requires_grad for g in grads)  # recorded through tttc::ttt_backward
        with pytest.raises(RuntimeError, match="no autograd formula was registered"):
            torch.autograd.grad(grads[0].sum(), [q])
        results.append(grads)
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_a_changed_argument_after_a_cached_call_is_still_named(route, linear_spec):
    route(True)
    spec = linear_spec
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec)
    tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state)
    with pytest.raises(ValueError, match="argument 'gamma'.*float32"):
        tt.ttt(spec, q, k, v, lr, tau, gamma.float(), beta, state)
    with pytest.raises(ValueError, match=r"argument 'state\[1\] \(b1\)'"):
        tt.ttt(spec, q, k, v, lr, tau, gamma, beta, [state[0], state[1][:, :3]])
    with pytest.raises(ValueError, match="argument 'layout'"):
        tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state, layout="bhft")


def test_an_in_place_change_of_a_saved_input_is_caught(route, linear_spec):
    route(True)
    q, k, v, lr, tau, gamma, beta, state = make_inputs(linear_spec, requires_grad=True)
    qq = q * 1  # not a leaf, so it may be changed in place
    out, _ = tt.ttt(linear_spec, qq, k, v, lr, tau, gamma, beta, state)
    qq.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
