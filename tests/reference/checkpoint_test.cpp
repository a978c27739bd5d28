// checkpoint_test.cpp: gradients do not depend on how the backward is organised: checkpoint
// group size (1, 2, 3, and more than the number of mini-batches), worker thread count, or a
// shared state written out per batch row.
#include <gtest/gtest.h>

#include <cstdlib>

#include "ref_test_util.hpp"

namespace ttt::ref::testing {
namespace {

void expect_same_grads(const Grads& a, const Grads& b, double tol, const std::string& what) {
  const auto la = grad_list(a), lb = grad_list(b);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) {
    EXPECT_EQ(la[i].second->shape, lb[i].second->shape) << what << ": " << la[i].first;
    EXPECT_LE(rel_err(la[i].second->data, lb[i].second->data), tol) << what << ": " << la[i].first;
  }
}

class CheckpointGroups : public ::testing::TestWithParam<int> {};

TEST_P(CheckpointGroups, SameGradientsForEveryGroupSize) {
  const int depth = GetParam();
  constexpr int B = 2, H = 2, T = 22;  // six mini-batches of 4, the last one of 2 tokens
  for (bool causal : {true, false}) {
    const Spec base = small_spec(depth, causal, Activation::gelu_tanh, 1);
    const Inputs in = random_inputs(base, B, H, T, false, 21);
    const Upstream up = random_upstream(base, B, H, T, true, 22);
    const Grads ref = backward(base, in, up);
    for (int g : {2, 3, 4, 6, 7, 100}) {
      const Spec spec = small_spec(depth, causal, Activation::gelu_tanh, g);
      expect_same_grads(backward(spec, in, up), ref, 1e-12, describe(spec));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, CheckpointGroups, ::testing::Values(1, 2, 3),
                         [](const auto& info) { return model_name(info.param); });

// Threads only split the (b, h) heads; shared sums are reduced in a fixed order afterwards.
TEST(ReferenceThreads, BitIdenticalForAnyThreadCount) {
  const Spec spec = small_spec(2, true);
  const Inputs in = random_inputs(spec, 3, 2, 9, false, 5);
  const Upstream up = random_upstream(spec, 3, 2, 9, true, 6);
  const char* old = std::getenv("TTTC_REF_THREADS");
  const std::string saved = old ? old : "";
  setenv("TTTC_REF_THREADS", "1", 1);
  EXPECT_EQ(reference_threads(), 1);
  const Grads one = backward(spec, in, up);
  const Outputs fwd_one = forward(spec, in);
  setenv("TTTC_REF_THREADS", "4", 1);
  EXPECT_EQ(reference_threads(), 4);
  const Grads four = backward(spec, in, up);
  const Outputs fwd_four = forward(spec, in);
  if (old) {
    setenv("TTTC_REF_THREADS", saved.c_str(), 1);
  } else {
    unsetenv("TTTC_REF_THREADS");
  }
  expect_same_grads(one, four, 0.0, "1 vs 4 threads");
  EXPECT_EQ(fwd_one.out.data, fwd_four.out.data);
}

// A shared state copied to every batch row computes the same function; its gradient is the sum
// of the per-row gradients.
TEST(PerBatchState, SharedStateIsTheSumOverRows) {
  const Spec spec = small_spec(3, true);
  constexpr int B = 3, H = 2, T = 7;
  const Inputs shared = random_inputs(spec, B, H, T, false, 8);
  Inputs rows = shared;
  rows.per_batch_state = true;
  for (size_t l = 0; l < shared.W.size(); ++l) {
    for (auto [src, dst] :
         {std::pair{&shared.W[l], &rows.W[l]}, std::pair{&shared.b[l], &rows.b[l]}}) {
      std::vector<int64_t> shape = src->shape;
      shape.insert(shape.begin(), B);
      *dst = Tensor(shape);
      for (int b = 0; b < B; ++b) {
        std::copy(src->data.begin(), src->data.end(), dst->data.begin() + b * src->data.size());
      }
    }
  }
  const Upstream up = random_upstream(spec, B, H, T, true, 9);
  EXPECT_EQ(forward(spec, shared).out.data, forward(spec, rows).out.data);
  const Grads gs = backward(spec, shared, up), gr = backward(spec, rows, up);
  EXPECT_LT(rel_err(gs.dq.data, gr.dq.data), 1e-15);
  for (size_t l = 0; l < gs.dW.size(); ++l) {
    for (auto [s, r] : {std::pair{&gs.dW[l], &gr.dW[l]}, std::pair{&gs.db[l], &gr.db[l]}}) {
      std::vector<double> summed(s->data.size());
      for (int b = 0; b < B; ++b)
        for (size_t i = 0; i < summed.size(); ++i) summed[i] += r->data[b * summed.size() + i];
      EXPECT_LT(rel_err(s->data, summed), 1e-14) << "layer " << l;
    }
  }
}

}  // namespace
}  // namespace ttt::ref::testing
