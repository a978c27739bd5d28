// cmd_reference.cpp: `tttc reference SPEC --shape B,H,T`, the command-line face of the CPU
// reference (compiler/reference/). It runs the exact double-precision forward and backward on
// seeded random inputs and prints norms and timings: a quick look at what a spec computes, and
// the baseline every kernel is checked and timed against.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "compiler/reference/budget.hpp"
#include "compiler/reference/reference.hpp"
#include "compiler/spec.hpp"
#include "tools/cli_common.hpp"
#include "tools/progress.hpp"
#include "tools/shape.hpp"

namespace ttt::cli {
namespace {

struct ReferenceOptions {
  std::string spec_file;
  std::string shape;
  uint64_t seed = 1;
  bool per_batch_state = false;
  bool json = false;
};

double frobenius(const ref::Tensor& t) {
  double s = 0.0;
  for (double x : t.data) s += x * x;
  return std::sqrt(s);
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

void run_reference(const ReferenceOptions& opt) {
  const Shape shape = parse_shape(opt.shape);
  Spec spec;
  try {
    spec = load_spec_file(opt.spec_file);
  } catch (const SpecError& e) {
    throw CommandExit(kUsage, std::string("error: ") + e.what());
  }

  // Each tensor's norm, in a fixed order: outputs, final states, then gradients.
  std::vector<std::pair<std::string, double>> norms;
  double forward_ms = 0.0, forward_backward_ms = 0.0;
  try {
    // Checked before the inputs are allocated: a huge shape is refused with the figures.
    ref::check_memory(spec, shape.B, shape.H, shape.T, opt.per_batch_state, /*backward=*/true);
    const ref::Inputs in =
        ref::random_inputs(spec, shape.B, shape.H, shape.T, opt.per_batch_state, opt.seed);
    const ref::Upstream up = ref::random_upstream(spec, shape.B, shape.H, shape.T,
                                                  /*with_state_grads=*/true, opt.seed + 1);
    auto start = std::chrono::steady_clock::now();
    ref::Outputs out;
    {
      Ticker ticker("CPU reference: forward");
      out = ref::forward(spec, in);
    }
    forward_ms = ms_since(start);
    start = std::chrono::steady_clock::now();
    ref::Grads g;
    {
      Ticker ticker("CPU reference: forward and backward");
      g = ref::backward(spec, in, up);  // runs its own checkpointed forward
    }
    forward_backward_ms = ms_since(start);

    // Named like the .npy files of `tttc run` (W1_final, dW1, ...): layers count from 1.
    auto layers = [&](const char* prefix, const char* suffix, const std::vector<ref::Tensor>& ts) {
      for (size_t l = 0; l < ts.size(); ++l)
        norms.emplace_back(fmt::format("{}{}{}", prefix, l + 1, suffix), frobenius(ts[l]));
    };
    norms.emplace_back("out", frobenius(out.out));
    layers("W", "_final", out.W_final);
    layers("b", "_final", out.b_final);
    for (const auto& [name, t] : g.named()) norms.emplace_back(name, frobenius(*t));
    layers("dW", "", g.dW);
    layers("db", "", g.db);
  } catch (const std::invalid_argument& e) {
    throw CommandExit(kUsage, std::string("error: ") + e.what());
  }

  if (opt.json) {
    nlohmann::ordered_json j = {{"spec", opt.spec_file},
                                {"name", spec.name},
                                {"signature", spec_signature(spec)},
                                {"shape", {{"B", shape.B}, {"H", shape.H}, {"T", shape.T}}},
                                {"seed", opt.seed},
                                {"per_batch_state", opt.per_batch_state},
                                {"threads", ref::reference_threads()},
                                {"forward_ms", forward_ms},
                                {"forward_backward_ms", forward_backward_ms},
                                {"norms", nlohmann::ordered_json::object()}};
    for (const auto& [name, n] : norms) j["norms"][name] = n;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format(
      "{} ({}): B={} H={} T={}, seed {}, {} initial state, {} threads, double precision\n",
      opt.spec_file, spec.name.empty() ? "unnamed" : spec.name, shape.B, shape.H, shape.T, opt.seed,
      opt.per_batch_state ? "per-batch" : "shared", ref::reference_threads());
  std::cout << fmt::format("  forward           {:10.1f} ms\n", forward_ms);
  std::cout << fmt::format("  forward+backward  {:10.1f} ms\n", forward_backward_ms);
  std::cout << "  Frobenius norms:\n";
  for (const auto& [name, n] : norms) std::cout << fmt::format("    {:<12} {:.9e}\n", name, n);
}

}  // namespace

void register_reference_command(CLI::App& app) {
  auto opt = std::make_shared<ReferenceOptions>();
  CLI::App* cmd = app.add_subcommand(
      "reference",
      "Run the exact CPU reference (double precision) on seeded random inputs.\n"
      "Computes the forward (dual form) and the full outer backward for the spec, with upstream\n"
      "gradients for the output and the final state, and prints the Frobenius norm of the\n"
      "output, of each final state tensor and of each gradient, plus the forward time and the\n"
      "forward+backward time (backward() recomputes the forward with the spec's checkpoint\n"
      "groups). The same spec, shape and seed give the same numbers on every machine.\n"
      "Threads: TTTC_REF_THREADS (default: all hardware threads). Exit status 2 on a bad spec\n"
      "or bad arguments.");
  cmd->add_option("spec", opt->spec_file, "Spec file (JSON)")->required()->type_name("SPEC");
  cmd->add_option("--shape", opt->shape, "Batch, heads and tokens, e.g. 2,4,2048")
      ->required()
      ->type_name("B,H,T");
  cmd->add_option("--seed", opt->seed, "Seed of the random inputs (default 1)")->type_name("N");
  cmd->add_flag("--per-batch-state", opt->per_batch_state,
                "Give each batch row its own initial state ([B, H, ...]) instead of one shared "
                "over the batch ([H, ...])");
  cmd->add_flag("--json", opt->json,
                "Print one JSON object: shape, seed, threads, forward_ms, forward_backward_ms "
                "and norms {name: value}");
  cmd->callback([opt] { run_reference(*opt); });
}

}  // namespace ttt::cli
