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
// split on sm_90), kStage and kSmemFloats (dynamic shared memory, checked below).
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
// 16 bytes global -> shared without staging in registers (all of a CTA's copies in flight).
__device__ __forceinline__ void copy16_async(float* smem, const float* gmem) {
  unsigned s;
  asm volatile("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }"
               : "=r"(s)
               : "l"(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(gmem) : "memory");
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
// Stacked per-layer vectors: x_0..x_{L-1} at x_offset(l); z_l and G_l (l = 1..L) at
// x_offset(l) - f in their own stacks (the two stacks have the same total size).
template <class Cfg>
__host__ __device__ constexpr int x_offset(int l) {
  int o = 0;
  for (int j = 0; j < l; ++j) o += width<Cfg>(j);
  return o;
}
template <class Cfg>
__host__ __device__ constexpr int max_width() {
  return Cfg::kF > Cfg::kHidden ? Cfg::kF : Cfg::kHidden;
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
// (partial sums that the other CTAs of the cluster read), the reduction scratch (a float4 per
// thread), then (kStage) the CTA's slices of theta and A. Every part is a multiple of 4 floats,
// so the slices are 16-byte aligned; the layout is the same in every CTA (the cluster reads a
// buffer at the same offset in another CTA).
template <class Cfg>
struct Smem {
  static constexpr int kStack = x_offset<Cfg>(Cfg::kDepth);
  static constexpr int kSlice = slice_offset<Cfg>(Cfg::kDepth + 1);
  static constexpr int kX = 0, kZ = kStack, kG = 2 * kStack, kQ = 3 * kStack, kV = kQ + Cfg::kF;
  static constexpr int kBar0 = kV + Cfg::kF, kBar1 = kBar0 + max_width<Cfg>();
  static constexpr int kPart0 = kBar1 + max_width<Cfg>(), kPart1 = kPart0 + max_width<Cfg>();
  static constexpr int kRed = kPart1 + max_width<Cfg>();
  static constexpr int kStage = kRed + 4 * Cfg::kThreads;
  static constexpr int kFloats = kStage + (Cfg::kStage ? 2 * kSlice : 0);
  static_assert(kFloats <= Cfg::kSmemFloats, "codegen's decode shared-memory size is too small");
  static_assert(kRed % 4 == 0 && kStage % 4 == 0, "float4 scratch and slices");
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One layer's share of the CTA, column-parallel over the outputs n (coalesced float4 reads of
// the row-major W, row stride LDW, 4 columns per thread): over ML rows and the NW columns
// [ncol0, ncol0 + NW) (a row-split layer: its M / C rows, all N columns; a column-split layer:
// all M rows, its N / C columns; kSplit = 1: all of W):
//   y[n] = sum_m xin[m] E[m, n] + e_b[n],  ya[n] = act(y[n]) (each written when non-null), with
//   E = W, e_b = b                                          (kUpdate false: the state at theta)
//   E = W - tau (AW + lr xk^T G), e_b = b - tau (Ab + lr G)  (kUpdate true), where the new A is
//   written back, or at the mini-batch's end (commit) E is written to W and A is zeroed.
// W, AW: the CTA's part (xin, xk: offset to its rows); bias, Ab: its entries [n0, n0 + N / C);
// y, ya, G are indexed by the global column n. Threads split the rows R ways when there are
// fewer column groups than threads; partial sums meet in `red` (4 NT floats) in a fixed order.
// kReduce (a row-split layer): each CTA's partial sum (plus its bias entries) goes to `part`,
// and after a cluster barrier every CTA adds the C partials in rank order: the same y in every
// CTA, and no sum depends on timing (CUDA-graph replays equal eager launches bit for bit).
// Otherwise y, ya get the CTA's columns. W, AW: 16-byte aligned (the runtime checks the pool;
// every offset in the packed state and in the slice is a multiple of 4 floats).
template <int NT, int C, int ML, int NW, int LDW, int N, int Act, bool kUpdate, bool kReduce>
__device__ __forceinline__ void layer_pass(float* y, float* ya, const float* xin, float* W,
                                           float* bias, float* AW, float* Ab, const float* xk,
                                           const float* G, float lr, float tau, bool commit,
                                           float* red, float* part, int ncol0, int n0) {
  static_assert(N % 4 == 0 && (N / C) % 4 == 0, "decode: widths are multiples of 4 kSplit");
  static_assert(NW % 4 == 0 && LDW % 4 == 0, "decode: float4 columns");
  constexpr int CG = NW / 4;  // column groups
  constexpr int R = CG >= NT ? 1 : NT / CG;
  constexpr int kStep = CG >= NT ? NT : CG;
  const int tid = threadIdx.x;
  const int r = CG >= NT ? 0 : tid / CG;
  float4* const W4 = reinterpret_cast<float4*>(W);
  float4* const A4 = reinterpret_cast<float4*>(AW);
  float4* const red4 = reinterpret_cast<float4*>(red);
  for (int c0 = 0; c0 < CG; c0 += kStep) {
    const int c = c0 + (CG >= NT ? tid : tid % CG);
    const bool active = c < CG && r < R;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    if (active) {
      float4 lg = make_float4(0.f, 0.f, 0.f, 0.f);
      if (kUpdate) {
        const float* g = G + ncol0 + 4 * c;
        lg = make_float4(lr * g[0], lr * g[1], lr * g[2], lr * g[3]);
      }
#pragma unroll 2
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
    if constexpr (R > 1) {
      if (active) red4[r * CG + (c - c0)] = acc;
      __syncthreads();
      if (tid < CG) {
        acc = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int j = 0; j < R; ++j) {
          const float4 p = red4[j * CG + tid];
          acc.x += p.x, acc.y += p.y, acc.z += p.z, acc.w += p.w;
        }
      }
    }
    if (c < CG && r == 0) {
      const int n4 = ncol0 + 4 * c;
      const bool own = n4 >= n0 && n4 < n0 + N / C;  // the 4 columns share an owner
      const float sum[4] = {acc.x, acc.y, acc.z, acc.w};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int n = n4 + e;
        float z = sum[e];
        if (own) {
          const int nl = n - n0;
          float bb = bias[nl];
          if (kUpdate) {
            const float a = fmaf(lr, G[n], Ab[nl]);
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
          part[n] = z;
        } else {
          if (y) y[n] = z;
          if (ya) ya[n] = activation<Act, 0>(z);
        }
      }
    }
    if constexpr (R > 1) __syncthreads();  // `red` is reused by the next column block
  }
  if constexpr (kReduce) {
    // Every CTA's partial is in its `part`: add the C partials' float4s in rank order.
    cluster_sync();
    for (int c = tid; c < N / 4; c += NT) {
      float4 s = reinterpret_cast<const float4*>(map_rank(part, 0))[c];
#pragma unroll
      for (int j = 1; j < C; ++j) {
        const float4 v = reinterpret_cast<const float4*>(map_rank(part, j))[c];
        s.x += v.x, s.y += v.y, s.z += v.z, s.w += v.w;
      }
      const float z[4] = {s.x, s.y, s.z, s.w};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (y) y[4 * c + e] = z[e];
        if (ya) ya[4 * c + e] = activation<Act, 0>(z[e]);
      }
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

// The layers' backward, row-parallel (one warp per row m, lanes across n, coalesced):
//   Gp[m] = act'(z[m]) * sum_n W[m, n] g[n].
template <int NT, int M, int N, int Act>
__device__ __forceinline__ void backward_rows(float* Gp, const float* z, const float* W,
                                              const float* g) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int m = warp; m < M; m += NT / 32) {
    float s = 0.f;
    for (int n = lane; n < N; n += 32) s = fmaf(W[1LL * m * N + n], g[n], s);
    s = warp_sum(s);
    if (lane == 0) Gp[m] = s * activation<Act, 1>(z[m]);
  }
  __syncthreads();
}

// The backward through a column-split layer (the CTA holds W[:, n0 : n0 + NC], row stride
// LDW, and G_{l+1}'s entries g = G + n0): partial sums over its columns for every row m, summed
// over the cluster in rank order: Gp[m] = act'(z[m]) * sum_n W[m, n] g[n], all M rows.
template <int NT, int C, int M, int NC, int LDW, int Act>
__device__ __forceinline__ void backward_cols(float* Gp, const float* z, const float* W,
                                              const float* g, float* part) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int m = warp; m < M; m += NT / 32) {
    float s = 0.f;
    for (int n = lane; n < NC; n += 32) s = fmaf(W[m * LDW + n], g[n], s);
    s = warp_sum(s);
    if (lane == 0) part[m] = s;
  }
  cluster_sync();
  for (int m = threadIdx.x; m < M; m += NT) {
    float s = map_rank(part, 0)[m];
#pragma unroll
    for (int j = 1; j < C; ++j) s += map_rank(part, j)[m];
    Gp[m] = s * activation<Act, 1>(z[m]);
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

// Calls f(state offset, state row stride, slice offset, rows, columns) for the CTA's pieces of
// layers l..L: its part of W_l and its entries of b_l (columns: multiples of 4 floats, at
// multiples of 4). In the slice a piece is dense (row stride = columns).
template <class Cfg, int l, class Fn>
__device__ __forceinline__ void for_each_piece(int rank, Fn&& f) {
  using G = Geo<Cfg, l>;
  f(G::w_state(rank), G::N, slice_offset<Cfg>(l), G::ML, G::NW);
  f(G::b_state(rank), 0, slice_offset<Cfg>(l) + G::M * G::N / G::C, 1, G::N / G::C);
  if constexpr (l < Cfg::kDepth) for_each_piece<Cfg, l + 1>(rank, f);
}

// 1. The inner model on k at theta, layers l..L: z_l and x_l = act(z_l) (a row-split layer's in
// full in every CTA, a column-split layer's the CTA's columns; the last layer's z in full).
template <class Cfg, int l>
__device__ __forceinline__ void inner_forward(Work& w) {
  using G = Geo<Cfg, l>;
  constexpr int F = Cfg::kF, L = Cfg::kDepth, C = Cfg::kSplit;
  layer_pass<Cfg::kThreads, C, G::ML, G::NW, G::LDW, G::N, Cfg::kAct, false, G::kReduce>(
      w.sz + x_offset<Cfg>(l) - F, l < L ? w.sx + x_offset<Cfg>(l) : nullptr,
      w.sx + x_offset<Cfg>(l - 1) + G::row0(w.rank), w.theta + G::w_at(w.rank),
      w.theta + G::b_at(w.rank), nullptr, nullptr, nullptr, nullptr, 0.f, 0.f, false, w.red,
      G::kReduce ? w.next_part() : nullptr, G::col0(w.rank), w.rank * (G::N / C));
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
    if constexpr (G::kCol) {
      backward_cols<Cfg::kThreads, C, G::M, G::N / C, G::LDW, Cfg::kAct>(
          w.sg + x_offset<Cfg>(l) - F, w.sz + x_offset<Cfg>(l) - F, w.theta + G::w_at(w.rank),
          w.sg + x_offset<Cfg>(l + 1) - F + G::col0(w.rank), w.next_part());
    } else {
      backward_rows<Cfg::kThreads, G::ML, G::N, Cfg::kAct>(
          w.sg + x_offset<Cfg>(l) - F + G::row0(w.rank),
          w.sz + x_offset<Cfg>(l) - F + G::row0(w.rank), w.theta + G::w_at(w.rank),
          w.sg + x_offset<Cfg>(l + 1) - F);
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
  layer_pass<Cfg::kThreads, C, G::ML, G::NW, G::LDW, G::N, Cfg::kAct, true, G::kReduce>(
      l == L ? w.bar(l) : nullptr, l < L ? w.bar(l) : nullptr,
      (l == 1 ? w.sq : w.bar(l - 1)) + G::row0(w.rank), w.theta + G::w_at(w.rank),
      w.theta + G::b_at(w.rank), w.A + G::w_at(w.rank), w.A + G::b_at(w.rank),
      w.sx + x_offset<Cfg>(l - 1) + G::row0(w.rank), w.sg + x_offset<Cfg>(l) - F, w.lr, w.tau,
      w.commit, w.red, G::kReduce ? w.next_part() : nullptr, G::col0(w.rank), w.rank * (G::N / C));
  if constexpr (G::kCol && l == L) cluster_gather<Cfg::kThreads, C, G::N>(w.bar(l), w.rank);
  if constexpr (l < L) update_and_query<Cfg, l + 1>(w);
}

}  // namespace decode

template <class Cfg>
__device__ void decode_kernel(const DecodeParams& p) {
  using namespace decode;
  using T = typename Cfg::Elem;
  using Sm = Smem<Cfg>;
  constexpr int F = Cfg::kF, L = Cfg::kDepth, NT = Cfg::kThreads, C = Cfg::kSplit;
  constexpr long long S = Cfg::kS;
  static_assert(weight_offset<Cfg>(L + 1) == S, "decode: packed state size mismatch");
  static_assert(Cfg::kCtasPerHead >= C, "decode: fewer CTAs per head than the split");
  static_assert(F % (4 * C) == 0 && Cfg::kHidden % (4 * C) == 0,
                "decode: every width splits into multiples of 4 floats");
#ifdef TTTC_DECODE_HOST
  float* sm = host_shared_base();
#else
  extern __shared__ float4 shared_raw[];
  float* sm = reinterpret_cast<float*>(shared_raw);
#endif
  const int bh = blockIdx.x / Cfg::kCtasPerHead, rank = blockIdx.x % Cfg::kCtasPerHead;
  if (rank >= C) return;  // this build splits a head fewer ways than the grid (sm_80)
  const int b = bh / p.H, h = bh % p.H, tid = threadIdx.x;
  const int slot = p.slots[b];
  T* const out0 = static_cast<T*>(p.out.ptr) + b * p.out.stride_b + h * p.out.stride_h;

  // A bad slot index: leave the pool alone, say so. The whole cluster returns here (one slot),
  // before any cluster barrier.
  if (slot < 0 || slot >= p.num_slots) {
    if (rank == 0)
      for (int i = tid; i < p.T * F; i += NT)
        out0[(i / F) * p.out.stride_t + i % F] = from_float<T>(__int_as_float(0x7fc00000));
    return;
  }
  const long long head = 1LL * slot * p.H + h;
  float* const theta = p.theta + head * S;
  float* const A = p.accum + head * S;
  Work w;  // NVRTC compiles C++17: no designated initializers
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
  if constexpr (Cfg::kStage) {
    w.theta = sm + Sm::kStage;
    w.A = sm + Sm::kStage + Sm::kSlice;
  } else {
    w.theta = theta;
    w.A = A;
  }
  float* const sv = sm + Sm::kV;
  bool theta_changed = false;  // kStage: write the theta slice back at the end
  int pos;
  if (p.init) {  // prefill's tail: start from the forward's state at a mini-batch boundary
    // (`init` may be any float view: plain loads, no alignment assumed)
    const float* src = p.init + b * p.init_stride_b + 1LL * h * S;
    for_each_piece<Cfg, 1>(rank, [&](long long so, int ld, int lo, int rows, int cols) {
      for (int i = tid; i < rows * cols; i += NT) {
        const long long gi = so + 1LL * (i / cols) * ld + i % cols;
        const long long ti = Cfg::kStage ? lo + i : gi;
        w.theta[ti] = src[gi];
        w.A[ti] = 0.f;
      }
    });
    pos = 0;
    theta_changed = true;
  } else {
    if constexpr (Cfg::kStage) {  // the CTA's slices of theta and A: every copy in flight at once
      for_each_piece<Cfg, 1>(rank, [&](long long so, int ld, int lo, int rows, int cols) {
        for (int i = tid; i < rows * cols / 4; i += NT) {
          const long long gi = so + 1LL * (4 * i / cols) * ld + 4 * i % cols;
          copy16_async(w.theta + lo + 4 * i, theta + gi);
          copy16_async(w.A + lo + 4 * i, A + gi);
        }
      });
    }
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
    copy_async_wait();
    __syncthreads();
    for_each_piece<Cfg, 1>(rank, [&](long long so, int ld, int lo, int rows, int cols) {
      const float4* const sA4 = reinterpret_cast<const float4*>(w.A + lo);
      const float4* const sT4 = reinterpret_cast<const float4*>(w.theta + lo);
      for (int i = tid; i < rows * cols / 4; i += NT) {
        const long long gi = so + 1LL * (4 * i / cols) * ld + 4 * i % cols;
        *reinterpret_cast<float4*>(A + gi) = sA4[i];
        if (theta_changed) *reinterpret_cast<float4*>(theta + gi) = sT4[i];
      }
    });
  }
  // No CTA leaves while another may read its exchange buffers; and every CTA has read the
  // position before rank 0 writes it.
  if constexpr (C > 1) cluster_sync();
  if (rank == 0 && tid == 0) p.pos[head] = pos;
}

}  // namespace tttc
