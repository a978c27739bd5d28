// tile.cuh: warp-level tiles with compile-time shapes, the building blocks of the tile lowering.
// One warp (a "team") owns one (batch row, head). Every value of a step is one of:
//   Tile<R, C>      an R x C matrix in registers, in the tensor cores' accumulator layout;
//   SmemTile<R, C>  the same matrix in the warp's own shared memory (padded rows);
//   PerRow<R>       an R x 1 column (one value per row), PerCol<C> a 1 x C row, Scalar a 1 x 1;
//   GlobalTile / GlobalRow  views of device memory with the same interface (state load/store);
//   SpillTile<R, C>  a value in the warp's own region of global memory (past shared memory).
// All share one element distribution, so elementwise ops never move data: shapes are padded to
// multiples of 16 and cut into 8 x 8 blocks; in block (bi, bj) lane l holds row 8*bi + l/4 and
// columns 8*bj + 2*(l%4) + {0, 1} as a float2. That is the m16n8 accumulator layout, and, packed
// to bf16 pairs, the m8n8 layout ldmatrix/movmatrix use, so a result feeds the next matmul as its
// A operand directly and as a transposed operand after one movmatrix per block.
#pragma once

#include "tttc/numeric.cuh"

namespace tttc::tile {

__host__ __device__ constexpr int pad16(int n) { return (n + 15) / 16 * 16; }

__device__ __forceinline__ int lane_id() { return threadIdx.x & 31; }
__device__ __forceinline__ int lane_row() { return (threadIdx.x & 31) >> 2; }  // 0..7
__device__ __forceinline__ int lane_col() { return (threadIdx.x & 3) * 2; }    // 0, 2, 4, 6

template <int R, int C>
struct Tile {
  static_assert(R > 1 && C > 1, "a matrix with one row or column is a PerRow/PerCol/Scalar");
  static constexpr int kRows = R, kCols = C, kBR = pad16(R) / 8, kBC = pad16(C) / 8;
  float2 d[kBR][kBC];
  __device__ __forceinline__ float2 get(int bi, int bj) const { return d[bi][bj]; }
  __device__ __forceinline__ void set(int bi, int bj, float2 v) { d[bi][bj] = v; }
};

// Rows padded by 8 floats: the 64-bit accesses of one half-warp then hit 32 distinct banks.
template <int C>
__host__ __device__ constexpr int smem_stride() {
  return pad16(C) + 8;
}
template <int R, int C>
__host__ __device__ constexpr int smem_floats() {
  return pad16(R) * smem_stride<C>();
}

template <int R, int C>
struct SmemTile {
  static constexpr int kRows = R, kCols = C, kBR = pad16(R) / 8, kBC = pad16(C) / 8;
  static constexpr int kStride = smem_stride<C>();
  float* base;
  __device__ __forceinline__ float2* at(int bi, int bj) const {
    return reinterpret_cast<float2*>(base + (8 * bi + lane_row()) * kStride + 8 * bj + lane_col());
  }
  __device__ __forceinline__ float2 get(int bi, int bj) const { return *at(bi, bj); }
  __device__ __forceinline__ void set(int bi, int bj, float2 v) const { *at(bi, bj) = v; }
};

template <int R>
struct PerRow {
  static constexpr int kRows = R, kCols = 1, kBR = pad16(R) / 8, kBC = 1;
  float r[kBR];
  __device__ __forceinline__ float2 get(int bi, int) const { return make_float2(r[bi], r[bi]); }
  __device__ __forceinline__ void set(int bi, int, float2 v) { r[bi] = v.x; }
};

template <int C>
struct PerCol {
  static constexpr int kRows = 1, kCols = C, kBR = 1, kBC = pad16(C) / 8;
  float2 c[kBC];
  __device__ __forceinline__ float2 get(int, int bj) const { return c[bj]; }
  __device__ __forceinline__ void set(int, int bj, float2 v) { c[bj] = v; }
};

struct Scalar {
  static constexpr int kRows = 1, kCols = 1, kBR = 1, kBC = 1;
  float s;
  __device__ __forceinline__ float2 get(int, int) const { return make_float2(s, s); }
  __device__ __forceinline__ void set(int, int, float2 v) { s = v.x; }
};

// R x C f32 values of a row-major matrix in device memory whose rows are Stride floats apart (a
// packed state member, or a team member's column slice of one).
template <int R, int C, int Stride = C>
struct GlobalTile {
  static constexpr int kRows = R, kCols = C, kBR = R / 8, kBC = C / 8;
  static_assert(R % 16 == 0 && C % 16 == 0, "state matrices have sizes in multiples of 16");
  float* base;
  __device__ __forceinline__ float2* at(int bi, int bj) const {
    return reinterpret_cast<float2*>(base + (8 * bi + lane_row()) * Stride + 8 * bj + lane_col());
  }
  __device__ __forceinline__ float2 get(int bi, int bj) const { return *at(bi, bj); }
  __device__ __forceinline__ void set(int bi, int bj, float2 v) const { *at(bi, bj) = v; }
};

// R x C f32 values in device memory in fragment order: block (bi, bj) (row-major over blocks)
// holds its 32 lanes' float2 side by side, so one warp access is one contiguous 256-byte run
// instead of 8 rows of 32 bytes in 8 cache lines. The kernels' own buffers (checkpoints where
// only tile kernels read them, workspace items, group states) use it: H200, W7, the row-major
// accesses of these cost the forward's and the backward's chains about 30 % (results.md,
// session 21).
template <int R, int C>
struct FragTile {
  static constexpr int kRows = R, kCols = C, kBR = R / 8, kBC = C / 8;
  static_assert(R % 16 == 0 && C % 8 == 0, "state slices have rows in 16s, columns in 8s");
  float* base;
  __device__ __forceinline__ float2* at(int bi, int bj) const {
    return reinterpret_cast<float2*>(base) + (bi * kBC + bj) * 32 + lane_id();
  }
  __device__ __forceinline__ float2 get(int bi, int bj) const { return *at(bi, bj); }
  __device__ __forceinline__ void set(int bi, int bj, float2 v) const { *at(bi, bj) = v; }
};

// An R x C f32 value in the warp's own region of the kernel's workspace, in fragment order like
// FragTile, its blocks padded like Tile's: the home of what does not fit the team's shared memory
// (Schedule::tile_shared_kib, global_state). Every lane reads and writes only its own elements,
// so no barrier orders them; the region stays in L2 while its team runs.
template <int R, int C>
struct SpillTile {
  static constexpr int kRows = R, kCols = C, kBR = pad16(R) / 8, kBC = pad16(C) / 8;
  float* base;
  __device__ __forceinline__ float2* at(int bi, int bj) const {
    return reinterpret_cast<float2*>(base) + (bi * kBC + bj) * 32 + lane_id();
  }
  __device__ __forceinline__ float2 get(int bi, int bj) const { return *at(bi, bj); }
  __device__ __forceinline__ void set(int bi, int bj, float2 v) const { *at(bi, bj) = v; }
};

// A 1 x C f32 row in device memory; written by the lanes of the first row group only.
template <int C>
struct GlobalRow {
  static constexpr int kRows = 1, kCols = C, kBR = 1, kBC = C / 8;
  float* base;
  __device__ __forceinline__ float2 get(int, int bj) const {
    return *reinterpret_cast<const float2*>(base + 8 * bj + lane_col());
  }
  __device__ __forceinline__ void set(int, int bj, float2 v) const {
    if (lane_row() == 0) *reinterpret_cast<float2*>(base + 8 * bj + lane_col()) = v;
  }
};

// A state member's slice between the warp's shared memory and its rows of a packed matrix in
// device memory (the initial state, a checkpoint an arena backward reads, the final state), row
// by row: 16-byte accesses, a warp instruction covering whole 128-byte lines. Copied by fragments
// (assign), every warp instruction touches 8 rows in 8 cache lines: mlp2's tile forward (H200,
// W3's shape) took 5.57 ms with its checkpoints stored that way, 4.09 like this, and 4.49 with
// one bulk copy (cp.async.bulk) per row issued ahead of the step.
template <int R, int C, class From, class To>
__device__ __forceinline__ void copy_rows(To* dst, int dst_stride, From* src, int src_stride) {
  __syncwarp();  // a row holds the fragments of 4 lanes
  const bool vectors =
      C % 4 == 0 && ((dst_stride | src_stride) & 3) == 0 &&
      ((reinterpret_cast<unsigned long long>(dst) | reinterpret_cast<unsigned long long>(src)) &
       15) == 0;
  if (vectors) {
    constexpr int kQuads = C / 4;
#pragma unroll 4
    for (int i = lane_id(); i < R * kQuads; i += 32) {
      const int r = i / kQuads, q = i % kQuads;
      *reinterpret_cast<float4*>(dst + r * dst_stride + 4 * q) =
          *reinterpret_cast<const float4*>(src + r * src_stride + 4 * q);
    }
  } else {
    for (int i = lane_id(); i < R * C; i += 32)
      dst[i / C * dst_stride + i % C] = src[i / C * src_stride + i % C];
  }
  __syncwarp();  // the other lanes read the rows as fragments
}
template <int R, int C, int Stride>
__device__ __forceinline__ void copy_rows(const GlobalTile<R, C, Stride>& dst,
                                          const SmemTile<R, C>& src) {
  copy_rows<R, C>(dst.base, Stride, static_cast<const float*>(src.base), SmemTile<R, C>::kStride);
}
template <int R, int C, int Stride>
__device__ __forceinline__ void copy_rows(const SmemTile<R, C>& dst,
                                          const GlobalTile<R, C, Stride>& src) {
  copy_rows<R, C>(dst.base, SmemTile<R, C>::kStride, static_cast<const float*>(src.base), Stride);
}

// ---------------------------------------------------------------------------------------------
// Elementwise: one loop over the output's blocks; operands broadcast by ignoring an index.

enum EwOp { kAdd, kSub, kMul, kAct, kActD1, kActD2, kSqrt, kRecip, kAffine, kTril, kCopy, kRsqrt };

// MUFU approximations (relative error about 2^-23, far inside every gate): the IEEE-rounded
// sqrtf and 1/x branch to a slow path, which splits the straight-line step into basic blocks
// that ptxas cannot schedule across. kRsqrt is 1/sqrt(x) fused by the lowering.
__device__ __forceinline__ float sqrt_approx(float x) {
  float r;
  asm("sqrt.approx.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ float rsqrt_approx(float x) {
  float r;
  asm("rsqrt.approx.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}

template <int Op, int Act>
__device__ __forceinline__ float apply(float a, float b, float s, float c, int row, int col) {
  if constexpr (Op == kAdd) return a + b;
  if constexpr (Op == kSub) return a - b;
  if constexpr (Op == kMul) return a * b;
  if constexpr (Op == kAct) return activation<Act, 0>(a);
  if constexpr (Op == kActD1) return activation<Act, 1>(a);
  if constexpr (Op == kActD2) return activation<Act, 2>(a);
  if constexpr (Op == kSqrt) return sqrt_approx(a);
  if constexpr (Op == kRecip) return rcp_approx(a);
  if constexpr (Op == kRsqrt) return rsqrt_approx(a);
  if constexpr (Op == kAffine) return s * a + c;
  if constexpr (Op == kTril) return row >= col ? a : 0.f;
  if constexpr (Op == kCopy) return a;
  return 0.f;
}

template <int Op, int Act, class Out, class A, class B>
__device__ __forceinline__ void ew(Out& out, const A& a, const B& b, float s = 1.f, float c = 0.f) {
#pragma unroll
  for (int bi = 0; bi < Out::kBR; ++bi)
#pragma unroll
    for (int bj = 0; bj < Out::kBC; ++bj) {
      const float2 x = a.get(bi, bj), y = b.get(bi, bj);
      const int row = 8 * bi + lane_row(), col = 8 * bj + lane_col();
      out.set(bi, bj,
              make_float2(apply<Op, Act>(x.x, y.x, s, c, row, col),
                          apply<Op, Act>(x.y, y.y, s, c, row, col + 1)));
    }
}

template <int Op, int Act, class Out, class A>
__device__ __forceinline__ void ew(Out& out, const A& a, float s = 1.f, float c = 0.f) {
  ew<Op, Act>(out, a, a, s, c);
}

template <class Out, class A>
__device__ __forceinline__ void assign(Out& out, const A& a) {
  ew<kCopy, 0>(out, a, a);
}

template <class Out>
__device__ __forceinline__ void fill(Out& out, float value) {
#pragma unroll
  for (int bi = 0; bi < Out::kBR; ++bi)
#pragma unroll
    for (int bj = 0; bj < Out::kBC; ++bj) out.set(bi, bj, make_float2(value, value));
}

// ---------------------------------------------------------------------------------------------
// Reductions by warp shuffles: a row's columns sit on the 4 lanes of a quad, a column's rows on
// the 8 quads.

__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
__device__ __forceinline__ float column_group_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 4);
  v += __shfl_xor_sync(0xffffffffu, v, 8);
  return v + __shfl_xor_sync(0xffffffffu, v, 16);
}

// [R, C] -> [R, 1] (C > 1), or [1, C] -> [1, 1].
template <class Out, class A>
__device__ __forceinline__ void row_sum(Out& out, const A& a) {
#pragma unroll
  for (int bi = 0; bi < A::kBR; ++bi) {
    // Sums start from their first term, not 0.f: IEEE's 0 + x is not x for x = -0, so the
    // compiler keeps every such add (170 a step in the linear backward, Nsight Compute).
    float s = a.get(bi, 0).x + a.get(bi, 0).y;
#pragma unroll
    for (int bj = 1; bj < A::kBC; ++bj) {
      const float2 v = a.get(bi, bj);
      s += v.x + v.y;
    }
    s = quad_sum(s);
    out.set(bi, 0, make_float2(s, s));
  }
}

// [R, C] -> [1, C] (R > 1), or [R, 1] -> [1, 1].
template <class Out, class A>
__device__ __forceinline__ void col_sum(Out& out, const A& a) {
  if constexpr (A::kCols == 1) {  // a column: one value per row, each held by a whole quad
    float s = a.get(0, 0).x;
#pragma unroll
    for (int bi = 1; bi < A::kBR; ++bi) s += a.get(bi, 0).x;
    s = column_group_sum(s);
    out.set(0, 0, make_float2(s, s));
  } else {
#pragma unroll
    for (int bj = 0; bj < A::kBC; ++bj) {
      float2 s = a.get(0, bj);
#pragma unroll
      for (int bi = 1; bi < A::kBR; ++bi) {
        const float2 v = a.get(bi, bj);
        s.x += v.x, s.y += v.y;
      }
      out.set(0, bj, make_float2(column_group_sum(s.x), column_group_sum(s.y)));
    }
  }
}

// [1, N] <-> [N, 1] (a vector changes which lanes hold its entries), and [1, 1].
template <int N>
__device__ __forceinline__ void transpose(PerRow<N>& out, const PerCol<N>& a) {
  // Row 8*bi + r lives in column slot r of block bi: lane r/2 (any row group), element r%2.
#pragma unroll
  for (int bi = 0; bi < PerRow<N>::kBR; ++bi) {
    const int r = lane_row();
    const float x = __shfl_sync(0xffffffffu, a.c[bi].x, r >> 1);
    const float y = __shfl_sync(0xffffffffu, a.c[bi].y, r >> 1);
    out.r[bi] = (r & 1) ? y : x;
  }
}
template <int N>
__device__ __forceinline__ void transpose(PerCol<N>& out, const PerRow<N>& a) {
  // Column 8*bj + 2q + e is row 2q + e of block bj: held by the quad 2q + e.
#pragma unroll
  for (int bj = 0; bj < PerCol<N>::kBC; ++bj) {
    const int c = lane_col();
    out.c[bj] = make_float2(__shfl_sync(0xffffffffu, a.r[bj], 4 * c),
                            __shfl_sync(0xffffffffu, a.r[bj], 4 * (c + 1)));
  }
}
__device__ __forceinline__ void transpose(Scalar& out, const Scalar& a) { out = a; }

// ---------------------------------------------------------------------------------------------
// Tensor-core matmul: out = alpha * op(A) op(B) + beta * D, f32 accumulation. Each operand is
// split into P bf16 parts (x = p0 + p1 + p2, each the bf16 rounding of what is left); the product
// sums the part pairs (i, j) with i + j < max(PA, PB): 1 MMA for exact x exact operands, 2 for
// exact x (2 parts), 3 for 2 x 2 parts (about 2^-16 relative), 6 for 3 x 3 (about f32).

__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
__device__ __forceinline__ float2 unpack_bf16(unsigned u) {
  return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
}
__device__ __forceinline__ unsigned transpose8x8(unsigned u) {
  unsigned r;
  asm("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(r) : "r"(u));
  return r;
}

template <int P>
struct Parts {
  unsigned v[P];
};

// The P bf16 parts of one 8 x 8 block (this lane's two elements), transposed if asked.
template <int P, bool Transpose>
__device__ __forceinline__ Parts<P> split(float2 x, float sign) {
  Parts<P> p;
  x.x *= sign, x.y *= sign;  // exact: folds the matmul's -1 into an operand
#pragma unroll
  for (int i = 0; i < P; ++i) {
    p.v[i] = pack_bf16(x.x, x.y);
    if (i + 1 < P) {
      const float2 back = unpack_bf16(p.v[i]);
      x.x -= back.x, x.y -= back.y;
    }
    if (Transpose) p.v[i] = transpose8x8(p.v[i]);
  }
  return p;
}

template <class T, int R, int C, int Stride>
struct StagedTokens;

// Block (bi, bj) of an operand as P bf16 parts, transposed if asked (the matmul's view).
template <int P, bool Transpose, class X>
__device__ __forceinline__ Parts<P> operand_block(const X& x, int bi, int bj, float sign) {
  return split<P, Transpose>(x.get(bi, bj), sign);
}
// bf16 tokens staged in shared memory are their own single part: one ldmatrix per block, which
// also transposes (.trans), instead of a load, two conversions to f32, a repack and a movmatrix.
// Rows are 16-byte aligned: the stage's row stride and tensor offsets are multiples of 16 bytes.
template <int P, bool Transpose, int R, int C, int Stride>
__device__ __forceinline__ Parts<P> operand_block(const StagedTokens<bf16_t, R, C, Stride>& x,
                                                  int bi, int bj, float sign) {
  if constexpr (P != 1) {
    return split<P, Transpose>(x.get(bi, bj), sign);
  } else {
    Parts<1> p;
    const unsigned row = static_cast<unsigned>(
        __cvta_generic_to_shared(x.base + (8 * bi + (threadIdx.x & 7)) * Stride + 8 * bj));
    if constexpr (Transpose)
      asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];"
                   : "=r"(p.v[0])
                   : "r"(row));
    else
      asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];"
                   : "=r"(p.v[0])
                   : "r"(row));
    if (sign < 0.f) p.v[0] ^= 0x80008000u;  // exact: flips both halves' sign bits
    return p;
  }
}

