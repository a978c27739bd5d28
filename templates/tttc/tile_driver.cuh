// tile_driver.cuh: the outer structure of the tile path's two kernels. A CTA hosts Cfg::kTeams
// teams of one warp; each team owns one (batch row, head) and walks its mini-batches with the
// state in registers or its own shared memory (Step::State), never synchronising with the other
// teams. The forward saves the state at the start of every checkpoint group; the backward walks
// the groups in reverse, recomputes the states inside a group (advance), then back-propagates
// step by step with the adjoint state (Step::DState) and the shared-parameter gradients
// (Accum) on chip, and adds them to the outputs once at the end.
#pragma once

#include "tttc/params.h"
#include "tttc/step_context.cuh"
#include "tttc/tile.cuh"

namespace tttc {

// Gradients of parameters shared by every step: tau [K], gamma and beta [F].
template <int K, int F>
struct Accum {
  tile::PerRow<K> tau;
  tile::PerCol<F> gamma, beta;
  __device__ __forceinline__ void zero() {
    tile::fill(tau, 0.f);
    tile::fill(gamma, 0.f);
    tile::fill(beta, 0.f);
  }
};

// Where a warp works: its team's (b, h), its rank in the team, the team's scratch and barrier,
// its token stages and its own shared memory. False when the grid's last CTA has more teams than
// heads remain. Team memory: [scratch][stage 0][stage 1][warp 0]...[warp W-1].
template <class Cfg>
struct TeamPlace {
  int bh, b, h;
  tile::Team team;
  char* stages;
  float* warp_smem;
  // This warp's team in the grid (CTA-major) and its shared memory.
  __device__ __forceinline__ long long place() {
    extern __shared__ float4 shared_raw[];
    const int warp = threadIdx.x >> 5, index = warp / Cfg::kWarps;
    float* base = reinterpret_cast<float*>(shared_raw) + index * Cfg::kTeamSmemFloats;
    team = {warp % Cfg::kWarps, 1 + index, 32 * Cfg::kWarps, base};
    stages = reinterpret_cast<char*>(base + Cfg::kScratchFloats);
    warp_smem =
        base + Cfg::kScratchFloats + 2 * Cfg::kStageBytes / 4 + team.rank * Cfg::kWarpSmemFloats;
    return 1LL * blockIdx.x * Cfg::kTeams + index;
  }
  __device__ __forceinline__ void head(int bh_, int H) { bh = bh_, b = bh / H, h = bh % H; }
  // This warp's region of its (b, h)'s workspace (Cfg::kWarpGlobalFloats: values and members
  // that live in global memory), after the group's states; null where it has none.
  __device__ __forceinline__ float* warp_global(float* workspace) const {
    if constexpr (Cfg::kWarpGlobalFloats == 0) return nullptr;
    return workspace + bh * Cfg::kWorkspaceFloats + Cfg::kGlobalOffset +
           team.rank * Cfg::kWarpGlobalFloats;
  }
  __device__ __forceinline__ bool bind(int B, int H) {
    const long long index = place();
    if (index >= B * H) return false;  // the whole team leaves: no barrier waits for it
    head(static_cast<int>(index), H);
    return true;
  }
};

// Copies one mini-batch's tokens (and learning rates) into a stage of the team's shared memory,
// rows past the mini-batch's end as zeros, with cp.async: the copy of step m + 1 runs while step
// m computes. Every thread of the team copies a share of 16-byte chunks where the rows are
// 16-byte aligned (the usual case), else of 4-byte words; 16-bit tokens whose rows are not even
// 4-byte aligned are copied element by element (synchronously).
__device__ __forceinline__ void copy_word_async(void* dst, const void* src, bool present) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(d), "l"(src),
               "r"(present ? 4 : 0)
               : "memory");
}
__device__ __forceinline__ void copy_chunk_async(void* dst, const void* src, bool present) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src),
               "r"(present ? 16 : 0)
               : "memory");
}

