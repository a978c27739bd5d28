// mat.cpp: the matrix-multiply kernel of the reference. All three forms reduce to one i-k-j loop
// (rows of C updated by scaled rows of B) so the innermost loop is a contiguous axpy the compiler
// vectorizes; a transposed right operand is first copied into row-major order.
#include "compiler/reference/mat.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

// Build an AVX2/FMA clone next to the generic one and pick at load time: about twice the speed on
// machines that have it, and the binary still runs everywhere.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TTTC_REF_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define TTTC_REF_CLONES
#endif

namespace ttt::ref {
namespace {

// C[m x n] += A[m x k] B[k x n], or A^T B when `a_is_kxm` (A stored k x m).
TTTC_REF_CLONES void axpy_rows(const double* __restrict a, bool a_is_kxm, const double* __restrict b,
                               double* __restrict c, int m, int k, int n) {
  for (int i = 0; i < m; ++i) {
    double* __restrict ci = c + static_cast<size_t>(i) * n;
    for (int p = 0; p < k; ++p) {
      const double s = a_is_kxm ? a[static_cast<size_t>(p) * m + i] : a[static_cast<size_t>(i) * k + p];
      const double* __restrict bp = b + static_cast<size_t>(p) * n;
      for (int j = 0; j < n; ++j) ci[j] += s * bp[j];
    }
  }
}

[[noreturn]] void shape_bug(const char* what, int x, int y) {
  throw std::logic_error(std::string("ref::gemm: ") + what + " mismatch (" + std::to_string(x) +
                         " vs " + std::to_string(y) + ")");
}

}  // namespace

void gemm(const Mat& a, bool trans_a, const Mat& b, bool trans_b, Mat& c, bool accumulate) {
  const int m = trans_a ? a.cols : a.rows;
  const int k = trans_a ? a.rows : a.cols;
  const int kb = trans_b ? b.cols : b.rows;
  const int n = trans_b ? b.rows : b.cols;
  if (k != kb) shape_bug("inner dimension", k, kb);
  if (c.rows != m) shape_bug("result rows", c.rows, m);
  if (c.cols != n) shape_bug("result cols", c.cols, n);
  if (!accumulate) std::fill(c.v.begin(), c.v.end(), 0.0);
  if (!trans_b) {
    axpy_rows(a.v.data(), trans_a, b.v.data(), c.v.data(), m, k, n);
    return;
  }
  Mat bt(k, n);  // B^T in row-major order: O(kn) copy against O(mkn) work
  for (int i = 0; i < b.rows; ++i)
    for (int j = 0; j < b.cols; ++j) bt(j, i) = b(i, j);
  axpy_rows(a.v.data(), trans_a, bt.v.data(), c.v.data(), m, k, n);
}

}  // namespace ttt::ref
