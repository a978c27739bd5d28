"""tttc.nn.TTTLayer on CPU: parameters of the published layer, gradients reach every one of them,
the final state continues a sequence, and the float64 layer passes gradcheck."""
from __future__ import annotations

import torch

import tttc.nn
from conftest import make_spec


def layer(model="mlp", width=32, heads=2, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    return tttc.nn.TTTLayer(make_spec(model), width=width, num_heads=heads, dtype=dtype, **kw)


def test_parameters_of_the_published_layer():
    m = layer()
    names = dict(m.named_parameters())
    for n in ["q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight", "g_proj.weight",
              "learnable_ttt_lr_weight", "learnable_ttt_lr_bias", "learnable_token_idx_bias",
              "ttt_norm_weight", "ttt_norm_bias", "post_norm.weight", "post_norm.bias",
              "state.0", "state.1", "state.2", "state.3"]:
        assert n in names, n
    assert names["state.0"].shape == (2, 16, 64) and names["state.3"].shape == (2, 16)
    assert names["ttt_norm_weight"].shape == (2, 16)
    assert "g_proj.weight" not in dict(layer(use_gate=False).named_parameters())


def test_every_parameter_gets_a_gradient():
    m = layer()
    x = torch.randn(2, 20, 32, dtype=torch.float64)
    y = m(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    for n, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, n


def test_final_state_continues_the_sequence():
    m = layer()
    x = torch.randn(2, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        y, _ = m(x, output_final_state=True)
        y1, s = m(x[:, :16], output_final_state=True)
        y2 = m(x[:, 16:], state=s)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, rtol=1e-12, atol=1e-12)


def test_float32_layer_matches_float64():
    m64 = layer(dtype=torch.float64)
    m32 = layer(dtype=torch.float32)
    m32.load_state_dict({k: v.float() for k, v in m64.state_dict().items()})
    x = torch.randn(2, 20, 32, dtype=torch.float64)
    torch.testing.assert_close(m32(x.float()).double(), m64(x), rtol=1e-4, atol=1e-5)


def test_gradcheck_through_the_layer():
    m = layer("linear", width=16, heads=1)
    x = torch.randn(1, 10, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: m(x), (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_layer_deepcopies_and_pickles():
    import copy
    import io
    m = layer("linear", width=16, heads=1)
    x = torch.randn(1, 10, 16, dtype=torch.float64)
    clone = copy.deepcopy(m)
    assert clone.spec.key == m.spec.key
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), m(x), rtol=0, atol=0)
        torch.testing.assert_close(loaded(x), m(x), rtol=0, atol=0)
