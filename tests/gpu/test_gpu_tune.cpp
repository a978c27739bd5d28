// test_gpu_tune.cpp: `tttc tune` end to end on the GPU for two specs with a small budget (records
// written, winners checked, speed-ups reported), then a new process's get_kernel picks the tuned
// schedule up, and `tttc check --tuned` passes with it. Skips without a GPU.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../tools/tttc_test_util.hpp"
#include "runtime/driver.hpp"

namespace {

Result probe(const std::string& spec, int B, int H, const fs::path& cache) {
  // TTTC_TEST_TUNE_PROBE / TTTC_TEST_SOURCE_DIR: a copy of the build run on another machine.
  const std::string cmd =
      fmt::format("cd {} && TTTC_CACHE_DIR={} {} {} {} {} 2>&1",
                  test_path("TTTC_TEST_SOURCE_DIR", TTTC_SOURCE_DIR), cache.string(),
                  test_path("TTTC_TEST_TUNE_PROBE", TTTC_TUNE_PROBE), spec, B, H);
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST_F(TttcCli, GpuTuneTwoSpecsThenANewProcessUsesTheRecords) {
  if (!ttt::driver::status().available) GTEST_SKIP() << ttt::driver::status().reason;
  // Before tuning: the heuristic.
  auto p = probe("examples/mlp2.json", 4, 8, cache_);
  ASSERT_EQ(p.exit_code, 0) << p.out;
  EXPECT_EQ(nlohmann::json::parse(p.out)["schedule_source"], "heuristic") << p.out;

  auto r = tttc(
      "tune examples/mlp2.json examples/linear-f32-d32.json --shape 4,8,512 --budget 150s "
      "--max-candidates 6 --runs 5 --repeats 2 --json",
      cache_);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find("{\n")));
  ASSERT_EQ(j["jobs"].size(), 2u) << r.out;
  for (const auto& job : j["jobs"]) {
    EXPECT_GE(job["candidates"]["timed"].get<int>(), 1) << job.dump(2);
    for (const char* pass : {"forward", "backward"}) {
      EXPECT_GT(job["passes"][pass]["tuned_ms"].get<double>(), 0) << job.dump(2);
      EXPECT_GT(job["passes"][pass]["heuristic_ms"].get<double>(), 0) << job.dump(2);
    }
    EXPECT_FALSE(job["schedule"].is_null()) << job.dump(2);
  }
  // Progress lines went to stderr (merged here): one per candidate, with the check results.
  EXPECT_NE(r.out.find("[1/"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("check "), std::string::npos) << r.out;

  // A new process: get_kernel finds the record for this device and launch size.
  p = probe("examples/mlp2.json", 4, 8, cache_);
  ASSERT_EQ(p.exit_code, 0) << p.out;
  const auto probed = nlohmann::json::parse(p.out);
  EXPECT_EQ(probed["schedule_source"], "tuned") << p.out;
  EXPECT_EQ(probed["schedule"], j["jobs"][0]["schedule"]) << p.out;
  r = tttc("check examples/mlp2.json --shape 4,8,512 --tuned", cache_);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  r = tttc("tune show examples/mlp2.json --shape 4,8,512", cache_);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("* "), std::string::npos) << r.out;
  // Resuming: a second run with the same cap measures nothing new.
  r = tttc("tune examples/mlp2.json --shape 4,8,512 --budget 60s --max-candidates 3 --json",
           cache_);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto again = nlohmann::json::parse(r.out.substr(r.out.find("{\n")));
  EXPECT_GE(again["jobs"][0]["candidates"]["resumed"].get<int>(), 1) << r.out;
}

}  // namespace
