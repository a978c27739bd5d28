// decode.cuh: the token-by-token decode kernel of docs/decode.md. A (row, head) is owned by
// kSplit CTAs (a thread-block cluster on sm_90; one CTA when kSplit = 1), each owning a slice of
// theta and A, so that every state element is read and written by exactly one CTA: odd layers
// are split by columns (CTA `rank` owns W_l[:, rank N/C ...] and needs no exchange), even layers
// by rows (W_l[rank M/C ..., :], partial sums all-reduced over the cluster through distributed
// shared memory, in rank order); every b_l by entries [rank N/C, (rank+1) N/C). See Geo below.
// With kStage, a CTA copies its slices of theta and A into shared memory once per launch
// (asynchronous 16-byte copies, all in flight at once), runs every pass on that copy and writes
// A (and theta, when it changed) back once: 12 S bytes per step and head instead of re-reading
// theta for the forward, the backward and the query path.
// Per token: the inner model on k at theta, the LayerNorm loss gradient (every CTA,
// redundantly), the layers' backward, then one fused pass per layer that adds the token's
// rank-1 gradient to A and evaluates the query path with theta - tau_i A (at a mini-batch's last
// token it folds A into theta instead). The decode state lives in a pool in global memory (f32),
// addressed through per-row slot indices, and the position lives there too: a launch needs no
// host-side knowledge of where each row stands, so a step can be captured in a CUDA graph once
// and replayed. Every sum has a fixed order, so replays are bit-identical. Generic over depth,
// widths, activation and element type through the generated `Cfg`: kF, kK, kDepth, kHidden,
// kThreads, kAct, kEps, kS (state floats), kSplit (CTAs per head that work), kCtasPerHead (CTAs
// per head in the grid, >= kSplit: the extra ones exit at once; the sm_80 build of a kernel
// split on sm_90), kStage, kMinBlocks (the launch bounds' CTAs per SM) and kSmemFloats (dynamic
// shared memory, checked below).
#pragma once

#include "tttc/numeric.cuh"
#include "tttc/params.h"

namespace tttc {
namespace decode {

// Thread-block clusters (sm_90) and asynchronous copies (sm_80), as inline PTX so that the
// template needs no CUDA headers under NVRTC. The host build (tests/decode_host) defines
// TTTC_DECODE_HOST and provides these, emulating a cluster with std::threads.
#ifndef TTTC_DECODE_HOST
// Every thread of every CTA of the cluster arrives; the default semantics are release on
// arrive and acquire on wait, so shared-memory writes before the barrier are visible to the
// cluster's reads after it.
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.aligned;\n\tbarrier.cluster.wait.aligned;" ::: "memory");
}
// The generic address of the same shared-memory location in CTA `rank` of the cluster.
__device__ __forceinline__ const float* map_rank(const float* p, int rank) {
  unsigned long long r;
  asm volatile("mapa.u64 %0, %1, %2;" : "=l"(r) : "l"(p), "r"(rank));
  return reinterpret_cast<const float*>(r);
}
// 16 bytes global -> shared at smem[offset] without staging in registers (all of a CTA's copies
// in flight). The shared-window address of `smem` is not volatile asm, so that the copies of one
// piece share one conversion and differ by immediate offsets.
__device__ __forceinline__ void copy16_async(const float* smem, int offset, const float* gmem) {
  unsigned s;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(s) : "l"(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s + 4 * offset), "l"(gmem)
               : "memory");
}
__device__ __forceinline__ void copy_async_wait() {
  asm volatile("cp.async.wait_all;" ::: "memory");
}
#endif

// Widths through the inner model: d_0 = d_L = f, d_l = hidden in between.
template <class Cfg>
__host__ __device__ constexpr int width(int l) {
  return l == 0 || l == Cfg::kDepth ? Cfg::kF : Cfg::kHidden;
}
// Offset of W_l (1-based) in the packed state W1, b1, W2, b2, ...; b_l follows W_l.
template <class Cfg>
__host__ __device__ constexpr long long weight_offset(int l) {
  long long o = 0;
  for (int j = 1; j < l; ++j) o += 1LL * width<Cfg>(j - 1) * width<Cfg>(j) + width<Cfg>(j);
  return o;
}
// Whether layer l (1..L) is split by columns over the kSplit CTAs of a head (see Geo).
template <class Cfg>
__host__ __device__ constexpr bool column_split(int l) {
  return Cfg::kSplit > 1 && l % 2 == 1;
}
// Whether layer l keeps only the CTA's own entries of its vectors (x_l, z_l, G_l, the query
// path's): a column-split layer below the last, when staged (shared memory then decides how
// many CTAs share an SM; unstaged kernels are held back by registers, which the shifted bases
// cost some of). Its vectors are addressed through a base shifted back by the CTA's first
// column (vec), so that code indexes by the global column.
template <class Cfg>
__host__ __device__ constexpr bool local_vectors(int l) {
  return Cfg::kStage && l >= 1 && l < Cfg::kDepth && column_split<Cfg>(l);
}
template <class Cfg>
__host__ __device__ constexpr int kept_width(int l) {
  return local_vectors<Cfg>(l) ? width<Cfg>(l) / Cfg::kSplit : width<Cfg>(l);
}
// Stacked per-layer vectors: x_0..x_{L-1} at x_offset(l); z_l and G_l (l = 1..L) at
// x_offset(l) - f in their own stacks (the two stacks have the same total size).
template <class Cfg>
__host__ __device__ constexpr int x_offset(int l) {
  int o = 0;
  for (int j = 0; j < l; ++j) o += kept_width<Cfg>(j);
  return o;
}
// The query path's buffers hold any layer's kept entries.
template <class Cfg>
__host__ __device__ constexpr int query_width() {
  int w = 0;
  for (int l = 1; l <= Cfg::kDepth; ++l) w = kept_width<Cfg>(l) > w ? kept_width<Cfg>(l) : w;
  return w;
}
// A cluster exchange buffer holds a row-split layer's whole output (the all-reduce of its
// partial sums) or the rows of the backward through a column-split layer above the first.
template <class Cfg>
__host__ __device__ constexpr int exchange_width() {
  int w = 0;
  for (int l = 1; l <= Cfg::kDepth; ++l) {
    const int need = Cfg::kSplit == 1       ? 0
                     : column_split<Cfg>(l) ? (l > 1 ? width<Cfg>(l - 1) : 0)
                                            : width<Cfg>(l);
    w = need > w ? need : w;
  }
  return w;
}
// Partial sums a column-parallel pass over NW columns leaves in the reduction scratch (see
// Columns: one per warp and column when the column groups tile a warp, else one per row group;
// none when every thread has a column group of its own).
__host__ __device__ constexpr int partial_floats(int NT, int NW) {
  return NW / 4 >= NT ? 0 : (32 % (NW / 4) == 0 ? NT / 32 : NT / (NW / 4)) * NW;
}
template <class Cfg>
__host__ __device__ constexpr int reduction_floats() {
  int w = 0;
  for (int l = 1; l <= Cfg::kDepth; ++l) {
    const int nw = column_split<Cfg>(l) ? width<Cfg>(l) / Cfg::kSplit : width<Cfg>(l);
    const int need = partial_floats(Cfg::kThreads, nw);
    w = need > w ? need : w;
  }
  return w;
}

