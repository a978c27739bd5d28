// fingerprint.hpp: what a tuning result depends on besides the spec: the device (GPU name, arch,
// SM count), the driver, NVRTC, the device templates and tttc itself. One tuning-database file
// per fingerprint; a file whose fingerprint differs from the present one in any field is stale.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace ttt::autotune {

struct Fingerprint {
  std::string gpu_name;
  std::string arch;  // the compute capability as tttc names it ("sm_90a")
  int sm_count = 0;
  std::string driver_version;  // cuDriverGetVersion, e.g. "13000"
  std::string nvrtc_version;
  std::string template_hash;  // sha256 of the embedded device templates
  std::string tttc_version;
  bool operator==(const Fingerprint&) const = default;
};

nlohmann::json to_json(const Fingerprint& f);
// Throws std::invalid_argument naming the missing or mistyped field.
Fingerprint fingerprint_from_json(const nlohmann::json& j);
// 16 hex digits of sha256 over the canonical JSON: the database file's name.
std::string fingerprint_id(const Fingerprint& f);
// "driver_version: 13000 (file) vs 13010 (this machine)" per differing field; empty when equal.
std::vector<std::string> differing_fields(const Fingerprint& file, const Fingerprint& present);

// sha256 of the embedded device templates (sorted by name), as `tttc --version` prints it.
std::string templates_hash();
// The tttc version this library was built as.
std::string tttc_version();

// The present device's fingerprint from its facts (the toolchain fields are filled in here).
Fingerprint make_fingerprint(const std::string& gpu_name, const std::string& arch, int sm_count,
                             int driver_version);

// Test-only: TTTC_TUNE_FINGERPRINT_FILE names a JSON fingerprint that replaces the device's
// (so the database and the commands can be tested without a GPU). Throws std::invalid_argument
// naming the file when it cannot be read or parsed.
std::optional<Fingerprint> fingerprint_override();

}  // namespace ttt::autotune
