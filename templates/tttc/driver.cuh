// driver.cuh: the two kernels' outer structure. One CTA owns one (batch row, head) and walks its
// mini-batches in order with the state kept on chip (shared memory) or in its own workspace.
// The forward saves the state at the start of every checkpoint group; the backward walks the
// groups in reverse, recomputes the states inside a group, then back-propagates step by step.
// `Step` is the generated per-mini-batch code; `Cfg` holds the generated constants and offsets.
#pragma once

#include "tttc/fragment_order.cuh"
#include "tttc/io.cuh"
#include "tttc/ops.cuh"
#include "tttc/params.h"
#include "tttc/step_context.cuh"

namespace tttc {

// With Cfg::kContextInMemory, keeps the step context in local memory and makes the generated step
// read each field where it is used. A step makes 50-300 __noinline__ calls (matmuls, reductions,
// I/O) and ptxas lets a caller keep only the registers its callees leave unused, which the large
// matmul blocks nearly exhaust; context fields, arena addresses (A + offset, computed once and
// kept) and the driver's loop state held in registers across those calls are then spilled (MLP
// backwards, 128 registers). Loads of the context after a call are single L1 hits, as the spill
// reloads were. Where nothing spills, registers are faster (mlp2 forward: 12.8 ms in memory,
// 11.1 in registers, on an H200), so the runtime compiles this variant only when the default one
// spills (runtime/jit.cpp).
template <class Cfg>
__device__ __forceinline__ void context_in_memory(const void* c) {
  if constexpr (Cfg::kContextInMemory) asm volatile("" : : "l"(c) : "memory");
}

// The CTA's index, read again where it is used: values derived from blockIdx.x at the start
// would otherwise stay live (spilled) across every step until the kernel's epilogue.
__device__ __forceinline__ int cta_index() {
  int i;
  asm volatile("mov.u32 %0, %%ctaid.x;" : "=r"(i));
  return i;
}

// The forward's checkpoints from a state in shared memory, on sm_90: bulk copies (16 KiB each,
// issued by one thread apiece) that run while the step computes; the step waits for them to have
// read the state before it updates it (wait_checkpoint_reads, which codegen puts before the
// first state write). Elsewhere, or for a destination not 16-byte aligned, a plain copy.
template <class Cfg>
constexpr bool kBulkCheckpoints = Cfg::kS % 4 == 0 && Cfg::kSmemState % 4 == 0 && Cfg::kStateShared;

template <class Cfg>
__device__ __forceinline__ void store_checkpoint(float* dst, const float* state) {
#if __CUDA_ARCH__ >= 900
  if constexpr (kBulkCheckpoints<Cfg>) {
    if ((reinterpret_cast<unsigned long long>(dst) & 15) == 0) {
      constexpr long long kBytes = Cfg::kS * 4, kChunk = 16384;
      asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // the state's last writes
      __syncthreads();
      for (long long at = threadIdx.x * kChunk; at < kBytes; at += blockDim.x * kChunk) {
        const unsigned size = static_cast<unsigned>(min(kChunk, kBytes - at));
        const unsigned src =
            static_cast<unsigned>(__cvta_generic_to_shared(state)) + static_cast<unsigned>(at);
        asm volatile(
            "cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n"
            "cp.async.bulk.commit_group;" ::"l"(reinterpret_cast<char*>(dst) + at),
            "r"(src), "r"(size)
            : "memory");
      }
      return;
    }
  }
#endif
  copy_floats(dst, state, Cfg::kS);
}

template <class Cfg>
__device__ __forceinline__ void wait_checkpoint_reads() {
#if __CUDA_ARCH__ >= 900
  if constexpr (kBulkCheckpoints<Cfg>) {
    asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
    __syncthreads();
  }
#endif
}

// Asks L2 for mini-batch m's token rows (q, k, v: one thread a row) a step ahead: the step's
// loads then wait on L2, not on device memory.
template <class T, int K, int F>
__device__ __forceinline__ void prefetch_tokens(const ForwardParams& p, int b, int h, int m) {
  const int t = threadIdx.x, row = t % K;
  const long long token = 1LL * m * K + row;
  if (t >= 3 * K || token >= p.T) return;
  const char* at = reinterpret_cast<const char*>(token_ptr<T>(t < K       ? p.q
                                                              : t < 2 * K ? p.k
                                                                          : p.v,
                                                              b, h, token));
#pragma unroll
  for (int byte = 0; byte < F * static_cast<int>(sizeof(T)); byte += 128)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(at + byte));
}

