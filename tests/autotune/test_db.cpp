// test_db.cpp: the tuning database: round-trip, merging, the winner, corrupted and truncated
// files (detected, never used, set aside), staleness on every fingerprint field, the launch
// bucket rule and how a forward and a backward record become one schedule.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "autotune/select.hpp"
#include "tune_test_util.hpp"

namespace ttt::autotune {
namespace {

using namespace test_util;
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

struct Fixture {
  Spec spec = example_spec("mlp2");
  Target target = Target::for_arch("sm_90a");
  Schedule heuristic = default_schedule(spec, target);
  Schedule faster_fwd = [&] {
    Schedule s = heuristic;
    s.forward_blocks_per_sm = 2;
    return s;
  }();
  Schedule faster_bwd = [&] {
    Schedule s = heuristic;
    s.backward_blocks_per_sm = 2;  // the heuristic's is 1
    s.backward_arena_shared_kib = 0;
    s.backward_arena = Placement::global;
    return s;
  }();
  Schedule wrong = [&] {
    Schedule s = heuristic;
    s.threads = 1024;  // the heuristic's is 512
    return s;
  }();
  // Forward: faster_fwd wins; `wrong` is faster still but failed its check.
  Record fwd = record_for(spec, Pass::forward, 2,
                          {measured(heuristic, 1.0), measured(faster_fwd, 0.5),
                           measured(wrong, 0.1, kCheckFail), measured(faster_bwd, 1.0)},
                          heuristic);
  Record bwd = record_for(spec, Pass::backward, 2,
                          {measured(heuristic, 4.0), measured(faster_fwd, 4.0),
                           measured(wrong, 0.2, kCheckUnchecked), measured(faster_bwd, 3.0)},
                          heuristic);
};

TEST(TuneDb, RoundTripKeepsEveryCandidate) {
  TempDir dir;
  TuneDb db(dir.path());
  Fixture f;
  db.put(test_fingerprint(), {f.fwd, f.bwd});
  EXPECT_TRUE(fs::exists(dir.path() / "tune" / (fingerprint_id(test_fingerprint()) + ".json")));
  const DbFile d = db.load(test_fingerprint());
  ASSERT_TRUE(d.usable()) << d.error;
  ASSERT_EQ(d.records.size(), 2u);
  EXPECT_EQ(to_json(d.records.at(record_key(f.fwd))), to_json(f.fwd));
  EXPECT_EQ(to_json(d.records.at(record_key(f.bwd))), to_json(f.bwd));
  EXPECT_EQ(d.records.at(record_key(f.fwd)).candidates.size(), 4u);
}

TEST(TuneDb, WinnerIsTheFastestCheckedCandidate) {
  Fixture f;
  ASSERT_NE(winner(f.fwd), nullptr);
  EXPECT_EQ(canonical_schedule(winner(f.fwd)->schedule), canonical_schedule(f.faster_fwd));
  EXPECT_EQ(canonical_schedule(winner(f.bwd)->schedule), canonical_schedule(f.faster_bwd));
  EXPECT_EQ(heuristic_measurement(f.fwd)->median_ms, 1.0);
  const auto sorted = sorted_candidates(f.fwd);
  EXPECT_EQ(sorted.front()->median_ms, 0.5);    // passed first
  EXPECT_EQ(sorted.back()->check, kCheckFail);  // failed last, though fastest
  Record none = f.fwd;
  for (auto& m : none.candidates) m.check = kCheckUnchecked;
  EXPECT_EQ(winner(none), nullptr);
}

TEST(TuneDb, ReadMergeWriteLosesNothing) {
  TempDir dir;
  TuneDb db(dir.path());
  Fixture f;
  Record a = f.fwd, b = f.fwd;
  a.candidates = {f.fwd.candidates[0], f.fwd.candidates[1]};
  b.candidates = {f.fwd.candidates[2], measured(f.faster_fwd, 0.4)};  // re-measured
  db.put(test_fingerprint(), {a});
  db.put(test_fingerprint(), {b});
  const Record r = db.load(test_fingerprint()).records.at(record_key(f.fwd));
  ASSERT_EQ(r.candidates.size(), 3u);
  EXPECT_EQ(winner(r)->median_ms, 0.4);
  // Another timed length: the older measurements are not comparable and go.
  Record c = f.fwd;
  c.timed_T = 1024;
  c.candidates = {measured(f.heuristic, 2.0)};
  db.put(test_fingerprint(), {c});
  EXPECT_EQ(db.load(test_fingerprint()).records.at(record_key(f.fwd)).candidates.size(), 1u);
}

TEST(TuneDb, CorruptedAndTruncatedFilesAreDetectedAndNeverUsed) {
  Fixture f;
  for (const char* damage : {"truncate", "flip", "garbage", "rename"}) {
    TempDir dir;
    TuneDb db(dir.path());
    db.put(test_fingerprint(), {f.fwd, f.bwd});
    const fs::path path = db.file_for(test_fingerprint());
    std::string text = slurp(path);
    fs::path target = path;
    if (damage == std::string("truncate")) text.resize(text.size() / 2);
    if (damage == std::string("garbage")) text = "\x01\x02 not json";
    if (damage == std::string("flip")) {  // still valid JSON: the checksum catches it
      const size_t at = text.find("\"median_ms\": 0.5");
      ASSERT_NE(at, std::string::npos);
      text.replace(at, 16, "\"median_ms\": 0.6");
    }
    if (damage == std::string("rename")) {
      target = path.parent_path() / "0000000000000000.json";
      fs::remove(path);
    }
    spit(target, text);
    const auto all = db.load_all();
    ASSERT_EQ(all.size(), 1u) << damage;
    EXPECT_FALSE(all[0].usable()) << damage;
    EXPECT_FALSE(all[0].error.empty()) << damage;
    if (target == path) {
      const DbFile d = db.load(test_fingerprint());
      EXPECT_FALSE(d.usable()) << damage;
      EXPECT_FALSE(choose(d, f.spec, 192).schedule) << damage;
      // A write sets the damaged file aside (still listed as corrupt) and starts afresh.
      db.put(test_fingerprint(), {f.fwd});
      EXPECT_TRUE(db.load(test_fingerprint()).usable()) << damage;
      EXPECT_TRUE(fs::exists(fs::path(path).replace_extension(".corrupt"))) << damage;
      int corrupt = 0;
      for (const DbFile& x : db.load_all()) corrupt += !x.usable();
      EXPECT_EQ(corrupt, 1) << damage;
    }
  }
}

TEST(TuneDb, AFileOthersCanWriteIsNotTrusted) {
  TempDir dir;
  TuneDb db(dir.path());
  Fixture f;
  db.put(test_fingerprint(), {f.fwd, f.bwd});
  fs::permissions(db.file_for(test_fingerprint()), fs::perms::others_write, fs::perm_options::add);
  const DbFile d = db.load(test_fingerprint());
  EXPECT_FALSE(d.usable());
  EXPECT_NE(d.error.find("not trusted"), std::string::npos) << d.error;
  EXPECT_FALSE(choose(d, f.spec, 192).schedule);
}

TEST(TuneDb, AChangeInAnyFingerprintFieldMakesAnotherFile) {
  TempDir dir;
  TuneDb db(dir.path());
  Fixture f;
  db.put(test_fingerprint(), {f.fwd, f.bwd});
  const nlohmann::json base = to_json(test_fingerprint());
  int fields = 0;
  for (const auto& [key, value] : base.items()) {
    ++fields;
    nlohmann::json changed = base;
    changed[key] = value.is_number() ? nlohmann::json(value.get<int>() + 1)
                                     : nlohmann::json(value.get<std::string>() + "x");
    const Fingerprint other = fingerprint_from_json(changed);
    EXPECT_NE(fingerprint_id(other), fingerprint_id(test_fingerprint())) << key;
    const auto differs = differing_fields(test_fingerprint(), other);
    ASSERT_EQ(differs.size(), 1u) << key;
    EXPECT_EQ(differs[0].rfind(key + ":", 0), 0u) << differs[0];
    // The other machine sees no record: the file of this fingerprint is stale there.
    EXPECT_TRUE(db.load(other).records.empty()) << key;
    EXPECT_FALSE(choose(db.load(other), f.spec, 192).schedule) << key;
  }
  EXPECT_EQ(fields, 7);
  EXPECT_THROW(fingerprint_from_json(nlohmann::json{{"gpu_name", "x"}}), std::invalid_argument);
}

TEST(TuneDb, RemoveMatchingAndClear) {
  TempDir dir;
  TuneDb db(dir.path());
  Fixture f;
  db.put(test_fingerprint(), {f.fwd, f.bwd});
  EXPECT_EQ(db.remove_matching("/backward/"), 1u);
  EXPECT_EQ(db.load(test_fingerprint()).records.size(), 1u);
  EXPECT_EQ(db.remove_matching("mlp2"), 1u);  // by spec name; the file goes with its last record
  EXPECT_FALSE(fs::exists(db.file_for(test_fingerprint())));
  db.put(test_fingerprint(), {f.fwd});
  EXPECT_EQ(db.clear(), 1u);
  EXPECT_TRUE(db.load_all().empty());
}

TEST(TuneBucket, WavesOverTheSmCountInPowersOfTwo) {
  EXPECT_EQ(launch_bucket(1, 132), 1);
  EXPECT_EQ(launch_bucket(132, 132), 1);
  EXPECT_EQ(launch_bucket(133, 132), 2);
  EXPECT_EQ(launch_bucket(16 * 12, 132), 2);  // W1: 192 heads, 2 waves
  EXPECT_EQ(launch_bucket(2 * 48, 132), 1);   // W5: 96 heads
  EXPECT_EQ(launch_bucket(3 * 132, 132), 4);
  EXPECT_EQ(launch_bucket(1000, 132), 8);
  EXPECT_EQ(nearest_bucket({1, 4}, 4), 4);
  EXPECT_EQ(nearest_bucket({1, 4}, 2), 4);  // equally far: the larger
  EXPECT_EQ(nearest_bucket({1, 8}, 2), 1);
  EXPECT_EQ(nearest_bucket({1, 2, 8}, 0), 8);  // unknown launch size: the largest
}

TEST(TuneChoice, ComposesTheForwardAndBackwardWinners) {
  TempDir dir;
  TuneDb db(dir.path());
  Fixture f;
  db.put(test_fingerprint(), {f.fwd, f.bwd});
  const Choice c = choose(db.load(test_fingerprint()), f.spec, 192);
  ASSERT_TRUE(c.schedule) << c.why;
  EXPECT_EQ(c.bucket, 2);
  EXPECT_EQ(c.records.size(), 2u);
  // The forward winner's forward knobs, the backward winner's backward knobs.
  EXPECT_EQ(c.schedule->forward_blocks_per_sm, 2);
  EXPECT_EQ(c.schedule->backward_blocks_per_sm, 2);
  EXPECT_EQ(c.schedule->backward_arena, Placement::global);
  EXPECT_NE(c.schedule->threads, 1024);  // the failed and the unchecked candidate never win
  EXPECT_NE(c.why.find("w2"), std::string::npos);
}

TEST(TuneChoice, NeedsAWinnerForEveryPassAndPicksTheNearestBucket) {
  TempDir dir;
  TuneDb db(dir.path());
  Fixture f;
  db.put(test_fingerprint(), {f.fwd});
  EXPECT_FALSE(choose(db.load(test_fingerprint()), f.spec, 192).schedule);  // no backward
  Record fwd8 = f.fwd, bwd8 = f.bwd;
  fwd8.bucket = bwd8.bucket = 8;
  for (auto& m : fwd8.candidates) m.schedule.forward_blocks_per_sm = 1;  // tell them apart
  db.put(test_fingerprint(), {f.bwd, fwd8, bwd8});
  const DbFile d = db.load(test_fingerprint());
  EXPECT_EQ(choose(d, f.spec, 192).bucket, 2);  // exact
  EXPECT_EQ(choose(d, f.spec, 132).bucket, 2);  // w1: nearest is w2
  EXPECT_EQ(choose(d, f.spec, 900).bucket, 8);  // w8
  EXPECT_EQ(choose(d, f.spec, 0).bucket, 8);    // unknown: the largest
  EXPECT_EQ(choose(d, f.spec, 0).schedule->forward_blocks_per_sm, 1);
  // Another spec has no record.
  EXPECT_FALSE(choose(d, example_spec("linear"), 192).schedule);
}

}  // namespace
}  // namespace ttt::autotune
