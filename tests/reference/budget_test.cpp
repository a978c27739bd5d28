// budget_test.cpp: the reference refuses shapes it cannot hold before allocating anything, and
// element counts never overflow silently (issue 11, section 2).
#include "compiler/reference/budget.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>

#include "compiler/reference/reference.hpp"

namespace ttt::ref {
namespace {

Spec mlp2() { return parse_spec(R"({"tttc_spec":1,"head_dim":64})"); }

TEST(Budget, NumelOverflowIsTooLarge) {
  EXPECT_EQ(checked_numel({2, 3, 4}), 24);
  const int64_t big = int64_t{1} << 40;
  EXPECT_THROW(checked_numel({big, big}), TooLarge);
  EXPECT_THROW(Tensor({big, big}), TooLarge);  // before: wrapped, then allocated garbage
}

TEST(Budget, EstimateOverflowIsTooLarge) {
  try {
    memory_estimate(mlp2(), 1 << 20, 1 << 16, 1 << 26, false, true);
    FAIL() << "no error";
  } catch (const TooLarge& e) {
    EXPECT_NE(std::string(e.what()).find("too large"), std::string::npos) << e.what();
  }
}

TEST(Budget, EstimateGrowsWithTheShapeAndTheBackward) {
  const uint64_t small = memory_estimate(mlp2(), 2, 4, 256, false, false);
  EXPECT_GT(memory_estimate(mlp2(), 2, 4, 512, false, false), small);
  EXPECT_GT(memory_estimate(mlp2(), 2, 4, 256, false, true), small);
  // At least the q, k, v, out tensors in doubles.
  EXPECT_GE(small, 4ull * 2 * 4 * 256 * 64 * 8);
}

TEST(Budget, HugeShapeIsRefusedBeforeAllocating) {
  // Before: `tttc reference --shape 1,1,100000000` allocated until the OOM killer ended it.
  const auto start = std::chrono::steady_clock::now();
  try {
    random_inputs(mlp2(), 1, 1, 100000000, false, 1);
    FAIL() << "no error";
  } catch (const TooLarge& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("too large"), std::string::npos) << what;
    EXPECT_NE(what.find("GiB"), std::string::npos) << what;
    EXPECT_NE(what.find("T=100000000"), std::string::npos) << what;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_NO_THROW(check_memory(mlp2(), 2, 4, 256, false, true));
}

}  // namespace
}  // namespace ttt::ref
