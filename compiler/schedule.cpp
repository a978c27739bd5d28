// schedule.cpp: schedule (de)serialization, per-arch limits, validity checks and the default.
#include "compiler/schedule.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include "compiler/arch.hpp"
#include "compiler/plan.hpp"
#include "compiler/tile_lowering.hpp"

namespace ttt {

Target Target::for_arch(const std::string& arch) {
  // Opt-in shared memory per block (CUDA programming guide, compute capabilities table).
  struct Limits {
    const char* arch;
    int per_block, per_sm;
  };
  static const Limits limits[] = {
      {"sm_80", 163 * 1024, 164 * 1024},  {"sm_86", 99 * 1024, 100 * 1024},
      {"sm_87", 163 * 1024, 164 * 1024},  {"sm_89", 99 * 1024, 100 * 1024},
      {"sm_90", 227 * 1024, 228 * 1024},  {"sm_90a", 227 * 1024, 228 * 1024},
      {"sm_100", 227 * 1024, 228 * 1024}, {"sm_100a", 227 * 1024, 228 * 1024},
      {"sm_120", 99 * 1024, 100 * 1024}};
  for (const auto& l : limits)
    if (arch == l.arch)
      return Target{.arch = arch, .max_shared_bytes = l.per_block, .shared_bytes_per_sm = l.per_sm};
  throw std::invalid_argument(fmt::format(
      "unknown GPU architecture '{}' (known: sm_80, sm_86, sm_87, sm_89, sm_90, sm_90a, sm_100, "
      "sm_100a, sm_120)",
      arch));
}

const char* to_string(Placement p) { return p == Placement::shared ? "shared" : "global"; }

long long arena_shared_floats(Placement arena, int shared_kib, long long arena_floats) {
  if (arena == Placement::shared) return arena_floats;
  return std::min<long long>(256LL * shared_kib, arena_floats);
}

const std::string& lowering_of(const Schedule& s, bool backward) {
  return backward ? s.backward_lowering : s.lowering;
}

static Placement placement_from(const nlohmann::json& j, const char* key) {
  const std::string v = j.at(key).get<std::string>();
  if (v == "shared") return Placement::shared;
  if (v == "global") return Placement::global;
  throw std::invalid_argument(fmt::format("schedule.{}: '{}' is not shared|global", key, v));
}

nlohmann::json schedule_to_json(const Schedule& s) {
  return {{"lowering", s.lowering},
          {"backward_lowering", s.backward_lowering},
          {"team_warps", s.team_warps},
          {"teams_per_cta", s.teams_per_cta},
          {"register_budget", s.register_budget},
          {"register_state", s.register_state},
          {"global_state", s.global_state},
          {"tile_shared_kib", s.tile_shared_kib},
          {"convert_checkpoints", s.convert_checkpoints},
          {"threads", s.threads},
          {"forward_arena", to_string(s.forward_arena)},
          {"forward_state", to_string(s.forward_state)},
          {"backward_arena", to_string(s.backward_arena)},
          {"forward_arena_shared_kib", s.forward_arena_shared_kib},
          {"backward_arena_shared_kib", s.backward_arena_shared_kib},
          {"forward_blocks_per_sm", s.forward_blocks_per_sm},
          {"backward_blocks_per_sm", s.backward_blocks_per_sm},
          {"forward_matmul", s.forward_matmul},
          {"backward_matmul", s.backward_matmul},
          {"cluster", s.cluster},
          {"query_split", s.query_split},
          {"backward_split", s.backward_split},
          {"backward_split_tokens", s.backward_split_tokens}};
}

Schedule schedule_from_json(const nlohmann::json& j) {
  try {
    Schedule s;
    // Absent in schedules written before the tile lowering existed: those describe the arena.
    s.lowering = j.value("lowering", std::string("arena"));
    // Absent in schedules written before the two kernels could differ: the forward's.
    s.backward_lowering = j.value("backward_lowering", s.lowering);
    s.team_warps = j.value("team_warps", 1);
    s.teams_per_cta = j.value("teams_per_cta", 1);
    s.register_budget = j.value("register_budget", 224);
    // Absent in schedules written before it was a knob: the fixed threshold of then.
    s.register_state = j.value("register_state", 64);
    // Absent in schedules written before global homes existed: everything on chip.
    s.global_state = j.value("global_state", 0);
    s.tile_shared_kib = j.value("tile_shared_kib", 0);
    s.convert_checkpoints = j.value("convert_checkpoints", false);
    s.threads = j.at("threads").get<int>();
    s.forward_arena = placement_from(j, "forward_arena");
    s.forward_state = placement_from(j, "forward_state");
    s.backward_arena = placement_from(j, "backward_arena");
    // Absent in schedules written before global arenas had an on-chip part: none.
    s.forward_arena_shared_kib = j.value("forward_arena_shared_kib", 0);
    s.backward_arena_shared_kib = j.value("backward_arena_shared_kib", 0);
    s.forward_blocks_per_sm = j.at("forward_blocks_per_sm").get<int>();
    s.backward_blocks_per_sm = j.at("backward_blocks_per_sm").get<int>();
    s.forward_matmul = j.at("forward_matmul").get<std::string>();
    s.backward_matmul = j.at("backward_matmul").get<std::string>();
    s.cluster = j.at("cluster").get<int>();
    // Absent in schedules written before the query split existed: one forward kernel.
    s.query_split = j.value("query_split", false);
    s.backward_split = j.value("backward_split", false);
    s.backward_split_tokens = j.value("backward_split_tokens", false);
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("schedule: ") + e.what());
  }
}

