// check.hpp: runs a kernel on seeded random inputs and compares every output and gradient with
// the double-precision CPU reference (relative Frobenius error), with outputs poisoned (NaN)
// before each run. Shared by `tttc check`, the GPU tests and the benchmark.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compiler/reference/reference.hpp"
#include "runtime/jit.hpp"

namespace ttt::check {

struct Options {
  int B = 2, H = 4, T = 100;
  bool per_batch_state = false;
  bool tokens_bthf = false;  // store q, k, v, out (and grads) as [B, T, H, f], passed as strides
  bool backward = true;
  bool state_grads = true;  // also feed dLoss/dtheta_T
  bool compare = true;      // false: run and time only (no CPU reference)
  uint64_t seed = 1;
  int timing_runs = 0;  // extra launches timed with CUDA events (median reported)
};

struct TensorCheck {
  std::string name;
  double rel_error = 0;  // ||gpu - ref|| / ||ref||
  bool finite = true;
  double tolerance = 0;
  bool passed() const { return finite && rel_error <= tolerance; }
};

struct Report {
  std::vector<TensorCheck> forward, backward;
  double forward_ms = -1, backward_ms = -1;  // median of timing_runs (-1: not timed)
  double reference_ms = 0;
  std::map<std::string, std::vector<double>>
      gpu_values;  // every compared tensor, as the GPU wrote it
  bool passed() const;
};

// The issues' tolerances: forward 1e-5 (f32) / 1e-2 (f16, bf16); backward 1e-4 / 2e-2.
double forward_tolerance(const Spec& spec);
double backward_tolerance(const Spec& spec);

Report run(const Spec& spec, const Options& options, const jit::Kernel& kernel);

// Packed state <-> per-layer reference tensors (W_l [.., d_in, d_out], b_l [.., d_out]).
std::vector<double> pack_state(const Spec& spec, const std::vector<ref::Tensor>& W,
                               const std::vector<ref::Tensor>& b, int64_t heads);
void unpack_state(const Spec& spec, const std::vector<double>& packed, int64_t heads,
                  std::vector<ref::Tensor>& W, std::vector<ref::Tensor>& b);

// Backward arguments that read the forward's inputs and the checkpoints it wrote.
BackwardArgs backward_inputs(const ForwardArgs& forward);
// Allocates every gradient of `args` (shaped after the forward's tensors) through `output`.
using OutputAllocator =
    std::function<TensorRef(DType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides)>;
void allocate_gradients(const Spec& spec, const ForwardArgs& forward, BackwardArgs& args,
                        const OutputAllocator& output);

double relative_error(const std::vector<double>& got, const std::vector<double>& want,
                      bool* finite);

}  // namespace ttt::check