// The CTA's slice of the packed state (see the top), as staged in shared memory: layer l's part
// of W (M N / C floats, dense) then its b entries, layers in order, kSlice floats in all.
// Offset of layer l's part of W in the slice:
template <class Cfg>
__host__ __device__ constexpr int slice_offset(int l) {
  int o = 0;
  for (int j = 1; j < l; ++j)
    o += width<Cfg>(j - 1) * width<Cfg>(j) / Cfg::kSplit + width<Cfg>(j) / Cfg::kSplit;
  return o;
}

// Shared memory: x, z, G stacks, q, v, two query-path buffers, two cluster-exchange buffers
// (partial sums that the other CTAs of the cluster read), the reduction scratch, then (kStage)
// the CTA's slices of theta and A; each sized to what its users need (so that 6 CTAs of mlp2's
// decode fit an SM). Every part is a multiple of 4 floats,
// so the slices are 16-byte aligned; the layout is the same in every CTA (the cluster reads a
// buffer at the same offset in another CTA).
template <class Cfg>
struct Smem {
  static constexpr int kStack = x_offset<Cfg>(Cfg::kDepth);
  static constexpr int kSlice = slice_offset<Cfg>(Cfg::kDepth + 1);
  static constexpr int kX = 0, kZ = kStack, kG = 2 * kStack, kQ = 3 * kStack, kV = kQ + Cfg::kF;
  static constexpr int kBar0 = kV + Cfg::kF, kBar1 = kBar0 + query_width<Cfg>();
  static constexpr int kPart0 = kBar1 + query_width<Cfg>();
  static constexpr int kPart1 = kPart0 + exchange_width<Cfg>();
  static constexpr int kRed = kPart1 + exchange_width<Cfg>();
  static constexpr int kStage = kRed + reduction_floats<Cfg>();
  static constexpr int kFloats = kStage + (Cfg::kStage ? 2 * kSlice : 0);
  static_assert(kFloats <= Cfg::kSmemFloats, "codegen's decode shared-memory size is too small");
  static_assert(kRed % 4 == 0 && kStage % 4 == 0, "float4 scratch and slices");
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// How a column-parallel pass spreads over NT threads: one float4 of columns (a column group) per
// thread, and when there are fewer column groups than threads the rows split R ways. If the
// column groups tile a warp (CG a power of two <= 32) the row groups of one warp are summed with
// shuffles first, so only one partial per warp and column meets in shared memory.
template <int NT, int NW>
struct Columns {
  static constexpr int CG = NW / 4;
  static constexpr bool kWide = CG >= NT;  // a thread per column group, all rows, no partials
  static constexpr int R = kWide ? 1 : NT / CG;
  static constexpr bool kShuffle = !kWide && 32 % CG == 0;
  static constexpr int P = kWide ? 1 : kShuffle ? NT / 32 : R;  // partials per column
  static_assert(kWide || P * NW == partial_floats(NT, NW), "decode: reduction scratch size");
};

// One layer's share of the CTA, column-parallel over the outputs n (coalesced float4 reads of
// the row-major W, row stride LDW; see Columns), over ML rows and the NW columns
// [ncol0, ncol0 + NW) (a row-split layer: its M / C rows, all N columns; a column-split layer:
// all M rows, its N / C columns; kSplit = 1: all of W):
//   y[n] = sum_m xin[m] E[m, n] + e_b[n],  ya[n] = act(y[n]) (each written when non-null), with
//   E = W, e_b = b                                          (kUpdate false: the state at theta)
//   E = W - tau (AW + lr xk^T G), e_b = b - tau (Ab + lr G)  (kUpdate true), where the new A is
//   written back, or at the mini-batch's end (commit) E is written to W and A is zeroed.
// W, AW: the CTA's part (xin, xk: offset to its rows); bias, Ab: its entries [n0, n0 + N / C);
// y, ya, G are indexed by the global column n. Partial sums meet in `red` (4 NT floats) and are
// added in a fixed order; then one thread per column adds the bias and applies the activation.
// kReduce (a row-split layer): each CTA's partial sum (plus its bias entries) goes to `part`,
// and after a cluster barrier every CTA adds the C partials in rank order: the same y in every
// CTA, and no sum depends on timing (CUDA-graph replays equal eager launches bit for bit).
// Otherwise y, ya get the CTA's columns. W, AW: 16-byte aligned (the runtime checks the pool;
// every offset in the packed state and in the slice is a multiple of 4 floats).
template <int NT, int C, int ML, int NW, int LDW, int N, int Act, bool kUpdate, bool kReduce,
          bool kSmem>
__device__ __forceinline__ void layer_pass(float* y, float* ya, const float* xin, float* W,
                                           float* bias, float* AW, float* Ab, const float* xk,
                                           const float* G, float lr, float tau, bool commit,
                                           float* red, float* part, int ncol0, int n0) {
  static_assert(N % 4 == 0 && (N / C) % 4 == 0, "decode: widths are multiples of 4 kSplit");
  static_assert(NW % 4 == 0 && LDW % 4 == 0, "decode: float4 columns");
  using Cols = Columns<NT, NW>;
  constexpr int CG = Cols::CG, R = Cols::R;
  const int tid = threadIdx.x;
  float4* const W4 = reinterpret_cast<float4*>(W);
  float4* const A4 = reinterpret_cast<float4*>(AW);
  // Column n (local to the pass) with its rows' sum z: the bias (updated when it is the CTA's
  // entry), then out to `part` or to y and ya.
  const auto finish = [&](int n, float z) {
    const int ng = ncol0 + n;
    if (ng >= n0 && ng < n0 + N / C) {
      const int nl = ng - n0;
      float bb = bias[nl];
      if (kUpdate) {
        const float a = fmaf(lr, G[ng], Ab[nl]);
        bb = fmaf(-tau, a, bb);
        if (commit) {
          bias[nl] = bb;
          Ab[nl] = 0.f;
        } else {
          Ab[nl] = a;
        }
      }
      z += bb;
    }
    if constexpr (kReduce) {
      part[ng] = z;
    } else {
      if (y) y[ng] = z;
      if (ya) ya[ng] = activation<Act, 0, true>(z);
    }
  };
  for (int c0 = 0; c0 < CG; c0 += Cols::kWide ? NT : CG) {  // one round unless kWide
    const int c = Cols::kWide ? c0 + tid : tid % CG;
    const int r = Cols::kWide ? 0 : tid / CG;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    if (c < CG && r < R) {
      float4 lg = make_float4(0.f, 0.f, 0.f, 0.f);
      if (kUpdate) {
        const float* g = G + ncol0 + 4 * c;
        lg = make_float4(lr * g[0], lr * g[1], lr * g[2], lr * g[3]);
      }
#pragma unroll(kSmem ? 2 : 4)
      for (int m = r; m < ML; m += R) {
        const int i = m * (LDW / 4) + c;
        float4 w = W4[i];
        if (kUpdate) {
          float4 a = A4[i];
          const float x = xk[m];
          a.x = fmaf(x, lg.x, a.x), a.y = fmaf(x, lg.y, a.y);
          a.z = fmaf(x, lg.z, a.z), a.w = fmaf(x, lg.w, a.w);
          w.x = fmaf(-tau, a.x, w.x), w.y = fmaf(-tau, a.y, w.y);
          w.z = fmaf(-tau, a.z, w.z), w.w = fmaf(-tau, a.w, w.w);
          if (commit) {
            W4[i] = w;
            A4[i] = make_float4(0.f, 0.f, 0.f, 0.f);
          } else {
            A4[i] = a;
          }
        }
        const float xm = xin[m];
        acc.x = fmaf(xm, w.x, acc.x), acc.y = fmaf(xm, w.y, acc.y);
        acc.z = fmaf(xm, w.z, acc.z), acc.w = fmaf(xm, w.w, acc.w);
      }
    }
    if constexpr (Cols::kWide) {
      if (c < CG) {
        finish(4 * c, acc.x), finish(4 * c + 1, acc.y);
        finish(4 * c + 2, acc.z), finish(4 * c + 3, acc.w);
      }
    } else {
      if constexpr (Cols::kShuffle) {
#pragma unroll
        for (int o = CG; o < 32; o *= 2) {
          acc.x += __shfl_xor_sync(0xffffffffu, acc.x, o);
          acc.y += __shfl_xor_sync(0xffffffffu, acc.y, o);
          acc.z += __shfl_xor_sync(0xffffffffu, acc.z, o);
          acc.w += __shfl_xor_sync(0xffffffffu, acc.w, o);
        }
      }
      const int pidx = Cols::kShuffle ? tid / 32 : r;
      if (Cols::kShuffle ? tid % 32 < CG : r < R)
        reinterpret_cast<float4*>(red)[pidx * CG + c] = acc;
      __syncthreads();
      for (int n = tid; n < NW; n += NT) {
        float z = red[n];
#pragma unroll 1
        for (int j = 1; j < Cols::P; ++j) z += red[j * NW + n];
        finish(n, z);
      }
    }
  }
  if constexpr (kReduce) {
    // Every CTA's partial is in its `part`: add the C partials in rank order, a column a thread.
    cluster_sync();
    for (int n = tid; n < N; n += NT) {
      float z = map_rank(part, 0)[n];
#pragma unroll
      for (int j = 1; j < C; ++j) z += map_rank(part, j)[n];
      if (y) y[n] = z;
      if (ya) ya[n] = activation<Act, 0, true>(z);
    }
  }
  __syncthreads();
}

// After each CTA wrote its piece [rank M / C, (rank + 1) M / C) of a vector G (M floats):
// every CTA copies the other CTAs' pieces, so that each holds all of G. Nothing writes G again
// before the next cluster barrier, which every CTA reaches only after its copies.
template <int NT, int C, int M>
__device__ __forceinline__ void cluster_gather(float* G, int rank) {
  if constexpr (C > 1) {
    constexpr int ML = M / C;
    cluster_sync();
    static_assert(ML % 4 == 0, "decode: G pieces are float4s");
    for (int i = threadIdx.x; i < M / 4; i += NT)
      if (4 * i / ML != rank)
        reinterpret_cast<float4*>(G)[i] =
            reinterpret_cast<const float4*>(map_rank(G, 4 * i / ML))[i];
    __syncthreads();
  }
}

__host__ __device__ constexpr int pow2_floor(int x) { return x >= 2 ? 2 * pow2_floor(x / 2) : 1; }

// Dot products of the rows of W (ML rows of NC floats, row stride LDW) with g, for the layers'
// backward: TPR lanes of one warp per row, each taking every TPR-th float4 of the row (rotated by
// the row, so that the two rows of an 8-lane shared-memory phase hit different banks), summed
// with shuffles; fn(m, sum) runs on the row's first lane. Every lane takes part in every round.
// kSmem (W in shared memory): a lane's loads all in flight at once; from global memory one at a
// time (the wide unstaged kernels have no registers to spare at 2 CTAs of 256 threads per SM).
template <int NT, int ML, int NC, int LDW, bool kSmem, class Fn>
__device__ __forceinline__ void row_dots(const float* W, const float* g, Fn&& fn) {
  static_assert(NC % 4 == 0 && LDW % 4 == 0, "decode: float4 rows");
  constexpr int NC4 = NC / 4;
  // As many lanes per row as fill the CTA in one round, at least 4 (rotation keeps the rows of
  // a phase on different banks) and enough that a lane holds at most 4 float4s in flight (more
  // spill the wide unstaged kernels), at most a warp.
  constexpr int kFit = NT / ML > 4 ? NT / ML : 4;
  constexpr int kWant = kFit > NC4 / 4 ? kFit : NC4 / 4;
  constexpr int kLanes = kWant < 32 ? kWant : 32;
  constexpr int TPR = pow2_floor(NC4 < kLanes ? NC4 : kLanes);
  constexpr int I = (NC4 + TPR - 1) / TPR;  // float4s per lane
  constexpr bool kRotate = NC4 % TPR == 0;
  constexpr int kRows = NT / TPR;  // rows per round
  const float4* const W4 = reinterpret_cast<const float4*>(W);
  const float4* const g4 = reinterpret_cast<const float4*>(g);
  const int s = threadIdx.x % TPR;
  for (int m0 = 0; m0 < ML; m0 += kRows) {
    const int m = m0 + threadIdx.x / TPR;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    if (m < ML) {
      const int rot = kRotate ? m % I : 0;
#pragma unroll(kSmem ? I : 1)
      for (int i = 0; i < I; ++i) {
        const int ir = kRotate ? (i + rot < I ? i + rot : i + rot - I) : i;
        const int j = s + TPR * ir;
        if (kRotate || j < NC4) {
          const float4 w = W4[m * (LDW / 4) + j], v = g4[j];
          acc.x = fmaf(w.x, v.x, acc.x), acc.y = fmaf(w.y, v.y, acc.y);
          acc.z = fmaf(w.z, v.z, acc.z), acc.w = fmaf(w.w, v.w, acc.w);
        }
      }
    }
    float sum = (acc.x + acc.y) + (acc.z + acc.w);
#pragma unroll
    for (int o = 1; o < TPR; o *= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (s == 0 && m < ML) fn(m, sum);
  }
}

// The backward through a row-split layer (all N columns of the CTA's ML rows):
//   Gp[m] = act'(z[m]) * sum_n W[m, n] g[n].
template <int NT, int M, int N, int Act, bool kSmem>
__device__ __forceinline__ void backward_rows(float* Gp, const float* z, const float* W,
                                              const float* g) {
  row_dots<NT, M, N, N, kSmem>(W, g,
                               [&](int m, float s) { Gp[m] = s * activation<Act, 1, true>(z[m]); });
  __syncthreads();
}

// The backward through a column-split layer (the CTA holds W[:, n0 : n0 + NC], row stride
// LDW, and G_{l+1}'s entries g = G + n0): partial sums over its columns for every row m, summed
// over the cluster in rank order: Gp[m] = act'(z[m]) * sum_n W[m, n] g[n], all M rows.
template <int NT, int C, int M, int NC, int LDW, int Act, bool kSmem>
__device__ __forceinline__ void backward_cols(float* Gp, const float* z, const float* W,
                                              const float* g, float* part) {
  row_dots<NT, M, NC, LDW, kSmem>(W, g, [&](int m, float s) { part[m] = s; });
  cluster_sync();
  for (int m = threadIdx.x; m < M; m += NT) {
    float s = map_rank(part, 0)[m];
#pragma unroll
    for (int j = 1; j < C; ++j) s += map_rank(part, j)[m];
    Gp[m] = s * activation<Act, 1, true>(z[m]);
  }
  __syncthreads();
}

// LayerNorm statistics of z[F] in one warp: xhat[i] for the lane's features lane + 32 i, and 1/s.
template <int F, int PER = (F + 31) / 32>
__device__ __forceinline__ float warp_layer_norm(const float* z, float eps, float (&xhat)[PER]) {
  const int lane = threadIdx.x % 32;
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int j = lane + 32 * i;
    xhat[i] = j < F ? z[j] : 0.f;
    sum += xhat[i];
  }
  const float mean = warp_sum(sum) / F;
  float var = 0.f;
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int j = lane + 32 * i;
    xhat[i] = j < F ? xhat[i] - mean : 0.f;
    var = fmaf(xhat[i], xhat[i], var);
  }
  const float inv_s = 1.f / sqrtf(warp_sum(var) / F + eps);
#pragma unroll
  for (int i = 0; i < PER; ++i) xhat[i] *= inv_s;
  return inv_s;
}