// Blocks (i, k), i < NI, k < NK, of a matmul operand: out[i][k] = operand_block<P, Transpose>
// of the source block (k, i) if Swap, else (i, k).
template <int P, bool Transpose, bool Swap, int NI, int NK, class X>
__device__ __forceinline__ void operand_blocks(Parts<P> (&out)[NI][NK], const X& x, float sign) {
#pragma unroll
  for (int i = 0; i < NI; ++i)
#pragma unroll
    for (int k = 0; k < NK; ++k)
      out[i][k] = operand_block<P, Transpose>(x, Swap ? k : i, Swap ? i : k, sign);
}
// Staged bf16 tokens as A: four blocks per ldmatrix.x4, lanes 8j..8j+7 addressing the rows of
// block j of an A fragment's 2 x 2 blocks (i, k), (i + 1, k), (i, k + 1), (i + 1, k + 1), so the
// registers come out in the order the MMA takes them. A block's offset is linear in (i, k): a
// lane's address is its block's offset within the group plus a compile-time offset per group.
template <int P, bool Transpose, bool Swap, int NI, int NK, int R, int C, int Stride>
__device__ __forceinline__ void operand_blocks(Parts<P> (&out)[NI][NK],
                                               const StagedTokens<bf16_t, R, C, Stride>& x,
                                               float sign) {
  if constexpr (P != 1 || NI % 2 != 0 || NK % 2 != 0) {
    operand_blocks<P, Transpose, Swap, NI, NK, StagedTokens<bf16_t, R, C, Stride>>(out, x, sign);
  } else {
    constexpr int kRowStep = 8 * Stride, kColStep = 8;  // elements between blocks
    constexpr int kStepI = Swap ? kColStep : kRowStep, kStepK = Swap ? kRowStep : kColStep;
    const int j = lane_id() >> 3;
    const unsigned lane_base = static_cast<unsigned>(__cvta_generic_to_shared(
        x.base + (threadIdx.x & 7) * Stride + (j & 1) * kStepI + (j >> 1) * kStepK));
#pragma unroll
    for (int i = 0; i < NI; i += 2)
#pragma unroll
      for (int k = 0; k < NK; k += 2) {
        const unsigned at = lane_base + 2u * (i * kStepI + k * kStepK);
        unsigned r[4];
        if constexpr (Transpose)
          asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                       : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                       : "r"(at));
        else
          asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                       : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                       : "r"(at));
#pragma unroll
        for (int b = 0; b < 4; ++b)
          out[i + (b & 1)][k + (b >> 1)].v[0] = sign < 0.f ? r[b] ^ 0x80008000u : r[b];
      }
  }
}

