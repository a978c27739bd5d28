// test_cli.cpp: `tttc cache ...` end to end through CLI11, in process: output of every
// subcommand, exit codes, and --help texts.
#include <gtest/gtest.h>

#include <fstream>

#include "cache/fs.hpp"
#include "cache/kernel_cache.hpp"
#include "cache_test_util.hpp"
#include "tools/cli_common.hpp"

namespace ttt::cache {
namespace {

using namespace test_util;

struct CliResult {
  int code = 0;
  std::string out;
  std::string message;  // CommandExit message
};

CliResult run_cli(const std::vector<std::string>& args) {
  CLI::App app("tttc");
  cli::register_cache_commands(app);
  std::vector<std::string> words = {"tttc"};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  CliResult result;
  ::testing::internal::CaptureStdout();
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    result.code = app.exit(e);
  } catch (const cli::CommandExit& e) {
    result.code = e.code;
    result.message = e.what();
  }
  std::cout.flush();
  result.out = ::testing::internal::GetCapturedStdout();
  return result;
}

class CacheCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("TTT_CACHE_DIR", dir_.path().c_str(), 1);
    a_ = add("ttt_linear", "sm_90a", "a");
    b_ = add("ttt_mlp", "sm_80", "b");
  }
  void TearDown() override { ::unsetenv("TTT_CACHE_DIR"); }

  std::string add(const std::string& name, const std::string& arch, const std::string& variant) {
    KeyInputs in = sample_inputs(variant);
    in.arch = arch;
    KernelCache cache({dir_.path(), 0});
    std::atomic<int> builds{0};
    return cache.get_or_build(in, sample_description(name), counting_builder(builds, "cubin"))
        .entry->key;
  }

  TempDir dir_;
  DiskStore store_{dir_.path()};
  std::string a_, b_;
};

TEST_F(CacheCliTest, LsTableAndJson) {
  auto r = run_cli({"cache", "ls"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("KEY"), std::string::npos);
  EXPECT_NE(r.out.find("LAST USE"), std::string::npos);
  EXPECT_NE(r.out.find(a_.substr(0, 12)), std::string::npos);
  EXPECT_NE(r.out.find("ttt_mlp"), std::string::npos);
  EXPECT_NE(r.out.find("2 entries"), std::string::npos);

  r = run_cli({"cache", "ls", "--json"});
  EXPECT_EQ(r.code, 0);
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["entries"].size(), 2u);
  EXPECT_EQ(j["dir"], dir_.path().string());
  EXPECT_EQ(j["entries"][0]["key"], b_);  // most recent first
  EXPECT_EQ(j["entries"][0]["spec_name"], "ttt_mlp");
  EXPECT_EQ(j["entries"][0]["registers"], 96);
}

TEST_F(CacheCliTest, DirOptionOverridesEnvironment) {
  TempDir other;
  auto r = run_cli({"cache", "--dir", other.path().string(), "ls"});
  EXPECT_NE(r.out.find("cache is empty"), std::string::npos) << r.out;
  r = run_cli({"cache", "ls", "--dir", other.path().string()});
  EXPECT_NE(r.out.find("cache is empty"), std::string::npos) << r.out;
}

TEST_F(CacheCliTest, ShowByPrefix) {
  auto r = run_cli({"cache", "show", a_.substr(0, 10)});
  EXPECT_EQ(r.code, 0) << r.message;
  EXPECT_NE(r.out.find(a_), std::string::npos);
  EXPECT_NE(r.out.find("ttt_linear"), std::string::npos);
  EXPECT_NE(r.out.find("nvrtc_version"), std::string::npos);
  EXPECT_EQ(r.out.find("__global__"), std::string::npos);

  r = run_cli({"cache", "show", a_, "--source"});
  EXPECT_NE(r.out.find("__global__"), std::string::npos);

  r = run_cli({"cache", "show", a_, "--json"});
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["key"], a_);
  EXPECT_FALSE(j.contains("source"));

  r = run_cli({"cache", "show", "0000000000"});
  EXPECT_EQ(r.code, cli::kUsage);
  EXPECT_NE(r.message.find("no cache entry"), std::string::npos);
}

TEST_F(CacheCliTest, ExplainPrintsFieldByField) {
  auto r = run_cli({"cache", "explain", a_.substr(0, 8), b_.substr(0, 8)});
  EXPECT_EQ(r.code, 0) << r.message;
  EXPECT_NE(r.out.find("differ in 2 key input(s)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  arch\n    A: sm_90a\n    B: sm_80\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  source\n"), std::string::npos) << r.out;
}