template <class Cfg, class T>
__device__ __forceinline__ void stage_tensor(T* dst, const T* src, long long stride, int valid,
                                             int tid, int threads) {
  constexpr int kRows = tile::pad16(Cfg::kK), kF = Cfg::kF, kStride = Cfg::kStageRowStride;
  // Stage rows are 16-byte aligned (row stride f + 8 elements, f a multiple of 16).
  const bool chunks =
      (kF * sizeof(T)) % 16 == 0 &&
      ((reinterpret_cast<unsigned long long>(src) | (stride * sizeof(T))) % 16) == 0;
  const bool words = sizeof(T) == 4 || tile::pairs_aligned(src, stride);
  if (chunks) {
    constexpr int kChunks = kF * sizeof(T) / 16;
    for (int i = tid; i < kRows * kChunks; i += threads) {
      const int row = i / kChunks, c = i % kChunks;
      const bool present = row < valid;
      copy_chunk_async(reinterpret_cast<char*>(dst + row * kStride) + 16 * c,
                       reinterpret_cast<const char*>(src + (present ? row * stride : 0)) + 16 * c,
                       present);
    }
  } else if (words) {
    constexpr int kWords = kF * sizeof(T) / 4;
    for (int i = tid; i < kRows * kWords; i += threads) {
      const int row = i / kWords, w = i % kWords;
      const bool present = row < valid;
      copy_word_async(reinterpret_cast<char*>(dst + row * kStride) + 4 * w,
                      reinterpret_cast<const char*>(src + (present ? row * stride : 0)) + 4 * w,
                      present);
    }
  } else {
    for (int i = tid; i < kRows * kF; i += threads) {
      const int row = i / kF, col = i % kF;
      T zero{};
      dst[row * kStride + col] = row < valid ? src[row * stride + col] : zero;
    }
  }
}

template <class Cfg>
struct Staging {
  using T = typename Cfg::Elem;
  char* stages;
  // Tensor `which` (0 Q, 1 K, 2 V, 3 dO: the backward kernel's stages only) and the learning
  // rates of stage `buf`.
  __device__ __forceinline__ T* tensor(int buf, int which) const {
    return reinterpret_cast<T*>(stages + buf * Cfg::kStageBytes + which * Cfg::kStageTensorBytes);
  }
  __device__ __forceinline__ float* lr(int buf) const {
    return reinterpret_cast<float*>(stages + buf * Cfg::kStageBytes +
                                    Cfg::kStageTensors * Cfg::kStageTensorBytes);
  }
  template <class Params>
  __device__ __forceinline__ void issue(const Params& p, int b, int h, int m, int buf,
                                        const tile::Team& team, bool with_dout) const {
    const long long t0 = 1LL * m * Cfg::kK;
    const int valid = min(Cfg::kK, static_cast<int>(p.T - t0));
    const int tid = team.rank * 32 + tile::lane_id(), threads = team.threads;
    const TokenTensor* tensors[4] = {&p.q, &p.k, &p.v, with_dout ? dout_of(p) : nullptr};
    for (int which = 0; which < Cfg::kStageTensors; ++which)
      if (tensors[which])
        stage_tensor<Cfg, T>(tensor(buf, which), token_ptr<T>(*tensors[which], b, h, t0),
                             tensors[which]->stride_t, valid, tid, threads);
    const float* lr = p.lr + b * p.lr_stride_b + h * p.lr_stride_h + t0 * p.lr_stride_t;
    for (int i = tid; i < tile::pad16(Cfg::kK); i += threads)
      copy_word_async(this->lr(buf) + i, lr + (i < valid ? i : 0) * p.lr_stride_t, i < valid);
    asm volatile("cp.async.commit_group;" ::: "memory");
  }
  // Step m's stage, complete and visible to the whole team; the barrier also proves every warp
  // done with step m - 1 (its stage and its reductions' scratch slots, tile_lowering.cpp).
  __device__ __forceinline__ void wait(const tile::Team& team) const {
    asm volatile("cp.async.wait_group 0;" ::: "memory");
    team.sync();
  }
  static __device__ __forceinline__ const TokenTensor* dout_of(const ForwardParams&) {
    return nullptr;
  }
  static __device__ __forceinline__ const TokenTensor* dout_of(const BackwardParams& p) {
    return &p.dout;
  }
  // Points a step's context at stage `buf`.
  __device__ __forceinline__ void bind(StepContext<T>& c, int buf) const {
    c.tq = tensor(buf, 0), c.tk = tensor(buf, 1), c.tv = tensor(buf, 2);
    c.tdo = Cfg::kStageTensors > 3 ? tensor(buf, 3) : nullptr;
    c.lr = lr(buf);
  }
};

