// dual_primal_test.cpp: the dual (mini-batch) form the kernels compute equals the token-by-token
// primal form, outputs and final states, across models, activations and a short last mini-batch.
#include <gtest/gtest.h>

#include "ref_test_util.hpp"

namespace ttt::ref::testing {
namespace {

struct Case {
  int depth;
  Activation act;
  int T;
  bool per_batch_state;
};

std::string case_name(const Case& c) {
  return model_name(c.depth) + "_" + to_string(c.act) + "_T" + std::to_string(c.T) +
         (c.per_batch_state ? "_perbatch" : "_shared");
}

// Test names and gtest's listing show the case, not its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << case_name(c); }
std::string test_name(const ::testing::TestParamInfo<Case>& info) { return case_name(info.param); }

class DualPrimal : public ::testing::TestWithParam<Case> {};

TEST_P(DualPrimal, SameOutputsAndFinalStates) {
  const Case c = GetParam();
  const Spec spec = small_spec(c.depth, /*causal=*/true, c.act);
  const Inputs in = random_inputs(spec, 2, 2, c.T, c.per_batch_state, 11);
  const Outputs dual = forward(spec, in);
  const Outputs primal = forward_primal(spec, in);
  EXPECT_LT(rel_err(dual.out.data, primal.out.data), 1e-12) << describe(spec);
  ASSERT_EQ(dual.W_final.size(), primal.W_final.size());
  for (size_t l = 0; l < dual.W_final.size(); ++l) {
    EXPECT_LT(rel_err(dual.W_final[l].data, primal.W_final[l].data), 1e-12) << "W" << l;
    EXPECT_LT(rel_err(dual.b_final[l].data, primal.b_final[l].data), 1e-12) << "b" << l;
  }
  // The state must actually move, or the comparison above proves little.
  const Outputs frozen = [&] {
    Inputs still = in;
    for (double& x : still.lr.data) x = 0.0;
    return forward(spec, still);
  }();
  EXPECT_GT(rel_err(dual.W_final[0].data, frozen.W_final[0].data), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Models, DualPrimal,
                         ::testing::Values(Case{1, Activation::gelu_tanh, 10, false},
                                           Case{1, Activation::gelu_tanh, 8, true},
                                           Case{2, Activation::gelu_tanh, 10, false},
                                           Case{2, Activation::relu, 11, false},
                                           Case{2, Activation::silu, 9, true},
                                           Case{3, Activation::gelu_tanh, 10, true},
                                           Case{3, Activation::silu, 13, false},
                                           Case{4, Activation::gelu_tanh, 10, false},
                                           Case{4, Activation::relu, 6, true},
                                           Case{2, Activation::gelu_tanh, 3, false}),
                         test_name);

}  // namespace
}  // namespace ttt::ref::testing