template <class Cfg, class Step>
__device__ void forward_kernel(const ForwardParams& p) {
  using T = typename Cfg::Elem;
  constexpr int K = Cfg::kK, F = Cfg::kF, G = Cfg::kGroup;
  constexpr long long S = Cfg::kS;
  extern __shared__ float4 shared_raw[];
  float* smem = reinterpret_cast<float*>(shared_raw);
  const int bh = blockIdx.x, b = bh / p.H, h = bh % p.H;
  float* ws = p.workspace ? p.workspace + bh * Cfg::kWorkspaceFloats : nullptr;
  float* state = Cfg::kStateShared ? smem + Cfg::kSmemState : p.state_final + bh * S;

  StepContext<T> c{};
  c.arena = Cfg::kArenaShared ? smem + Cfg::kSmemArena : ws + Cfg::kWsArena;
  c.arena_shared = smem + Cfg::kSmemArena;  // a global arena's on-chip part, if any
  c.state_in = state;
  c.state_out = state;  // in place: codegen checks no op reads the old state after its update
  bind_head<T, F>(c, p, h);
  copy_floats(state, p.state0 + b * p.state0_stride_b + h * S, S);

  const int steps = num_steps(p.T, K), checkpoints = (steps + G - 1) / G;
  for (int m = 0; m < steps; ++m) {
    if (m % G == 0)
      store_checkpoint<Cfg>(p.checkpoints + (1LL * bh * checkpoints + m / G) * S, state);
    bind_forward_step(c, p, b, h, m, K);
    prefetch_tokens<T, K, F>(p, b, h, m + 1);
    context_in_memory<Cfg>(&c);
    Step::forward(c);
  }
  if (Cfg::kStateShared) copy_floats(p.state_final + cta_index() * S, state, S);
#if __CUDA_ARCH__ >= 900
  if constexpr (kBulkCheckpoints<Cfg>) asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
#endif
}

// One state matrix of a tile forward's checkpoint (fragment order) into the packed layout, by the
// whole CTA: a warp reads 256 contiguous bytes; a thread issues 16 loads before their stores (one
// at a time, each would wait for memory, since the store might alias the next load; batches of 8
// and 16 measured alike on the H200, session 24).
template <int R, int C, int Split, int Warps>
__device__ __forceinline__ void unpack_fragments(float* packed, const float* fragments) {
  constexpr int kPairs = R * C / 2, kBatch = 16;
  const float2* src = reinterpret_cast<const float2*>(fragments);
  for (int q0 = threadIdx.x; q0 < kPairs; q0 += kBatch * blockDim.x) {
    float2 v[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int q = q0 + u * blockDim.x;
      v[u] = q < kPairs ? src[q] : make_float2(0.f, 0.f);
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int q = q0 + u * blockDim.x;
      if (q < kPairs)
        *reinterpret_cast<float2*>(packed + packed_index<R, C, Split, Warps>(2 * q)) = v[u];
    }
  }
}
// A bias: the same layout in both.
template <int C>
__device__ __forceinline__ void copy_row(float* dst, const float* src) {
  for (int k = threadIdx.x; k < C; k += blockDim.x) dst[k] = src[k];
}