// A checkpoint in the layout both kernels agree on (Cfg::kFragmentCheckpoints: fragment order
// where only tile kernels touch the checkpoints; the packed layout where an arena kernel does).
template <class Cfg, class State>
__device__ __forceinline__ void load_checkpoint(State& st, const float* src) {
  if constexpr (Cfg::kFragmentCheckpoints)
    st.load_frag(src);
  else
    st.load(src);
}
template <class Cfg, class State>
__device__ __forceinline__ void store_checkpoint(const State& st, float* dst) {
  if constexpr (Cfg::kFragmentCheckpoints)
    st.store_frag(dst);
  else
    st.store(dst);
}

// The forward: each team walks its (b, h)'s mini-batches. With Recurrence (a query-split
// forward, Schedule::query_split) the step is `advance` (the state update without the query
// outputs) and every state is a checkpoint; tile_query_kernel then computes the outputs.
template <class Cfg, class Step, bool Recurrence = false>
__device__ void tile_forward_kernel(const ForwardParams& p) {
  using T = typename Cfg::Elem;
  constexpr int K = Cfg::kK, F = Cfg::kF, G = Cfg::kGroup;
  constexpr long long S = Cfg::kS;
  static_assert(!Recurrence || G == 1, "a query split reads every state from the checkpoints");
  TeamPlace<Cfg> at;
  if (!at.bind(p.B, p.H)) return;
  const int bh = at.bh, b = at.b, h = at.h;
  const Staging<Cfg> staging{at.stages};
  typename Step::State st;
  float* const warp_global = at.warp_global(p.workspace);
  st.bind(at.warp_smem, warp_global, at.team.rank);
  st.load(p.state0 + b * p.state0_stride_b + h * S);
  StepContext<T> c{};
  if constexpr (Cfg::kWarpGlobalFloats > 0) c.warp_global = warp_global;
  bind_head<T, F>(c, p, h);
  const int steps = num_steps(p.T, K), checkpoints = (steps + G - 1) / G;
  // Checkpoint n: the state before step n * G.
  const auto checkpoint = [&](int n) { return p.checkpoints + (1LL * bh * checkpoints + n) * S; };
  staging.issue(p, b, h, 0, 0, at.team, false);
  // Checkpoint n (the state before step n * G) is stored at the start of step n * G or, where
  // the step keeps every value in registers (no warp shared memory), at the end of the step
  // before it. Measured on the H200 (session 25): after the step, W7's forward 3.18 -> 2.92 ms
  // and B1 H4 T8192's 0.76 -> 0.70 (register steps; W1 unchanged), but mlp2 at B1 H12 T8192
  // 6.28 -> 6.51 and linear K = 64 0.67 -> 0.69 (steps with values in shared memory).
  constexpr bool kStoreAfterStep = Cfg::kWarpSmemFloats == 0;
  if (kStoreAfterStep) store_checkpoint<Cfg>(st, checkpoint(0));
  for (int m = 0; m < steps; ++m) {
    staging.wait(at.team);  // also: every warp is done with step m - 1's stage
    if (m + 1 < steps) staging.issue(p, b, h, m + 1, (m + 1) & 1, at.team, false);
    if (!kStoreAfterStep && m % G == 0) store_checkpoint<Cfg>(st, checkpoint(m / G));
    bind_forward_step(c, p, b, h, m, K);
    staging.bind(c, m & 1);
    if constexpr (Recurrence)
      Step::advance(st, c, at.warp_smem, at.team);
    else
      Step::forward(st, c, at.warp_smem, at.team);
    if (kStoreAfterStep && (m + 1) % G == 0 && m + 1 < steps)
      store_checkpoint<Cfg>(st, checkpoint((m + 1) / G));
  }
  st.store(p.state_final + bh * S);
}

template <class Cfg, class Step>
__device__ void tile_recurrence_kernel(const ForwardParams& p) {
  tile_forward_kernel<Cfg, Step, true>(p);
}

// A team's run of Cfg::kQueryItems consecutive (b, h, mini-batch) items of a kernel over all of
// them, (b, h)-major (the query kernel, a split backward's output-path kernel).
struct ItemRun {
  long long first, last;
  int steps;
  __device__ __forceinline__ bool empty() const { return first >= last; }
  __device__ __forceinline__ int head_of(long long item) const {
    return static_cast<int>(item / steps);
  }
  __device__ __forceinline__ int step_of(long long item) const {
    return static_cast<int>(item % steps);
  }
};
template <class Cfg, class Params>
__device__ __forceinline__ ItemRun item_run(const Params& p, TeamPlace<Cfg>& at) {
  const long long first = at.place() * Cfg::kQueryItems;
  const int steps = num_steps(p.T, Cfg::kK);
  const long long items = 1LL * p.B * p.H * steps;
  return {first, min(first + Cfg::kQueryItems, items), steps};
}

