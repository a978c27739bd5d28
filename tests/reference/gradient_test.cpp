// gradient_test.cpp: every gradient backward() returns equals central finite differences of the
// forward, element by element, for every model depth, causal and non-causal, a short last
// mini-batch, shared and per-batch initial state, with and without an upstream dtheta_T.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "ref_test_util.hpp"

namespace ttt::ref::testing {
namespace {

struct Case {
  int depth;
  bool causal;
  bool per_batch_state;
  bool state_grads;  // dLoss/dtheta_T given
  Activation act = Activation::gelu_tanh;
};

std::string case_name(const Case& c) {
  return model_name(c.depth) + "_" + to_string(c.act) + (c.causal ? "_causal" : "_noncausal") +
         (c.per_batch_state ? "_perbatch" : "_shared") + (c.state_grads ? "_dthetaT" : "");
}

// Test names and gtest's listing show the case, not its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << case_name(c); }
std::string test_name(const ::testing::TestParamInfo<Case>& info) { return case_name(info.param); }

class FiniteDifferences : public ::testing::TestWithParam<Case> {};

TEST_P(FiniteDifferences, EveryGradientMatches) {
  const Case c = GetParam();
  const Spec spec = small_spec(c.depth, c.causal, c.act);
  constexpr int B = 2, H = 2, T = 10;  // mini-batches of 4, 4 and 2 tokens
  Inputs in = random_inputs(spec, B, H, T, c.per_batch_state, 3);
  const Upstream up = random_upstream(spec, B, H, T, c.state_grads, 4);
  const Grads g = backward(spec, in, up);

  for (const NamedPair& p : input_grad_pairs(in, g)) {
    std::vector<double> fd(p.input->data.size());
    for (size_t i = 0; i < fd.size(); ++i) {
      // A step relative to the value: truncation error ~h^2, rounding ~1e-16 |loss| / h.
      double& x = p.input->data[i];
      const double x0 = x, h = 1e-5 * std::max(std::abs(x0), 1e-2);
      x = x0 + h;
      const double plus = loss(spec, in, up);
      x = x0 - h;
      const double minus = loss(spec, in, up);
      x = x0;
      fd[i] = (plus - minus) / (2.0 * h);
    }
    ASSERT_EQ(p.grad->shape, p.input->shape) << p.name;
    EXPECT_GT(norm(p.grad->data), 0.0) << p.name;
    EXPECT_LT(rel_err(fd, p.grad->data), 1e-6) << "d" << p.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, FiniteDifferences,
                         ::testing::Values(Case{1, true, false, false}, Case{1, true, true, true},
                                           Case{1, false, false, true}, Case{1, false, true, false},
                                           Case{2, true, false, false}, Case{2, true, true, true},
                                           Case{2, false, false, true}, Case{2, false, true, false},
                                           Case{3, true, false, true}, Case{3, false, true, true},
                                           Case{4, true, true, false}, Case{4, false, false, true},
                                           Case{2, true, false, true, Activation::silu},
                                           Case{3, false, false, false, Activation::silu},
                                           Case{2, true, true, true, Activation::relu}),
                         test_name);

}  // namespace
}  // namespace ttt::ref::testing
