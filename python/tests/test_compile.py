"""torch.compile(fullgraph=True) of a small model using tttc (one graph, zero breaks) with the
aot_eager and inductor back ends, static and dynamic shapes; results and gradients equal eager."""
from __future__ import annotations

import pytest
import torch
import torch._dynamo

import tttc.nn
from conftest import make_spec


class TinyModel(torch.nn.Module):
    def __init__(self, spec, width=32, heads=2, vocab=50):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        self.ttt = tttc.nn.TTTLayer(spec, width=width, num_heads=heads)
        self.head = torch.nn.Linear(width, vocab)

    def forward(self, tokens):
        x = self.embed(tokens)
        return self.head(x + self.ttt(x))


def make(seed=0):
    torch.manual_seed(seed)
    return TinyModel(make_spec("mlp", dtype="f32"))


def loss_and_grads(model, tokens):
    logits = model(tokens[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             tokens[:, 1:].reshape(-1))
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return loss, grads


def test_no_graph_breaks():
    torch._dynamo.reset()
    model = make()
    tokens = torch.randint(0, 50, (2, 21))
    explanation = torch._dynamo.explain(model)(tokens[:, :-1])
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("backend,dynamic", [("aot_eager", False), ("inductor", False),
                                             ("inductor", True)])
def test_fullgraph_compile_matches_eager(backend, dynamic):
    torch._dynamo.reset()
    model = make()
    compiled = torch.compile(model, backend=backend, fullgraph=True, dynamic=dynamic)
    lengths = (21, 29) if dynamic else (21,)
    for T in lengths:
        tokens = torch.randint(0, 50, (2, T), generator=torch.Generator().manual_seed(T))
        loss_e, grads_e = loss_and_grads(model, tokens)
        loss_c, grads_c = loss_and_grads(compiled, tokens)
        torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=1e-6)
        for (name, _), ge, gc in zip(model.named_parameters(), grads_e, grads_c):
            torch.testing.assert_close(gc, ge, rtol=1e-4, atol=1e-6, msg=name)
        assert any(g.abs().max() > 0 for g in grads_c[1:])


@pytest.mark.parametrize("grad", [False, True])
def test_compiled_graph_saves_checkpoints_only_for_training(grad):
    """The traced graph calls tttc::ttt_forward with save_checkpoints = whether grad is on."""
    torch._dynamo.reset()
    graphs = []

    def recording_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    model = make()
    compiled = torch.compile(model, backend=recording_backend, fullgraph=True)
    tokens = torch.randint(0, 50, (2, 20))
    with torch.set_grad_enabled(grad):
        torch.testing.assert_close(compiled(tokens), model(tokens), rtol=1e-5, atol=1e-6)
    calls = [n for gm in graphs for n in gm.graph.nodes
             if n.op == "call_function" and "ttt_forward" in str(n.target)]
    assert len(calls) == 1
    assert calls[0].args[-1] is grad
