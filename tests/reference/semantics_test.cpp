// semantics_test.cpp: the reference against ttt-math.md's definitions, using only the public API:
// the inner gradient G is the true gradient of the inner loss 1/2 ||LN(f(k)) - (v - k)||^2, and
// the non-causal form evaluates every token with the state already updated by its mini-batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "ref_test_util.hpp"

namespace ttt::ref::testing {
namespace {

// With lr = 0 the state never moves, so forward() with q = x returns x + LN(f_theta(x)).
Inputs frozen(Inputs in) {
  std::fill(in.lr.data.begin(), in.lr.data.end(), 0.0);
  return in;
}

class InnerGradient : public ::testing::TestWithParam<int> {};

// One token: the carried state is theta - tau_0 lr_0 grad l(theta; k, v). Compare that step with
// central differences of the inner loss evaluated through the forward.
TEST_P(InnerGradient, IsTheGradientOfTheInnerLoss) {
  const Spec spec = small_spec(GetParam(), /*causal=*/true);
  Inputs in = random_inputs(spec, 1, 1, 1, false, 31);
  const Outputs stepped = forward(spec, in);
  const double eta = in.tau.data[0] * in.lr.data[0];

  Inputs probe = frozen(in);
  probe.q = in.k;
  auto inner_loss = [&] {
    const Outputs o = forward(spec, probe);
    double l = 0.0;
    for (size_t j = 0; j < o.out.data.size(); ++j) {
      const double ln = o.out.data[j] - in.k.data[j];  // LN(f(k))
      const double r = ln - (in.v.data[j] - in.k.data[j]);
      l += 0.5 * r * r;
    }
    return l;
  };
  for (size_t l = 0; l < in.W.size(); ++l) {
    for (auto [param, after] : {std::pair{&probe.W[l], &stepped.W_final[l]},
                                std::pair{&probe.b[l], &stepped.b_final[l]}}) {
      std::vector<double> fd(param->data.size()), step(param->data.size());
      for (size_t i = 0; i < fd.size(); ++i) {
        double& x = param->data[i];
        const double x0 = x, h = 1e-5 * std::max(std::abs(x0), 1e-2);
        x = x0 + h;
        const double plus = inner_loss();
        x = x0 - h;
        const double minus = inner_loss();
        x = x0;
        fd[i] = (plus - minus) / (2.0 * h);
        step[i] = (x0 - after->data[i]) / eta;
      }
      EXPECT_LT(rel_err(step, fd), 1e-7) << model_name(GetParam()) << " layer " << l;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, InnerGradient, ::testing::Values(1, 2, 3),
                         [](const auto& info) { return model_name(info.param); });

// Non-causal, one mini-batch (full or short): the outputs are those of a frozen layer whose
// initial state is the final state.
TEST(NonCausal, EvaluatesWithTheUpdatedState) {
  for (int depth : {1, 2, 4}) {
    for (int T : {4, 3}) {
      const Spec spec = small_spec(depth, /*causal=*/false);
      const Inputs in = random_inputs(spec, 2, 2, T, false, 41);
      const Outputs o = forward(spec, in);
      Inputs after = frozen(in);
      after.per_batch_state = true;
      after.W = o.W_final;
      after.b = o.b_final;
      EXPECT_LT(rel_err(forward(spec, after).out.data, o.out.data), 1e-13)
          << model_name(depth) << " T=" << T;
    }
  }
}

}  // namespace
}  // namespace ttt::ref::testing
