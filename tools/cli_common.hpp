// cli_common.hpp: what every tttc subcommand shares: exit codes and the registration hooks that
// tools/main.cpp calls. Each subcommand lives in its own tools/cmd_*.cpp file.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cache/key.hpp"
#include "runtime/jit.hpp"

namespace ttt::cli {

// Process exit codes, documented in the README.
enum ExitCode : int {
  kOk = 0,
  kCheckFailed = 1,    // a check ran and found a problem (tolerance exceeded, bad cache entries)
  kUsage = 2,          // bad arguments or invalid input (spec, files)
  kCompileFailed = 3,  // NVRTC rejected generated source
  kNoGpu = 4,          // the command needs a GPU and none (or no driver) is present
  kRuntimeError = 5,   // CUDA or other run-time failure
};

// Thrown by a command to end the process with `code` after printing `message` (if non-empty)
// to stderr, verbatim: commands start their messages with "error: " themselves.
struct CommandExit : std::runtime_error {
  CommandExit(int exit_code, const std::string& message)
      : std::runtime_error(message), code(exit_code) {}
  int code;
};

// --arch, or the GPU present, or sm_90a (the H100) when there is none.
std::string choose_arch(const std::string& arch);
// Adds --arch to `cmd`, storing into `arch`. An empty value is an error: it used to fall back
// silently to the default arch (issue 11).
CLI::Option* add_arch_option(CLI::App& cmd, std::string& arch);
// The kernel configuration for a spec file, an optional --arch and an optional --schedule file.
jit::KernelConfig config_for(const std::string& spec_path, const std::string& arch,
                             const std::string& schedule_path);

// --schedule FILE and --tuned (check, run, bench): where a kernel's schedule comes from.
struct ScheduleOptions {
  std::string file;    // an explicit schedule
  bool tuned = false;  // the tuned record for this device and launch size, or an error
};
void add_schedule_options(CLI::App& cmd, ScheduleOptions& o);
// The kernel configuration for `spec` under `o` for launches of `heads` = B*H: the file's
// schedule, the tuned one (--tuned: an error naming why there is none), else get_kernel's own
// choice (tuned record when present, else the heuristic; TTTC_AUTOTUNE).
jit::KernelConfig kernel_config(const Spec& spec, const ScheduleOptions& o, long long heads);
// Reads a schedule JSON file; errors name the file.
Schedule load_schedule_file(const std::string& path);

// `tttc --version`: tttc, NVRTC, template hash and cache format versions (version.cpp).
std::string version_text();

void register_spec_commands(CLI::App& app);      // tttc spec
void register_ir_command(CLI::App& app);         // tttc ir
void register_reference_command(CLI::App& app);  // tttc reference
// The cache key inputs of each kernel of a spec file for an arch ("" = the default), computed
// without compiling (tools/spec_keys.cpp; `tttc cache explain SPEC`).
using SpecKeyInputs = std::function<std::vector<cache::KeyInputs>(const std::string& spec_path,
                                                                  const std::string& arch)>;
SpecKeyInputs spec_key_inputs();
void register_cache_commands(CLI::App& app, SpecKeyInputs spec_keys = {});  // tttc cache ...
void register_compile_commands(CLI::App& app);  // tttc compile, tttc emit
void register_run_commands(CLI::App& app);      // tttc run, tttc check
void register_tune_commands(CLI::App& app);     // tttc tune [ls|show|explain|rm|clear|...]
void register_schedule_command(CLI::App& app);  // tttc schedule

}  // namespace ttt::cli
