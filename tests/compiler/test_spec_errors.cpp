// test_spec_errors.cpp: every class of spec error names the file, the JSON path of the culprit
// and says what is wrong (and, where it can, what was meant).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "compiler/spec.hpp"

namespace ttt {
namespace {

using json = nlohmann::json;

constexpr const char* kFile = "bad.json";

// The smallest valid spec; tests add or break one thing at a time.
json base() { return {{"tttc_spec", 1}, {"head_dim", 64}}; }

json with(json j, const std::string& key, json value) {
  j[key] = std::move(value);
  return j;
}

json with_model(json model) { return with(base(), "inner_model", std::move(model)); }

// Parses `text` expecting a SpecError at `path` whose message contains `phrase`.
::testing::AssertionResult text_fails_at(const std::string& text, const std::string& path,
                                         const std::string& phrase) {
  try {
    parse_spec(text, kFile);
  } catch (const SpecError& e) {
    const std::string what = e.what();
    if (e.file() != kFile || what.rfind(std::string(kFile) + ": " + path + ": ", 0) != 0)
      return ::testing::AssertionFailure() << "wrong file or path: " << what;
    if (e.json_path() != path)
      return ::testing::AssertionFailure() << "path " << e.json_path() << " != " << path;
    if (e.message().find(phrase) == std::string::npos)
      return ::testing::AssertionFailure() << "no \"" << phrase << "\" in: " << what;
    return ::testing::AssertionSuccess() << what;
  }
  return ::testing::AssertionFailure() << "parsed without error: " << text;
}

::testing::AssertionResult fails_at(const json& j, const std::string& path,
                                    const std::string& phrase) {
  return text_fails_at(j.dump(), path, phrase);
}

TEST(SpecErrors, WhatIsFilePathMessage) {
  const SpecError e("a.json", "$.head_dim", "must be big");
  EXPECT_STREQ(e.what(), "a.json: $.head_dim: must be big");
  EXPECT_EQ(e.file(), "a.json");
  EXPECT_EQ(e.json_path(), "$.head_dim");
  EXPECT_EQ(e.message(), "must be big");
}

TEST(SpecErrors, InvalidJsonGivesLineAndColumn) {
  // The second comma on line 3 is at column 18.
  EXPECT_TRUE(text_fails_at("{\n  \"tttc_spec\": 1,\n  \"head_dim\": 64,,\n}", "$",
                            "invalid JSON at line 3, column 18"));
  EXPECT_TRUE(text_fails_at("{\"tttc_spec\": 1, \"head_dim\": tru}", "$", "line 1, column"));
  EXPECT_TRUE(text_fails_at("{\"tttc_spec\": 1,\n", "$", "invalid JSON at line 2"));
  EXPECT_TRUE(text_fails_at("", "$", "invalid JSON at line 1, column 1"));
}

TEST(SpecErrors, CommentsAreAllowed) {
  const Spec s = parse_spec("// note\n{\"tttc_spec\": 1, /* f */ \"head_dim\": 32}", kFile);
  EXPECT_EQ(s.head_dim, 32);
}

TEST(SpecErrors, TopLevelMustBeAnObject) {
  EXPECT_TRUE(text_fails_at("[1, 2]", "$", "expected the spec to be a JSON object, got an array"));
  EXPECT_TRUE(text_fails_at("64", "$", "got the integer 64"));
}

TEST(SpecErrors, DuplicateField) {
  EXPECT_TRUE(text_fails_at(R"({"tttc_spec": 1, "head_dim": 64, "head_dim": 32})", "$.head_dim",
                            "duplicate field \"head_dim\""));
  EXPECT_TRUE(text_fails_at(R"({"tttc_spec": 1, "head_dim": 64, "inner_model": {"type": "mlp",
                          "depth": 2, "depth": 3}})",
                            "$.inner_model.depth", "duplicate field"));
}