// An operand split into bf16 parts ahead of time, for a value that feeds several matmuls
// (codegen emits split_operand at the first use): blocks of the original matrix, transposed if
// Transpose, as operand_block would make them.
template <int P, bool Transpose, int R, int C>
struct SplitOperand {
  static constexpr int kRows = R, kCols = C, kBR = pad16(R) / 8, kBC = pad16(C) / 8;
  Parts<P> block[kBR][kBC];
};
template <int P, bool Transpose, class X>
__device__ __forceinline__ SplitOperand<P, Transpose, X::kRows, X::kCols> split_operand(
    const X& x) {
  SplitOperand<P, Transpose, X::kRows, X::kCols> s;
#pragma unroll
  for (int bi = 0; bi < s.kBR; ++bi)
#pragma unroll
    for (int bj = 0; bj < s.kBC; ++bj) s.block[bi][bj] = split<P, Transpose>(x.get(bi, bj), 1.f);
  return s;
}
// Either view of a split: the parts of x^T's blocks are the parts of x's blocks transposed (the
// rounding is elementwise), so a split made for one view serves the other for one movmatrix a part.
template <int P, bool Transpose, bool Stored, int R, int C>
__device__ __forceinline__ Parts<P> operand_block(const SplitOperand<P, Stored, R, C>& x, int bi,
                                                  int bj, float sign) {
  Parts<P> p = x.block[bi][bj];
#pragma unroll
  for (int i = 0; i < P; ++i) {
    if constexpr (Transpose != Stored) p.v[i] = transpose8x8(p.v[i]);
    // exact: bf16 rounding is symmetric, so the parts of -x are -(the parts of x)
    if (sign < 0.f) p.v[i] ^= 0x80008000u;
  }
  return p;
}

