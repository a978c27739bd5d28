// errors_test.cpp: misuse of the reference fails loudly: the primal form refuses non-causal
// specs, and every mismatched tensor is reported as std::invalid_argument naming the tensor.
#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>

#include "ref_test_util.hpp"

namespace ttt::ref::testing {
namespace {

// Runs `call` and requires std::invalid_argument whose message contains `needle`.
void expect_invalid(const std::function<void()>& call, const std::string& needle) {
  try {
    call();
    ADD_FAILURE() << "no exception; expected one naming " << needle;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message '" << e.what() << "' does not name " << needle;
  }
}

class BadUse : public ::testing::Test {
 protected:
  const Spec spec = small_spec(2, true);
  const Inputs good = random_inputs(spec, 2, 2, 6, false, 1);
  const Upstream up = random_upstream(spec, 2, 2, 6, true, 2);

  // Changes one input and requires forward() and backward() to reject it, naming `needle`.
  void expect_rejected(const std::function<void(Inputs&)>& change, const std::string& needle) {
    Inputs in = good;
    change(in);
    expect_invalid([&] { forward(spec, in); }, needle);
    expect_invalid([&] { backward(spec, in, up); }, needle);
  }
};

TEST_F(BadUse, PrimalFormRejectsNonCausalSpec) {
  const Spec video = small_spec(2, false);
  expect_invalid([&] { forward_primal(video, random_inputs(video, 1, 1, 4, false, 1)); }, "causal");
}

TEST_F(BadUse, MismatchedInputShapesNameTheTensor) {
  expect_rejected([](Inputs& in) { in.q = Tensor({2, 2, 6, 7}); }, "'q'");
  expect_rejected([](Inputs& in) { in.k.shape = {2, 6, 2, 8}; }, "'k'");
  expect_rejected([](Inputs& in) { in.v = Tensor({2, 2, 5, 8}); }, "'v'");
  expect_rejected([](Inputs& in) { in.lr = Tensor({2, 2, 6, 1}); }, "'lr'");
  expect_rejected([](Inputs& in) { in.tau = Tensor({6}); }, "'tau'");
  expect_rejected([](Inputs& in) { in.gamma = Tensor({8}); }, "'gamma'");
  expect_rejected([](Inputs& in) { in.beta = Tensor({3, 8}); }, "'beta'");
  expect_rejected([](Inputs& in) { in.W[1] = Tensor({2, 8, 16}); }, "'W[1]'");
  expect_rejected([](Inputs& in) { in.b[0] = Tensor({2, 2, 16}); }, "'b[0]'");  // per-batch shape
  expect_rejected([](Inputs& in) { in.W.pop_back(); }, "'W'");
  expect_rejected([](Inputs& in) { in.per_batch_state = true; }, "'W[0]'");
  expect_rejected([](Inputs& in) { in.q.data.pop_back(); }, "'q'");  // data shorter than shape
  expect_rejected([](Inputs& in) { in.T = 7; }, "'q'");
}

TEST_F(BadUse, MismatchedUpstreamNamesTheTensor) {
  Upstream bad = up;
  bad.dout = Tensor({2, 2, 6});
  expect_invalid([&] { backward(spec, good, bad); }, "'dout'");
  bad = up;
  (*bad.dW_final)[0] = Tensor({2, 8, 16});  // the shared layout; dtheta_T is per batch row
  expect_invalid([&] { backward(spec, good, bad); }, "'dW_final[0]'");
  bad = up;
  // A shorter copy rather than pop_back on the copy: GCC 12 -O3 warns (-Wmaybe-uninitialized,
  // a false positive) about pop_back on an optional vector that was just assigned.
  bad.db_final = std::vector<Tensor>(up.db_final->begin(), up.db_final->end() - 1);
  expect_invalid([&] { backward(spec, good, bad); }, "'db_final'");
}

TEST_F(BadUse, BadSizesAndSpecFields) {
  expect_rejected([](Inputs& in) { in.B = 0; }, "B, H, T");
  Spec no_groups = spec;
  no_groups.checkpoint_group = 0;
  expect_invalid([&] { backward(no_groups, good, up); }, "checkpoint_group");
}

}  // namespace
}  // namespace ttt::ref::testing
