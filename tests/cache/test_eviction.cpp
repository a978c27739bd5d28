// test_eviction.cpp: the size cap evicts the least recently USED entries according to the
// cache's own last-use records (file times are deliberately set to lie), never the entry just
// published, and counts quarantined files first.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <thread>

#include "cache/kernel_cache.hpp"
#include "cache/maintenance.hpp"
#include "cache_test_util.hpp"

namespace ttt::cache {
namespace {

using namespace test_util;
namespace fs = std::filesystem;

constexpr std::size_t kBinarySize = 100 << 10;

std::string build_into(const fs::path& dir, std::uint64_t max_size, const std::string& variant) {
  KernelCache cache({dir, max_size});
  std::atomic<int> builds{0};
  auto r = cache.get_or_build(sample_inputs(variant), sample_description(variant),
                              counting_builder(builds, std::string(kBinarySize, 'b')));
  EXPECT_EQ(r.origin, Origin::built);
  return r.entry->key;
}

// Sets atime and mtime, to show eviction does not look at them.
void set_file_times(const fs::path& p, std::time_t t) {
  timespec times[2] = {{t, 0}, {t, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0);
}

TEST(CacheEviction, EvictsLeastRecentlyUsedByOwnTimestamps) {
  TempDir dir;
  const std::string a = build_into(dir.path(), 0, "a");
  const std::string b = build_into(dir.path(), 0, "b");
  const std::string c = build_into(dir.path(), 0, "c");
  {
    // Use A again (a disk hit from a new process' cache), making B the least recently used.
    KernelCache user({dir.path(), 0});
    std::atomic<int> builds{0};
    EXPECT_EQ(
        user.get_or_build(sample_inputs("a"), sample_description("a"), counting_builder(builds, ""))
            .origin,
        Origin::disk);
  }
  DiskStore store(dir.path());
  // File times claim the opposite order: A oldest, B newest.
  set_file_times(store.entry_path(a), 1000);
  set_file_times(store.entry_path(b), 2000000000);
  set_file_times(store.entry_path(c), 1500000000);

  const std::uint64_t entry_size = fs::file_size(store.entry_path(a));
  const std::uint64_t cap = entry_size * 3 + entry_size / 2;  // room for three entries
  const std::string d = build_into(dir.path(), cap, "d");

  EXPECT_TRUE(fs::exists(store.entry_path(a)));
  EXPECT_FALSE(fs::exists(store.entry_path(b))) << "the least recently used entry survived";
  EXPECT_TRUE(fs::exists(store.entry_path(c)));
  EXPECT_TRUE(fs::exists(store.entry_path(d)));
  EXPECT_FALSE(fs::exists(store.usage_path(b)));
  EXPECT_LE(total_size(store), cap);
}

TEST(CacheEviction, NeverEvictsTheEntryJustPublished) {
  TempDir dir;
  const std::string a = build_into(dir.path(), 0, "a");
  const std::string b = build_into(dir.path(), 1000, "b");  // cap below one entry
  DiskStore store(dir.path());
  EXPECT_FALSE(fs::exists(store.entry_path(a)));
  EXPECT_TRUE(fs::exists(store.entry_path(b)));
}

TEST(CacheEviction, UsesRecordedTimestampsForOrder) {
  TempDir dir;
  std::vector<std::string> keys;
  for (const char* v : {"a", "b", "c", "d"}) keys.push_back(build_into(dir.path(), 0, v));
  DiskStore store(dir.path());
  const auto now = Clock::now();
  // Explicit records: c oldest, then a, then d, then b.
  store.record_use(keys[2], now - std::chrono::hours(40));
  store.record_use(keys[0], now - std::chrono::hours(30));
  store.record_use(keys[3], now - std::chrono::hours(20));
  store.record_use(keys[1], now - std::chrono::hours(10));
  const std::uint64_t entry_size = fs::file_size(store.entry_path(keys[0]));
  auto result = evict_lru(store, entry_size * 2, {});
  ASSERT_EQ(result.removed.size(), 2u);
  EXPECT_EQ(result.removed[0].key, keys[2]);
  EXPECT_EQ(result.removed[1].key, keys[0]);
  EXPECT_EQ(result.bytes_after, entry_size * 2);
}

TEST(CacheEviction, QuarantinedFilesGoFirst) {
  TempDir dir;
  const std::string a = build_into(dir.path(), 0, "a");
  const std::string b = build_into(dir.path(), 0, "b");
  DiskStore store(dir.path());
  std::error_code ec;
  ASSERT_TRUE(store.quarantine(a, ec));
  const std::uint64_t entry_size = fs::file_size(store.entry_path(b));
  auto result = evict_lru(store, entry_size, {});
  EXPECT_TRUE(result.removed.empty());
  EXPECT_EQ(result.quarantine_bytes_removed, entry_size);
  EXPECT_TRUE(files_in(store.quarantine_dir()).empty());
  EXPECT_TRUE(fs::exists(store.entry_path(b)));
}

}  // namespace
}  // namespace ttt::cache