std::string canonical_schedule(const Schedule& s) { return schedule_to_json(s).dump(); }

std::string describe_lowerings(const Spec& spec, const Schedule& s) {
  std::string text;
  for (bool backward : {false, true}) {
    if (!(backward ? spec.build_backward : spec.build_forward)) continue;
    if (!text.empty()) text += ", ";
    text += backward ? "backward " : "forward ";
    if (lowering_of(s, backward) == "tile") {
      // Where values leave the chip (global homes) the time depends on it: say so.
      const char* homes = !backward             ? ""
                          : s.global_state == 1 ? ", adjoint state in L2"
                          : s.global_state == 2 ? ", state and adjoint state in L2"
                                                : "";
      const std::string limit =
          s.tile_shared_kib > 0 ? fmt::format(", values past {} KiB in L2", s.tile_shared_kib) : "";
      text += fmt::format("tile ({} warps per team, {} teams per CTA{}{}{})", s.team_warps,
                          s.teams_per_cta,
                          !backward && s.query_split            ? ", query split"
                          : backward && s.backward_split_tokens ? ", backward split in three"
                          : backward && s.backward_split        ? ", backward split"
                                                                : "",
                          homes, limit);
    } else
      text += fmt::format("arena ({} threads, {} CTAs per SM, {})", s.threads,
                          backward ? s.backward_blocks_per_sm : s.forward_blocks_per_sm,
                          backward ? s.backward_matmul : s.forward_matmul);
  }
  return text;
}

// The arena lowering's layouts (codegen.cpp): the arena (or its on-chip part) first, then the
// state (forward only).
static long long forward_shared_bytes(const plan::Footprint& f, const Schedule& s) {
  return 4 *
         (arena_shared_floats(s.forward_arena, s.forward_arena_shared_kib, f.forward_arena_floats) +
          (s.forward_state == Placement::shared ? (f.state_floats + 15) / 16 * 16 : 0));
}
static long long backward_shared_bytes(const plan::Footprint& f, const Schedule& s) {
  return 4 * arena_shared_floats(s.backward_arena, s.backward_arena_shared_kib,
                                 f.backward_arena_floats);
}

long long forward_shared_bytes(const Spec& spec, const Schedule& s) {
  return forward_shared_bytes(plan::footprint(spec), s);
}

long long backward_shared_bytes(const Spec& spec, const Schedule& s) {
  return backward_shared_bytes(plan::footprint(spec), s);
}

static int arch_number(const Target& t) { return ttt::arch_number(t.arch); }

// Which kernels a schedule gives to a lowering (only kernels the spec builds count).
struct KernelSet {
  bool forward = false, backward = false;
  bool any() const { return forward || backward; }
};
static KernelSet kernels_on(const Spec& spec, const Schedule& s, const char* lowering) {
  return {.forward = spec.build_forward && s.lowering == lowering,
          .backward = spec.build_backward && s.backward_lowering == lowering};
}

