// test_tttc_tune.cpp: `tttc tune ...`, `tttc schedule` and the schedule's source in `tttc compile`
// end to end on a synthetic record set, written with a test fingerprint that the tttc processes
// see through TTTC_TUNE_FINGERPRINT_FILE (test-only), so no GPU is needed.
#include <array>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../autotune/tune_test_util.hpp"
#include "runtime/driver.hpp"
#include "tttc_test_util.hpp"

namespace {

using namespace ttt;
using namespace ttt::autotune;
using namespace ttt::autotune::test_util;

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

class TttcTune : public TttcCli {
 protected:
  void SetUp() override {
    TttcCli::SetUp();
    fs::create_directories(cache_);
    write_fingerprint(test_fingerprint());
    const Spec spec = example_spec("mlp2");
    const Schedule h = default_schedule(spec, Target::for_arch("sm_90a"));
    Schedule fwd = h, bwd = h, wrong = h;
    fwd.forward_matmul = "simt_f32";
    bwd.backward_arena = Placement::global;
    bwd.backward_blocks_per_sm = 2;  // the heuristic's: 1 CTA of 512 threads
    bwd.backward_arena_shared_kib = 0;  // two CTAs leave no room for the heuristic's on-chip part
    wrong.threads = 1024;
    TuneDb(cache_).put(test_fingerprint(),
                       {record_for(spec, Pass::forward, 2,
                                   {measured(h, 1.0), measured(fwd, 0.5),
                                    measured(wrong, 0.1, kCheckFail), measured(bwd, 1.0)},
                                   h),
                        record_for(spec, Pass::backward, 2,
                                   {measured(h, 4.0), measured(fwd, 4.0), measured(bwd, 3.0)}, h)});
  }
  void write_fingerprint(const Fingerprint& f) {
    std::ofstream(cache_ / "fingerprint.json") << to_json(f).dump();
  }
  std::string env(const std::string& more = "") const {
    return fmt::format("env TTTC_TUNE_FINGERPRINT_FILE={} {}",
                       (cache_ / "fingerprint.json").string(), more);
  }
  Result run(const std::string& args, const std::string& more = "") {
    return tttc(args, cache_, env(more));
  }
  fs::path db_file() const { return TuneDb(cache_).file_for(test_fingerprint()); }
};

TEST_F(TttcTune, ScheduleAndCompileUseTheTunedRecord) {
  auto r = run("schedule examples/mlp2.json --tuned --arch sm_90a");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(j["forward_matmul"], "simt_f32");  // the forward winner's
  EXPECT_EQ(j["backward_arena"], "global");    // the backward winner's
  EXPECT_EQ(j["backward_blocks_per_sm"], 2);
  EXPECT_EQ(j["threads"], 512);  // the failed candidate (1024) is never chosen
  r = run("schedule examples/mlp2.json --arch sm_90a");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["forward_matmul"], "mma_bf16x6");  // the heuristic

  r = run("compile examples/mlp2.json --arch sm_90a --json --shape 16,12,2048");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  j = nlohmann::json::parse(r.out.substr(r.out.find('[')));
  ASSERT_EQ(j.size(), 2u);
  for (const auto& k : j) {
    EXPECT_EQ(k["schedule_source"], "tuned");
    EXPECT_EQ(k["schedule"]["forward_matmul"], "simt_f32");
  }
  r = run("compile examples/mlp2.json --arch sm_90a --json", "TTTC_AUTOTUNE=off");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out.substr(r.out.find('[')))[0]["schedule_source"],
            "heuristic");
  // Compiling for another arch than the (test) device's: the records do not apply.
  r = run("compile examples/mlp2.json --arch sm_80 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out.substr(r.out.find('[')))[0]["schedule_source"],
            "heuristic");
  r = run("compile examples/mlp2.json --arch sm_90a --json", "TTTC_AUTOTUNE=sometimes");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_TRUE(has(r.out, "TTTC_AUTOTUNE=sometimes")) << r.out;
}

