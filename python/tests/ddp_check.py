"""Distributed check: tttc under torch.distributed as it is (no communication of its own).

1. DDP over data: a two-process DDP run of a small TTTLayer model (each rank half the batch)
   ends with the same parameters as one process on the whole batch, to rounding.
2. Heads sharded over ranks: each rank runs the op on its heads; the gathered outputs and
   gradients equal one call over all heads (the op has no cross-head state).

    python ddp_check.py --device cpu  --backend gloo --out DIR   # CI: two CPU processes
    python ddp_check.py --device cuda --backend nccl --out DIR   # two GPUs (rank r on cuda:r)
    python ddp_check.py --device cuda --backend gloo --one-gpu --out DIR   # two processes, one GPU

Writes DIR/ddp.json and exits 0 when every comparison is within tolerance.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import tttc
import tttc.torch as tt
from tttc.nn import TTTLayer

WORLD, B, T, WIDTH, HEADS, VOCAB, STEPS = 2, 4, 40, 32, 4, 64, 3


def spec(device: str):  # f32 tokens: the same spec on CPU and GPU
    return tttc.Spec.from_dict({"name": "ddp-mlp2", "inner_model": {"type": "mlp", "depth": 2},
                                "head_dim": 16, "mini_batch": 8, "dtype": "f32"})


class Model(torch.nn.Module):
    def __init__(self, s):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, WIDTH)
        self.ttt = TTTLayer(s, width=WIDTH, num_heads=HEADS)
        self.head = torch.nn.Linear(WIDTH, VOCAB)

    def forward(self, tokens):
        x = self.embed(tokens)
        return self.head(x + self.ttt(x))


def data():
    g = torch.Generator().manual_seed(1234)
    return torch.randint(0, VOCAB, (B, T + 1), generator=g)


def train(model, tokens, steps):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(steps):
        logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def device_for(args, rank):
    if args.device == "cpu":
        return torch.device("cpu")
    return torch.device("cuda", 0 if args.one_gpu else rank)


def reference(args):
    dev = device_for(args, 0)
    torch.manual_seed(0)
    model = Model(spec(args.device)).to(dev)
    losses = train(model, data().to(dev), STEPS)
    return {n: p.detach().cpu() for n, p in model.named_parameters()}, losses


def worker(rank, args, out_dir):
    dev = device_for(args, rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(args.backend, init_method=f"file://{out_dir}/rendezvous",
                            rank=rank, world_size=WORLD)
    s = spec(args.device)
    # 1. DDP over data.
    torch.manual_seed(0)
    model = Model(s).to(dev)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    tokens = data().chunk(WORLD)[rank].to(dev)
    losses = train(ddp, tokens, STEPS)
    torch.save({"params": {n: p.detach().cpu() for n, p in model.named_parameters()},
                "losses": losses}, f"{out_dir}/rank{rank}.pt")
    # 2. Heads sharded over ranks: same inputs everywhere, each rank its heads.
    g = torch.Generator().manual_seed(7)
    H, f, K = HEADS, s.head_dim, s.mini_batch
    q, k, v = (torch.randn(2, 24, H, f, generator=g) for _ in range(3))
    lr = 0.05 + 0.1 * torch.rand(2, 24, H, generator=g)
    tau = 1.0 / torch.arange(1, K + 1, dtype=torch.float32)
    gamma = 1 + 0.1 * torch.randn(H, f, generator=g)
    beta = 0.1 * torch.randn(H, f, generator=g)
    state = [(0.25 * torch.randn(H, *t.shape, generator=g)) for t in s.state_layout]
    hs = slice(rank * H // WORLD, (rank + 1) * H // WORLD)
    mine = [x.detach().clone().to(dev).requires_grad_() for x in
            (q[:, :, hs], k[:, :, hs], v[:, :, hs], lr[:, :, hs], tau, gamma[hs], beta[hs],
             *[st[hs] for st in state])]
    out, _ = tt.ttt(s, *mine[:7], mine[7:])
    out.square().sum().backward()
    gathered = [torch.empty_like(out) for _ in range(WORLD)]
    dist.all_gather(gathered, out.detach().contiguous())
    dq = [torch.empty_like(mine[0].grad) for _ in range(WORLD)]
    dist.all_gather(dq, mine[0].grad.contiguous())
    dtau = mine[4].grad.clone()
    dist.all_reduce(dtau)  # tau is shared by all heads: its gradient sums over the shards
    if rank == 0:
        full = [x.detach().clone().to(dev).requires_grad_() for x in (q, k, v, lr, tau, gamma, beta, *state)]
        out_full, _ = tt.ttt(s, *full[:7], full[7:])
        out_full.square().sum().backward()
        torch.save({"sharded_out": torch.cat(gathered, 2).cpu(), "full_out": out_full.detach().cpu(),
                    "sharded_dq": torch.cat(dq, 2).cpu(), "full_dq": full[0].grad.cpu(),
                    "sharded_dtau": dtau.cpu(), "full_dtau": full[4].grad.cpu()},
                   f"{out_dir}/heads.pt")
    dist.barrier()
    dist.destroy_process_group()


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    p.add_argument("--one-gpu", action="store_true", help="both ranks on cuda:0")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "rendezvous").unlink(missing_ok=True)
    ref_params, ref_losses = reference(args)
    mp.spawn(worker, args=(args, str(out_dir)), nprocs=WORLD, join=True)
    ranks = [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD)]
    heads = torch.load(out_dir / "heads.pt")
    tol = 1e-5
    param_err = {n: max(rel(rk["params"][n], ref) for rk in ranks) for n, ref in ref_params.items()}
    result = {
        "device": args.device, "backend": args.backend, "one_gpu": args.one_gpu,
        "steps": STEPS, "reference_losses": ref_losses,
        "rank_losses": [rk["losses"] for rk in ranks],
        "max_param_rel_err": max(param_err.values()),
        "worst_param": max(param_err, key=param_err.get),
        "heads_out_rel_err": rel(heads["sharded_out"], heads["full_out"]),
        "heads_dq_rel_err": rel(heads["sharded_dq"], heads["full_dq"]),
        "heads_dtau_rel_err": rel(heads["sharded_dtau"], heads["full_dtau"]),
        "tolerance": tol,
    }
    # Training changed the parameters (so equality is not trivially of initial values).
    torch.manual_seed(0)
    initial = Model(spec(args.device))
    result["param_change_max_abs"] = max((ref_params[n] - p.detach()).abs().max().item()
                                         for n, p in initial.named_parameters())
    result["pass"] = (result["max_param_rel_err"] < tol and result["heads_out_rel_err"] < tol
                      and result["heads_dq_rel_err"] < tol and result["heads_dtau_rel_err"] < tol
                      and result["param_change_max_abs"] > 1e-3)
    (out_dir / "ddp.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