TEST(SpecErrors, MissingRequired) {
  EXPECT_TRUE(fails_at(json{{"head_dim", 64}}, "$", "missing required field \"tttc_spec\""));
  EXPECT_TRUE(fails_at(json{{"tttc_spec", 1}}, "$", "missing required field \"head_dim\""));
  EXPECT_TRUE(
      fails_at(with_model({{"depth", 2}}), "$.inner_model", "missing required field \"type\""));
}

TEST(SpecErrors, Version) {
  EXPECT_TRUE(fails_at(with(base(), "tttc_spec", 2), "$.tttc_spec",
                       "unsupported tttc_spec version 2 (this tttc reads version 1)"));
  // A newer version is reported as such even when it has fields this version does not know.
  EXPECT_TRUE(fails_at(with(with(base(), "tttc_spec", 2), "new_field", 1), "$.tttc_spec",
                       "unsupported tttc_spec version"));
  EXPECT_TRUE(fails_at(with(base(), "tttc_spec", "1"), "$.tttc_spec",
                       "expected an integer, got the string \"1\""));
}

TEST(SpecErrors, UnknownFieldSuggestsTheClosest) {
  json j = base();
  j.erase("head_dim");
  j["head_dimm"] = 64;
  EXPECT_TRUE(
      fails_at(j, "$.head_dimm", "unknown field \"head_dimm\" (did you mean \"head_dim\"?)"));
  EXPECT_TRUE(
      fails_at(with(base(), "minibatch", 16), "$.minibatch", "did you mean \"mini_batch\""));
  EXPECT_TRUE(fails_at(with(base(), "casual", true), "$.casual", "did you mean \"causal\""));
  EXPECT_TRUE(fails_at(with(base(), "eps", 1e-6), "$.eps", "did you mean \"ln_eps\""));
  EXPECT_TRUE(fails_at(with(base(), "Dtype", "f32"), "$.Dtype", "did you mean \"dtype\""));
}

TEST(SpecErrors, UnknownFieldWithoutAGoodGuessListsTheFields) {
  EXPECT_TRUE(fails_at(with(base(), "zzz", 1), "$.zzz", "allowed fields: \"tttc_spec\", \"name\""));
  EXPECT_TRUE(fails_at(with(base(), "two words", 1), "$['two words']", "unknown field"));
}

TEST(SpecErrors, NestedUnknownField) {
  EXPECT_TRUE(fails_at(with_model({{"type", "mlp"}, {"expanison", 4}}), "$.inner_model.expanison",
                       "did you mean \"expansion\""));
  EXPECT_TRUE(fails_at(with_model({{"type", "mlp"}, {"width", 4}}), "$.inner_model.width",
                       "allowed fields: \"type\", \"depth\", \"expansion\", \"activation\""));
}

TEST(SpecErrors, WrongTypes) {
  EXPECT_TRUE(fails_at(with(base(), "head_dim", "64"), "$.head_dim",
                       "expected an integer, got the string \"64\""));
  // Integers are written as JSON integers; 64.0 is rejected (docs/spec.md says so).
  EXPECT_TRUE(fails_at(with(base(), "head_dim", 64.0), "$.head_dim",
                       "expected an integer, got the number 64.0"));
  EXPECT_TRUE(text_fails_at(R"({"tttc_spec": 1, "head_dim": 6.4e1})", "$.head_dim",
                            "write integers without a fraction or exponent"));
  EXPECT_TRUE(fails_at(with(base(), "causal", 1), "$.causal",
                       "expected a boolean (true or false), got the integer 1"));
  EXPECT_TRUE(fails_at(with(base(), "dtype", 16), "$.dtype", "expected a string"));
  EXPECT_TRUE(fails_at(with(base(), "ln_eps", "1e-6"), "$.ln_eps", "expected a number"));
  EXPECT_TRUE(fails_at(with(base(), "name", 5), "$.name", "expected a string, got the integer 5"));
  EXPECT_TRUE(fails_at(with(base(), "passes", "forward"), "$.passes", "expected an array"));
  EXPECT_TRUE(fails_at(with(base(), "passes", {"forward", 2}), "$.passes[1]", "expected a string"));
  EXPECT_TRUE(
      fails_at(with(base(), "inner_model", 3), "$.inner_model",
               "expected an object or the string \"linear\" or \"mlp\", got the integer 3"));
  EXPECT_TRUE(fails_at(with_model({{"type", "mlp"}, {"depth", nullptr}}), "$.inner_model.depth",
                       "expected an integer, got null"));
}