// Part pairs (i, j) with i + j < max(PA, PB): the MMAs one 16 x 8 x 16 product takes.
__host__ __device__ constexpr int part_products(int pa, int pb) {
  int n = 0;
  for (int i = 0; i < pa; ++i)
    for (int j = 0; j < pb; ++j) n += i + j < (pa > pb ? pa : pb) ? 1 : 0;
  return n;
}

__device__ __forceinline__ void mma_bf16(float (&acc)[4], unsigned a0, unsigned a1, unsigned a2,
                                         unsigned a3, unsigned b0, unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// tf32 products (m16n8k8). The contraction index is permuted inside each 8-wide block (the
// fragment's k = q and q + 4 take columns 2q and 2q + 1), the same way for A and B, so both
// operands come straight from the accumulator layout; a transposed block costs 4 shuffles.
__device__ __forceinline__ float2 transpose8x8(float2 x) {
  const int g = lane_row(), q = lane_col() / 2;
  const int src0 = 4 * (2 * q) + g / 2, src1 = 4 * (2 * q + 1) + g / 2;
  const float a0 = __shfl_sync(0xffffffffu, x.x, src0), b0 = __shfl_sync(0xffffffffu, x.y, src0);
  const float a1 = __shfl_sync(0xffffffffu, x.x, src1), b1 = __shfl_sync(0xffffffffu, x.y, src1);
  return make_float2((g & 1) ? b0 : a0, (g & 1) ? b1 : a1);
}

__device__ __forceinline__ unsigned to_tf32(float x) {
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

template <bool Transpose>
__device__ __forceinline__ uint2 tf32_block(float2 x, float sign) {
  if (Transpose) x = transpose8x8(x);
  return make_uint2(to_tf32(sign * x.x), to_tf32(sign * x.y));
}

__device__ __forceinline__ void mma_tf32(float (&acc)[4], uint2 top, uint2 bottom, uint2 b) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
      : "r"(top.x), "r"(bottom.x), "r"(top.y), "r"(bottom.y), "r"(b.x), "r"(b.y));
}

