// cmd_run.cpp: commands that run kernels on the GPU: `tttc check` (forward and backward on seeded
// random inputs against the CPU reference) and `tttc bench` (CUDA-event timings).
#include "cli_common.hpp"
#include "runtime/check/check.hpp"
#include "runtime/driver.hpp"
#include "runtime/jit.hpp"

#include <fmt/format.h>

namespace ttt::cli {
namespace {

std::array<int, 3> parse_shape(const std::string& text) {
  std::array<int, 3> v{};
  if (std::sscanf(text.c_str(), "%d,%d,%d", &v[0], &v[1], &v[2]) != 3 || v[0] < 1 || v[1] < 1 || v[2] < 1)
    throw CommandExit(kUsage, fmt::format("--shape '{}': expected B,H,T with positive integers, e.g. 2,4,256", text));
  return v;
}

void require_gpu() {
  if (!driver::status().available) throw CommandExit(kNoGpu, "no GPU: " + driver::status().reason);
}

void print_checks(const char* title, const std::vector<check::TensorCheck>& checks) {
  for (const auto& c : checks)
    fmt::print("  {:8} {:14} rel err {:.3e}  (tol {:.0e})  {}\n", title, c.name, c.rel_error,
               c.tolerance, c.passed() ? "pass" : (c.finite ? "FAIL" : "FAIL (non-finite)"));
}

void add_check(CLI::App& app) {
  struct Options {
    std::string spec, shape = "2,4,256", layout = "bhtf";
    bool per_batch = false, no_backward = false;
    uint64_t seed = 1;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "check", "Run the spec's forward and backward on the GPU with seeded random inputs and "
               "compare every output and gradient with the CPU reference. Exit 0 pass, 1 fail, "
               "4 no GPU.");
  cmd->add_option("SPEC", o->spec, "spec file (JSON)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--shape", o->shape, "B,H,T (default 2,4,256)");
  cmd->add_option("--seed", o->seed, "random seed (default 1)");
  cmd->add_option("--layout", o->layout, "token layout: bhtf or bthf")->check(CLI::IsMember({"bhtf", "bthf"}));
  cmd->add_flag("--per-batch-state", o->per_batch, "one initial state per batch row");
  cmd->add_flag("--no-backward", o->no_backward, "check the forward only");
  cmd->callback([o] {
    const Spec spec = load_spec_file(o->spec);
    const auto [B, H, T] = parse_shape(o->shape);
    require_gpu();
    Spec run_spec = spec;
    if (o->no_backward) run_spec.build_backward = false;
    auto kernel = jit::get_kernel({.spec = run_spec});
    const auto& dev = driver::current_device();
    fmt::print("{} on {} ({}), B={} H={} T={}\n", o->spec, dev.name, dev.arch, B, H, T);
    const check::Report r = check::run(
        run_spec,
        {.B = B, .H = H, .T = T, .per_batch_state = o->per_batch, .tokens_bthf = o->layout == "bthf",
         .backward = run_spec.build_backward, .seed = o->seed},
        *kernel);
    print_checks("forward", r.forward);
    print_checks("backward", r.backward);
    fmt::print("{} (reference {:.0f} ms)\n", r.passed() ? "PASS" : "FAIL", r.reference_ms);
    if (!r.passed()) throw CommandExit(kCheckFailed, "");
  });
}

void add_bench(CLI::App& app) {
  struct Options {
    std::string spec, shape = "16,12,2048";
    int runs = 20;
    bool no_backward = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "bench", "Time the forward and backward kernels with CUDA events (median of --runs after a "
               "warm-up) on random inputs.");
  cmd->add_option("SPEC", o->spec, "spec file (JSON)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--shape", o->shape, "B,H,T (default 16,12,2048)");
  cmd->add_option("--runs", o->runs, "timed runs (default 20)")->check(CLI::Range(1, 10000));
  cmd->add_flag("--no-backward", o->no_backward, "time the forward only");
  cmd->callback([o] {
    const Spec spec = load_spec_file(o->spec);
    const auto [B, H, T] = parse_shape(o->shape);
    require_gpu();
    auto kernel = jit::get_kernel({.spec = spec});
    const check::Report r = check::run(
        spec,
        {.B = B, .H = H, .T = T, .backward = spec.build_backward && !o->no_backward,
         .compare = false, .timing_runs = o->runs},
        *kernel);
    fmt::print("{} B={} H={} T={}: forward {:.3f} ms", o->spec, B, H, T, r.forward_ms);
    if (r.backward_ms >= 0) fmt::print(", backward {:.3f} ms", r.backward_ms);
    fmt::print(" (median of {})\n", o->runs);
  });
}

}  // namespace

void register_run_commands(CLI::App& app) {
  add_check(app);
  add_bench(app);
}

}  // namespace ttt::cli
