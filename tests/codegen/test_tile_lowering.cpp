// test_tile_lowering.cpp: the tile lowering's decisions (forms, team distribution, homes, team
// reductions, scratch slots) and the shape of the source it generates. No GPU needed; the GPU
// sweep checks the numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <set>

#include "compiler/codegen.hpp"
#include "compiler/tile_lowering.hpp"
#include "templates/tttc/fragment_order.cuh"

namespace ttt {
namespace {

Spec linear(int f, int K, bool causal = true) {
  Spec s;
  s.model = InnerModel::linear;
  s.depth = 1;
  s.head_dim = f;
  s.mini_batch = K;
  s.causal = causal;
  return s;
}

int count(const tile::LoweredStep& L, tile::TeamReduce kind) {
  int n = 0;
  for (size_t i = 0; i < L.ops.size(); ++i) n += L.plan.live[i] && L.ops[i].reduce == kind;
  return n;
}

TEST(TileLowering, FeatureColumnsSplitOverTheTeamAndTokenMatricesAreReplicated) {
  const Spec s = linear(64, 16);
  const tile::TeamLayout layout = tile::team_layout(s, 4, false);
  const tile::LoweredStep L = tile::lower_step(s, plan::StepKind::forward, layout, 224);
  const ir::Program& p = L.plan.program;
  const int w = p.input_id("W1");
  EXPECT_TRUE(L.place[w].split);
  EXPECT_EQ(L.place[w].rows, 64);
  EXPECT_EQ(L.place[w].cols, 16);               // this warp's quarter of the columns
  EXPECT_EQ(L.place[w].home, tile::Home::reg);  // 64 x 16 fits registers: 32 floats a lane
  for (size_t i = 0; i < p.values.size(); ++i) {
    if (!L.plan.live[i]) continue;
    const ir::Value& v = p.values[i];
    if (v.name == "eta") {
      EXPECT_FALSE(L.place[i].split) << "eta is token x token";
    }
    if (v.name == "G1") {
      EXPECT_TRUE(L.place[i].split);
    }
  }
  // The forward's products all contract over whole dimensions; only the LayerNorm and
  // inner-gradient row sums (two LayerNorms, two sums of g) meet in scratch.
  EXPECT_EQ(count(L, tile::TeamReduce::product_all), 0);
  EXPECT_EQ(count(L, tile::TeamReduce::product_scatter), 0);
  EXPECT_EQ(count(L, tile::TeamReduce::rows), 6);
  EXPECT_LE(L.peak_register_floats, 224);
}

struct Exchanges {
  int exchanges = 0, moments = 0, groups = 0, rsqrts = 0;
  int barriers = 0;  // exchanges that wait for the team (the others share a later one's wait)
};
// Counts the team exchanges of a lowered step, and checks that no team total is read before the
// barrier that completes it (in emission order): a deferred sum's at its exchange, an
// exchange's at the last member of its group.
Exchanges exchanges_of(const tile::LoweredStep& L) {
  Exchanges e;
  std::vector<int> position(L.ops.size(), -1);
  for (size_t k = 0; k < L.order.size(); ++k) position[L.order[k]] = static_cast<int>(k);
  auto barrier_of = [&](int x) { return L.ops[x].exchange_at >= 0 ? L.ops[x].exchange_at : x; };
  for (size_t i = 0; i < L.ops.size(); ++i) {
    const tile::OpPlan& o = L.ops[i];
    if (!L.plan.live[i]) continue;
    const bool exchange =
        o.reduce != tile::TeamReduce::none && o.deferred_to < 0 && o.fused_into < 0;
    e.exchanges += exchange;
    e.barriers += exchange && o.exchange_at < 0;
    e.moments += o.second_moment >= 0;
    e.groups += !o.completes.empty();
    e.rsqrts += o.rsqrt;
    int total_at = -1;  // the op whose barrier completes value i
    if (o.deferred_to >= 0) {
      const auto& completes = L.ops[o.deferred_to].completes;
      EXPECT_NE(std::find(completes.begin(), completes.end(), static_cast<int>(i)),
                completes.end());
      total_at = barrier_of(o.deferred_to);
    } else if (exchange) {
      total_at = barrier_of(static_cast<int>(i));
    }
    if (total_at < 0) continue;
    for (size_t u = 0; u < L.ops.size(); ++u)
      for (int a : L.plan.program.ops[u].args) {
        if (a != static_cast<int>(i) || !L.plan.live[u] || L.ops[u].fused_into >= 0) continue;
        EXPECT_GT(position[u], position[total_at])
            << "%" << u << " reads %" << i << " before its total exists";
      }
  }
  return e;
}

// The causal linear f = 64, K = 16 step of `kind`, lowered for teams of 4 warps.
tile::LoweredStep linear_step(plan::StepKind kind) {
  const Spec s = linear(64, 16);
  return tile::lower_step(s, kind, tile::team_layout(s, 4, kind == plan::StepKind::backward), 224);
}

// The six row sums of the forward take three barriers: each LayerNorm's mean and variance one
// (row_mean_m2), and the two independent sums of the inner gradient one; 1 / sqrt is one rsqrt.
TEST(TileLowering, RowSumsShareBarriersAndRsqrtIsFused) {
  const Spec s = linear(64, 16);
  const Exchanges e = exchanges_of(linear_step(plan::StepKind::forward));
  EXPECT_EQ(e.exchanges, 3);
  EXPECT_EQ(e.barriers, 3);  // a chain: no two of them are independent
  EXPECT_EQ(e.groups, 1);
  EXPECT_EQ(e.moments, 2);
  EXPECT_EQ(e.rsqrts, 2);
  const Schedule sched = default_schedule(s, Target::for_arch("sm_90a"));
  const std::string src = codegen::generate(s, sched, codegen::KernelKind::forward).source;
  EXPECT_NE(src.find("tl::row_mean_m2<4>("), std::string::npos);
  EXPECT_TRUE(std::regex_search(src, std::regex(R"(tl::team_sums<4>\(team, \d+, v\d+, v\d+\);)")));
  EXPECT_NE(src.find("tl::kRsqrt"), std::string::npos);
  EXPECT_EQ(src.find("tl::kSqrt"), std::string::npos);
}

// The backward's 17 team reductions take 12 exchanges: three sums of LayerNorm's backward
// share one, scalings of a sum move after its exchange. Independent exchanges then share
// barriers: 10 (the query LayerNorm's statistics with dW' K^T's scatter; dQ's scatter with three
// row sums), each group with at most one product.
TEST(TileLowering, BackwardSumsAreGroupedAndTheirUsesMoveAfterTheExchange) {
  const tile::LoweredStep L = linear_step(plan::StepKind::backward);
  const Exchanges e = exchanges_of(L);
  EXPECT_EQ(e.exchanges, 12);
  EXPECT_EQ(e.barriers, 10);
  EXPECT_EQ(e.groups, 3);
  EXPECT_EQ(e.moments, 2);
  for (size_t x = 0; x < L.ops.size(); ++x) {
    const tile::OpPlan& o = L.ops[x];
    if (o.exchanged.empty()) continue;
    int products = o.reduce != tile::TeamReduce::rows;
    for (int m : o.exchanged) {
      EXPECT_EQ(L.ops[m].exchange_at, static_cast<int>(x));
      products += L.ops[m].reduce != tile::TeamReduce::rows;
    }
    EXPECT_LE(products, 1) << "a group at %" << x << " holds two products";
  }
  std::vector<bool> seen(L.ops.size(), false);
  for (int i : L.order) {
    for (int a : L.plan.program.ops[i].args) {
      EXPECT_TRUE(seen[a] || !L.plan.live[a])
          << "%" << i << " is emitted before its operand %" << a;
    }
    seen[i] = true;
  }
}

TEST(TileLowering, BackwardProductsOverSplitColumnsAreReducedAndSlotsAlternate) {
  const Spec s = linear(64, 16);
  const tile::TeamLayout layout = tile::team_layout(s, 4, true);
  const tile::LoweredStep L = tile::lower_step(s, plan::StepKind::backward, layout, 224);
  EXPECT_GT(count(L, tile::TeamReduce::product_scatter), 0);  // e.g. dK from dZ W^T
  EXPECT_GT(count(L, tile::TeamReduce::product_all), 0);      // a token x token adjoint
  // Each barrier's group of exchanges (in emission order) takes slots of its own kind, none of
  // them a slot of the group before it.
  std::set<int> previous;
  for (int i : L.order) {
    const tile::OpPlan& o = L.ops[i];
    if (!L.plan.live[i] || o.reduce == tile::TeamReduce::none || o.deferred_to >= 0 ||
        o.fused_into >= 0 || o.exchange_at >= 0)
      continue;  // barriers only: a deferred, fused or grouped sum waits at a later one
    std::vector<int> group = o.exchanged;
    group.push_back(i);
    std::set<int> slots;
    for (int x : group) {
      const int slot = L.ops[x].scratch_slot;
      const bool rows = L.ops[x].reduce == tile::TeamReduce::rows;
      EXPECT_EQ(slot >= tile::kProductSlots, rows) << "%" << x << " in a slot of the other kind";
      EXPECT_FALSE(previous.count(slot))
          << "consecutive groups share slot " << slot << " at %" << x;
      EXPECT_TRUE(slots.insert(slot).second) << "one group takes slot " << slot << " twice";
    }
    previous = slots;
  }
}

TEST(TileLowering, OneWarpTeamsNeedNoScratch) {
  const Spec s = linear(32, 16, false);
  const tile::TeamLayout layout = tile::team_layout(s, 1, true);
  const tile::LoweredStep L = tile::lower_step(s, plan::StepKind::backward, layout, 224);
  EXPECT_EQ(count(L, tile::TeamReduce::rows) + count(L, tile::TeamReduce::product_all) +
                count(L, tile::TeamReduce::product_scatter),
            0);
  for (size_t i = 0; i < L.place.size(); ++i) EXPECT_FALSE(L.place[i].split);
}

TEST(TileLowering, ATightBudgetMovesValuesToSharedMemoryAndGrowsTheFootprint) {
  const Spec s = linear(64, 16);
  const tile::TeamFootprint roomy = tile::team_footprint(s, 1, false, 224);
  const tile::TeamFootprint tight = tile::team_footprint(s, 1, false, 64);
  EXPECT_GT(tight.warp_floats, roomy.warp_floats);
  const tile::LoweredStep L =
      tile::lower_step(s, plan::StepKind::forward, tile::team_layout(s, 1, false), 64);
  int spilled = 0;
  for (size_t i = 0; i < L.place.size(); ++i)
    spilled += L.plan.live[i] && L.place[i].home == tile::Home::smem;
  EXPECT_GT(spilled, 0);
}

TEST(TileLowering, MembersTooLargeForRegistersLiveInSharedMemory) {
  const tile::TeamLayout one = tile::team_layout(linear(64, 16), 1, true);
  EXPECT_EQ(one.state_offset.count("W1"), 1u);  // 64 x 64: 128 floats a lane
  EXPECT_EQ(one.dstate_offset.count("W1"), 1u);
  const tile::TeamLayout four = tile::team_layout(linear(64, 16), 4, true);
  EXPECT_TRUE(four.state_offset.empty());  // 64 x 16 per warp
}

TEST(TileLowering, UnsupportedSpecsSayWhy) {
  EXPECT_TRUE(tile::unsupported(linear(64, 16), 4).empty());
  const auto reasons = tile::unsupported(linear(48, 16), 2);  // 48 = 3 slices of 16
  ASSERT_FALSE(reasons.empty());
  EXPECT_NE(reasons.front().find("does not split into 2 slices of 16"), std::string::npos);
  EXPECT_EQ(tile::default_team_warps(linear(48, 16)), 1);
  EXPECT_EQ(tile::default_team_warps(linear(128, 16)), 8);
}

TEST(TileCodegen, TheStubDeclaresWarpTilesAndTheLaunchShapeFollowsTheTeams) {
  const Spec s = linear(64, 16);
  Schedule sched = default_schedule(s, Target::for_arch("sm_90a"));
  sched.teams_per_cta = 2;
  const codegen::Generated f = codegen::generate(s, sched, codegen::KernelKind::forward);
  EXPECT_EQ(f.threads, 2 * 32 * sched.team_warps);
  EXPECT_EQ(f.heads_per_cta, 2);
  EXPECT_NE(f.source.find("#include \"tttc/tile_driver.cuh\""), std::string::npos);
  EXPECT_NE(f.source.find("tl::team_sums<4>"), std::string::npos);
  EXPECT_NE(f.source.find("tl::StagedTokens<Cfg::Elem, 16, 16, Cfg::kStageRowStride>"),
            std::string::npos);                                    // a warp's slice of a token tile
  EXPECT_EQ(f.source.find("tttc/driver.cuh"), std::string::npos);  // not the arena's driver
  // Every matmul names its parts: accurate bf16 tokens are exact (1 part), state 2 parts.
  EXPECT_TRUE(
      std::regex_search(f.source, std::regex(R"(tl::matmul<1, 2, false, false, 16, 16, 64>)")));
  const codegen::Generated b = codegen::generate(s, sched, codegen::KernelKind::backward);
  EXPECT_NE(b.source.find("tl::team_sum_scatter<4>"), std::string::npos);
  EXPECT_NE(b.source.find("struct TeamDState"), std::string::npos);
}

// A tile forward writes its checkpoints in fragment order for a tile backward (or none), and for
// an arena backward where the schedule asks (convert_checkpoints: the backward converts each,
// Cfg::unpack_checkpoint); else, and from an arena forward, in the packed layout.
TEST(TileCodegen, CheckpointLayoutIsAgreedByBothKernels) {
  const Spec s = linear(64, 16);
  const Schedule both = default_schedule(s, Target::for_arch("sm_90a"));
  ASSERT_EQ(both.backward_lowering, "tile");
  const auto flag = [&](const Spec& spec, const Schedule& schedule, codegen::KernelKind kind) {
    const std::string src = codegen::generate(spec, schedule, kind).source;
    return src.find("kFragmentCheckpoints = true") != std::string::npos;
  };
  EXPECT_TRUE(flag(s, both, codegen::KernelKind::forward));
  EXPECT_TRUE(flag(s, both, codegen::KernelKind::backward));
  Schedule arena_backward = both;
  arena_backward.backward_lowering = "arena";
  EXPECT_FALSE(flag(s, arena_backward, codegen::KernelKind::forward));
  EXPECT_FALSE(flag(s, arena_backward, codegen::KernelKind::backward));
  arena_backward.convert_checkpoints = true;
  EXPECT_TRUE(flag(s, arena_backward, codegen::KernelKind::forward));
  EXPECT_TRUE(flag(s, arena_backward, codegen::KernelKind::backward));
  EXPECT_NE(codegen::generate(s, arena_backward, codegen::KernelKind::backward)
                .source.find("tttc::unpack_fragments<64, 64, tttc::kFragmentCols, 4>(packed + 0, "
                             "fragments + 0);  // W1"),
            std::string::npos);
  Schedule arena_forward = arena_backward;
  arena_forward.lowering = "arena";
  const Target t = Target::for_arch("sm_90a");
  ASSERT_FALSE(validate(s, arena_forward, t).empty());  // nothing writes fragment order
  EXPECT_NE(validate(s, arena_forward, t).front().find("convert_checkpoints"), std::string::npos);
  arena_forward.convert_checkpoints = false;
  EXPECT_FALSE(flag(s, arena_forward, codegen::KernelKind::backward));
  arena_forward.backward_lowering = "tile";
  EXPECT_FALSE(flag(s, arena_forward, codegen::KernelKind::backward));
  // The heuristic converts where the state is small (linear K = 64: 4160 floats), not mlp2's.
  Spec k64 = linear(64, 64);
  const Schedule k64_schedule = default_schedule(k64, t);
  EXPECT_EQ(k64_schedule.backward_lowering, "arena");
  EXPECT_TRUE(k64_schedule.convert_checkpoints);
  EXPECT_FALSE(default_schedule(linear(64, 16), t).convert_checkpoints);  // tile backward
  Spec forward_only = s;
  forward_only.build_backward = false;
  EXPECT_TRUE(flag(forward_only, arena_backward, codegen::KernelKind::forward));
  // The state's methods for both layouts: packed (state0, final states) and fragment order.
  const std::string src = codegen::generate(s, both, codegen::KernelKind::backward).source;
  EXPECT_NE(src.find("tl::FragTile<64, 16> g{dst + 0 + 1024 * rank}"), std::string::npos);
  EXPECT_NE(src.find("tl::GlobalTile<64, 16, 64> g{dst + 0 + 16 * rank}"), std::string::npos);
}

TEST(TileCodegen, PrecisionModesChangeTheProducts) {
  Spec s = linear(64, 16);
  const Target t = Target::for_arch("sm_90a");
  s.precision = Precision::bf16;
  const auto bf16 = codegen::generate(s, default_schedule(s, t), codegen::KernelKind::forward);
  EXPECT_TRUE(std::regex_search(bf16.source, std::regex(R"(tl::matmul<1, 1, )")));
  EXPECT_FALSE(std::regex_search(bf16.source, std::regex(R"(tl::matmul<[0-9], 2, )")));
  s.precision = Precision::tf32;
  const auto tf32 = codegen::generate(s, default_schedule(s, t), codegen::KernelKind::forward);
  EXPECT_TRUE(std::regex_search(tf32.source, std::regex(R"(tl::matmul<0, 0, )")));
  s.precision = Precision::accurate;
  s.dtype = DType::f32;  // f32 tokens and values: three parts each
  const auto f32 = codegen::generate(s, default_schedule(s, t), codegen::KernelKind::forward);
  EXPECT_TRUE(std::regex_search(f32.source, std::regex(R"(tl::matmul<3, 3, )")));
}

Spec mlp(int depth, int f, Precision precision = Precision::accurate) {
  Spec s;
  s.model = InnerModel::mlp;
  s.depth = depth;
  s.head_dim = f;
  s.mini_batch = 16;
  s.precision = precision;
  return s;
}

// An MLP splits its hidden units only: W1 by columns, W2 (the last layer) by rows, so x1·W2
// contracts over each warp's slice and meets in scratch; its values over features (z2,
// LayerNorm, the inner gradient G2) and gamma, beta, b2 are replicated.
TEST(TileLowering, MlpsSplitTheHiddenUnitsAndReplicateTheFeatures) {
  const Spec s = mlp(2, 64);
  EXPECT_EQ(tile::member_split(s, 1, false, 4), tile::Split::cols);
  EXPECT_EQ(tile::member_split(s, 2, false, 4), tile::Split::rows);
  EXPECT_EQ(tile::member_split(s, 1, true, 4), tile::Split::cols);
  EXPECT_EQ(tile::member_split(s, 2, true, 4), tile::Split::none);
  EXPECT_EQ(tile::member_split(s, 2, false, 1), tile::Split::none);
  EXPECT_EQ(tile::member_split(linear(64, 16), 1, false, 4), tile::Split::cols);
  EXPECT_EQ(tile::feature_slices(s, 4), 1);
  EXPECT_EQ(tile::feature_slices(linear(64, 16), 4), 4);

  const tile::LoweredStep L =
      tile::lower_step(s, plan::StepKind::forward, tile::team_layout(s, 4, false), 224);
  const ir::Program& p = L.plan.program;
  const tile::ValuePlace& w1 = L.place[p.input_id("W1")];
  const tile::ValuePlace& w2 = L.place[p.input_id("W2")];
  EXPECT_TRUE(w1.split && !w1.split_rows);
  EXPECT_EQ(w1.rows, 64);
  EXPECT_EQ(w1.cols, 64);  // 256 hidden columns over 4 warps
  EXPECT_TRUE(w2.split_rows && !w2.split);
  EXPECT_EQ(w2.rows, 64);  // 256 hidden rows over 4 warps
  EXPECT_EQ(w2.cols, 64);
  EXPECT_FALSE(L.place[p.input_id("gamma")].split);
  EXPECT_FALSE(L.place[p.input_id("b2")].split);
  EXPECT_TRUE(L.place[p.input_id("b1")].split);
  for (size_t i = 0; i < p.values.size(); ++i)
    if (L.plan.live[i] && p.values[i].name == "G2") {
      EXPECT_FALSE(L.place[i].split);
    }
  // x1·W2 on keys and on queries, x1q·x1^T for the causal attention: every other op is local,
  // LayerNorm included.
  EXPECT_EQ(count(L, tile::TeamReduce::product_all), 3);
  EXPECT_EQ(count(L, tile::TeamReduce::product_scatter), 0);
  EXPECT_EQ(count(L, tile::TeamReduce::rows), 0);
  // The two products of the queries are independent, but one group holds one product (two would
  // need a third product slot: 36 KB more scratch, past mlp2's shared memory).
  EXPECT_EQ(exchanges_of(L).barriers, 3);
  // The new W2 is computed in rows: x1^T (this warp's hidden rows) times the whole G2.
  const tile::ValuePlace& w2_new = L.place[p.output_id("W2'")];
  EXPECT_TRUE(w2_new.split_rows);
  // Scratch slots are sized one by one: slot 1 holds only 16 x 16 partials.
  EXPECT_EQ(L.slot_floats[0], 4 * tile::smem_floats(16, 64));
  EXPECT_EQ(L.slot_floats[1], 4 * tile::smem_floats(16, 16));
  EXPECT_EQ(tile::scratch_offset(tile::kProductSlots, L.slot_floats),
            L.slot_floats[0] + L.slot_floats[1]);
}

// Hidden-by-hidden weights (mlp3's W2) would need the hidden activations whole: not yet.
TEST(TileLowering, DeeperMlpsSayWhyTheyCannotSplit) {
  const auto reasons = tile::unsupported(mlp(3, 64), 4, true, false);
  ASSERT_FALSE(reasons.empty());
  EXPECT_NE(reasons.front().find("whole contraction"), std::string::npos) << reasons.front();
  EXPECT_TRUE(tile::unsupported(mlp(2, 64), 4, true, false).empty());
  // Only hidden widths split: f = 16 with 64 hidden units splits over 4 warps.
  EXPECT_EQ(tile::default_team_warps(mlp(2, 16), true, false), 4);
}

// The state struct of an MLP team: W2's slice is rows of the packed matrix, b2 is whole and
// written by warp 0 only.
TEST(TileCodegen, MlpStateSlicesFollowTheirSplit) {
  const Spec s = mlp(2, 64, Precision::bf16);
  Schedule sched = default_schedule(s, Target::for_arch("sm_90a"));
  sched.team_warps = 4;
  const std::string src = codegen::generate(s, sched, codegen::KernelKind::forward).source;
  EXPECT_NE(src.find("tl::GlobalTile<64, 64, 256> g{const_cast<float*>(src) + 0 + 64 * rank}"),
            std::string::npos);  // W1: 64 of 256 columns
  EXPECT_NE(src.find("tl::GlobalTile<64, 64, 64> g{const_cast<float*>(src) + 16640 + 4096 * rank}"),
            std::string::npos);  // W2 at 64 * 256 + 256: 64 of 256 rows
  EXPECT_NE(src.find("if (rank == 0) { tl::GlobalRow<64> g{dst + 33024}"), std::string::npos);
  EXPECT_NE(src.find("tl::team_sum<4>"), std::string::npos);
  EXPECT_NE(src.find("kFeatureSlices = 1"), std::string::npos);
  // Replicated gamma and beta are read where used, not held in registers.
  EXPECT_NE(src.find("const tl::GlobalRow<64> v6{const_cast<float*>(c.gamma)};"),
            std::string::npos);
}

// The heuristic's MLP teams (results.md, session 23): 8 warps with the weights in shared memory
// (and every register left to the step) where 8 warps do not fit with them in registers; tf32
// steps with the weights in shared memory stay on the arena lowering, as do backwards whose
// adjoint state does not fit.
TEST(TileSchedule, MlpTeamsKeepTheirWeightsInSharedMemoryWhereThatFits) {
  const Target t = Target::for_arch("sm_90a");
  for (Precision precision : {Precision::accurate, Precision::bf16}) {
    const Schedule s = default_schedule(mlp(2, 64, precision), t);
    EXPECT_EQ(s.lowering, "tile");
    EXPECT_EQ(s.backward_lowering, "arena");
    EXPECT_EQ(s.team_warps, 8);
    EXPECT_EQ(s.register_state, 0);
    EXPECT_EQ(s.register_budget, 255);
    EXPECT_TRUE(validate(mlp(2, 64, precision), s, t).empty());
    EXPECT_FALSE(s.convert_checkpoints);  // its arena backward reads packed checkpoints
  }
  EXPECT_EQ(default_schedule(mlp(2, 64, Precision::tf32), t).lowering, "arena");
  // Linear teams keep their state in registers and are not tried smaller.
  const Schedule linear_schedule = default_schedule(linear(64, 16), t);
  EXPECT_EQ(linear_schedule.register_state, tile::kMaxRegisterState);
  EXPECT_EQ(linear_schedule.team_warps, 4);
  // The knob moves the state: 8-warp slices of mlp2 (64 floats a lane) into shared memory.
  EXPECT_TRUE(tile::team_layout(mlp(2, 64), 8, false).state_offset.empty());
  EXPECT_EQ(tile::team_layout(mlp(2, 64), 8, false, 0).state_offset.size(), 2u);
  Schedule bad = default_schedule(mlp(2, 64), t);
  bad.register_state = -1;
  ASSERT_FALSE(validate(mlp(2, 64), bad, t).empty());
  EXPECT_NE(validate(mlp(2, 64), bad, t).front().find("register_state = -1"), std::string::npos);
}

// V - K (tokens only) is computed just before its first use, not where the IR defines it.
TEST(TileLowering, TokenOnlyValuesAreEmittedAtTheirFirstUse) {
  const Spec s = mlp(2, 64);
  const tile::LoweredStep L =
      tile::lower_step(s, plan::StepKind::forward, tile::team_layout(s, 4, false), 224);
  const ir::Program& p = L.plan.program;
  std::vector<int> position(p.ops.size(), -1);
  for (size_t k = 0; k < L.order.size(); ++k) position[L.order[k]] = static_cast<int>(k);
  int sunk = 0;
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const ir::Op& op = p.ops[i];
    if (!L.plan.live[i] || op.kind != ir::OpKind::elementwise || op.args.size() != 2) continue;
    if (p.values[op.args[0]].name != "V" || p.values[op.args[1]].name != "K") continue;
    int first_use = static_cast<int>(L.order.size());
    for (size_t u = 0; u < p.ops.size(); ++u)
      for (int a : p.ops[u].args)
        if (a == static_cast<int>(i) && L.plan.live[u])
          first_use = std::min(first_use, position[u]);
    EXPECT_EQ(position[i] + 1, first_use);
    ++sunk;
  }
  EXPECT_EQ(sunk, 1);
}

}  // namespace

