// io.cuh: moving one mini-batch between device memory and the CTA's working matrices: token rows
// in the spec's dtype (rows past the end of the sequence read as zero, so a short last mini-batch
// needs no special code), per-token f32 rows, and per-CTA accumulators.
#pragma once

#include "tttc/numeric.cuh"

namespace tttc {

// dst[K,F] (f32) <- rows [0, valid) of src (stride_t elements apart), zeros after.
template <class T>
__device__ __noinline__ void load_tokens(float* dst, int K, int F, const T* src, long long stride_t,
                                         int valid) {
  for (int idx = threadIdx.x; idx < K * F; idx += blockDim.x) {
    const int t = idx / F, j = idx % F;
    dst[idx] = t < valid ? to_float(src[t * stride_t + j]) : 0.f;
  }
  __syncthreads();
}

template <class T>
__device__ __noinline__ void store_tokens(T* dst, const float* src, int K, int F,
                                          long long stride_t, int valid) {
  for (int idx = threadIdx.x; idx < K * F; idx += blockDim.x) {
    const int t = idx / F, j = idx % F;
    if (t < valid) dst[t * stride_t + j] = from_float<T>(src[idx]);
  }
  __syncthreads();
}

// dst[N] <- src[0, valid) (elements `stride` apart), zeros after.
__device__ __noinline__ void load_vector(float* dst, int N, const float* src, int valid,
                                         int stride = 1) {
  for (int i = threadIdx.x; i < N; i += blockDim.x) dst[i] = i < valid ? src[i * stride] : 0.f;
  __syncthreads();
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
