// test_tttc_hardening.cpp: bad command-line input gives exit 2 and a clear message, never a
// crash, a hang, a wrapped number or an OOM kill (issue 11, section 2).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "tttc_test_util.hpp"

namespace {

// Each test file has its own suite (the fixture lives in an anonymous namespace per file).
class TttcHardening : public TttcCli {};

TEST_F(TttcHardening, ShapeIsParsedStrictlyEverywhere) {
  // Each was accepted by sscanf before (5xyz -> 5, the fourth value ignored, 2^32+1 -> 1).
  for (const char* shape : {"1,1,5xyz", "1,1,1,1", "1,1,4294967297", "-1,1,1", "+1,1,1", " 1,1,1",
                            "1,,1", "1,1", "", "0,1,1", "1,1,99999999999"}) {
    for (const char* cmd : {"check", "bench", "reference"}) {
      const Result r =
          tttc(fmt::format("{} examples/linear.json --shape '{}'", cmd, shape), cache_);
      EXPECT_EQ(r.exit_code, 2) << cmd << " --shape '" << shape << "': " << r.out;
      EXPECT_NE(r.out.find("--shape"), std::string::npos) << r.out;
    }
  }
  const Result r = tttc("reference examples/linear.json --shape 1,1,4294967297", cache_);
  EXPECT_NE(r.out.find("too large"), std::string::npos) << r.out;
}

TEST_F(TttcHardening, HugeReferenceShapeIsRefusedWithTheFigure) {
  // Before: allocated until the OOM killer ended it. Within the parser's bounds, over memory:
  const auto start = std::chrono::steady_clock::now();
  const Result r = tttc("reference examples/mlp2.json --shape 1,1,60000000", cache_);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("too large"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("GiB"), std::string::npos) << r.out;
  // Overflowing element counts are refused too, not wrapped.
  const Result o = tttc("reference examples/mlp2.json --shape 1048576,65536,67108864", cache_);
  EXPECT_EQ(o.exit_code, 2) << o.out;
  EXPECT_NE(o.out.find("too large"), std::string::npos) << o.out;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST_F(TttcHardening, EmptyArchIsAnError) {
  for (const char* cmd : {"compile", "emit"}) {
    const Result r = tttc(fmt::format("{} examples/linear.json --arch ''", cmd), cache_);
    EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.out;
    EXPECT_NE(r.out.find("--arch"), std::string::npos) << r.out;
  }
}

TEST_F(TttcHardening, NonAsciiSpecIsAUsageErrorNamingTheFile) {
  fs::create_directories(cache_);
  const fs::path bad = cache_ / "n.json";
  std::FILE* f = std::fopen(bad.c_str(), "w");
  std::fputs("{\"tttc_spec\":1,\"head_dim\":64,\"name\":\"\xc3\xa9\"}", f);
  std::fclose(f);
  for (const char* cmd : {"spec", "compile", "ir", "reference --shape 1,1,16"}) {
    const Result r = tttc(fmt::format("{} {}", cmd, bad.string()), cache_);
    EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.out;
    EXPECT_NE(r.out.find(bad.string() + ": $.name: "), std::string::npos) << cmd << ": " << r.out;
  }
}

}  // namespace
