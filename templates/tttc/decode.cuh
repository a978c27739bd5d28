// decode.cuh: the token-by-token decode kernel of docs/decode.md. One CTA owns one (row, head):
// per token it runs the inner model on k at the mini-batch start state theta, the LayerNorm loss
// gradient and the layers' backward (matrix-vector products), then one fused pass per layer that
// adds the token's rank-1 gradient to the accumulator A and evaluates the query path with
// theta - tau_i A (at a mini-batch's last token it folds A into theta instead). The decode state
// lives in a pool in global memory (f32), addressed through per-row slot indices, and the
// position lives there too: a launch needs no host-side knowledge of where each row stands, so a
// step can be captured in a CUDA graph once and replayed. Generic over depth, widths, activation
// and element type through the generated `Cfg`: kF, kK, kDepth, kHidden, kThreads, kAct, kEps,
// kS (state floats) and kSmemFloats (dynamic shared memory, checked below).
#pragma once

#include "tttc/numeric.cuh"
#include "tttc/params.h"

namespace tttc {
namespace decode {

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

// Shared memory: x, z, G stacks, q, v, two query-path buffers, the reduction scratch (a float4
// per thread).
template <class Cfg>
struct Smem {
  static constexpr int kStack = x_offset<Cfg>(Cfg::kDepth);
  static constexpr int kX = 0, kZ = kStack, kG = 2 * kStack, kQ = 3 * kStack, kV = kQ + Cfg::kF;
  static constexpr int kBar0 = kV + Cfg::kF, kBar1 = kBar0 + max_width<Cfg>();
  static constexpr int kRed = kBar1 + max_width<Cfg>();
  static constexpr int kFloats = kRed + 4 * Cfg::kThreads;
  static_assert(kFloats <= Cfg::kSmemFloats, "codegen's decode shared-memory size is too small");
  static_assert(kRed % 4 == 0, "the reduction scratch holds float4s");
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One layer, column-parallel over the outputs n (coalesced float4 reads of the row-major
// W [M, N], 4 columns per thread):
//   y[n] = sum_m xin[m] E[m, n] + e_b[n],  ya[n] = act(y[n]) (each written when non-null), with
//   E = W, e_b = b                                          (kUpdate false: the state at theta)
//   E = W - tau (AW + lr xk^T G), e_b = b - tau (Ab + lr G)  (kUpdate true), where the new A is
//   written back, or at the mini-batch's end (commit) E is written to W and A is zeroed.
// Threads split the rows R ways when there are fewer column groups than threads; partial sums
// meet in `red` (4 NT floats) in a fixed order, so the result does not depend on timing
// (CUDA-graph replays equal eager launches bit for bit). W, AW: 16-byte aligned (the runtime
// checks the pool; every offset in the packed state is a multiple of 16 floats).
template <int NT, int M, int N, int Act, bool kUpdate>
__device__ __forceinline__ void layer_pass(float* y, float* ya, const float* xin, float* W,
                                           float* bias, float* AW, float* Ab, const float* xk,
                                           const float* G, float lr, float tau, bool commit,
                                           float* red) {
  static_assert(N % 4 == 0, "decode: widths are multiples of 16");
  constexpr int C = N / 4;  // column groups
  constexpr int R = C >= NT ? 1 : NT / C;
  constexpr int kStep = C >= NT ? NT : C;
  const int tid = threadIdx.x;
  const int r = C >= NT ? 0 : tid / C;
  float4* const W4 = reinterpret_cast<float4*>(W);
  float4* const A4 = reinterpret_cast<float4*>(AW);
  float4* const red4 = reinterpret_cast<float4*>(red);
  for (int c0 = 0; c0 < C; c0 += kStep) {
    const int c = c0 + (C >= NT ? tid : tid % C);
    const bool active = c < C && r < R;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    if (active) {
      float4 lg = make_float4(0.f, 0.f, 0.f, 0.f);
      if (kUpdate)
        lg = make_float4(lr * G[4 * c], lr * G[4 * c + 1], lr * G[4 * c + 2], lr * G[4 * c + 3]);
#pragma unroll 2
      for (int m = r; m < M; m += R) {
        const long long i = 1LL * m * C + c;
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
      if (active) red4[r * C + (c - c0)] = acc;
      __syncthreads();
      if (tid < C) {
        acc = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int j = 0; j < R; ++j) {
          const float4 p = red4[j * C + tid];
          acc.x += p.x, acc.y += p.y, acc.z += p.z, acc.w += p.w;
        }
      }
    }
    if (c < C && r == 0) {
      const float part[4] = {acc.x, acc.y, acc.z, acc.w};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int n = 4 * c + e;
        float bb = bias[n];
        if (kUpdate) {
          const float a = fmaf(lr, G[n], Ab[n]);
          bb = fmaf(-tau, a, bb);
          if (commit) {
            bias[n] = bb;
            Ab[n] = 0.f;
          } else {
            Ab[n] = a;
          }
        }
        const float z = part[e] + bb;
        if (y) y[n] = z;
        if (ya) ya[n] = activation<Act, 0>(z);
      }
    }
    if constexpr (R > 1) __syncthreads();  // `red` is reused by the next column block
  }
  __syncthreads();
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

// What one token's layer passes share: shared-memory vectors, the head's state, the token's
// scalars. Passed to the per-layer templates below, which recurse over l so that every layer's
// widths and offsets are compile-time constants.
struct Work {
  float *sx, *sz, *sg, *sq, *red, *bar0, *bar1;
  float *theta, *A;
  float lr, tau;
  bool commit;
  __device__ float* bar(int i) const { return i % 2 ? bar1 : bar0; }
};

// 1. The inner model on k at theta, layers l..L: z_l and x_l = act(z_l).
template <class Cfg, int l>
__device__ __forceinline__ void inner_forward(const Work& w) {
  constexpr int F = Cfg::kF, L = Cfg::kDepth, M = width<Cfg>(l - 1), N = width<Cfg>(l);
  constexpr long long o = weight_offset<Cfg>(l);
  layer_pass<Cfg::kThreads, M, N, Cfg::kAct, false>(
      w.sz + x_offset<Cfg>(l) - F, l < L ? w.sx + x_offset<Cfg>(l) : nullptr,
      w.sx + x_offset<Cfg>(l - 1), w.theta + o, w.theta + o + M * N, nullptr, nullptr, nullptr,
      nullptr, 0.f, 0.f, false, w.red);
  if constexpr (l < L) inner_forward<Cfg, l + 1>(w);
}

// 2b. G_l from G_{l+1} at theta, for l down to 1.
template <class Cfg, int l>
__device__ __forceinline__ void inner_backward(const Work& w) {
  if constexpr (l >= 1) {
    constexpr int F = Cfg::kF, M = width<Cfg>(l), N = width<Cfg>(l + 1);
    backward_rows<Cfg::kThreads, M, N, Cfg::kAct>(
        w.sg + x_offset<Cfg>(l) - F, w.sz + x_offset<Cfg>(l) - F,
        w.theta + weight_offset<Cfg>(l + 1), w.sg + x_offset<Cfg>(l + 1) - F);
    inner_backward<Cfg, l - 1>(w);
  }
}

// 3. A += lr grad and the query path at theta - tau A, layers l..L (fused, one pass each);
// zbar_L ends in bar(L).
template <class Cfg, int l>
__device__ __forceinline__ void update_and_query(const Work& w) {
  constexpr int F = Cfg::kF, L = Cfg::kDepth, M = width<Cfg>(l - 1), N = width<Cfg>(l);
  constexpr long long o = weight_offset<Cfg>(l);
  layer_pass<Cfg::kThreads, M, N, Cfg::kAct, true>(
      l == L ? w.bar(l) : nullptr, l < L ? w.bar(l) : nullptr, l == 1 ? w.sq : w.bar(l - 1),
      w.theta + o, w.theta + o + M * N, w.A + o, w.A + o + M * N, w.sx + x_offset<Cfg>(l - 1),
      w.sg + x_offset<Cfg>(l) - F, w.lr, w.tau, w.commit, w.red);
  if constexpr (l < L) update_and_query<Cfg, l + 1>(w);
}

}  // namespace decode

template <class Cfg>
__device__ void decode_kernel(const DecodeParams& p) {
  using namespace decode;
  using T = typename Cfg::Elem;
  using Sm = Smem<Cfg>;
  constexpr int F = Cfg::kF, L = Cfg::kDepth, NT = Cfg::kThreads;
  constexpr long long S = Cfg::kS;
  static_assert(weight_offset<Cfg>(L + 1) == S, "decode: packed state size mismatch");
  extern __shared__ float4 shared_raw[];
  float* sm = reinterpret_cast<float*>(shared_raw);
  const int bh = blockIdx.x, b = bh / p.H, h = bh % p.H, tid = threadIdx.x;
  const int slot = p.slots[b];
  T* const out0 = static_cast<T*>(p.out.ptr) + b * p.out.stride_b + h * p.out.stride_h;

  if (slot < 0 || slot >= p.num_slots) {  // a bad slot index: leave the pool alone, say so
    for (int i = tid; i < p.T * F; i += NT)
      out0[(i / F) * p.out.stride_t + i % F] = from_float<T>(__int_as_float(0x7fc00000));
    return;
  }
  const long long head = 1LL * slot * p.H + h;
  float* const theta = p.theta + head * S;
  float* const A = p.accum + head * S;
  int pos;
  if (p.init) {  // prefill's tail: start from the forward's state at a mini-batch boundary
    const float* src = p.init + b * p.init_stride_b + 1LL * h * S;
    for (long long i = tid; i < S; i += NT) {
      theta[i] = src[i];
      A[i] = 0.f;
    }
    pos = 0;
    __syncthreads();
  } else {
    pos = p.pos[head];
  }
  const float* gamma = p.gamma + h * F;
  const float* beta = p.beta + h * F;
  Work w;  // NVRTC compiles C++17: no designated initializers
  w.sx = sm + Sm::kX;
  w.sz = sm + Sm::kZ;
  w.sg = sm + Sm::kG;
  w.sq = sm + Sm::kQ;
  w.red = sm + Sm::kRed;
  w.bar0 = sm + Sm::kBar0;
  w.bar1 = sm + Sm::kBar1;
  w.theta = theta;
  w.A = A;
  float* const sv = sm + Sm::kV;

  for (int t = 0; t < p.T; ++t) {
    const T* q = token_ptr<T>(p.q, b, h, t);
    const T* k = token_ptr<T>(p.k, b, h, t);
    const T* v = token_ptr<T>(p.v, b, h, t);
    for (int j = tid; j < F; j += NT) {
      w.sq[j] = to_float(q[j]);
      w.sx[j] = to_float(k[j]);  // x_0 = k
      sv[j] = to_float(v[j]);
    }
    w.lr = p.lr[b * p.lr_stride_b + h * p.lr_stride_h + t];
    w.tau = p.tau[pos];
    w.commit = pos == Cfg::kK - 1;
    __syncthreads();

    inner_forward<Cfg, 1>(w);
    // 2a. The loss gradient at z_L (one warp), then back through the layers.
    if (tid < 32)
      loss_gradient_warp<Cfg>(w.sg + x_offset<Cfg>(L) - F, w.sz + x_offset<Cfg>(L) - F, w.sx, sv,
                              gamma, beta);
    __syncthreads();
    inner_backward<Cfg, L - 1>(w);
    update_and_query<Cfg, 1>(w);
    // 4. out = q + LN(zbar_L); advance the position.
    if (tid < 32) output_warp<Cfg, T>(out0 + t * p.out.stride_t, w.bar(L), w.sq, gamma, beta);
    pos = w.commit ? 0 : pos + 1;
    __syncthreads();  // the next token overwrites sq, sx, sv
  }
  if (tid == 0) p.pos[head] = pos;
}

}  // namespace tttc
