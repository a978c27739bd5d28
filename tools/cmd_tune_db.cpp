// cmd_tune_db.cpp: the tuning database's commands: `tttc tune ls | show | explain | rm | clear |
// export | import` (docs/tuning.md). The present fingerprint comes from the GPU, or from
// TTTC_TUNE_FINGERPRINT_FILE (test-only); without either, staleness cannot be judged and says so.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "autotune/db.hpp"
#include "autotune/select.hpp"
#include "cache/fs.hpp"
#include "cli_common.hpp"
#include "runtime/tuned.hpp"
#include "tools/cmd_tune.hpp"
#include "tools/shape.hpp"

namespace ttt::cli {
namespace {

using namespace autotune;

std::optional<Fingerprint> present() {
  try {
    return jit::present_fingerprint(-1);
  } catch (const std::invalid_argument& e) {
    throw CommandExit(kUsage, std::string("error: ") + e.what());
  }
}

// "current", "stale", "corrupt" or "unknown" (no present fingerprint to compare with).
std::string status_of(const DbFile& d, const std::optional<Fingerprint>& now) {
  if (!d.usable()) return "corrupt";
  if (!now) return "unknown";
  return *d.fingerprint == *now ? "current" : "stale";
}

std::string ms(double v) { return v >= 0 ? fmt::format("{:.3f} ms", v) : "-"; }

nlohmann::json record_row(const std::string& key, const Record& r) {
  const Measurement* w = winner(r);
  const Measurement* h = heuristic_measurement(r);
  return {{"key", key},
          {"spec_name", r.spec_name},
          {"spec_signature", r.spec_signature},
          {"pass", to_string(r.pass)},
          {"bucket", r.bucket},
          {"shape", {{"B", r.B}, {"H", r.H}, {"T", r.T}}},
          {"timed_T", r.timed_T},
          {"candidates", r.candidates.size()},
          {"winner_ms", w ? w->median_ms : -1},
          {"heuristic_ms", h ? h->median_ms : -1},
          {"updated", r.updated}};
}

std::string record_line(const Record& r) {
  const Measurement* w = winner(r);
  const Measurement* h = heuristic_measurement(r);
  return fmt::format(
      "  {} ({}) {} w{}: {} candidates, winner {}, heuristic {}{}",
      r.spec_name.empty() ? "<unnamed>" : r.spec_name, r.spec_signature.substr(0, 12),
      to_string(r.pass), r.bucket, r.candidates.size(),
      w ? ms(w->median_ms) : "none (nothing checked)", h ? ms(h->median_ms) : "-",
      w && h && w->median_ms > 0 ? fmt::format(" ({:.2f}x)", h->median_ms / w->median_ms) : "");
}

void add_ls(CLI::App& tune) {
  struct Options {
    bool stale = false, json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = tune.add_subcommand(
      "ls",
      "List the tuning database's files (one per device fingerprint) and their records; stale "
      "files (another GPU, driver, NVRTC, template or tttc version) and corrupted ones are "
      "marked and never used.");
  cmd->add_flag("--stale", o->stale, "list only the stale files");
  cmd->add_flag("--json", o->json,
                "print one JSON object: dir, fingerprint (this machine's or null), files [{path, "
                "id, status, error, fingerprint, differs, records}]");
  cmd->callback([o] {
    const TuneDb db = TuneDb::at_default_location();
    const auto now = present();
    nlohmann::json files = nlohmann::json::array();
    std::map<std::string, int> counts;
    if (!o->json) fmt::print("tuning database {}\n", db.dir().string());
    if (!now && !o->json) fmt::print("no GPU here: files cannot be judged current or stale\n");
    for (const DbFile& d : db.load_all()) {
      const std::string status = status_of(d, now);
      if (o->stale && status != "stale") continue;
      ++counts[status];
      nlohmann::json differs = nlohmann::json::array();
      if (status == "stale")
        for (const auto& f : differing_fields(*d.fingerprint, *now)) differs.push_back(f);
      nlohmann::json records = nlohmann::json::array();
      for (const auto& [key, r] : d.records) records.push_back(record_row(key, r));
      files.push_back({{"path", d.path.string()},
                       {"id", d.path.stem().string()},
                       {"status", status},
                       {"error", d.error},
                       {"fingerprint", d.fingerprint ? to_json(*d.fingerprint) : nullptr},
                       {"differs", differs},
                       {"records", records}});
      if (o->json) continue;
      if (!d.usable()) {
        fmt::print("{}  corrupt: {} (not used; `tttc tune rm --stale` removes it)\n",
                   d.path.filename().string(), d.error);
        continue;
      }
      fmt::print("{}  {}  {} {} ({} SMs), driver {}, NVRTC {}, tttc {}: {} records\n",
                 d.path.filename().string(), status, d.fingerprint->gpu_name, d.fingerprint->arch,
                 d.fingerprint->sm_count, d.fingerprint->driver_version,
                 d.fingerprint->nvrtc_version, d.fingerprint->tttc_version, d.records.size());
      for (const auto& f : differs) fmt::print("  differs: {}\n", f.get<std::string>());
      for (const auto& [key, r] : d.records) fmt::print("{}\n", record_line(r));
    }
    if (o->json) {
      fmt::print("{}\n", nlohmann::json{{"dir", db.dir().string()},
                                        {"fingerprint", now ? to_json(*now) : nullptr},
                                        {"files", files}}
                             .dump(2));
      return;
    }
    fmt::print("{} files ({} current, {} stale, {} corrupt{})\n", files.size(), counts["current"],
               counts["stale"], counts["corrupt"],
               counts["unknown"] ? fmt::format(", {} unknown", counts["unknown"]) : "");
  });
}

// The usable files to read records from: this machine's, else (no GPU) every usable one.
std::vector<DbFile> files_to_read(const TuneDb& db, const std::optional<Fingerprint>& now) {
  if (now) {
    DbFile d = db.load(*now);
    if (!d.usable())
      throw CommandExit(kRuntimeError,
                        fmt::format("error: {}: {} (not used)", d.path.string(), d.error));
    return {std::move(d)};
  }
  std::vector<DbFile> out;
  for (DbFile& d : db.load_all())
    if (d.usable()) out.push_back(std::move(d));
  return out;
}

void add_show(CLI::App& tune) {
  struct Options {
    std::string spec, shape;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = tune.add_subcommand(
      "show",
      "Show every measured candidate of a spec's records on this GPU, fastest first, the "
      "winner marked '*' (the fastest that passed its check against the CPU reference).");
  cmd->add_option("SPEC", o->spec, "spec file (JSON)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--shape", o->shape, "B,H,T: only the record of this launch bucket");
  cmd->add_flag("--json", o->json, "print the records as JSON (the database's own form)");
  cmd->callback([o] {
    const Spec spec = load_spec_file(o->spec);
    const std::string signature = spec_signature(spec);
    const auto now = present();
    int bucket = 0;
    if (!o->shape.empty()) {
      if (!now)
        throw CommandExit(kUsage,
                          "error: --shape needs this GPU's SM count: no GPU here (or set "
                          "TTTC_TUNE_FINGERPRINT_FILE, test-only)");
      const auto [B, H, T] = parse_shape(o->shape);
      bucket = launch_bucket(1LL * B * H, now->sm_count);
    }
    nlohmann::json out = nlohmann::json::array();
    for (const DbFile& d : files_to_read(TuneDb::at_default_location(), now))
      for (const auto& [key, r] : d.records) {
        if (r.spec_signature != signature || (bucket && r.bucket != bucket)) continue;
        if (o->json) {
          out.push_back(to_json(r));
          continue;
        }
        const Measurement* w = winner(r);
        Schedule heuristic;
        try {
          heuristic = schedule_from_json(nlohmann::json::parse(r.heuristic));
        } catch (const std::exception&) {
        }
        fmt::print("{} {} bucket w{} (tuned at B={} H={} T={}, timed on T={}, {}; {})\n", o->spec,
                   to_string(r.pass), r.bucket, r.B, r.H, r.T, r.timed_T, r.updated,
                   d.fingerprint->gpu_name);
        fmt::print("    {:>10} {:>17} {:>9} {:>5} {:>7} {:>8}  {}\n", "median", "spread", "check",
                   "regs", "spills", "shared", "schedule (vs the heuristic)");
        for (const Measurement* m : sorted_candidates(r))
          fmt::print("  {} {:>10} {:>17} {:>9} {:>5} {:>7} {:>8}  {}{}\n", m == w ? '*' : ' ',
                     ms(m->median_ms),
                     m->min_ms >= 0 ? fmt::format("{:.3f}-{:.3f}", m->min_ms, m->max_ms) : "-",
                     m->check, m->registers, m->spill_bytes, m->shared_bytes,
                     schedule_summary(m->schedule, heuristic),
                     m->note.empty() ? "" : "  [" + m->note.substr(0, 80) + "]");
        out.push_back(key);
      }
    if (o->json) {
      fmt::print("{}\n", out.dump(2));
      return;
    }
    if (out.empty())
      throw CommandExit(kUsage, fmt::format("error: no tuning record for {}{} {}", o->spec,
                                            bucket ? fmt::format(" in bucket w{}", bucket) : "",
                                            now ? "on this GPU" : "(no GPU here: every file)"));
  });
}

void add_explain(CLI::App& tune) {
  struct Options {
    std::string spec, shape;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = tune.add_subcommand(
      "explain",
      "Say which schedule get_kernel would use for a spec and launch shape on this GPU, and why: "
      "the tuned record and its bucket, or why the heuristic (no record, stale records and the "
      "fingerprint fields that differ, a corrupted file, TTTC_AUTOTUNE=off).");
  cmd->add_option("SPEC", o->spec, "spec file (JSON)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--shape", o->shape, "B,H,T of the launch (default: unknown size)");
  cmd->add_flag("--json", o->json,
                "print one JSON object: source (tuned|heuristic), why, bucket, records, "
                "schedule, fingerprint, files [{path, status, differs, records}]");
  cmd->callback([o] {
    const Spec spec = load_spec_file(o->spec);
    const std::string signature = spec_signature(spec);
    long long heads = 0;
    if (!o->shape.empty()) {
      const auto [B, H, T] = parse_shape(o->shape);
      heads = 1LL * B * H;
    }
    const auto now = present();
    autotune::Choice choice;
    if (!now) {
      choice.why = "no GPU here to look up tuned records for";
    } else {
      try {
        choice = jit::tuned_schedule(spec, jit::target_for(now->arch, -1), -1, heads);
      } catch (const std::invalid_argument& e) {
        choice.why = e.what();
      }
    }
    const std::string source = choice.schedule ? "tuned" : "heuristic";
    nlohmann::json files = nlohmann::json::array();
    for (const DbFile& d : TuneDb::at_default_location().load_all()) {
      nlohmann::json keys = nlohmann::json::array();
      for (const auto& [key, r] : d.records)
        if (r.spec_signature == signature) keys.push_back(key);
      const std::string status = status_of(d, now);
      if (keys.empty() && status != "corrupt") continue;
      nlohmann::json differs = nlohmann::json::array();
      if (status == "stale")
        for (const auto& f : differing_fields(*d.fingerprint, *now)) differs.push_back(f);
      files.push_back({{"path", d.path.string()},
                       {"status", status},
                       {"error", d.error},
                       {"differs", differs},
                       {"records", keys}});
    }
    if (o->json) {
      fmt::print("{}\n",
                 nlohmann::json{{"spec", o->spec},
                                {"source", source},
                                {"why", choice.why},
                                {"bucket", choice.bucket},
                                {"records", choice.records},
                                {"schedule", choice.schedule ? schedule_to_json(*choice.schedule)
                                                             : nlohmann::json()},
                                {"fingerprint", now ? to_json(*now) : nullptr},
                                {"files", files}}
                     .dump(2));
      return;
    }
    if (now)
      fmt::print("this machine: {} {} ({} SMs), driver {}, NVRTC {}, tttc {} (database file {})\n",
                 now->gpu_name, now->arch, now->sm_count, now->driver_version, now->nvrtc_version,
                 now->tttc_version, fingerprint_id(*now));
    fmt::print("{}: {} schedule: {}\n", o->spec, source, choice.why);
    for (const auto& k : choice.records) fmt::print("  record {}\n", k);
    for (const auto& f : files) {
      const std::string status = f["status"];
      if (status == "current") continue;
      fmt::print("{} ({}{}): {} records for this spec, not used\n", f["path"].get<std::string>(),
                 status, status == "corrupt" ? ": " + f["error"].get<std::string>() : "",
                 f["records"].size());
      for (const auto& d : f["differs"]) fmt::print("  differs: {}\n", d.get<std::string>());
    }
  });
}

void add_rm(CLI::App& tune) {
  struct Options {
    std::string match;
    bool stale = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = tune.add_subcommand(
      "rm",
      "Remove records whose key (signature/pass/bucket) or spec name contains PATTERN, or "
      "every stale and corrupted database file.");
  auto* match = cmd->add_option("--match", o->match, "substring of a record key or spec name");
  auto* stale = cmd->add_flag("--stale", o->stale,
                              "remove the files of other fingerprints, and corrupted files");
  match->excludes(stale);
  cmd->callback([o] {
    const TuneDb db = TuneDb::at_default_location();
    if (!o->match.empty()) {
      fmt::print("removed {} records\n", db.remove_matching(o->match));
      return;
    }
    if (!o->stale)
      throw CommandExit(kUsage, "error: tttc tune rm: give --match PATTERN or --stale");
    const auto now = present();
    size_t removed = 0;
    for (const DbFile& d : db.load_all()) {
      const std::string status = status_of(d, now);
      if (status == "unknown")
        throw CommandExit(kUsage,
                          "error: tttc tune rm --stale: no GPU here to tell stale files from "
                          "current ones");
      if (status == "current") continue;
      db.remove_file(d.path);
      fmt::print("removed {} ({})\n", d.path.filename().string(), status);
      ++removed;
    }
    fmt::print("removed {} files\n", removed);
  });
}

void add_clear(CLI::App& tune) {
  auto* cmd = tune.add_subcommand("clear", "Delete the whole tuning database (every device's).");
  cmd->callback([] {
    const TuneDb db = TuneDb::at_default_location();
    fmt::print("removed {} files from {}\n", db.clear(), db.dir().string());
  });
}

void add_export_import(CLI::App& tune) {
  auto file = std::make_shared<std::string>();
  auto* ex = tune.add_subcommand(
      "export",
      "Write this GPU's tuning records to FILE (to import on identical GPUs of a cluster).");
  ex->add_option("FILE", *file, "output file")->required();
  ex->callback([file] {
    const auto now = present();
    if (!now)
      throw CommandExit(kNoGpu,
                        "no GPU: tttc tune export writes this GPU's records; there is "
                        "no GPU here");
    const TuneDb db = TuneDb::at_default_location();
    const DbFile d = db.load(*now);
    if (!d.usable())
      throw CommandExit(kRuntimeError,
                        fmt::format("error: {}: {} (not exported)", d.path.string(), d.error));
    if (d.records.empty())
      throw CommandExit(kUsage, "error: no tuning records for this GPU to export");
    if (auto ec = cache::write_file_atomic(*file, serialize(*now, d.records), {.durable = false}))
      throw CommandExit(kRuntimeError, fmt::format("error: {}: {}", *file, ec.message()));
    fmt::print("exported {} records to {}\n", d.records.size(), *file);
  });
  auto in = std::make_shared<std::string>();
  auto* im = tune.add_subcommand(
      "import", "Merge the records of FILE (from `tttc tune export`) into the tuning database.");
  im->add_option("FILE", *in, "a file written by tttc tune export")
      ->required()
      ->check(CLI::ExistingFile);
  im->callback([in] {
    std::error_code ec;
    const std::string text = cache::read_file(*in, ec, 64ull << 20);
    if (ec) throw CommandExit(kUsage, fmt::format("error: {}: {}", *in, ec.message()));
    const DbFile d = parse_db(text, *in);
    if (!d.usable())
      throw CommandExit(kUsage, fmt::format("error: {}: {} (nothing imported)", *in, d.error));
    std::vector<Record> records;
    for (const auto& [key, r] : d.records) records.push_back(r);
    TuneDb::at_default_location().put(*d.fingerprint, records);
    fmt::print("imported {} records for {} {}\n", records.size(), d.fingerprint->gpu_name,
               d.fingerprint->arch);
    if (const auto now = present(); now && *now != *d.fingerprint)
      for (const auto& f : differing_fields(*d.fingerprint, *now))
        fmt::print("  stale on this machine: {}\n", f);
  });
}

}  // namespace

void register_tune_db_commands(CLI::App& tune) {
  add_ls(tune);
  add_show(tune);
  add_explain(tune);
  add_rm(tune);
  add_clear(tune);
  add_export_import(tune);
}

}  // namespace ttt::cli
