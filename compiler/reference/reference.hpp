// reference.hpp: the CPU reference (the oracle) for the TTT inner loop, in double precision.
// Computes the forward (outputs and final states) and the complete outer backward exactly as
// ../shared/docs/ttt-math.md defines them, for any valid Spec. Every GPU kernel is checked
// against it. Layouts are contiguous, row-major, and documented per field below.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "compiler/spec.hpp"

namespace ttt::ref {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<double> data;  // row-major, size == product(shape)

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s);  // zero-filled
  int64_t numel() const;
};

// Inputs of one TTT layer call. f = head_dim, K = mini_batch, d_l = spec.widths()[l].
struct Inputs {
  int B = 0, H = 0, T = 0;
  Tensor q, k, v;      // [B, H, T, f]
  Tensor lr;           // [B, H, T]
  Tensor tau;          // [K]
  Tensor gamma, beta;  // [H, f]
  bool per_batch_state = false;
  // Initial state per layer l = 1..depth (index l-1):
  //   W[l-1]: [H, d_{l-1}, d_l] shared, or [B, H, d_{l-1}, d_l] per batch row; f(x) = x W + b.
  //   b[l-1]: [H, d_l] shared, or [B, H, d_l].
  std::vector<Tensor> W, b;
};

struct Outputs {
  Tensor out;                   // [B, H, T, f]
  std::vector<Tensor> W_final;  // [B, H, d_{l-1}, d_l]
  std::vector<Tensor> b_final;  // [B, H, d_l]
};

// Upstream gradients: dLoss/dout, and optionally dLoss/dtheta_T (same shapes as Outputs).
struct Upstream {
  Tensor dout;                                  // [B, H, T, f]
  std::optional<std::vector<Tensor>> dW_final;  // [B, H, d_{l-1}, d_l]
  std::optional<std::vector<Tensor>> db_final;  // [B, H, d_l]
};

// Gradients; each has the shape of its input (dW/db: the shape of the initial state, summed over
// the batch when the state is shared; dtau/dgamma/dbeta summed over everything that shares them).
struct Grads {
  Tensor dq, dk, dv, dlr, dtau, dgamma, dbeta;
  std::vector<Tensor> dW, db;
  // The gradients that are not per-layer, with the names `tttc run` and `reference` use.
  std::vector<std::pair<const char*, const Tensor*>> named() const {
    return {{"dq", &dq},     {"dk", &dk},         {"dv", &dv},      {"dlr", &dlr},
            {"dtau", &dtau}, {"dgamma", &dgamma}, {"dbeta", &dbeta}};
  }
};

// Seeded random inputs of valid ranges (lr > 0 small, tau >= 0, gamma near 1, states scaled so
// activations stay O(1)). Deterministic for a given (spec, shape, seed) on every machine.
Inputs random_inputs(const Spec& spec, int B, int H, int T, bool per_batch_state, uint64_t seed);
Upstream random_upstream(const Spec& spec, int B, int H, int T, bool with_state_grads,
                         uint64_t seed);

// Dual (mini-batch) form, the form the kernels compute.
Outputs forward(const Spec& spec, const Inputs& in);
// Token-by-token primal form (causal specs only; throws for non-causal): for testing the dual form.
Outputs forward_primal(const Spec& spec, const Inputs& in);
// Forward + full outer backward, walking checkpoint groups of spec.checkpoint_group in reverse.
Grads backward(const Spec& spec, const Inputs& in, const Upstream& up);

// ---- Decode (docs/decode.md): causal specs only; throws std::invalid_argument otherwise. ----
// The decode state of every head (b, h): theta (the state at the current mini-batch's start) and
// A (the lr-weighted sum of the inner gradients of the tokens seen in it), both shaped like
// Outputs' final state, and pos [B * H], the tokens already consumed in the mini-batch.
struct DecodeState {
  std::vector<Tensor> W, b;    // theta: [B, H, d_{l-1}, d_l], [B, H, d_l]
  std::vector<Tensor> AW, Ab;  // A, the same shapes
  std::vector<int> pos;        // [B * H], 0 <= pos < K
};
// A fresh state for every head: theta = the initial state of `in` (shared or per row), A = 0.
DecodeState decode_start(const Spec& spec, const Inputs& in);
// Advances every head by in.T tokens, one decode step per token, from `state` (in.W and in.b are
// only validated, not used). Returns the outputs [B, H, T, f].
Tensor decode(const Spec& spec, const Inputs& in, DecodeState& state);
// Prefill as the kernels do it: the dual-form forward on the first floor(T / K) K tokens, then
// decode steps for the rest. Returns the outputs [B, H, T, f] and the decode state in `state`.
Tensor prefill(const Spec& spec, const Inputs& in, DecodeState& state);
// The forward's final state for a decode state: theta - tau_{pos-1} A (theta when pos == 0).
void decode_final_state(const Spec& spec, const Tensor& tau, const DecodeState& state,
                        std::vector<Tensor>& W, std::vector<Tensor>& b);

// Number of worker threads used for (b, h) parallelism: TTTC_REF_THREADS, else hardware threads.
int reference_threads();

}  // namespace ttt::ref
