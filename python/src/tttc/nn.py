"""tttc.nn.TTTLayer: the TTT layer of "Learning to (Learn at Test Time)" (arXiv 2407.04620) as
published in ttt-lm-pytorch (TTTLinear / TTTMLP), with the inner loop run by tttc.torch.ttt:

  q, k, v      = x W_q, x W_k, x W_v                   (Linear width -> H*f, no bias)
  lr           = base_lr * sigmoid(x . w_h + c_h) / f  (learnable_ttt_lr_weight/bias, per head)
  tau          = max(1 / (i + 1) + learnable_token_idx_bias_i, 0)
  gamma, beta  = ttt_norm_weight, ttt_norm_bias        ([H, f]: the inner LayerNorm)
  state        = W1, b1, ... (the inner model's initial weights, learnable, shared over the batch)
  y            = o_proj(gelu_tanh(g_proj(x)) * post_norm(ttt(...)))  (the gate when use_gate)

Generation: `cache = layer.new_cache(slots)`, `layer.prefill(prompt, cache, slots)`, then
`layer.step(x_t, cache, slots)` per token (docs/decode.md); the same outputs as forward on the
whole sequence.

Not included: the rotary embedding of q and k and the causal convolutions of the published
model's TTT blocks (they act on the projections before the op and can be added around it).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .spec import Spec
from .torch import DecodeCache, ttt, ttt_decode, ttt_prefill


class TTTLayer(nn.Module):
    def __init__(self, spec: Spec, width: int, num_heads: int, *, base_lr: float = 1.0,
                 use_gate: bool = True, init_std: float = 0.02, device=None, dtype=None):
        super().__init__()
        if not isinstance(spec, Spec):
            raise ValueError(f"TTTLayer: argument 'spec': a tttc.Spec expected, got {type(spec).__name__}")
        if width < 1 or num_heads < 1:
            raise ValueError(f"TTTLayer: arguments 'width', 'num_heads': positive integers expected, "
                             f"got {width}, {num_heads}")
        self.spec, self.width, self.num_heads = spec, width, num_heads
        self.head_dim = f = spec.head_dim
        self.base_lr, self.use_gate = base_lr, use_gate
        H, K = num_heads, spec.mini_batch
        fk = dict(device=device, dtype=dtype)
        self.q_proj = nn.Linear(width, H * f, bias=False, **fk)
        self.k_proj = nn.Linear(width, H * f, bias=False, **fk)
        self.v_proj = nn.Linear(width, H * f, bias=False, **fk)
        self.o_proj = nn.Linear(H * f, width, bias=False, **fk)
        self.learnable_ttt_lr_weight = nn.Parameter(torch.empty(H, width, **fk))
        self.learnable_ttt_lr_bias = nn.Parameter(torch.zeros(H, **fk))
        self.register_buffer("token_idx", 1.0 / torch.arange(1, K + 1, device=device,
                                                              dtype=dtype or torch.float32))
        self.learnable_token_idx_bias = nn.Parameter(torch.zeros(K, **fk))
        self.ttt_norm_weight = nn.Parameter(torch.ones(H, f, **fk))
        self.ttt_norm_bias = nn.Parameter(torch.zeros(H, f, **fk))
        # The inner model's initial state: W_l [H, d_{l-1}, d_l] ~ N(0, init_std), b_l = 0.
        self.state = nn.ParameterList(
            nn.Parameter(torch.empty(H, *t.shape, **fk)) for t in spec.state_layout)
        self.post_norm = nn.LayerNorm(H * f, eps=1e-6, **fk)
        self.g_proj = nn.Linear(width, H * f, bias=False, **fk) if use_gate else None
        self.init_std = init_std
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.o_proj, self.g_proj):
            if lin is not None:
                nn.init.normal_(lin.weight, std=self.init_std)
        nn.init.normal_(self.learnable_ttt_lr_weight, std=self.init_std)
        self.learnable_ttt_lr_bias.zero_()
        self.learnable_token_idx_bias.zero_()
        self.ttt_norm_weight.fill_(1.0)
        self.ttt_norm_bias.zero_()
        for p, t in zip(self.state, self.spec.state_layout):
            if t.name.startswith("W"):
                nn.init.normal_(p, std=self.init_std)
            else:
                p.zero_()

    def _token_dtype(self, x: Tensor) -> torch.dtype:
        # float64 runs the CPU reference end to end (for tests); otherwise the spec's dtype.
        return torch.float64 if x.dtype == torch.float64 else self.spec.torch_dtype

    def _check_x(self, x: Tensor):
        if x.dim() != 3 or x.shape[-1] != self.width:
            raise ValueError(f"TTTLayer: argument 'x': shape [B, T, {self.width}] expected, "
                             f"got {list(x.shape)}")

    def _op_inputs(self, x: Tensor):
        """The op's inputs for x [B, T, width]: q, k, v ([B, T, H, f]), lr, tau, gamma, beta,
        and the dtype of the parameters (float64 with float64 x: the CPU reference)."""
        B, T, _ = x.shape
        H, f = self.num_heads, self.head_dim
        tok = self._token_dtype(x)
        par = torch.float64 if tok == torch.float64 else torch.float32
        q = self.q_proj(x).view(B, T, H, f).to(tok)
        k = self.k_proj(x).view(B, T, H, f).to(tok)
        v = self.v_proj(x).view(B, T, H, f).to(tok)
        gate = torch.einsum("btc,hc->bth", x, self.learnable_ttt_lr_weight) + self.learnable_ttt_lr_bias
        lr = (self.base_lr * torch.sigmoid(gate) / f).to(par)
        tau = torch.clamp(self.token_idx + self.learnable_token_idx_bias, min=0.0).to(par)
        return (q, k, v, lr, tau, self.ttt_norm_weight.to(par), self.ttt_norm_bias.to(par)), par

    def _output(self, x: Tensor, out: Tensor) -> Tensor:
        B, T, _ = x.shape
        y = self.post_norm(out.reshape(B, T, self.num_heads * self.head_dim).to(x.dtype))
        if self.g_proj is not None:
            y = nn.functional.gelu(self.g_proj(x), approximate="tanh") * y
        return self.o_proj(y)

    def forward(self, x: Tensor, state: Optional[Sequence[Tensor]] = None,
                output_final_state: bool = False):
        """x [B, T, width] -> y [B, T, width] (and the final state [W1, b1, ...] of shape
        [B, H, ...] with output_final_state). `state` replaces the learned initial state, e.g.
        a final state from an earlier call to continue a sequence."""
        self._check_x(x)
        args, par = self._op_inputs(x)
        init = list(self.state) if state is None else list(state)
        out, final = ttt(self.spec, *args, [s.to(par) for s in init], layout="bthf",
                         output_final_state=output_final_state)
        y = self._output(x, out)
        return (y, final) if output_final_state else y

    # --- generation (docs/decode.md): prefill a prompt, then one token per step -------------
    def new_cache(self, slots: int, device=None, dtype: torch.dtype = torch.float32) -> DecodeCache:
        """A pool of `slots` decode states for this layer (float64 to run the CPU reference with
        float64 inputs). Rows of a batch name their slot; see tttc.torch.DecodeCache."""
        return DecodeCache(self.spec, slots, self.num_heads, device=device, dtype=dtype)

    @torch.no_grad()
    def prefill(self, x: Tensor, cache: DecodeCache, slots: Tensor) -> Tensor:
        """y for a prompt x [B, T, width] (as forward, from the learned initial state), leaving
        row b's decode state in cache slot slots[b]. Inference only (no gradients)."""
        self._check_x(x)
        args, par = self._op_inputs(x)
        out = ttt_prefill(self.spec, *args, [s.to(par) for s in self.state], cache, slots)
        return self._output(x, out)

    @torch.no_grad()
    def step(self, x: Tensor, cache: DecodeCache, slots: Tensor) -> Tensor:
        """y for the next token(s) x [B, T, width] (T = 1 for one step) of the sequences in
        `slots`, continuing from their decode states. Inference only (no gradients)."""
        self._check_x(x)
        args, _ = self._op_inputs(x)
        return self._output(x, ttt_decode(self.spec, *args, cache, slots))

    def extra_repr(self) -> str:
        return (f"spec={self.spec.name or self.spec.signature[:12]}, width={self.width}, "
                f"num_heads={self.num_heads}, head_dim={self.head_dim}, use_gate={self.use_gate}")