// G_L of ttt-math.md from z = z_L (warp 0): g = gamma (LN(z) - (v - k)),
// G = (f g - sum(g) - xhat sum(g xhat)) / (f s).
template <class Cfg>
__device__ __forceinline__ void loss_gradient_warp(float* G, const float* z, const float* k,
                                                   const float* v, const float* gamma,
                                                   const float* beta) {
  constexpr int F = Cfg::kF, PER = (F + 31) / 32;
  const int lane = threadIdx.x % 32;
  float xhat[PER], g[PER];
  const float inv_s = warp_layer_norm<F>(z, Cfg::kEps, xhat);
  float sg = 0.f, sgx = 0.f;
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int j = lane + 32 * i;
    g[i] = j < F ? gamma[j] * (fmaf(gamma[j], xhat[i], beta[j]) - (v[j] - k[j])) : 0.f;
    sg += g[i];
    sgx = fmaf(g[i], xhat[i], sgx);
  }
  sg = warp_sum(sg);
  sgx = warp_sum(sgx);
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int j = lane + 32 * i;
    if (j < F) G[j] = (F * g[i] - sg - xhat[i] * sgx) * (inv_s / F);
  }
}

// out = q + LN(z) (warp 0), stored in the token's element type.
template <class Cfg, class T>
__device__ __forceinline__ void output_warp(T* out, const float* z, const float* q,
                                            const float* gamma, const float* beta) {
  constexpr int F = Cfg::kF, PER = (F + 31) / 32;
  const int lane = threadIdx.x % 32;
  float xhat[PER];
  warp_layer_norm<F>(z, Cfg::kEps, xhat);
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int j = lane + 32 * i;
    if (j < F) out[j] = from_float<T>(q[j] + fmaf(gamma[j], xhat[i], beta[j]));
  }
}

