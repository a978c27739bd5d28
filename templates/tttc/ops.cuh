// ops.cuh: the CTA-wide operations one IR op maps to: matmul, broadcasting elementwise maps,
// row/column sums, transpose and fill, over row-major f32 matrices addressed through generic
// pointers (shared or global memory alike). Every op ends with a CTA barrier, so the next op may
// read what this one wrote.
#pragma once

#include "tttc/numeric.cuh"

namespace tttc {

// C[M,N] = alpha * op(A) op(B) + beta * D. A is [M,KD] (or [KD,M] when TA); B is [KD,N] (or
// [N,KD] when TB); M and N are multiples of 4 (codegen checks). C may alias D (each element is
// read and written by one thread) but no other operand. Each thread owns a 4x4 block of C, so
// one step's 8 loads feed 16 FMAs. Shapes are run-time values: one instantiation per transpose
// pair keeps NVRTC compiles short.
template <bool TA, bool TB>
__device__ __noinline__ void matmul(float* C, const float* A, const float* B, int M, int N, int KD,
                                    float alpha, const float* D, float beta) {
  constexpr int TM = 4, TN = 4;
  const int tiles_n = N / TN, tiles = (M / TM) * tiles_n;
  for (int tile = threadIdx.x; tile < tiles; tile += blockDim.x) {
    const int m0 = (tile / tiles_n) * TM, n0 = (tile % tiles_n) * TN;
    float acc[TM][TN] = {};
#pragma unroll 2
    for (int k = 0; k < KD; ++k) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = TA ? A[k * M + m0 + i] : A[(m0 + i) * KD + k];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = TB ? B[(n0 + j) * KD + k] : B[k * N + n0 + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        const int idx = (m0 + i) * N + n0 + j;
        float r = alpha * acc[i][j];
        if (D) r = fmaf(beta, D[idx], r);
        C[idx] = r;
      }
  }
  __syncthreads();
}

// Two floats rounded to bf16 (nearest even) in one register, `lo` in the low half.
__device__ __forceinline__ unsigned pack_bf16x2(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

// The bf16 value nearest to x, as a float (round to nearest even; inputs here are finite).
__device__ __forceinline__ float round_bf16(float x) {
  unsigned u = __float_as_uint(x);
  u += 0x7fffu + ((u >> 16) & 1u);
  return __uint_as_float(u & 0xffff0000u);
}

// D += A B on the tensor cores for one m16n8k16 fragment set.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const unsigned (&a)[4],
                                         const unsigned (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Splits 8 + 4 floats into PARTS bf16 terms each (x = part0 + part1 + ...; each part is the
// bf16 rounding of what the earlier parts left), packed as mma fragments.
template <int PARTS>
__device__ __forceinline__ void split_fragments(const float (&av)[8], const float (&bv)[4],
                                                unsigned (&a)[PARTS][4], unsigned (&b)[PARTS][2]) {
  float ar[8], br[4];
#pragma unroll
  for (int i = 0; i < 8; ++i) ar[i] = av[i];
#pragma unroll
  for (int i = 0; i < 4; ++i) br[i] = bv[i];
#pragma unroll
  for (int p = 0; p < PARTS; ++p) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      a[p][i] = pack_bf16x2(ar[2 * i], ar[2 * i + 1]);
      ar[2 * i] -= round_bf16(ar[2 * i]);
      ar[2 * i + 1] -= round_bf16(ar[2 * i + 1]);
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      b[p][i] = pack_bf16x2(br[2 * i], br[2 * i + 1]);
      br[2 * i] -= round_bf16(br[2 * i]);
      br[2 * i + 1] -= round_bf16(br[2 * i + 1]);
    }
  }
}

// The same product as matmul() on the tensor cores: each warp computes 16x8 tiles of C with
// mma.sync m16n8k16 (bf16 operands, f32 accumulation; sm_80+). With PARTS > 1 each operand is
// split into PARTS bf16 terms and the products of terms whose orders sum below PARTS are added
// (smallest first): PARTS = 1 rounds operands to bf16 (about 2^-8 relative), 2 takes 3 products
// (about 2^-16), 3 takes 6 products (about 2^-24, like f32). Fragment layout per the PTX ISA:
// lane = 4 * g + t; A rows g and g+8, columns 2t, 2t+1 (+8); B columns g, rows 2t, 2t+1 (+8);
// C rows g and g+8, columns 2t, 2t+1. Rows past M and k past KD read as zero, so only N must be a
// multiple of 8 (codegen checks). C may alias D.
template <bool TA, bool TB, int PARTS>
__device__ __noinline__ void matmul_mma(float* C, const float* A, const float* B, int M, int N,
                                        int KD, float alpha, const float* D, float beta) {
  static_assert(PARTS >= 1 && PARTS <= 3, "PARTS: 1, 2 or 3");
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int tiles_n = N / 8, tiles = (M + 15) / 16 * tiles_n;
  auto a_at = [&](int m, int k) {
    return (m < M && k < KD) ? (TA ? A[k * M + m] : A[m * KD + k]) : 0.f;
  };
  auto b_at = [&](int k, int n) { return k < KD ? (TB ? B[n * KD + k] : B[k * N + n]) : 0.f; };
  for (int tile = warp; tile < tiles; tile += warps) {
    const int m0 = (tile / tiles_n) * 16, n0 = (tile % tiles_n) * 8;
    float c[4] = {0.f, 0.f, 0.f, 0.f};
    for (int k0 = 0; k0 < KD; k0 += 16) {
      const int k = k0 + 2 * t;
      const float av[8] = {a_at(m0 + g, k),         a_at(m0 + g, k + 1),    a_at(m0 + g + 8, k),
                           a_at(m0 + g + 8, k + 1), a_at(m0 + g, k + 8),    a_at(m0 + g, k + 9),
                           a_at(m0 + g + 8, k + 8), a_at(m0 + g + 8, k + 9)};
      const float bv[4] = {b_at(k, n0 + g), b_at(k + 1, n0 + g), b_at(k + 8, n0 + g),
                           b_at(k + 9, n0 + g)};
      unsigned a[PARTS][4], b[PARTS][2];
      split_fragments<PARTS>(av, bv, a, b);
#pragma unroll
      for (int order = PARTS - 1; order >= 0; --order)
#pragma unroll
        for (int i = 0; i <= order; ++i) mma_bf16(c, a[i], b[order - i]);
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = m0 + g + 8 * r;
      if (row >= M) continue;
#pragma unroll
      for (int cc = 0; cc < 2; ++cc) {
        const int idx = row * N + n0 + 2 * t + cc;
        float v = alpha * c[2 * r + cc];
        if (D) v = fmaf(beta, D[idx], v);
        C[idx] = v;
      }
    }
  }
  __syncthreads();
}

enum EwOp { kAdd = 0, kSub, kMul, kAct, kActD1, kActD2, kSqrt, kRecip, kAffine, kTril, kBroadcast };

template <int Op, int Act>
__device__ __forceinline__ float ew_apply(float a, float b, float s, float c, int row, int col) {
  switch (Op) {
    case kAdd:
      return a + b;
    case kSub:
      return a - b;
    case kMul:
      return a * b;
    case kAct:
      return activation<Act, 0>(a);
    case kActD1:
      return activation<Act, 1>(a);
    case kActD2:
      return activation<Act, 2>(a);
    case kSqrt:
      return sqrtf(a);
    case kRecip:
      return 1.f / a;
    case kAffine:
      return fmaf(s, a, c);
    case kTril:
      return row >= col ? a : 0.f;
    default:
      return a;  // kBroadcast
  }
}

// out[R,C] = Op(a, b). An operand of shape [1,C], [R,1] or [1,1] is broadcast (its row or column
// step is 0; codegen passes the shapes). b may be null for unary ops. out may alias a or b when
// that operand has the output's shape.
template <int Op, int Act>
__device__ __noinline__ void elementwise(float* out, int R, int C, const float* a, int ra, int ca,
                                         const float* b, int rb, int cb, float s, float c) {
  const int a_row = ra == 1 ? 0 : ca, a_col = ca == 1 ? 0 : 1;
  const int b_row = rb == 1 ? 0 : cb, b_col = cb == 1 ? 0 : 1;
  for (int idx = threadIdx.x; idx < R * C; idx += blockDim.x) {
    const int i = idx / C, j = idx % C;
    const float av = a[i * a_row + j * a_col];
    const float bv = b ? b[i * b_row + j * b_col] : 0.f;
    out[idx] = ew_apply<Op, Act>(av, bv, s, c, i, j);
  }
  __syncthreads();
}

__device__ __noinline__ void row_sum(float* out, const float* a, int R, int C) {
  for (int i = threadIdx.x; i < R; i += blockDim.x) {
    float acc = 0.f;
    for (int j = 0; j < C; ++j) acc += a[i * C + j];
    out[i] = acc;
  }
  __syncthreads();
}

__device__ __noinline__ void col_sum(float* out, const float* a, int R, int C) {
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    float acc = 0.f;
    for (int i = 0; i < R; ++i) acc += a[i * C + j];
    out[j] = acc;
  }
  __syncthreads();
}

__device__ __noinline__ void transpose(float* out, const float* a, int R, int C) {
  for (int idx = threadIdx.x; idx < R * C; idx += blockDim.x) {
    const int i = idx / C, j = idx % C;
    out[j * R + i] = a[idx];
  }
  __syncthreads();
}

__device__ __noinline__ void fill(float* out, int R, int C, float value) {
  for (int idx = threadIdx.x; idx < R * C; idx += blockDim.x) out[idx] = value;
  __syncthreads();
}

}  // namespace tttc
