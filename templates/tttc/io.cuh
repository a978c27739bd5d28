// io.cuh: moving one mini-batch between device memory and the CTA's working matrices: token rows
// in the spec's dtype (rows past the end of the sequence read as zero, so a short last mini-batch
// needs no special code), per-token f32 rows, and per-CTA accumulators.
#pragma once

#include "tttc/numeric.cuh"

namespace tttc {

// A thread's walk over the elements of a row-major [*, C] matrix, blockDim.x apart: the row and
// column advance without a division per element (C is a run-time value where this is used, and
// an integer division costs about 20 instructions).
struct CtaWalk {
  int i, j;
  const int di, dj, C;
  __device__ explicit CtaWalk(int cols)
      : i(threadIdx.x / cols),
        j(threadIdx.x % cols),
        di(blockDim.x / cols),
        dj(blockDim.x % cols),
        C(cols) {}
  __device__ void next() {
    i += di, j += dj;
    if (j >= C) j -= C, ++i;  // dj < C: once is enough
  }
};

// A thread's elements of a row-major [n / cols, cols] matrix, blockDim.x apart, kBatch at a time:
// value(i, j) for each of a batch, then store(index, value) for each. With no store between them
// the batch's loads are all in flight at once (one element at a time, each would wait a full
// memory latency: a store might alias the next load).
template <int kBatch, class Value, class Store>
__device__ __forceinline__ void batched_walk(int n, int cols, Value value, Store store) {
  CtaWalk w(cols);
  for (int first = threadIdx.x; first < n; first += kBatch * blockDim.x) {
    float v[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u, w.next())
      v[u] = first + u * static_cast<int>(blockDim.x) < n ? value(w.i, w.j) : 0.f;
#pragma unroll
    for (int u = 0; u < kBatch; ++u)
      if (const int idx = first + u * static_cast<int>(blockDim.x); idx < n) store(idx, v[u]);
  }
}

// dst[K,F] (f32) <- rows [0, valid) of src (stride_t elements apart), zeros after. The input
// loads end with no barrier: the generated step puts one after the last of them.
template <class T>
__device__ __noinline__ void load_tokens(float* dst, int K, int F, const T* src, long long stride_t,
                                         int valid) {
  batched_walk<4>(
      K * F, F, [&](int i, int j) { return i < valid ? to_float(src[i * stride_t + j]) : 0.f; },
      [&](int idx, float v) { dst[idx] = v; });
}

template <class T>
__device__ __noinline__ void store_tokens(T* dst, const float* src, int K, int F,
                                          long long stride_t, int valid) {
  CtaWalk w(F);
  for (int idx = threadIdx.x; idx < K * F; idx += blockDim.x, w.next())
    if (w.i < valid) dst[w.i * stride_t + w.j] = from_float<T>(src[idx]);
  __syncthreads();
}

// dst[N] <- src[0, valid) (elements `stride` apart), zeros after; no barrier (as load_tokens).
__device__ __noinline__ void load_vector(float* dst, int N, const float* src, int valid,
                                         int stride = 1) {
  for (int i = threadIdx.x; i < N; i += blockDim.x) dst[i] = i < valid ? src[i * stride] : 0.f;
}

// dst[0, valid) (elements `stride` apart) <- src.
__device__ __noinline__ void store_vector(float* dst, const float* src, int N, int valid,
                                          int stride = 1) {
  for (int i = threadIdx.x; i < N && i < valid; i += blockDim.x) dst[i * stride] = src[i];
  __syncthreads();
}

// acc[i] += src[i] for i < N.
__device__ __noinline__ void accumulate(float* acc, const float* src, int N) {
  for (int i = threadIdx.x; i < N; i += blockDim.x) acc[i] += src[i];
  __syncthreads();
}

// Asks L2 for the n floats at p (global memory), one 128-byte line a thread: a loop that then
// walks them one element at a time waits on L2, not on device memory.
__device__ __forceinline__ void prefetch_l2(const float* p, int n) {
  for (int line = threadIdx.x; line * 32 < n; line += blockDim.x)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p + 32 * line));
}

// Inlined and one float at a time: a vector copy (unrolled, or as a call) inside the forward's
// step loop costs registers that make the MLP forwards spill.
__device__ __forceinline__ void copy_floats(float* dst, const float* src, long long n) {
  for (long long i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
  __syncthreads();
}

__device__ __forceinline__ void zero_floats(float* dst, long long n) {
  for (long long i = threadIdx.x; i < n; i += blockDim.x) dst[i] = 0.f;
  __syncthreads();
}

__device__ __forceinline__ void atomic_add_floats(float* dst, const float* src, long long n) {
  for (long long i = threadIdx.x; i < n; i += blockDim.x) atomicAdd(dst + i, src[i]);
  __syncthreads();
}

}  // namespace tttc
