// test_state_layout.cpp: the packed state layout (state_members) that the generators, the runtime
// and the C API share: order, shapes, offsets back to back, and state_floats as its end.
#include <gtest/gtest.h>

#include "compiler/spec.hpp"

namespace ttt {
namespace {

TEST(StateLayout, MlpMembersAreWeightThenBiasPerLayerBackToBack) {
  const Spec s = parse_spec(
      R"({"tttc_spec":1,"head_dim":16,"inner_model":{"type":"mlp","depth":3,"expansion":2}})");
  const std::vector<StateMember> m = state_members(s);
  ASSERT_EQ(m.size(), 6u);
  const char* names[] = {"W1", "b1", "W2", "b2", "W3", "b3"};
  const int rows[] = {16, 1, 32, 1, 32, 1}, cols[] = {32, 32, 32, 32, 16, 16};
  long long offset = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    EXPECT_EQ(m[i].name, names[i]);
    EXPECT_EQ(m[i].rows, rows[i]) << names[i];
    EXPECT_EQ(m[i].cols, cols[i]) << names[i];
    EXPECT_EQ(m[i].bias, i % 2 == 1) << names[i];
    EXPECT_EQ(m[i].offset, offset) << names[i];
    offset += m[i].floats();
  }
  EXPECT_EQ(offset, 16 * 32 + 32 + 32 * 32 + 32 + 32 * 16 + 16);
  EXPECT_EQ(s.state_floats(), offset);
}

TEST(StateLayout, LinearHasOneWeightAndOneBiasWhateverTheDepthField) {
  Spec s = parse_spec(R"({"tttc_spec":1,"head_dim":64,"inner_model":"linear"})");
  s.depth = 3;  // ignored for a linear model
  const std::vector<StateMember> m = state_members(s);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[1].name, "b1");
  EXPECT_EQ(m[1].offset, 64 * 64);
  EXPECT_EQ(s.state_floats(), 64 * 64 + 64);
}

}  // namespace
}  // namespace ttt
