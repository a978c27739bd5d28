// test_codegen_golden.cpp: the generated source of a few specs, line by line against files in
// golden/, so that any change to codegen's output is seen and reviewed. After an intended change,
// regenerate with TTTC_REGEN_GOLDEN=1 and read the diff.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "compiler/codegen.hpp"

namespace ttt {
namespace {

struct GoldenCase {
  const char* example;
  codegen::KernelKind kind;
  const char* arch;
};

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class CodegenGolden : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(CodegenGolden, SourceMatchesGolden) {
  const GoldenCase& c = GetParam();
  const Spec spec =
      load_spec_file(std::string(TTTC_SOURCE_DIR) + "/examples/" + c.example + ".json");
  const Schedule sched = default_schedule(spec, Target::for_arch(c.arch));
  const std::string source = codegen::generate(spec, sched, c.kind).source;
  const std::string path = std::string(TTTC_SOURCE_DIR) + "/tests/codegen/golden/" + c.example +
                           "." + codegen::to_string(c.kind) + "." + c.arch + ".cu";
  if (std::getenv("TTTC_REGEN_GOLDEN")) {
    std::ofstream(path) << source;
    GTEST_SKIP() << "regenerated " << path;
  }
  const std::string golden = read(path);
  ASSERT_FALSE(golden.empty()) << "missing golden file " << path;
  std::istringstream a(source), b(golden);
  std::string la, lb;
  for (int line = 1; std::getline(b, lb); ++line) {
    ASSERT_TRUE(std::getline(a, la)) << path << ": generated source ends before line " << line;
    ASSERT_EQ(la, lb) << path << ":" << line;
  }
  EXPECT_FALSE(std::getline(a, la)) << path << ": generated source has extra lines";
  // Deterministic: a second generation is byte-identical.
  EXPECT_EQ(codegen::generate(spec, sched, c.kind).source, source);
}

// The arena forward updates its state in place while the step's checkpoint may still be read
// out of it by bulk copies (sm_90): one wait, before the first line that touches the new state,
// and the inputs' single barrier before anything reads them.
TEST(ArenaForward, WaitsForTheCheckpointBeforeTheStateUpdate) {
  // (mlp2's forward is a tile kernel on sm_90a since session 23.)
  for (const char* example : {"lm-mlp2-silu-d128", "video-mlp2-noncausal", "mlp4-d128",
                              "mlp3-relu-f16"}) {
    SCOPED_TRACE(example);
    const Spec spec =
        load_spec_file(std::string(TTTC_SOURCE_DIR) + "/examples/" + example + ".json");
    const std::string source =
        codegen::generate(spec, default_schedule(spec, Target::for_arch("sm_90a")),
                          codegen::KernelKind::forward)
            .source;
    const size_t wait = source.find("tttc::wait_checkpoint_reads<Cfg>();");
    ASSERT_NE(wait, std::string::npos);
    EXPECT_EQ(source.find("tttc::wait_checkpoint_reads", wait + 1), std::string::npos);
    const size_t first_new_state = source.find("c.state_out");
    ASSERT_NE(first_new_state, std::string::npos);
    EXPECT_LT(wait, first_new_state);
    const size_t inputs_barrier = source.find("__syncthreads();  // the inputs above");
    ASSERT_NE(inputs_barrier, std::string::npos);
    EXPECT_LT(inputs_barrier, source.find("tttc::matmul_mma"));
    EXPECT_GT(inputs_barrier, source.rfind("tttc::load_tokens", source.find("tttc::matmul_mma")));
  }
}

// Fused loops request their global-memory operands into L2 first; nothing on chip is requested
// (mlp2's forward keeps its arena and state in shared memory; the video backward's arena and
// state are in global memory).
TEST(ArenaFusedLoops, PrefetchExactlyTheirGlobalOperands) {
  const auto source = [](const char* example, codegen::KernelKind kind) {
    const Spec spec =
        load_spec_file(std::string(TTTC_SOURCE_DIR) + "/examples/" + example + ".json");
    return codegen::generate(spec, default_schedule(spec, Target::for_arch("sm_90a")), kind).source;
  };
  EXPECT_EQ(source("mlp2", codegen::KernelKind::forward).find("prefetch_l2"), std::string::npos);
  const std::string video = source("video-mlp2-noncausal", codegen::KernelKind::backward);
  std::istringstream lines(video);
  std::string line;
  int prefetches = 0;
  while (std::getline(lines, line)) {
    if (line.find("tttc::prefetch_l2(") == std::string::npos) continue;
    ++prefetches;
    EXPECT_EQ(line.find("(S + "), std::string::npos) << "on-chip operand requested: " << line;
  }
  EXPECT_GT(prefetches, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Examples, CodegenGolden,
    ::testing::Values(GoldenCase{"linear", codegen::KernelKind::forward, "sm_90a"},
                      GoldenCase{"linear", codegen::KernelKind::backward, "sm_90a"},
                      GoldenCase{"mlp2", codegen::KernelKind::forward, "sm_90a"},
                      GoldenCase{"mlp2", codegen::KernelKind::decode, "sm_90a"},
                      GoldenCase{"linear", codegen::KernelKind::decode, "sm_80"},
                      GoldenCase{"video-mlp2-noncausal", codegen::KernelKind::forward, "sm_86"},
                      GoldenCase{"video-mlp2-noncausal", codegen::KernelKind::backward, "sm_80"}),
    [](const auto& info) {
      std::string name = std::string(info.param.example) + "_" +
                         codegen::to_string(info.param.kind) + "_" + info.param.arch;
      for (auto& ch : name)
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return name;
    });

}  // namespace
}  // namespace ttt