template <class T>
__device__ __forceinline__ const T* token_ptr(const TokenTensor& t, int b, int h, int i) {
  return static_cast<const T*>(t.ptr) + b * t.stride_b + h * t.stride_h + i * t.stride_t;
}

// What one token's layer passes share: shared-memory vectors, the CTA's state slice, the
// token's scalars. Passed to the per-layer templates below, which recurse over l so that every
// layer's widths and offsets are compile-time constants.
struct Work {
  float *sx, *sz, *sg, *sq, *red, *bar0, *bar1, *part0, *part1;
  // kStage: the CTA's slices in shared memory (slice_offset layout); else the head's state in
  // the pool (weight_offset layout), of which the CTA touches only its slice.
  float *theta, *A;
  float lr, tau;
  bool commit;
  int rank;
  int exchanges;  // cluster reductions so far: consecutive ones use different buffers
  __device__ float* bar(int i) const { return i % 2 ? bar1 : bar0; }
  __device__ float* next_part() { return exchanges++ % 2 ? part1 : part0; }
};

// How layer l is split over the kSplit CTAs of a head (one CTA: all of it, as a row split).
// Odd layers are split by columns (outputs: the input vector is whole in every CTA, each CTA
// computes its N / C outputs, no exchange), even layers by rows (inputs: each CTA takes its
// slice of the input, which the odd layer before left in it, and the partial sums are
// all-reduced). So an MLP's layer pairs need one reduction each way, of an f-wide vector, and
// the backward through an even layer stays in the CTA; through an odd layer l > 1 it is an
// all-reduce, and an odd last layer's output is gathered for the LayerNorm.
template <class Cfg, int l>
struct Geo {
  static constexpr int M = width<Cfg>(l - 1), N = width<Cfg>(l), C = Cfg::kSplit;
  static constexpr bool kCol = C > 1 && l % 2 == 1;
  static constexpr int ML = kCol ? M : M / C;                  // rows the CTA uses
  static constexpr int NW = kCol ? N / C : N;                  // columns it computes
  static constexpr int LDW = kCol && Cfg::kStage ? N / C : N;  // row stride where W is read
  static constexpr bool kReduce = !kCol && C > 1;
  __device__ static int row0(int rank) { return kCol ? 0 : rank * (M / C); }
  __device__ static int col0(int rank) { return kCol ? rank * (N / C) : 0; }
  // W's part and b's entries in the packed state (the pool)...
  __device__ static long long w_state(int rank) {
    return weight_offset<Cfg>(l) + (kCol ? rank * (N / C) : 1LL * rank * (M / C) * N);
  }
  __device__ static long long b_state(int rank) {
    return weight_offset<Cfg>(l) + 1LL * M * N + rank * (N / C);
  }
  // ... and where the passes read them, relative to Work::theta (or ::A).
  __device__ static long long w_at(int rank) {
    return Cfg::kStage ? slice_offset<Cfg>(l) : w_state(rank);
  }
  __device__ static long long b_at(int rank) {
    return Cfg::kStage ? slice_offset<Cfg>(l) + M * N / C : b_state(rank);
  }
};