// Walks a run: body(item, n, staging) with the item's tokens in stage n & 1 and every warp done
// with the previous item. The next item's tokens are staged, and its checkpoint prefetched into
// L2, while the current one computes.
template <class Cfg, class Params, class Body>
__device__ __forceinline__ void for_each_item(const Params& p, const TeamPlace<Cfg>& at,
                                              const ItemRun& run, bool with_dout, Body&& body) {
  const Staging<Cfg> staging{at.stages};
  const int head = run.head_of(run.first);
  staging.issue(p, head / p.H, head % p.H, run.step_of(run.first), 0, at.team, with_dout);
  for (long long item = run.first; item < run.last; ++item) {
    const int n = static_cast<int>(item - run.first);
    staging.wait(at.team);  // also: every warp is done with the previous item's stage
    if (item + 1 < run.last) {
      const int next = run.head_of(item + 1), m = run.step_of(item + 1);
      staging.issue(p, next / p.H, next % p.H, m, (n + 1) & 1, at.team, with_dout);
      tile::prefetch_l2(p.checkpoints + (1LL * next * run.steps + m) * Cfg::kS, Cfg::kS, at.team);
    }
    body(item, n, staging);
  }
}

// The query outputs of a query-split forward, after tile_recurrence_kernel: every (b, h,
// mini-batch) item is independent given the state before it (checkpoint m), so the grid covers
// all of them, a team taking a run of Cfg::kQueryItems (for_each_item). Each item runs the
// whole forward step from its checkpoint and keeps only O: the same code, hence the same
// outputs, as the one-kernel forward.
template <class Cfg, class Step>
__device__ void tile_query_kernel(const ForwardParams& p) {
  using T = typename Cfg::Elem;
  constexpr int K = Cfg::kK, F = Cfg::kF;
  constexpr long long S = Cfg::kS;
  static_assert(Cfg::kGroup == 1, "a query split reads every state from the checkpoints");
  TeamPlace<Cfg> at;
  const ItemRun run = item_run<Cfg>(p, at);
  if (run.empty()) return;  // the whole team leaves: no barrier waits for it
  static_assert(Cfg::kWarpGlobalFloats == 0, "a team's global region belongs to one (b, h)");
  typename Step::State st;
  st.bind(at.warp_smem, nullptr, at.team.rank);
  StepContext<T> c{};
  for_each_item(p, at, run, false, [&](long long item, int n, const Staging<Cfg>& staging) {
    const int m = run.step_of(item);
    at.head(run.head_of(item), p.H);
    load_checkpoint<Cfg>(st, p.checkpoints + (1LL * at.bh * run.steps + m) * S);
    bind_head<T, F>(c, p, at.h);
    bind_forward_step(c, p, at.b, at.h, m, K);
    staging.bind(c, n & 1);
    Step::forward(st, c, at.warp_smem, at.team);
  });
}

// The backward kernel's order of mini-batches: groups from the last; inside a group, the states
// are recomputed forwards (advance) from its checkpoint, then the steps run backwards.
struct Visit {
  int m = -1;
  bool advance = false;
  __device__ __forceinline__ bool valid() const { return m >= 0; }
};
template <int G>
__device__ __forceinline__ Visit group_entry(int g, int steps) {
  const int first = g * G, last = min(first + G, steps) - 1;
  return G > 1 && last > first ? Visit{first, true} : Visit{last, false};
}
template <int G>
__device__ __forceinline__ Visit next_visit(Visit v, int steps) {
  const int g = v.m / G, first = g * G, last = min(first + G, steps) - 1;
  if (v.advance) return v.m + 1 < last ? Visit{v.m + 1, true} : Visit{last, false};
  if (v.m > first) return Visit{v.m - 1, false};
  return g > 0 ? group_entry<G>(g - 1, steps) : Visit{};
}

// Adds a team's gradients of the parameters shared by every step (for head h) to the outputs,
// atomically: other teams add theirs. tau's gradient is replicated over the team; gamma's and
// beta's are split like features (Cfg::kFeatureSlices: 1 where the team replicates them).
template <class Cfg, class Accum>
__device__ __forceinline__ void flush_accum(const BackwardParams& p, const Accum& acc, int h,
                                            const tile::Team& team) {
  constexpr int F = Cfg::kF, kSlice = F / Cfg::kFeatureSlices;
  if (team.rank == 0) tile::atomic_add_column(p.dtau, acc.tau, Cfg::kK);
  if (team.rank >= Cfg::kFeatureSlices) return;
  tile::atomic_add_row(p.dgamma + h * F + kSlice * team.rank, acc.gamma);
  tile::atomic_add_row(p.dbeta + h * F + kSlice * team.rank, acc.beta);
}