static tile::TeamFootprint footprint(const Spec& spec, const Schedule& s, bool backward) {
  return tile::team_footprint(spec, s.team_warps, backward, s.register_budget,
                              backward && s.backward_split, backward && s.backward_split_tokens,
                              s.register_state, s.global_state, 256LL * s.tile_shared_kib);
}

// Shared memory of one CTA of the tile lowering: every team's, the larger of the kernels in `k`.
static long long tile_shared_bytes(const Spec& spec, const Schedule& s, KernelSet k) {
  long long floats = 0;
  for (bool backward : {false, true})
    if (backward ? k.backward : k.forward)
      floats = std::max(floats, footprint(spec, s, backward).team_floats());
  return 4 * floats * s.teams_per_cta;
}

// The largest step's tensor-core products per warp over the kernels in `k`.
static long long tile_mma_per_warp(const Spec& spec, const Schedule& s, KernelSet k) {
  long long mma = 0;
  for (bool backward : {false, true})
    if (backward ? k.backward : k.forward)
      mma = std::max(mma, footprint(spec, s, backward).mma_per_warp);
  return mma;
}

// The heuristic leaves larger steps to the arena lowering: the tile lowering's straight-line code
// grows with the products a warp issues, and NVRTC with it. Measured on the 2-core build machine
// (sm_90a): 416 products (linear f = 64, K = 64) compile in 4.4 s; 688 (mlp2 f = 32, one warp)
// in 14 s with 3 KB of spills, 2008 (its backward) in 58 s, 2528 (mlp2 f = 64) in 135 s.
constexpr long long kMaxDefaultTileMma = 512;
// The largest state whose checkpoints the heuristic has a tile forward write in fragment order
// beside an arena backward (Schedule::convert_checkpoints).
constexpr long long kMaxConvertedCheckpointFloats = 8192;
// A linear backward that does not fit on chip runs on the tile lowering with its adjoint state (or
// its state too) in L2 (Schedule::global_state) and every value past this many KiB of the team's
// shared memory there (Schedule::tile_shared_kib), for mini-batches up to kMaxGlobalHomeMiniBatch.
constexpr int kGlobalHomeSharedKib = 160;
constexpr int kMaxGlobalHomeMiniBatch = 32;

static std::vector<std::string> validate_tile(const Spec& spec, const Schedule& s, const Target& t,
                                              KernelSet k) {
  std::vector<std::string> reasons;
  if (s.team_warps != 1 && s.team_warps != 2 && s.team_warps != 4 && s.team_warps != 8)
    reasons.push_back(fmt::format("team_warps = {}: must be 1, 2, 4 or 8", s.team_warps));
  // Teams synchronise on named barriers 1..15, one per team of a CTA.
  if (s.teams_per_cta < 1 || s.teams_per_cta > 15 ||
      32 * s.team_warps * s.teams_per_cta > t.max_threads)
    reasons.push_back(fmt::format(
        "teams_per_cta = {}: must be in 1..15 with at most {} threads per CTA ({} per team)",
        s.teams_per_cta, t.max_threads, 32 * s.team_warps));
  if (s.register_budget < 32 || s.register_budget > 255)
    reasons.push_back(fmt::format("register_budget = {}: must be in 32..255", s.register_budget));
  if (s.register_state < 0 || s.register_state > 255)
    reasons.push_back(fmt::format("register_state = {}: must be in 0..255", s.register_state));
  if (s.global_state < 0 || s.global_state > 2)
    reasons.push_back(fmt::format(
        "global_state = {}: must be 0 (on chip), 1 (the adjoint state in global memory) or 2 "
        "(the state too)",
        s.global_state));
  if (s.tile_shared_kib < 0 || 1024LL * s.tile_shared_kib > t.max_shared_bytes)
    reasons.push_back(fmt::format("tile_shared_kib = {}: must be in 0..{} on {} (0: no limit)",
                                  s.tile_shared_kib, t.max_shared_bytes / 1024, t.arch));
  if (arch_number(t) < 80)
    reasons.push_back(fmt::format(
        "lowering = 'tile' needs tensor cores with bf16 (sm_80 or newer); {} has none", t.arch));
  if (!reasons.empty()) return reasons;
  for (const auto& r : tile::unsupported(spec, s.team_warps, k.forward, k.backward))
    reasons.push_back("lowering = 'tile' cannot compile this spec: " + r);
  if (!reasons.empty()) return reasons;
  // A warp's global region belongs to the one (b, h) its team walks: the split kernels' teams
  // take items of several.
  for (bool backward : {false, true})
    if ((backward ? k.backward && s.backward_split : k.forward && s.query_split) &&
        footprint(spec, s, backward).warp_global_floats > 0)
      reasons.push_back(
          fmt::format("lowering = 'tile' with values or state in global memory (global_state, "
                      "tile_shared_kib) cannot run the {} kernel",
                      backward ? "backward_split" : "query_split"));
  const long long bytes = tile_shared_bytes(spec, s, k);
  if (bytes > t.max_shared_bytes)
    reasons.push_back(fmt::format(
        "lowering = 'tile' with {} teams of {} warps per CTA needs {} bytes of shared memory "
        "({}); {} allows {}",
        s.teams_per_cta, s.team_warps, bytes,
        k.forward && k.backward ? "the larger kernel"
        : k.forward             ? "forward kernel"
                                : "backward kernel",
        t.arch, t.max_shared_bytes));
  return reasons;
}

