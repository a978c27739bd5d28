// cmd_schedule.cpp: `tttc schedule SPEC`: the schedule a spec's kernels get (the heuristic, or
// with --tuned the tuned record's) as a complete JSON file to edit and pass back with --schedule.
// The heuristic's launch-size choices (the splits for few heads) need the launch size (--shape)
// and the SM count (the GPU present, or --sms).
#include <fmt/format.h>

#include "cli_common.hpp"
#include "runtime/driver.hpp"
#include "runtime/tuned.hpp"
#include "tools/shape.hpp"

namespace ttt::cli {

void register_schedule_command(CLI::App& app) {
  struct Options {
    std::string spec, arch, shape;
    int sms = 0;
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
  cmd->add_option("--shape", o->shape,
                  "B,H,T: the launch size (the heuristic splits the kernels of few heads: needs "
                  "the SM count) or the launch bucket of the tuned record (--tuned)");
  cmd->add_option("--sms", o->sms,
                  "SM count of the GPU the schedule is for (default: the GPU present, when "
                  "--arch is left out or names its arch)")
      ->check(CLI::Range(1, 4096));
  cmd->add_flag("--tuned", o->tuned,
                "the tuned record's schedule for this GPU (an error when there is none)");
  cmd->callback([o] {
    const Spec spec = load_spec_file(o->spec);
    const std::string arch = choose_arch(o->arch);
    Target target = Target::for_arch(arch);
    if (o->sms > 0)
      target.sm_count = o->sms;
    else if (driver::status().available && driver::current_device().arch == arch)
      target.sm_count = driver::current_device().sm_count;
    long long heads = 0;
    if (!o->shape.empty()) {
      const auto [B, H, T] = parse_shape(o->shape);
      heads = 1LL * B * H;
      if (target.sm_count == 0 && !o->tuned)
        fmt::print(stderr,
                   "note: no GPU of {} here and no --sms: the schedule does not depend on "
                   "--shape\n",
                   arch);
    }
    Schedule s = default_schedule(spec, target, heads);
    if (o->tuned) {
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
