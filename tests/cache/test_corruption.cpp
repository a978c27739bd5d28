// test_corruption.cpp: corrupt entries on disk (bit flips, truncation, wrong name, garbage) are
// detected, moved to quarantine/, rebuilt, warned about once by key, and never returned.
#include <gtest/gtest.h>

#include <fstream>

#include "cache/fs.hpp"
#include "cache/kernel_cache.hpp"
#include "cache_test_util.hpp"

namespace ttt::cache {
namespace {

using namespace test_util;

std::string read_all(const std::filesystem::path& p) {
  std::error_code ec;
  std::string s = read_file(p, ec);
  EXPECT_FALSE(ec) << p;
  return s;
}

void write_all(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

struct Damage {
  std::string name;
  std::function<std::string(const std::string&)> apply;
};

class CacheCorruptEntryTest : public ::testing::TestWithParam<Damage> {};

TEST_P(CacheCorruptEntryTest, IsQuarantinedRebuiltAndNeverReturned) {
  TempDir dir;
  const KeyInputs inputs = sample_inputs();
  const std::string key = compute_key(inputs);
  std::atomic<int> builds{0};
  {
    KernelCache cache({dir.path(), 0});
    cache.get_or_build(inputs, sample_description(), counting_builder(builds, "original-binary"));
  }
  const auto path = KernelCache({dir.path(), 0}).store().entry_path(key);
  write_all(path, GetParam().apply(read_all(path)));

  WarningCapture warnings;
  KernelCache cache({dir.path(), 0});
  auto r = cache.get_or_build(inputs, sample_description(), counting_builder(builds, "rebuilt"));
  EXPECT_EQ(r.origin, Origin::built);
  EXPECT_EQ(r.entry->binary, "rebuilt");
  EXPECT_EQ(builds.load(), 2);
  EXPECT_EQ(cache.stats().corrupt_entries, 1u);

  const auto messages = warnings.messages();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_NE(messages[0].find(key), std::string::npos) << messages[0];
  EXPECT_NE(messages[0].find("corrupt"), std::string::npos) << messages[0];

  const auto quarantined = files_in(cache.store().quarantine_dir());
  ASSERT_EQ(quarantined.size(), 1u);
  EXPECT_TRUE(quarantined[0].filename().string().starts_with(key));

  // The rebuilt entry replaced the bad one on disk.
  KernelCache fresh({dir.path(), 0});
  auto again = fresh.get_or_build(inputs, sample_description(), counting_builder(builds, "x"));
  EXPECT_EQ(again.origin, Origin::disk);
  EXPECT_EQ(again.entry->binary, "rebuilt");
}

std::string flip(const std::string& s, std::size_t pos) {
  std::string out = s;
  out[pos] = static_cast<char>(out[pos] ^ 0x10);
  return out;
}

INSTANTIATE_TEST_SUITE_P(
    Damages, CacheCorruptEntryTest,
    ::testing::Values(
        Damage{"bit_flip_in_binary", [](const std::string& s) { return flip(s, s.size() - 70); }},
        Damage{"bit_flip_in_metadata", [](const std::string& s) { return flip(s, 40); }},
        Damage{"bit_flip_in_checksum", [](const std::string& s) { return flip(s, s.size() - 1); }},
        Damage{"bad_magic", [](const std::string& s) { return flip(s, 0); }},
        Damage{"bad_length", [](const std::string& s) { return flip(s, 24); }},
        Damage{"truncated_half", [](const std::string& s) { return s.substr(0, s.size() / 2); }},
        Damage{"truncated_header", [](const std::string& s) { return s.substr(0, 10); }},
        Damage{"empty", [](const std::string&) { return std::string(); }},
        Damage{"garbage", [](const std::string& s) { return std::string(s.size(), 'Z'); }}),
    [](const auto& info) { return info.param.name; });

// A valid entry stored under another key's name (e.g. a bad copy) is rejected by the name check.
TEST(CacheCorruption, EntryUnderWrongNameIsRejected) {
  TempDir dir;
  std::atomic<int> builds{0};
  const KeyInputs a = sample_inputs("a"), b = sample_inputs("b");
  KernelCache writer({dir.path(), 0});
  writer.get_or_build(a, sample_description(), counting_builder(builds, "binary-a"));
  std::filesystem::copy_file(writer.store().entry_path(compute_key(a)),
                             writer.store().entry_path(compute_key(b)));

  WarningCapture warnings;
  KernelCache cache({dir.path(), 0});
  auto r = cache.get_or_build(b, sample_description(), counting_builder(builds, "binary-b"));
  EXPECT_EQ(r.entry->binary, "binary-b");
  EXPECT_EQ(r.origin, Origin::built);
  ASSERT_EQ(warnings.messages().size(), 1u);
  EXPECT_NE(warnings.messages()[0].find(compute_key(b)), std::string::npos);
  EXPECT_NE(warnings.messages()[0].find("does not match file name"), std::string::npos);
}

TEST(CacheCorruption, FindQuarantinesAndReturnsNothing) {
  TempDir dir;
  std::atomic<int> builds{0};
  const KeyInputs inputs = sample_inputs();
  KernelCache writer({dir.path(), 0});
  writer.get_or_build(inputs, sample_description(), counting_builder(builds, "bin"));
  const auto path = writer.store().entry_path(compute_key(inputs));
  write_all(path, flip(read_all(path), 50));

  WarningCapture warnings;
  KernelCache cache({dir.path(), 0});
  EXPECT_EQ(cache.find(compute_key(inputs)), nullptr);
  EXPECT_EQ(warnings.messages().size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(files_in(cache.store().quarantine_dir()).size(), 1u);
}

}  // namespace
}  // namespace ttt::cache
