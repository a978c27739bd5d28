// tile_lowering.hpp: the tile lowering's decisions for one step, between the planner and
// tile_codegen. A team of W warps computes one (b, h). Every live IR value gets:
//   - a form: scalar, per-row column, per-column row, or matrix (the warp-tile types of
//     templates/tttc/tile.cuh);
//   - a distribution (member_split): a linear model's values whose columns run over features
//     are split by columns over the team's warps; an MLP's are split along the hidden units only
//     (by columns where columns run over them, else by rows: W_L), so x·W_L contracts over
//     slices and its partial products meet in scratch; the rest (token-by-token matrices,
//     per-token vectors, an MLP's values over features) are replicated; tokens are loaded in
//     whichever variant (whole or column slice) a use needs;
//   - a home: registers, or the warp's own shared memory when the register-pressure estimate
//     overflows the schedule's budget (and for state matrices too large for registers), or,
//     past the team's shared-memory limit, the warp's own region of the kernel's workspace in
//     global memory (fragment order: each lane touches only its own elements, so no barrier);
//   - for sums over split columns, and products that contract over split columns, a slot of
//     the team's scratch memory where the warps' partial results meet.
// Operand part counts (how many bf16 pieces a matmul operand is split into) follow the spec's
// precision. The team layout fixes where the persistent state and its adjoint live.
#pragma once

#include <array>
#include <map>
#include <string>
#include <vector>

#include "compiler/plan.hpp"
#include "compiler/spec.hpp"