// Layer l's vector at `at` in its stack (or buffer), as the code indexes it: by the global
// column, through a base shifted back by the CTA's first column where the layer keeps only its
// own entries (kept_width; shift() is 0 elsewhere). Staged kernels subtract the shift for every
// layer and unstaged ones never: at ptxas's register cap (80 for staged mlp2, 128 for the wide
// unstaged kernels) each other way of writing the same addresses spilled 8-40 bytes.
template <class Cfg, int l>
__device__ __forceinline__ int shift(int rank) {
  if constexpr (local_vectors<Cfg>(l))
    return Geo<Cfg, l>::col0(rank);
  else
    return 0;
}
template <class Cfg, int l, class T>
__device__ __forceinline__ T* vec(T* at, int shift) {
  if constexpr (Cfg::kStage)
    return at - shift;
  else
    return at;
}

// A piece of the CTA's slice: ROWS x COLS floats, row stride LD in the packed state, dense (row
// stride COLS) in the slice; COLS a multiple of 4 floats, at a multiple of 4.
template <int ROWS, int COLS, int LD>
struct Piece {
  static constexpr int kRows = ROWS, kCols = COLS, kLd = LD;
};

// Calls act.template piece<Piece<...>>(state offset, slice offset) for the CTA's pieces of
// layers l..L: its part of W_l and its entries of b_l. (An action type with a member template,
// not a generic lambda: NVRTC compiles generic lambdas as host functions.)
template <class Cfg, int l, class Action>
__device__ __forceinline__ void for_each_piece(int rank, Action& act) {
  using G = Geo<Cfg, l>;
  act.template piece<Piece<G::ML, G::NW, G::N>>(G::w_state(rank), slice_offset<Cfg>(l));
  act.template piece<Piece<1, G::N / G::C, 0>>(G::b_state(rank),
                                               slice_offset<Cfg>(l) + G::M * G::N / G::C);
  if constexpr (l < Cfg::kDepth) for_each_piece<Cfg, l + 1>(rank, act);
}

