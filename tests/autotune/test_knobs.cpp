// test_knobs.cpp: the knob table and the enumerator: every knob names a schedule field, the
// heuristic comes first, every candidate is valid and distinct, pruning happens with reasons,
// precision is never lowered, per-pass products leave the other pass alone, pruning after
// compiling, and the analytic shared memory of every candidate agrees with codegen.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "autotune/knobs.hpp"
#include "compiler/codegen.hpp"
#include "tune_test_util.hpp"

namespace ttt::autotune {
namespace {

using namespace test_util;

std::vector<Spec> every_example() {
  std::vector<Spec> specs;
  for (const auto& e :
       std::filesystem::directory_iterator(std::string(TTTC_SOURCE_DIR) + "/examples"))
    if (e.path().extension() == ".json") specs.push_back(load_spec_file(e.path().string()));
  return specs;
}

TEST(Knobs, EveryKnobIsAScheduleFieldAndLoweringComesFirst) {
  const auto fields = schedule_to_json(Schedule{});
  std::set<std::string> names;
  for (const Knob& k : knobs()) {
    EXPECT_TRUE(fields.contains(k.name)) << k.name;
    EXPECT_TRUE(names.insert(k.name).second) << "declared twice: " << k.name;
  }
  EXPECT_EQ(knobs().front().name, "lowering");
}

TEST(Knobs, CandidatesAreValidDistinctAndStartWithTheHeuristic) {
  for (const std::string arch : {"sm_90a", "sm_80", "sm_86"})
    for (const Spec& spec : every_example()) {
      const Target t = Target::for_arch(arch);
      const Enumeration e = enumerate(spec, t);
      ASSERT_FALSE(e.candidates.empty()) << spec.name << " " << arch;
      EXPECT_EQ(canonical_schedule(e.candidates.front()),
                canonical_schedule(default_schedule(spec, t)));
      std::set<std::string> seen;
      int last = 0;
      for (const Schedule& s : e.candidates) {
        EXPECT_TRUE(validate(spec, s, t).empty()) << canonical_schedule(s);
        EXPECT_TRUE(seen.insert(canonical_schedule(s)).second) << canonical_schedule(s);
        const int d = distance(s, e.candidates.front());
        EXPECT_GE(d, last) << "not ordered by distance to the heuristic";
        last = d;
      }
      for (const Pruned& p : e.pruned) {
        EXPECT_FALSE(p.reasons.empty());
        EXPECT_FALSE(seen.count(canonical_schedule(p.schedule)));
      }
      EXPECT_GE(e.product_size + 1, e.candidates.size() + e.pruned.size());
    }
}

TEST(Knobs, PruningUsesSharedMemoryLimitsBeforeCompiling) {
  // mlp4 at d=128 has arenas far over sm_86's 99 KiB: shared placements are pruned, with words.
  const Spec spec = example_spec("mlp4-d128");
  const Enumeration e = enumerate(spec, Target::for_arch("sm_86"));
  ASSERT_FALSE(e.pruned.empty());
  bool shared_memory = false;
  for (const Pruned& p : e.pruned)
    for (const auto& r : p.reasons) shared_memory |= r.find("shared memory") != std::string::npos;
  EXPECT_TRUE(shared_memory);
  for (const Schedule& s : e.candidates) {
    EXPECT_LE(forward_shared_bytes(spec, s), 99 * 1024);
    EXPECT_LE(backward_shared_bytes(spec, s), 99 * 1024);
  }
}

// The tuner's baseline is the heuristic at the launch size: for few heads (W7: 12 on 132 SMs) the
// split kernels, which get_kernel runs without a record; the shape-free one otherwise.
TEST(Knobs, TheHeuristicCandidateIsTheOneOfTheLaunchSize) {
  const Spec spec = example_spec("linear");
  Target t = Target::for_arch("sm_90a");
  t.sm_count = 132;
  const Schedule few = enumerate(spec, t, 12).candidates.front();
  EXPECT_EQ(canonical_schedule(few), canonical_schedule(default_schedule(spec, t, 12)));
  EXPECT_TRUE(few.backward_split_tokens);
  const Schedule unknown = enumerate(spec, t).candidates.front();
  EXPECT_FALSE(unknown.backward_split);
  EXPECT_EQ(canonical_schedule(unknown), canonical_schedule(default_schedule(spec, t)));
}

// Global homes are searched for linear backwards that fit nowhere on chip, and only there.
TEST(Knobs, GlobalHomesAreSearchedWhereTheBackwardDoesNotFitOnChip) {
  const Target t = Target::for_arch("sm_90a");
  const auto homes = [&](const Spec& spec) {
    std::set<std::pair<int, int>> seen;
    for (const Schedule& s : enumerate(spec, t).candidates)
      if (s.backward_lowering == "tile") seen.insert({s.global_state, s.tile_shared_kib});
    return seen;
  };
  Spec wide = example_spec("linear");
  wide.head_dim = 128;  // the heuristic: global_state 1, 160 KiB; all on chip does not fit
  EXPECT_EQ(homes(wide),
            (std::set<std::pair<int, int>>{{0, 160}, {1, 0}, {1, 160}, {2, 0}, {2, 160}}));
  Spec long_batch = example_spec("linear");
  long_batch.head_dim = 32;
  long_batch.mini_batch = 64;  // the heuristic's backward: arena
  ASSERT_EQ(default_schedule(long_batch, t).backward_lowering, "arena");
  EXPECT_TRUE(homes(long_batch).count({2, 160})) << homes(long_batch).size();
  EXPECT_EQ(homes(example_spec("linear")), (std::set<std::pair<int, int>>{{0, 0}}));
  for (const Schedule& s : enumerate(example_spec("mlp2"), t).candidates)
    EXPECT_EQ(s.global_state, 0) << canonical_schedule(s);
}

TEST(Knobs, PrecisionIsNeverLowered) {
  auto rank = [](const std::string& f) { return f == "mma_bf16" ? 1 : f == "mma_bf16x3" ? 2 : 3; };
  for (const Spec& spec : every_example()) {
    const Target t = Target::for_arch("sm_90a");
    const Schedule base = default_arena_schedule(spec, t);
    for (const Schedule& s : enumerate(spec, t).candidates) {
      if (s.lowering != "arena") continue;
      EXPECT_GE(rank(s.forward_matmul), rank(base.forward_matmul)) << spec.name;
      EXPECT_GE(rank(s.backward_matmul), rank(base.backward_matmul)) << spec.name;
    }
  }
}

TEST(Knobs, APassProductKeepsTheOtherPassAtTheHeuristic) {
  const Spec spec = example_spec("video-mlp2-noncausal");  // both kernels on the arena lowering
  const Target t = Target::for_arch("sm_90a");
  const Schedule h = default_schedule(spec, t);
  ASSERT_EQ(h.lowering, "arena");
  const Enumeration fwd = enumerate(spec, t, Pass::forward);
  const Enumeration bwd = enumerate(spec, t, Pass::backward);
  std::set<std::string> fwd_threads;
  for (const Schedule& s : fwd.candidates) {
    if (s.lowering != "arena") continue;
    EXPECT_EQ(s.backward_blocks_per_sm, h.backward_blocks_per_sm);
    EXPECT_EQ(s.backward_arena, h.backward_arena);
    EXPECT_EQ(s.backward_matmul, h.backward_matmul);
  }
  for (const Schedule& s : bwd.candidates) {
    if (s.lowering != "arena") continue;
    EXPECT_EQ(s.forward_blocks_per_sm, h.forward_blocks_per_sm);
    EXPECT_EQ(s.forward_state, h.forward_state);
  }
  // Both passes together: the union, larger than either.
  const Enumeration both = enumerate(spec, t);
  EXPECT_GT(both.candidates.size(), fwd.candidates.size());
  EXPECT_GT(both.candidates.size(), bwd.candidates.size());
  EXPECT_LT(both.candidates.size(), fwd.candidates.size() + bwd.candidates.size());
}

TEST(Knobs, ProjectionAndPassKnobs) {
  Schedule a, b;
  b.forward_blocks_per_sm = 3;
  b.backward_blocks_per_sm = 4;
  EXPECT_EQ(shared_projection(a), shared_projection(b));
  b.threads = 512;
  EXPECT_NE(shared_projection(a), shared_projection(b));
  const Schedule c = with_pass_knobs(a, b, Pass::backward);
  EXPECT_EQ(c.backward_blocks_per_sm, 4);
  EXPECT_EQ(c.forward_blocks_per_sm, 1);
  EXPECT_EQ(c.threads, 256);
  EXPECT_EQ(schedule_summary(a, a), "heuristic");
  EXPECT_EQ(schedule_summary(c, a), "backward_blocks_per_sm=4");
}

TEST(Knobs, PruningAfterCompilingDropsNewSpills) {
  EXPECT_TRUE(post_compile_reasons({128, 0}, {96, 0}, Pass::forward).empty());
  EXPECT_FALSE(post_compile_reasons({255, 64}, {96, 0}, Pass::backward).empty());
  // No worse than the heuristic's own spills: kept.
  EXPECT_TRUE(post_compile_reasons({255, 32}, {255, 32}, Pass::forward).empty());
}

// The analytic sizes the enumerator prunes with are what codegen lays out, for every candidate
// of every example (one per distinct placement: shared memory depends on nothing else).
TEST(Knobs, FootprintAgreesWithCodegenForEveryCandidate) {
  for (const Spec& spec : every_example()) {
    const Target t = Target::for_arch("sm_90a");
    std::set<std::string> done;
    for (const Schedule& s : enumerate(spec, t).candidates) {
      const std::string layout =
          s.lowering == "tile"
              ? fmt::format("tile{}x{}r{}", s.team_warps, s.teams_per_cta, s.register_budget)
              : fmt::format("{}{}{}", to_string(s.forward_arena), to_string(s.forward_state),
                            to_string(s.backward_arena));
      if (!done.insert(layout).second) continue;
      for (bool backward : {false, true}) {
        if (!(backward ? spec.build_backward : spec.build_forward)) continue;
        const auto g = codegen::generate(
            spec, s, backward ? codegen::KernelKind::backward : codegen::KernelKind::forward);
        if (s.lowering == "tile") {
          EXPECT_LE(g.shared_bytes, t.max_shared_bytes) << spec.name << " " << layout;
        } else {
          EXPECT_EQ(g.shared_bytes,
                    backward ? backward_shared_bytes(spec, s) : forward_shared_bytes(spec, s))
              << spec.name << " " << layout;
        }
      }
    }
    EXPECT_FALSE(done.empty());
  }
}

}  // namespace
}  // namespace ttt::autotune
