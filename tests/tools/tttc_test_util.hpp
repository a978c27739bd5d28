// tttc_test_util.hpp: running the built tttc binary from tests, each test with its own cache.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

namespace {

namespace fs = std::filesystem;

struct Result {
  int exit_code;
  std::string out;
};

// Runs tttc with `args` (stderr merged into stdout) under the given cache directory.
Result tttc(const std::string& args, const fs::path& cache) {
  const std::string cmd = fmt::format("cd {} && TTT_CACHE_DIR={} {}/tools/tttc {} 2>&1", TTTC_SOURCE_DIR,
                                      cache.string(), TTTC_BINARY_DIR, args);
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
    cache_ = fs::temp_directory_path() / fmt::format("tttc-cli-test-{}-{}", getpid(),
                                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(cache_);
  }
  void TearDown() override { fs::remove_all(cache_); }
  fs::path cache_;
};

}  // namespace
