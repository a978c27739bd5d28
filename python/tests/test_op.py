"""The op on the CPU implementation: torch.library.opcheck, float64 gradcheck, both layouts,
shared and per-sequence state, the final state, checkpoint groups, the inference path (no
checkpoints without a gradient), dtypes and deterministic mode."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import tttc
import tttc.torch as tt
from conftest import make_inputs, make_spec


def to_layout(x, layout):
    return x.transpose(1, 2).contiguous() if layout == "bhtf" else x


def op_args(spec, layout="bthf", per_batch=False, save=True, T=20, dtype=torch.float64,
            requires_grad=False):
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, T=T, layout=layout,
                                                       per_batch=per_batch, dtype=dtype)
    packed = tt.pack_state(spec, state)
    args = [q, k, v, lr, tau, gamma, beta, packed]
    if requires_grad:
        for a in args:
            a.requires_grad_()
    return (spec.key, *args, layout, save)


@pytest.mark.parametrize("model", ["linear", "mlp"])
@pytest.mark.parametrize("layout", ["bthf", "bhtf"])
@pytest.mark.parametrize("per_batch", [False, True])
def test_opcheck_forward(model, layout, per_batch):
    spec = make_spec(model)
    args = op_args(spec, layout, per_batch, requires_grad=True)
    torch.library.opcheck(torch.ops.tttc.ttt_forward.default, args)


def test_opcheck_forward_f32_strided():
    """float32 tokens of the spec's dtype, q given as a non-contiguous [B, T, H, f] view."""
    spec = make_spec("mlp", dtype="f32")
    key, q, k, v, lr, tau, gamma, beta, packed, layout, save = op_args(
        spec, "bthf", dtype=torch.float32, requires_grad=False)
    q_strided = q.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    assert not q_strided.is_contiguous()
    args = (key, q_strided, k, v, lr, tau, gamma, beta, packed, layout, save)
    torch.library.opcheck(torch.ops.tttc.ttt_forward.default, args)


@pytest.mark.parametrize("shared", [False, True])
def test_opcheck_backward(shared):
    spec = make_spec("linear")
    key, q, k, v, lr, tau, gamma, beta, packed, layout, _ = op_args(spec, per_batch=not shared)
    out, final, ckpt = torch.ops.tttc.ttt_forward(key, q, k, v, lr, tau, gamma, beta, packed,
                                                  layout, True)
    dout = torch.randn_like(out)
    dfinal = torch.randn_like(final)
    args = (key, q, k, v, lr, tau, gamma, beta, ckpt, dout, dfinal, layout, shared)
    torch.library.opcheck(torch.ops.tttc.ttt_backward.default, args)


@pytest.mark.parametrize("model,T", [("linear", 12), ("mlp", 11)])
@pytest.mark.parametrize("layout", ["bthf", "bhtf"])
@pytest.mark.parametrize("per_batch", [False, True])
def test_gradcheck_float64(model, T, layout, per_batch):
    """Every input, out and the final state, a partial last mini-batch (T not a multiple of K)."""
    spec = make_spec(model, head_dim=16, mini_batch=8)
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, B=1 if model == "mlp" else 2, H=1,
                                                       T=T, layout=layout, per_batch=per_batch,
                                                       requires_grad=True)
    n = len(state)

    def fn(q, k, v, lr, tau, gamma, beta, *state):
        out, final = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, list(state), layout=layout,
                            output_final_state=True)
        return (out, *final)

    inputs = (q, k, v, lr, tau, gamma, beta, *state)
    assert len(inputs) == 7 + n
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=model == "mlp")


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_layouts_agree(model):
    spec = make_spec(model)
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, T=21, layout="bthf")
    out_a, fin_a = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state, output_final_state=True)
    out_b, fin_b = tt.ttt(spec, to_layout(q, "bhtf"), to_layout(k, "bhtf"), to_layout(v, "bhtf"),
                          lr.transpose(1, 2).contiguous(), tau, gamma, beta, state,
                          layout="bhtf", output_final_state=True)
    assert out_a.abs().max() > 0.1
    torch.testing.assert_close(out_b, out_a.transpose(1, 2), rtol=0, atol=0)
    for a, b in zip(fin_a, fin_b):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_output_is_query_plus_layernorm_of_inner_model():
    """At lr = 0 the state never changes: out = q + LN(f_theta0(q)) with the spec's LN."""
    spec = make_spec("linear")
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, T=16)
    out, final = tt.ttt(spec, q, k, v, torch.zeros_like(lr), tau, gamma, beta, state,
                        output_final_state=True)
    W, b = state
    z = torch.einsum("bthf,hfg->bthg", q, W) + b
    ln = torch.nn.functional.layer_norm(z, (16,), eps=1e-6)
    expected = q + ln * gamma + beta
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(final[0], W.expand(2, *W.shape), rtol=0, atol=0)


def test_final_state_continues_the_sequence():
    """Running T1 then T2 tokens from the first call's final state equals one call on T1 + T2."""
    spec = make_spec("mlp")
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, T=40)
    out, final = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state, output_final_state=True)
    a, b = slice(0, 24), slice(24, 40)  # 24 = 3 mini-batches of 8
    out1, mid = tt.ttt(spec, q[:, a], k[:, a], v[:, a], lr[:, a], tau, gamma, beta, state,
                       output_final_state=True)
    out2, end = tt.ttt(spec, q[:, b], k[:, b], v[:, b], lr[:, b], tau, gamma, beta, mid,
                       output_final_state=True)
    torch.testing.assert_close(torch.cat([out1, out2], 1), out, rtol=1e-12, atol=1e-12)
    for x, y in zip(end, final):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


