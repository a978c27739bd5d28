// test_options.cpp: the cache switches of issue 11, section 3: bypassing the disk
// (TTTC_CACHE_DISABLE), a read-only second cache directory, the hit/miss counters behind
// `tttc cache stats`, dry runs of removal, and probe mode (key inputs without compiling).
#include <gtest/gtest.h>

#include "cache/kernel_cache.hpp"
#include "cache/maintenance.hpp"
#include "cache/stats.hpp"
#include "cache_test_util.hpp"

namespace ttt::cache {
namespace {

using namespace test_util;
namespace fs = std::filesystem;

TEST(CacheOptions, DisabledCacheNeitherReadsNorWrites) {
  TempDir tmp;
  std::atomic<int> builds{0};
  {
    KernelCache writer({tmp / "c", 0});
    writer.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "old"));
  }
  const auto before = files_in(tmp / "c" / "v1" / "entries");
  KernelCache cache({.dir = tmp / "c", .max_size = 0, .disabled = true});
  auto r =
      cache.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "new"));
  EXPECT_EQ(r.origin, Origin::built);  // compiled again although the disk has it
  EXPECT_EQ(r.entry->binary, "new");
  cache.get_or_build(sample_inputs("b"), sample_description(), counting_builder(builds, "b"));
  EXPECT_EQ(files_in(tmp / "c" / "v1" / "entries"), before);  // nothing written
  auto again =
      cache.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "x"));
  EXPECT_EQ(again.origin, Origin::memory);  // one compile per process still
  EXPECT_EQ(builds.load(), 3);
}

TEST(CacheOptions, ReadOnlySecondCacheServesMissesAndIsNeverWritten) {
  TempDir tmp;
  std::atomic<int> builds{0};
  {
    KernelCache shared({tmp / "shared", 0});
    shared.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "shared"));
  }
  const auto shared_files = files_in(tmp / "shared" / "v1" / "entries");
  KernelCache cache({.dir = tmp / "own", .max_size = 0, .readonly_dir = tmp / "shared"});
  auto r =
      cache.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "built"));
  EXPECT_EQ(r.origin, Origin::disk);
  EXPECT_EQ(r.entry->binary, "shared");
  auto other =
      cache.get_or_build(sample_inputs("o"), sample_description(), counting_builder(builds, "o"));
  EXPECT_EQ(other.origin, Origin::built);
  EXPECT_EQ(files_in(tmp / "shared" / "v1" / "entries"), shared_files);
  EXPECT_TRUE(DiskStore(tmp / "own").load(other.entry->key).status ==
              DiskStore::LoadResult::Status::ok);  // new entries go to the user's own cache
}

TEST(CacheOptions, UntrustedReadOnlyCacheIsIgnoredWithOneWarning) {
  TempDir tmp;
  std::atomic<int> builds{0};
  {
    KernelCache shared({tmp / "shared", 0});
    shared.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "shared"));
  }
  ::chmod((tmp / "shared").c_str(), 0777);
  WarningCapture warnings;
  KernelCache cache({.dir = tmp / "own", .max_size = 0, .readonly_dir = tmp / "shared"});
  for (const char* v : {"", "a"}) {
    auto r = cache.get_or_build(sample_inputs(v), sample_description(),
                                counting_builder(builds, "built"));
    EXPECT_EQ(r.origin, Origin::built);
  }
  ASSERT_EQ(warnings.messages().size(), 1u);
  EXPECT_NE(warnings.messages()[0].find("read-only cache directory"), std::string::npos);
}

TEST(CacheOptions, StatsCountHitsAndMissesAcrossProcessesUntilZeroed) {
  TempDir tmp;
  std::atomic<int> builds{0};
  for (int process = 0; process < 2; ++process) {
    KernelCache cache({tmp / "c", 0});  // a new instance stands for a new process
    for (int i = 0; i < 3; ++i)
      cache.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "k"));
  }
  DiskStore store(tmp / "c");
  DiskStats s = read_stats(store);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 1u);  // the second process's disk hit; memory hits are not counted
  EXPECT_TRUE(s.since.has_value());
  ASSERT_TRUE(zero_stats(store));
  s = read_stats(store);
  EXPECT_EQ(s.hits + s.misses, 0u);
}

TEST(CacheOptions, DryRunRemovesNothing) {
  TempDir tmp;
  std::atomic<int> builds{0};
  KernelCache cache({tmp / "c", 0});
  const std::string key =
      cache.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "k"))
          .entry->key;
  DiskStore store(tmp / "c");
  EXPECT_EQ(remove_keys(store, {key.substr(0, 8)}, /*dry_run=*/true).size(), 1u);
  EXPECT_EQ(remove_matching(store, EntryPattern::parse("*"), Clock::now(), true).size(), 1u);
  EXPECT_EQ(evict_lru(store, 0, {.dry_run = true}).removed.size(), 1u);
  EXPECT_EQ(store.list().size(), 1u);
  EXPECT_THROW(remove_keys(store, {key, "ffff"}), KeyLookupError);  // all resolve, or none goes
  EXPECT_EQ(store.list().size(), 1u);
  EXPECT_EQ(remove_keys(store, {key}).size(), 1u);
  EXPECT_TRUE(store.list().empty());
}

TEST(CacheOptions, ProbeModeReportsKeyInputsWithoutBuildingOrStoring) {
  TempDir tmp;
  KernelCache cache({tmp / "c", 0});
  std::vector<std::string> keys;
  cache.set_probe([&](const KeyInputs& in, const std::string& key) {
    EXPECT_EQ(compute_key(in), key);
    keys.push_back(key);
  });
  std::atomic<int> builds{0};
  auto r = cache.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "k"));
  EXPECT_EQ(builds.load(), 0);
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(r.entry->key, keys[0]);
  EXPECT_TRUE(r.entry->metadata.contains("key_inputs"));
  cache.set_probe({});
  r = cache.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "k"));
  EXPECT_EQ(r.origin, Origin::built);  // the placeholder was not remembered
}

}  // namespace
}  // namespace ttt::cache
