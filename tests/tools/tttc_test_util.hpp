// tttc_test_util.hpp: running the built tttc binary from tests, each test with its own cache.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace {

namespace fs = std::filesystem;

struct Result {
  int exit_code;
  std::string out;
};

// Where the tttc binary and the source tree are: the build's paths, unless TTTC_TEST_BINARY and
// TTTC_TEST_SOURCE_DIR point elsewhere (a copy of the build run on another machine).
inline std::string test_path(const char* env, const std::string& built) {
  const char* v = std::getenv(env);
  return v && *v ? v : built;
}

// The shell command that runs tttc with `args` under the given cache directory; `env` (e.g.
// "env TTTC_CACHE_DISABLE=1") goes before the binary.
std::string tttc_command(const std::string& args, const fs::path& cache,
                         const std::string& env = "") {
  return fmt::format("cd {} && TTTC_CACHE_DIR={} {} {} {}",
                     test_path("TTTC_TEST_SOURCE_DIR", TTTC_SOURCE_DIR), cache.string(), env,
                     test_path("TTTC_TEST_BINARY", std::string(TTTC_BINARY_DIR) + "/tools/tttc"),
                     args);
}

// Runs tttc with `args` (stderr merged into stdout) under the given cache directory.
Result tttc(const std::string& args, const fs::path& cache, const std::string& env = "") {
  const std::string cmd = tttc_command(args, cache, env) + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Each test gets its own empty cache directory (also its scratch directory for files).
class TttcCli : public ::testing::Test {
 protected:
  void SetUp() override {
    cache_ = fs::temp_directory_path() /
             fmt::format("tttc-cli-test-{}-{}", getpid(),
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(cache_);
  }
  void TearDown() override { fs::remove_all(cache_); }
  fs::path cache_;
};

}  // namespace
