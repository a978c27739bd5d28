// test_spec_canonical.cpp: the canonical form and signature. Layout, key order, spelled-out
// defaults and the name never change the signature; every field that changes the computation
// does. Also: every example parses, and derived sizes (widths, state) are right.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "compiler/spec.hpp"

namespace ttt {
namespace {

using json = nlohmann::json;

const std::filesystem::path kExamples = std::filesystem::path(TTTC_SOURCE_DIR) / "examples";

// The causal mlp2 spec written with every default left out.
json minimal() { return {{"tttc_spec", 1}, {"head_dim", 64}}; }

std::string signature_of_text(const std::string& text) { return spec_signature(parse_spec(text)); }
std::string signature_of(const json& j) { return signature_of_text(j.dump()); }

TEST(SpecCanonical, ExactTextOfTheDefaultSpec) {
  EXPECT_EQ(
      canonical_json(parse_spec(minimal().dump())),
      R"({"causal":true,"checkpoint_group":1,"dtype":"bf16","head_dim":64,)"
      R"("inner_model":{"activation":"gelu_tanh","depth":2,"expansion":4,"type":"mlp"},)"
      R"("ln_eps":1e-06,"mini_batch":16,"passes":["forward","backward"],"precision":"accurate",)"
      R"("tttc_spec":1})");
  EXPECT_EQ(canonical_json(parse_spec(R"({"tttc_spec":1,"head_dim":32,"inner_model":"linear",
                                          "causal":false,"passes":["forward"]})")),
            R"({"causal":false,"checkpoint_group":1,"dtype":"bf16","head_dim":32,)"
            R"("inner_model":{"depth":1,"type":"linear"},)"
            R"("ln_eps":1e-06,"mini_batch":16,"passes":["forward"],"precision":"accurate",)"
            R"("tttc_spec":1})");
  // "decode" comes last, whatever the order given.
  EXPECT_NE(canonical_json(parse_spec(R"({"tttc_spec":1,"head_dim":64,
                                          "passes":["decode","forward"]})"))
                .find(R"("passes":["forward","decode"])"),
            std::string::npos);
}

TEST(SpecCanonical, LayoutKeyOrderAndSpelledOutDefaultsDoNotMatter) {
  const std::string expected = signature_of(minimal());
  const std::vector<std::string> same = {
      "{\n  \"head_dim\" : 64 ,\n\t\"tttc_spec\":1\n}\n",
      "// a comment\n{\"tttc_spec\": 1, /* inline */ \"head_dim\": 64}",
      R"({"tttc_spec":1,"head_dim":64,"inner_model":"mlp"})",
      R"({"tttc_spec":1,"head_dim":64,"inner_model":{"type":"mlp"}})",
      R"({"passes":["backward","forward"],"ln_eps":1e-6,"checkpoint_group":1,"dtype":"bf16",
          "causal":true,"mini_batch":16,"head_dim":64,"tttc_spec":1,
          "inner_model":{"activation":"gelu_tanh","expansion":4,"depth":2,"type":"mlp"}})",
      R"({"tttc_spec":1,"head_dim":64,"ln_eps":0.000001})",
      R"({"tttc_spec":1,"head_dim":64,"precision":"accurate"})",
      R"({"tttc_spec":1,"head_dim":64,"ln_eps":1.0E-6})",
      R"({"tttc_spec":1,"head_dim":64,"ln_eps":10e-7})",
  };
  for (const std::string& text : same) EXPECT_EQ(signature_of_text(text), expected) << text;
}

TEST(SpecCanonical, LinearShorthandsAgree) {
  const std::string expected =
      signature_of_text(R"({"tttc_spec":1,"head_dim":64,"inner_model":"linear"})");
  EXPECT_EQ(signature_of_text(R"({"tttc_spec":1,"head_dim":64,"inner_model":{"type":"linear"}})"),
            expected);
  EXPECT_EQ(signature_of_text(
                R"({"tttc_spec":1,"head_dim":64,"inner_model":{"type":"linear","depth":1}})"),
            expected);
}

