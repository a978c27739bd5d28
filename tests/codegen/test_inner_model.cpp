// test_inner_model.cpp: the code generators take the inner model's shape from Spec::widths() and
// state_members() only, so a hand-built linear Spec whose `depth` field says otherwise still
// gets one layer everywhere (the parser sets depth 1; code-built specs need not).
#include <gtest/gtest.h>

#include "compiler/codegen.hpp"

namespace ttt {
namespace {

TEST(InnerModel, GeneratorsTakeTheLayerCountFromTheWidths) {
  Spec s = parse_spec(R"({"tttc_spec":1,"head_dim":64,"mini_batch":16,"inner_model":"linear"})");
  s.depth = 3;  // ignored for a linear model
  const std::string decode = codegen::generate_decode(s).source;
  EXPECT_NE(decode.find("kDepth = 1,"), std::string::npos) << decode.substr(0, 800);
  EXPECT_NE(decode.find("kS = 4160,"), std::string::npos);
  const Schedule sched = default_schedule(s, Target::for_arch("sm_90a"));
  for (auto kind : {codegen::KernelKind::forward, codegen::KernelKind::backward}) {
    const std::string src = codegen::generate(s, sched, kind).source;
    EXPECT_NE(src.find("kS = 4160"), std::string::npos) << codegen::to_string(kind);
    EXPECT_EQ(src.find("W2"), std::string::npos) << codegen::to_string(kind);
  }
}

}  // namespace
}  // namespace ttt