struct NoAddend {
  static constexpr int kRows = 0, kCols = 0;
  __device__ __forceinline__ float2 get(int, int) const { return make_float2(0.f, 0.f); }
};

// An addend that is ready before the matmul's operands (codegen decides, from the step's order):
// the accumulators start from beta * D, so no pass over the product adds it afterwards. An addend
// computed after the operands is added after the MMAs instead, so that they need not wait for it.
template <class D>
struct Seed {
  static constexpr int kRows = D::kRows, kCols = D::kCols;
  const D& d;
  __device__ __forceinline__ float2 get(int bi, int bj) const { return d.get(bi, bj); }
};
template <class D>
__device__ __forceinline__ Seed<D> seed(const D& d) {
  return {d};
}
template <class D>
inline constexpr bool kSeeds = false;
template <class D>
inline constexpr bool kSeeds<Seed<D>> = true;

// The accumulator of the 16 x 8 product for blocks (bi, n) and (bi + 1, n), before the MMAs.
template <class D>
__device__ __forceinline__ void start_product(float (&acc)[4], const D& d, float beta, int bi,
                                              int n) {
  if constexpr (kSeeds<D>) {
    const float2 dt = d.get(bi, n), db = d.get(bi + 1, n);
    acc[0] = beta * dt.x, acc[1] = beta * dt.y, acc[2] = beta * db.x, acc[3] = beta * db.y;
  } else {
    acc[0] = acc[1] = acc[2] = acc[3] = 0.f;
  }
}
// The accumulator into blocks (bi, n) and (bi + 1, n) of out, plus beta * D if not seeded.
template <class Out, class D>
__device__ __forceinline__ void store_product(Out& out, const D& d, float beta, int bi, int n,
                                              const float (&acc)[4]) {
  float2 top = make_float2(acc[0], acc[1]), bottom = make_float2(acc[2], acc[3]);
  if constexpr (D::kRows != 0 && !kSeeds<D>) {
    const float2 dt = d.get(bi, n), db = d.get(bi + 1, n);
    top.x += beta * dt.x, top.y += beta * dt.y;
    bottom.x += beta * db.x, bottom.y += beta * db.y;
  }
  out.set(bi, n, top);
  out.set(bi + 1, n, bottom);
}

template <bool TA, bool TB, int M, int N, int Kd, class Out, class A, class B, class D>
__device__ __forceinline__ void matmul_tf32(Out& out, const A& a, const B& b, float alpha,
                                            const D& d, float beta) {
  constexpr int MB = pad16(M) / 8, NB = pad16(N) / 8, KB = pad16(Kd) / 8;
  uint2 ap[MB][KB];
#pragma unroll
  for (int i = 0; i < MB; ++i)
#pragma unroll
    for (int k = 0; k < KB; ++k) ap[i][k] = tf32_block<TA>(TA ? a.get(k, i) : a.get(i, k), alpha);
#pragma unroll
  for (int n = 0; n < NB; ++n) {
    uint2 bp[KB];
#pragma unroll
    for (int k = 0; k < KB; ++k) bp[k] = tf32_block<!TB>(TB ? b.get(n, k) : b.get(k, n), 1.f);
#pragma unroll
    for (int mi = 0; mi < MB / 2; ++mi) {
      float acc[4];
      start_product(acc, d, beta, 2 * mi, n);
#pragma unroll
      for (int k = 0; k < KB; ++k) mma_tf32(acc, ap[2 * mi][k], ap[2 * mi + 1][k], bp[k]);
      store_product(out, d, beta, 2 * mi, n, acc);
    }
  }
}

template <int PA, int PB, bool TA, bool TB, int M, int N, int Kd, class Out, class A, class B,
          class D>
__device__ __forceinline__ void matmul_bf16(Out& out, const A& a, const B& b, float alpha,
                                            const D& d, float beta) {
  constexpr int MB = pad16(M) / 8, NB = pad16(N) / 8, KB = pad16(Kd) / 8;
  constexpr int kMaxParts = PA > PB ? PA : PB;
  // A long chain of dependent MMAs into one accumulator waits out each one's latency: with 4 or
  // more and fewer than 4 independent accumulators, two accumulators per output take turns.
  constexpr int kChains = KB / 2 * part_products(PA, PB) >= 4 && NB * MB / 2 < 4 ? 2 : 1;
  // A's parts for every block of op(A): block (i, k) of A^T is the transpose of block (k, i).
  Parts<PA> ap[MB][KB];
  operand_blocks<PA, TA, TA>(ap, a, alpha);
#pragma unroll
  for (int n = 0; n < NB; ++n) {
    // The B operand wants blocks of op(B)^T: B itself when TB, else B's blocks transposed.
    // (B stays one ldmatrix per block: grouping its loads measured slower in the backward.)
    Parts<PB> bp[KB];
#pragma unroll
    for (int k = 0; k < KB; ++k) bp[k] = operand_block<PB, !TB>(b, TB ? n : k, TB ? k : n, 1.f);
#pragma unroll
    for (int mi = 0; mi < MB / 2; ++mi) {
      float acc[kChains][4] = {};
      start_product(acc[0], d, beta, 2 * mi, n);
      int turn = 0;
#pragma unroll
      for (int ki = 0; ki < KB / 2; ++ki)
#pragma unroll
        for (int i = 0; i < PA; ++i)
#pragma unroll
          for (int j = 0; j < PB; ++j)
            if (i + j < kMaxParts) {
              mma_bf16(acc[turn % kChains], ap[2 * mi][2 * ki].v[i], ap[2 * mi + 1][2 * ki].v[i],
                       ap[2 * mi][2 * ki + 1].v[i], ap[2 * mi + 1][2 * ki + 1].v[i],
                       bp[2 * ki].v[j], bp[2 * ki + 1].v[j]);
              ++turn;
            }
      if constexpr (kChains > 1)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[0][e] += acc[1][e];
      store_product(out, d, beta, 2 * mi, n, acc[0]);
    }
  }
}

