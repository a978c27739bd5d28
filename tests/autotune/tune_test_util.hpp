// tune_test_util.hpp: fixtures for the tuner's tests: a test fingerprint, specs, and synthetic
// records (measured candidates with chosen times and check results), written without a GPU.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "autotune/db.hpp"
#include "autotune/record.hpp"
#include "compiler/schedule.hpp"
#include "compiler/spec.hpp"

namespace ttt::autotune::test_util {

inline Fingerprint test_fingerprint() {
  return {.gpu_name = "Test GPU H200",
          .arch = "sm_90a",
          .sm_count = 132,
          .driver_version = "13000",
          .nvrtc_version = "13.0",
          .template_hash = "0123456789abcdef",
          .tttc_version = "0.1.0"};
}

inline Spec example_spec(const std::string& name) {
  return load_spec_file(std::string(TTTC_SOURCE_DIR) + "/examples/" + name + ".json");
}

inline Measurement measured(const Schedule& s, double ms, const char* check = kCheckPass) {
  return {.schedule = s,
          .median_ms = ms,
          .min_ms = ms * 0.98,
          .max_ms = ms * 1.02,
          .runs = 30,
          .registers = 96,
          .spill_bytes = 0,
          .shared_bytes = 1024,
          .compile_ms = 800,
          .check = check};
}

inline Record record_for(const Spec& spec, Pass pass, int bucket,
                         std::vector<Measurement> candidates, const Schedule& heuristic) {
  return {.spec_signature = spec_signature(spec),
          .spec_name = spec.name,
          .spec = nlohmann::json::parse(canonical_json(spec)),
          .pass = pass,
          .bucket = bucket,
          .B = 16,
          .H = 12,
          .T = 2048,
          .timed_T = 512,
          .heuristic = canonical_schedule(heuristic),
          .updated = "2026-11-29T00:00:00Z",
          .candidates = std::move(candidates)};
}

// A fresh directory, removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tttc-tune-test-XXXXXX");
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace ttt::autotune::test_util
