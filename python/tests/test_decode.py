"""Prefill and decode (docs/decode.md) through the CPU implementation (the float64 reference):
prefill of T0 tokens then T1 single-token steps equals tttc.torch.ttt on all T0 + T1 tokens, for
rows in permuted cache slots at different positions; TTTLayer generation equals its forward;
argument errors name the argument."""
from __future__ import annotations

import pytest
import torch

import tttc.nn
import tttc.torch as tt
from conftest import make_inputs, make_spec


def _rows(x, b, T):
    return x[b:b + 1, :T]


@pytest.mark.parametrize("model,depth", [("linear", 1), ("mlp", 2), ("mlp", 3)])
def test_prefill_then_decode_equals_forward_on_the_whole(model, depth):
    spec = make_spec(model, depth=depth)  # f = 16, K = 8
    T0, T1 = [11, 8, 3], 6
    B, H = len(T0), 2
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, B=B, H=H, T=max(T0) + T1, seed=3)
    cache = tt.DecodeCache(spec, slots=5, heads=H, dtype=torch.float64)
    slots = torch.tensor([4, 0, 2], dtype=torch.int32)
    want, got = [], []
    for b in range(B):
        T = T0[b] + T1
        out, _ = tt.ttt(spec, *(_rows(x, b, T) for x in (q, k, v, lr)), tau, gamma, beta, state)
        want.append(out)
        got.append([tt.ttt_prefill(spec, *(_rows(x, b, T0[b]) for x in (q, k, v, lr)), tau,
                                   gamma, beta, state, cache, slots[b:b + 1])])
    for j in range(T1):  # the whole batch, one token per row, each at its own position
        step = [torch.cat([x[b:b + 1, T0[b] + j:T0[b] + j + 1] for b in range(B)])
                for x in (q, k, v, lr)]
        out = tt.ttt_decode(spec, *step, tau, gamma, beta, cache, slots)
        for b in range(B):
            got[b].append(out[b:b + 1])
    for b in range(B):
        torch.testing.assert_close(torch.cat(got[b], dim=1), want[b], rtol=1e-10, atol=1e-10)
    assert cache.pos[slots.long()].tolist() == [[(t + T1) % 8] * H for t in T0]
    # The state after the last token equals the forward's final state.
    final = cache.state_after(slots, tau)
    for b in range(B):
        T = T0[b] + T1
        _, want_final = tt.ttt(spec, *(_rows(x, b, T) for x in (q, k, v, lr)), tau, gamma, beta,
                               state, output_final_state=True)
        for got_t, want_t in zip(final, want_final):
            torch.testing.assert_close(got_t[b:b + 1], want_t, rtol=1e-10, atol=1e-10)
    # Untouched slots stay as they were made.
    assert cache.theta[1].abs().max() == 0 and cache.pos[3].abs().max() == 0


def test_layer_generation_equals_forward():
    torch.manual_seed(0)
    layer = tttc.nn.TTTLayer(make_spec("mlp"), width=32, num_heads=2, dtype=torch.float64)
    x = torch.randn(2, 13, 32, dtype=torch.float64)
    with torch.no_grad():
        want = layer(x)
    cache = layer.new_cache(slots=3, dtype=torch.float64)
    slots = torch.tensor([2, 1], dtype=torch.int32)
    got = [layer.prefill(x[:, :9], cache, slots)]
    for t in range(9, 13):
        got.append(layer.step(x[:, t:t + 1], cache, slots))
    torch.testing.assert_close(torch.cat(got, dim=1), want, rtol=1e-9, atol=1e-9)


def test_errors_name_the_argument():
    spec = make_spec("linear")
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec, B=2, H=2, T=1)
    cache = tt.DecodeCache(spec, slots=2, heads=2, dtype=torch.float64)
    with pytest.raises(ValueError, match="argument 'slots'"):
        tt.ttt_decode(spec, q, k, v, lr, tau, gamma, beta, cache, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="argument 'slots'"):
        tt.ttt_decode(spec, q, k, v, lr, tau, gamma, beta, cache,
                      torch.tensor([0], dtype=torch.int32))
    with pytest.raises(ValueError, match="argument 'cache'"):
        tt.ttt_decode(spec, q, k, v, lr, tau, gamma, beta, None,
                      torch.tensor([0, 1], dtype=torch.int32))
    with pytest.raises(ValueError, match="names a slot twice"):
        tt.ttt_decode(spec, q, k, v, lr, tau, gamma, beta, cache,
                      torch.tensor([1, 1], dtype=torch.int32))
    with pytest.raises(ValueError, match="causal"):
        tt.DecodeCache(make_spec("linear", causal=False), slots=1, heads=2)