// This thread's float4s of piece P: fn(offset in the slice, offset in the state) for each. Where
// the piece's rows tile 4 NT floats, both are a per-thread base plus compile-time steps (the
// copies and write-backs then cost an instruction or two each, not an index computation).
template <int NT, class P, class Fn>
__device__ __forceinline__ void piece_float4s(Fn&& fn) {
  constexpr int kCols = P::kCols, N4 = P::kRows * kCols / 4;
  const int t = threadIdx.x;
  if constexpr ((4 * NT) % kCols == 0) {
    constexpr int kRowStep = 4 * NT / kCols;
    const int slice0 = 4 * t, state0 = (4 * t / kCols) * P::kLd + 4 * t % kCols;
#pragma unroll
    for (int k = 0; k < (N4 + NT - 1) / NT; ++k)
      if (N4 % NT == 0 || t + k * NT < N4) fn(slice0 + 4 * k * NT, state0 + k * kRowStep * P::kLd);
  } else {
    for (int i = t; i < N4; i += NT) fn(4 * i, (4 * i / kCols) * P::kLd + 4 * i % kCols);
  }
}

// The CTA's slices of the head's theta and A (in the pool) into `stage` (theta's slice, then
// A's), as 16-byte asynchronous copies all in flight at once.
template <class Cfg>
struct StageIn {
  const float *stage, *theta, *A;
  template <class P>
  __device__ __forceinline__ void piece(long long so, int lo) {
    const float* const sA = stage + Smem<Cfg>::kSlice;
    const float* const th = theta + so;
    const float* const a = A + so;
    piece_float4s<Cfg::kThreads, P>([&](int slice, int state) {
      copy16_async(stage, lo + slice, th + state);
      copy16_async(sA, lo + slice, a + state);
    });
  }
};

// Back from the staged slices to the pool: A always, theta when it changed.
template <class Cfg>
struct WriteBack {
  const float *sT, *sA;
  float *theta, *A;
  bool theta_changed;
  template <class P>
  __device__ __forceinline__ void piece(long long so, int lo) {
    float* const th = theta + so;
    float* const a = A + so;
    piece_float4s<Cfg::kThreads, P>([&](int slice, int state) {
      *reinterpret_cast<float4*>(a + state) = *reinterpret_cast<const float4*>(sA + lo + slice);
      if (theta_changed)
        *reinterpret_cast<float4*>(th + state) = *reinterpret_cast<const float4*>(sT + lo + slice);
    });
  }
};

// Prefill's tail: a fresh start from `src` (the forward's state at a mini-batch boundary, any
// float view: plain loads, no alignment assumed), A = 0, into the slices (kStage) or the pool.
template <class Cfg>
struct StartFrom {
  const float* src;
  float *theta, *A;
  template <class P>
  __device__ __forceinline__ void piece(long long so, int lo) {
    for (int i = threadIdx.x; i < P::kRows * P::kCols; i += Cfg::kThreads) {
      const long long gi = so + 1LL * (i / P::kCols) * P::kLd + i % P::kCols;
      const long long ti = Cfg::kStage ? lo + i : gi;
      theta[ti] = src[gi];
      A[ti] = 0.f;
    }
  }
};

