// host_cuda_shim.hpp: just enough of CUDA's device model, on the host, to compile and run
// templates/tttc/decode.cuh with g++ for testing without a GPU: one std::thread per CUDA thread,
// __syncthreads as a CTA-wide std::barrier, warp shuffles through a per-warp exchange with a
// 32-thread barrier, each CTA's shared memory its own array, and a thread-block cluster as CTAs
// run together: the cluster barrier a std::barrier of all their threads, a distributed
// shared-memory address the same offset in another CTA's array, an asynchronous copy a memcpy.
// Only the f32 element type is supported (the f16/bf16 conversions are PTX asm).
#pragma once
#define TTTC_DECODE_HOST 1

#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
#define __noinline__
#define __shared__
#define __launch_bounds__(...)

struct float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
struct HostDim3 {
  unsigned x = 0, y = 0, z = 0;
};
inline thread_local HostDim3 threadIdx, blockIdx, gridDim;

// The synchronisation objects of the CTA that the calling thread belongs to.
struct HostCta {
  explicit HostCta(int threads) : block(threads) {
    for (int w = 0; w < (threads + 31) / 32; ++w)
      warps.push_back(std::make_unique<std::barrier<>>(32));
    lanes.resize(warps.size() * 32);
  }
  std::barrier<> block;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<float> lanes;
};
inline thread_local HostCta* host_cta = nullptr;

inline void __syncthreads() { host_cta->block.arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int offset) {
  const int w = threadIdx.x / 32, l = threadIdx.x % 32;
  host_cta->lanes[w * 32 + l] = v;
  host_cta->warps[w]->arrive_and_wait();
  const float r = host_cta->lanes[w * 32 + (l ^ offset)];
  host_cta->warps[w]->arrive_and_wait();  // nobody overwrites a lane before all have read
  return r;
}
inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}
inline float __expf(float x) { return std::exp(x); }
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  return u;
}

// A cluster of CTAs run together (one std::thread per CUDA thread of each): its barrier and
// every CTA's shared memory.
struct HostCluster {
  HostCluster(int ctas, int threads_per_cta, size_t smem_floats)
      : bar(static_cast<std::ptrdiff_t>(ctas) * threads_per_cta) {
    for (int i = 0; i < ctas; ++i) {
      auto s = std::make_unique<float[]>(smem_floats);
      for (size_t j = 0; j < smem_floats; ++j) s[j] = NAN;  // poisoned
      smem.push_back(std::move(s));
    }
  }
  std::barrier<> bar;
  std::vector<std::unique_ptr<float[]>> smem;
};
inline thread_local HostCluster* host_cluster = nullptr;
inline thread_local float* host_smem = nullptr;

inline float* host_shared_base() { return host_smem; }
inline void cluster_sync() { host_cluster->bar.arrive_and_wait(); }
inline const float* map_rank(const float* p, int rank) {
  return host_cluster->smem[rank].get() + (p - host_smem);
}
// Asynchronous copies land only when waited for, as they may on the GPU, so that a read of a
// slice before the wait sees stale shared memory and fails the comparison.
inline thread_local std::vector<std::pair<float*, const float*>> host_pending_copies;
inline void copy16_async(const float* smem, int offset, const float* gmem) {
  host_pending_copies.emplace_back(const_cast<float*>(smem) + offset, gmem);
}
inline void copy_async_wait() {
  for (auto [dst, src] : host_pending_copies) std::memcpy(dst, src, 16);
  host_pending_copies.clear();
}