namespace ttt::tile {

// Tiles are made of 16 x 16 blocks (m16n8k16 products): sizes round up to them.
constexpr int pad16(int n) { return (n + 15) / 16 * 16; }

enum class Form { scalar, per_row, per_col, matrix };
enum class Home { reg, smem, global };

// How a team splits a value over its warps: not at all (replicated), by columns, by rows.
enum class Split { none, cols, rows };

struct ValuePlace {
  Form form = Form::matrix;
  Home home = Home::reg;
  bool split = false;       // columns split over the team (cols below are this warp's slice)
  bool split_rows = false;  // rows split over the team (rows below are this warp's slice)
  int rows = 0, cols = 0;   // the shape one warp holds
  long long offset = -1;    // floats into the warp's own shared (smem) or global region
};

// How an op meets its team: nothing, a sum of the warps' partial row sums, or a product whose
// contraction runs over split columns, summed to every warp (all) or to each warp's slice.
enum class TeamReduce { none, rows, product_all, product_scatter };

struct OpPlan {
  TeamReduce reduce = TeamReduce::none;
  int scratch_slot = -1;          // which of the team's scratch slots: 0..3 products, 4..7 row sums
  std::vector<bool> token_slice;  // per argument: read the token's column-slice variant
  int partial_rows = 0, partial_cols = 0;  // product_*: the per-warp partial product's shape
  // Row sums share barriers (fuse_step): up to three independent sums exchange together at the
  // last of them (deferred_to: that op; completes: the earlier ones, in order); LayerNorm's
  // mean and variance take one exchange at the first sum (second_moment: the op of the sum of
  // squares, whose value it also yields).
  int deferred_to = -1, second_moment = -1;
  std::vector<int> completes;
  // Independent exchanges share one barrier (group_exchanges): a member posts its partials where
  // it is computed and collects the totals at exchange_at, the group's last member, which waits
  // for the team and lists the members before it in `exchanged` (in order).
  int exchange_at = -1;
  std::vector<int> exchanged;
  int fused_into = -1;  // computed by that op instead (a sum of squares, its squares; a sqrt)
  bool rsqrt = false;   // a reciprocal of a square root that computes both (fused_into)
};

// Floats one lane holds for a value of this shape in registers (shapes padded to 16).
int lane_floats(int rows, int cols);
// Floats a value of this shape takes in shared memory (padded rows, see tile.cuh).
long long smem_floats(int rows, int cols);
// A stage of the team's shared memory holding one mini-batch's tokens (Q, K, V, and dO in the
// backward kernel only; rows padded to 16, each row 8 elements longer than f against bank
// conflicts) and learning rates; the driver copies step m + 1 into one stage while step m reads
// the other.
struct StageLayout {
  int tensors = 4;             // token tensors per stage: 3 in the forward kernel, 4 backward
  int row_stride = 0;          // elements
  long long tensor_bytes = 0;  // one token tensor, 16-byte aligned
  long long stage_bytes = 0;   // the tensors and the learning rates
};
StageLayout stage_layout(const Spec& spec, bool backward_kernel);

// Floats of the team's scratch slots (products: 0..3; row sums: 4..7), each sized for the largest
// exchange that uses it (0: unused). Where slot `slot` starts, and the scratch a team needs.
constexpr int kProductSlots = 4, kScratchSlots = 8;
using ScratchSlots = std::array<long long, kScratchSlots>;
long long scratch_offset(int slot, const ScratchSlots& slots);
long long scratch_floats(const ScratchSlots& slots);
// The larger of each slot's sizes (kernels whose steps share one scratch).
ScratchSlots max_slots(const ScratchSlots& a, const ScratchSlots& b);

// How a team of `warps` splits state member W_layer (or b_layer with `bias`), the same way as
// the step's values over the same dimensions.
Split member_split(const Spec& spec, int layer, bool bias, int warps);
// The shape of one warp's slice of that member (rows or columns divided by the team per its
// split), the one definition the team layout and the generated state struct share.
struct MemberSlice {
  Split split = Split::none;
  int rows = 0, cols = 0;
};
MemberSlice member_slice(const Spec& spec, int layer, bool bias, int warps);
// Slices a team splits the model's features into (LayerNorm's gamma and beta, their gradients):
// `warps` for a linear model, 1 (replicated) for an MLP.
int feature_slices(const Spec& spec, int warps);

// Where the state (W_l, b_l) and, in the backward kernel, its adjoint live for the whole kernel,
// per warp: matrices above `register_state` floats per lane (Schedule::register_state, default
// kMaxRegisterState) in the warp's shared memory, or in its global region where
// `global_state` (Schedule::global_state) says so in the backward kernel (with_dstate): 1 the
// adjoint's, 2 the state's too.
constexpr int kMaxRegisterState = 64;
struct TeamLayout {
  int warps = 1;
  std::map<std::string, long long> state_offset;   // "W1" -> offset (shared-memory members)
  std::map<std::string, long long> dstate_offset;  // backward kernel only
  std::map<std::string, long long> state_global, dstate_global;  // global-memory members
  long long persistent_floats = 0;                               // per warp, shared memory
  long long persistent_global_floats = 0;                        // per warp, global memory
};
TeamLayout team_layout(const Spec& spec, int warps, bool with_dstate,
                       int register_state = kMaxRegisterState, int global_state = 0);

struct LoweredStep {
  plan::StepPlan plan;
  int warps = 1;
  std::vector<ValuePlace> place;  // per value (dead values keep the default)
  std::vector<OpPlan> ops;        // per op
  std::vector<int> order;         // the ops in emission order (IR order, but for fuse_step's moves)
  std::vector<int> parts;         // per value: bf16 parts as a matmul operand (0 = tf32)
  std::vector<bool> token_full, token_slice;  // per token input: which variants are loaded
  long long smem_end = 0;        // floats of warp shared memory the step uses (members included)
  long long global_end = 0;      // floats of the warp's global region the step uses
  ScratchSlots slot_floats{};    // the largest need of each scratch slot
  int peak_register_floats = 0;  // estimated, per lane
  long long mma_per_warp = 0;    // m16n8k16 products one warp issues in the step
};

// warp_smem_limit: floats of the warp's own shared memory (members included) its values may
// use; values past it live in the warp's global region (< 0: no limit).
LoweredStep lower_step(const Spec& spec, plan::StepKind kind, const TeamLayout& layout,
                       int register_budget, plan::AdjointPart part = plan::AdjointPart::whole,
                       long long warp_smem_limit = -1);

// The steps one kernel runs, lowered with one layout, and what the team needs for them. With
// team_smem_limit > 0 (floats: Schedule::tile_shared_kib) the steps are lowered twice: first
// to size the scratch, then with each warp's share of what the scratch and the token stages
// leave as its shared-memory limit.
struct KernelStep {
  const char* name;  // the Step function tile_codegen writes
  plan::StepKind kind;
  plan::AdjointPart part = plan::AdjointPart::whole;
};
struct LoweredKernel {
  std::vector<LoweredStep> steps;  // in the order asked
  ScratchSlots slots{};
  long long warp_floats = 0;  // each warp's shared memory, rounded up to 16 floats
  long long warp_global = 0;  // each warp's global region, rounded up to 16 floats
};
LoweredKernel lower_kernel(const Spec& spec, const std::vector<KernelStep>& steps,
                           const TeamLayout& layout, int register_budget, bool backward_kernel,
                           long long team_smem_limit = 0);

// Why the tile lowering cannot compile the forward and/or backward kernel of `spec` with teams of
// `warps` warps (empty when it can). Only kernels the spec builds are considered.
std::vector<std::string> unsupported(const Spec& spec, int warps = 1, bool forward = true,
                                     bool backward = true);

// The team size the heuristic picks for those kernels: column slices of 16, at most 8 warps, and
// 1 where a team could not compile the spec.
int default_team_warps(const Spec& spec, bool forward = true, bool backward = true);

// Shared memory one team needs in the forward / backward kernel (floats: scratch plus every
// warp's own), and the largest register estimate of its steps.
struct TeamFootprint {
  long long scratch_floats = 0, warp_floats = 0;
  long long warp_global_floats = 0;  // each warp's region of the kernel's workspace
  long long stage_floats = 0;        // both token stages
  long long team_floats() const { return scratch_floats + stage_floats + warp_floats * warps; }
  int warps = 1;
  int peak_register_floats = 0;
  long long mma_per_warp = 0;  // the largest step's (a measure of code size and compile time)
};
// backward_split: the backward's steps are the two paths of Schedule::backward_split (each
// kernel of the split needs at most the larger of them).
TeamFootprint team_footprint(const Spec& spec, int warps, bool backward_kernel, int register_budget,
                             bool backward_split = false, bool backward_split_tokens = false,
                             int register_state = kMaxRegisterState, int global_state = 0,
                             long long team_smem_limit = 0);
// The steps of a kernel: forward (or advance, then forward, with the query split); backward
// (advance first where checkpoint groups are longer than 1), or its split's parts.
std::vector<KernelStep> kernel_steps(const Spec& spec, bool backward_kernel, bool query_split,
                                     bool backward_split, bool backward_split_tokens);

}  // namespace ttt::tile