static std::vector<std::string> validate_arena(const Spec& spec, const Schedule& s, const Target& t,
                                               KernelSet k) {
  std::vector<std::string> reasons;
  if (s.threads < 64 || s.threads > t.max_threads || s.threads % 32 != 0)
    reasons.push_back(
        fmt::format("threads = {}: must be a multiple of 32 in 64..{}", s.threads, t.max_threads));
  struct PerKernel {
    bool used;
    int blocks;
    const char* blocks_name;
    const std::string* matmul;
    const char* matmul_name;
  };
  const PerKernel kernels[] = {{k.forward, s.forward_blocks_per_sm, "forward_blocks_per_sm",
                                &s.forward_matmul, "forward_matmul"},
                               {k.backward, s.backward_blocks_per_sm, "backward_blocks_per_sm",
                                &s.backward_matmul, "backward_matmul"}};
  for (const PerKernel& kernel : kernels) {
    if (!kernel.used) continue;
    if (kernel.blocks < 1 || kernel.blocks > 8)
      reasons.push_back(fmt::format("{} = {}: must be in 1..8", kernel.blocks_name, kernel.blocks));
    const std::string& flavour = *kernel.matmul;
    if (flavour != "simt_f32" && flavour != "mma_bf16" && flavour != "mma_bf16x3" &&
        flavour != "mma_bf16x6")
      reasons.push_back(
          fmt::format("{} = '{}': must be simt_f32, mma_bf16, mma_bf16x3 or mma_bf16x6",
                      kernel.matmul_name, flavour));
    // mma.sync with bf16 operands exists from sm_80 on.
    else if (flavour.rfind("mma_", 0) == 0 && arch_number(t) < 80)
      reasons.push_back(
          fmt::format("{} = '{}' needs tensor cores with bf16 (sm_80 or newer); {} "
                      "has none: use simt_f32",
                      kernel.matmul_name, flavour, t.arch));
    // __launch_bounds__(threads, n) must leave a thread at least 32 of the SM's 65536 registers
    // and fit the SM's 2048 resident threads.
    if (s.threads * kernel.blocks > 2048)
      reasons.push_back(
          fmt::format("{} = {} with {} threads: {} threads per SM, more than 2048 (and "
                      "fewer than 32 registers each)",
                      kernel.blocks_name, kernel.blocks, s.threads, s.threads * kernel.blocks));
  }
  const struct {
    bool used;
    Placement arena;
    int kib;
    const char* name;
  } prefixes[] = {{k.forward, s.forward_arena, s.forward_arena_shared_kib, "forward"},
                  {k.backward, s.backward_arena, s.backward_arena_shared_kib, "backward"}};
  for (const auto& p : prefixes) {
    if (!p.used) continue;
    if (p.kib < 0 || p.kib > 1024)
      reasons.push_back(fmt::format("{}_arena_shared_kib = {}: must be in 0..1024", p.name, p.kib));
    else if (p.kib > 0 && p.arena == Placement::shared)
      reasons.push_back(fmt::format(
          "{}_arena_shared_kib = {}: only a global {}_arena has an on-chip part (it is shared: "
          "use 0)",
          p.name, p.kib, p.name));
  }
  if (!reasons.empty()) return reasons;
  const long long fwd = forward_shared_bytes(spec, s), bwd = backward_shared_bytes(spec, s);
  if (k.forward && fwd > t.max_shared_bytes)
    reasons.push_back(fmt::format(
        "forward kernel needs {} bytes of shared memory ({} arena, {} state); {} allows {}", fwd,
        to_string(s.forward_arena), to_string(s.forward_state), t.arch, t.max_shared_bytes));
  if (k.backward && bwd > t.max_shared_bytes)
    reasons.push_back(fmt::format("backward kernel needs {} bytes of shared memory; {} allows {}",
                                  bwd, t.arch, t.max_shared_bytes));
  // 1 KiB per resident CTA is reserved by the hardware.
  if (k.forward && (fwd + 1024) * s.forward_blocks_per_sm > t.shared_bytes_per_sm)
    reasons.push_back(
        fmt::format("forward_blocks_per_sm = {}: {} bytes of shared memory per CTA do "
                    "not fit {} times in one SM ({} bytes)",
                    s.forward_blocks_per_sm, fwd, s.forward_blocks_per_sm, t.shared_bytes_per_sm));
  if (k.backward && (bwd + 1024) * s.backward_blocks_per_sm > t.shared_bytes_per_sm)
    reasons.push_back(fmt::format(
        "backward_blocks_per_sm = {}: {} bytes of shared memory per CTA "
        "do not fit {} times in one SM ({} bytes)",
        s.backward_blocks_per_sm, bwd, s.backward_blocks_per_sm, t.shared_bytes_per_sm));
  return reasons;
}