TEST_F(CacheCliTest, VerifyFailsWithBadKeys) {
  auto r = run_cli({"cache", "verify"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("all OK"), std::string::npos);

  std::error_code ec;
  std::string bytes = read_file(store_.entry_path(b_), ec);
  bytes.resize(bytes.size() - 5);
  std::ofstream(store_.entry_path(b_), std::ios::binary | std::ios::trunc) << bytes;
  r = run_cli({"cache", "verify"});
  EXPECT_EQ(r.code, cli::kCheckFailed);
  EXPECT_NE(r.out.find("BAD " + b_), std::string::npos);
  EXPECT_NE(r.message.find(b_), std::string::npos);
  EXPECT_EQ(r.message.find(a_), std::string::npos);

  r = run_cli({"cache", "ls"});
  EXPECT_NE(r.out.find("unreadable " + b_ + ": bad lengths"), std::string::npos) << r.out;
}

TEST_F(CacheCliTest, RmByPattern) {
  auto r = run_cli({"cache", "rm", "--match", "nothing*"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("nothing removed"), std::string::npos);

  r = run_cli({"cache", "rm", "--match", "sm_80"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find(b_.substr(0, 12)), std::string::npos);
  EXPECT_NE(r.out.find("removed 1 entry"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(store_.entry_path(b_)));
  EXPECT_TRUE(std::filesystem::exists(store_.entry_path(a_)));

  r = run_cli({"cache", "rm", "--match", "age<1h"});
  EXPECT_NE(r.out.find(a_.substr(0, 12)), std::string::npos);

  r = run_cli({"cache", "rm", "--match", "age>soon"});
  EXPECT_EQ(r.code, cli::kUsage);
  r = run_cli({"cache", "rm"});
  EXPECT_NE(r.code, 0);  // --match is required
}

TEST_F(CacheCliTest, GcAndClear) {
  auto r = run_cli({"cache", "gc", "--max-size", "1K"});
  EXPECT_EQ(r.code, 0) << r.message;
  EXPECT_NE(r.out.find("removed 2 entries"), std::string::npos) << r.out;
  r = run_cli({"cache", "gc", "--max-size", "lots"});
  EXPECT_EQ(r.code, cli::kUsage);

  add("again", "sm_90a", "c");
  r = run_cli({"cache", "clear"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("removed 1 entry"), std::string::npos);
  r = run_cli({"cache", "ls"});
  EXPECT_NE(r.out.find("cache is empty"), std::string::npos);
}

TEST_F(CacheCliTest, RmByKeyOrPrefixAndDryRun) {
  // Before: verify told the user to `rm` a key, and rm could not take one.
  auto r = run_cli({"cache", "rm", a_.substr(0, 8), "--dry-run"});
  EXPECT_EQ(r.code, 0) << r.message;
  EXPECT_NE(r.out.find("would remove 1 entry"), std::string::npos) << r.out;
  EXPECT_TRUE(std::filesystem::exists(store_.entry_path(a_)));
  r = run_cli({"cache", "rm", "--match", "*", "--dry-run"});
  EXPECT_NE(r.out.find("would remove 2 entries"), std::string::npos) << r.out;
  r = run_cli({"cache", "gc", "--max-size", "0", "--dry-run"});
  EXPECT_NE(r.out.find("would remove 2 entries"), std::string::npos) << r.out;
  EXPECT_EQ(store_.list().size(), 2u);
  r = run_cli({"cache", "rm", a_.substr(0, 8), "0000"});
  EXPECT_EQ(r.code, cli::kUsage);  // one key names nothing: nothing is removed
  EXPECT_TRUE(std::filesystem::exists(store_.entry_path(a_)));
  r = run_cli({"cache", "rm", a_, b_.substr(0, 6)});
  EXPECT_EQ(r.code, 0) << r.message;
  EXPECT_NE(r.out.find("removed 2 entries"), std::string::npos) << r.out;
  EXPECT_TRUE(store_.list().empty());
  EXPECT_EQ(run_cli({"cache", "rm", a_, "--match", "*"}).code, cli::kUsage);  // not both
}

TEST_F(CacheCliTest, StatsAndZero) {
  // SetUp built two entries (two misses); a new cache instance then finds one on disk.
  {
    KernelCache cache({dir_.path(), 0});
    std::atomic<int> builds{0};
    cache.get_or_build(sample_inputs("a"), sample_description(), counting_builder(builds, "x"));
  }
  auto r = run_cli({"cache", "stats", "--json"});
  ASSERT_EQ(r.code, 0) << r.message;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["entries"], 2);
  EXPECT_EQ(j["misses"], 2);
  EXPECT_EQ(j["hits"], 1);
  EXPECT_GT(j["total_bytes"].get<int>(), 0);
  r = run_cli({"cache", "stats"});
  EXPECT_NE(r.out.find("hits             1 (33.3%)"), std::string::npos) << r.out;
  EXPECT_EQ(run_cli({"cache", "stats", "--zero"}).code, 0);
  j = nlohmann::json::parse(run_cli({"cache", "stats", "--json"}).out);
  EXPECT_EQ(j["hits"], 0);
  EXPECT_EQ(j["misses"], 0);
}

TEST_F(CacheCliTest, JsonOfVerifyAndExplain) {
  auto r = run_cli({"cache", "verify", "--json"});
  ASSERT_EQ(r.code, 0);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["entries"], 2);
  r = run_cli({"cache", "explain", a_, b_, "--json"});
  ASSERT_EQ(r.code, 0) << r.message;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["a"], a_);
  bool arch = false;
  for (const auto& d : j["differences"]) arch |= d["field"] == "arch";
  EXPECT_TRUE(arch) << r.out;
  // Field names agree with `tttc compile --json`.
  j = nlohmann::json::parse(run_cli({"cache", "ls", "--json"}).out);
  EXPECT_TRUE(j["entries"][0].contains("spill_bytes")) << j.dump();
  EXPECT_FALSE(j["entries"][0].contains("spills"));
}

TEST_F(CacheCliTest, UntrustedDirectoryIsRefusedAndVerifyFails) {
  // Before: verify called entries in a world-writable directory fine (checksums catch
  // corruption, not forgery), and a symlinked v1/entries was followed.
  ::chmod(dir_.path().c_str(), 0777);
  auto r = run_cli({"cache", "verify"});
  EXPECT_EQ(r.code, cli::kCheckFailed);
  EXPECT_NE(r.message.find("writable by group or others"), std::string::npos) << r.message;
  for (const char* sub : {"ls", "clear"}) {
    r = run_cli({"cache", sub});
    EXPECT_EQ(r.code, cli::kUsage) << sub;
    EXPECT_NE(r.message.find("not using cache directory"), std::string::npos) << r.message;
  }
  ::chmod(dir_.path().c_str(), 0700);
  const std::filesystem::path entries = dir_.path() / "v1" / "entries";
  const std::filesystem::path elsewhere = dir_.path().string() + "-elsewhere";
  std::filesystem::rename(entries, elsewhere);
  std::filesystem::create_directory_symlink(elsewhere, entries);
  r = run_cli({"cache", "clear"});
  EXPECT_EQ(r.code, cli::kUsage);
  EXPECT_NE(r.message.find("symbolic link"), std::string::npos) << r.message;
  EXPECT_EQ(files_in(elsewhere).size(), 2u);  // nothing outside the cache was deleted
  std::filesystem::remove(entries);
  std::filesystem::rename(elsewhere, entries);
}

TEST_F(CacheCliTest, EverySubcommandHasHelp) {
  for (const char* sub : {"ls", "show", "explain", "verify", "rm", "gc", "clear"}) {
    auto r = run_cli({"cache", sub, "--help"});
    EXPECT_EQ(r.code, 0) << sub;
    EXPECT_GT(r.out.size(), 80u) << sub << ": " << r.out;
  }
  auto r = run_cli({"cache", "rm", "--help"});
  EXPECT_NE(r.out.find("age>DURATION"), std::string::npos);
  EXPECT_NE(r.out.find("GLOB"), std::string::npos);
  r = run_cli({"cache", "--help"});
  EXPECT_NE(r.out.find("TTT_CACHE_DIR"), std::string::npos);
  for (const char* sub : {"ls", "show", "explain", "verify", "rm", "gc", "clear"})
    EXPECT_NE(r.out.find(std::string("  ") + sub + " "), std::string::npos) << sub;
}

}  // namespace
}  // namespace ttt::cache
