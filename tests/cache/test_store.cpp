// test_store.cpp: store/load round trip through memory and disk, directory layout and modes,
// atomic publish leftovers, and the environment-driven configuration.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "cache/config.hpp"
#include "cache/fs.hpp"
#include "cache/kernel_cache.hpp"
#include "cache_test_util.hpp"

namespace ttt::cache {
namespace {

using namespace test_util;

TEST(CacheStore, RoundTripMemoryThenDisk) {
  TempDir dir;
  WarningCapture warnings;
  std::atomic<int> builds{0};
  const KeyInputs inputs = sample_inputs();
  const std::string binary(
      "\x7f"
      "ELF\0payload\xff",
      13);
  {
    KernelCache cache({dir.path(), 0});
    auto first = cache.get_or_build(inputs, sample_description(), counting_builder(builds, binary));
    EXPECT_EQ(first.origin, Origin::built);
    EXPECT_EQ(first.entry->binary, binary);
    auto second = cache.get_or_build(inputs, sample_description(), counting_builder(builds, "x"));
    EXPECT_EQ(second.origin, Origin::memory);
    EXPECT_EQ(second.entry.get(), first.entry.get());
    EXPECT_EQ(cache.stats().builds, 1u);
    EXPECT_EQ(cache.stats().memory_hits, 1u);
  }
  KernelCache fresh({dir.path(), 0});
  auto loaded = fresh.get_or_build(inputs, sample_description(), counting_builder(builds, "x"));
  EXPECT_EQ(loaded.origin, Origin::disk);
  EXPECT_EQ(loaded.entry->binary, binary);
  EXPECT_EQ(builds.load(), 1);
  EXPECT_TRUE(warnings.messages().empty());

  const auto& meta = loaded.entry->metadata;
  EXPECT_EQ(meta["key"], compute_key(inputs));
  EXPECT_EQ(meta["spec_name"], "ttt_mlp_test");
  EXPECT_EQ(meta["kernel"], "forward");
  EXPECT_EQ(meta["arch"], "sm_90a");
  EXPECT_EQ(meta["binary_kind"], "cubin");
  EXPECT_EQ(meta["registers"], 96);
  EXPECT_EQ(meta["shared_bytes"], 49152);
  EXPECT_EQ(meta["spills"], 0);
  EXPECT_EQ(meta["compile_ms"], 12.5);
  EXPECT_EQ(meta["source"], inputs.source);
  EXPECT_EQ(meta["key_inputs"], key_inputs_json(inputs));
  EXPECT_EQ(meta["details"]["note"], "test");
  EXPECT_TRUE(meta["created"].is_string());
}

// The JIT asks for kernels on every launch: a memory hit (key hash included) must be cheap.
TEST(CacheStore, MemoryHitIsMicroseconds) {
  TempDir dir;
  KernelCache cache({dir.path(), 0});
  std::atomic<int> builds{0};
  const KeyInputs inputs = sample_inputs(std::string(16 << 10, 's'));  // a 16 KiB source
  cache.get_or_build(inputs, sample_description(), counting_builder(builds, "bin"));
  constexpr int kHits = 2000;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kHits; ++i)
    ASSERT_EQ(
        cache.get_or_build(inputs, sample_description(), counting_builder(builds, "x")).origin,
        Origin::memory);
  const auto per_hit = (std::chrono::steady_clock::now() - start) / kHits;
  EXPECT_LT(per_hit, std::chrono::microseconds(200));  // typically ~10-20 us, mostly SHA-256
  EXPECT_EQ(builds.load(), 1);
}

TEST(CacheStore, FindNeverBuilds) {
  TempDir dir;
  KernelCache cache({dir.path(), 0});
  const std::string key = compute_key(sample_inputs());
  EXPECT_EQ(cache.find(key), nullptr);
  EXPECT_EQ(cache.find("not-a-key"), nullptr);
  std::atomic<int> builds{0};
  cache.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "bin"));
  KernelCache fresh({dir.path(), 0});
  auto found = fresh.find(key);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->binary, "bin");
}

TEST(CacheStore, LayoutIsPrivateAndLeavesNoTempFiles) {
  TempDir dir;
  const auto root = dir / "nested" / "cache";
  KernelCache cache({root, 0});
  std::atomic<int> builds{0};
  cache.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "bin"));
  for (const auto& d : {root, root / "v1", root / "v1" / "entries", dir / "nested"}) {
    struct stat st {};
    ASSERT_EQ(::stat(d.c_str(), &st), 0) << d;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << d;
  }
  const auto entries = files_in(root / "v1" / "entries");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].filename().string(), compute_key(sample_inputs()) + ".entry");
  EXPECT_TRUE(cache.store().last_use(compute_key(sample_inputs())).has_value());
  for (const auto& f : files_in(root / "v1" / "usage"))
    EXPECT_FALSE(f.filename().string().starts_with(".tmp")) << f;
}

TEST(CacheStore, BuilderExceptionReachesCallerAndNextCallRetries) {
  TempDir dir;
  KernelCache cache({dir.path(), 0});
  EXPECT_THROW(cache.get_or_build(sample_inputs(), sample_description(),
                                  []() -> BuildOutput { throw std::runtime_error("nvrtc"); }),
               std::runtime_error);
  std::atomic<int> builds{0};
  auto r =
      cache.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "ok"));
  EXPECT_EQ(r.origin, Origin::built);
  EXPECT_EQ(builds.load(), 1);
}

