// driver.cuh: the two kernels' outer structure. One CTA owns one (batch row, head) and walks its
// mini-batches in order with the state kept on chip (shared memory) or in its own workspace.
// The forward saves the state at the start of every checkpoint group; the backward walks the
// groups in reverse, recomputes the states inside a group, then back-propagates step by step.
// `Step` is the generated per-mini-batch code; `Cfg` holds the generated constants and offsets.
#pragma once

#include "tttc/io.cuh"
#include "tttc/ops.cuh"
#include "tttc/params.h"

namespace tttc {

// What a generated step reads and writes for one mini-batch (pointers already at its first token).
template <class T>
struct StepContext {
  float* arena;
  const float* state_in;
  float* state_out;
  const float* dstate_next;  // dLoss/d(state after the step)
  float* dstate_prev;        // dLoss/d(state before the step)
  const T *q, *k, *v, *dout;
  T *out, *dq, *dk, *dv;
  long long sq, sk, sv, sdout, sout, sdq, sdk, sdv;  // token strides
  const float* lr;
  float* dlr;
  const float* tau;
  const float *gamma, *beta;
  float *acc_tau, *acc_gamma, *acc_beta;
  int valid;  // tokens present in this mini-batch (the last one may be short)
};

// The per-head parameters every step reads, from either kernel's parameter struct.
template <class T, int F, class Params>
__device__ __forceinline__ void bind_head(StepContext<T>& c, const Params& p, int h) {
  c.tau = p.tau;
  c.gamma = p.gamma + h * F;
  c.beta = p.beta + h * F;
}

template <class T>
__device__ __forceinline__ T* token_ptr(const TokenTensor& x, int b, int h, long long t0) {
  return static_cast<T*>(x.ptr) + b * x.stride_b + h * x.stride_h + t0 * x.stride_t;
}

__device__ __forceinline__ int num_steps(int T, int K) { return (T + K - 1) / K; }

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
  c.state_in = state;
  c.state_out = state;  // in place: codegen checks no op reads the old state after its update
  bind_head<T, F>(c, p, h);
  copy_floats(state, p.state0 + b * p.state0_stride_b + h * S, S);

  const int steps = num_steps(p.T, K), checkpoints = (steps + G - 1) / G;
  for (int m = 0; m < steps; ++m) {
    if (m % G == 0) copy_floats(p.checkpoints + (1LL * bh * checkpoints + m / G) * S, state, S);
    const long long t0 = 1LL * m * K;
    c.valid = min(K, static_cast<int>(p.T - t0));
    c.q = token_ptr<T>(p.q, b, h, t0), c.sq = p.q.stride_t;
    c.k = token_ptr<T>(p.k, b, h, t0), c.sk = p.k.stride_t;
    c.v = token_ptr<T>(p.v, b, h, t0), c.sv = p.v.stride_t;
    c.out = token_ptr<T>(p.out, b, h, t0), c.sout = p.out.stride_t;
    c.lr = p.lr + b * p.lr_stride_b + h * p.lr_stride_h + t0;
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
  bind_head<T, F>(c, p, h);
  c.acc_tau = ws + Cfg::kWsAccTau;
  c.acc_gamma = ws + Cfg::kWsAccGamma;
  c.acc_beta = ws + Cfg::kWsAccBeta;
  zero_floats(c.acc_tau, K + 2 * F);  // the three accumulators are contiguous
  if (p.dstate_final)
    copy_floats(dstate_a, p.dstate_final + bh * S, S);
  else
    zero_floats(dstate_a, S);

  auto bind_step = [&](int m) {
    const long long t0 = 1LL * m * K;
    c.valid = min(K, static_cast<int>(p.T - t0));
    c.q = token_ptr<T>(p.q, b, h, t0), c.sq = p.q.stride_t;
    c.k = token_ptr<T>(p.k, b, h, t0), c.sk = p.k.stride_t;
    c.v = token_ptr<T>(p.v, b, h, t0), c.sv = p.v.stride_t;
    c.dout = token_ptr<T>(p.dout, b, h, t0), c.sdout = p.dout.stride_t;
    c.dq = token_ptr<T>(p.dq, b, h, t0), c.sdq = p.dq.stride_t;
    c.dk = token_ptr<T>(p.dk, b, h, t0), c.sdk = p.dk.stride_t;
    c.dv = token_ptr<T>(p.dv, b, h, t0), c.sdv = p.dv.stride_t;
    c.lr = p.lr + b * p.lr_stride_b + h * p.lr_stride_h + t0;
    c.dlr = p.dlr + 1LL * bh * p.T + t0;
  };

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
