// test_maintenance.cpp: list, key prefix lookup, explain, verify, pattern removal, gc and clear.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "cache/fs.hpp"
#include "cache/kernel_cache.hpp"
#include "cache/maintenance.hpp"
#include "cache_test_util.hpp"

namespace ttt::cache {
namespace {

using namespace test_util;
namespace fs = std::filesystem;

// Three entries: alpha/sm_90a, beta/sm_80, alphabet/sm_80.
class CacheMaintenanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_.push_back(add("alpha", "sm_90a", 64));
    keys_.push_back(add("beta", "sm_80", 64));
    keys_.push_back(add("alphabet", "sm_80", 128));
  }

  std::string add(const std::string& name, const std::string& arch, int head_dim) {
    KeyInputs in = sample_inputs(name);
    in.arch = arch;
    in.canonical_spec = R"({"head_dim":)" + std::to_string(head_dim) + "}";
    KernelCache cache({dir_.path(), 0});
    std::atomic<int> builds{0};
    return cache.get_or_build(in, sample_description(name), counting_builder(builds, "bin-" + name))
        .entry->key;
  }

  std::vector<std::string> keys_of(const std::vector<EntrySummary>& entries) {
    std::vector<std::string> out;
    for (const auto& e : entries) out.push_back(e.key);
    std::sort(out.begin(), out.end());
    return out;
  }

  std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  }

  TempDir dir_;
  DiskStore store_{dir_.path()};
  std::vector<std::string> keys_;
};

TEST_F(CacheMaintenanceTest, ListShowsMetadataMostRecentFirst) {
  auto entries = list_entries(store_);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].key, keys_[2]);  // added last
  EXPECT_EQ(entries[2].key, keys_[0]);
  EXPECT_EQ(entries[0].metadata["spec_name"], "alphabet");
  EXPECT_GT(entries[0].file_size, 0u);
  EXPECT_GE(entries[0].last_use, entries[0].created);

  store_.record_use(keys_[0]);  // alpha used now: moves to the front
  entries = list_entries(store_);
  EXPECT_EQ(entries[0].key, keys_[0]);
}

TEST_F(CacheMaintenanceTest, ResolveKeyByUniquePrefix) {
  EXPECT_EQ(resolve_key(store_, keys_[1]), keys_[1]);
  EXPECT_EQ(resolve_key(store_, keys_[1].substr(0, 12)), keys_[1]);
  std::string upper = keys_[1].substr(0, 10);
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(resolve_key(store_, upper), keys_[1]);
  EXPECT_THROW(resolve_key(store_, "abc"), KeyLookupError);                 // too short
  EXPECT_THROW(resolve_key(store_, "zzzzzz"), KeyLookupError);              // not hex
  EXPECT_THROW(resolve_key(store_, std::string(64, '0')), KeyLookupError);  // absent
}

TEST_F(CacheMaintenanceTest, ResolveKeyRejectsAmbiguousPrefix) {
  // Make two entries share a 4-digit prefix by searching for a colliding source variant.
  const std::string target = keys_[0].substr(0, 4);
  for (int i = 0;; ++i) {
    KeyInputs in = sample_inputs("collide" + std::to_string(i));
    if (compute_key(in).substr(0, 4) != target) continue;
    std::atomic<int> builds{0};
    KernelCache cache({dir_.path(), 0});
    cache.get_or_build(in, sample_description(), counting_builder(builds, "x"));
    break;
  }
  try {
    resolve_key(store_, target);
    FAIL() << "ambiguous prefix accepted";
  } catch (const KeyLookupError& e) {
    EXPECT_NE(std::string(e.what()).find("ambiguous"), std::string::npos);
  }
}

TEST_F(CacheMaintenanceTest, ExplainListsDifferingInputs) {
  auto diffs = explain(store_, keys_[1].substr(0, 8), keys_[2].substr(0, 8));
  std::vector<std::string> fields;
  for (const auto& d : diffs) fields.push_back(d.field);
  EXPECT_EQ(fields, (std::vector<std::string>{"canonical_spec.head_dim", "source"}));
  diffs = explain(store_, keys_[0], keys_[1]);
  fields.clear();
  for (const auto& d : diffs) fields.push_back(d.field);
  EXPECT_EQ(fields, (std::vector<std::string>{"source", "arch"}));
}

