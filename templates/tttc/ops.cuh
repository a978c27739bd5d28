// ops.cuh: the CTA-wide operations one IR op maps to: matmul, broadcasting elementwise maps,
// row/column sums, transpose and fill, over row-major f32 matrices addressed through generic
// pointers (shared or global memory alike). Every op ends with a CTA barrier, so the next op may
// read what this one wrote.
#pragma once

#include "tttc/arena_mma.cuh"
#include "tttc/io.cuh"
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
// that operand has the output's shape. A thread loads the operands of kBatch of its elements
// before it stores any: with an arena in global memory, one element at a time waits a full memory
// latency per element (out may alias a or b only element for element, so this is safe). Not
// written over io.cuh's batched_walk: that form (Op applied inside the batch's load loop) made
// the video kernels 3-9 % slower on the H200 (results.md, session 22).
template <int Op, int Act>
__device__ __noinline__ void elementwise(float* out, int R, int C, const float* a, int ra, int ca,
                                         const float* b, int rb, int cb, float s, float c) {
  constexpr int kBatch = 4;
  const int a_row = ra == 1 ? 0 : ca, a_col = ca == 1 ? 0 : 1;
  const int b_row = rb == 1 ? 0 : cb, b_col = cb == 1 ? 0 : 1;
  const int n = R * C;
  CtaWalk w(C);
  for (int first = threadIdx.x; first < n; first += kBatch * blockDim.x) {
    float av[kBatch], bv[kBatch];
    int row[kBatch], col[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u, w.next()) {
      row[u] = w.i, col[u] = w.j;
      const bool in = first + u * static_cast<int>(blockDim.x) < n;
      av[u] = in ? a[w.i * a_row + w.j * a_col] : 0.f;
      bv[u] = in && b ? b[w.i * b_row + w.j * b_col] : 0.f;
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u)
      if (const int idx = first + u * static_cast<int>(blockDim.x); idx < n)
        out[idx] = ew_apply<Op, Act>(av[u], bv[u], s, c, row[u], col[u]);
  }
  __syncthreads();
}

// One warp per row: lanes stride the columns, then a shuffle tree (a fixed order: deterministic).
__device__ __noinline__ void row_sum(float* out, const float* a, int R, int C) {
  const int warps = blockDim.x / 32, lane = threadIdx.x % 32;
  for (int i = threadIdx.x / 32; i < R; i += warps) {
    float acc = 0.f;
#pragma unroll 4
    for (int j = lane; j < C; j += 32) acc += a[i * C + j];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) out[i] = acc;
  }
  __syncthreads();
}

__device__ __noinline__ void col_sum(float* out, const float* a, int R, int C) {
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    float acc = 0.f;
#pragma unroll 4
    for (int i = 0; i < R; ++i) acc += a[i * C + j];
    out[j] = acc;
  }
  __syncthreads();
}

__device__ __noinline__ void transpose(float* out, const float* a, int R, int C) {
  CtaWalk w(C);
  for (int idx = threadIdx.x; idx < R * C; idx += blockDim.x, w.next()) out[w.j * R + w.i] = a[idx];
  __syncthreads();
}

__device__ __noinline__ void fill(float* out, int R, int C, float value) {
  for (int idx = threadIdx.x; idx < R * C; idx += blockDim.x) out[idx] = value;
  __syncthreads();
}

}  // namespace tttc
