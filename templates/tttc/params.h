// params.h: the kernel argument structs, shared verbatim by the host runtime (C++) and the
// generated kernels (NVRTC). Plain data only: no includes, no device code. Strides are in
// elements; the feature dimension of token tensors must be contiguous (stride 1).
#pragma once

namespace tttc {

// A [B, H, T, f] view: element (b, h, t, j) at ptr[b*stride_b + h*stride_h + t*stride_t + j].
struct TokenTensor {
  void* ptr;
  long long stride_b, stride_h, stride_t;
};

struct ForwardParams {
  int B, H, T;
  TokenTensor q, k, v, out;
  const float* lr;  // lr[b*lr_stride_b + h*lr_stride_h + t*lr_stride_t]
  long long lr_stride_b, lr_stride_h, lr_stride_t;
  const float* tau;     // [K]
  const float* gamma;   // [H, f]
  const float* beta;    // [H, f]
  const float* state0;  // packed initial state: [H, S] (state0_stride_b == 0) or [B, H, S]
  long long state0_stride_b;
  float* state_final;  // [B, H, S]
  float* checkpoints;  // [B, H, n_checkpoints, S]: the state at the start of every group
  float* workspace;    // per-CTA scratch, sized by the runtime
};

struct BackwardParams {
  int B, H, T;
  TokenTensor q, k, v, dout, dq, dk, dv;
  const float* lr;
  long long lr_stride_b, lr_stride_h, lr_stride_t;
  float* dlr;  // dlr[b*dlr_stride_b + h*dlr_stride_h + t*dlr_stride_t]
  long long dlr_stride_b, dlr_stride_h, dlr_stride_t;
  const float* tau;
  float* dtau;  // [K], accumulated atomically (zeroed by the runtime)
  const float* gamma;
  const float* beta;
  float* dgamma;  // [H, f], accumulated atomically
  float* dbeta;
  const float* checkpoints;   // written by the forward
  const float* dstate_final;  // [B, H, S] or null
  float* dstate0;             // [H, S] (dstate0_stride_b == 0: summed atomically) or [B, H, S]
  long long dstate0_stride_b;
  float* workspace;
};

// One decode launch (docs/decode.md): every row b advances by T tokens (1 for a decode step, up to
// K - 1 for a prefill's tail) in the decode state of pool slot slots[b].
struct DecodeParams {
  int B, H, T;
  TokenTensor q, k, v, out;  // [B, H, T, f]
  const float* lr;           // lr[b*lr_stride_b + h*lr_stride_h + t*lr_stride_t]
  long long lr_stride_b, lr_stride_h, lr_stride_t;
  const float* tau;    // [K]
  const float* gamma;  // [H, f]
  const float* beta;   // [H, f]
  const int* slots;  // [B]: the pool slot of each row; outside [0, num_slots): row skipped, out NaN
  int num_slots;
  float* theta;  // pool [num_slots, H, S]: the state at the current mini-batch's start
  float* accum;  // pool [num_slots, H, S]: the lr-weighted gradient sum A
  int* pos;      // pool [num_slots, H]: tokens consumed in the current mini-batch
  // Prefill's tail: when non-null, each row first starts fresh from this state (A = 0, pos = 0):
  // [B, H, S] (init_stride_b = H*S) or [H, S] (init_stride_b = 0).
  const float* init;
  long long init_stride_b;
};

}  // namespace tttc
