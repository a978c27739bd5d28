// test_concurrency.cpp: exactly one build when 8 threads or 8 processes want the same key at
// once, and a builder SIGKILLed while holding the key lock blocks nobody afterwards.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include "cache/fs.hpp"
#include "cache/kernel_cache.hpp"
#include "cache_test_util.hpp"

namespace ttt::cache {
namespace {

using namespace test_util;
using namespace std::chrono_literals;

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int count_lines(const std::filesystem::path& p) {
  std::ifstream in(p);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

pid_t spawn_worker(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::string exe = TTTC_CACHE_WORKER;
  argv.push_back(exe.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execv(exe.c_str(), argv.data());
    std::_Exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(CacheConcurrency, EightThreadsOneBuild) {
  TempDir dir;
  KernelCache cache({dir.path(), 0});
  std::atomic<int> builds{0};
  std::atomic<int> ready{0};
  std::vector<std::shared_ptr<const Entry>> results(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      ++ready;
      while (ready.load() < 8) std::this_thread::yield();  // start together
      results[i] = cache
                       .get_or_build(sample_inputs(), sample_description(),
                                     [&] {
                                       ++builds;
                                       std::this_thread::sleep_for(200ms);
                                       BuildOutput out;
                                       out.binary = "built-by-thread-" + std::to_string(i);
                                       return out;
                                     })
                       .entry;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(builds.load(), 1);
  for (const auto& r : results) {
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->binary, results[0]->binary);
  }
  EXPECT_EQ(files_in(dir.path() / "v1" / "entries").size(), 1u);
}

TEST(CacheConcurrency, WaitersShareABuildFailure) {
  TempDir dir;
  KernelCache cache({dir.path(), 0});
  std::atomic<int> builds{0};
  std::atomic<int> ready{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      ++ready;
      while (ready.load() < 4) std::this_thread::yield();
      try {
        cache.get_or_build(sample_inputs(), sample_description(), [&]() -> BuildOutput {
          ++builds;
          std::this_thread::sleep_for(200ms);
          throw std::runtime_error("compile error");
        });
      } catch (const std::runtime_error&) {
        ++failures;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 4);
  EXPECT_LE(builds.load(), 2);  // one, unless a thread arrived after the failure was reported
}

TEST(CacheConcurrency, EightProcessesOneBuild) {
  TempDir dir;
  const auto count_file = dir / "builds.log";
  std::vector<pid_t> pids;
  for (int i = 0; i < 8; ++i)
    pids.push_back(spawn_worker({(dir / "cache").string(), count_file.string(),
                                 (dir / ("out" + std::to_string(i))).string(), "build"}));
  for (pid_t pid : pids) EXPECT_EQ(wait_exit(pid), 0);

  EXPECT_EQ(count_lines(count_file), 1) << slurp(count_file);
  std::set<std::string> binaries;
  int built = 0;
  for (int i = 0; i < 8; ++i) {
    std::istringstream out(slurp(dir / ("out" + std::to_string(i))));
    std::string origin, binary;
    out >> origin >> binary;
    EXPECT_FALSE(binary.empty());
    binaries.insert(binary);
    built += origin == "built";
  }
  EXPECT_EQ(built, 1);
  EXPECT_EQ(binaries.size(), 1u) << "processes loaded different bytes";
  EXPECT_EQ(files_in(dir / "cache" / "v1" / "entries").size(), 1u);
}

TEST(CacheConcurrency, KilledBuilderLeavesNoEntryAndNoBlockingLock) {
  TempDir dir;
  const auto cache_dir = dir / "cache";
  const auto count_file = dir / "builds.log";
  pid_t pid =
      spawn_worker({cache_dir.string(), count_file.string(), (dir / "out").string(), "hang"});
  // Wait until the worker is inside its builder, i.e. holding the key's lock.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (count_lines(count_file) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  ASSERT_EQ(count_lines(count_file), 1) << "worker never started building";
  const std::string key = compute_key(sample_inputs());
  KernelCache cache({cache_dir, 0});
  {
    std::error_code ec;
    EXPECT_FALSE(cache.store().lock(key, /*wait=*/false, ec)) << "worker should hold the lock";
  }
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  EXPECT_EQ(wait_exit(pid), 128 + SIGKILL);

  EXPECT_TRUE(files_in(cache_dir / "v1" / "entries").empty());
  std::atomic<int> builds{0};
  auto future = std::async(std::launch::async, [&] {
    return cache.get_or_build(sample_inputs(), sample_description(),
                              counting_builder(builds, "after-crash"));
  });
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready) << "get_or_build blocked";
  auto r = future.get();
  EXPECT_EQ(r.origin, Origin::built);
  EXPECT_EQ(r.entry->binary, "after-crash");
  EXPECT_EQ(builds.load(), 1);
  EXPECT_EQ(files_in(cache_dir / "v1" / "entries").size(), 1u);
}

}  // namespace
}  // namespace ttt::cache
