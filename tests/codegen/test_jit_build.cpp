// test_jit_build.cpp: jit::build without a GPU: concurrent calls for one configuration compile
// each kernel once, later calls hit the cache with the same keys, and whatever changes the
// binary (schedule, arch, spec) changes the key while the spec's name does not.
#include "cache/kernel_cache.hpp"
#include "compiler/backend.hpp"
#include "runtime/jit.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <unistd.h>

namespace ttt {
namespace {

class JitBuild : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // The process-wide cache reads TTT_CACHE_DIR once, at its first use.
    dir_ = std::filesystem::temp_directory_path() / ("tttc-jit-build-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    setenv("TTT_CACHE_DIR", dir_.c_str(), 1);
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  static inline std::filesystem::path dir_;
};

Spec small_spec() {
  Spec s;
  s.name = "jit-build";
  s.model = InnerModel::linear;
  s.depth = 1;
  s.head_dim = 16;
  s.mini_batch = 8;
  return s;
}

// The back-end seam: CUDA archs go to NVRTC, whose version and options key the cache; an arch no
// back end targets is refused by name.
TEST(Backend, ArchsChooseTheirCompiler) {
  const backend::Backend& b = backend::backend_for("sm_90a");
  EXPECT_STREQ(b.name(), "nvrtc");
  EXPECT_FALSE(b.version().empty());
  const auto options = b.key_options("sm_90a");
  EXPECT_NE(std::find(options.begin(), options.end(), "--gpu-architecture=sm_90a"), options.end());
  try {
    backend::backend_for("gfx942");
    ADD_FAILURE() << "gfx942 has no back end";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'gfx942'"), std::string::npos);
  }
}

TEST_F(JitBuild, ConcurrentBuildsCompileOncePerKernel) {
  const jit::KernelConfig config{.spec = small_spec(), .arch = "sm_80"};
  std::vector<std::future<jit::Build>> builds;
  for (int i = 0; i < 8; ++i)
    builds.push_back(std::async(std::launch::async, [&] { return jit::build(config); }));
  int misses = 0;
  std::set<std::string> keys;
  for (auto& f : builds) {
    const jit::Build b = f.get();
    for (const auto* k : {&b.forward, &b.backward}) {
      ASSERT_TRUE(k->has_value());
      misses += (*k)->cache == "miss";
      keys.insert((*k)->key);
    }
  }
  EXPECT_EQ(misses, 2);
  EXPECT_EQ(keys.size(), 2u);
  EXPECT_EQ(cache::KernelCache::process_cache().stats().builds, 2u);
}

TEST_F(JitBuild, KeysFollowWhatChangesTheBinary) {
  const jit::KernelConfig base{.spec = small_spec(), .arch = "sm_80"};
  const std::string key = jit::build(base).forward->key;
  jit::KernelConfig renamed = base;
  renamed.spec.name = "another-name";
  EXPECT_EQ(jit::build(renamed).forward->key, key);
  jit::KernelConfig other_arch = base;
  other_arch.arch = "sm_90a";
  EXPECT_NE(jit::build(other_arch).forward->key, key);
  jit::KernelConfig other_schedule = base;
  other_schedule.schedule = jit::build(base).schedule;
  other_schedule.schedule->threads = 512;
  EXPECT_NE(jit::build(other_schedule).forward->key, key);
  jit::KernelConfig other_spec = base;
  other_spec.spec.ln_eps = 1e-5;
  EXPECT_NE(jit::build(other_spec).forward->key, key);
}

TEST_F(JitBuild, InvalidSchedulesAndSpecsAreRejectedWithReasons) {
  jit::KernelConfig c{.spec = small_spec(), .arch = "sm_80"};
  c.schedule = jit::build(c).schedule;
  c.schedule->cluster = 2;
  try {
    jit::build(c);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("cluster = 2"), std::string::npos) << e.what();
  }
  jit::KernelConfig bad_spec{.spec = small_spec(), .arch = "sm_80"};
  bad_spec.spec.head_dim = 24;
  EXPECT_THROW(jit::build(bad_spec), SpecError);
}

}  // namespace
}  // namespace ttt
