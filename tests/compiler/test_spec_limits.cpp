// test_spec_limits.cpp: hostile spec text (issue 11, section 2): non-ASCII bytes, deep nesting,
// huge files and huge keys give a SpecError naming the file and the JSON path, quickly and with
// bounded memory and message size, never a crash.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "compiler/spec.hpp"

namespace ttt {
namespace {

// Parses `text`; returns the SpecError (fails the test if there is none).
SpecError error_of(const std::string& text) {
  try {
    parse_spec(text, "hostile.json");
  } catch (const SpecError& e) {
    return e;
  }
  ADD_FAILURE() << "parsed without error: " << text.substr(0, 80);
  return SpecError("", "", "");
}

TEST(SpecLimits, NonAsciiNameIsASpecErrorShowingTheCharacter) {
  // Before: nlohmann threw type_error 316 while printing one byte of "é" (exit 5, no file).
  const SpecError e = error_of("{\"tttc_spec\":1,\"head_dim\":64,\"name\":\"\xc3\xa9\"}");
  EXPECT_EQ(e.file(), "hostile.json");
  EXPECT_EQ(e.json_path(), "$.name");
  EXPECT_NE(e.message().find("bad character \"\\u00e9\""), std::string::npos) << e.what();
}

TEST(SpecLimits, NonAsciiUnknownKeyAndChoice) {
  EXPECT_EQ(error_of("{\"tttc_spec\":1,\"head_dim\":64,\"n\xc3\xa4me\":1}").json_path(),
            "$['n\\u00e4me']");
  const SpecError e = error_of("{\"tttc_spec\":1,\"head_dim\":64,\"dtype\":\"f\xe2\x82\xac\"}");
  EXPECT_EQ(e.json_path(), "$.dtype");
}

TEST(SpecLimits, InvalidUtf8IsAJsonError) {
  const SpecError e = error_of("{\"tttc_spec\":1,\"head_dim\":64,\"name\":\"\xff\"}");
  EXPECT_EQ(e.json_path(), "$");
  EXPECT_NE(e.message().find("invalid JSON"), std::string::npos) << e.what();
}

TEST(SpecLimits, DeepNestingIsRejectedQuicklyWithItsPath) {
  // Before: 100k levels cost 14.8 GB and 28 s; 1 MB of '[' ended in bad_alloc.
  const auto start = std::chrono::steady_clock::now();
  const SpecError e = error_of(std::string(100000, '[') + std::string(100000, ']'));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_NE(e.message().find("nested too deeply"), std::string::npos) << e.what();
  EXPECT_EQ(e.json_path().rfind("$[0][0]", 0), 0u) << e.json_path();
  EXPECT_LT(e.json_path().size(), 1000u);
  const SpecError objects = error_of("{\"tttc_spec\":1,\"x\":" + std::string(1000, '['));
  EXPECT_EQ(objects.json_path().rfind("$.x", 0), 0u) << objects.json_path();
  // Shallow nesting is still parsed (and then rejected for what it is, an unknown field).
  EXPECT_EQ(error_of(R"({"tttc_spec":1,"head_dim":64,"x":[[[[1]]]]})").json_path(), "$.x");
}

TEST(SpecLimits, OversizedTextIsRejectedWithTheFigure) {
  const std::string big =
      "{\"tttc_spec\":1,\"head_dim\":64,\"pad\":\"" + std::string(2 << 20, 'x') + "\"}";
  const SpecError e = error_of(big);
  EXPECT_EQ(e.json_path(), "$");
  EXPECT_NE(e.message().find("too large"), std::string::npos) << e.what();
  EXPECT_NE(e.message().find(std::to_string(big.size())), std::string::npos) << e.what();
}

TEST(SpecLimits, OversizedFileStopsReadingAtTheLimit) {
  // /dev/zero never ends: the reader must stop at the limit instead of filling memory.
  const SpecError e = [] {
    try {
      load_spec_file("/dev/zero");
    } catch (const SpecError& e) {
      return e;
    }
    ADD_FAILURE() << "/dev/zero parsed";
    return SpecError("", "", "");
  }();
  EXPECT_EQ(e.file(), "/dev/zero");
  EXPECT_NE(e.message().find("too large"), std::string::npos) << e.what();
}

TEST(SpecLimits, HugeUnknownKeyIsNotEchoedInFull) {
  // Before: a 10 MB key was echoed as a 20 MB line. Below the size limit, 512 KB here.
  const std::string key(512 << 10, 'k');
  const SpecError e = error_of("{\"tttc_spec\":1,\"head_dim\":64,\"" + key + "\":1}");
  EXPECT_LT(std::string(e.what()).size(), 400u);
  EXPECT_NE(e.message().find(std::to_string(key.size()) + " bytes"), std::string::npos) << e.what();
  const SpecError value = error_of(R"({"tttc_spec":1,"head_dim":64,"dtype":")" + key + "\"}");
  EXPECT_LT(std::string(value.what()).size(), 400u);
  const std::string half = key.substr(0, 300 << 10);  // two of them stay under the size limit
  const SpecError dup = error_of("{\"tttc_spec\":1,\"" + half + "\":1,\"" + half + "\":2}");
  EXPECT_LT(std::string(dup.what()).size(), 400u);
  EXPECT_NE(dup.message().find("duplicate"), std::string::npos) << dup.what();
}

}  // namespace
}  // namespace ttt