// A kernel split into a chain and a kernel over every (b, h, mini-batch) (query_split,
// backward_split): that pass on the tile lowering, and every state a checkpoint.
static void check_split(const Spec& spec, const Schedule& s, bool backward, const char* field,
                        const char* item_kernel, std::vector<std::string>& reasons) {
  const char* pass = backward ? "backward" : "forward";
  if (!(backward ? spec.build_backward : spec.build_forward) || lowering_of(s, backward) != "tile")
    reasons.push_back(
        fmt::format("{} = true needs the {} kernel on lowering = 'tile'", field, pass));
  if (spec.checkpoint_group != 1)
    reasons.push_back(fmt::format(
        "{} = true needs checkpoint_group 1 (the spec has {}): the {} kernel reads every "
        "mini-batch's state from the checkpoints",
        field, spec.checkpoint_group, item_kernel));
}

std::vector<std::string> validate(const Spec& spec, const Schedule& s, const Target& t) {
  std::vector<std::string> reasons;
  for (auto [value, name] :
       {std::pair{&s.lowering, "lowering"}, {&s.backward_lowering, "backward_lowering"}})
    if (*value != "tile" && *value != "arena")
      reasons.push_back(fmt::format("{} = '{}': must be tile or arena", name, *value));
  if (s.cluster != 1)
    reasons.push_back(fmt::format(
        "cluster = {}: splitting the state over a cluster is not implemented; use 1", s.cluster));
  if (s.query_split) check_split(spec, s, false, "query_split", "query", reasons);
  if (s.backward_split_tokens && !s.backward_split)
    reasons.push_back("backward_split_tokens = true needs backward_split = true");
  if (s.backward_split) check_split(spec, s, true, "backward_split", "output path's", reasons);
  if (s.convert_checkpoints && s.lowering != "tile")
    reasons.push_back(
        "convert_checkpoints = true needs lowering = 'tile' (the forward that writes them in "
        "fragment order)");
  if (!reasons.empty()) return reasons;
  if (const KernelSet tile = kernels_on(spec, s, "tile"); tile.any())
    for (auto& r : validate_tile(spec, s, t, tile)) reasons.push_back(std::move(r));
  if (const KernelSet arena = kernels_on(spec, s, "arena"); arena.any())
    for (auto& r : validate_arena(spec, s, t, arena)) reasons.push_back(std::move(r));
  return reasons;
}

