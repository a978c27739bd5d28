// golden_test.cpp: the reference against numbers stored in golden/reference_golden.json, so that
// any change of its results (math, random_inputs, layouts) is seen in review, not silently.
//
// To regenerate after an intended change, run from the build directory:
//   TTTC_REGEN_GOLDEN=1 tests/reference/tttc_reference_tests --gtest_filter='Golden.*'
// which rewrites the file in the source tree (numbers with 17 significant digits); commit it
// together with the change that explains it.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ref_test_util.hpp"

namespace ttt::ref::testing {
namespace {

const char* const kGoldenPath = TTTC_SOURCE_DIR "/tests/reference/golden/reference_golden.json";

struct GoldenCase {
  std::string name;
  int depth;  // 1: linear
  Activation act;
  bool causal;
  int checkpoint_group;
  int B, H, T;
  bool per_batch_state, state_grads;
  uint64_t seed;  // inputs; the upstream uses seed + 1

  Spec spec() const { return small_spec(depth, causal, act, checkpoint_group); }

  nlohmann::json params() const {
    const Spec s = spec();
    return {{"model", to_string(s.model)},
            {"depth", depth},
            {"activation", to_string(act)},
            {"causal", causal},
            {"head_dim", s.head_dim},
            {"mini_batch", s.mini_batch},
            {"expansion", s.expansion},
            {"ln_eps", s.ln_eps},
            {"checkpoint_group", checkpoint_group},
            {"B", B},
            {"H", H},
            {"T", T},
            {"per_batch_state", per_batch_state},
            {"state_grads", state_grads},
            {"seed", seed}};
  }
};

const std::vector<GoldenCase> kCases = {
    {"mlp2_gelu_causal_shared", 2, Activation::gelu_tanh, true, 2, 2, 2, 10, false, true, 7},
    {"linear_noncausal_perbatch", 1, Activation::gelu_tanh, false, 1, 2, 2, 9, true, false, 8},
    {"mlp3_silu_causal_perbatch", 3, Activation::silu, true, 1, 1, 2, 7, true, true, 9},
};

// Every output and gradient of a case, named.
std::vector<std::pair<std::string, Tensor>> compute(const GoldenCase& c) {
  const Spec spec = c.spec();
  const Inputs in = random_inputs(spec, c.B, c.H, c.T, c.per_batch_state, c.seed);
  const Upstream up = random_upstream(spec, c.B, c.H, c.T, c.state_grads, c.seed + 1);
  const Outputs o = forward(spec, in);
  std::vector<std::pair<std::string, Tensor>> r = {{"out", o.out}};
  for (size_t l = 0; l < o.W_final.size(); ++l) {
    r.emplace_back("W_final[" + std::to_string(l) + "]", o.W_final[l]);
    r.emplace_back("b_final[" + std::to_string(l) + "]", o.b_final[l]);
  }
  const Grads g = backward(spec, in, up);
  for (const auto& [name, t] : grad_list(g)) r.emplace_back(name, *t);
  return r;
}

// Hand-written so that every number has exactly 17 significant digits, 8 to a line.
std::string golden_text() {
  std::string s =
      "{\n  \"about\": \"ttt::ref outputs and gradients; regenerate with TTTC_REGEN_GOLDEN=1 (see "
      "tests/reference/golden_test.cpp)\",\n  \"cases\": [";
  for (size_t ci = 0; ci < kCases.size(); ++ci) {
    const GoldenCase& c = kCases[ci];
    s += fmt::format(
        "{}\n    {{\n      \"name\": \"{}\",\n      \"params\": {},\n      \"tensors\": {{",
        ci ? "," : "", c.name, c.params().dump());
    const auto tensors = compute(c);
    for (size_t ti = 0; ti < tensors.size(); ++ti) {
      const Tensor& t = tensors[ti].second;
      s += fmt::format("{}\n        \"{}\": {{\"shape\": {}, \"data\": [", ti ? "," : "",
                       tensors[ti].first, nlohmann::json(t.shape).dump());
      for (size_t i = 0; i < t.data.size(); ++i) {
        s += fmt::format("{}{}{:.17g}", i ? "," : "", i % 8 ? " " : "\n          ", t.data[i]);
      }
      s += "]}";
    }
    s += "\n      }\n    }";
  }
  return s + "\n  ]\n}\n";
}

bool regenerating() {
  const char* env = std::getenv("TTTC_REGEN_GOLDEN");
  return env && std::string(env) == "1";
}

TEST(Golden, MatchesStoredOutputsAndGradients) {
  if (regenerating()) {
    std::ofstream(kGoldenPath) << golden_text();
    GTEST_SKIP() << "regenerated " << kGoldenPath;
  }
  std::ifstream file(kGoldenPath);
  ASSERT_TRUE(file) << "missing " << kGoldenPath << "; create it with TTTC_REGEN_GOLDEN=1";
  const nlohmann::json golden = nlohmann::json::parse(file);
  ASSERT_EQ(golden.at("cases").size(), kCases.size()) << "golden file out of date: regenerate";
  for (size_t ci = 0; ci < kCases.size(); ++ci) {
    const GoldenCase& c = kCases[ci];
    const nlohmann::json& stored = golden["cases"][ci];
    ASSERT_EQ(stored.at("name"), c.name);
    ASSERT_EQ(stored.at("params"), c.params()) << c.name << ": parameters changed: regenerate";
    const auto tensors = compute(c);
    ASSERT_EQ(stored.at("tensors").size(), tensors.size()) << c.name;
    for (const auto& [name, t] : tensors) {
      const nlohmann::json& want = stored.at("tensors").at(name);
      EXPECT_EQ(want.at("shape").get<std::vector<int64_t>>(), t.shape) << c.name << " " << name;
      EXPECT_LT(rel_err(t.data, want.at("data").get<std::vector<double>>()), 1e-12)
          << c.name << " " << name;
    }
  }
}

}  // namespace
}  // namespace ttt::ref::testing