// out = alpha * op(A) op(B) + beta * D. M, N, Kd: the product's sizes as this warp holds them.
// PA, PB: bf16 parts per operand, or 0 for tf32 products. alpha must be +1 or -1 (autodiff and
// the step builder only emit those): its sign goes into A, so no scaling pass is needed.
template <int PA, int PB, bool TA, bool TB, int M, int N, int Kd, class Out, class A, class B,
          class D>
__device__ __forceinline__ void matmul(Out& out, const A& a, const B& b, float alpha, const D& d,
                                       float beta) {
  if constexpr (PA == 0 || PB == 0)
    matmul_tf32<TA, TB, M, N, Kd>(out, a, b, alpha, d, beta);
  else
    matmul_bf16<PA, PB, TA, TB, M, N, Kd>(out, a, b, alpha, d, beta);
}

// ---------------------------------------------------------------------------------------------
// Mini-batch I/O. Rows at or past `valid` (and padding rows) read as zero and are never written:
// a zero token with zero learning rate changes nothing, so short mini-batches need no other code.

template <class T>
__device__ __forceinline__ float2 load_pair(const T* p, bool paired) {
  if constexpr (sizeof(T) == 4) {
    if (paired) return *reinterpret_cast<const float2*>(p);
  } else {
    if (paired) {
      const unsigned u = *reinterpret_cast<const unsigned*>(p);
      T lo, hi;
      lo.bits = static_cast<unsigned short>(u & 0xffffu);
      hi.bits = static_cast<unsigned short>(u >> 16);
      return make_float2(to_float(lo), to_float(hi));
    }
  }
  return make_float2(to_float(p[0]), to_float(p[1]));
}

// R x C tokens staged in shared memory (a mini-batch copied ahead of its step by the driver),
// rows Stride elements apart; rows past the mini-batch's end were zero-filled. Read-only.
template <class T, int R, int C, int Stride>
struct StagedTokens {
  static constexpr int kRows = R, kCols = C, kBR = pad16(R) / 8, kBC = pad16(C) / 8;
  const T* base;
  __device__ __forceinline__ float2 get(int bi, int bj) const {
    return load_pair(base + (8 * bi + lane_row()) * Stride + 8 * bj + lane_col(), true);
  }
};

template <class T>
__device__ __forceinline__ bool pairs_aligned(const T* p, long long stride) {
  return ((reinterpret_cast<unsigned long long>(p) | (stride * sizeof(T))) % (2 * sizeof(T))) == 0;
}

// Two values rounded to a 16-bit type and packed, x.x in the low half: one instruction on
// sm_80 and later.
template <class T>
__device__ __forceinline__ unsigned pack_pair(float2 x);
template <>
__device__ __forceinline__ unsigned pack_pair<bf16_t>(float2 x) {
#if __CUDA_ARCH__ >= 800
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(x.y), "f"(x.x));
  return r;
#else
  return from_float<bf16_t>(x.x).bits | (static_cast<unsigned>(from_float<bf16_t>(x.y).bits) << 16);
#endif
}
template <>
__device__ __forceinline__ unsigned pack_pair<half_t>(float2 x) {
#if __CUDA_ARCH__ >= 800
  unsigned r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(x.y), "f"(x.x));
  return r;
#else
  return from_float<half_t>(x.x).bits | (static_cast<unsigned>(from_float<half_t>(x.y).bits) << 16);
#endif
}

template <class T, class Out>
__device__ __forceinline__ void load_tokens(Out& out, const T* src, long long stride, int valid) {
  const bool paired = pairs_aligned(src, stride);
#pragma unroll
  for (int bi = 0; bi < Out::kBR; ++bi) {
    const int row = 8 * bi + lane_row();
#pragma unroll
    for (int bj = 0; bj < Out::kBC; ++bj)
      out.set(bi, bj,
              row < valid ? load_pair(src + row * stride + 8 * bj + lane_col(), paired)
                          : make_float2(0.f, 0.f));
  }
}

template <class T, class V>
__device__ __forceinline__ void store_tokens(T* dst, long long stride, const V& v, int valid) {
  const bool paired = pairs_aligned(dst, stride);
#pragma unroll
  for (int bi = 0; bi < V::kBR; ++bi) {
    const int row = 8 * bi + lane_row();
    if (row >= valid) continue;
#pragma unroll
    for (int bj = 0; bj < V::kBC; ++bj) {
      T* p = dst + row * stride + 8 * bj + lane_col();
      const float2 x = v.get(bi, bj);
      if constexpr (sizeof(T) == 4) {
        if (paired) {
          *reinterpret_cast<float2*>(p) = x;
          continue;
        }
      } else {
        if (paired) {
          *reinterpret_cast<unsigned*>(p) = pack_pair<T>(x);
          continue;
        }
      }
      p[0] = from_float<T>(x.x);
      p[1] = from_float<T>(x.y);
    }
  }
}

// [1, N] from src[0, valid) (per-token values such as lr), zero after.
template <int N>
__device__ __forceinline__ void load_row(PerCol<N>& out, const float* src, int valid) {
#pragma unroll
  for (int bj = 0; bj < PerCol<N>::kBC; ++bj) {
    const int col = 8 * bj + lane_col();
    out.c[bj] = make_float2(col < valid ? src[col] : 0.f, col + 1 < valid ? src[col + 1] : 0.f);
  }
}

// [N, 1] from src[0, valid), zero after.
template <int N>
__device__ __forceinline__ void load_column(PerRow<N>& out, const float* src, int valid) {
#pragma unroll
  for (int bi = 0; bi < PerRow<N>::kBR; ++bi) {
    const int row = 8 * bi + lane_row();
    out.r[bi] = row < valid ? src[row] : 0.f;
  }
}

__device__ __forceinline__ void load_scalar(Scalar& out, const float* src) { out.s = *src; }

template <int N>
__device__ __forceinline__ void store_row(float* dst, const PerCol<N>& v, int valid,
                                          long long stride) {
  if (lane_row() != 0) return;
#pragma unroll
  for (int bj = 0; bj < PerCol<N>::kBC; ++bj) {
    const int col = 8 * bj + lane_col();
    if (col < valid) dst[col * stride] = v.c[bj].x;
    if (col + 1 < valid) dst[(col + 1) * stride] = v.c[bj].y;
  }
}

