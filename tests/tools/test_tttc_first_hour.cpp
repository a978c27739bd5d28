// test_tttc_first_hour.cpp: what a new user meets in the first hour (issue 11, section 3):
// --version, the arch compile chose, a compile that could not be saved, the cache bypass, the
// old environment names, --json on every reporting command with agreeing field names,
// `cache explain SPEC`, and output that reaches a pipe line by line.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "tttc_test_util.hpp"

namespace {

using json = nlohmann::json;

class TttcFirstHour : public TttcCli {};

bool has_gpu() { return fs::exists("/dev/nvidia0"); }

// Standard output alone (notes on stderr dropped) of a shell command.
std::string stdout_of(const std::string& cmd) {
  FILE* pipe = popen((cmd + " 2>/dev/null").c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  pclose(pipe);
  return out;
}

TEST_F(TttcFirstHour, VersionNamesTttcNvrtcTemplatesAndCacheFormat) {
  const Result r = tttc("--version", cache_);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  for (const char* part : {"tttc 0.", "NVRTC ", "templates sha256 ", "cache key format 1"})
    EXPECT_NE(r.out.find(part), std::string::npos) << part << " in " << r.out;
}

TEST_F(TttcFirstHour, CompileWithoutAGpuSaysWhichArchItChose) {
  if (has_gpu()) GTEST_SKIP() << "a GPU is present: its arch is used";
  const Result r = tttc("compile examples/linear.json", cache_);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("compiling for sm_90a"), std::string::npos) << r.out;
  EXPECT_EQ(tttc("compile examples/linear.json --arch sm_80", cache_).out.find("compiling for"),
            std::string::npos);
}

TEST_F(TttcFirstHour, CompileThatCannotSaveFailsUnlessMemoryOnly) {
  fs::create_directories(cache_);
  std::FILE* f = std::fopen((cache_ / "file").c_str(), "w");
  std::fclose(f);
  const fs::path unusable = cache_ / "file" / "cache";  // cannot be created
  Result r = tttc("compile examples/linear.json --arch sm_80", unusable);
  EXPECT_EQ(r.exit_code, 5) << r.out;
  EXPECT_NE(r.out.find("could not be saved"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--memory-only"), std::string::npos) << r.out;
  r = tttc("compile examples/linear.json --arch sm_80 --memory-only", unusable);
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

TEST_F(TttcFirstHour, NoCacheAndTttcCacheDisableBypassTheCache) {
  for (const auto& [flag, env] :
       {std::pair<std::string, std::string>{"--no-cache", ""}, {"", "env TTTC_CACHE_DISABLE=1"}}) {
    for (int i = 0; i < 2; ++i) {  // compiled both times, nothing stored
      const std::string out = stdout_of(
          tttc_command(flag + " compile examples/linear.json --arch sm_80 --json", cache_, env));
      for (const auto& k : json::parse(out)) EXPECT_EQ(k["cache"], "miss") << flag << env;
    }
    EXPECT_FALSE(fs::exists(cache_ / "v1" / "entries")) << flag << env;
  }
}

TEST_F(TttcFirstHour, OldCacheDirNameIsAnAlias) {
  const Result r = tttc("compile examples/linear.json --arch sm_80", cache_,
                        "env -u TTTC_CACHE_DIR TTT_CACHE_DIR=" + (cache_ / "old").string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_FALSE(fs::is_empty(cache_ / "old" / "v1" / "entries"));
}

TEST_F(TttcFirstHour, JsonOnIrEmitAndExplainWithAgreeingFieldNames) {
  const Result ir = tttc("ir examples/linear.json --backward --json", cache_);
  ASSERT_EQ(ir.exit_code, 0) << ir.out;
  const json i = json::parse(ir.out);
  EXPECT_EQ(i["backward"], true);
  EXPECT_GT(i["ir"].size(), 5u);
  const Result emit = tttc("emit examples/linear.json --arch sm_80 --json", cache_);
  ASSERT_EQ(emit.exit_code, 0) << emit.out;
  const json e = json::parse(emit.out);
  EXPECT_NE(e["source"].get<std::string>().find(e["kernel_name"].get<std::string>()),
            std::string::npos);
  for (const char* cmd : {"check", "bench", "run"}) {
    const Result help = tttc(fmt::format("{} --help", cmd), cache_);
    EXPECT_NE(help.out.find("--json"), std::string::npos) << cmd;
  }
  // spill_bytes in compile and in cache ls; W1_final/dW1 in reference as in run's files.
  const json c = json::parse(tttc("compile examples/linear.json --arch sm_80 --json", cache_).out);
  EXPECT_TRUE(c[0].contains("spill_bytes"));
  const json ls = json::parse(tttc("cache ls --json", cache_).out);
  EXPECT_TRUE(ls["entries"][0].contains("spill_bytes")) << ls.dump();
  const json ref =
      json::parse(tttc("reference examples/linear.json --shape 1,1,32 --json", cache_).out);
  for (const char* name : {"W1_final", "b1_final", "dW1", "db1"})
    EXPECT_TRUE(ref["norms"].contains(name)) << name << ": " << ref.dump();
  EXPECT_FALSE(ref["norms"].contains("W_final[0]"));
}

TEST_F(TttcFirstHour, CacheExplainSpecSaysWhyItMisses) {
  ASSERT_EQ(tttc("compile examples/linear.json --arch sm_80", cache_).exit_code, 0);
  Result r = tttc("cache explain examples/linear.json --arch sm_80 --json", cache_);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  json j = json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  for (const auto& k : j) EXPECT_EQ(k["cache"], "hit");
  r = tttc("cache explain examples/linear.json --arch sm_86", cache_);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("is not in the cache"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  arch\n    wanted: sm_86\n    cached: sm_80"), std::string::npos) << r.out;
  // Nothing was compiled or stored by explain.
  EXPECT_EQ(json::parse(tttc("cache ls --json", cache_).out)["entries"].size(), 2u);
}

TEST_F(TttcFirstHour, OutputReachesAPipeLineByLine) {
  // Before: stdout was block-buffered when piped, so a log showed nothing until the end.
  const std::string cmd =
      tttc_command("compile examples/linear.json examples/mlp2.json --arch sm_80", cache_);
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char line[4096];
  ASSERT_NE(std::fgets(line, sizeof line, pipe), nullptr);
  const auto first = std::chrono::steady_clock::now();
  while (std::fgets(line, sizeof line, pipe)) {
  }
  const auto last = std::chrono::steady_clock::now();
  EXPECT_EQ(pclose(pipe), 0);
  // The first line came while mlp2's two kernels were still compiling (seconds of work).
  EXPECT_GT(last - first, std::chrono::milliseconds(200));
}

}  // namespace