// A split backward's workspace item of (b, h) = bh, mini-batch m (tile_backward_output_kernel):
// the output path's share of dLoss/dtheta_m, split in three the adjoint state the chain started
// step m from (at Cfg::kSeedOffset), then the output path's token-gradient partials.
template <class Cfg>
__device__ __forceinline__ float* split_item(const BackwardParams& p, int bh, int steps, int m) {
  static_assert(Cfg::kGroup == 1 && Cfg::kWorkspaceFloats == 0,
                "a backward split reads every state from the checkpoints");
  return p.workspace + (1LL * bh * steps + m) * Cfg::kItemFloats;
}

// Split = false: the whole backward, one team per (b, h). Split = true (Schedule::backward_split,
// after tile_backward_output_kernel): the chain of the state update's adjoint alone; each step
// adds the output path's share of dLoss/dtheta_m and token-gradient partials from the workspace.
// Split in three (Cfg::kSeedOffset >= 0) the chain computes the adjoint state alone and saves
// the one each step starts from for tile_backward_tokens_kernel.
template <class Cfg, class Step, bool Split = false>
__device__ void tile_backward_kernel(const BackwardParams& p) {
  using T = typename Cfg::Elem;
  constexpr int K = Cfg::kK, F = Cfg::kF, G = Cfg::kGroup;
  constexpr long long S = Cfg::kS;
  TeamPlace<Cfg> at;
  if (!at.bind(p.B, p.H)) return;
  const int bh = at.bh, b = at.b, h = at.h;
  const Staging<Cfg> staging{at.stages};
  // States 1..G-1 of the current group, recomputed from its checkpoint (G > 1 only).
  float* group_states = p.workspace + bh * Cfg::kWorkspaceFloats;
  typename Step::State st;
  typename Step::DState ds;
  float* const warp_global = at.warp_global(p.workspace);
  st.bind(at.warp_smem, warp_global, at.team.rank);
  ds.bind(at.warp_smem, warp_global, at.team.rank);
  if (p.dstate_final)
    ds.load(p.dstate_final + bh * S);
  else
    ds.zero();
  typename Step::Accum acc;
  acc.zero();
  StepContext<T> c{};
  if constexpr (Cfg::kWarpGlobalFloats > 0) c.warp_global = warp_global;
  bind_head<T, F>(c, p, h);

  const int steps = num_steps(p.T, K), groups = (steps + G - 1) / G;
  Visit v = group_entry<G>(groups - 1, steps);
  staging.issue(p, b, h, v.m, 0, at.team, true);
  for (int n = 0; v.valid(); ++n) {
    const Visit next = next_visit<G>(v, steps);
    staging.wait(at.team);
    if (next.valid()) {
      staging.issue(p, b, h, next.m, (n + 1) & 1, at.team, true);
      // The first step of a group reads its checkpoint: a load that nothing else hides.
      if (next.m % G == 0)
        tile::prefetch_l2(p.checkpoints + (1LL * bh * groups + next.m / G) * S, S, at.team);
      if constexpr (Split)
        tile::prefetch_l2(split_item<Cfg>(p, bh, steps, next.m), Cfg::kItemFloats, at.team);
    }
    const int m = v.m, g = m / G, first = g * G, last = min(first + G, steps) - 1;
    const float* checkpoint = p.checkpoints + (1LL * bh * groups + g) * S;
    bind_backward_step(c, p, b, h, m, K);
    staging.bind(c, n & 1);
    bool advanced = false;
    if constexpr (G > 1) {  // with G == 1 every state is a checkpoint: codegen omits advance()
      if (v.advance) {
        if (m == first) load_checkpoint<Cfg>(st, checkpoint);
        Step::advance(st, c, at.warp_smem, at.team);
        st.store_frag(group_states + (m - first + 1) * S);
        advanced = true;
      }
    }
    if (!advanced) {
      // After the recomputation the state of the group's last step is already loaded. A warp
      // reloads only its own slice, which it alone wrote: no barrier is needed.
      if (G == 1 || m != last || last == first) {
        if (m == first)
          load_checkpoint<Cfg>(st, checkpoint);
        else
          st.load_frag(group_states + (m - first) * S);
      }
      if constexpr (Split) {
        float* item = split_item<Cfg>(p, bh, steps, m);
        c.partial = item;
        if constexpr (Cfg::kSeedOffset >= 0) ds.store_frag(item + Cfg::kSeedOffset);
        Step::backward_update(st, ds, acc, c, at.warp_smem, at.team);
        ds.add_frag(item);  // this warp's slice, as it loads its own: no barrier
      } else {
        Step::backward(st, ds, acc, c, at.warp_smem, at.team);
      }
    }
    v = next;
  }
  // ds now holds this warp's slice of dLoss/dtheta_0 for (b, h).
  float* d0 = p.dstate0 + b * p.dstate0_stride_b + h * S;
  if (p.dstate0_stride_b == 0)
    ds.atomic_add_to(d0);
  else
    ds.store(d0);
  if constexpr (Split) {
    if constexpr (Cfg::kSeedOffset < 0) flush_accum<Cfg>(p, acc, h, at.team);
  } else {
    flush_accum<Cfg>(p, acc, h, at.team);
  }
}

