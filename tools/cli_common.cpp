// cli_common.cpp: helpers several commands share (choosing the arch, reading --schedule).
#include "cli_common.hpp"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/driver.hpp"

namespace ttt::cli {

// --arch, or the GPU present, or sm_90a (the H100) when there is none.
std::string choose_arch(const std::string& arch) {
  if (!arch.empty()) return arch;
  if (driver::status().available) return driver::current_device().arch;
  return "sm_90a";
}

jit::KernelConfig config_for(const std::string& spec_path, const std::string& arch,
                             const std::string& schedule_path) {
  jit::KernelConfig c{.spec = load_spec_file(spec_path), .arch = choose_arch(arch)};
  if (!schedule_path.empty()) {
    std::ifstream in(schedule_path);
    if (!in)
      throw CommandExit(kUsage, fmt::format("error: {}: cannot open schedule file", schedule_path));
    try {
      c.schedule = schedule_from_json(nlohmann::json::parse(in));
    } catch (const std::exception& e) {
      throw CommandExit(kUsage, fmt::format("error: {}: {}", schedule_path, e.what()));
    }
  }
  return c;
}

}  // namespace ttt::cli
