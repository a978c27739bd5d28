// cache_test_util.hpp: shared fixtures for the cache tests: a private temp cache directory,
// warning capture, representative key inputs and counting builders.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "cache/kernel_cache.hpp"
#include "cache/warnings.hpp"

namespace ttt::cache::test_util {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/tttc-cache-test-XXXXXX";
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    // Tests may leave read-only directories behind; make them removable first.
    for (auto it = std::filesystem::recursive_directory_iterator(path_, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
      if (it->is_directory(ec)) ::chmod(it->path().c_str(), 0700);
    ::chmod(path_.c_str(), 0700);
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Collects warnings for the lifetime of the object instead of printing them.
class WarningCapture {
 public:
  WarningCapture() {
    previous_ = set_warning_handler([this](const std::string& m) {
      std::lock_guard lock(mutex_);
      messages_.push_back(m);
    });
  }
  ~WarningCapture() { set_warning_handler(std::move(previous_)); }
  std::vector<std::string> messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }

 private:
  WarningHandler previous_;
  mutable std::mutex mutex_;
  std::vector<std::string> messages_;
};

// Plausible inputs for a forward kernel; `variant` changes the source so tests can make many keys.
inline KeyInputs sample_inputs(const std::string& variant = "") {
  KeyInputs in;
  in.canonical_spec =
      R"({"activation":"gelu_tanh","causal":true,"depth":2,"dtype":"bf16","head_dim":64,)"
      R"("mini_batch":16,"model":"mlp"})";
  in.kernel = "forward";
  in.schedule = R"({"threads":256,"tile_k":32})";
  in.source =
      "// generated\n#include \"ttt/common.cuh\"\nextern \"C\" __global__ void k() {}\n// " +
      variant + "\n";
  in.header_hashes = {{"ttt/common.cuh", std::string(64, 'a')},
                      {"ttt/mma.cuh", std::string(64, 'b')}};
  in.nvrtc_version = "12.4";
  in.options = {"--std=c++17", "-default-device", "--use_fast_math"};
  in.arch = "sm_90a";
  return in;
}

inline EntryDescription sample_description(const std::string& spec_name = "ttt_mlp_test") {
  return {spec_name, {{"note", "test"}}};
}

// A builder that counts its calls and returns `binary`.
inline Builder counting_builder(std::atomic<int>& calls, std::string binary) {
  return [&calls, binary] {
    ++calls;
    BuildOutput out;
    out.binary = binary;
    out.compile_ms = 12.5;
    out.registers = 96;
    out.shared_bytes = 49152;
    out.spills = 0;
    return out;
  };
}

inline std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    out.push_back(it->path());
  return out;
}

}  // namespace ttt::cache::test_util
