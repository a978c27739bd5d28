// schedule.hpp: HOW a spec is computed (never what): threads per CTA, where the step's working
// matrices (the arena) and the inner model's state live, the matmul flavour, the cluster split.
// Plain data, printable and serializable to JSON; a heuristic picks a valid default per
// (spec, target) and validate() explains in words why a schedule cannot run.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "compiler/spec.hpp"

namespace ttt {

enum class Placement { shared, global };

struct Schedule {
  // "tile": a team of warps per (b, h) with every value in registers or the team's shared
  // memory (tile_lowering.hpp); "arena": one CTA-wide pass per op over a shared or global arena.
  // `lowering` is the forward kernel's, `backward_lowering` the backward kernel's: a spec whose
  // backward does not fit the tile lowering can still run its forward there (the two kernels
  // share only the checkpoints, whose layout is the same). team_warps .. register_budget apply
  // to tile kernels, threads .. backward_matmul to arena kernels.
  std::string lowering = "arena";
  std::string backward_lowering = "arena";
  int team_warps = 1;         // tile: warps per (b, h) team (1, 2, 4, 8): features split over them
  int teams_per_cta = 1;      // tile: teams per CTA
  int register_budget = 224;  // tile: f32 values per lane kept in registers before spilling
  // tile: state matrices (and their adjoints) of more floats per lane than this live in the
  // warp's shared memory for the whole kernel, the rest in registers (0: all in shared memory).
  int register_state = 64;
  // tile, backward kernel: 0 state and adjoint on chip (register_state); 1 the adjoint state in
  // each warp's region of the workspace in global memory (L2-resident); 2 the state there too.
  int global_state = 0;
  // tile: KiB of shared memory a team may use (0: no limit); a step's values past it live in
  // each warp's region of the workspace in global memory (fragment order, no barriers).
  int tile_shared_kib = 0;
  // A tile forward beside an arena backward: true writes the checkpoints in fragment order (the
  // tile forward's fast stores) and the backward converts each into the packed layout; false
  // writes them packed. Tile kernels on both sides, or no backward: fragment order always.
  bool convert_checkpoints = false;
  int threads = 256;                             // CTA size (multiple of 32, 64..1024)
  Placement forward_arena = Placement::global;   // the forward step's working matrices
  Placement forward_state = Placement::global;   // the running state in the forward kernel
  Placement backward_arena = Placement::global;  // the backward step's working matrices
  // With a global arena: the KiB of its lowest offsets that live in shared memory instead (each
  // value wholly below that line; the global arena keeps its full size). 0: none. A global
  // arena larger than L2 makes the arena kernels memory-bound; its hottest values go on chip.
  int forward_arena_shared_kib = 0;
  int backward_arena_shared_kib = 0;
  int forward_blocks_per_sm = 1;  // occupancy target: caps registers via __launch_bounds__
  int backward_blocks_per_sm = 1;
  // Per kernel: "simt_f32" (f32 FMA micro-tiles), or the tensor cores (mma.sync, bf16 operands,
  // f32 accumulation) with each operand rounded to bf16 ("mma_bf16"), split in two bf16 parts
  // ("mma_bf16x3": 3 products, about 2^-16) or in three ("mma_bf16x6": 6 products, about f32).
  std::string forward_matmul = "simt_f32";
  std::string backward_matmul = "simt_f32";
  int cluster = 1;  // SMs per (batch, head); > 1 would split the state over a cluster (future)
  // Tile forward only, for few heads: the forward runs as two kernels, the state recurrence
  // alone (one team per (b, h), a shorter chain) writing every mini-batch's state to the
  // checkpoints, then the query outputs of all (b, h, mini-batch) in parallel from those states.
  // Needs checkpoint_group 1 (docs/tile-lowering.md, "Query split").
  bool query_split = false;
  // Tile backward only, for few heads: the backward as two kernels, the adjoint through the query
  // outputs of all (b, h, mini-batch) in parallel from the checkpoints (its share of dW_m and
  // f32 partials of the token gradients, in the workspace), then the chain of the state update's
  // adjoint alone, one team per (b, h), adding those shares. Needs checkpoint_group 1
  // (docs/tile-lowering.md, "Backward split").
  bool backward_split = false;
  // With backward_split: the update path's token gradients (and dtau, dgamma, dbeta) leave the
  // chain too. The chain saves the adjoint state each step starts from to the workspace, and a
  // third kernel computes them from it in parallel over (b, h, mini-batch). Not yet measured on
  // a GPU: the heuristic never sets it.
  bool backward_split_tokens = false;
};

// What a target GPU offers; for ahead-of-time builds, the arch's documented limits.
struct Target {
  std::string arch = "sm_90a";        // sm_80, sm_86, sm_89, sm_90, sm_90a, or newer
  int max_shared_bytes = 227 * 1024;  // per CTA, opt-in
  int shared_bytes_per_sm = 228 * 1024;
  int max_threads = 1024;
  int sm_count = 0;  // the GPU's SMs; 0 when unknown (ahead-of-time builds)
  static Target for_arch(const std::string& arch);  // throws std::invalid_argument if unknown
};

const char* to_string(Placement p);

// Floats of an arena of `arena_floats` that live in shared memory: all of a shared arena, the
// on-chip part (at most the arena) of a global one.
long long arena_shared_floats(Placement arena, int shared_kib, long long arena_floats);
// The lowering of the backward (true) or forward (false) kernel.
const std::string& lowering_of(const Schedule& s, bool backward);
nlohmann::json schedule_to_json(const Schedule& s);
Schedule schedule_from_json(const nlohmann::json& j);  // throws std::invalid_argument
std::string canonical_schedule(const Schedule& s);     // compact JSON with sorted keys
// One line per built kernel's lowering and its main knobs, for people: "forward tile (4 warps
// per team, 1 team per CTA), backward arena (256 threads, 2 CTAs per SM, mma_bf16x6)".
std::string describe_lowerings(const Spec& spec, const Schedule& s);

// Reasons the schedule is invalid for (spec, target); empty when valid.
std::vector<std::string> validate(const Spec& spec, const Schedule& s, const Target& t);
// Shared-memory bytes the forward / backward kernel needs under `s`.
long long forward_shared_bytes(const Spec& spec, const Schedule& s);
long long backward_shared_bytes(const Spec& spec, const Schedule& s);
// The default schedule: the arena and state on chip when they fit, else in global memory.
// launch_heads: B*H of the launches it will serve (0: unknown), for choices that depend on the
// launch size (query_split where the heads leave most SMs idle).
Schedule default_schedule(const Spec& spec, const Target& t, long long launch_heads = 0);
// The heuristic's arena-lowering schedule (what default_schedule returns when the tile lowering
// cannot take the spec); the tuner starts its arena candidates from it.
Schedule default_arena_schedule(const Spec& spec, const Target& t);

}  // namespace ttt
