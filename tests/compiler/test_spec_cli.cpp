// test_spec_cli.cpp: `tttc spec` output formats and exit status, driving the subcommand through
// CLI11 exactly as tools/main.cpp does, with stdout and stderr captured.
#include <gtest/gtest.h>

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/spec.hpp"
#include "tools/cli_common.hpp"

namespace ttt::cli {
namespace {

using json = nlohmann::json;

const std::string kExamples = std::string(TTTC_SOURCE_DIR) + "/examples/";

struct Result {
  int code = kOk;
  std::string out, err;
};

Result run(std::vector<std::string> args) {
  CLI::App app{"tttc"};
  register_spec_commands(app);
  args.insert(args.begin(), "tttc");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  Result r;
  {
    // Restored on every exit, including CLI11's own exceptions, so that std::cout never points
    // at a destroyed buffer.
    struct Redirect {
      std::ostream& stream;
      std::streambuf* old;
      ~Redirect() { stream.rdbuf(old); }
    } redirect_out{std::cout, std::cout.rdbuf(out.rdbuf())},
        redirect_err{std::cerr, std::cerr.rdbuf(err.rdbuf())};
    try {
      app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CommandExit& e) {
      r.code = e.code;
    }
  }
  r.out = out.str();
  r.err = err.str();
  return r;
}

std::string signature_of(const std::string& file) { return spec_signature(load_spec_file(file)); }

TEST(SpecCli, HumanOutput) {
  const std::string file = kExamples + "mlp2.json";
  const Result r = run({"spec", file});
  EXPECT_EQ(r.code, kOk);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, file + ": " + signature_of(file) + "\n  " +
                       canonical_json(load_spec_file(file)) + "\n");
}

TEST(SpecCli, JsonForOneFileIsAnObject) {
  const std::string file = kExamples + "linear.json";
  const Result r = run({"spec", "--json", file});
  EXPECT_EQ(r.code, kOk);
  const json j = json::parse(r.out);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["file"], file);
  EXPECT_EQ(j["name"], "linear");
  EXPECT_EQ(j["signature"], signature_of(file));
  EXPECT_EQ(j["canonical"], canonical_json(load_spec_file(file)));
}

TEST(SpecCli, JsonForSeveralFilesIsAnArray) {
  const Result r = run({"spec", kExamples + "linear.json", kExamples + "mlp2.json", "--json"});
  EXPECT_EQ(r.code, kOk);
  const json j = json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[1]["name"], "mlp2");
}

TEST(SpecCli, InvalidFilesAreAllReportedAndTheOthersStillPrinted) {
  const Result r =
      run({"spec", "/nonexistent/a.json", kExamples + "mlp2.json", "/nonexistent/b.json"});
  EXPECT_EQ(r.code, kUsage);
  EXPECT_EQ(r.err,
            "error: /nonexistent/a.json: $: cannot open file: No such file or directory\n"
            "error: /nonexistent/b.json: $: cannot open file: No such file or directory\n");
  EXPECT_NE(r.out.find(signature_of(kExamples + "mlp2.json")), std::string::npos);
}

TEST(SpecCli, NonAsciiSpecIsReportedAndLaterFilesStillChecked) {
  // Regression (issue 11): a non-ASCII name crashed the parser, skipping the files after it.
  const std::string bad = ::testing::TempDir() + "tttc-non-ascii.json";
  {
    std::FILE* f = std::fopen(bad.c_str(), "w");
    std::fputs("{\"tttc_spec\":1,\"head_dim\":64,\"name\":\"\xc3\xa9\"}", f);
    std::fclose(f);
  }
  const Result r = run({"spec", bad, kExamples + "mlp2.json"});
  EXPECT_EQ(r.code, kUsage);
  EXPECT_EQ(r.err.rfind("error: " + bad + ": $.name: ", 0), 0u) << r.err;
  EXPECT_NE(r.out.find(signature_of(kExamples + "mlp2.json")), std::string::npos);
  std::remove(bad.c_str());
}

TEST(SpecCli, FilesAreRequired) { EXPECT_THROW(run({"spec"}), CLI::RequiredError); }

}  // namespace
}  // namespace ttt::cli