// Accumulators of shared gradients (tau, gamma, beta): registers across steps, one atomic pass
// at the end.
template <int N>
__device__ __forceinline__ void add_at_row(PerRow<N>& acc, const Scalar& v, int row) {
#pragma unroll
  for (int bi = 0; bi < PerRow<N>::kBR; ++bi)
    if (8 * bi + lane_row() == row) acc.r[bi] += v.s;
}

template <int N>
__device__ __forceinline__ void atomic_add_column(float* dst, const PerRow<N>& v, int n) {
  if (lane_col() != 0) return;
#pragma unroll
  for (int bi = 0; bi < PerRow<N>::kBR; ++bi) {
    const int row = 8 * bi + lane_row();
    if (row < n) atomicAdd(dst + row, v.r[bi]);
  }
}

template <int N>
__device__ __forceinline__ void atomic_add_row(float* dst, const PerCol<N>& v) {
  if (lane_row() != 0) return;
#pragma unroll
  for (int bj = 0; bj < PerCol<N>::kBC; ++bj) {
    const int col = 8 * bj + lane_col();
    atomicAdd(dst + col, v.c[bj].x);
    atomicAdd(dst + col + 1, v.c[bj].y);
  }
}

// dst (rows Stride floats apart) += v, for a state adjoint summed over the batch.
template <int Stride, class V>
__device__ __forceinline__ void atomic_add_tile(float* dst, const V& v) {
#pragma unroll
  for (int bi = 0; bi < V::kBR; ++bi)
#pragma unroll
    for (int bj = 0; bj < V::kBC; ++bj) {
      const float2 x = v.get(bi, bj);
      float* p = dst + (8 * bi + lane_row()) * Stride + 8 * bj + lane_col();
      atomicAdd(p, x.x);
      atomicAdd(p + 1, x.y);
    }
}

// ---------------------------------------------------------------------------------------------
// Teams of several warps. A team's matrices with feature (or hidden) columns are split by
// columns: warp `rank` holds columns [rank * C / NW, (rank + 1) * C / NW) as a tile of that width;
// everything else is replicated. Sums over split columns, and products whose contraction runs
// over split columns, are completed through the team's scratch memory, with one named barrier
// over the team's warps (never the CTA): every reduction has its own scratch slot in a step, so
// a slot is rewritten only after a later barrier has proven every warp done reading it.

struct Team {
  int rank;        // this warp's index in the team
  int barrier;     // named barrier id (1..15; 0 is __syncthreads)
  int threads;     // 32 * warps
  float* scratch;  // the team's reduction slots
  __device__ __forceinline__ void sync() const {
    asm volatile("bar.sync %0, %1;" ::"r"(barrier), "r"(threads) : "memory");
  }
};

// Asks L2 for [p, p + floats) without waiting: a checkpoint that the next step loads then comes
// from L2, not from HBM. sm_90: one bulk prefetch by one thread (16-byte granules; the start
// rounded down, a tail under 16 bytes left out). Before: one 128-byte line per thread in turn.
__device__ __forceinline__ void prefetch_l2(const float* p, long long floats, const Team& t) {
  const unsigned long long begin = reinterpret_cast<unsigned long long>(p);
  const unsigned long long end = reinterpret_cast<unsigned long long>(p + floats);
#if __CUDA_ARCH__ >= 900
  if (t.rank == 0 && lane_id() == 0) {
    const unsigned long long start = begin & ~15ull;
    const unsigned bytes = static_cast<unsigned>((end - start) & ~15ull);
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(start), "r"(bytes) : "memory");
  }
#else
  for (unsigned long long line = (begin & ~127ull) + 128ull * (t.rank * 32 + lane_id()); line < end;
       line += 128ull * t.threads)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(line));
#endif
}

// Row sums over split columns: each warp posts its partial sums to a region of the slot (one
// float per row and warp; a Scalar takes 16 per warp), one barrier, then every warp adds them
// up. Several independent sums (sum g and sum g * xhat in LayerNorm's backward) share one
// barrier: team_sums(t, slot, a, b, ...) posts them all and waits once.
template <int NW, int R>
__device__ __forceinline__ constexpr int region_floats(const PerRow<R>&) {
  return NW * pad16(R);
}
template <int NW>
__device__ __forceinline__ constexpr int region_floats(const Scalar&) {
  return NW * 16;
}
template <int R>
__device__ __forceinline__ void post_partial(const PerRow<R>& v, const Team& t, float* base) {
  if (lane_col() == 0)
#pragma unroll
    for (int bi = 0; bi < PerRow<R>::kBR; ++bi)
      base[t.rank * pad16(R) + 8 * bi + lane_row()] = v.r[bi];
}
__device__ __forceinline__ void post_partial(const Scalar& v, const Team& t, float* base) {
  if (lane_id() == 0) base[16 * t.rank] = v.s;
}
template <int NW, int R>
__device__ __forceinline__ void collect_partials(PerRow<R>& v, const float* base) {
#pragma unroll
  for (int bi = 0; bi < PerRow<R>::kBR; ++bi) {
    float s = base[8 * bi + lane_row()];
#pragma unroll
    for (int w = 1; w < NW; ++w) s += base[w * pad16(R) + 8 * bi + lane_row()];
    v.r[bi] = s;
  }
}
template <int NW>
__device__ __forceinline__ void collect_partials(Scalar& v, const float* base) {
  float s = base[0];
#pragma unroll
  for (int w = 1; w < NW; ++w) s += base[16 * w];
  v.s = s;
}

// [R, 1] partial row sums (or [1, 1] partials) of every warp -> their totals, in every warp:
// one value, or several independent ones through one barrier.
template <int NW>
__device__ __forceinline__ void post_partials(const Team&, float*) {}
template <int NW, class V, class... Rest>
__device__ __forceinline__ void post_partials(const Team& t, float* base, const V& v,
                                              const Rest&... rest) {
  post_partial(v, t, base);
  post_partials<NW>(t, base + region_floats<NW>(v), rest...);
}
template <int NW>
__device__ __forceinline__ void collect_all(const float*) {}
template <int NW, class V, class... Rest>
__device__ __forceinline__ void collect_all(const float* base, V& v, Rest&... rest) {
  collect_partials<NW>(v, base);
  collect_all<NW>(base + region_floats<NW>(v), rest...);
}
// The two halves of an exchange, apart so that independent exchanges share one barrier (the
// lowering's exchange groups: each member posts where it is computed, the last one syncs, then
// every member collects).
template <int NW, class... V>
__device__ __forceinline__ void post_sums(const Team& t, int slot, const V&... v) {
  post_partials<NW>(t, t.scratch + slot, v...);
}
template <int NW, class... V>
__device__ __forceinline__ void collect_sums(const Team& t, int slot, V&... v) {
  collect_all<NW>(t.scratch + slot, v...);
}
template <int NW, class... V>
__device__ __forceinline__ void team_sums(const Team& t, int slot, V&... v) {
  post_sums<NW>(t, slot, v...);
  t.sync();
  collect_sums<NW>(t, slot, v...);
}

