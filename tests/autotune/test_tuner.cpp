// test_tuner.cpp: the search loop of `tttc tune` without a GPU, on a fake device whose compile,
// timings and checks are functions of the schedule: every valid candidate is compiled and timed
// or accounted for, spilling candidates are pruned after compiling, compile and launch errors are
// recorded, a winner that fails its check is never chosen, records are written as measured, an
// interrupted run keeps its measurements and the next run resumes, and the budget stops it.
#include <gtest/gtest.h>

#include <atomic>

#include "autotune/select.hpp"
#include "autotune/tuner.hpp"
#include "fake_device.hpp"
#include "tune_test_util.hpp"

namespace ttt::autotune {
namespace {

using namespace test_util;

struct Outcome {
  nlohmann::json summary;
  std::vector<std::string> lines;
};

Outcome tune_once(FakeDevice& device, const TuneDb& db, TuneOptions o = {}) {
  Outcome r;
  o.log = [&](const std::string& line) { r.lines.push_back(line); };
  o.jobs = 4;
  const Spec spec = example_spec("mlp2");
  const auto all =
      tune({{.label = "mlp2.json", .spec = spec, .B = 16, .H = 12, .T = 2048}}, o, device, db);
  EXPECT_EQ(all.size(), 1u);
  r.summary = all.empty() ? nlohmann::json() : all[0];
  return r;
}

// The best passing candidate of `pass` by the fake's timings, over the enumeration.
double expected_best(Pass pass) {
  const Spec spec = example_spec("mlp2");
  double best = 1e9;
  for (const Schedule& s : enumerate(spec, Target::for_arch("sm_90a")).candidates) {
    if (s.threads == 128 || s.threads == 1024 || s.threads == 512) continue;
    if (s.threads == 256 && s.forward_blocks_per_sm == 4 && s.backward_blocks_per_sm == 2 &&
        s.forward_arena == Placement::global)
      continue;
    best = std::min(best,
                    pass == Pass::forward ? FakeDevice::forward_ms(s) : FakeDevice::backward_ms(s));
  }
  return best;
}

TEST(Tuner, SearchesPrunesChecksAndRecords) {
  TempDir dir;
  TuneDb db(dir.path());
  FakeDevice device;
  const Outcome r = tune_once(device, db);
  const auto& c = r.summary["candidates"];
  const Spec spec = example_spec("mlp2");
  const size_t valid = enumerate(spec, Target::for_arch("sm_90a")).candidates.size();
  EXPECT_EQ(c["valid"].get<size_t>(), valid);
  EXPECT_EQ(device.compiles.load(), int(valid));
  EXPECT_GT(c["pruned_after_compile"].get<int>(), 0);  // threads = 1024 spills
  EXPECT_GT(c["errors"].get<int>(), 0);                // threads = 128, the launch failure
  EXPECT_EQ(c["timed"].get<int>() + c["pruned_after_compile"].get<int>() + c["errors"].get<int>(),
            int(valid));
  // threads = 512 candidates are the fastest and wrong: each checked once, for both passes,
  // until a correct one is reached.
  EXPECT_GE(c["failed_check"].get<int>(), 1);
  EXPECT_GT(device.checks.load(), c["failed_check"].get<int>());
  EXPECT_FALSE(r.summary["interrupted"].get<bool>());
  const auto& fwd = r.summary["passes"]["forward"];
  const auto& bwd = r.summary["passes"]["backward"];
  const Schedule h = default_schedule(spec, Target::for_arch("sm_90a"));
  EXPECT_DOUBLE_EQ(fwd["heuristic_ms"].get<double>(), FakeDevice::forward_ms(h));
  EXPECT_DOUBLE_EQ(fwd["tuned_ms"].get<double>(), expected_best(Pass::forward));
  EXPECT_DOUBLE_EQ(bwd["tuned_ms"].get<double>(), expected_best(Pass::backward));
  EXPECT_GT(fwd["speedup"].get<double>(), 1.0);
  EXPECT_NE(fwd["schedule"]["threads"], 512);
  // One progress line per candidate, then the checks.
  int candidate_lines = 0, check_lines = 0;
  for (const auto& l : r.lines) {
    candidate_lines += l.rfind("[", 0) == 0;
    check_lines += l.rfind("check ", 0) == 0;
  }
  EXPECT_EQ(candidate_lines, int(valid));
  EXPECT_EQ(check_lines, device.checks.load());
  EXPECT_NE(r.lines.front().find("timing on T=512 (shortened from 2048"), std::string::npos)
      << r.lines.front();
  // The database holds every candidate, the failed one marked, and a composed schedule.
  const DbFile d = db.load(test_fingerprint());
  ASSERT_TRUE(d.usable()) << d.error;
  const Record& rec = d.records.at(record_key(spec_signature(spec), Pass::forward, 2));
  EXPECT_EQ(rec.candidates.size(), valid);
  int failed = 0;
  for (const auto& m : rec.candidates) {
    failed += m.check == kCheckFail;
    if (m.check == kCheckFail) {
      EXPECT_EQ(m.schedule.threads, 512);
    }
    if (m.schedule.threads == 128) {
      EXPECT_EQ(m.check, kCheckError);
    }
    if (m.schedule.threads == 1024) {
      EXPECT_EQ(m.check, kCheckPruned);
    }
  }
  EXPECT_EQ(failed, c["failed_check"].get<int>());
  const Choice choice = choose(d, spec, 16 * 12);
  ASSERT_TRUE(choice.schedule) << choice.why;
  EXPECT_EQ(schedule_to_json(*choice.schedule), r.summary["schedule"]);
  EXPECT_DOUBLE_EQ(FakeDevice::forward_ms(*choice.schedule), expected_best(Pass::forward));
  EXPECT_DOUBLE_EQ(FakeDevice::backward_ms(*choice.schedule), expected_best(Pass::backward));

  // Again: everything is resumed; only the heuristic is compiled and timed anew.
  FakeDevice again;
  const Outcome second = tune_once(again, db);
  EXPECT_EQ(again.compiles.load(), 1);
  EXPECT_EQ(second.summary["candidates"]["resumed"].get<size_t>(), valid - 1);
  EXPECT_DOUBLE_EQ(second.summary["passes"]["forward"]["tuned_ms"].get<double>(),
                   expected_best(Pass::forward));
}

// A device whose backward timings move with a forward knob (as the H200's did by 6 % between
// candidates that ran the same backward kernel): the backward's winner is not a candidate that
// only changes the forward, and its time is that of its group's member nearest the heuristic.
class ForwardKnobNoise : public FakeDevice {
 public:
  std::pair<double, double> time(const Spec& spec, const Schedule& s, int B, int H, int T, int runs,
                                 uint64_t seed) override {
    auto [forward, backward] = FakeDevice::time(spec, s, B, H, T, runs, seed);
    return {forward, backward - (s.forward_matmul == "simt_f32" ? 1.0 : 0)};
  }
};

TEST(Tuner, CandidatesThatRunTheSamePassKernelCompeteAsOne) {
  TempDir dir;
  TuneDb db(dir.path());
  ForwardKnobNoise device;
  const Outcome r = tune_once(device, db);
  const Schedule h = default_schedule(example_spec("mlp2"), Target::for_arch("sm_90a"));
  ASSERT_NE(h.forward_matmul, "simt_f32");
  const auto& bwd = r.summary["passes"]["backward"];
  EXPECT_EQ(bwd["schedule"]["forward_matmul"], h.forward_matmul) << bwd.dump();
  EXPECT_DOUBLE_EQ(bwd["tuned_ms"].get<double>(), expected_best(Pass::backward));
  // The same holds for pass projections: a forward-only knob leaves the backward's unchanged.
  Schedule other = h;
  other.forward_matmul = "simt_f32";
  EXPECT_EQ(pass_projection(other, Pass::backward), pass_projection(h, Pass::backward));
  EXPECT_NE(pass_projection(other, Pass::forward), pass_projection(h, Pass::forward));
}

TEST(Tuner, AnInterruptedRunKeepsItsMeasurementsAndResumes) {
  TempDir dir;
  TuneDb db(dir.path());
  FakeDevice device;
  std::atomic<bool> stop{false};
  device.stop = &stop;
  device.stop_after_timings = 3 * 5;  // 5 candidates of 3 repeats
  const Outcome r = tune_once(device, db, {.stop = &stop});
  EXPECT_TRUE(r.summary["interrupted"].get<bool>());
  EXPECT_EQ(r.summary["candidates"]["timed"].get<int>(), 5);
  EXPECT_EQ(device.checks.load(), 0);  // no checks after an interruption
  const Spec spec = example_spec("mlp2");
  const Record rec =
      db.load(test_fingerprint()).records.at(record_key(spec_signature(spec), Pass::forward, 2));
  // Written as measured: the 5 timed, unchecked, and any compile errors met on the way.
  int unchecked = 0;
  for (const auto& m : rec.candidates) {
    unchecked += m.check == kCheckUnchecked;
    EXPECT_TRUE(m.check == kCheckUnchecked || m.check == kCheckError) << m.check;
  }
  EXPECT_EQ(unchecked, 5);
  EXPECT_FALSE(choose(db.load(test_fingerprint()), spec, 192).schedule);  // nothing checked

  FakeDevice resumed;
  const Outcome r2 = tune_once(resumed, db);
  EXPECT_EQ(r2.summary["candidates"]["resumed"].get<size_t>(),
            rec.candidates.size() - 1);  // all but the heuristic
  EXPECT_FALSE(r2.summary["interrupted"].get<bool>());
  EXPECT_DOUBLE_EQ(r2.summary["passes"]["forward"]["tuned_ms"].get<double>(),
                   expected_best(Pass::forward));
  EXPECT_TRUE(choose(db.load(test_fingerprint()), spec, 192).schedule);
}

TEST(Tuner, TheBudgetAndTheCapStopTheSearch) {
  TempDir dir;
  TuneDb db(dir.path());
  FakeDevice slow;
  // 3 repeats: 600 ms a candidate, against a 5 s budget: several candidates are timed even when
  // a loaded machine (a parallel test run) spends seconds enumerating and compiling (with a 2 s
  // budget and 120 ms candidates, one was timed under load and the forward went unchecked), and
  // the budget still stops the search far short of the enumeration.
  slow.sleep_ms = 200;
  const auto start = std::chrono::steady_clock::now();
  const Outcome r = tune_once(slow, db, {.budget = std::chrono::seconds(5)});
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(s, 8.0);
  const int timed = r.summary["candidates"]["timed"].get<int>();
  EXPECT_GE(timed, 2);
  EXPECT_LT(timed, 20);
  EXPECT_GT(r.summary["passes"]["forward"]["tuned_ms"].get<double>(), 0);  // checked in time

  TempDir dir2;
  FakeDevice capped;
  const Outcome c = tune_once(capped, TuneDb(dir2.path()), {.max_candidates = 7});
  EXPECT_EQ(
      c.summary["candidates"]["compiled"].get<int>() + c.summary["candidates"]["errors"].get<int>(),
      7);
}

}  // namespace
}  // namespace ttt::autotune
