// test_key.cpp: the cache key changes with every KeyInputs field (one case per field), is stable
// for equal inputs, cannot be fooled by moving text between fields, and explain names the field.
#include <gtest/gtest.h>

#include <functional>

#include "cache/key.hpp"
#include "cache_test_util.hpp"
#include "compiler/hash.hpp"

namespace ttt::cache {
namespace {

using test_util::sample_inputs;

struct FieldChange {
  std::string name;
  std::function<void(KeyInputs&)> change;
};

class CacheKeyFieldTest : public ::testing::TestWithParam<FieldChange> {};

TEST_P(CacheKeyFieldTest, ChangingTheFieldChangesTheKey) {
  const KeyInputs base = sample_inputs();
  KeyInputs changed = base;
  GetParam().change(changed);
  EXPECT_NE(compute_key(base), compute_key(changed));
  EXPECT_TRUE(is_valid_key(compute_key(changed)));
}

INSTANTIATE_TEST_SUITE_P(
    EveryField, CacheKeyFieldTest,
    ::testing::Values(
        FieldChange{"key_format", [](KeyInputs& k) { k.key_format = 2; }},
        FieldChange{"canonical_spec", [](KeyInputs& k) { k.canonical_spec += " "; }},
        FieldChange{"kernel", [](KeyInputs& k) { k.kernel = "backward"; }},
        FieldChange{"schedule", [](KeyInputs& k) { k.schedule = R"({"threads":128})"; }},
        FieldChange{"source", [](KeyInputs& k) { k.source[5] ^= 1; }},
        FieldChange{"header_hash_value",
                    [](KeyInputs& k) { k.header_hashes["ttt/mma.cuh"] = std::string(64, 'c'); }},
        FieldChange{"header_added", [](KeyInputs& k) { k.header_hashes["ttt/new.cuh"] = "0"; }},
        FieldChange{"header_renamed",
                    [](KeyInputs& k) {
                      auto v = k.header_hashes["ttt/mma.cuh"];
                      k.header_hashes.erase("ttt/mma.cuh");
                      k.header_hashes["ttt/mma2.cuh"] = v;
                    }},
        FieldChange{"nvrtc_version", [](KeyInputs& k) { k.nvrtc_version = "12.5"; }},
        FieldChange{"option_changed", [](KeyInputs& k) { k.options[2] = "-lineinfo"; }},
        FieldChange{"option_added", [](KeyInputs& k) { k.options.push_back("-G"); }},
        FieldChange{"options_reordered",
                    [](KeyInputs& k) { std::swap(k.options[0], k.options[1]); }},
        FieldChange{"arch", [](KeyInputs& k) { k.arch = "sm_90"; }}),
    [](const auto& info) { return info.param.name; });

TEST(CacheKey, IdenticalInputsGiveIdenticalKeys) {
  EXPECT_EQ(compute_key(sample_inputs()), compute_key(sample_inputs()));
  EXPECT_EQ(compute_key(KeyInputs{}), compute_key(KeyInputs{}));
}

TEST(CacheKey, KeyIsLowercaseHexSha256) {
  const std::string key = compute_key(sample_inputs());
  EXPECT_EQ(key.size(), 64u);
  EXPECT_TRUE(is_valid_key(key));
  EXPECT_FALSE(is_valid_key(key.substr(1)));
  EXPECT_FALSE(is_valid_key("../" + key.substr(3)));
  EXPECT_FALSE(is_valid_key(std::string(64, 'A')));
}

// Moving characters between neighbouring fields or list elements must change the key.
TEST(CacheKey, SerializationIsUnambiguous) {
  KeyInputs a = sample_inputs(), b = sample_inputs();
  a.options = {"-a b"};
  b.options = {"-a", "b"};
  EXPECT_NE(compute_key(a), compute_key(b));

  a = b = sample_inputs();
  a.kernel = "forwardsm_90";
  a.arch = "";
  b.kernel = "forward";
  b.arch = "sm_90";
  EXPECT_NE(compute_key(a), compute_key(b));

  a = b = sample_inputs();
  a.header_hashes = {{"ab", "c"}};
  b.header_hashes = {{"a", "bc"}};
  EXPECT_NE(compute_key(a), compute_key(b));

  a = b = sample_inputs();
  a.options = {};
  b.options = {""};
  EXPECT_NE(compute_key(a), compute_key(b));
}

TEST(CacheKey, JsonRecordsInputsWithSourceHashAndRoundTrips) {
  const KeyInputs in = sample_inputs();
  const auto j = key_inputs_json(in);
  EXPECT_EQ(j["source_sha256"], sha256_hex(in.source));
  EXPECT_FALSE(j.contains("source"));
  EXPECT_EQ(j["arch"], "sm_90a");
  EXPECT_EQ(j["options"].size(), 3u);
  EXPECT_EQ(compute_key(key_inputs_from_json(j, in.source)), compute_key(in));
}

nlohmann::json meta_for(const KeyInputs& in) {
  return {{"key_inputs", key_inputs_json(in)}, {"source", in.source}};
}

TEST(CacheKey, DiffNamesEachChangedFieldOnly) {
  KeyInputs a = sample_inputs(), b = sample_inputs();
  EXPECT_TRUE(diff_key_inputs(meta_for(a), meta_for(b)).empty());

  b.arch = "sm_80";
  b.canonical_spec =
      R"({"activation":"gelu_tanh","causal":true,"depth":2,"dtype":"bf16","head_dim":128,)"
      R"("mini_batch":16,"model":"mlp"})";
  b.header_hashes["ttt/mma.cuh"] = std::string(64, 'c');
  b.source = "// generated\n#include \"ttt/common.cuh\"\nextern \"C\" __global__ void k2() {}\n";
  const auto diffs = diff_key_inputs(meta_for(a), meta_for(b));
  std::vector<std::string> fields;
  for (const auto& d : diffs) fields.push_back(d.field);
  EXPECT_EQ(fields, (std::vector<std::string>{"canonical_spec.head_dim", "source",
                                              "header_hashes[ttt/mma.cuh]", "arch"}));
  EXPECT_EQ(diffs[0].a, "64");
  EXPECT_EQ(diffs[0].b, "128");
  EXPECT_NE(diffs[1].note.find("line 3"), std::string::npos) << diffs[1].note;
  EXPECT_EQ(diffs[3].a, "sm_90a");
  EXPECT_EQ(diffs[3].b, "sm_80");
}

TEST(CacheKey, DiffReportsOptionsAndMissingFields) {
  KeyInputs a = sample_inputs(), b = sample_inputs();
  b.options.push_back("-G");
  auto mb = meta_for(b);
  mb["key_inputs"].erase("nvrtc_version");
  const auto diffs = diff_key_inputs(meta_for(a), mb);
  ASSERT_EQ(diffs.size(), 2u);
  EXPECT_EQ(diffs[0].field, "nvrtc_version");
  EXPECT_EQ(diffs[0].b, "<absent>");
  EXPECT_EQ(diffs[1].field, "options");
  EXPECT_NE(diffs[1].b.find("-G"), std::string::npos);
}

}  // namespace
}  // namespace ttt::cache
