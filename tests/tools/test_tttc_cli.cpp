// test_tttc_cli.cpp: runs the built tttc binary as a user would: exit codes, `tttc compile` twice
// (the second run is served by the cache), eight concurrent compiles into an empty cache (one
// compile, one entry per kernel), and the commands that need a GPU failing cleanly without one.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <string>

#include "tttc_test_util.hpp"

namespace {

namespace fs = std::filesystem;

TEST_F(TttcCli, CompileTwiceHitsTheCacheTheSecondTime) {
  const Result first = tttc("compile examples/mlp2.json --arch sm_90a --json", cache_);
  ASSERT_EQ(first.exit_code, 0) << first.out;
  const auto a = nlohmann::json::parse(first.out);
  ASSERT_EQ(a.size(), 2u);
  for (const auto& k : a) EXPECT_EQ(k["cache"], "miss");
  const Result second = tttc("compile examples/mlp2.json --arch sm_90a --json", cache_);
  ASSERT_EQ(second.exit_code, 0) << second.out;
  const auto b = nlohmann::json::parse(second.out);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(b[i]["cache"], "hit");  // served from disk: the NVRTC builder never ran
    EXPECT_EQ(b[i]["key"], a[i]["key"]);
  }
  // The human form names the key, hit/miss, compile time, registers, shared memory and spills.
  const Result human = tttc("compile examples/mlp2.json --arch sm_90a", cache_);
  for (const char* word : {"hit", "key", "compile", "registers", "shared", "spills"})
    EXPECT_NE(human.out.find(word), std::string::npos) << human.out;
}

TEST_F(TttcCli, EightConcurrentCompilesBuildOnceAndShareOneEntryPerKernel) {
  std::vector<std::future<Result>> runs;
  for (int i = 0; i < 8; ++i)
    runs.push_back(std::async(std::launch::async, [&] {
      return tttc("compile examples/linear.json --arch sm_80 --json", cache_);
    }));
  int misses = 0;
  std::set<std::string> keys;
  for (auto& r : runs) {
    const Result res = r.get();
    ASSERT_EQ(res.exit_code, 0) << res.out;
    for (const auto& k : nlohmann::json::parse(res.out)) {
      misses += k["cache"] == "miss";
      keys.insert(k["key"].get<std::string>());
    }
  }
  EXPECT_EQ(misses, 2);  // one compile per kernel (forward, backward) across all 8 processes
  EXPECT_EQ(keys.size(), 2u);
  const Result ls = tttc("cache ls --json", cache_);
  ASSERT_EQ(ls.exit_code, 0) << ls.out;
  EXPECT_EQ(nlohmann::json::parse(ls.out)["entries"].size(), 2u) << ls.out;
}

TEST_F(TttcCli, ExitCodesAreDocumentedOnes) {
  EXPECT_EQ(tttc("--help", cache_).exit_code, 0);
  for (const char* cmd :
       {"spec", "ir", "compile", "emit", "cache", "reference", "check", "bench"}) {
    const Result r = tttc(fmt::format("{} --help", cmd), cache_);
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd << ": " << r.out;
  }
  EXPECT_EQ(tttc("nonsense", cache_).exit_code, 2);
  EXPECT_EQ(tttc("emit examples/mlp2.json --pass sideways", cache_).exit_code, 2);
  EXPECT_EQ(tttc("compile examples/mlp2.json --arch sm_70", cache_).exit_code, 2);
  // A bad spec is a usage error that names the file and the JSON path.
  const fs::path bad = cache_.string() + "-bad.json";
  std::FILE* f = std::fopen(bad.c_str(), "w");
  std::fputs(R"({"tttc_spec": 1, "head_dim": 24})", f);
  std::fclose(f);
  const Result r = tttc("compile " + bad.string(), cache_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("$.head_dim"), std::string::npos) << r.out;
  fs::remove(bad);
}

TEST_F(TttcCli, GpuCommandsWithoutAGpuExitWithTheirOwnCode) {
  if (fs::exists("/dev/nvidia0")) GTEST_SKIP() << "a GPU is present";
  for (const char* cmd : {"check examples/linear.json", "bench examples/linear.json"}) {
    const Result r = tttc(cmd, cache_);
    EXPECT_EQ(r.exit_code, 4) << cmd << ": " << r.out;
    EXPECT_NE(r.out.find("no GPU"), std::string::npos) << r.out;
  }
}

TEST_F(TttcCli, IrAndEmitPrintReadableText) {
  const Result ir = tttc("ir examples/video-mlp2-noncausal.json", cache_);
  ASSERT_EQ(ir.exit_code, 0) << ir.out;
  EXPECT_NE(ir.out.find("non-causal"), std::string::npos);
  EXPECT_NE(ir.out.find("layer 1: W1 [64x256]"), std::string::npos) << ir.out;
  const Result emit = tttc("emit examples/linear.json --pass backward --arch sm_80", cache_);
  ASSERT_EQ(emit.exit_code, 0) << emit.out;
  EXPECT_NE(emit.out.find("tttc_backward"), std::string::npos);
}

}  // namespace