static Schedule shape_free_schedule(const Spec& spec, const Target& t);

Schedule default_schedule(const Spec& spec, const Target& t, long long launch_heads) {
  Schedule s = shape_free_schedule(spec, t);
  // Few heads leave most SMs idle while each runs its chain of steps: with at most half of the
  // SMs busy, the query outputs move off that chain. H200, forward at B1 T8192 (results.md,
  // session 18): the split is 1.5x faster at 4 heads, 1.05x at 66, 0.93x at 96.
  const bool heads_known = launch_heads > 0 && t.sm_count > 0;
  if (s.lowering == "tile" && spec.build_forward && spec.checkpoint_group == 1 && heads_known &&
      launch_heads * 2 <= t.sm_count)
    s.query_split = true;
  // The backward's output path leaves the chain where at most a third of the SMs would be busy.
  // H200, backward at B1 T8192 (results.md, session 20): 1.22x faster at 4 heads, 1.08x at 32,
  // 0.96x at 66, 0.75x at 132; W7 (12 heads, T32768) 1.21x.
  // A backward kernel with checkpoint groups holds the advance step's code beside the
  // backward's, and ptxas spills at 255 registers. Where every team has an SM of its own, fewer
  // values in registers (more in shared memory) pays; where teams share SMs, the larger team
  // memory costs occupancy. H200, lm-125m-linear (group 4), backward at 96 heads: 1.30 ms at 224
  // floats, 1.16 at 160; at 192 heads 2.17 ms at 160 (results.md, session 20).
  if (s.backward_lowering == "tile" && spec.build_backward && spec.checkpoint_group > 1 &&
      heads_known && launch_heads <= t.sm_count) {
    Schedule fewer = s;
    fewer.register_budget = 160;
    if (validate(spec, fewer, t).empty()) s = fewer;
  }
  // Its steps differ from the whole backward's and may need more shared memory (linear f = 96
  // in bf16 precision does): only a split that fits. In three kernels (the update path's token
  // gradients off the chain too) where that fits: H200, W7 backward 11.9 -> 9.0 ms, B1 H4 T8192
  // 2.77 -> 1.90, B1 H44 T8192 3.46 -> 3.17 (results.md, session 21).
  if (s.backward_lowering == "tile" && spec.build_backward && spec.checkpoint_group == 1 &&
      heads_known && launch_heads * 3 <= t.sm_count) {
    Schedule split = s;
    split.backward_split = true;
    for (const bool tokens : {true, false}) {
      split.backward_split_tokens = tokens;
      if (validate(spec, split, t).empty()) {
        s = split;
        break;
      }
    }
  }
  return s;
}

// A tile team the heuristic may pick: its size and where its state lives.
struct TeamChoice {
  int warps, register_state, register_budget;
};

// The teams the heuristic tries, best first: the largest team that compiles, first with its state
// in registers, then (MLPs) with the state in shared memory, which leaves every register to the
// step's values (budget 255); then (MLPs: their teams hold more replicated values, and exchange
// larger partial products, the more warps they have) smaller teams down to 4 warps, or fewer
// where the state stays in registers. tf32 MLP steps with the weights in shared memory are left
// out (their operands are converted at every use). H200, mlp2 forward at W3 (results.md, session
// 23): 8 warps with the weights in shared memory 5.57 ms in accurate precision (arena 10.0, 4
// warps 10.03), 4.80 in bf16 (arena 9.48; 4 warps 4.60, a miss of this order); non-causal bf16
// with 2 warps and the weights in shared memory 11.4 against the arena's 8.2; f = 32 bf16 with 2
// warps and the weights in registers 1.29 against 6.10; tf32 with 4 warps 11.1 against 9.4.
static std::vector<TeamChoice> team_choices(const Spec& spec, bool forward, bool backward,
                                            int register_budget) {
  const bool mlp = spec.model == InnerModel::mlp;
  const int largest = tile::default_team_warps(spec, forward, backward);
  std::vector<TeamChoice> choices;
  for (int warps = largest; warps >= 1; warps /= 2) {
    if (warps < largest && (!mlp || !tile::unsupported(spec, warps, forward, backward).empty()))
      continue;
    for (const TeamChoice& c :
         {TeamChoice{warps, tile::kMaxRegisterState, register_budget}, TeamChoice{warps, 0, 255}}) {
      if (!mlp && c.register_state == 0) continue;
      const bool state_in_smem =
          !tile::team_layout(spec, warps, backward, c.register_state).state_offset.empty();
      const bool too_few = warps < largest && warps < 4;
      if (state_in_smem && warps > 1 && (too_few || (mlp && spec.precision == Precision::tf32)))
        continue;
      choices.push_back(c);
    }
  }
  return choices;
}

