// mat.cpp: the matrix-multiply kernel of the reference. All three forms reduce to one kernel
// over a row-major right operand (a transposed one is copied first); a transposed left operand
// is read through strides.
#include "compiler/reference/mat.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace ttt::ref {
namespace {

// GCC/Clang vector extensions: two doubles map to SSE2 (or NEON) registers, four to AVX2.
typedef double v2d __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));

// C[m x n] += A B with B [k x n] row-major and A(i, p) = a[i * si + p * sp] (so A or A^T).
// A block of 4 rows x 2 vectors of C stays in registers across the whole p loop: each loaded B
// vector feeds four rows instead of one, which makes this compute- rather than load-bound (the
// compiler does not register-block on its own). Leftover rows and columns take plain loops.
template <typename V>
[[gnu::always_inline]] inline void gemm_blocked(const double* __restrict a, size_t si, size_t sp,
                                                const double* __restrict b, double* __restrict c,
                                                int m, int k, int n) {
  constexpr int kW = sizeof(V) / sizeof(double), kCols = 2 * kW;
  int i = 0;
  for (; i + 4 <= m; i += 4) {
    const double* a0 = a + i * si;
    int j = 0;
    for (; j + kCols <= n; j += kCols) {
      V acc[4][2] = {};
      for (int p = 0; p < k; ++p) {
        const double* bp = b + static_cast<size_t>(p) * n + j;
        V b0, b1;  // unaligned loads
        std::memcpy(&b0, bp, sizeof b0);
        std::memcpy(&b1, bp + kW, sizeof b1);
        for (int r = 0; r < 4; ++r) {
          const double ar = a0[r * si + p * sp];
          acc[r][0] += ar * b0;
          acc[r][1] += ar * b1;
        }
      }
      for (int r = 0; r < 4; ++r) {
        double* cr = c + static_cast<size_t>(i + r) * n + j;
        for (int q = 0; q < kW; ++q) {
          cr[q] += acc[r][0][q];
          cr[q + kW] += acc[r][1][q];
        }
      }
    }
    for (; j < n; ++j) {
      for (int r = 0; r < 4; ++r) {
        double acc = 0.0;
        for (int p = 0; p < k; ++p) acc += a0[r * si + p * sp] * b[static_cast<size_t>(p) * n + j];
        c[static_cast<size_t>(i + r) * n + j] += acc;
      }
    }
  }
  for (; i < m; ++i) {
    double* __restrict ci = c + static_cast<size_t>(i) * n;
    for (int p = 0; p < k; ++p) {
      const double s = a[i * si + p * sp];
      const double* __restrict bp = b + static_cast<size_t>(p) * n;
      for (int j = 0; j < n; ++j) ci[j] += s * bp[j];
    }
  }
}

void gemm_kernel_128(const double* a, size_t si, size_t sp, const double* b, double* c, int m,
                     int k, int n) {
  gemm_blocked<v2d>(a, si, sp, b, c, m, k, n);
}

#if defined(__x86_64__) && defined(__GNUC__)
// Four-wide on x86 machines with AVX2, chosen at run time so the binary still runs everywhere.
// No FMA: the library is built with -ffp-contract=off, so both paths round identically.
__attribute__((target("avx2"))) void gemm_kernel_256(const double* a, size_t si, size_t sp,
                                                     const double* b, double* c, int m, int k,
                                                     int n) {
  gemm_blocked<v4d>(a, si, sp, b, c, m, k, n);
}

void gemm_kernel(const double* a, size_t si, size_t sp, const double* b, double* c, int m, int k,
                 int n) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  (avx2 ? gemm_kernel_256 : gemm_kernel_128)(a, si, sp, b, c, m, k, n);
}
#else
void gemm_kernel(const double* a, size_t si, size_t sp, const double* b, double* c, int m, int k,
                 int n) {
  gemm_kernel_128(a, si, sp, b, c, m, k, n);
}
#endif

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
  const size_t si = trans_a ? 1 : k, sp = trans_a ? m : 1;
  if (!trans_b) {
    gemm_kernel(a.v.data(), si, sp, b.v.data(), c.v.data(), m, k, n);
    return;
  }
  // B^T in row-major order: an O(kn) copy against O(mkn) work, in tiles so that both the reads
  // and the strided writes stay within a few cache lines.
  Mat bt(k, n);
  constexpr int kTile = 16;
  for (int i0 = 0; i0 < b.rows; i0 += kTile)
    for (int j0 = 0; j0 < b.cols; j0 += kTile)
      for (int i = i0; i < std::min(i0 + kTile, b.rows); ++i)
        for (int j = j0; j < std::min(j0 + kTile, b.cols); ++j) bt(j, i) = b(i, j);
  gemm_kernel(a.v.data(), si, sp, bt.v.data(), c.v.data(), m, k, n);
}

}  // namespace ttt::ref
