// layout.hpp: validation of a call's tensors against the spec and the copies between the public
// row-major tensors and the per-(b, h) matrices the reference computes with. Every shape error a
// user can cause is raised here, as std::invalid_argument naming the tensor.
#pragma once

#include <vector>

#include "compiler/reference/mat.hpp"
#include "compiler/reference/reference.hpp"

namespace ttt::ref {

// The sizes of one call, checked against each other and the spec.
struct Dims {
  int B = 0, H = 0, T = 0, f = 0, K = 0;
  std::vector<int> widths;  // d_0 .. d_L
  bool per_batch_state = false;

  int depth() const { return static_cast<int>(widths.size()) - 1; }
  int chunks() const { return (T + K - 1) / K; }
  int chunk_len(int c) const { return c * K + K <= T ? K : T - c * K; }
};

// One head's inner-model parameters: W[l-1] is [d_{l-1} x d_l], b[l-1] is [1 x d_l].
struct State {
  std::vector<Mat> W, b;
};

Dims validate_inputs(const Spec& spec, const Inputs& in);
void validate_upstream(const Dims& d, const Upstream& up);

// Shape helpers for building result tensors.
std::vector<int64_t> token_shape(const Dims& d);  // [B, H, T, f]
std::vector<int64_t> state_shape(const Dims& d, int l, bool w, bool per_batch);

// Rows t0 .. t0+n-1 of head (b, h) of a [B, H, T, f] tensor as [n x f], and back.
Mat load_tokens(const Tensor& x, const Dims& d, int b, int h, int t0, int n);
void store_tokens(Tensor& x, const Dims& d, int b, int h, int t0, const Mat& m);
// The same for a [B, H, T] tensor, as a column [n x 1].
Mat load_token_col(const Tensor& x, const Dims& d, int b, int h, int t0, int n);
void store_token_col(Tensor& x, const Dims& d, int b, int h, int t0, const Mat& m);
// Row h of an [H, f] tensor as [1 x f].
Mat load_head_row(const Tensor& x, const Dims& d, int h);

// Layer tensors (W when `w`, else b) of head (b, h), laid out as state_shape(.., per_batch).
std::vector<Mat> load_layers(const std::vector<Tensor>& ts, const Dims& d, int bi, int h,
                             bool per_batch, bool w);
State load_state(const std::vector<Tensor>& W, const std::vector<Tensor>& b, const Dims& d, int bi,
                 int h, bool per_batch);
// Writes (or with `accumulate`, adds) the state of head (b, h) into the tensors.
void store_state(std::vector<Tensor>& W, std::vector<Tensor>& b, const Dims& d, int bi, int h,
                 bool per_batch, const State& s, bool accumulate = false);
// Zero-filled tensors for a state of the given layout.
void make_state_tensors(std::vector<Tensor>& W, std::vector<Tensor>& b, const Dims& d,
                        bool per_batch);

}  // namespace ttt::ref