TEST(SpecErrors, OutOfRange) {
  const char* head_dim = "must be a multiple of 16 in 16..256";
  EXPECT_TRUE(
      fails_at(with(base(), "head_dim", 24), "$.head_dim", std::string(head_dim) + ", got 24"));
  EXPECT_TRUE(fails_at(with(base(), "head_dim", 272), "$.head_dim", head_dim));
  EXPECT_TRUE(fails_at(with(base(), "head_dim", 0), "$.head_dim", head_dim));
  EXPECT_TRUE(fails_at(with(base(), "head_dim", -16), "$.head_dim", head_dim));
  EXPECT_TRUE(text_fails_at(R"({"tttc_spec": 1, "head_dim": 18446744073709551615})", "$.head_dim",
                            head_dim));
  EXPECT_TRUE(fails_at(with(base(), "mini_batch", 12), "$.mini_batch",
                       "must be a multiple of 8 in 8..128, got 12"));
  EXPECT_TRUE(fails_at(with(base(), "mini_batch", 136), "$.mini_batch", "8..128"));
  EXPECT_TRUE(fails_at(with_model({{"type", "mlp"}, {"depth", 5}}), "$.inner_model.depth",
                       "must be in 2..4, got 5"));
  EXPECT_TRUE(fails_at(with_model({{"type", "mlp"}, {"depth", 1}}), "$.inner_model.depth",
                       "use \"type\": \"linear\""));
  EXPECT_TRUE(fails_at(with_model({{"type", "mlp"}, {"expansion", 9}}), "$.inner_model.expansion",
                       "must be in 1..8, got 9"));
  EXPECT_TRUE(fails_at(with(base(), "checkpoint_group", 0), "$.checkpoint_group",
                       "must be in 1..4096, got 0"));
  EXPECT_TRUE(fails_at(with(base(), "checkpoint_group", 4097), "$.checkpoint_group", "1..4096"));
  for (double eps : {0.0, 1.0, -1e-6, 2.5})
    EXPECT_TRUE(fails_at(with(base(), "ln_eps", eps), "$.ln_eps", "0 < ln_eps < 1"));
  EXPECT_TRUE(fails_at(with(base(), "name", std::string(129, 'a')), "$.name", "1..128 characters"));
  EXPECT_TRUE(fails_at(with(base(), "name", ""), "$.name", "1..128 characters"));
  EXPECT_TRUE(fails_at(with(base(), "name", "my spec"), "$.name", "[A-Za-z0-9._-]"));
}

TEST(SpecErrors, UnknownChoices) {
  EXPECT_TRUE(fails_at(with(base(), "dtype", "fp32"), "$.dtype",
                       "unknown dtype \"fp32\"; expected one of \"f32\", \"f16\", \"bf16\""));
  EXPECT_TRUE(fails_at(with(base(), "dtype", "BF16"), "$.dtype", "did you mean \"bf16\""));
  EXPECT_TRUE(
      fails_at(with(base(), "precision", "fast"), "$.precision",
               "unknown precision \"fast\"; expected one of \"accurate\", \"tf32\", \"bf16\""));
  EXPECT_TRUE(fails_at(with(base(), "precision", 1), "$.precision", "expected a string"));
  EXPECT_TRUE(fails_at(with_model({{"type", "mlp"}, {"activation", "gelu"}}),
                       "$.inner_model.activation", "did you mean \"gelu_tanh\""));
  EXPECT_TRUE(fails_at(with_model({{"type", "transformer"}}), "$.inner_model.type",
                       "unknown inner model type \"transformer\""));
  EXPECT_TRUE(
      fails_at(with(base(), "inner_model", "lnear"), "$.inner_model", "did you mean \"linear\""));
  EXPECT_TRUE(fails_at(with(base(), "passes", {"forward", "backwards"}), "$.passes[1]",
                       "unknown pass \"backwards\""));
}