TEST(CacheStore, RejectsUnknownBinaryKind) {
  TempDir dir;
  KernelCache cache({dir.path(), 0});
  EXPECT_THROW(cache.get_or_build(sample_inputs(), sample_description(),
                                  [] {
                                    BuildOutput out;
                                    out.binary_kind = "fatbin";
                                    return out;
                                  }),
               std::invalid_argument);
}

// Restores an environment variable at scope exit.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    value ? ::setenv(name, value, 1) : ::unsetenv(name);
  }
  ~ScopedEnv() { old_ ? ::setenv(name_, old_->c_str(), 1) : ::unsetenv(name_); }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(CacheConfig, CacheDirPrecedence) {
  ScopedEnv home("HOME", "/home/someone");
  ScopedEnv tttc("TTTC_CACHE_DIR", nullptr);
  {
    ScopedEnv a("TTT_CACHE_DIR", "/explicit/dir");
    ScopedEnv b("XDG_CACHE_HOME", "/xdg");
    EXPECT_EQ(default_cache_dir(), "/explicit/dir");
  }
  {
    ScopedEnv a("TTT_CACHE_DIR", nullptr);
    ScopedEnv b("XDG_CACHE_HOME", "/xdg");
    EXPECT_EQ(default_cache_dir(), "/xdg/tttc");
  }
  ScopedEnv a("TTT_CACHE_DIR", nullptr);
  ScopedEnv b("XDG_CACHE_HOME", nullptr);
  EXPECT_EQ(default_cache_dir(), "/home/someone/.cache/tttc");
}

TEST(CacheConfig, TttcNamesWinAndOldNamesAreAliases) {
  ScopedEnv c("TTTC_CACHE_DIR", nullptr);
  ScopedEnv m("TTTC_CACHE_MAX_SIZE", nullptr);
  {
    ScopedEnv a("TTT_CACHE_DIR", "/old/name");
    EXPECT_EQ(default_cache_dir(), "/old/name");
    ScopedEnv b("TTTC_CACHE_DIR", "/new/name");
    EXPECT_EQ(default_cache_dir(), "/new/name");
  }
  ScopedEnv a("TTT_CACHE_MAX_SIZE", "1G");
  EXPECT_EQ(default_max_size(), 1ull << 30);
  ScopedEnv b("TTTC_CACHE_MAX_SIZE", "3G");
  EXPECT_EQ(default_max_size(), 3ull << 30);
}

TEST(CacheConfig, DisableAndReadOnlyDirFromEnvironment) {
  {
    ScopedEnv d("TTTC_CACHE_DISABLE", "1");
    ScopedEnv r("TTTC_CACHE_READONLY_DIR", "/shared/tttc");
    const CacheOptions o = CacheOptions::from_env();
    EXPECT_TRUE(o.disabled);
    EXPECT_EQ(o.readonly_dir, "/shared/tttc");
  }
  for (const char* off : {"0", ""}) {
    ScopedEnv d("TTTC_CACHE_DISABLE", off);
    EXPECT_FALSE(cache_disabled_by_env()) << off;
  }
}

TEST(CacheConfig, ParseSize) {
  EXPECT_EQ(parse_size("123"), 123u);
  EXPECT_EQ(parse_size("123B"), 123u);
  EXPECT_EQ(parse_size("500M"), 500ull << 20);
  EXPECT_EQ(parse_size("500MiB"), 500ull << 20);
  EXPECT_EQ(parse_size("2G"), 2ull << 30);
  EXPECT_EQ(parse_size("2g"), 2ull << 30);
  EXPECT_EQ(parse_size(" 1.5K "), 1536u);
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_FALSE(parse_size(""));
  EXPECT_FALSE(parse_size("G"));
  EXPECT_FALSE(parse_size("12X"));
  EXPECT_FALSE(parse_size("-1G"));
  EXPECT_FALSE(parse_size("1.2.3M"));
}

TEST(CacheConfig, MaxSizeFromEnvironment) {
  ScopedEnv tttc("TTTC_CACHE_MAX_SIZE", nullptr);
  {
    ScopedEnv e("TTT_CACHE_MAX_SIZE", "2G");
    EXPECT_EQ(default_max_size(), 2ull << 30);
  }
  {
    ScopedEnv e("TTT_CACHE_MAX_SIZE", nullptr);
    EXPECT_EQ(default_max_size(), kDefaultMaxSize);
  }
  WarningCapture warnings;
  ScopedEnv e("TTT_CACHE_MAX_SIZE", "lots");
  EXPECT_EQ(default_max_size(), kDefaultMaxSize);
  EXPECT_EQ(default_max_size(), kDefaultMaxSize);
  // One warning per process: none if an earlier test (or --gtest_repeat) already triggered it.
  const auto messages = warnings.messages();
  EXPECT_LE(messages.size(), 1u);
  for (const auto& m : messages) EXPECT_NE(m.find("TTT_CACHE_MAX_SIZE='lots'"), std::string::npos);
}

TEST(CacheConfig, Durations) {
  EXPECT_EQ(parse_duration("90s"), std::chrono::seconds(90));
  EXPECT_EQ(parse_duration("2h"), std::chrono::seconds(7200));
  EXPECT_EQ(parse_duration("7d"), std::chrono::seconds(7 * 86400));
  EXPECT_EQ(parse_duration("1w"), std::chrono::seconds(7 * 86400));
  EXPECT_FALSE(parse_duration("7"));
  EXPECT_FALSE(parse_duration("d"));
  EXPECT_FALSE(parse_duration("7y"));
  EXPECT_FALSE(parse_duration("-7d"));
}

}  // namespace
}  // namespace ttt::cache
