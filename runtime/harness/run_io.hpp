// run_io.hpp: the files of `tttc run`: reading a user's tensors from NumPy .npy files (checked
// against the spec: every missing, misshapen or wrongly typed file is named) and writing results.
// Names and shapes (f = head_dim, K = mini_batch, d_l = the inner model's widths):
//   q.npy k.npy v.npy [B,H,T,f]   lr.npy [B,H,T]   tau.npy [K]   gamma.npy beta.npy [H,f]
//   W<l>.npy [H,d_{l-1},d_l] or [B,H,d_{l-1},d_l]   b<l>.npy [H,d_l] or [B,H,d_l]
//   backward: dout.npy [B,H,T,f]; optional W<l>_final_grad.npy / b<l>_final_grad.npy [B,H,...]
// Inputs may be float16, float32 or float64; they are rounded to the spec's dtype (tokens) or
// float32 (everything else), as the kernels see them.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

#include "compiler/reference/reference.hpp"

namespace ttt::run_io {

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RunInputs {
  ref::Inputs inputs;                     // shapes as the reference takes them
  std::optional<ref::Upstream> upstream;  // when backward was asked for
};

RunInputs load(const Spec& spec, const std::filesystem::path& dir, bool backward);

// Writes `values` of `shape` as float32 NAME.npy in `dir` (created if needed).
void write(const std::filesystem::path& dir, const std::string& name,
           const std::vector<int64_t>& shape, const std::vector<double>& values);

}  // namespace ttt::run_io
