// test_trust.cpp: the cache trusts no one else's files (issue 11, section 1). A directory or
// entry that another user owns or that group/others may write is not used, symbolic links inside
// the cache are never followed, and the user gets exactly one warning that says why.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>

#include "cache/kernel_cache.hpp"
#include "cache/maintenance.hpp"
#include "cache_test_util.hpp"

namespace ttt::cache {
namespace {

using namespace test_util;
namespace fs = std::filesystem;

// A cache at `dir` holding one entry for sample_inputs() whose binary is "planted".
std::string make_entry(const fs::path& dir) {
  KernelCache writer({dir, 0});
  std::atomic<int> builds{0};
  return writer
      .get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "planted"))
      .entry->key;
}

// Asks a fresh cache at `dir` for sample_inputs(); "" when it did not use the disk (the entry was
// rebuilt, nothing was written) and gave one warning containing `phrase`, else what went wrong.
std::string refused_scenario(const fs::path& dir, const std::string& phrase) {
  WarningCapture warnings;
  KernelCache cache({dir, 0});
  std::atomic<int> builds{0};
  for (int i = 0; i < 2; ++i) {
    auto r = cache.get_or_build(sample_inputs(), sample_description(),
                                counting_builder(builds, "fresh"));
    if (r.entry->binary != "fresh") return "the planted entry was loaded";
  }
  cache.get_or_build(sample_inputs("other"), sample_description(),
                     counting_builder(builds, "fresh"));
  if (builds.load() != 2) return "expected 2 builds, got " + std::to_string(builds.load());
  if (!cache.memory_only() || !cache.untrusted()) return "cache did not stop using the disk";
  const auto messages = warnings.messages();
  if (messages.size() != 1) return "expected 1 warning, got " + std::to_string(messages.size());
  if (messages[0].find(phrase) == std::string::npos ||
      messages[0].find("cannot create") != std::string::npos ||
      messages[0].find("memory") == std::string::npos)
    return "warning does not say why: " + messages[0];
  return "";
}

// Runs `body` in a forked child as "nobody"; "SKIP" when privileges cannot be dropped.
std::string as_nobody(const std::function<std::string()>& body) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const passwd* nobody = ::getpwnam("nobody");
    std::string result = "SKIP";
    if (nobody && ::setgroups(0, nullptr) == 0 && ::setgid(nobody->pw_gid) == 0 &&
        ::setuid(nobody->pw_uid) == 0)
      result = body();
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
  return out;
}

void chown_tree(const fs::path& root, uid_t uid, gid_t gid) {
  ASSERT_EQ(::lchown(root.c_str(), uid, gid), 0);
  for (auto& e : fs::recursive_directory_iterator(root))
    ASSERT_EQ(::lchown(e.path().c_str(), uid, gid), 0);
}

TEST(CacheTrust, WorldWritableRootIsRefused) {
  TempDir tmp;
  const fs::path dir = tmp / "cache";
  make_entry(dir);
  ::chmod(dir.c_str(), 0777);
  EXPECT_EQ(refused_scenario(dir, "writable by group or others"), "");
}

TEST(CacheTrust, GroupWritableLayoutDirectoryIsRefused) {
  TempDir tmp;
  const fs::path dir = tmp / "cache";
  make_entry(dir);
  ::chmod((dir / "v1" / "entries").c_str(), 0770);
  EXPECT_EQ(refused_scenario(dir, "entries is writable by group or others"), "");
}

TEST(CacheTrust, SymlinkedEntriesDirectoryIsNeitherReadNorWritten) {
  // Before: a symbolic link at v1/entries was followed for writes.
  TempDir tmp;
  const fs::path dir = tmp / "cache";
  make_entry(dir);
  fs::rename(dir / "v1" / "entries", tmp / "elsewhere");
  fs::create_directory_symlink(tmp / "elsewhere", dir / "v1" / "entries");
  const auto before = files_in(tmp / "elsewhere");
  EXPECT_EQ(refused_scenario(dir, "symbolic link"), "");
  EXPECT_EQ(files_in(tmp / "elsewhere"), before);
}

