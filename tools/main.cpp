// main.cpp: the tttc command-line tool: registers every subcommand and turns errors into the exit
// codes documented in the README (see cli_common.hpp).
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "autotune/on_first_use.hpp"
#include "cli_common.hpp"
#include "compiler/nvrtc_backend.hpp"
#include "compiler/spec.hpp"
#include "runtime/driver.hpp"

int main(int argc, char** argv) {
  using namespace ttt::cli;
  // Piped or redirected output is flushed line by line (stdio would buffer 4 KiB), so logs of
  // long runs show progress as it happens. std::cout goes through stdio (sync_with_stdio).
  if (!::isatty(STDOUT_FILENO)) std::setvbuf(stdout, nullptr, _IOLBF, 0);
  ttt::autotune::install_first_use_tuning();  // TTTC_AUTOTUNE=on tunes kernels on first use
  CLI::App app{
      "tttc: a JIT kernel compiler for Test-Time Training layers. It turns a small JSON spec of "
      "the\n"
      "inner model into fused CUDA forward and backward kernels, compiled with NVRTC and cached.\n"
      "Run 'tttc COMMAND --help' for each command.",
      "tttc"};
  app.require_subcommand(1);
  app.set_version_flag(
      "--version", [] { return version_text(); },
      "Print the tttc and NVRTC versions, the template hash and the cache formats");
  // Read when the cache is first used, which is after parsing: so setting it here covers the
  // whole run, like TTTC_CACHE_DISABLE=1 in the environment.
  app.add_flag_callback(
      "--no-cache", [] { ::setenv("TTTC_CACHE_DISABLE", "1", 1); },
      "Bypass the kernel cache for this run: compile every kernel, read and write nothing on "
      "disk (same as TTTC_CACHE_DISABLE=1)");
  register_spec_commands(app);
  register_ir_command(app);
  register_compile_commands(app);
  register_cache_commands(app, spec_key_inputs());
  register_reference_command(app);
  register_run_commands(app);
  register_tune_commands(app);
  register_schedule_command(app);
  auto report = [](const char* kind, const std::string& what) {
    std::fflush(stdout);
    fmt::print(stderr, "{}{}\n", kind, what);
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help or the parse error
    return code == 0 ? kOk : kUsage;
  } catch (const CommandExit& e) {
    if (*e.what()) report("", e.what());  // commands word their own messages
    return e.code;
  } catch (const ttt::SpecError& e) {
    report("error: ", e.what());
    return kUsage;
  } catch (const ttt::nvrtc::CompileError& e) {
    report("error: ", e.what());
    return kCompileFailed;
  } catch (const ttt::driver::NoGpuError& e) {
    report("no GPU: ", e.what());
    return kNoGpu;
  } catch (const std::invalid_argument& e) {
    report("error: ", e.what());
    return kUsage;
  } catch (const std::exception& e) {
    report("error: ", e.what());
    return kRuntimeError;
  }
  return kOk;
}