TEST(SpecCanonical, NameDoesNotChangeTheSignature) {
  json named = minimal();
  named["name"] = "something-else";
  EXPECT_EQ(signature_of(named), signature_of(minimal()));
  EXPECT_EQ(parse_spec(named.dump()).name, "something-else");
  EXPECT_EQ(canonical_json(parse_spec(named.dump())).find("name"), std::string::npos);
}

TEST(SpecCanonical, EveryComputationalFieldChangesTheSignature) {
  struct Case {
    const char* field;
    json patch;  // merged into minimal()
  };
  const std::vector<Case> cases = {
      {"model type", {{"inner_model", "linear"}}},
      {"depth", {{"inner_model", {{"type", "mlp"}, {"depth", 3}}}}},
      {"expansion", {{"inner_model", {{"type", "mlp"}, {"expansion", 2}}}}},
      {"activation", {{"inner_model", {{"type", "mlp"}, {"activation", "relu"}}}}},
      {"head_dim", {{"head_dim", 128}}},
      {"mini_batch", {{"mini_batch", 32}}},
      {"causal", {{"causal", false}}},
      {"dtype", {{"dtype", "f32"}}},
      {"checkpoint_group", {{"checkpoint_group", 2}}},
      {"ln_eps", {{"ln_eps", 1e-8}}},
      {"passes", {{"passes", {"forward"}}}},
      {"decode pass", {{"passes", {"decode", "forward", "backward"}}}},
      {"precision tf32", {{"precision", "tf32"}}},
      {"precision bf16", {{"precision", "bf16"}}},
  };
  std::set<std::string> seen = {signature_of(minimal())};
  for (const Case& c : cases) {
    json j = minimal();
    j.merge_patch(c.patch);
    EXPECT_TRUE(seen.insert(signature_of(j)).second) << c.field << " did not change the signature";
  }
}

TEST(SpecCanonical, LnEpsIsExactToTheLastBit) {
  for (double eps : {1e-6, 1e-5, 1e-8, 1e-12, 3.7e-7, 0.1, std::nextafter(1e-6, 1.0)}) {
    Spec s = parse_spec(minimal().dump());
    s.ln_eps = eps;
    const Spec back = parse_spec(canonical_json(s));
    EXPECT_EQ(back.ln_eps, eps) << canonical_json(s);  // bit-exact, not approximately
  }
  Spec a = parse_spec(minimal().dump()), b = a;
  b.ln_eps = std::nextafter(a.ln_eps, 1.0);
  EXPECT_NE(spec_signature(a), spec_signature(b));
}

// The canonical text is itself a valid spec with the same signature (a fixed point), and the full
// JSON adds only the name.
void expect_round_trip(const Spec& s) {
  const std::string canonical = canonical_json(s);
  EXPECT_EQ(canonical_json(parse_spec(canonical)), canonical);
  const json full = spec_to_json(s);
  const Spec back = parse_spec(full.dump());
  EXPECT_EQ(back.name, s.name);
  EXPECT_EQ(spec_signature(back), spec_signature(s));
  json without_name = full;
  without_name.erase("name");
  EXPECT_EQ(without_name, json::parse(canonical));
}

std::vector<std::filesystem::path> example_files() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(kExamples))
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  return files;
}

TEST(SpecExamples, EveryExampleParsesAndRoundTrips) {
  const auto files = example_files();
  EXPECT_GE(files.size(), 4u);
  std::set<std::string> signatures;
  for (const auto& file : files) {
    SCOPED_TRACE(file.string());
    Spec s;
    ASSERT_NO_THROW(s = load_spec_file(file.string()));
    EXPECT_EQ(s.name, file.stem().string()) << "an example's name is its file name";
    EXPECT_NO_THROW(validate_spec(s));
    expect_round_trip(s);
    EXPECT_TRUE(signatures.insert(spec_signature(s)).second) << "two examples are the same spec";
  }
}