// LayerNorm's statistics through one barrier: sum = the row sums of X, m2 = the row sums of
// (X - sum / C)^2 over all C = NW * X::kCols columns. Each warp posts its slice's sum and its
// squares about its own slice mean; the slices combine exactly as in Chan et al.'s pairwise
// variance: m2 = sum_w (m2_w + Cw (mean_w - mean)^2). As stable as the two-pass form it replaces
// (which needed a barrier for the mean before the squares).
template <int NW, int R, class X>
__device__ __forceinline__ void post_mean_m2(PerRow<R>& sum, PerRow<R>& m2, const X& x,
                                             const Team& t, int slot) {
  constexpr int kCw = X::kCols;
  static_assert(kCw % 16 == 0, "split columns come in slices of 16");
  row_sum(sum, x);
#pragma unroll
  for (int bi = 0; bi < PerRow<R>::kBR; ++bi) {
    const float mean = sum.r[bi] * (1.f / kCw);
    float q;
#pragma unroll
    for (int bj = 0; bj < X::kBC; ++bj) {
      const float2 v = x.get(bi, bj);
      const float a = v.x - mean, b = v.y - mean;
      q = bj == 0 ? a * a + b * b : q + (a * a + b * b);
    }
    m2.r[bi] = quad_sum(q);  // this warp's squares about its own slice mean
  }
  post_partial(sum, t, t.scratch + slot);
  post_partial(m2, t, t.scratch + slot + region_floats<NW>(sum));
}
// kCw: the columns of each warp's slice.
template <int NW, int kCw, int R>
__device__ __forceinline__ void collect_mean_m2(PerRow<R>& sum, PerRow<R>& m2, const Team& t,
                                                int slot) {
  const float* sums = t.scratch + slot;
  const float* squares = sums + region_floats<NW>(sum);
#pragma unroll
  for (int bi = 0; bi < PerRow<R>::kBR; ++bi) {
    float part[NW], total;
#pragma unroll
    for (int w = 0; w < NW; ++w) {
      part[w] = sums[w * pad16(R) + 8 * bi + lane_row()];
      total = w == 0 ? part[0] : total + part[w];
    }
    const float mean = total * (1.f / (NW * kCw));
    float q;
#pragma unroll
    for (int w = 0; w < NW; ++w) {
      const float d = part[w] * (1.f / kCw) - mean;
      const float term = squares[w * pad16(R) + 8 * bi + lane_row()] + kCw * d * d;
      q = w == 0 ? term : q + term;
    }
    sum.r[bi] = total;
    m2.r[bi] = q;
  }
}
template <int NW, int R, class X>
__device__ __forceinline__ void row_mean_m2(PerRow<R>& sum, PerRow<R>& m2, const X& x,
                                            const Team& t, int slot) {
  post_mean_m2<NW>(sum, m2, x, t, slot);
  t.sync();
  collect_mean_m2<NW, X::kCols>(sum, m2, t, slot);
}

// Products whose contraction runs over split columns: every warp posts its partial [R, C]
// product, then collects the total (collect_sum: every column, a replicated result) or its own
// column slice of it (collect_sum_scatter). The partials are added in warp order in every warp,
// so a replicated total is the same in all of them.
template <int NW, int R, int C>
__device__ __forceinline__ void post_sum(const Tile<R, C>& partial, const Team& t, int slot) {
  SmemTile<R, C> mine{t.scratch + slot + t.rank * smem_floats<R, C>()};
  assign(mine, partial);
}
template <int NW, int R, int C, class Out>
__device__ __forceinline__ void collect_columns(Out& out, const Team& t, int slot, int col0) {
  constexpr int kFloats = smem_floats<R, C>();
#pragma unroll
  for (int w = 0; w < NW; ++w) {
    // Columns [col0, ...) of warp w's partial: a tile view with the full row stride.
    const SmemTile<R, C> part{t.scratch + slot + w * kFloats + col0};
#pragma unroll
    for (int bi = 0; bi < Out::kBR; ++bi)
#pragma unroll
      for (int bj = 0; bj < Out::kBC; ++bj) {
        const float2 b = part.get(bi, bj);
        if (w == 0) {  // the first partial as it is (row_sum says why)
          out.set(bi, bj, b);
        } else {
          const float2 a = out.get(bi, bj);
          out.set(bi, bj, make_float2(a.x + b.x, a.y + b.y));
        }
      }
  }
}
template <int NW, int R, int C, class Out>
__device__ __forceinline__ void collect_sum(Out& out, const Team& t, int slot) {
  static_assert(Out::kCols == C, "a replicated total has every column");
  collect_columns<NW, R, C>(out, t, slot, 0);
}
template <int NW, int R, int C, class Out>
__device__ __forceinline__ void collect_sum_scatter(Out& out, const Team& t, int slot) {
  static_assert(Out::kCols == C / NW, "the slice is C / NW columns wide");
  collect_columns<NW, R, C>(out, t, slot, t.rank * (C / NW));
}

// Every warp's partial [R, C] product -> the total, in every warp (a replicated result).
template <int NW, int R, int C>
__device__ __forceinline__ void team_sum(Tile<R, C>& v, const Team& t, int slot) {
  post_sum<NW>(v, t, slot);
  t.sync();
  collect_sum<NW, R, C>(v, t, slot);
}

// Every warp's partial [R, C] product -> this warp's column slice of the total.
template <int NW, int R, int C, class Out>
__device__ __forceinline__ void team_sum_scatter(Out& out, const Tile<R, C>& partial, const Team& t,
                                                 int slot) {
  post_sum<NW>(partial, t, slot);
  t.sync();
  collect_sum_scatter<NW, R, C>(out, t, slot);
}

}  // namespace tttc::tile