template <class Cfg, class Step>
__device__ void tile_backward_chain_kernel(const BackwardParams& p) {
  tile_backward_kernel<Cfg, Step, true>(p);
}

// The kernels of a split backward over every (b, h, mini-batch) item, like tile_query_kernel:
// given the state before it (checkpoint m), an item's share of the adjoint needs only its own
// tokens and seeds.
// - Tokens = false, the output path (Schedule::backward_split), before tile_backward_chain_kernel:
//   the seed is dO; the item's share of dLoss/dtheta_m and the f32 partials of the token
//   gradients the update path also has go to its workspace item, the token gradients only this
//   path has (dQ) to the outputs.
// - Tokens = true, the update path's token gradients (Schedule::backward_split_tokens), after the
//   chain: the seed is the adjoint state the chain saved for step m; the token gradients are
//   summed with the output path's partials and written.
// dtau, dgamma and dbeta are accumulated per team and added when its run crosses into the next
// head, and at its end.
template <class Cfg, class Step, bool Tokens>
__device__ void tile_backward_items_kernel(const BackwardParams& p) {
  using T = typename Cfg::Elem;
  constexpr int K = Cfg::kK, F = Cfg::kF;
  constexpr long long S = Cfg::kS;
  TeamPlace<Cfg> at;
  const ItemRun run = item_run<Cfg>(p, at);
  if (run.empty()) return;  // the whole team leaves: no barrier waits for it
  static_assert(Cfg::kWarpGlobalFloats == 0, "a team's global region belongs to one (b, h)");
  typename Step::State st;
  typename Step::DState ds;
  st.bind(at.warp_smem, nullptr, at.team.rank);
  ds.bind(at.warp_smem, nullptr, at.team.rank);
  typename Step::Accum acc;
  acc.zero();
  StepContext<T> c{};
  at.head(run.head_of(run.first), p.H);
  for_each_item(p, at, run, true, [&](long long item, int n, const Staging<Cfg>& staging) {
    const int m = run.step_of(item);
    if (run.head_of(item) != at.bh) {  // the run crossed into the next head
      flush_accum<Cfg>(p, acc, at.h, at.team);
      acc.zero();
      at.head(run.head_of(item), p.H);
    }
    load_checkpoint<Cfg>(st, p.checkpoints + (1LL * at.bh * run.steps + m) * S);
    bind_head<T, F>(c, p, at.h);
    bind_backward_step(c, p, at.b, at.h, m, K);
    staging.bind(c, n & 1);
    float* space = split_item<Cfg>(p, at.bh, run.steps, m);
    c.partial = space;
    if constexpr (Tokens) {
      ds.load_frag(space + Cfg::kSeedOffset);
      Step::backward_tokens(st, ds, acc, c, at.warp_smem, at.team);
    } else {
      ds.zero();  // members the output path leaves at zero are stored as zeros
      Step::backward_output(st, ds, acc, c, at.warp_smem, at.team);
      ds.store_frag(space);
    }
  });
  flush_accum<Cfg>(p, acc, at.h, at.team);
}

template <class Cfg, class Step>
__device__ void tile_backward_output_kernel(const BackwardParams& p) {
  tile_backward_items_kernel<Cfg, Step, false>(p);
}
template <class Cfg, class Step>
__device__ void tile_backward_tokens_kernel(const BackwardParams& p) {
  tile_backward_items_kernel<Cfg, Step, true>(p);
}

}  // namespace tttc