TEST_F(CacheMaintenanceTest, VerifyReportsBadEntries) {
  EXPECT_TRUE(verify(store_).empty());
  // Bit flip in beta.
  {
    std::error_code ec;
    std::string bytes = read_file(store_.entry_path(keys_[1]), ec);
    bytes[bytes.size() / 2] ^= 1;
    std::ofstream(store_.entry_path(keys_[1]), std::ios::binary) << bytes;
  }
  // A well-formed entry whose recorded inputs do not hash to its key.
  KeyInputs other = sample_inputs("other");
  const std::string fake_key(64, 'f');
  ASSERT_FALSE(store_.publish(make_entry(fake_key, other, sample_description(), BuildOutput{})));
  const auto bad = verify(store_);
  ASSERT_EQ(bad.size(), 2u);
  EXPECT_EQ(bad[0].key, keys_[1]);
  EXPECT_EQ(bad[0].reason, "checksum mismatch");
  EXPECT_EQ(bad[1].key, fake_key);
  EXPECT_NE(bad[1].reason.find("do not hash"), std::string::npos);
  // verify only reports: the files stay for inspection.
  EXPECT_TRUE(fs::exists(store_.entry_path(keys_[1])));
}

TEST_F(CacheMaintenanceTest, RemoveByGlob) {
  auto removed = remove_matching(store_, EntryPattern::parse("alpha*"));
  EXPECT_EQ(keys_of(removed), sorted({keys_[0], keys_[2]}));
  EXPECT_EQ(list_entries(store_).size(), 1u);
  EXPECT_TRUE(remove_matching(store_, EntryPattern::parse("gamma")).empty());
}

TEST_F(CacheMaintenanceTest, RemoveByArch) {
  auto removed = remove_matching(store_, EntryPattern::parse("sm_80"));
  EXPECT_EQ(keys_of(removed), sorted({keys_[1], keys_[2]}));
  EXPECT_TRUE(fs::exists(store_.entry_path(keys_[0])));
  EXPECT_FALSE(fs::exists(store_.usage_path(keys_[1])));
}

TEST_F(CacheMaintenanceTest, RemoveByAge) {
  const auto now = Clock::now();
  store_.record_use(keys_[0], now - std::chrono::hours(24 * 8));
  store_.record_use(keys_[1], now - std::chrono::hours(3));
  EXPECT_EQ(keys_of(remove_matching(store_, EntryPattern::parse("age>7d"), now)),
            std::vector<std::string>{keys_[0]});
  EXPECT_EQ(keys_of(remove_matching(store_, EntryPattern::parse("age<2h"), now)),
            std::vector<std::string>{keys_[2]});
  EXPECT_EQ(list_entries(store_).size(), 1u);
}

TEST_F(CacheMaintenanceTest, BadPatternsAreRejected) {
  for (const char* p : {"", "age>", "age>7", "age>7y", "age=7d", "age"})
    EXPECT_THROW(EntryPattern::parse(p), std::invalid_argument) << p;
}

TEST_F(CacheMaintenanceTest, GcToMaxSize) {
  const auto now = Clock::now();
  for (int i = 0; i < 3; ++i) store_.record_use(keys_[i], now - std::chrono::hours(3 - i));
  const std::uint64_t before = total_size(store_);
  const std::uint64_t one = fs::file_size(store_.entry_path(keys_[2]));
  auto result = evict_lru(store_, one, {});
  EXPECT_EQ(result.bytes_before, before);
  EXPECT_LE(result.bytes_after, one);
  EXPECT_EQ(keys_of(result.removed), sorted({keys_[0], keys_[1]}));
  EXPECT_TRUE(fs::exists(store_.entry_path(keys_[2])));
  EXPECT_TRUE(evict_lru(store_, one, {}).removed.empty());
}

TEST_F(CacheMaintenanceTest, GcRemovesAbandonedTempFilesOnly) {
  const fs::path temp = store_.base() / "entries" / ".tmp.dead.entry.1.0";
  std::ofstream(temp) << "partial";
  const std::time_t old = std::time(nullptr) - 3600;
  timespec times[2] = {{old, 0}, {old, 0}};
  ::utimensat(AT_FDCWD, temp.c_str(), times, 0);
  const fs::path fresh = store_.base() / "entries" / ".tmp.fresh.entry.1.1";
  std::ofstream(fresh) << "partial";
  auto result = evict_lru(store_, 1ull << 40, {});
  EXPECT_EQ(result.temp_files_removed, 1);
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_TRUE(fs::exists(fresh));
  EXPECT_EQ(list_entries(store_).size(), 3u);
}

TEST_F(CacheMaintenanceTest, ClearRemovesEverything) {
  std::error_code ec;
  ASSERT_TRUE(store_.quarantine(keys_[0], ec));
  EXPECT_EQ(clear(store_), 2u);
  EXPECT_TRUE(list_entries(store_).empty());
  for (const char* sub : {"entries", "usage", "locks", "quarantine"})
    EXPECT_TRUE(files_in(store_.base() / sub).empty()) << sub;
  EXPECT_EQ(clear(store_), 0u);
}

}  // namespace
}  // namespace ttt::cache
