// tensor.hpp: how callers hand device tensors to a kernel (pointer + dtype + shape + strides, no
// copies), the packed layout of one head's state, and the argument sets of the launches (forward,
// backward, and prefill / decode with their state pool).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/spec.hpp"

namespace ttt {

struct TensorRef {
  void* data = nullptr;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements; empty = contiguous row-major

  static TensorRef contiguous(void* data, DType dtype, std::vector<int64_t> shape);
  std::vector<int64_t> effective_strides() const;
  int64_t numel() const;
};

// One parameter tensor inside a head's packed f32 state: W1, b1, W2, b2, ... in that order.
struct StateTensor {
  std::string name;            // "W1", "b1", ...
  std::vector<int64_t> shape;  // W: {d_in, d_out}; b: {d_out}
  int64_t offset = 0;          // in floats from the start of the head's state
};
std::vector<StateTensor> state_layout(const Spec& spec);

// q, k, v, out: [B, H, T, f] in the spec's dtype with any strides whose feature stride is 1
// (so [B, T, H, f] storage is passed as strides, without a copy). lr: f32 [B, H, T] with any
// non-negative strides (a [B, T, H] tensor's view, or a broadcast). tau: f32 [K]. gamma, beta: f32 [H, f] contiguous. state0: f32 packed state
// [H, S] (shared over the batch) or [B, H, S] (one per batch row). state_final: f32 [B, H, S].
// checkpoints: f32 [B, H, C, S], C = MemoryPlan::checkpoints: states in this kernel's own layout
// (the packed one, or fragment order where both kernels are on the tile lowering), written by its
// forward for its backward; not a packed state to read elsewhere.
struct ForwardArgs {
  TensorRef q, k, v, lr, tau, gamma, beta, state0;
  TensorRef out, state_final, checkpoints;
  void* workspace = nullptr;  // optional; at least MemoryPlan::forward_workspace_bytes
  size_t workspace_bytes = 0;
};

// Inputs as in the forward plus the checkpoints it wrote; dout like out; dstate_final optional
// (data == nullptr: zero) f32 [B, H, S]. Outputs: dq, dk, dv like q; dlr f32 [B, H, T] with any
// strides that give each element its own address; dtau f32 [K]; dgamma, dbeta f32 [H, f];
// dstate0 shaped like state0 (summed over the batch when shared). The runtime zeroes dtau,
// dgamma, dbeta (and a shared dstate0) before the kernel adds into them, with one memset for
// tensors that lie side by side in one allocation.
struct BackwardArgs {
  TensorRef q, k, v, lr, tau, gamma, beta, checkpoints, dout, dstate_final;
  TensorRef dq, dk, dv, dlr, dtau, dgamma, dbeta, dstate0;
  void* workspace = nullptr;  // optional; at least MemoryPlan::backward_workspace_bytes
  size_t workspace_bytes = 0;
};

// The decode state pool (docs/decode.md), N slots: theta and accum f32 [N, H, S] contiguous
// (packed like state0), pos i32 [N, H] contiguous.
struct DecodePool {
  TensorRef theta, accum, pos;
};

// One decode launch: every row b advances by T tokens (T = 1 for a step) in pool slot slots[b].
// q, k, v, out: [B, H, T, f] as in the forward; lr f32 [B, H, T]; tau, gamma, beta as in the
// forward; slots: i32 [B] contiguous, distinct, each in [0, N) (a row whose slot is out of range
// is skipped and its outputs set to NaN: checked on the device, without a host sync).
struct DecodeArgs {
  TensorRef q, k, v, lr, tau, gamma, beta, slots;
  DecodePool pool;
  TensorRef out;
};

// Prefill of a prompt of any length T >= 1: inputs as in the forward (state0 [H, S] or
// [B, H, S]); writes out [B, H, T, f] and the decode state of every row into pool slot slots[b].
struct PrefillArgs {
  TensorRef q, k, v, lr, tau, gamma, beta, state0, slots;
  DecodePool pool;
  TensorRef out;
  void* workspace = nullptr;  // optional; at least MemoryPlan::prefill_workspace_bytes
  size_t workspace_bytes = 0;
};

}  // namespace ttt
