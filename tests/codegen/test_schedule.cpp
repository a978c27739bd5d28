// test_schedule.cpp: schedule validity reasons, the default per target, JSON round trip.
#include <gtest/gtest.h>

#include <filesystem>

#include "compiler/arch.hpp"
#include "compiler/codegen.hpp"
#include "compiler/plan.hpp"
#include "compiler/schedule.hpp"

namespace ttt {
namespace {

// A TTT-Linear spec of head dimension f (the other fields at their defaults).
Spec linear_spec(int f) {
  Spec s;
  s.model = InnerModel::linear;
  s.depth = 1;
  s.head_dim = f;
  return s;
}

bool mentions(const std::vector<std::string>& reasons, const std::string& phrase) {
  for (const auto& r : reasons)
    if (r.find(phrase) != std::string::npos) return true;
  return false;
}

TEST(Schedule, DefaultIsValidForEveryModelAndTarget) {
  for (const char* arch : {"sm_80", "sm_86", "sm_89", "sm_90", "sm_90a"})
    for (int depth : {1, 2, 4})
      for (int f : {16, 64, 256}) {
        Spec s;
        s.model = depth == 1 ? InnerModel::linear : InnerModel::mlp;
        s.depth = depth;
        s.head_dim = f;
        s.mini_batch = 128;
        const Target t = Target::for_arch(arch);
        const Schedule sched = default_schedule(s, t);
        EXPECT_TRUE(validate(s, sched, t).empty()) << arch << " depth " << depth << " f " << f;
      }
}

TEST(Schedule, InvalidSchedulesExplainWhy) {
  Spec s;
  s.head_dim = 128;
  const Target t = Target::for_arch("sm_86");
  Schedule bad;
  bad.threads = 48;
  EXPECT_TRUE(mentions(validate(s, bad, t), "threads = 48"));
  bad = Schedule{};
  bad.cluster = 2;
  EXPECT_TRUE(mentions(validate(s, bad, t), "cluster = 2"));
  bad = Schedule{};
  bad.backward_matmul = "wgmma";
  EXPECT_TRUE(mentions(validate(s, bad, t), "backward_matmul = 'wgmma'"));
  bad = Schedule{};
  bad.forward_state =
      Placement::shared;  // mlp2 f=128: 512 KiB of state cannot sit in shared memory
  EXPECT_TRUE(mentions(validate(s, bad, t), "bytes of shared memory"));
}

TEST(Schedule, TileLoweringIsTheDefaultWhereItFitsAndItsKnobsAreChecked) {
  Spec s = linear_spec(64);
  const Target t = Target::for_arch("sm_90a");
  const Schedule d = default_schedule(s, t);
  EXPECT_EQ(d.lowering, "tile");
  EXPECT_EQ(d.backward_lowering, "tile");
  EXPECT_EQ(d.team_warps, 4);  // 64 features in slices of 16
  EXPECT_TRUE(validate(s, d, t).empty());
  Schedule bad = d;
  bad.team_warps = 3;
  EXPECT_TRUE(mentions(validate(s, bad, t), "team_warps = 3"));
  bad = d;
  bad.teams_per_cta = 16;
  EXPECT_TRUE(mentions(validate(s, bad, t), "teams_per_cta = 16"));
  bad = d;
  bad.register_budget = 8;
  EXPECT_TRUE(mentions(validate(s, bad, t), "register_budget = 8"));
  bad = d;
  bad.lowering = "magic";
  EXPECT_TRUE(mentions(validate(s, bad, t), "lowering = 'magic'"));
  bad = d;
  bad.backward_lowering = "magic";
  EXPECT_TRUE(mentions(validate(s, bad, t), "backward_lowering = 'magic'"));
  s.head_dim = 16;  // one slice of 16 features: no split over 2 warps
  bad = default_schedule(s, t);
  EXPECT_EQ(bad.team_warps, 1);
  bad.team_warps = 2;
  EXPECT_TRUE(mentions(validate(s, bad, t), "does not split into 2 slices of 16"));
}

// Where only the forward kernel's team fits an SM, the forward alone takes the tile lowering; each
// kernel is then checked under its own lowering's rules.
TEST(Schedule, ForwardTakesTheTileLoweringWhenOnlyItFits) {
  Spec s = linear_spec(64);
  s.mini_batch = 64;  // the backward's team needs more than 227 KiB, and spills in L2
  const Target t = Target::for_arch("sm_90a");
  const Schedule d = default_schedule(s, t);
  EXPECT_EQ(d.lowering, "tile");
  EXPECT_EQ(d.backward_lowering, "arena");
  EXPECT_EQ(d.team_warps, 4);
  EXPECT_TRUE(validate(s, d, t).empty());
  EXPECT_NE(describe_lowerings(s, d).find("forward tile (4 warps per team"), std::string::npos);
  EXPECT_NE(describe_lowerings(s, d).find("backward arena"), std::string::npos);
  EXPECT_EQ(codegen::generate(s, d, codegen::KernelKind::forward).source.find("(tile lowering)") ==
                std::string::npos,
            false);
  EXPECT_EQ(codegen::generate(s, d, codegen::KernelKind::backward).source.find("(tile lowering)"),
            std::string::npos);
  Schedule both = d;
  both.backward_lowering = "tile";
  EXPECT_TRUE(mentions(validate(s, both, t), "bytes of shared memory"));
  // The arena rules apply to the backward kernel only: a bad forward flavour is not used.
  Schedule odd = d;
  odd.forward_matmul = "magic";
  EXPECT_TRUE(validate(s, odd, t).empty());
  odd.backward_matmul = "magic";
  EXPECT_TRUE(mentions(validate(s, odd, t), "backward_matmul = 'magic'"));
  // A forward-only spec takes no backward rules at all.
  s.build_backward = false;
  EXPECT_TRUE(validate(s, odd, t).empty());
}

TEST(Schedule, ALinearBackwardThatFitsNowhereOnChipKeepsItsAdjointStateInL2) {
  const Target t = Target::for_arch("sm_90a");
  Spec s = linear_spec(128);
  Schedule in_l2 = default_schedule(s, t);
  EXPECT_EQ(in_l2.lowering, "tile");
  EXPECT_EQ(in_l2.backward_lowering, "tile");
  EXPECT_EQ(in_l2.team_warps, 8);
  EXPECT_EQ(in_l2.global_state, 1);
  EXPECT_EQ(in_l2.tile_shared_kib, 160);
  EXPECT_FALSE(in_l2.convert_checkpoints);
  EXPECT_TRUE(validate(s, in_l2, t).empty());
  EXPECT_NE(describe_lowerings(s, in_l2).find(
                "backward tile (8 warps per team, 1 teams per CTA, adjoint state in L2, "
                "values past 160 KiB in L2)"),
            std::string::npos)
      << describe_lowerings(s, in_l2);
  in_l2.global_state = in_l2.tile_shared_kib = 0;  // what made it an arena backward before
  EXPECT_TRUE(mentions(validate(s, in_l2, t), "bytes of shared memory"));
  // f = 64 with K = 32 too; not on the A100 (164 KiB) for f = 128, where the arena stays.
  s = linear_spec(64);
  s.mini_batch = 32;
  EXPECT_EQ(default_schedule(s, t).global_state, 1);
  EXPECT_EQ(default_schedule(s, Target::for_arch("sm_80")).global_state, 1);
  const Schedule a100 = default_schedule(linear_spec(128), Target::for_arch("sm_80"));
  EXPECT_EQ(a100.backward_lowering, "arena");
  EXPECT_EQ(a100.global_state, 0);
  // The few-heads split does not take global homes: with them the backward stays whole.
  EXPECT_FALSE(default_schedule(linear_spec(128), t, 4).backward_split);
  EXPECT_EQ(default_schedule(linear_spec(128), t, 4).global_state, 1);
  // MLPs keep the arena backward (their global homes measured slower, session 24).
  Spec mlp = linear_spec(64);
  mlp.model = InnerModel::mlp;
  mlp.depth = 2;
  EXPECT_EQ(default_schedule(mlp, t).global_state, 0);
}

// The planner's footprint (no code generation) is what codegen lays out, for every example and
// every placement of the arena lowering.
TEST(Schedule, FootprintAgreesWithCodegenForEveryExample) {
  for (const auto& e :
       std::filesystem::directory_iterator(std::string(TTTC_SOURCE_DIR) + "/examples")) {
    if (e.path().extension() != ".json") continue;
    const Spec spec = load_spec_file(e.path().string());
    const plan::Footprint f = plan::footprint(spec);
    EXPECT_EQ(f.state_floats, spec.state_floats());
    for (Placement arena : {Placement::shared, Placement::global})
      for (Placement state : {Placement::shared, Placement::global}) {
        Schedule s;
        s.forward_arena = s.backward_arena = arena;
        s.forward_state = state;
        const auto fwd = codegen::generate(spec, s, codegen::KernelKind::forward);
        const auto bwd = codegen::generate(spec, s, codegen::KernelKind::backward);
        EXPECT_EQ(forward_shared_bytes(spec, s), fwd.shared_bytes) << e.path();
        EXPECT_EQ(backward_shared_bytes(spec, s), bwd.shared_bytes) << e.path();
        EXPECT_EQ(f.forward_arena_floats, fwd.arena_floats) << e.path();
        EXPECT_EQ(f.backward_arena_floats, bwd.arena_floats) << e.path();
      }
  }
}

TEST(Schedule, ArchitectureNamesParseInOnePlace) {
  EXPECT_EQ(arch_number("sm_90a"), 90);
  EXPECT_EQ(arch_number("sm_80"), 80);
  EXPECT_EQ(arch_number("sm_120"), 120);
  for (const char* bad : {"", "sm_", "sm_a", "sm_9x", "sm_90aa", "compute_90", "90", "SM_90"})
    EXPECT_EQ(arch_number(bad), -1) << bad;
}

TEST(Schedule, JsonRoundTripAndErrors) {
  Schedule s;
  s.threads = 512;
  s.forward_arena = Placement::shared;
  Schedule back = schedule_from_json(schedule_to_json(s));
  EXPECT_EQ(canonical_schedule(back), canonical_schedule(s));
  s.lowering = "tile";
  s.team_warps = 2;
  s.teams_per_cta = 3;
  s.register_budget = 100;
  back = schedule_from_json(schedule_to_json(s));
  EXPECT_EQ(canonical_schedule(back), canonical_schedule(s));
  // Schedules written before the tile lowering describe the arena lowering.
  auto old = schedule_to_json(s);
  for (const char* k :
       {"lowering", "backward_lowering", "team_warps", "teams_per_cta", "register_budget"})
    old.erase(k);
  EXPECT_EQ(schedule_from_json(old).lowering, "arena");
  EXPECT_EQ(schedule_from_json(old).backward_lowering, "arena");
  // Schedules written before the kernels could differ: the backward follows the forward.
  auto one = schedule_to_json(s);
  one.erase("backward_lowering");
  EXPECT_EQ(schedule_from_json(one).backward_lowering, "tile");
  auto j = schedule_to_json(s);
  j["forward_state"] = "registers";
  EXPECT_THROW(schedule_from_json(j), std::invalid_argument);
  EXPECT_THROW(Target::for_arch("sm_70"), std::invalid_argument);
  // Schedules written before the query split: one forward kernel.
  s.query_split = true;
  EXPECT_TRUE(schedule_from_json(schedule_to_json(s)).query_split);
  auto before = schedule_to_json(s);
  before.erase("query_split");
  EXPECT_FALSE(schedule_from_json(before).query_split);
  // ... and before the backward split: one backward kernel.
  s.backward_split = true;
  EXPECT_TRUE(schedule_from_json(schedule_to_json(s)).backward_split);
  before = schedule_to_json(s);
  before.erase("backward_split");
  EXPECT_FALSE(schedule_from_json(before).backward_split);
  s.backward_split_tokens = true;
  EXPECT_TRUE(schedule_from_json(schedule_to_json(s)).backward_split_tokens);
  before = schedule_to_json(s);
  before.erase("backward_split_tokens");
  EXPECT_FALSE(schedule_from_json(before).backward_split_tokens);
}

// The query split: chosen by the heuristic only for launches that leave most SMs idle (and only
// where it can run), checked by validate(), and generated as a second entry point.
TEST(Schedule, QuerySplitForFewHeads) {
  Spec s = linear_spec(64);
  Target t = Target::for_arch("sm_90a");
  EXPECT_FALSE(default_schedule(s, t, 12).query_split);  // SM count unknown (ahead of time)
  t.sm_count = 132;
  EXPECT_TRUE(default_schedule(s, t, 12).query_split);  // W7: 12 heads on 132 SMs
  EXPECT_TRUE(default_schedule(s, t, 66).query_split);  // half the SMs
  EXPECT_FALSE(default_schedule(s, t, 67).query_split);
  EXPECT_FALSE(default_schedule(s, t, 192).query_split);  // W1: 192 heads
  EXPECT_FALSE(default_schedule(s, t, 0).query_split);    // launch size unknown
  Schedule split = default_schedule(s, t, 12);
  EXPECT_TRUE(validate(s, split, t).empty());
  const codegen::Generated g = codegen::generate(s, split, codegen::KernelKind::forward);
  EXPECT_EQ(g.query_kernel_name, "tttc_forward_query");
  EXPECT_GT(g.items_per_team, 0);
  EXPECT_NE(g.source.find("tile_recurrence_kernel<Cfg, Step>"), std::string::npos);
  EXPECT_NE(g.source.find("extern \"C\" __global__ void __launch_bounds__(128) tttc_forward_query"),
            std::string::npos);
  EXPECT_NE(g.source.find("void advance("), std::string::npos);
  EXPECT_TRUE(codegen::generate(s, default_schedule(s, t), codegen::KernelKind::forward)
                  .query_kernel_name.empty());

  Spec grouped = s;
  grouped.checkpoint_group = 4;
  EXPECT_FALSE(default_schedule(grouped, t, 12).query_split);
  EXPECT_TRUE(mentions(validate(grouped, split, t), "query_split = true needs checkpoint_group 1"));
  Spec mlp = s;
  mlp.model = InnerModel::mlp;
  mlp.depth = 3;  // hidden-by-hidden weights: the arena lowering's
  const Schedule arena = default_schedule(mlp, t, 12);
  EXPECT_EQ(arena.lowering, "arena");
  EXPECT_FALSE(arena.query_split);
  Schedule forced = arena;
  forced.query_split = true;
  EXPECT_TRUE(mentions(validate(mlp, forced, t), "needs the forward kernel on lowering = 'tile'"));
}

// The backward split: checked by validate() like the query split, and generated as the output
// path's entry point before the chain's, each with its own step function; the token gradients
// both paths produce pass through f32 partials (stored by one, added by the other).
TEST(Schedule, BackwardSplitIsTwoEntryPointsWithTheirOwnSteps) {
  Spec s = linear_spec(64);
  Target t = Target::for_arch("sm_90a");
  EXPECT_FALSE(default_schedule(s, t, 12).backward_split);  // SM count unknown (ahead of time)
  t.sm_count = 132;
  EXPECT_TRUE(default_schedule(s, t, 12).backward_split);         // W7: 12 heads on 132 SMs
  EXPECT_TRUE(default_schedule(s, t, 12).backward_split_tokens);  // in three kernels where it fits
  EXPECT_TRUE(default_schedule(s, t, 44).backward_split);         // a third of the SMs
  EXPECT_FALSE(default_schedule(s, t, 45).backward_split);
  EXPECT_FALSE(default_schedule(s, t, 192).backward_split);  // W2: 192 heads
  EXPECT_FALSE(default_schedule(s, t, 192).backward_split_tokens);
  EXPECT_FALSE(default_schedule(s, t, 0).backward_split);  // launch size unknown
  Spec forward_only = s;
  forward_only.build_backward = false;
  EXPECT_FALSE(default_schedule(forward_only, t, 12).backward_split);
  Schedule split = default_schedule(s, t);
  split.backward_split = true;
  EXPECT_TRUE(validate(s, split, t).empty());
  const codegen::Generated g = codegen::generate(s, split, codegen::KernelKind::backward);
  EXPECT_EQ(g.output_kernel_name, "tttc_backward_output");
  EXPECT_GT(g.items_per_team, 0);
  EXPECT_GT(g.item_workspace_floats, s.state_floats());
  const auto at = [&](const std::string& text) { return g.source.find(text); };
  EXPECT_NE(at("tile_backward_output_kernel<Cfg, Step>"), std::string::npos);
  EXPECT_NE(at("tile_backward_chain_kernel<Cfg, Step>"), std::string::npos);
  EXPECT_LT(at("void backward_output("), at("void backward_update("));
  EXPECT_EQ(at("void backward("), std::string::npos);
  EXPECT_NE(at("dK's partial"), std::string::npos);
  EXPECT_NE(at("+ the output path's dK"), std::string::npos);
  // dQ comes from the output path alone: written once, with no partial.
  EXPECT_EQ(at("dQ's partial"), std::string::npos);
  EXPECT_TRUE(codegen::generate(s, default_schedule(s, t), codegen::KernelKind::backward)
                  .output_kernel_name.empty());

  // A split that would not fit in shared memory is never chosen (f = 96 in bf16 precision).
  Spec wide = s;
  wide.head_dim = 96;
  wide.dtype = DType::bf16;
  wide.precision = Precision::bf16;
  ASSERT_EQ(default_schedule(wide, t, 12).backward_lowering, "tile");
  EXPECT_FALSE(default_schedule(wide, t, 12).backward_split);
  Schedule wide_split = default_schedule(wide, t, 12);
  wide_split.backward_split = true;
  EXPECT_TRUE(mentions(validate(wide, wide_split, t), "bytes of shared memory"));

  Spec grouped = s;
  grouped.checkpoint_group = 4;
  EXPECT_FALSE(default_schedule(grouped, t, 12).backward_split);
  EXPECT_TRUE(
      mentions(validate(grouped, split, t), "backward_split = true needs checkpoint_group 1"));
  Spec mlp = s;
  mlp.model = InnerModel::mlp;
  mlp.depth = 2;
  Schedule forced = default_schedule(mlp, t);
  ASSERT_EQ(forced.backward_lowering, "arena");
  forced.backward_split = true;
  EXPECT_TRUE(mentions(validate(mlp, forced, t), "needs the backward kernel on lowering = 'tile'"));
}

// Split in three: the chain's step computes the adjoint state alone (no token gradient, no
// shared-parameter gradient), saves the state it starts from, and a third entry point computes
// the update path's token gradients from it, adding the output path's partials.
TEST(Schedule, BackwardSplitInThreeTakesTheTokenGradientsOffTheChain) {
  Spec s = linear_spec(64);
  Target t = Target::for_arch("sm_90a");
  t.sm_count = 132;
  const Schedule three = default_schedule(s, t, 12);  // the heuristic's choice at W7
  ASSERT_TRUE(three.backward_split_tokens);
  EXPECT_TRUE(validate(s, three, t).empty());
  const codegen::Generated g = codegen::generate(s, three, codegen::KernelKind::backward);
  EXPECT_EQ(g.tokens_kernel_name, "tttc_backward_tokens");
  Schedule in_two = three;
  in_two.backward_split_tokens = false;
  const codegen::Generated two = codegen::generate(s, in_two, codegen::KernelKind::backward);
  EXPECT_EQ(g.item_workspace_floats, two.item_workspace_floats + s.state_floats());
  const std::string& src = g.source;
  const size_t update = src.find("void backward_update("),
               tokens = src.find("void backward_tokens(");
  ASSERT_NE(update, std::string::npos);
  ASSERT_NE(tokens, std::string::npos);
  const std::string chain_step = src.substr(update, tokens - update);
  EXPECT_EQ(chain_step.find("store_tokens"), std::string::npos);
  EXPECT_EQ(chain_step.find("acc."), std::string::npos);
  EXPECT_NE(chain_step.find("tl::assign(ds.W1"), std::string::npos);
  const std::string token_step = src.substr(tokens);
  EXPECT_NE(token_step.find("+ the output path's dK"), std::string::npos);
  EXPECT_EQ(token_step.find("tl::assign(ds."), std::string::npos);
  EXPECT_NE(src.find("kSeedOffset = " + std::to_string(s.state_floats())), std::string::npos);
  Schedule alone = default_schedule(s, t);
  alone.backward_split_tokens = true;
  EXPECT_TRUE(
      mentions(validate(s, alone, t), "backward_split_tokens = true needs backward_split = true"));
}

// A tile backward with checkpoint groups (the advance step beside the backward step in one
// kernel) keeps fewer values in registers where every team has an SM of its own: ptxas spilled at
// the default budget. Where teams share SMs the default stays (team memory costs occupancy).
TEST(Schedule, GroupedTileBackwardKeepsFewerValuesInRegistersWithAnSmPerTeam) {
  Spec s = linear_spec(64);
  Target t = Target::for_arch("sm_90a");
  t.sm_count = 132;
  EXPECT_EQ(default_schedule(s, t, 96).register_budget, 224);  // no checkpoint groups
  s.checkpoint_group = 4;
  const Schedule grouped = default_schedule(s, t, 96);
  EXPECT_EQ(grouped.backward_lowering, "tile");
  EXPECT_EQ(grouped.register_budget, 160);
  EXPECT_TRUE(validate(s, grouped, t).empty());
  EXPECT_EQ(default_schedule(s, t, 192).register_budget, 224);  // teams share SMs
  EXPECT_EQ(default_schedule(s, t, 0).register_budget, 224);    // launch size unknown
}

}  // namespace
}  // namespace ttt