TEST(SpecExamples, TheNamedExamplesSayWhatTheyAre) {
  const Spec linear = load_spec_file((kExamples / "linear.json").string());
  EXPECT_EQ(linear.model, InnerModel::linear);
  EXPECT_EQ(linear.depth, 1);
  EXPECT_TRUE(linear.causal);

  const Spec mlp2 = load_spec_file((kExamples / "mlp2.json").string());
  EXPECT_EQ(mlp2.model, InnerModel::mlp);
  EXPECT_EQ(mlp2.depth, 2);
  EXPECT_EQ(mlp2.head_dim, 64);
  EXPECT_EQ(mlp2.mini_batch, 16);
  EXPECT_EQ(mlp2.dtype, DType::bf16);
  EXPECT_EQ(spec_signature(mlp2), signature_of(minimal())) << "mlp2 is the all-defaults spec";

  const Spec video = load_spec_file((kExamples / "video-mlp2-noncausal.json").string());
  EXPECT_FALSE(video.causal);
  EXPECT_EQ(video.mini_batch, 64);
  EXPECT_EQ(video.checkpoint_group, 16);

  const Spec deep = load_spec_file((kExamples / "mlp4-d128.json").string());
  EXPECT_EQ(deep.depth, 4);
  EXPECT_EQ(deep.head_dim, 128);
}

// Fixed on purpose: if canonicalization changes, every cached kernel's key changes with it, so
// the change must be deliberate (update this value and say so in the commit).
TEST(SpecExamples, Mlp2SignatureIsPinned) {
  const Spec mlp2 = load_spec_file((kExamples / "mlp2.json").string());
  EXPECT_EQ(spec_signature(mlp2),
            "95ca07c463af7ca44f9a10c348e56b1ed1666d9e1df45f954d566519d9bdfd31");
}

TEST(SpecDerived, WidthsAndStateSize) {
  Spec mlp2 = parse_spec(minimal().dump());
  EXPECT_EQ(mlp2.widths(), (std::vector<int>{64, 256, 64}));
  EXPECT_EQ(mlp2.hidden_dim(), 256);
  EXPECT_EQ(mlp2.state_floats(), 64 * 256 + 256 + 256 * 64 + 64);

  const Spec linear = parse_spec(R"({"tttc_spec":1,"head_dim":64,"inner_model":"linear"})");
  EXPECT_EQ(linear.widths(), (std::vector<int>{64, 64}));
  EXPECT_EQ(linear.state_floats(), 64 * 64 + 64);

  const Spec mlp4 = load_spec_file((kExamples / "mlp4-d128.json").string());
  EXPECT_EQ(mlp4.widths(), (std::vector<int>{128, 512, 512, 512, 128}));
  EXPECT_EQ(mlp4.state_floats(), 128 * 512 + 512 + 2 * (512 * 512 + 512) + 512 * 128 + 128);

  // A hand-built linear Spec that kept the mlp default depth still has one layer.
  Spec hand;
  hand.model = InnerModel::linear;
  EXPECT_EQ(hand.widths().size(), 2u);
}

TEST(SpecDerived, EnumNames) {
  EXPECT_STREQ(to_string(InnerModel::linear), "linear");
  EXPECT_STREQ(to_string(InnerModel::mlp), "mlp");
  EXPECT_STREQ(to_string(Activation::gelu_tanh), "gelu_tanh");
  EXPECT_STREQ(to_string(Activation::relu), "relu");
  EXPECT_STREQ(to_string(Activation::silu), "silu");
  EXPECT_STREQ(to_string(DType::f32), "f32");
  EXPECT_STREQ(to_string(DType::f16), "f16");
  EXPECT_STREQ(to_string(DType::bf16), "bf16");
  EXPECT_EQ(dtype_bytes(DType::f32), 4);
  EXPECT_EQ(dtype_bytes(DType::f16), 2);
  EXPECT_EQ(dtype_bytes(DType::bf16), 2);
}

}  // namespace
}  // namespace ttt
