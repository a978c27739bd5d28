"""Argument errors: each bad argument is rejected before any work, with a message naming it."""
from __future__ import annotations

import pytest
import torch

import tttc
import tttc.torch as tt
from conftest import make_inputs, make_spec

SPEC = None


def spec():
    global SPEC
    if SPEC is None:
        SPEC = make_spec("mlp")
    return SPEC


def base():
    q, k, v, lr, tau, gamma, beta, state = make_inputs(spec(), dtype=torch.float32)
    return dict(q=q, k=k, v=v, lr=lr, tau=tau, gamma=gamma, beta=beta, state=state)


def bad_cases():
    def drop_last(x):
        return x[..., :-1]

    yield "spec", lambda a: dict(a, spec="mlp2.json"), "tttc.Spec expected"
    yield "layout", lambda a: dict(a, layout="bthd"), "'bthf' or 'bhtf'"
    yield "q", lambda a: dict(a, q=a["q"][0]), "4 dimensions"
    yield "q", lambda a: dict(a, q=drop_last(a["q"])), "head_dim is 16"
    yield "q", lambda a: dict(a, q=a["q"].to(torch.float16)), "dtype"
    yield "q", lambda a: dict(a, q=a["q"].tolist()), "torch.Tensor expected"
    yield "k", lambda a: dict(a, k=a["k"][:, :-1]), "like q"
    yield "v", lambda a: dict(a, v=a["v"].double()), "dtype torch.float64"
    yield "lr", lambda a: dict(a, lr=a["lr"].transpose(1, 2)), "[B, T, H]"
    yield "lr", lambda a: dict(a, lr=a["lr"].double()), "torch.float32 expected"
    yield "tau", lambda a: dict(a, tau=a["tau"][:-1]), "mini_batch"
    yield "gamma", lambda a: dict(a, gamma=a["gamma"].t()), "[H, f]"
    yield "beta", lambda a: dict(a, beta=a["beta"][None]), "2 dimensions"
    yield "state", lambda a: dict(a, state=a["state"][:2]), "4 tensors [W1, b1, W2, b2]"
    yield "state", lambda a: dict(a, state=torch.zeros(3)), "a list"
    yield "state[1] (b1)", lambda a: dict(a, state=[a["state"][0], a["state"][1][:, :-1],
                                                    *a["state"][2:]]), "shape [2, 64]"
    yield "state[2] (W2)", lambda a: dict(a, state=[*a["state"][:2],
                                                    a["state"][2].expand(2, -1, -1, -1),
                                                    a["state"][3]]), "mixed"


@pytest.mark.parametrize("name,mutate,text", list(bad_cases()),
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(bad_cases())])
def test_bad_argument_is_named(name, mutate, text):
    a = mutate(dict(base(), spec=spec(), layout="bthf"))
    with pytest.raises(ValueError) as e:
        tt.ttt(a.pop("spec"), a.pop("q"), a.pop("k"), a.pop("v"), a.pop("lr"), a.pop("tau"),
               a.pop("gamma"), a.pop("beta"), a.pop("state"), layout=a.pop("layout"))
    message = str(e.value)
    assert f"argument '{name}'" in message, message
    assert text in message, message


def test_bad_spec_names_the_field():
    with pytest.raises(ValueError, match=r"head_dim"):
        tttc.Spec.from_dict({"inner_model": "linear", "head_dim": 20, "mini_batch": 16})
    with pytest.raises(ValueError, match=r"no-such-file\.json"):
        tttc.Spec.from_file("no-such-file.json")


def test_no_gpu_is_reported_with_its_reason():
    ok, reason = tttc.gpu_available()
    if ok:
        pytest.skip("a GPU is present")
    assert "driver" in reason or "GPU" in reason, reason


def test_layer_rejects_bad_input():
    layer = tttc.nn.TTTLayer(spec(), width=32, num_heads=2)
    with pytest.raises(ValueError, match=r"argument 'x'.*\[B, T, 32\]"):
        layer(torch.randn(2, 5, 31))


def test_checks_still_run_after_a_valid_call_with_the_same_shapes():
    """Eager calls cache the signatures that passed; a changed dtype or device is not cached."""
    a = base()
    tt.ttt(spec(), a["q"], a["k"], a["v"], a["lr"], a["tau"], a["gamma"], a["beta"], a["state"])
    with pytest.raises(ValueError, match="argument 'gamma'"):
        tt.ttt(spec(), a["q"], a["k"], a["v"], a["lr"], a["tau"], a["gamma"].double(),
               a["beta"], a["state"])
    with pytest.raises(ValueError, match="argument 'layout'"):
        tt.ttt(spec(), a["q"], a["k"], a["v"], a["lr"], a["tau"], a["gamma"], a["beta"],
               a["state"], layout="bhft")