template <class Cfg, class Step>
__device__ void backward_kernel(const BackwardParams& p) {
  using T = typename Cfg::Elem;
  constexpr int K = Cfg::kK, F = Cfg::kF, G = Cfg::kGroup;
  constexpr long long S = Cfg::kS;
  extern __shared__ float4 shared_raw[];
  float* smem = reinterpret_cast<float*>(shared_raw);
  // This CTA's (b, h) and workspace are derived again wherever they are used (see cta_index).
  const auto workspace = [&] { return p.workspace + cta_index() * Cfg::kWorkspaceFloats; };
  const auto dstate_buffer = [&](bool second) {  // dLoss/dstate after and before a step
    return workspace() + (second ? Cfg::kWsDstateB : Cfg::kWsDstateA);
  };

  StepContext<T> c{};
  {
    const int bh = cta_index(), h = bh % p.H;
    float* ws = workspace();
    c.arena = Cfg::kArenaShared ? smem + Cfg::kSmemArena : ws + Cfg::kWsArena;
    c.arena_shared = smem + Cfg::kSmemArena;  // a global arena's on-chip part, if any
    bind_head<T, F>(c, p, h);
    c.acc_tau = ws + Cfg::kWsAccTau;
    c.acc_gamma = ws + Cfg::kWsAccGamma;
    c.acc_beta = ws + Cfg::kWsAccBeta;
    zero_floats(c.acc_tau, K + 2 * F);  // the three accumulators are contiguous
    if (p.dstate_final)
      copy_floats(dstate_buffer(false), p.dstate_final + bh * S, S);
    else
      zero_floats(dstate_buffer(false), S);
  }

  // The walk's bounds stay in memory like the context (see context_in_memory).
  struct {
    int steps, groups;
  } walk{num_steps(p.T, K), (num_steps(p.T, K) + G - 1) / G};
  for (int g = walk.groups - 1; g >= 0; --g) {
    const int first = g * G;
    const auto last = [&] { return min(first + G, walk.steps) - 1; };  // read where needed
    // The states at the start of the group's later steps (rematerialised); the first step reads
    // the checkpoint where it lies.
    const auto group_state = [&](int m) {
      return workspace() + Cfg::kWsGroupStates + (m - first - 1) * S;
    };
    // Where the group's checkpoint lies, derived again where used (see cta_index): a pointer held
    // across the steps costs registers. With Cfg::kFragmentCheckpoints (a tile forward's), the
    // steps read its packed copy in the workspace.
    const auto checkpoint = [&](int group) {
      return p.checkpoints + (1LL * cta_index() * walk.groups + group) * S;
    };
    if constexpr (Cfg::kFragmentCheckpoints) {
      __syncthreads();  // the previous group's steps are done reading the slot
      Cfg::unpack_checkpoint(workspace() + Cfg::kWsCheckpoint, checkpoint(g));
      __syncthreads();
      // The next group's (the walk is in reverse): its loads then wait on L2, not device memory.
      if (g > 0) prefetch_l2(checkpoint(g - 1), S);
    }
    const auto bind_step = [&](int m) {
      const int bh = cta_index();
      bind_backward_step(c, p, bh / p.H, bh % p.H, m, K);
      c.state_in = m != first                     ? group_state(m)
                   : Cfg::kFragmentCheckpoints ? workspace() + Cfg::kWsCheckpoint
                                                  : checkpoint(g);
    };
    if constexpr (G > 1) {  // with G == 1 every state is a checkpoint: codegen omits advance()
      for (int m = first; m < last(); ++m) {  // rematerialise the states inside the group
        bind_step(m);
        c.state_out = group_state(m + 1);
        context_in_memory<Cfg>(&c);
        context_in_memory<Cfg>(&walk);
        Step::advance(c);
      }
    }
    for (int m = last(); m >= first; --m) {
      // Step m reads the gradient the later steps left and writes its own into the other
      // buffer: the two alternate, so the parity of the steps already done picks them.
      const bool odd = (walk.steps - 1 - m) % 2;
      bind_step(m);
      c.dstate_next = dstate_buffer(odd);
      c.dstate_prev = dstate_buffer(!odd);
      context_in_memory<Cfg>(&c);
      context_in_memory<Cfg>(&walk);
      Step::backward(c);
    }
  }
  // dLoss/dtheta_0 for this (b, h), in the buffer the last step wrote.
  const int bh = cta_index(), b = bh / p.H, h = bh % p.H;
  float* d0 = p.dstate0 + b * p.dstate0_stride_b + h * S;
  if (p.dstate0_stride_b == 0)
    atomic_add_floats(d0, dstate_buffer(walk.steps % 2), S);
  else
    copy_floats(d0, dstate_buffer(walk.steps % 2), S);
  atomic_add_floats(p.dtau, c.acc_tau, K);
  atomic_add_floats(p.dgamma + h * F, c.acc_gamma, F);
  atomic_add_floats(p.dbeta + h * F, c.acc_beta, F);
}

}  // namespace tttc
