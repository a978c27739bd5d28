// cmd_tune.cpp: `tttc tune SPEC... --shape B,H,T`: the search on the GPU (autotune/tuner.hpp),
// with progress on stderr, a summary table or --json on stdout, a wall-time budget and SIGINT
// handling (what was measured is kept; running the same command again resumes). The database
// subcommands (ls, show, ...) are in cmd_tune_db.cpp.
#include "tools/cmd_tune.hpp"

#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <nlohmann/json.hpp>

#include "autotune/tuner.hpp"
#include "cache/config.hpp"
#include "cli_common.hpp"
#include "runtime/driver.hpp"
#include "tools/shape.hpp"

namespace ttt::cli {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_sigint(int) {
  g_interrupted = true;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process at once
}

void print_summary(const nlohmann::json& jobs) {
  fmt::print("{:<28} {:<14} {:>4} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8} {:>6} {:>7}\n", "spec",
             "shape", "wave", "heur fwd", "tuned fwd", "speedup", "heur bwd", "tuned bwd",
             "speedup", "tried", "wall s");
  for (const auto& j : jobs) {
    auto ms = [](const nlohmann::json& p, const char* k) {
      const double v = p.is_null() ? -1 : p.value(k, -1.0);
      return v >= 0 ? fmt::format("{:.3f}", v) : std::string("-");
    };
    auto x = [](const nlohmann::json& p) {
      const double v = p.is_null() ? 0 : p.value("speedup", 0.0);
      return v > 0 ? fmt::format("{:.2f}x", v) : std::string("-");
    };
    const auto& passes = j["passes"];
    const nlohmann::json none;
    const auto& f = passes.contains("forward") ? passes["forward"] : none;
    const auto& b = passes.contains("backward") ? passes["backward"] : none;
    const auto& s = j["shape"];
    fmt::print("{:<28} {:<14} {:>4} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8} {:>6} {:>7.1f}\n",
               j["spec"].get<std::string>(),
               fmt::format("{},{},{}", s["B"].get<int>(), s["H"].get<int>(), s["T"].get<int>()),
               fmt::format("w{}", j["bucket"].get<int>()), ms(f, "heuristic_ms"), ms(f, "tuned_ms"),
               x(f), ms(b, "heuristic_ms"), ms(b, "tuned_ms"), x(b),
               j["candidates"]["timed"].get<int>(), j["wall_s"].get<double>());
  }
}

}  // namespace

void register_tune_commands(CLI::App& app) {
  struct Options {
    std::vector<std::string> specs, shapes;
    std::string budget = "10m";
    int runs = 10, repeats = 3, jobs = 0;
    size_t max_candidates = 0;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "tune",
      "Tune the schedules of specs on this GPU: enumerate candidates from the declared knobs, "
      "prune, compile in parallel, time on a shortened T, check the fastest per pass against the "
      "CPU reference and record every measurement in the tuning database (docs/tuning.md). "
      "Interrupted runs (Ctrl-C, budget) keep what they measured; the same command resumes. "
      "Subcommands inspect and edit the database. get_kernel uses the records "
      "(TTTC_AUTOTUNE=cached, the default); TTTC_AUTOTUNE=on also tunes a launch bucket without a "
      "record on its first use, within TTTC_AUTOTUNE_BUDGET (default 20s); TTTC_AUTOTUNE=off "
      "ignores them.");
  cmd->add_option("SPEC", o->specs, "spec files (JSON)")->check(CLI::ExistingFile);
  cmd->add_option("--shape", o->shapes, "B,H,T to tune for (repeatable; default 16,12,2048)");
  cmd->add_option("--budget", o->budget,
                  "wall-time budget for the whole run, e.g. 90s, 10m, 1h (default 10m)");
  cmd->add_option("--runs", o->runs, "timed launches per repeat (default 10)")
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--repeats", o->repeats,
                  "repeats per candidate: the median of their medians, and the spread (default 3)")
      ->check(CLI::Range(1, 100));
  cmd->add_option("--jobs", o->jobs, "compile threads (default: one per hardware thread)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--max-candidates", o->max_candidates,
                  "time at most this many candidates per spec and shape (nearest to the "
                  "heuristic first; default: no cap)");
  cmd->add_flag("--json", o->json,
                "print one JSON object {jobs: [...]}: per spec and shape its bucket, timed_T, "
                "candidate counts, per pass heuristic_ms, tuned_ms, speedup and schedule");
  register_tune_db_commands(*cmd);
  cmd->callback([o, cmd] {
    if (!cmd->get_subcommands().empty()) return;  // a database subcommand ran
    if (o->specs.empty())
      throw CommandExit(kUsage,
                        "error: tttc tune: give spec files to tune, or a subcommand (ls, show, "
                        "explain, rm, clear, export, import); see --help");
    const auto budget = cache::parse_duration(o->budget);
    if (!budget || budget->count() <= 0)
      throw CommandExit(kUsage, fmt::format("error: --budget {}: expected a duration such as "
                                            "90s, 10m or 1h",
                                            o->budget));
    if (o->shapes.empty()) o->shapes.push_back("16,12,2048");
    std::vector<autotune::TuneJob> jobs;
    for (const auto& path : o->specs) {
      const Spec spec = load_spec_file(path);
      for (const auto& text : o->shapes) {
        const auto [B, H, T] = parse_shape(text);
        jobs.push_back({.label = path, .spec = spec, .B = B, .H = H, .T = T});
      }
    }
    if (!driver::status().available)
      throw CommandExit(kNoGpu, "no GPU: " + driver::status().reason);
    g_interrupted = false;
    std::signal(SIGINT, on_sigint);
    const nlohmann::json result = autotune::tune(jobs, {.budget = *budget,
                                                        .runs = o->runs,
                                                        .repeats = o->repeats,
                                                        .jobs = o->jobs,
                                                        .max_candidates = o->max_candidates,
                                                        .log =
                                                            [](const std::string& line) {
                                                              fmt::print(stderr, "{}\n", line);
                                                              std::fflush(stderr);
                                                            },
                                                        .stop = &g_interrupted});
    std::signal(SIGINT, SIG_DFL);
    if (o->json)
      fmt::print("{}\n", nlohmann::json{{"jobs", result}}.dump(2));
    else
      print_summary(result);
    if (result.size() < jobs.size() && !g_interrupted)
      fmt::print(stderr, "budget reached: {} of {} spec/shape pairs tuned; run again to go on\n",
                 result.size(), jobs.size());
    if (g_interrupted)
      throw CommandExit(130,
                        "interrupted: what was measured is in the tuning database; run the same "
                        "command again to resume");
  });
}

}  // namespace ttt::cli
