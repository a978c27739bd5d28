// cli_common.cpp: helpers several commands share (choosing the arch, reading --schedule, --tuned).
#include "cli_common.hpp"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/driver.hpp"
#include "runtime/tuned.hpp"

namespace ttt::cli {

// --arch, or the GPU present, or sm_90a (the H100) when there is none.
std::string choose_arch(const std::string& arch) {
  if (!arch.empty()) return arch;
  if (driver::status().available) return driver::current_device().arch;
  return "sm_90a";
}

Schedule load_schedule_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw CommandExit(kUsage, fmt::format("error: {}: cannot open schedule file", path));
  try {
    return schedule_from_json(nlohmann::json::parse(in));
  } catch (const std::exception& e) {
    throw CommandExit(kUsage, fmt::format("error: {}: {}", path, e.what()));
  }
}

jit::KernelConfig config_for(const std::string& spec_path, const std::string& arch,
                             const std::string& schedule_path) {
  jit::KernelConfig c{.spec = load_spec_file(spec_path), .arch = choose_arch(arch)};
  if (!schedule_path.empty()) c.schedule = load_schedule_file(schedule_path);
  return c;
}

void add_schedule_options(CLI::App& cmd, ScheduleOptions& o) {
  auto* file = cmd.add_option("--schedule", o.file,
                              "schedule JSON file (default: a tuned record for this GPU and "
                              "shape when there is one, else the heuristic; see `tttc schedule`)");
  cmd.add_flag("--tuned", o.tuned,
               "use the tuned record for this GPU and shape; an error when there is none "
               "(`tttc tune explain` says why)")
      ->excludes(file);
}

jit::KernelConfig kernel_config(const Spec& spec, const ScheduleOptions& o, long long heads) {
  jit::KernelConfig c{.spec = spec, .launch_heads = heads};
  if (!o.file.empty()) c.schedule = load_schedule_file(o.file);
  if (o.tuned) {
    const int ordinal = driver::default_ordinal();
    const auto choice = jit::tuned_schedule(spec, jit::target_for("", ordinal), ordinal, heads);
    if (!choice.schedule)
      throw CommandExit(kUsage, "error: --tuned: no tuned schedule: " + choice.why);
    c.schedule = choice.schedule;
  }
  return c;
}

}  // namespace ttt::cli
