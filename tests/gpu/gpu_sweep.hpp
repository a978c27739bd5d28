// gpu_sweep.hpp: the spec sweep the GPU tests run (every inner model, causal and non-causal,
// f32/f16/bf16, head dims 32/64/128, mini-batches 16/64), built from one template spec.
#pragma once

#include <fmt/format.h>

#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "compiler/spec.hpp"

namespace ttt::testing {

struct SweepCase {
  Spec spec;
  bool per_batch_state;
  bool tokens_bthf;
  int T;
  std::string label() const {
    return fmt::format("{}_{}_{}_f{}_K{}_g{}_T{}_{}{}", spec.name,
                       spec.causal ? "causal" : "noncausal", to_string(spec.dtype), spec.head_dim,
                       spec.mini_batch, spec.checkpoint_group, T,
                       per_batch_state ? "perbatch" : "shared", tokens_bthf ? "_bthf" : "");
  }
};

// TTTC_SWEEP_PRECISION=accurate|tf32|bf16 runs the sweep in that precision mode (default
// accurate): each mode is checked at its own gate (check.hpp).
inline Precision sweep_precision() {
  const char* v = std::getenv("TTTC_SWEEP_PRECISION");
  const std::string mode = v ? v : "accurate";
  if (mode == "tf32") return Precision::tf32;
  if (mode == "bf16") return Precision::bf16;
  return Precision::accurate;
}

inline std::vector<SweepCase> gpu_sweep() {
  std::vector<SweepCase> cases;
  int i = 0;
  for (int depth : {1, 2, 3, 4})
    for (bool causal : {true, false})
      for (DType dtype : {DType::f32, DType::f16, DType::bf16})
        for (int f : {32, 64, 128})
          for (int K : {16, 64}) {
            Spec s;
            s.model = depth == 1 ? InnerModel::linear : InnerModel::mlp;
            s.depth = depth;
            s.name = depth == 1 ? "linear" : fmt::format("mlp{}", depth);
            s.causal = causal;
            s.dtype = dtype;
            s.precision = sweep_precision();
            s.head_dim = f;
            s.mini_batch = K;
            s.checkpoint_group = 1 + i % 3;
            // Smooth activations only: ReLU's derivative jumps at 0 and the inner gradient uses
            // it, so wherever a pre-activation lies within rounding of 0 the kernel and the f64
            // reference legitimately take different sides (measured: up to 6e-4 relative in f32
            // and 4e-2 in an ill-conditioned dtau in bf16; docs/results.md). ReLU has its own
            // test in test_gpu_kernels.cpp.
            s.activation = i % 3 == 2 ? Activation::silu : Activation::gelu_tanh;
            // T is never a multiple of K: the last mini-batch is short.
            const int T = 2 * K + 5 + (i % 3) * K;
            cases.push_back({s, i % 2 == 1, i % 5 == 2, T});
            ++i;
          }
  // Edges of the tile lowering's default coverage that the product above misses: a mini-batch
  // of 8 (padded to 16 rows), 32-token mini-batches, one-warp teams (f = 16) and 48-column slices
  // (f = 96 over 2 warps); a tile forward beside an arena backward (f = 128 at K = 32); a tile
  // backward with its adjoint state in L2 (f = 64 at K = 32; f = 128 at K = 16 in the product).
  for (auto [f, K, dtype] : {std::tuple{16, 8, DType::bf16}, std::tuple{16, 64, DType::f32},
                             std::tuple{32, 32, DType::f16}, std::tuple{64, 8, DType::bf16},
                             std::tuple{96, 16, DType::bf16}, std::tuple{64, 32, DType::f32},
                             std::tuple{128, 32, DType::bf16}}) {
    Spec s;
    s.model = InnerModel::linear;
    s.depth = 1;
    s.name = "linear";
    s.dtype = dtype;
    s.precision = sweep_precision();
    s.head_dim = f;
    s.mini_batch = K;
    s.checkpoint_group = 2;
    cases.push_back({s, false, true, 3 * K + 3});
  }
  return cases;
}

}  // namespace ttt::testing
