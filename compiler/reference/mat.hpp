// mat.hpp: the small dense row-major double matrix the reference computes with, and the one
// matrix-multiply kernel everything else goes through (C (+)= op(A) op(B)).
// Kept apart from the autodiff tape so the token-by-token primal form can use it too.
#pragma once

#include <cstddef>
#include <vector>

namespace ttt::ref {

struct Mat {
  int rows = 0, cols = 0;
  std::vector<double> v;  // row-major, rows * cols

  Mat() = default;
  Mat(int r, int c) : rows(r), cols(c), v(static_cast<size_t>(r) * c, 0.0) {}
  Mat(int r, int c, const double* src)
      : rows(r), cols(c), v(src, src + static_cast<size_t>(r) * c) {}

  bool empty() const { return v.empty(); }
  size_t size() const { return v.size(); }
  double* row(int i) { return v.data() + static_cast<size_t>(i) * cols; }
  const double* row(int i) const { return v.data() + static_cast<size_t>(i) * cols; }
  double& operator()(int i, int j) { return v[static_cast<size_t>(i) * cols + j]; }
  double operator()(int i, int j) const { return v[static_cast<size_t>(i) * cols + j]; }
};

// C = op(A) op(B), or C += op(A) op(B) when `accumulate`; op transposes when its flag is set.
// C must already have the result's shape. Throws std::logic_error on a shape mismatch (a bug in
// the caller, never bad user input: inputs are validated before any Mat is built).
void gemm(const Mat& a, bool trans_a, const Mat& b, bool trans_b, Mat& c, bool accumulate);

}  // namespace ttt::ref