// The heuristic's choices that do not depend on the launch size.
static Schedule shape_free_schedule(const Spec& spec, const Target& t) {
  Schedule s = default_arena_schedule(spec, t);
  // The tile lowering for each kernel it can compile whose team fits an SM's shared memory (its
  // products follow the spec's precision, tile_lowering.cpp): both kernels where both fit, else
  // the forward alone (the backward's product scratch and adjoint state are the larger).
  if (arch_number(t) < 80) return s;
  for (const KernelSet k :
       {KernelSet{spec.build_forward, spec.build_backward}, KernelSet{spec.build_forward, false}}) {
    if (!k.any() || !tile::unsupported(spec, 1, k.forward, k.backward).empty()) continue;
    Schedule tile = s;
    const auto take = [&tile](const TeamChoice& c) {
      tile.team_warps = c.warps;
      tile.register_state = c.register_state;
      tile.register_budget = c.register_budget;
    };
    const std::vector<TeamChoice> teams =
        team_choices(spec, k.forward, k.backward, s.register_budget);
    for (const TeamChoice& c : teams) {
      take(c);
      if (tile_shared_bytes(spec, tile, k) > t.max_shared_bytes) continue;
      // Smaller teams issue more products per warp: none of the rest fits either.
      if (tile_mma_per_warp(spec, tile, k) > kMaxDefaultTileMma) break;
      if (k.forward) tile.lowering = "tile";
      if (k.backward) tile.backward_lowering = "tile";
      // Beside an arena backward: the conversion paid where the state is small (H200, session
      // 24, training forward + backward: linear K = 64, 4160 floats, 8.36 -> 7.66 ms) and cost
      // more than the forward gained above (f = 128, 16512 floats: 18.49 -> 19.14; mlp2, 33088:
      // 37.91 -> 38.58, though its forward alone 5.57 -> 4.16; since session 25 mlp2's packed
      // checkpoints are copied by rows, 4.09).
      tile.convert_checkpoints = k.forward && !k.backward && spec.build_backward &&
                                 spec.state_floats() <= kMaxConvertedCheckpointFloats;
      return tile;
    }
    // A linear backward that fits nowhere on chip: the adjoint state in L2, then the state too.
    // H200, backward at W2's shape against the arena lowering (results.md, session 26): f = 128
    // 17.1 -> 4.39 ms (global_state 2: 8.13), f = 64 with K = 32 8.01 -> 1.76 (2: 2.43), f = 96
    // 14.3 -> 9.85 (2: 12.8); K = 64 spills kilobytes: f = 64 7.73 -> 8.96 (global_state 2),
    // though f = 32 gained (4.76 -> 3.41), so K = 64 stays on the arena.
    if (!k.backward || spec.model != InnerModel::linear ||
        spec.mini_batch > kMaxGlobalHomeMiniBatch || teams.empty())
      continue;
    take(teams.front());
    if (tile_mma_per_warp(spec, tile, k) > kMaxDefaultTileMma) continue;
    tile.lowering = tile.backward_lowering = "tile";
    tile.convert_checkpoints = false;
    tile.tile_shared_kib = kGlobalHomeSharedKib;
    for (const int global_state : {1, 2}) {
      tile.global_state = global_state;
      if (validate(spec, tile, t).empty()) return tile;
    }
  }
  return s;
}

