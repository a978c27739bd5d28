// test_gpu_autotune_on.cpp: TTTC_AUTOTUNE=on on the GPU: get_kernel for a small spec without a
// record tunes it within a tiny budget (progress on stderr), records it in the tuning database of
// a temporary cache directory and uses the winner; another launch size of the same bucket and a
// new process (tune_probe) use the record without tuning, and `tttc tune show` lists it. Skips
// without a GPU.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../tools/tttc_test_util.hpp"
#include "autotune/db.hpp"
#include "autotune/on_first_use.hpp"
#include "runtime/driver.hpp"
#include "runtime/jit.hpp"
#include "runtime/tuned.hpp"

namespace ttt {
namespace {

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string schedule_text(const std::optional<Schedule>& s) {
  return s ? canonical_schedule(*s) : "";
}

TEST_F(TttcCli, GpuAutotuneOnTunesOnFirstUseRecordsAndThenUsesTheRecord) {
  if (!driver::status().available) GTEST_SKIP() << driver::status().reason;
  const fs::path cache = cache_;
  fs::create_directories(cache);
  // Before anything in this process reads them (the kernel cache reads its directory once).
  ::setenv("TTTC_CACHE_DIR", cache.c_str(), 1);
  ::setenv("TTTC_AUTOTUNE", "on", 1);
  ::setenv("TTTC_AUTOTUNE_BUDGET", "15s", 1);
  ::unsetenv("TTTC_TUNE_FINGERPRINT_FILE");
  autotune::install_first_use_tuning();
  // TTTC_TEST_SOURCE_DIR / TTTC_TEST_TUNE_PROBE: a copy of the build run on another machine.
  const std::string source_dir = test_path("TTTC_TEST_SOURCE_DIR", TTTC_SOURCE_DIR);
  const std::string spec_file = source_dir + "/examples/linear-f32-d32.json";
  const Spec spec = load_spec_file(spec_file);
  const long long heads = 4 * 8;

  testing::internal::CaptureStderr();
  const auto kernel = jit::get_kernel({.spec = spec, .launch_heads = heads});
  const std::string progress = testing::internal::GetCapturedStderr();
  const jit::Build& b = kernel->build_info();
  EXPECT_EQ(b.schedule_source, "tuned") << b.schedule_why << "\n" << progress;
  EXPECT_TRUE(has(b.schedule_why, "tuned on first use (TTTC_AUTOTUNE=on)")) << b.schedule_why;
  EXPECT_TRUE(has(progress, "tttc autotune: no tuned record for")) << progress;
  EXPECT_TRUE(has(progress, "tttc autotune: [1/")) << progress;
  EXPECT_TRUE(has(progress, "tuned in")) << progress;
  EXPECT_EQ(autotune::process_first_use_tuner().tunings(), 1);

  // Recorded under this cache directory, for this device, with checked winners; the kernel
  // runs the recorded choice.
  const auto fingerprint = jit::present_fingerprint(-1);
  ASSERT_TRUE(fingerprint);
  const autotune::DbFile file = autotune::TuneDb(cache).load(*fingerprint);
  ASSERT_TRUE(file.usable()) << file.error;
  const int bucket = autotune::launch_bucket(heads, fingerprint->sm_count);
  for (autotune::Pass p : autotune::passes_of(spec)) {
    const auto it = file.records.find(autotune::record_key(spec_signature(spec), p, bucket));
    ASSERT_NE(it, file.records.end()) << autotune::to_string(p);
    ASSERT_TRUE(autotune::winner(it->second)) << autotune::to_string(p);
    EXPECT_EQ(autotune::winner(it->second)->check, autotune::kCheckPass);
  }
  EXPECT_EQ(schedule_text(autotune::choose(file, spec, heads).schedule), schedule_text(b.schedule));

  // Another launch size of the same bucket: the record, no tuning.
  const auto again = jit::get_kernel({.spec = spec, .launch_heads = heads + 1});
  EXPECT_EQ(again->build_info().schedule_source, "tuned");
  EXPECT_EQ(again->build_info().schedule_why,
            fmt::format("tuned record of bucket w{} (this launch's)", bucket));
  EXPECT_EQ(autotune::process_first_use_tuner().tunings(), 1);

  // A new process with TTTC_AUTOTUNE=on finds the record and does not tune.
  const fs::path err = cache / "probe.err";
  const std::string cmd =
      fmt::format("cd {} && {} {} 4 8 2>{}", source_dir,
                  test_path("TTTC_TEST_TUNE_PROBE", TTTC_TUNE_PROBE), spec_file, err.string());
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_TRUE(pipe);
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  EXPECT_EQ(pclose(pipe), 0) << out << read_file(err);
  const auto probed = nlohmann::json::parse(out);
  EXPECT_EQ(probed["schedule_source"], "tuned") << out;
  EXPECT_EQ(probed["schedule"], schedule_to_json(b.schedule)) << out;
  EXPECT_FALSE(has(read_file(err), "tttc autotune")) << read_file(err);
  // `tttc tune show` lists the record, the winner marked.
  const Result shown = tttc("tune show examples/linear-f32-d32.json --shape 4,8,512", cache);
  EXPECT_EQ(shown.exit_code, 0) << shown.out;
  EXPECT_TRUE(has(shown.out, "* ")) << shown.out;
}

}  // namespace
}  // namespace ttt