// TTTC_AUTOTUNE=on in the CLI: a record is used as with `cached`; where tuning is not possible
// the heuristic, with the reason in schedule_why. (Tuning itself: tests/autotune on a fake device,
// tests/gpu/test_gpu_autotune_on.cpp on the GPU.)
TEST_F(TttcTune, AutotuneOnUsesRecordsAndSaysWhyItDidNotTune) {
  auto schedule_row = [](const Result& r) {
    return nlohmann::json::parse(r.out.substr(r.out.find('[')))[0];
  };
  auto r = run("compile examples/mlp2.json --arch sm_90a --json", "TTTC_AUTOTUNE=on");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(schedule_row(r)["schedule_source"], "tuned") << r.out;
  // No record and no launch size: nothing to tune for.
  r = run("compile examples/linear.json --arch sm_90a --json", "TTTC_AUTOTUNE=on");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(schedule_row(r)["schedule_source"], "heuristic") << r.out;
  EXPECT_TRUE(has(schedule_row(r)["schedule_why"], "the launch size is unknown")) << r.out;
  r = run("compile examples/linear.json --arch sm_90a --json --shape 4,8,512",
          "TTTC_AUTOTUNE=on TTTC_AUTOTUNE_BUDGET=soon");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_TRUE(has(r.out, "TTTC_AUTOTUNE_BUDGET=soon")) << r.out;
  // With a GPU this would tune (under the test fingerprint): tests/gpu covers that.
  if (driver::status().available) return;
  r = run("compile examples/linear.json --arch sm_90a --json --shape 4,8,512", "TTTC_AUTOTUNE=on");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(schedule_row(r)["schedule_source"], "heuristic") << r.out;
  const std::string why = schedule_row(r)["schedule_why"];
  EXPECT_TRUE(has(why, "TTTC_AUTOTUNE=on: tuning bucket w1 failed")) << why;
  EXPECT_TRUE(has(why, driver::status().reason)) << why;
  EXPECT_TRUE(has(r.out, "tttc autotune: no tuned record for linear")) << r.out;  // stderr
  // Without the test fingerprint: no GPU to tune on.
  r = tttc("compile examples/linear.json --arch sm_90a --json --shape 4,8,512", cache_,
           "env TTTC_AUTOTUNE=on");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(schedule_row(r)["schedule_why"], "TTTC_AUTOTUNE=on: no GPU here to tune on"))
      << r.out;
}

// `tttc schedule --shape` shows the heuristic's launch-size choices for the SM count given (or
// the GPU present): the splits for few heads at W7's shape, none at W2's.
TEST_F(TttcTune, ScheduleAtALaunchSize) {
  const auto splits = [&](const std::string& args) {
    const auto r = run("schedule examples/linear.json --arch sm_90a " + args);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
    return std::array<bool, 3>{j["query_split"], j["backward_split"], j["backward_split_tokens"]};
  };
  EXPECT_EQ(splits("--shape 1,12,32768 --sms 132"), (std::array<bool, 3>{true, true, true}));
  EXPECT_EQ(splits("--shape 16,12,2048 --sms 132"), (std::array<bool, 3>{false, false, false}));
  EXPECT_EQ(splits("--sms 132"), (std::array<bool, 3>{false, false, false}));  // size unknown
  const auto bad = run("schedule examples/linear.json --arch sm_90a --sms 0");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(has(bad.out, "--sms")) << bad.out;
}

TEST_F(TttcTune, ExplicitScheduleFileComesFirst) {
  auto r = run("schedule examples/mlp2.json --arch sm_90a");
  ASSERT_EQ(r.exit_code, 0);
  std::ofstream(cache_ / "s.json") << r.out;
  r = run(fmt::format("compile examples/mlp2.json --arch sm_90a --json --schedule {}",
                      (cache_ / "s.json").string()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out.substr(r.out.find('[')))[0]["schedule_source"], "explicit");
}

TEST_F(TttcTune, LsShowExplain) {
  auto r = run("tune ls");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "current")) << r.out;
  EXPECT_TRUE(has(r.out, "mlp2")) << r.out;
  EXPECT_TRUE(has(r.out, "1 files (1 current, 0 stale, 0 corrupt)")) << r.out;
  r = run("tune ls --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["files"].size(), 1u);
  EXPECT_EQ(j["files"][0]["status"], "current");
  EXPECT_EQ(j["files"][0]["records"].size(), 2u);

  r = run("tune show examples/mlp2.json --shape 16,12,2048");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  // The winner marked, sorted first; the failed candidate listed, last.
  const size_t star = r.out.find("* ", r.out.find(" forward bucket"));
  ASSERT_NE(star, std::string::npos) << r.out;
  EXPECT_TRUE(has(r.out.substr(star, r.out.find('\n', star) - star), "forward_matmul=simt_f32"))
      << r.out;
  EXPECT_TRUE(has(r.out, "fail")) << r.out;
  EXPECT_LT(r.out.find("0.500 ms"), r.out.find("0.100 ms")) << r.out;
  r = run("tune show examples/mlp2.json --shape 1,1,64");  // bucket w1: none
  EXPECT_EQ(r.exit_code, 2) << r.out;
  r = run("tune show examples/linear.json");
  EXPECT_EQ(r.exit_code, 2) << r.out;

  r = run("tune explain examples/mlp2.json --shape 16,12,2048");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "tuned schedule")) << r.out;
  EXPECT_TRUE(has(r.out, "w2 (this launch's)")) << r.out;
  r = run("tune explain examples/mlp2.json --shape 1,1,64 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["source"], "tuned");
  EXPECT_TRUE(has(j["why"], "nearest")) << j["why"];
  r = run("tune explain examples/mlp2.json", "TTTC_AUTOTUNE=off");
  EXPECT_TRUE(has(r.out, "heuristic schedule: TTTC_AUTOTUNE=off")) << r.out;
}

