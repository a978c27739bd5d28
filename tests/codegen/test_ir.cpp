// test_ir.cpp: the step IR's structure for each inner model and form, the adjoint's outputs, and
// the planner's arena (values alive together never overlap; the in-place state update is legal).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "compiler/ir.hpp"
#include "compiler/plan.hpp"

namespace ttt {
namespace {

Spec make(int depth, bool causal, int f = 32, int K = 16) {
  Spec s;
  s.model = depth == 1 ? InnerModel::linear : InnerModel::mlp;
  s.depth = depth;
  s.causal = causal;
  s.head_dim = f;
  s.mini_batch = K;
  return s;
}

int count(const ir::Program& p, ir::OpKind kind) {
  return static_cast<int>(
      std::count_if(p.ops.begin(), p.ops.end(), [&](const ir::Op& o) { return o.kind == kind; }));
}

TEST(Ir, MatmulCountFollowsDepthAndForm) {
  for (int depth : {1, 2, 3, 4}) {
    // keys forward: L; gradient back-prop: L-1; state update: L; query: causal 3L, non-causal L.
    EXPECT_EQ(count(ir::build_step(make(depth, true)), ir::OpKind::matmul),
              depth + depth - 1 + depth + 3 * depth);
    EXPECT_EQ(count(ir::build_step(make(depth, false)), ir::OpKind::matmul),
              depth + depth - 1 + depth + depth);
  }
}

TEST(Ir, CausalFormHasTheTriangularEtaAndNonCausalDoesNot) {
  auto has_tril = [](const ir::Program& p) {
    return std::any_of(p.ops.begin(), p.ops.end(), [](const ir::Op& o) {
      return o.kind == ir::OpKind::elementwise && o.ew == ir::Ew::tril;
    });
  };
  EXPECT_TRUE(has_tril(ir::build_step(make(2, true))));
  EXPECT_FALSE(has_tril(ir::build_step(make(2, false))));
}

TEST(Ir, OutputsAndShapes) {
  const Spec s = make(3, true, 64, 32);
  const ir::Program p = ir::build_step(s);
  EXPECT_EQ(p.values[p.output_id("O")].rows, 32);
  EXPECT_EQ(p.values[p.output_id("O")].cols, 64);
  EXPECT_EQ(p.values[p.output_id("W2'")].rows, 256);
  EXPECT_EQ(p.values[p.output_id("W2'")].cols, 256);
  EXPECT_EQ(p.values[p.output_id("b3'")].cols, 64);
  const std::string text = ir::describe(s, p);
  EXPECT_NE(text.find("layer 2: W2 [256x256]"), std::string::npos) << text;
  EXPECT_NE(text.find("// query output (causal dual form)"), std::string::npos);
  EXPECT_NE(text.find("// state update"), std::string::npos);
}

TEST(Ir, AdjointHasAGradientForEveryInput) {
  const ir::Program p = ir::append_adjoint(ir::build_step(make(2, false)));
  for (const char* name : {"dQ", "dK", "dV", "dlr", "dtau", "dtau_last", "dgamma", "dbeta", "dW1",
                           "db1", "dW2", "db2"})
    EXPECT_NO_THROW(p.output_id(name)) << name;
  EXPECT_THROW(p.output_id("O"), std::logic_error);
}

// The adjoint reuses values instead of recomputing them: no two non-input ops of the backward
// program (forward ops included) compute the same thing from the same operands, except the
// copies that give each output its own buffer. LayerNorm's 1/sqrt(var + eps) is an example:
// the derivative of sqrt asks for it again.
TEST(Ir, AdjointHasNoCommonSubexpressions) {
  for (int depth : {1, 2})
    for (bool causal : {true, false}) {
      const ir::Program p = ir::append_adjoint(ir::build_step(make(depth, causal)));
      std::set<int> outputs;
      for (const auto& [role, id] : p.outputs) outputs.insert(id);
      std::map<std::string, int> seen;
      for (const ir::Op& op : p.ops) {
        if (op.kind == ir::OpKind::input || outputs.count(op.out)) continue;
        std::vector<int> args = op.args;
        if (op.kind == ir::OpKind::elementwise && (op.ew == ir::Ew::add || op.ew == ir::Ew::mul))
          std::sort(args.begin(), args.end());
        std::string key = fmt::format("{} {} {} {} {} {} {} {} {} {}x{}", static_cast<int>(op.kind),
                                      fmt::join(args, ","), op.trans_a, op.trans_b, op.alpha,
                                      op.beta, static_cast<int>(op.ew), op.s, op.c,
                                      p.values[op.out].rows, p.values[op.out].cols);
        const auto [it, fresh] = seen.emplace(key, op.out);
        EXPECT_TRUE(fresh) << "depth " << depth << ": %" << op.out << " recomputes %" << it->second;
      }
      // Still a gradient for every input.
      for (const char* name : {"dQ", "dK", "dV", "dW1", "db1"}) EXPECT_NO_THROW(p.output_id(name));
    }
}

// Values whose lifetimes overlap must not share arena memory.
TEST(Plan, LiveValuesNeverOverlap) {
  for (auto kind : {plan::StepKind::forward, plan::StepKind::advance, plan::StepKind::backward})
    for (bool causal : {true, false}) {
      const plan::StepPlan pl = plan::plan_step(make(2, causal, 32, 16), kind);
      const auto& p = pl.program;
      // A fused group runs as one pass: lifetimes run from a group's start to the end of the
      // last group that reads the value.
      std::vector<long long> group_end(p.ops.size(), -1), last(p.ops.size(), -1);
      for (size_t i = 0; i < p.ops.size(); ++i)
        if (pl.live[i]) group_end[pl.group[i]] = i;
      for (size_t i = 0; i < p.ops.size(); ++i)
        if (pl.live[i]) {
          const long long end = group_end[pl.group[i]];
          last[i] = std::max(last[i], end);
          for (int a : p.ops[i].args) last[a] = std::max(last[a], end);
        }
      for (size_t a = 0; a < p.ops.size(); ++a)
        for (size_t b = a + 1; b < p.ops.size(); ++b) {
          if (pl.slot[a] < 0 || pl.slot[b] < 0 || last[a] < pl.group[b]) continue;
          const bool disjoint = pl.slot[a] + p.values[a].size() <= pl.slot[b] ||
                                pl.slot[b] + p.values[b].size() <= pl.slot[a];
          EXPECT_TRUE(disjoint) << "%" << a << " and %" << b << " overlap";
        }
      EXPECT_GT(pl.arena_floats, 0);
    }
}

TEST(Plan, FusedGroupsAreSameShapeElementwiseRuns) {
  const plan::StepPlan pl = plan::plan_step(make(2, true, 32, 16), plan::StepKind::backward);
  const auto& p = pl.program;
  int fused_ops = 0;
  for (size_t i = 0; i < p.ops.size(); ++i) {
    if (!pl.live[i] || pl.group[i] == static_cast<int>(i)) continue;
    ++fused_ops;
    const int first = pl.group[i];
    EXPECT_EQ(p.ops[i].kind, ir::OpKind::elementwise);
    EXPECT_EQ(p.values[i].rows, p.values[first].rows);
    EXPECT_EQ(p.values[i].cols, p.values[first].cols);
    for (int a : p.ops[i].args)  // operands made in the group are read at the same element
      if (a >= first && pl.group[a] == first) {
        EXPECT_EQ(p.values[a].size(), p.values[i].size());
      }
  }
  EXPECT_GT(fused_ops, 10);
}

TEST(Plan, AdvanceStepDropsTheQueryPath) {
  const plan::StepPlan fwd = plan::plan_step(make(2, true), plan::StepKind::forward);
  const plan::StepPlan adv = plan::plan_step(make(2, true), plan::StepKind::advance);
  const auto live = [](const plan::StepPlan& p) {
    return std::count(p.live.begin(), p.live.end(), true);
  };
  EXPECT_LT(live(adv), live(fwd));
  EXPECT_FALSE(adv.live[adv.program.output_id("O")]);
}

}  // namespace
}  // namespace ttt