TEST(SpecErrors, ImpossibleCombinations) {
  EXPECT_TRUE(fails_at(with_model({{"type", "linear"}, {"expansion", 4}}),
                       "$.inner_model.expansion", "not allowed for a linear inner model"));
  EXPECT_TRUE(fails_at(with_model({{"type", "linear"}, {"activation", "relu"}}),
                       "$.inner_model.activation", "not allowed for a linear inner model"));
  EXPECT_TRUE(fails_at(with_model({{"type", "linear"}, {"depth", 2}}), "$.inner_model.depth",
                       "a linear inner model has depth 1, got 2"));
  EXPECT_TRUE(fails_at(with(base(), "passes", {"backward"}), "$.passes",
                       "\"backward\" requires \"forward\""));
  EXPECT_TRUE(
      fails_at(with(base(), "passes", {"decode"}), "$.passes", "\"decode\" requires \"forward\""));
  EXPECT_TRUE(fails_at(with(with(base(), "causal", false), "passes", {"forward", "decode"}),
                       "$.passes", "\"decode\" needs a causal spec"));
  EXPECT_TRUE(fails_at(with(base(), "passes", {"forward", "forward"}), "$.passes[1]",
                       "duplicate pass \"forward\""));
  EXPECT_TRUE(
      fails_at(with(base(), "passes", json::array()), "$.passes", "must name at least one pass"));
  // Spelling out the one depth a linear model has is fine.
  EXPECT_EQ(parse_spec(with_model({{"type", "linear"}, {"depth", 1}}).dump()).depth, 1);
}

TEST(SpecErrors, UnreadableFile) {
  const std::string missing = "/nonexistent/dir/spec.json";
  try {
    load_spec_file(missing);
    FAIL() << "no error";
  } catch (const SpecError& e) {
    EXPECT_EQ(e.file(), missing);
    EXPECT_EQ(e.json_path(), "$");
    EXPECT_NE(e.message().find("No such file or directory"), std::string::npos) << e.what();
  }
  const std::string dir = std::filesystem::temp_directory_path().string();
  try {
    load_spec_file(dir);
    FAIL() << "no error";
  } catch (const SpecError& e) {
    EXPECT_EQ(e.json_path(), "$");
    EXPECT_NE(e.message().find("Is a directory"), std::string::npos) << e.what();
  }
}

TEST(SpecErrors, ErrorsInAFileNameTheFile) {
  const auto path = std::filesystem::temp_directory_path() / "tttc_test_spec_bad.json";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("{\"tttc_spec\": 1, \"head_dim\": 24}", f);
    std::fclose(f);
  }
  try {
    load_spec_file(path.string());
    FAIL() << "no error";
  } catch (const SpecError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path.string() + ": $.head_dim: ", 0), 0u) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(SpecErrors, ValidateSpecAppliesTheSameRules) {
  EXPECT_NO_THROW(validate_spec(Spec{}));
  Spec s;
  s.head_dim = 24;
  try {
    validate_spec(s, "code");
    FAIL() << "no error";
  } catch (const SpecError& e) {
    EXPECT_STREQ(e.what(), "code: $.head_dim: must be a multiple of 16 in 16..256, got 24");
  }
  s = Spec{};
  s.build_forward = false;
  EXPECT_THROW(validate_spec(s), SpecError);
  s = Spec{};
  s.model = InnerModel::linear;  // depth left at the mlp default
  EXPECT_THROW(validate_spec(s), SpecError);
}

}  // namespace
}  // namespace ttt