// The arena backward reads a tile forward's checkpoints through fragment_index: it must be a
// permutation that keeps each warp's slice together, blocks of 8 x 8 in row-major order, and a
// lane's two elements side by side (tile::FragTile).
template <int R, int C, int Split, int Warps>
static std::vector<long long> fragment_indices() {
  std::vector<long long> at(1LL * R * C);
  for (long long k = 0; k < R * C; ++k) at[k] = tttc::fragment_index<R, C, Split, Warps>(k);
  return at;
}
TEST(FragmentOrder, IsAPermutationOfEachWarpsSlice) {
  const auto cols = fragment_indices<64, 256, tttc::kFragmentCols, 8>();  // mlp2's W1
  std::set<long long> distinct(cols.begin(), cols.end());
  EXPECT_EQ(distinct.size(), cols.size());
  EXPECT_EQ(*distinct.begin(), 0);
  EXPECT_EQ(*distinct.rbegin(), 64 * 256 - 1);
  EXPECT_EQ(cols[0 * 256 + 1], 1);         // a lane's second element
  EXPECT_EQ(cols[0 * 256 + 2], 2);         // the next lane
  EXPECT_EQ(cols[1 * 256 + 0], 8);         // row 1: lane 4
  EXPECT_EQ(cols[0 * 256 + 8], 64);        // the next block
  EXPECT_EQ(cols[8 * 256 + 0], 4 * 64);    // the next block row (4 blocks of 8 columns a warp)
  EXPECT_EQ(cols[0 * 256 + 32], 64 * 32);  // warp 1's slice
  const auto rows = fragment_indices<256, 64, tttc::kFragmentRows, 8>();  // mlp2's W2
  EXPECT_EQ(std::set<long long>(rows.begin(), rows.end()).size(), rows.size());
  EXPECT_EQ(rows[32 * 64], 32 * 64);  // warp 1's rows
  EXPECT_EQ(rows[0 * 64 + 8], 64);
  const auto whole = fragment_indices<64, 64, tttc::kFragmentWhole, 4>();  // replicated
  EXPECT_EQ(whole[8 * 64], 8 * 64);
  EXPECT_EQ(std::set<long long>(whole.begin(), whole.end()).size(), whole.size());
  // packed_index (what the arena backward's conversion uses) is fragment_index's inverse.
  for (long long k = 0; k < 64 * 256; ++k) {
    ASSERT_EQ((tttc::packed_index<64, 256, tttc::kFragmentCols, 8>(static_cast<int>(cols[k]))), k);
    ASSERT_EQ((tttc::packed_index<256, 64, tttc::kFragmentRows, 8>(static_cast<int>(rows[k]))), k);
  }
  for (long long k = 0; k < 64 * 64; ++k)
    ASSERT_EQ((tttc::packed_index<64, 64, tttc::kFragmentWhole, 4>(static_cast<int>(whole[k]))), k);
}

