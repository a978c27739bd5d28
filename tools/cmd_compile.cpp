// cmd_compile.cpp: `tttc compile` (ahead of time, into the cache), `tttc emit` (print the
// generated source) and `tttc ir` (print the step IR).
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cache/kernel_cache.hpp"
#include "cli_common.hpp"
#include "compiler/codegen.hpp"
#include "compiler/ir.hpp"
#include "compiler/nvrtc_backend.hpp"
#include "compiler/plan.hpp"
#include "runtime/driver.hpp"
#include "runtime/jit.hpp"
#include "tools/progress.hpp"
#include "tools/shape.hpp"

namespace ttt::cli {
namespace {

void add_compile(CLI::App& app) {
  struct Options {
    std::vector<std::string> specs;
    std::string arch, schedule, shape;
    bool json = false, memory_only = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "compile",
      "Compile the kernels of each spec ahead of time into the kernel cache; report key, cache "
      "hit or miss, compile time, registers, shared memory and spills.");
  cmd->add_option("SPEC", o->specs, "spec files (JSON)")->required()->check(CLI::ExistingFile);
  add_arch_option(*cmd, o->arch);
  cmd->add_option("--schedule", o->schedule, "schedule JSON file (default: the heuristic)");
  cmd->add_option("--shape", o->shape,
                  "B,H,T of the launches to serve: picks the launch bucket of a tuned record, "
                  "and the bucket TTTC_AUTOTUNE=on tunes (default: the largest bucket tuned; "
                  "docs/tuning.md)");
  cmd->add_flag("--json", o->json,
                "print a JSON list, one object per kernel (schedule_source: explicit, tuned or "
                "heuristic; schedule_why: the record used, or why none)");
  cmd->add_flag("--memory-only", o->memory_only,
                "succeed even when the kernels cannot be saved in the cache (read-only, refused "
                "or disabled); without it that is an error (exit 5)");
  cmd->callback([o] {
    // Say which arch was chosen when the user did not: without a GPU it is a guess (sm_90a).
    if (o->arch.empty() && !driver::status().available)
      fmt::print(stderr, "tttc compile: no GPU here ({}); compiling for sm_90a (--arch chooses)\n",
                 driver::status().reason);
    nlohmann::json list = nlohmann::json::array();
    bool built = false;
    for (size_t i = 0; i < o->specs.size(); ++i) {
      const std::string& path = o->specs[i];
      if (o->specs.size() > 1) progress_step(i + 1, o->specs.size(), "compiling " + path);
      jit::KernelConfig config = config_for(path, o->arch, o->schedule);
      if (!o->shape.empty()) {
        const auto [B, H, T] = parse_shape(o->shape);
        config.launch_heads = 1LL * B * H;
      }
      const jit::Build b = jit::build(config);
      progress_done();
      for (const auto* k : {&b.forward, &b.backward, &b.decode}) {
        if (!*k) continue;
        const jit::CompiledKernel& ck = **k;
        built |= ck.cache == "miss";
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
                              {"context_in_memory", ck.generated.context_in_memory},
                              {"binary_kind", ck.binary_kind},
                              {"schedule", schedule_to_json(b.schedule)},
                              {"schedule_source", b.schedule_source},
                              {"schedule_why", b.schedule_why}};
        if (o->json) {
          list.push_back(row);
          continue;
        }
        fmt::print(
            "{} {:8} {} {:<4} key {}  compile {:.0f} ms{}  registers {}  shared {} B  spills {} "
            "B  schedule {}\n",
            path, codegen::to_string(ck.generated.kind), b.target.arch, ck.cache,
            ck.key.substr(0, 16), ck.compile_ms, ck.cache == "hit" ? " (when built)" : "",
            ck.registers, ck.generated.shared_bytes, ck.spill_bytes, b.schedule_source);
      }
    }
    if (o->json) fmt::print("{}\n", list.dump(2));
    // Compiling ahead of time is for the cache: if what was built could not be saved, say so.
    const auto& cache = cache::KernelCache::process_cache();
    if (built && cache::cache_disabled_by_env()) {
      fmt::print(stderr,
                 "tttc compile: the cache is disabled (--no-cache or TTTC_CACHE_DISABLE); "
                 "nothing was saved\n");
    } else if (built && cache.memory_only() && !o->memory_only) {
      throw CommandExit(
          kRuntimeError,
          fmt::format("error: the compiled kernels could not be saved: the cache directory {} is "
                      "{} (see the warning above); set TTTC_CACHE_DIR to a directory of your own, "
                      "or pass --memory-only to accept this",
                      cache.store().root().string(),
                      cache.untrusted() ? "not trusted" : "not writable"));
    }
  });
}

void add_emit(CLI::App& app) {
  struct Options {
    std::string spec, arch, schedule, pass = "forward";
    bool json = false, ptx = false, context_in_memory = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "emit", "Print the generated CUDA source of one kernel of a spec, or (--ptx) its PTX.");
  cmd->add_option("SPEC", o->spec, "spec file (JSON)")->required()->check(CLI::ExistingFile);
  add_arch_option(*cmd, o->arch);
  cmd->add_option("--schedule", o->schedule, "schedule JSON file (default: the heuristic)");
  cmd->add_option("--pass", o->pass, "forward, backward or decode")
      ->check(CLI::IsMember({"forward", "backward", "decode"}));
  cmd->add_flag("--json", o->json,
                "print one JSON object: spec, name, kernel, arch, kernel_name, shared_bytes, "
                "workspace_floats, schedule and source");
  cmd->add_flag("--context-in-memory", o->context_in_memory,
                "arena lowering: the variant with the step context in local memory, which the "
                "runtime builds when the default one spills registers (`tttc compile --json` "
                "reports which one runs as context_in_memory)");
  cmd->add_flag("--ptx", o->ptx,
                "compile the source with NVRTC for the arch's virtual target (sm_90a -> "
                "compute_90a) and print the PTX instead (with --json: a 'ptx' field as well)");
  cmd->callback([o] {
    const jit::KernelConfig c = config_for(o->spec, o->arch, o->schedule);
    const Target t = Target::for_arch(c.arch);
    const Schedule s = c.schedule ? *c.schedule : default_schedule(c.spec, t);
    const auto kind = o->pass == "forward"    ? codegen::KernelKind::forward
                      : o->pass == "backward" ? codegen::KernelKind::backward
                                              : codegen::KernelKind::decode;
    const codegen::Generated g =
        codegen::generate(c.spec, s, kind, {.context_in_memory = o->context_in_memory});
    const std::string ptx =
        o->ptx ? nvrtc::compile_ptx(g.source, g.kernel_name, c.arch).binary : std::string();
    if (!o->json) {
      fmt::print("{}", o->ptx ? ptx : g.source);
      return;
    }
    const nlohmann::json j = {{"spec", o->spec},
                              {"name", c.spec.name},
                              {"kernel", codegen::to_string(kind)},
                              {"arch", c.arch},
                              {"kernel_name", g.kernel_name},
                              {"shared_bytes", g.shared_bytes},
                              {"workspace_floats", g.workspace_floats},
                              {"schedule", schedule_to_json(s)},
                              {"source", g.source}};
    nlohmann::json out = j;
    if (o->ptx) out["ptx"] = ptx;
    fmt::print("{}\n", out.dump(2));
  });
}

void add_ir(CLI::App& app) {
  struct Options {
    std::string spec;
    bool backward = false, json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "ir",
      "Print the IR of one mini-batch step: layers and shapes, then the op list (inner "
      "forward on keys, inner-loss gradient, state update, query output).");
  cmd->add_option("SPEC", o->spec, "spec file (JSON)")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--backward", o->backward, "append the reverse-mode adjoint used by the backward");
  cmd->add_flag("--json", o->json,
                "print one JSON object: spec, name, signature, backward and ir (the text, one "
                "string per line)");
  cmd->callback([o] {
    const Spec spec = load_spec_file(o->spec);
    const ir::Program step = ir::build_step(spec);
    const std::string text = ir::describe(spec, o->backward ? ir::append_adjoint(step) : step);
    if (!o->json) {
      fmt::print("{}", text);
      return;
    }
    nlohmann::json lines = nlohmann::json::array();
    for (size_t start = 0; start < text.size();) {
      const size_t end = std::min(text.find('\n', start), text.size());
      lines.push_back(text.substr(start, end - start));
      start = end + 1;
    }
    const nlohmann::json j = {{"spec", o->spec},
                              {"name", spec.name},
                              {"signature", spec_signature(spec)},
                              {"backward", o->backward},
                              {"ir", lines}};
    fmt::print("{}\n", j.dump(2));
  });
}

}  // namespace

void register_compile_commands(CLI::App& app) {
  add_compile(app);
  add_emit(app);
}

void register_ir_command(CLI::App& app) { add_ir(app); }

}  // namespace ttt::cli
