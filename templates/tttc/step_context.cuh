// step_context.cuh: what a generated step reads and writes for one mini-batch, and the binding
// of a (batch row, head, first token) to pointers; shared by the arena driver (driver.cuh) and
// the tile driver (tile_driver.cuh).
#pragma once

#include "tttc/params.h"

namespace tttc {

// What a generated step reads and writes for one mini-batch (pointers already at its first token).
template <class T>
struct StepContext {
  float* arena;
  float* arena_shared;  // arena lowering: a global arena's on-chip part (codegen places values)
  const float* state_in;
  float* state_out;
  const float* dstate_next;  // dLoss/d(state after the step)
  float* dstate_prev;        // dLoss/d(state before the step)
  const T *q, *k, *v, *dout;
  T *out, *dq, *dk, *dv;
  long long sq, sk, sv, sdout, sout, sdq, sdk, sdv;  // token strides
  const float* lr;
  float* dlr;
  long long slr, sdlr;  // their strides over tokens
  const float* tau;
  const float *gamma, *beta;
  float *acc_tau, *acc_gamma, *acc_beta;
  const T *tq, *tk, *tv, *tdo;  // the tile path's staged copies (shared memory) of the tokens
  int valid;                    // tokens present in this mini-batch (the last one may be short)
  float* partial;  // a split backward's f32 token-gradient partials of this item (workspace)
  float* warp_global;  // tile path: this warp's region of the workspace (values past its smem)
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

// Points the context at mini-batch m of (b, h) for the forward kernel.
template <class T>
__device__ __forceinline__ void bind_forward_step(StepContext<T>& c, const ForwardParams& p, int b,
                                                  int h, int m, int K) {
  const long long t0 = 1LL * m * K;
  c.valid = min(K, static_cast<int>(p.T - t0));
  c.q = token_ptr<T>(p.q, b, h, t0), c.sq = p.q.stride_t;
  c.k = token_ptr<T>(p.k, b, h, t0), c.sk = p.k.stride_t;
  c.v = token_ptr<T>(p.v, b, h, t0), c.sv = p.v.stride_t;
  c.out = token_ptr<T>(p.out, b, h, t0), c.sout = p.out.stride_t;
  c.lr = p.lr + b * p.lr_stride_b + h * p.lr_stride_h + t0 * p.lr_stride_t, c.slr = p.lr_stride_t;
}

// The same for the backward kernel.
template <class T>
__device__ __forceinline__ void bind_backward_step(StepContext<T>& c, const BackwardParams& p,
                                                   int b, int h, int m, int K) {
  const long long t0 = 1LL * m * K;
  c.valid = min(K, static_cast<int>(p.T - t0));
  c.q = token_ptr<T>(p.q, b, h, t0), c.sq = p.q.stride_t;
  c.k = token_ptr<T>(p.k, b, h, t0), c.sk = p.k.stride_t;
  c.v = token_ptr<T>(p.v, b, h, t0), c.sv = p.v.stride_t;
  c.dout = token_ptr<T>(p.dout, b, h, t0), c.sdout = p.dout.stride_t;
  c.dq = token_ptr<T>(p.dq, b, h, t0), c.sdq = p.dq.stride_t;
  c.dk = token_ptr<T>(p.dk, b, h, t0), c.sdk = p.dk.stride_t;
  c.dv = token_ptr<T>(p.dv, b, h, t0), c.sdv = p.dv.stride_t;
  c.lr = p.lr + b * p.lr_stride_b + h * p.lr_stride_h + t0 * p.lr_stride_t, c.slr = p.lr_stride_t;
  c.dlr = p.dlr + b * p.dlr_stride_b + h * p.dlr_stride_h + t0 * p.dlr_stride_t;
  c.sdlr = p.dlr_stride_t;
}

}  // namespace tttc