// 1. The inner model on k at theta, layers l..L: z_l and x_l = act(z_l) (a row-split layer's in
// full in every CTA, a column-split layer's the CTA's columns; the last layer's z in full).
template <class Cfg, int l>
__device__ __forceinline__ void inner_forward(Work& w) {
  using G = Geo<Cfg, l>;
  constexpr int F = Cfg::kF, L = Cfg::kDepth, C = Cfg::kSplit;
  const int here = shift<Cfg, l>(w.rank), below = shift<Cfg, l - 1>(w.rank);
  layer_pass<Cfg::kThreads, C, G::ML, G::NW, G::LDW, G::N, Cfg::kAct, false, G::kReduce,
             Cfg::kStage>(vec<Cfg, l>(w.sz + x_offset<Cfg>(l) - F, here),
                          l < L ? vec<Cfg, l>(w.sx + x_offset<Cfg>(l), here) : nullptr,
                          vec<Cfg, l - 1>(w.sx + x_offset<Cfg>(l - 1), below) + G::row0(w.rank),
                          w.theta + G::w_at(w.rank), w.theta + G::b_at(w.rank), nullptr, nullptr,
                          nullptr, nullptr, 0.f, 0.f, false, w.red,
                          G::kReduce ? w.next_part() : nullptr, G::col0(w.rank),
                          w.rank * (G::N / C));
  if constexpr (G::kCol && l == L)
    cluster_gather<Cfg::kThreads, C, G::N>(w.sz + x_offset<Cfg>(l) - F, w.rank);
  if constexpr (l < L) inner_forward<Cfg, l + 1>(w);
}

// 2b. G_l from G_{l+1} at theta, for l down to 1: through a row-split layer l + 1 the CTA's
// rows (all that the column-split layer l needs), through a column-split one all of G_l.
template <class Cfg, int l>
__device__ __forceinline__ void inner_backward(Work& w) {
  if constexpr (l >= 1) {
    using G = Geo<Cfg, l + 1>;
    constexpr int F = Cfg::kF, C = Cfg::kSplit;
    const int here = shift<Cfg, l>(w.rank), above = shift<Cfg, l + 1>(w.rank);
    if constexpr (G::kCol) {
      backward_cols<Cfg::kThreads, C, G::M, G::N / C, G::LDW, Cfg::kAct, Cfg::kStage>(
          vec<Cfg, l>(w.sg + x_offset<Cfg>(l) - F, here),
          vec<Cfg, l>(w.sz + x_offset<Cfg>(l) - F, here), w.theta + G::w_at(w.rank),
          vec<Cfg, l + 1>(w.sg + x_offset<Cfg>(l + 1) - F, above) + G::col0(w.rank), w.next_part());
    } else {
      backward_rows<Cfg::kThreads, G::ML, G::N, Cfg::kAct, Cfg::kStage>(
          vec<Cfg, l>(w.sg + x_offset<Cfg>(l) - F, here) + G::row0(w.rank),
          vec<Cfg, l>(w.sz + x_offset<Cfg>(l) - F, here) + G::row0(w.rank),
          w.theta + G::w_at(w.rank), vec<Cfg, l + 1>(w.sg + x_offset<Cfg>(l + 1) - F, above));
    }
    inner_backward<Cfg, l - 1>(w);
  }
}

// 3. A += lr grad and the query path at theta - tau A, layers l..L (fused, one pass each);
// zbar_L ends in bar(L), in full.
template <class Cfg, int l>
__device__ __forceinline__ void update_and_query(Work& w) {
  using G = Geo<Cfg, l>;
  constexpr int F = Cfg::kF, L = Cfg::kDepth, C = Cfg::kSplit;
  const int here = shift<Cfg, l>(w.rank), below = shift<Cfg, l - 1>(w.rank);
  layer_pass<Cfg::kThreads, C, G::ML, G::NW, G::LDW, G::N, Cfg::kAct, true, G::kReduce,
             Cfg::kStage>(
      l == L ? w.bar(l) : nullptr, l < L ? vec<Cfg, l>(w.bar(l), here) : nullptr,
      (l == 1 ? w.sq : vec<Cfg, l - 1>(w.bar(l - 1), below)) + G::row0(w.rank),
      w.theta + G::w_at(w.rank), w.theta + G::b_at(w.rank), w.A + G::w_at(w.rank),
      w.A + G::b_at(w.rank), vec<Cfg, l - 1>(w.sx + x_offset<Cfg>(l - 1), below) + G::row0(w.rank),
      vec<Cfg, l>(w.sg + x_offset<Cfg>(l) - F, here), w.lr, w.tau, w.commit, w.red,
      G::kReduce ? w.next_part() : nullptr, G::col0(w.rank), w.rank * (G::N / C));
  if constexpr (G::kCol && l == L) cluster_gather<Cfg::kThreads, C, G::N>(w.bar(l), w.rank);
  if constexpr (l < L) update_and_query<Cfg, l + 1>(w);
}

