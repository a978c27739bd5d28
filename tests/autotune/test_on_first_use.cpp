// test_on_first_use.cpp: TTTC_AUTOTUNE=on without a GPU: the mode and budget parsing, and tuning
// on first use driven through the fake device: one tuning per (spec, bucket), recorded in a
// temporary database and reused without tuning (also by a new tuner, as a new process would),
// concurrent first uses tune once, nothing asked for inside a tuning run tunes, and no device, an
// unknown launch size or a bucket tuned without a winner fall back with the reason.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "autotune/on_first_use.hpp"
#include "fake_device.hpp"
#include "runtime/driver.hpp"
#include "runtime/tuned.hpp"
#include "tune_test_util.hpp"

namespace ttt::autotune {
namespace {

using namespace test_util;
using std::chrono::seconds;

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// The chosen schedule as text ("" for none), to compare choices.
std::string schedule_of(const Choice& c) {
  return c.schedule ? canonical_schedule(*c.schedule) : "";
}

// The message of what `f` throws as std::invalid_argument ("" when it does not throw).
template <class F>
std::string invalid_argument_of(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(AutotuneMode, ParsesOffCachedOnAndRejectsTheRest) {
  using jit::AutotuneMode;
  EXPECT_EQ(jit::parse_autotune_mode(""), AutotuneMode::cached);
  EXPECT_EQ(jit::parse_autotune_mode("cached"), AutotuneMode::cached);
  EXPECT_EQ(jit::parse_autotune_mode("off"), AutotuneMode::off);
  EXPECT_EQ(jit::parse_autotune_mode("on"), AutotuneMode::on);
  for (const char* bad : {"ON", "sometimes", " on", "on ", "1", "true"})
    EXPECT_TRUE(has(invalid_argument_of([&] { jit::parse_autotune_mode(bad); }),
                    fmt::format("TTTC_AUTOTUNE={}: must be off, cached or on", bad)))
        << bad;
  // The variable itself: unset is the default.
  ::unsetenv("TTTC_AUTOTUNE");
  EXPECT_EQ(jit::autotune_mode(), AutotuneMode::cached);
  ::setenv("TTTC_AUTOTUNE", "on", 1);
  EXPECT_EQ(jit::autotune_mode(), AutotuneMode::on);
  ::setenv("TTTC_AUTOTUNE", "maybe", 1);
  EXPECT_THROW(jit::autotune_mode(), std::invalid_argument);
  ::unsetenv("TTTC_AUTOTUNE");
}

TEST(AutotuneMode, ParsesTheBudgetStrictly) {
  EXPECT_EQ(jit::parse_autotune_budget("20"), seconds(20));
  EXPECT_EQ(jit::parse_autotune_budget("90s"), seconds(90));
  EXPECT_EQ(jit::parse_autotune_budget("2m"), seconds(120));
  EXPECT_EQ(jit::parse_autotune_budget("1h"), seconds(3600));
  for (const char* bad : {"", "0", "0s", "-5", "1.5", "20 ", " 20", "20S", "2d", "500ms", "s",
                          "twenty", "1e3", "9999999999"})
    EXPECT_TRUE(
        has(invalid_argument_of([&] { jit::parse_autotune_budget(bad); }),
            fmt::format("TTTC_AUTOTUNE_BUDGET={}: expected a positive number of seconds", bad)))
        << bad;
  ::unsetenv("TTTC_AUTOTUNE_BUDGET");
  EXPECT_EQ(jit::autotune_budget(), jit::kDefaultAutotuneBudget);
  ::setenv("TTTC_AUTOTUNE_BUDGET", "7s", 1);
  EXPECT_EQ(jit::autotune_budget(), seconds(7));
  ::setenv("TTTC_AUTOTUNE_BUDGET", "soon", 1);
  EXPECT_THROW(jit::autotune_budget(), std::invalid_argument);
  ::unsetenv("TTTC_AUTOTUNE_BUDGET");
}

TEST(FirstUse, TheJobIsTheLaunchSizeOnTheShortenedLength) {
  const Spec spec = example_spec("mlp2");
  const TuneJob job = first_use_job(spec, 192);
  EXPECT_EQ(job.B * job.H, 192);
  EXPECT_EQ(job.T, timed_length(spec, 1 << 20));
  EXPECT_EQ(timed_length(spec, job.T), job.T);  // timed as is: the record's T is what was timed
  EXPECT_EQ(job.label, "mlp2");
}

// A first-use setup over a fake device and a temporary database, with its progress lines.
struct Fixture {
  TempDir dir;
  std::mutex mutex;
  std::vector<std::string> lines;
  std::atomic<int> backends_made{0};
  FirstUseSetup setup_for(Backend& device) {
    return {.db = TuneDb(dir.path()),
            .fingerprint = test_fingerprint(),
            .make_backend = [this, &device]() -> std::unique_ptr<Backend> {
              ++backends_made;
              return std::make_unique<BorrowedDevice>(device);
            },
            // A cap the tuning reaches long before its budget: what it times and checks does not
            // depend on how loaded the machine is (a 2 s budget did, and failed under load).
            .budget = seconds(600),
            .max_candidates = 12,
            .log =
                [this](const std::string& line) {
                  std::lock_guard lock(mutex);
                  lines.push_back(line);
                }};
  }
  int lines_starting(const std::string& prefix) {
    int n = 0;
    for (const auto& l : lines) n += l.rfind(prefix, 0) == 0;
    return n;
  }
};

TEST(FirstUse, TunesOnceRecordsAndThenUsesTheRecord) {
  Fixture f;
  FakeDevice device;
  // The fastest candidates (256 threads) fail their check; the heuristic (512 threads: mlp2's
  // arena backward) passes.
  device.fast_wrong_threads = 256;
  const FirstUseSetup setup = f.setup_for(device);
  const Spec spec = example_spec("mlp2");
  FirstUseTuner tuner;
  const Choice first = tuner.choose(spec, 16 * 12, setup);
  ASSERT_TRUE(first.schedule) << first.why;
  EXPECT_EQ(first.bucket, launch_bucket(16 * 12, test_fingerprint().sm_count));
  EXPECT_TRUE(has(first.why, "tuned on first use (TTTC_AUTOTUNE=on): tuned record of bucket w2"))
      << first.why;
  EXPECT_EQ(tuner.tunings(), 1);
  EXPECT_EQ(f.backends_made.load(), 1);
  EXPECT_NE(first.schedule->threads, 256);  // the fast candidate that fails its check
  const int compiles = device.compiles.load();
  EXPECT_GT(compiles, 1);
  // Why the first call is slow: a line saying so, one per candidate, a summary.
  ASSERT_FALSE(f.lines.empty());
  EXPECT_TRUE(has(f.lines.front(), "no tuned record for mlp2 at launch bucket w2 (B*H = 192)"))
      << f.lines.front();
  EXPECT_TRUE(has(f.lines.front(), "within 600 s")) << f.lines.front();
  const int measured = f.lines_starting("[");
  EXPECT_TRUE(has(f.lines.back(), "mlp2 bucket w2: tuned in")) << f.lines.back();
  EXPECT_TRUE(has(f.lines.back(), "recorded in " + setup.db.file_for(test_fingerprint()).string()))
      << f.lines.back();
  // Recorded as `tttc tune` records: every candidate of both passes, the winner checked.
  const DbFile file = setup.db.load(test_fingerprint());
  ASSERT_TRUE(file.usable()) << file.error;
  for (Pass p : {Pass::forward, Pass::backward}) {
    const Record& r = file.records.at(record_key(spec_signature(spec), p, 2));
    EXPECT_EQ(r.B * r.H, 192);
    EXPECT_EQ(r.T, first_use_job(spec, 192).T);
    EXPECT_EQ(r.timed_T, r.T);
    EXPECT_EQ(int(r.candidates.size()), measured);
    const bool fast_wrong_failed = std::ranges::any_of(r.candidates, [](const Measurement& m) {
      return m.schedule.threads == 256 && m.check == kCheckFail;
    });
    EXPECT_TRUE(fast_wrong_failed);
    ASSERT_TRUE(winner(r));
    EXPECT_EQ(winner(r)->check, kCheckPass);
  }
  EXPECT_EQ(schedule_of(choose(file, spec, 192)), schedule_of(first));

  // Again, another launch size of the same bucket: the record, no tuning.
  const size_t lines = f.lines.size();
  const Choice second = tuner.choose(spec, 200, setup);
  EXPECT_EQ(schedule_of(second), schedule_of(first));
  EXPECT_EQ(second.why, "tuned record of bucket w2 (this launch's)");
  EXPECT_EQ(tuner.tunings(), 1);
  EXPECT_EQ(device.compiles.load(), compiles);
  EXPECT_EQ(f.lines.size(), lines);
  // A new process (a fresh tuner) uses the record too.
  FirstUseTuner fresh;
  EXPECT_EQ(schedule_of(fresh.choose(spec, 192, setup)), schedule_of(first));
  EXPECT_EQ(fresh.tunings(), 0);
  EXPECT_EQ(f.backends_made.load(), 1);
  // Another bucket is another key: tuned on its first use.
  const Choice wide = tuner.choose(spec, 132 * 4, setup);
  ASSERT_TRUE(wide.schedule) << wide.why;
  EXPECT_EQ(wide.bucket, 4) << wide.why;
  EXPECT_EQ(tuner.tunings(), 2);
}

TEST(FirstUse, ConcurrentFirstUsesTuneOnce) {
  Fixture f;
  FakeDevice device;
  device.sleep_ms = 1;  // keep the tuning in progress while the other threads arrive
  const FirstUseSetup setup = f.setup_for(device);
  const Spec spec = example_spec("linear");
  FirstUseTuner tuner;
  std::vector<Choice> choices(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < choices.size(); ++i)
    threads.emplace_back([&, i] { choices[i] = tuner.choose(spec, 64 + long(i), setup); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(tuner.tunings(), 1);
  EXPECT_EQ(f.backends_made.load(), 1);
  EXPECT_EQ(f.lines_starting("no tuned record"), 1);
  for (const Choice& c : choices) {
    ASSERT_TRUE(c.schedule) << c.why;
    EXPECT_EQ(schedule_of(c), schedule_of(choices[0]));
    EXPECT_EQ(c.bucket, 1);
  }
}

// Asks the tuner for kernels from inside the tuning, on the compile pool's threads (compile) and
// on the tuning thread (check): for the key being tuned and for another spec.
class ReentrantDevice : public FakeDevice {
 public:
  FirstUseTuner* tuner = nullptr;
  const FirstUseSetup* setup = nullptr;
  std::mutex mutex;
  std::vector<std::string> nested_whys;

  CompileOutcome compile(const Spec& spec, const Schedule& s) override {
    ask(spec);
    ask(example_spec("linear"));
    return FakeDevice::compile(spec, s);
  }
  CheckOutcome check(const Spec& spec, const Schedule& s, const CheckShape& shape) override {
    ask(spec);
    return FakeDevice::check(spec, s, shape);
  }

 private:
  void ask(const Spec& spec) {
    const Choice c = tuner->choose(spec, 192, *setup);
    std::lock_guard lock(mutex);
    nested_whys.push_back(c.why);
  }
};

TEST(FirstUse, NothingAskedForInsideATuningRunTunes) {
  Fixture f;
  ReentrantDevice device;
  FirstUseTuner tuner;
  const FirstUseSetup setup = f.setup_for(device);
  device.tuner = &tuner;
  device.setup = &setup;
  EXPECT_FALSE(inside_first_use_tuning());
  const Choice c = tuner.choose(example_spec("mlp2"), 192, setup);
  ASSERT_TRUE(c.schedule) << c.why;
  EXPECT_FALSE(inside_first_use_tuning());
  EXPECT_EQ(tuner.tunings(), 1);  // neither mlp2 again nor linear
  ASSERT_GT(device.nested_whys.size(), 2u);
  // Refused, or (asked while checking, once a winner is recorded) the record.
  int refused = 0;
  for (const auto& why : device.nested_whys) {
    refused += has(why, "TTTC_AUTOTUNE=on: not tuning from inside a tuning run");
    EXPECT_TRUE(has(why, "not tuning from inside") || why.rfind("tuned record of bucket", 0) == 0)
        << why;
  }
  EXPECT_GT(refused, 1);
  // Outside the run, linear is tuned on its own first use.
  EXPECT_TRUE(tuner.choose(example_spec("linear"), 192, setup).schedule);
  EXPECT_EQ(tuner.tunings(), 2);
}

TEST(FirstUse, NoDeviceFallsBackWithTheReasonOncePerProcess) {
  Fixture f;
  FakeDevice device;
  FirstUseSetup setup = f.setup_for(device);
  setup.make_backend = [&f]() -> std::unique_ptr<Backend> {
    ++f.backends_made;
    throw driver::NoGpuError("no CUDA driver (libcuda.so.1 not found)");
  };
  FirstUseTuner tuner;
  const Spec spec = example_spec("mlp2");
  for (int i = 0; i < 3; ++i) {
    const Choice c = tuner.choose(spec, 192, setup);
    EXPECT_FALSE(c.schedule);
    EXPECT_TRUE(has(c.why,
                    "TTTC_AUTOTUNE=on: tuning bucket w2 failed (not retried in this "
                    "process: no CUDA driver (libcuda.so.1 not found))"))
        << c.why;
    EXPECT_TRUE(has(c.why, "no record for this spec on this device")) << c.why;
  }
  EXPECT_EQ(f.backends_made.load(), 1);
  EXPECT_EQ(tuner.tunings(), 1);
  EXPECT_TRUE(has(f.lines.back(), "tuning mlp2 failed")) << f.lines.back();
  EXPECT_TRUE(setup.db.load(test_fingerprint()).records.empty());
}

TEST(FirstUse, AnUnknownLaunchSizeIsNotTuned) {
  Fixture f;
  FakeDevice device;
  const FirstUseSetup setup = f.setup_for(device);
  FirstUseTuner tuner;
  const Choice c = tuner.choose(example_spec("mlp2"), 0, setup);
  EXPECT_FALSE(c.schedule);
  EXPECT_TRUE(has(c.why,
                  "TTTC_AUTOTUNE=on: not tuning: the launch size is unknown "
                  "(KernelConfig::launch_heads = 0); no record for this spec"))
      << c.why;
  EXPECT_EQ(tuner.tunings(), 0);
  EXPECT_EQ(device.compiles.load(), 0);
  // Once a bucket is tuned, an unknown size gets the largest tuned bucket, as with `cached`.
  ASSERT_TRUE(tuner.choose(example_spec("mlp2"), 192, setup).schedule);
  const Choice after = tuner.choose(example_spec("mlp2"), 0, setup);
  EXPECT_TRUE(after.schedule) << after.why;
  EXPECT_EQ(after.bucket, 2);
}

// Every check fails: tuning finds no winner.
class WrongDevice : public FakeDevice {
 public:
  CheckOutcome check(const Spec&, const Schedule&, const CheckShape&) override {
    ++checks;
    return {false, "out: rel error 1e-1 over 1e-2"};
  }
};

TEST(FirstUse, ABucketTunedWithoutAWinnerIsNotTunedAgain) {
  Fixture f;
  WrongDevice device;
  const FirstUseSetup setup = f.setup_for(device);
  const Spec spec = example_spec("linear");
  FirstUseTuner tuner;
  const Choice c = tuner.choose(spec, 192, setup);
  EXPECT_FALSE(c.schedule);
  EXPECT_TRUE(has(c.why, "bucket w2 was tuned now without a checked winner")) << c.why;
  EXPECT_EQ(tuner.tunings(), 1);
  EXPECT_FALSE(tuner.choose(spec, 192, setup).schedule);
  EXPECT_EQ(tuner.tunings(), 1);
  // A new process finds the failed records and does not repeat the tuning either.
  FirstUseTuner fresh;
  const Choice again = fresh.choose(spec, 192, setup);
  EXPECT_FALSE(again.schedule);
  EXPECT_TRUE(has(again.why, "bucket w2 was tuned before without a checked winner")) << again.why;
  EXPECT_EQ(fresh.tunings(), 0);
  EXPECT_EQ(f.backends_made.load(), 1);
}

}  // namespace
}  // namespace ttt::autotune