TEST(CacheTrust, SymlinkedRootIsFollowedWhenItsTargetIsTrusted) {
  // ~/.cache is often a link to another disk: the root itself may be a link.
  TempDir tmp;
  make_entry(tmp / "real");
  fs::create_directory_symlink(tmp / "real", tmp / "link");
  WarningCapture warnings;
  KernelCache cache({tmp / "link", 0});
  std::atomic<int> builds{0};
  auto r = cache.get_or_build(sample_inputs(), sample_description(), counting_builder(builds, "x"));
  EXPECT_EQ(r.origin, Origin::disk);
  EXPECT_TRUE(warnings.messages().empty());
}

TEST(CacheTrust, SymlinkedOrWritableEntryIsNotLoadedAndIsReplaced) {
  for (const bool link : {true, false}) {
    TempDir tmp;
    const fs::path dir = tmp / "cache";
    const std::string key = make_entry(dir);
    const fs::path entry = DiskStore(dir).entry_path(key);
    if (link) {
      fs::rename(entry, tmp / "target.entry");
      fs::create_symlink(tmp / "target.entry", entry);
    } else {
      ::chmod(entry.c_str(), 0666);
    }
    EXPECT_EQ(DiskStore(dir).load(key).status, DiskStore::LoadResult::Status::untrusted);
    const auto bad = verify(DiskStore(dir));
    ASSERT_EQ(bad.size(), 1u);
    EXPECT_NE(bad[0].reason.find(link ? "symbolic link" : "writable"), std::string::npos)
        << bad[0].reason;

    WarningCapture warnings;
    KernelCache cache({dir, 0});
    std::atomic<int> builds{0};
    auto r = cache.get_or_build(sample_inputs(), sample_description(),
                                counting_builder(builds, "fresh"));
    EXPECT_EQ(r.origin, Origin::built);
    ASSERT_EQ(warnings.messages().size(), 1u);
    EXPECT_NE(warnings.messages()[0].find("not using cache entry"), std::string::npos);
    // The rebuilt entry replaced the link or the file; a link's target was not touched.
    EXPECT_FALSE(fs::is_symlink(entry));
    EXPECT_EQ(DiskStore(dir).load(key).status, DiskStore::LoadResult::Status::ok);
    if (link) {
      EXPECT_EQ(DiskStore(dir).load(key).entry.binary, "fresh");
    }
  }
}

TEST(CacheTrust, SymlinkedLockFileIsNotFollowed) {
  TempDir tmp;
  const fs::path dir = tmp / "cache";
  ASSERT_FALSE(DiskStore(dir).ensure_layout());
  const std::string key = compute_key(sample_inputs());
  fs::create_symlink(tmp / "victim", DiskStore(dir).lock_path(key));
  std::error_code ec;
  EXPECT_FALSE(DiskStore(dir).lock(key, false, ec));
  EXPECT_FALSE(fs::exists(tmp / "victim"));  // O_CREAT through the link would have created it
}

TEST(CacheTrust, RootRefusesADirectoryOwnedByAnotherUser) {
  // The reported attack: root compiling into a world-writable directory owned by another user
  // loaded a planted cubin as a cache hit.
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give files to another user";
  TempDir tmp;
  const fs::path dir = tmp / "cache";
  make_entry(dir);
  chown_tree(dir, 65534, 65534);
  EXPECT_EQ(refused_scenario(dir, "is owned by uid 65534"), "");
  ::chmod(dir.c_str(), 0777);
  EXPECT_EQ(refused_scenario(dir, "is owned by uid 65534"), "");
  // verify reports the planted entries instead of calling them fine.
  const auto bad = verify(DiskStore(dir));
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_NE(bad[0].reason.find("owned by uid 65534"), std::string::npos) << bad[0].reason;
}

TEST(CacheTrust, RootOwnedDirectoryGivesOneCorrectlyWordedWarning) {
  // Before: two warnings, the first saying "cannot create".
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to own the directory";
  TempDir tmp;
  ::chmod(tmp.path().c_str(), 0755);
  const fs::path dir = tmp / "cache";
  fs::create_directory(dir);
  ::chmod(dir.c_str(), 0755);
  const std::string result = as_nobody([&] { return refused_scenario(dir, "is owned by uid 0"); });
  if (result == "SKIP") GTEST_SKIP() << "cannot drop privileges";
  EXPECT_EQ(result, "");
}

}  // namespace
}  // namespace ttt::cache
