// driver.cuh: the two kernels' outer structure. One CTA owns one (batch row, head) and walks its
// mini-batches in order with the state kept on chip (shared memory) or in its own workspace.
// The forward saves the state at the start of every checkpoint group; the backward walks the
// groups in reverse, recomputes the states inside a group, then back-propagates step by step.
// `Step` is the generated per-mini-batch code; `Cfg` holds the generated constants and offsets.
#pragma once

#include "tttc/io.cuh"
#include "tttc/ops.cuh"
#include "tttc/params.h"
#include "tttc/step_context.cuh"

namespace tttc {

template <class Cfg, class Step>
__device__ void forward_kernel(const ForwardParams& p) {
  using T = typename Cfg::Elem;
  constexpr int K = Cfg::kK, F = Cfg::kF, G = Cfg::kGroup;
  constexpr long long S = Cfg::kS;
  extern __shared__ float4 shared_raw[];
  float* smem = reinterpret_cast<float*>(shared_raw);
  const int bh = blockIdx.x, b = bh / p.H, h = bh % p.H;
  float* ws = p.workspace ? p.workspace + bh * Cfg::kWorkspaceFloats : nullptr;
  float* state = Cfg::kStateShared ? smem + Cfg::kSmemState : p.state_final + bh * S;

  StepContext<T> c{};
  c.arena = Cfg::kArenaShared ? smem + Cfg::kSmemArena : ws + Cfg::kWsArena;
  c.arena_shared = smem + Cfg::kSmemArena;  // a global arena's on-chip part, if any
  c.state_in = state;
  c.state_out = state;  // in place: codegen checks no op reads the old state after its update
  bind_head<T, F>(c, p, h);
  copy_floats(state, p.state0 + b * p.state0_stride_b + h * S, S);

  const int steps = num_steps(p.T, K), checkpoints = (steps + G - 1) / G;
  for (int m = 0; m < steps; ++m) {
    if (m % G == 0) copy_floats(p.checkpoints + (1LL * bh * checkpoints + m / G) * S, state, S);
    bind_forward_step(c, p, b, h, m, K);
    Step::forward(c);
  }
  if (Cfg::kStateShared) copy_floats(p.state_final + bh * S, state, S);
}

template <class Cfg, class Step>
__device__ void backward_kernel(const BackwardParams& p) {
  using T = typename Cfg::Elem;
  constexpr int K = Cfg::kK, F = Cfg::kF, G = Cfg::kGroup;
  constexpr long long S = Cfg::kS;
  extern __shared__ float4 shared_raw[];
  float* smem = reinterpret_cast<float*>(shared_raw);
  const int bh = blockIdx.x, b = bh / p.H, h = bh % p.H;
  float* ws = p.workspace + bh * Cfg::kWorkspaceFloats;
  float* group_states = ws + Cfg::kWsGroupStates;  // state at the start of each step of a group
  float* dstate_a = ws + Cfg::kWsDstateA;
  float* dstate_b = ws + Cfg::kWsDstateB;

  StepContext<T> c{};
  c.arena = Cfg::kArenaShared ? smem + Cfg::kSmemArena : ws + Cfg::kWsArena;
  c.arena_shared = smem + Cfg::kSmemArena;  // a global arena's on-chip part, if any
  bind_head<T, F>(c, p, h);
  c.acc_tau = ws + Cfg::kWsAccTau;
  c.acc_gamma = ws + Cfg::kWsAccGamma;
  c.acc_beta = ws + Cfg::kWsAccBeta;
  zero_floats(c.acc_tau, K + 2 * F);  // the three accumulators are contiguous
  if (p.dstate_final)
    copy_floats(dstate_a, p.dstate_final + bh * S, S);
  else
    zero_floats(dstate_a, S);

  auto bind_step = [&](int m) { bind_backward_step(c, p, b, h, m, K); };

  const int steps = num_steps(p.T, K), groups = (steps + G - 1) / G;
  for (int g = groups - 1; g >= 0; --g) {
    const int first = g * G, last = min(first + G, steps) - 1;
    copy_floats(group_states, p.checkpoints + (1LL * bh * groups + g) * S, S);
    if constexpr (G > 1) {  // with G == 1 every state is a checkpoint: codegen omits advance()
      for (int m = first; m < last; ++m) {  // rematerialise the states inside the group
        bind_step(m);
        c.state_in = group_states + (m - first) * S;
        c.state_out = group_states + (m - first + 1) * S;
        Step::advance(c);
      }
    }
    for (int m = last; m >= first; --m) {
      bind_step(m);
      c.state_in = group_states + (m - first) * S;
      c.dstate_next = dstate_a;
      c.dstate_prev = dstate_b;
      Step::backward(c);
      float* t = dstate_a;
      dstate_a = dstate_b;
      dstate_b = t;
    }
  }
  // dstate_a now holds dLoss/dtheta_0 for this (b, h).
  float* d0 = p.dstate0 + b * p.dstate0_stride_b + h * S;
  if (p.dstate0_stride_b == 0)
    atomic_add_floats(d0, dstate_a, S);
  else
    copy_floats(d0, dstate_a, S);
  atomic_add_floats(p.dtau, c.acc_tau, K);
  atomic_add_floats(p.dgamma + h * F, c.acc_gamma, F);
  atomic_add_floats(p.dbeta + h * F, c.acc_beta, F);
}

}  // namespace tttc
