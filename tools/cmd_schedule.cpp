// cmd_schedule.cpp: `tttc schedule SPEC`: the schedule a spec's kernels get (the heuristic, or
// with --tuned the tuned record's) as a complete JSON file to edit and pass back with --schedule.
#include <fmt/format.h>

#include "cli_common.hpp"
#include "runtime/tuned.hpp"
#include "tools/shape.hpp"

namespace ttt::cli {

void register_schedule_command(CLI::App& app) {
  struct Options {
    std::string spec, arch, shape;
    bool tuned = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "schedule",
      "Print the schedule of a spec's kernels as a complete, editable JSON file (every field; "
      "see compiler/schedule.hpp): the heuristic's for the arch, or with --tuned the tuned "
      "record's for this GPU. Edit it and pass it to compile, check, run or bench with "
      "--schedule FILE.");
  cmd->add_option("SPEC", o->spec, "spec file (JSON)")->required()->check(CLI::ExistingFile);
  add_arch_option(*cmd, o->arch);
  cmd->add_option("--shape", o->shape, "B,H,T: the launch bucket of the tuned record (--tuned)");
  cmd->add_flag("--tuned", o->tuned,
                "the tuned record's schedule for this GPU (an error when there is none)");
  cmd->callback([o] {
    const Spec spec = load_spec_file(o->spec);
    const std::string arch = choose_arch(o->arch);
    const Target target = Target::for_arch(arch);
    Schedule s = default_schedule(spec, target);
    if (o->tuned) {
      long long heads = 0;
      if (!o->shape.empty()) {
        const auto [B, H, T] = parse_shape(o->shape);
        heads = 1LL * B * H;
      }
      const auto choice = jit::tuned_schedule(spec, target, -1, heads);
      if (!choice.schedule)
        throw CommandExit(kUsage, "error: --tuned: no tuned schedule: " + choice.why);
      s = *choice.schedule;
      fmt::print(stderr, "{}: {}\n", o->spec, choice.why);
    }
    if (auto reasons = validate(spec, s, target); !reasons.empty())
      throw CommandExit(kUsage, fmt::format("error: the schedule is not valid for {}: {}", arch,
                                            reasons.front()));
    fmt::print("{}\n", schedule_to_json(s).dump(2));
  });
}

}  // namespace ttt::cli