TEST_F(TttcTune, StaleFilesAreListedExplainedAndRemovable) {
  Fingerprint newer = test_fingerprint();
  newer.driver_version = "13010";
  write_fingerprint(newer);
  auto r = run("tune ls");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "stale")) << r.out;
  EXPECT_TRUE(has(r.out, "differs: driver_version: \"13000\" (record) vs \"13010\"")) << r.out;
  r = run("tune ls --stale --json");
  EXPECT_EQ(nlohmann::json::parse(r.out)["files"].size(), 1u);
  r = run("tune explain examples/mlp2.json --shape 16,12,2048");
  EXPECT_TRUE(has(r.out, "heuristic schedule")) << r.out;
  EXPECT_TRUE(has(r.out, "driver_version")) << r.out;
  r = run("schedule examples/mlp2.json --tuned --arch sm_90a");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  r = run("tune rm --stale");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "removed 1 files")) << r.out;
  EXPECT_FALSE(fs::exists(db_file()));
  // Without any fingerprint (no GPU), stale cannot be judged: an error, nothing removed. (With a
  // GPU the device's own fingerprint judges: that case is the one above.)
  if (fs::exists("/dev/nvidia0")) return;
  write_fingerprint(test_fingerprint());
  TuneDb(cache_).put(test_fingerprint(), {});
  r = tttc("tune rm --stale", cache_);
  EXPECT_EQ(r.exit_code, 2) << r.out;
}

TEST_F(TttcTune, CorruptedFileIsReportedAndNotUsed) {
  std::ofstream(db_file(), std::ios::app) << "trailing garbage";
  auto r = run("tune ls");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "corrupt")) << r.out;
  r = run("schedule examples/mlp2.json --tuned --arch sm_90a");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_TRUE(has(r.out, "unusable")) << r.out;
  r = run("compile examples/mlp2.json --arch sm_90a --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out.substr(r.out.find('[')))[0]["schedule_source"],
            "heuristic");
  r = run("tune rm --stale");
  EXPECT_TRUE(has(r.out, "(corrupt)")) << r.out;
  EXPECT_FALSE(fs::exists(db_file()));
}

TEST_F(TttcTune, ExportClearImportRmMatch) {
  const std::string file = (cache_ / "h200-records.json").string();
  auto r = run("tune export " + file);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run("tune clear");
  EXPECT_TRUE(has(r.out, "removed 1 files")) << r.out;
  EXPECT_EQ(run("tune show examples/mlp2.json").exit_code, 2);
  r = run("tune import " + file);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "imported 2 records")) << r.out;
  EXPECT_EQ(run("tune show examples/mlp2.json").exit_code, 0);
  r = run("tune rm --match /backward/");
  EXPECT_TRUE(has(r.out, "removed 1 records")) << r.out;
  // A damaged export is refused with the file named.
  std::ofstream(file, std::ios::trunc) << "{\"format\": \"tttc-tune-db/1\"}";
  r = run("tune import " + file);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_TRUE(has(r.out, file)) << r.out;
}

TEST_F(TttcTune, HelpAndUsageErrors) {
  for (const char* cmd : {"tune", "tune ls", "tune show", "tune explain", "tune rm", "tune clear",
                          "tune export", "tune import", "schedule"}) {
    auto r = run(std::string(cmd) + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_TRUE(has(r.out, "Usage")) << cmd << r.out;
  }
  EXPECT_EQ(run("tune").exit_code, 2);
  EXPECT_EQ(run("tune rm").exit_code, 2);
  EXPECT_EQ(run("tune examples/mlp2.json --budget soon").exit_code, 2);
  // The search itself needs a GPU (exit 4 without one; the GPU tests run it).
  if (!driver::status().available) {
    EXPECT_EQ(tttc("tune examples/mlp2.json --budget 5s", cache_).exit_code, 4);
  }
}

}  // namespace