// One (row, head) of a launch, `bh` = b H + h: its tokens, from its slices staged in shared
// memory (kStage) or in the pool. The whole cluster runs the same items in the same order.
template <class Cfg>
__device__ __forceinline__ void decode_item(const DecodeParams& p, Work& w, int bh, float* stage) {
  using T = typename Cfg::Elem;
  using Sm = Smem<Cfg>;
  constexpr int F = Cfg::kF, L = Cfg::kDepth, NT = Cfg::kThreads;
  constexpr long long S = Cfg::kS;
  const int b = bh / p.H, h = bh % p.H, tid = threadIdx.x, rank = w.rank;
  const int slot = p.slots[b];
  T* const out0 = static_cast<T*>(p.out.ptr) + b * p.out.stride_b + h * p.out.stride_h;

  // A bad slot index: leave the pool alone, say so. The whole cluster skips the item (one slot)
  // without a cluster barrier.
  if (slot < 0 || slot >= p.num_slots) {
    if (rank == 0)
      for (int i = tid; i < p.T * F; i += NT)
        out0[(i / F) * p.out.stride_t + i % F] = from_float<T>(__int_as_float(0x7fc00000));
    return;
  }
  const long long head = 1LL * slot * p.H + h;
  float* const theta = p.theta + head * S;
  float* const A = p.accum + head * S;
  if constexpr (Cfg::kStage) {
    w.theta = stage;
    w.A = stage + Sm::kSlice;
  } else {
    w.theta = theta;
    w.A = A;
  }
  float* const sv = w.sq + F;
  bool theta_changed = false;  // kStage: write the theta slice back at the end
  int pos;
  if (p.init) {  // prefill's tail: start from the forward's state at a mini-batch boundary
    StartFrom<Cfg> start{p.init + b * p.init_stride_b + 1LL * h * S, w.theta, w.A};
    for_each_piece<Cfg, 1>(rank, start);
    pos = 0;
    theta_changed = true;
  } else {
    if constexpr (Cfg::kStage) {
      StageIn<Cfg> in{stage, theta, A};
      for_each_piece<Cfg, 1>(rank, in);
    }
    // Every CTA reads the position before the token's first cluster barrier; rank 0 writes it
    // after the last one (a launch of no tokens writes back the value it read).
    pos = p.pos[head];
    // (the copies are waited for after the first token's inputs are loaded: both in flight)
  }
  const float* gamma = p.gamma + h * F;
  const float* beta = p.beta + h * F;

  for (int t = 0; t < p.T; ++t) {
    const T* q = token_ptr<T>(p.q, b, h, t);
    const T* k = token_ptr<T>(p.k, b, h, t);
    const T* v = token_ptr<T>(p.v, b, h, t);
    for (int j = tid; j < F; j += NT) {
      w.sq[j] = to_float(q[j]);
      w.sx[j] = to_float(k[j]);  // x_0 = k
      sv[j] = to_float(v[j]);
    }
    w.lr = p.lr[b * p.lr_stride_b + h * p.lr_stride_h + t * p.lr_stride_t];
    w.tau = p.tau[pos];
    w.commit = pos == Cfg::kK - 1;
    theta_changed = theta_changed || w.commit;
    if (Cfg::kStage && t == 0) copy_async_wait();
    __syncthreads();  // the inputs, the slices (or `init`'s writes) are in place

    inner_forward<Cfg, 1>(w);
    // 2a. The loss gradient at z_L (one warp of every CTA), then back through the layers.
    if (tid < 32)
      loss_gradient_warp<Cfg>(w.sg + x_offset<Cfg>(L) - F, w.sz + x_offset<Cfg>(L) - F, w.sx, sv,
                              gamma, beta);
    __syncthreads();
    inner_backward<Cfg, L - 1>(w);
    update_and_query<Cfg, 1>(w);
    // 4. out = q + LN(zbar_L) (rank 0); advance the position.
    if (rank == 0 && tid < 32)
      output_warp<Cfg, T>(out0 + t * p.out.stride_t, w.bar(L), w.sq, gamma, beta);
    pos = w.commit ? 0 : pos + 1;
    __syncthreads();  // the next token overwrites sq, sx, sv
  }
  if constexpr (Cfg::kStage) {  // write the slices back: A always, theta when it changed
    // (T = 0: no token waited for the copies, nor synchronised `init`'s writes)
    if (p.T == 0) copy_async_wait();
    __syncthreads();
    WriteBack<Cfg> back{w.theta, w.A, theta, A, theta_changed};
    for_each_piece<Cfg, 1>(rank, back);
  }
  if (rank == 0 && tid == 0) p.pos[head] = pos;
}

}  // namespace decode

// A launch runs `units` = gridDim.x / kCtasPerHead (row, head) items at a time (the runtime
// sizes the grid to what the GPU holds at once, so no cluster waits for a free slot); unit u
// takes items u, u + units, ... in turn.
template <class Cfg>
__device__ void decode_kernel(const DecodeParams& p) {
  using namespace decode;
  using Sm = Smem<Cfg>;
  constexpr int F = Cfg::kF, L = Cfg::kDepth, C = Cfg::kSplit;
  static_assert(weight_offset<Cfg>(L + 1) == Cfg::kS, "decode: packed state size mismatch");
  static_assert(Cfg::kCtasPerHead >= C, "decode: fewer CTAs per head than the split");
  static_assert(F % (4 * C) == 0 && Cfg::kHidden % (4 * C) == 0,
                "decode: every width splits into multiples of 4 floats");
#ifdef TTTC_DECODE_HOST
  float* sm = host_shared_base();
#else
  extern __shared__ float4 shared_raw[];
  float* sm = reinterpret_cast<float*>(shared_raw);
#endif
  const int units = gridDim.x / Cfg::kCtasPerHead, unit = blockIdx.x / Cfg::kCtasPerHead;
  const int rank = blockIdx.x % Cfg::kCtasPerHead;
  if (rank >= C) return;  // this build splits a head fewer ways than the grid (sm_80)
  Work w;                 // NVRTC compiles C++17: no designated initializers
  w.sx = sm + Sm::kX;
  w.sz = sm + Sm::kZ;
  w.sg = sm + Sm::kG;
  w.sq = sm + Sm::kQ;
  w.red = sm + Sm::kRed;
  w.bar0 = sm + Sm::kBar0;
  w.bar1 = sm + Sm::kBar1;
  w.part0 = sm + Sm::kPart0;
  w.part1 = sm + Sm::kPart1;
  w.rank = rank;
  w.exchanges = 0;
  for (int bh = unit; bh < p.B * p.H; bh += units) {
    decode_item<Cfg>(p, w, bh, sm + Sm::kStage);
    __syncthreads();  // the item's slices are written back before the next item's copies land
  }
  // No CTA leaves while another may read its exchange buffers.
  if constexpr (C > 1) cluster_sync();
}

}  // namespace tttc
