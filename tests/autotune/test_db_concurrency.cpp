// test_db_concurrency.cpp: 8 processes writing the same tuning-database file at once lose no
// record and no candidate, and the file stays valid.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tune_test_util.hpp"

namespace ttt::autotune {
namespace {

using namespace test_util;

TEST(TuneDbConcurrency, EightWritersLoseNothing) {
  TempDir dir;
  constexpr int kWorkers = 8, kEach = 3;
  std::vector<pid_t> pids;
  for (int w = 0; w < kWorkers; ++w) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      const std::string index = std::to_string(w), n = std::to_string(kEach);
      ::execl(TTTC_TUNE_WORKER, TTTC_TUNE_WORKER, dir.path().c_str(), index.c_str(), n.c_str(),
              static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  const DbFile d = TuneDb(dir.path()).load(test_fingerprint());
  ASSERT_TRUE(d.usable()) << d.error;
  // kWorkers * kEach records of their own (forward, distinct buckets) plus the shared one.
  EXPECT_EQ(d.records.size(), size_t(kWorkers * kEach + 1));
  const Spec spec = example_spec("mlp2");
  const Record& shared = d.records.at(record_key(spec_signature(spec), Pass::backward, 1));
  EXPECT_EQ(shared.candidates.size(), size_t(kWorkers));
  // No temp file left behind.
  for (const auto& e : std::filesystem::directory_iterator(dir.path() / "tune"))
    EXPECT_NE(e.path().filename().string().rfind(".tmp.", 0), 0u) << e.path();
}

}  // namespace
}  // namespace ttt::autotune