// Global homes (Schedule::global_state, tile_shared_kib): the backward kernel's adjoint state
// (1) and state (2) in each warp's region of the workspace; values past the team's shared-memory
// limit there too; the forward kernel keeps its state on chip whatever global_state says.
TEST(TileLowering, GlobalHomesTakeWhatSharedMemoryCannotHold) {
  const Spec s = mlp(2, 64);
  const tile::TeamLayout adjoint = tile::team_layout(s, 8, true, 0, 1);
  EXPECT_EQ(adjoint.state_offset.size(), 2u);
  EXPECT_TRUE(adjoint.dstate_offset.empty());
  EXPECT_EQ(adjoint.dstate_global.size(), 2u);
  EXPECT_EQ(adjoint.persistent_global_floats, 2 * 64 * 32);  // W1 64 x 32, W2 32 x 64 a warp
  const tile::TeamLayout both = tile::team_layout(s, 8, true, 0, 2);
  EXPECT_EQ(both.state_global.size(), 2u);
  EXPECT_EQ(both.persistent_floats, 0);
  EXPECT_TRUE(tile::team_layout(s, 8, false, 0, 2).state_global.empty());

  // Without a limit the step's values spill to shared memory only; with one, past it.
  const tile::LoweredStep free = tile::lower_step(s, plan::StepKind::backward, both, 255);
  EXPECT_EQ(free.global_end, both.persistent_global_floats);
  const tile::LoweredStep capped =
      tile::lower_step(s, plan::StepKind::backward, both, 255, plan::AdjointPart::whole, 4096);
  EXPECT_LE(capped.smem_end, 4096);
  EXPECT_GT(capped.global_end, both.persistent_global_floats);
  int in_global = 0;
  for (size_t i = 0; i < capped.place.size(); ++i)
    if (capped.plan.live[i] && capped.place[i].home == tile::Home::global) {
      ++in_global;
      EXPECT_EQ(capped.place[i].form, tile::Form::matrix) << "%" << i;
      EXPECT_GE(capped.place[i].offset, 0) << "%" << i;
    }
  EXPECT_GT(in_global, 4);

  // The kernel: the team fits its limit; the warps' regions are part of the workspace.
  const Target t = Target::for_arch("sm_90a");
  Schedule sched = default_schedule(s, t);
  sched.backward_lowering = "tile";
  EXPECT_FALSE(validate(s, sched, t).empty());  // state and adjoint do not fit one SM
  sched.global_state = 2;
  sched.tile_shared_kib = 227;
  ASSERT_TRUE(validate(s, sched, t).empty()) << validate(s, sched, t).front();
  const codegen::Generated b = codegen::generate(s, sched, codegen::KernelKind::backward);
  EXPECT_LE(b.shared_bytes, t.max_shared_bytes);
  EXPECT_NE(b.source.find("tl::SpillTile<"), std::string::npos);
  EXPECT_NE(b.source.find("W1.base = warp_global + 0;"), std::string::npos);
  const auto warp_global = std::regex_search(b.source, std::regex("kWarpGlobalFloats = [1-9]"));
  EXPECT_TRUE(warp_global);
  EXPECT_GE(b.workspace_floats, 8LL * both.persistent_global_floats);
  // A split backward's teams take items of several heads: no global regions there.
  sched.backward_split = true;
  bool refused = false;
  for (const std::string& why : validate(s, sched, t))
    refused |= why.find("cannot run the backward_split kernel") != std::string::npos;
  EXPECT_TRUE(refused);
  // The schedule's JSON keeps both fields; older files (without them) mean neither.
  sched.backward_split = false;
  const Schedule back = schedule_from_json(schedule_to_json(sched));
  EXPECT_EQ(back.global_state, 2);
  EXPECT_EQ(back.tile_shared_kib, 227);
  nlohmann::json old = schedule_to_json(sched);
  old.erase("global_state");
  old.erase("tile_shared_kib");
  EXPECT_EQ(schedule_from_json(old).global_state, 0);
  EXPECT_EQ(schedule_from_json(old).tile_shared_kib, 0);
  sched.global_state = 3;
  EXPECT_FALSE(validate(s, sched, t).empty());
}

}  // namespace ttt
