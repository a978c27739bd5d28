// fingerprint.cpp: device fingerprints: JSON form, id, field-by-field comparison, toolchain facts.
#include "autotune/fingerprint.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "compiler/hash.hpp"
#include "compiler/nvrtc_backend.hpp"
#include "templates/embedded.hpp"

#ifndef TTTC_VERSION
#error "TTTC_VERSION must be defined by the build (autotune/CMakeLists.txt)"
#endif

namespace ttt::autotune {

nlohmann::json to_json(const Fingerprint& f) {
  return {{"gpu_name", f.gpu_name},           {"arch", f.arch},
          {"sm_count", f.sm_count},           {"driver_version", f.driver_version},
          {"nvrtc_version", f.nvrtc_version}, {"template_hash", f.template_hash},
          {"tttc_version", f.tttc_version}};
}

Fingerprint fingerprint_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("fingerprint: not a JSON object");
  auto text = [&](const char* key) {
    if (!j.contains(key) || !j.at(key).is_string())
      throw std::invalid_argument(fmt::format("fingerprint.{}: missing or not a string", key));
    return j.at(key).get<std::string>();
  };
  Fingerprint f{.gpu_name = text("gpu_name"), .arch = text("arch")};
  if (!j.contains("sm_count") || !j.at("sm_count").is_number_integer())
    throw std::invalid_argument("fingerprint.sm_count: missing or not an integer");
  f.sm_count = j.at("sm_count").get<int>();
  f.driver_version = text("driver_version");
  f.nvrtc_version = text("nvrtc_version");
  f.template_hash = text("template_hash");
  f.tttc_version = text("tttc_version");
  return f;
}

std::string fingerprint_id(const Fingerprint& f) {
  return sha256_hex(to_json(f).dump()).substr(0, 16);
}

std::vector<std::string> differing_fields(const Fingerprint& file, const Fingerprint& present) {
  std::vector<std::string> out;
  const auto a = to_json(file), b = to_json(present);
  for (const auto& [key, value] : a.items())
    if (b.at(key) != value)
      out.push_back(
          fmt::format("{}: {} (record) vs {} (this machine)", key, value.dump(), b.at(key).dump()));
  return out;
}

std::string templates_hash() {
  static const std::string hash = [] {
    // Sorted by include name, each as name NUL text NUL, so the hash ignores embedding order.
    std::vector<templates::Header> headers(templates::headers().begin(),
                                           templates::headers().end());
    std::sort(headers.begin(), headers.end(),
              [](const auto& a, const auto& b) { return std::string(a.name) < b.name; });
    Sha256 h;
    for (const auto& header : headers) {
      h.update(header.name);
      h.update(std::string_view("\0", 1));
      h.update(header.text);
      h.update(std::string_view("\0", 1));
    }
    return h.hex_digest();
  }();
  return hash;
}

std::string tttc_version() { return TTTC_VERSION; }

Fingerprint make_fingerprint(const std::string& gpu_name, const std::string& arch, int sm_count,
                             int driver_version) {
  return {.gpu_name = gpu_name,
          .arch = arch,
          .sm_count = sm_count,
          .driver_version = std::to_string(driver_version),
          .nvrtc_version = nvrtc::version(),
          .template_hash = templates_hash(),
          .tttc_version = tttc_version()};
}

std::optional<Fingerprint> fingerprint_override() {
  const char* path = std::getenv("TTTC_TUNE_FINGERPRINT_FILE");
  if (!path || !*path) return std::nullopt;
  std::ifstream in(path);
  if (!in)
    throw std::invalid_argument(
        fmt::format("TTTC_TUNE_FINGERPRINT_FILE={}: cannot open the file", path));
  try {
    std::stringstream ss;
    ss << in.rdbuf();
    return fingerprint_from_json(nlohmann::json::parse(ss.str()));
  } catch (const std::exception& e) {
    throw std::invalid_argument(fmt::format("TTTC_TUNE_FINGERPRINT_FILE={}: {}", path, e.what()));
  }
}

}  // namespace ttt::autotune