def test_per_batch_state_equal_rows_match_shared_state():
    spec = make_spec("linear")
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, requires_grad=True)
    out, _ = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state)
    dout = torch.randn_like(out)
    shared_grads = torch.autograd.grad(out, state, dout)
    rows = [s.detach().expand(2, *s.shape).clone().requires_grad_() for s in state]
    out_rows, _ = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, rows)
    torch.testing.assert_close(out_rows, out, rtol=0, atol=0)
    row_grads = torch.autograd.grad(out_rows, rows, dout)
    for gs, gr in zip(shared_grads, row_grads):
        assert gs.abs().max() > 0
        torch.testing.assert_close(gr.sum(0), gs, rtol=1e-12, atol=1e-12)
        assert not torch.allclose(gr[0], gr[1])  # the rows' gradients do differ


def test_checkpoint_group_changes_memory_not_results():
    spec1, spec3 = make_spec("mlp", checkpoint_group=1), make_spec("mlp", checkpoint_group=3)
    args = make_inputs(spec1, T=45, requires_grad=True)
    q, k, v, lr, tau, gamma, beta, state = args
    leaves = [q, k, v, lr, tau, gamma, beta, *state]
    results = []
    for spec in (spec1, spec3):
        out, fin = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state, output_final_state=True)
        loss = out.square().sum() + sum(f.sum() for f in fin)
        results.append((out, torch.autograd.grad(loss, leaves)))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-12, atol=1e-12)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


class _RecordCheckpoints(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if func is torch.ops.tttc.ttt_forward.default:
            self.calls.append((args[-1], tuple(result[2].shape)))
        return result


@pytest.mark.parametrize("mode", ["no_grad", "requires_grad_false", "inference_mode", "grad"])
def test_checkpoints_only_when_a_gradient_is_needed(mode):
    spec = make_spec("mlp", checkpoint_group=2)
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, T=40,
                                                       requires_grad=mode != "requires_grad_false")
    ctx = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}.get(
        mode, torch.enable_grad)
    rec = _RecordCheckpoints()
    with ctx(), rec:
        out, _ = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state)
    assert len(rec.calls) == 1
    save, shape = rec.calls[0]
    if mode == "grad":
        assert save and shape == (2, 2, 3, spec.state_floats)  # ceil(ceil(40/8)/2) = 3
    else:
        assert not save and shape == (0,)
    assert out.abs().max() > 0.1


def test_backward_without_checkpoints_is_an_error():
    spec = make_spec("linear")
    key, q, k, v, lr, tau, gamma, beta, packed, layout, _ = op_args(spec)
    out, final, ckpt = torch.ops.tttc.ttt_forward(key, q, k, v, lr, tau, gamma, beta, packed,
                                                  layout, False)
    with pytest.raises(RuntimeError, match="saved no checkpoints"):
        torch.ops.tttc.ttt_backward(key, q, k, v, lr, tau, gamma, beta, ckpt, out, None,
                                    layout, True)


@pytest.mark.parametrize("dtype", ["f32", "bf16", "f16"])
def test_spec_dtype_tokens(dtype):
    """Tokens of the spec's dtype: computed in float64 from the same values, rounded once."""
    spec = make_spec("linear", dtype=dtype)
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, dtype=torch.float32)
    assert q.dtype == spec.torch_dtype
    out, _ = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state)
    assert out.dtype == spec.torch_dtype and out.is_contiguous()
    ref, _ = tt.ttt(spec, *(x.double() for x in (q, k, v, lr, tau, gamma, beta)),
                    [s.double() for s in state])
    torch.testing.assert_close(out, ref.to(out.dtype), rtol=0, atol=0)


def test_deterministic_mode_on_cpu_is_bitwise_reproducible():
    spec = make_spec("mlp")
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        grads = []
        for _ in range(2):
            q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, dtype=torch.float32,
                                                               requires_grad=True)
            out, _ = tt.ttt(spec, q, k, v, lr, tau, gamma, beta, state)
            grads.append(torch.autograd.grad(out.square().sum(), [q, tau, gamma, *state]))
        for a, b in zip(*grads):
            assert torch.equal(a, b)
    finally:
        torch.use_deterministic_algorithms(prev)


def test_spec_from_file_and_dict():
    spec = tttc.Spec.from_file(__import__("conftest").REPO / "examples" / "mlp2.json")
    assert (spec.name, spec.head_dim, spec.mini_batch, spec.dtype) == ("mlp2", 64, 16, "bf16")
    assert [t.name for t in spec.state_layout] == ["W1", "b1", "W2", "b2"]
    assert spec.state_floats == 33088 and spec.state_layout[2].offset == 16640
    same = tttc.Spec.from_dict({"inner_model": {"type": "mlp", "depth": 2}, "head_dim": 64,
                                "mini_batch": 16, "dtype": "bf16"})
    assert same.key == spec.key and same.signature == spec.signature
    assert spec.checkpoints(100) == 7
