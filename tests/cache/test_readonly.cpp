// test_readonly.cpp: unusable cache directories (cannot be created, read-only, full) never stop
// work: kernels are kept in memory with exactly one warning, and existing entries still load.
// Root ignores permission bits, so as root the read-only case drops to "nobody" in a child.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>

#include "cache/kernel_cache.hpp"
#include "cache_test_util.hpp"

namespace ttt::cache {
namespace {

using namespace test_util;
namespace fs = std::filesystem;

// Builds three new kernels and re-requests one; "" if the cache behaved (one warning, memory
// hits), else what went wrong. Runs in-process or in a forked child.
std::string memory_only_scenario(KernelCache& cache, const WarningCapture& warnings) {
  std::atomic<int> builds{0};
  for (int i = 0; i < 3; ++i) {
    auto r = cache.get_or_build(sample_inputs("new" + std::to_string(i)), sample_description(),
                                counting_builder(builds, std::string(256 << 10, 'k')));
    if (r.origin != Origin::built) return "kernel " + std::to_string(i) + " was not built";
  }
  auto again = cache.get_or_build(sample_inputs("new0"), sample_description(),
                                  counting_builder(builds, "unused"));
  if (again.origin != Origin::memory) return "second request was not a memory hit";
  if (builds.load() != 3) return "expected 3 builds, got " + std::to_string(builds.load());
  if (!cache.memory_only()) return "cache did not switch to memory-only";
  const auto messages = warnings.messages();
  if (messages.size() != 1) return "expected 1 warning, got " + std::to_string(messages.size());
  if (messages[0].find(cache.store().root().string()) == std::string::npos ||
      messages[0].find("memory") == std::string::npos)
    return "warning does not name the directory and memory-only mode: " + messages[0];
  return "";
}

// Runs `body` in a forked child and returns the string it produced ("" = success).
std::string in_child(const std::function<std::string()>& body) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string result;
    try {
      result = body();
    } catch (const std::exception& e) {
      result = std::string("exception: ") + e.what();
    }
    if (::write(fds[1], result.data(), result.size()) < 0) std::_Exit(2);
    std::_Exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buffer[512];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) out.append(buffer, n);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "child failed: " + out;
  return out;
}

class CacheUncreatableDirTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CacheUncreatableDirTest, WorksFromMemoryWithOneWarning) {
  TempDir tmp;
  fs::path dir;
  if (GetParam() == "parent_is_a_file") {
    std::ofstream(tmp / "file") << "not a directory";
    dir = tmp / "file" / "cache";
  } else {
    dir = "/proc/tttc-cache-test/cache";  // procfs refuses mkdir, even for root
  }
  WarningCapture warnings;
  KernelCache cache({dir, 0});
  EXPECT_EQ(memory_only_scenario(cache, warnings), "");
}

INSTANTIATE_TEST_SUITE_P(Paths, CacheUncreatableDirTest,
                         ::testing::Values("parent_is_a_file", "under_proc"),
                         [](const auto& info) { return info.param; });

TEST(CacheReadOnly, EnvironmentPathThatCannotBeCreated) {
  TempDir tmp;
  std::ofstream(tmp / "file") << "x";
  const std::string dir = (tmp / "file" / "cache").string();
  ::setenv("TTT_CACHE_DIR", dir.c_str(), 1);
  CacheOptions options = CacheOptions::from_env();
  ::unsetenv("TTT_CACHE_DIR");
  EXPECT_EQ(options.dir, dir);
  WarningCapture warnings;
  KernelCache cache(options);
  EXPECT_EQ(memory_only_scenario(cache, warnings), "");
}

void make_world_readable(const fs::path& root) {
  ::chmod(root.c_str(), 0755);
  for (auto& e : fs::recursive_directory_iterator(root))
    ::chmod(e.path().c_str(), e.is_directory() ? 0755 : 0644);
}

void make_unwritable(const fs::path& root) {
  for (auto& e : fs::recursive_directory_iterator(root))
    if (e.is_directory()) ::chmod(e.path().c_str(), 0500);
  ::chmod(root.c_str(), 0500);
}

// An existing entry loads from a directory this process cannot write; new kernels are built and
// kept in memory with one warning.
std::string read_only_scenario(const fs::path& dir) {
  WarningCapture warnings;
  KernelCache cache({dir, 0});
  std::atomic<int> builds{0};
  auto existing =
      cache.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "new"));
  if (existing.origin != Origin::disk || existing.entry->binary != "stored-binary")
    return "existing entry did not load from the read-only directory";
  if (!warnings.messages().empty()) return "loading warned: " + warnings.messages()[0];
  return memory_only_scenario(cache, warnings);
}

TEST(CacheReadOnly, ExistingEntriesLoadAndNewOnesStayInMemory) {
  TempDir tmp;
  const fs::path dir = tmp / "cache";
  {
    KernelCache writer({dir, 0});
    std::atomic<int> builds{0};
    writer.get_or_build(sample_inputs(), sample_description(),
                        counting_builder(builds, "stored-binary"));
  }
  if (::geteuid() != 0) {
    make_unwritable(dir);
    EXPECT_EQ(read_only_scenario(dir), "");
    return;
  }
  // Root bypasses mode bits: run the scenario as "nobody" on a tree that nobody owns (the cache
  // trusts only its user's files) but may not write.
  make_world_readable(tmp.path());
  const passwd* nobody = ::getpwnam("nobody");
  const uid_t uid = nobody ? nobody->pw_uid : 65534;
  const gid_t gid = nobody ? nobody->pw_gid : 65534;
  if (::lchown(dir.c_str(), uid, gid) != 0) GTEST_SKIP() << "cannot chown";
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (::lchown(e.path().c_str(), uid, gid) != 0) GTEST_SKIP() << "cannot chown";
  make_unwritable(dir);
  std::string result = in_child([&]() -> std::string {
    if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) return "SKIP";
    if (::access(dir.c_str(), W_OK) == 0) return "SKIP";  // still writable: cannot simulate
    return read_only_scenario(dir);
  });
  if (result == "SKIP") GTEST_SKIP() << "cannot drop privileges to simulate a read-only directory";
  EXPECT_EQ(result, "");
}

// A full disk (simulated by a file size limit, which also binds root) fails the write midway:
// the temp file is removed, nothing is published, work continues from memory with one warning.
TEST(CacheReadOnly, FullDiskKeepsWorkingFromMemory) {
  TempDir tmp;
  const fs::path dir = tmp / "cache";
  std::string result = in_child([&]() -> std::string {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{64 << 10, 64 << 10};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return "setrlimit failed";
    WarningCapture warnings;
    KernelCache cache({dir, 0});
    std::string r = memory_only_scenario(cache, warnings);
    if (!r.empty()) return r;
    if (!files_in(dir / "v1" / "entries").empty()) return "a partial entry or temp file was left";
    return "";
  });
  EXPECT_EQ(result, "");
}

}  // namespace
}  // namespace ttt::cache