// The arena lowering for both kernels.
Schedule default_arena_schedule(const Spec& spec, const Target& t) {
  Schedule s;
  // Arena lowering. Accurate: tensor cores where the spec's own precision is 16-bit (f32 specs
  // keep f32 arithmetic), with operands split in three bf16 parts: on the H100 sweep, plain bf16
  // operands put up to 4e-2 error into gradients and two parts still 4e-2 into one
  // ill-conditioned dtau, over the 2e-2 bound (docs/results.md). tf32 runs as two bf16 parts
  // here (at least as accurate as tf32), bf16 as plain bf16 operands.
  const char* flavour = spec.precision == Precision::bf16   ? "mma_bf16"
                        : spec.precision == Precision::tf32 ? "mma_bf16x3"
                        : spec.dtype != DType::f32          ? "mma_bf16x6"
                                                            : "simt_f32";
  if (arch_number(t) < 80) flavour = "simt_f32";
  s.forward_matmul = s.backward_matmul = flavour;
  // bf16 mode's backward keeps two bf16 parts here: plain bf16 put 7.0e-2 into a gradient of
  // mlp3 (non-causal, K = 16, H200 sweep), over the mode's 5e-2 gate (docs/results.md).
  if (s.backward_matmul == std::string("mma_bf16")) s.backward_matmul = "mma_bf16x3";
  const long long limit = t.max_shared_bytes;
  const long long state_bytes = 4 * spec.state_floats();
  const plan::Footprint footprint = plan::footprint(spec);
  const long long fwd_arena = 4 * footprint.forward_arena_floats;
  const long long bwd_arena = 4 * footprint.backward_arena_floats;
  // On chip first what every op touches (the arena), then the state if room is left.
  if (fwd_arena <= limit) s.forward_arena = Placement::shared;
  // The state goes on chip beside whatever arena is there: with a global arena (the video shape)
  // a shared state measured 1.11-1.15x faster on the H200 (tttc tune, docs/tuning.md).
  if ((s.forward_arena == Placement::shared ? fwd_arena : 0) + state_bytes <= limit)
    s.forward_state = Placement::shared;
  if (bwd_arena <= limit) s.backward_arena = Placement::shared;
  // Linear: one thread per 16 elements of the step's largest token matrix (K x hidden),
  // 256..1024 (the ops are latency-bound; wider CTAs paid off on an H100 only for large
  // matrices). MLPs: 512, measured best on the H200 with the compile-time-shaped matmul for mlp2
  // at K = 16 (1.14x forward, 1.22x backward over 256) and for the video shape at K = 64 (1.09x
  // forward, 1.05x backward over 1024; tttc tune agrees), docs/results.md.
  const long long elements = 1LL * spec.mini_batch * spec.hidden_dim();
  s.threads = 256;
  while (s.threads < 1024 && s.threads * 16 < elements) s.threads *= 2;
  if (spec.model == InnerModel::mlp) s.threads = 512;
  // Resident CTAs per SM: as many as shared memory allows, at most 2, and never so many that a
  // thread gets fewer than 128 registers (65536 per SM; below, the matmuls' register blocks
  // spill), unless one CTA alone leaves less.
  auto blocks = [&](bool backward) {
    const long long bytes =
        (backward ? backward_shared_bytes(footprint, s) : forward_shared_bytes(footprint, s)) +
        1024;
    const long long by_registers = 65536 / (128LL * s.threads);
    return static_cast<int>(
        std::clamp<long long>(std::min(t.shared_bytes_per_sm / bytes, by_registers), 1, 2));
  };
  s.forward_blocks_per_sm = blocks(false);
  s.backward_blocks_per_sm = blocks(true);
  // A global arena's lowest offsets fill the shared memory its CTAs leave.
  auto on_chip_kib = [&](bool backward) {
    const int per_cta = backward ? s.backward_blocks_per_sm : s.forward_blocks_per_sm;
    const long long used =
        backward ? backward_shared_bytes(footprint, s) : forward_shared_bytes(footprint, s);
    const long long room = std::min<long long>(limit, t.shared_bytes_per_sm / per_cta - 1024);
    const long long arena_kib =
        (backward ? footprint.backward_arena_floats : footprint.forward_arena_floats) / 256;
    return static_cast<int>(std::clamp<long long>((room - used) / 1024, 0, arena_kib));
  };
  if (s.forward_arena == Placement::global) s.forward_arena_shared_kib = on_chip_kib(false);
  if (s.backward_arena == Placement::global) s.backward_arena_shared_kib = on_chip_kib(true);
  return s;
}

}  // namespace ttt
