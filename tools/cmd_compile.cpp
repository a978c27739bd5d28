// cmd_compile.cpp: `tttc compile` (ahead of time, into the cache), `tttc emit` (print the
// generated source) and `tttc ir` (print the step IR).
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "compiler/codegen.hpp"
#include "compiler/ir.hpp"
#include "compiler/plan.hpp"
#include "runtime/driver.hpp"
#include "runtime/jit.hpp"

namespace ttt::cli {
namespace {

void add_compile(CLI::App& app) {
  struct Options {
    std::vector<std::string> specs;
    std::string arch, schedule;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "compile",
      "Compile the kernels of each spec ahead of time into the kernel cache; report key, cache "
      "hit or miss, compile time, registers, shared memory and spills.");
  cmd->add_option("SPEC", o->specs, "spec files (JSON)")->required()->check(CLI::ExistingFile);
  add_arch_option(*cmd, o->arch);
  cmd->add_option("--schedule", o->schedule, "schedule JSON file (default: the heuristic)");
  cmd->add_flag("--json", o->json, "print a JSON list, one object per kernel");
  cmd->callback([o] {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& path : o->specs) {
      const jit::Build b = jit::build(config_for(path, o->arch, o->schedule));
      for (const auto* k : {&b.forward, &b.backward}) {
        if (!*k) continue;
        const jit::CompiledKernel& ck = **k;
        nlohmann::json row = {{"spec", path},
                              {"name", b.spec.name},
                              {"kernel", codegen::to_string(ck.generated.kind)},
                              {"arch", b.target.arch},
                              {"key", ck.key},
                              {"cache", ck.cache},
                              {"compile_ms", ck.compile_ms},
                              {"registers", ck.registers},
                              {"shared_bytes", ck.generated.shared_bytes},
                              {"spill_bytes", ck.spill_bytes},
                              {"binary_kind", ck.binary_kind},
                              {"schedule", schedule_to_json(b.schedule)}};
        if (o->json) {
          list.push_back(row);
          continue;
        }
        fmt::print(
            "{} {:8} {} {:<4} key {}  compile {:.0f} ms{}  registers {}  shared {} B  spills {} "
            "B\n",
            path, codegen::to_string(ck.generated.kind), b.target.arch, ck.cache,
            ck.key.substr(0, 16), ck.compile_ms, ck.cache == "hit" ? " (when built)" : "",
            ck.registers, ck.generated.shared_bytes, ck.spill_bytes);
      }
    }
    if (o->json) fmt::print("{}\n", list.dump(2));
  });
}

void add_emit(CLI::App& app) {
  struct Options {
    std::string spec, arch, schedule, pass = "forward";
  };
  auto o = std::make_shared<Options>();
  auto* cmd =
      app.add_subcommand("emit", "Print the generated CUDA source of one kernel of a spec.");
  cmd->add_option("SPEC", o->spec, "spec file (JSON)")->required()->check(CLI::ExistingFile);
  add_arch_option(*cmd, o->arch);
  cmd->add_option("--schedule", o->schedule, "schedule JSON file (default: the heuristic)");
  cmd->add_option("--pass", o->pass, "forward or backward")
      ->check(CLI::IsMember({"forward", "backward"}));
  cmd->callback([o] {
    const jit::KernelConfig c = config_for(o->spec, o->arch, o->schedule);
    const Target t = Target::for_arch(c.arch);
    const Schedule s = c.schedule ? *c.schedule : default_schedule(c.spec, t);
    const auto kind =
        o->pass == "forward" ? codegen::KernelKind::forward : codegen::KernelKind::backward;
    fmt::print("{}", codegen::generate(c.spec, s, kind).source);
  });
}

void add_ir(CLI::App& app) {
  struct Options {
    std::string spec;
    bool backward = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "ir",
      "Print the IR of one mini-batch step: layers and shapes, then the op list (inner "
      "forward on keys, inner-loss gradient, state update, query output).");
  cmd->add_option("SPEC", o->spec, "spec file (JSON)")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--backward", o->backward, "append the reverse-mode adjoint used by the backward");
  cmd->callback([o] {
    const Spec spec = load_spec_file(o->spec);
    const ir::Program step = ir::build_step(spec);
    fmt::print("{}", ir::describe(spec, o->backward ? ir::append_adjoint(step) : step));
  });
}

}  // namespace

void register_compile_commands(CLI::App& app) {
  add_compile(app);
  add_emit(app);
}

void register_ir_command(CLI::App& app) { add_ir(app); }

}  // namespace ttt::cli
