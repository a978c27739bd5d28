// cmd_cache.cpp: `tttc cache ls|show|stats|explain|verify|rm|gc|clear`, the command-line face of
// the kernel cache (cache/). Each subcommand is a thin layer over cache/maintenance.hpp that
// formats a readable table or, with --json, machine-readable output. Computing a spec's key
// inputs needs the JIT, so `explain SPEC` gets it from the caller (tools/spec_keys.cpp).
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cache/config.hpp"
#include "cache/disk_store.hpp"
#include "cache/maintenance.hpp"
#include "cache/stats.hpp"
#include "tools/cli_common.hpp"

namespace ttt::cli {
namespace {

using cache::Clock;

struct CacheArgs {
  std::string dir;  // empty: cache::default_cache_dir()
  bool json = false;
  bool source = false;
  std::string key_a, key_b;
  std::string pattern;
  std::string max_size;
  std::vector<std::string> keys;
  bool dry_run = false;
  bool zero = false;
  std::string arch;
  SpecKeyInputs spec_keys;
};

// The directory must pass the cache's trust rules (cache/trust.hpp) before any command reads or
// deletes anything in it: its entries could be forged, and a symbolic link inside it could point
// the removal commands at files outside the cache. For verify that is a failed check (exit 1).
cache::DiskStore open_store(const CacheArgs& opt, int untrusted_exit = kUsage) {
  const std::filesystem::path dir =
      opt.dir.empty() ? cache::default_cache_dir() : std::filesystem::path(opt.dir);
  // The read-only shared cache (TTTC_CACHE_READONLY_DIR) may be root's, as when the JIT reads it.
  const bool shared = !opt.dir.empty() && dir == cache::readonly_cache_dir();
  cache::DiskStore store(dir, shared ? cache::TrustPolicy::current_user_or_root()
                                     : cache::TrustPolicy::current_user());
  if (auto why = store.trust_problem())
    throw CommandExit(untrusted_exit, fmt::format("error: not using cache directory {}: {}",
                                                  store.root().string(), *why));
  return store;
}

std::string short_key(const std::string& key) { return key.substr(0, 12); }

std::string str_field(const nlohmann::json& meta, const char* name) {
  if (!meta.is_object() || !meta.contains(name)) return "-";
  const auto& v = meta[name];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

std::string ago(Clock::time_point t, Clock::time_point now) {
  if (t == Clock::time_point{}) return "-";
  return cache::format_duration(std::chrono::duration_cast<std::chrono::seconds>(now - t)) + " ago";
}

// Columns padded to their widest cell; columns listed in `right` are right-aligned (numbers).
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows, const std::vector<int>& right) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      const bool r = std::find(right.begin(), right.end(), static_cast<int>(c)) != right.end();
      line += r ? fmt::format("{:>{}}", row[c], width[c]) : fmt::format("{:<{}}", row[c], width[c]);
      if (c + 1 < row.size()) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  };
  print_row(header);
  for (const auto& row : rows) print_row(row);
}

nlohmann::json summary_json(const cache::EntrySummary& e) {
  nlohmann::json j = {{"key", e.key},
                      {"file_size", e.file_size},
                      {"last_use", cache::format_utc(e.last_use)},
                      {"last_use_unix_ns", cache::to_unix_ns(e.last_use)}};
  if (!e.error.empty()) j["error"] = e.error;
  if (e.metadata.is_object()) {
    for (const char* f : {"spec_name", "kernel", "arch", "binary_kind", "binary_size", "created",
                          "compile_ms", "registers", "shared_bytes"})
      if (e.metadata.contains(f)) j[f] = e.metadata[f];
    // Named as in `tttc compile --json` (the entry metadata calls it "spills").
    if (e.metadata.contains("spills")) j["spill_bytes"] = e.metadata["spills"];
  }
  return j;
}

std::vector<std::string> summary_row(const cache::EntrySummary& e, Clock::time_point now) {
  if (!e.error.empty())
    return {short_key(e.key),
            "(unreadable: " + e.error + ")",
            "",
            "",
            "",
            cache::format_size(e.file_size),
            "",
            "",
            ago(e.last_use, now)};
  const auto& m = e.metadata;
  std::string compile = m.contains("compile_ms") && m["compile_ms"].is_number()
                            ? fmt::format("{:.0f} ms", m["compile_ms"].get<double>())
                            : "-";
  return {short_key(e.key),
          str_field(m, "spec_name"),
          str_field(m, "kernel"),
          str_field(m, "arch"),
          str_field(m, "binary_kind"),
          cache::format_size(e.file_size),
          str_field(m, "registers"),
          compile,
          ago(e.last_use, now)};
}

void print_removed(const std::vector<cache::EntrySummary>& removed) {
  if (removed.empty()) return;
  const auto now = Clock::now();
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : removed) rows.push_back(summary_row(e, now));
  print_table({"REMOVED", "SPEC", "KERNEL", "ARCH", "KIND", "SIZE", "REGS", "COMPILE", "LAST USE"},
              rows, {5, 6, 7});
}

std::string entries_word(std::size_t n) {
  return fmt::format("{} {}", n, n == 1 ? "entry" : "entries");
}

std::uint64_t bytes_of(const std::vector<cache::EntrySummary>& entries) {
  std::uint64_t total = 0;
  for (const auto& e : entries) total += e.file_size;
  return total;
}

void run_ls(const CacheArgs& opt) {
  const auto store = open_store(opt);
  const auto entries = cache::list_entries(store);
  const std::uint64_t total = bytes_of(entries);
  if (opt.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& e : entries) list.push_back(summary_json(e));
    std::cout << nlohmann::json{{"dir", store.root().string()},
                                {"total_bytes", total},
                                {"max_size", cache::default_max_size()},
                                {"entries", list}}
                     .dump(2)
              << "\n";
    return;
  }
  if (entries.empty()) {
    std::cout << "cache is empty (" << store.root().string() << ")\n";
    return;
  }
  const auto now = Clock::now();
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : entries) rows.push_back(summary_row(e, now));
  print_table({"KEY", "SPEC", "KERNEL", "ARCH", "KIND", "SIZE", "REGS", "COMPILE", "LAST USE"},
              rows, {5, 6, 7});
  for (const auto& e : entries)
    if (!e.error.empty()) std::cout << fmt::format("unreadable {}: {}\n", e.key, e.error);
  std::cout << fmt::format("{}, {} in {} (cap {})\n", entries_word(entries.size()),
                           cache::format_size(total), store.root().string(),
                           cache::format_size(cache::default_max_size()));
}

cache::Entry load_or_exit(const cache::DiskStore& store, const std::string& key_arg) {
  std::string key;
  try {
    key = cache::resolve_key(store, key_arg);
  } catch (const cache::KeyLookupError& e) {
    throw CommandExit(kUsage, std::string("error: ") + e.what());
  }
  auto loaded = store.load(key);
  if (loaded.status != cache::DiskStore::LoadResult::Status::ok)
    throw CommandExit(kCheckFailed,
                      fmt::format("error: cache entry {} is unusable: {}", key, loaded.detail));
  return std::move(loaded.entry);
}

void run_show(const CacheArgs& opt) {
  const auto store = open_store(opt);
  const cache::Entry entry = load_or_exit(store, opt.key_a);
  nlohmann::json meta = entry.metadata;
  const std::string source = meta.value("source", "");
  if (opt.json) {
    if (!opt.source) meta.erase("source");
    if (meta.contains("spills")) meta["spill_bytes"] = meta["spills"];
    meta["file"] = store.entry_path(entry.key).string();
    if (auto used = store.last_use(entry.key)) meta["last_use"] = cache::format_utc(*used);
    std::cout << meta.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("key           {}\n", entry.key);
  std::cout << fmt::format("file          {}\n", store.entry_path(entry.key).string());
  for (const char* f : {"spec_name", "kernel", "arch", "binary_kind", "binary_size", "created",
                        "compile_ms", "registers", "shared_bytes", "spills"})
    std::cout << fmt::format("{:<14}{}\n", f, str_field(meta, f));
  if (auto used = store.last_use(entry.key))
    std::cout << fmt::format("{:<14}{} ({})\n", "last_use", cache::format_utc(*used),
                             ago(*used, Clock::now()));
  if (meta.contains("key_inputs") && meta["key_inputs"].is_object()) {
    std::cout << "key inputs:\n";
    for (const auto& [name, value] : meta["key_inputs"].items())
      std::cout << fmt::format("  {:<16}{}\n", name,
                               value.is_string() ? value.get<std::string>() : value.dump());
  }
  for (const char* f : {"details", "build"})
    if (meta.contains(f) && !meta[f].empty())
      std::cout << fmt::format("{}: {}\n", f, meta[f].dump());
  if (opt.source) std::cout << "source:\n" << source << (source.ends_with('\n') ? "" : "\n");
}

nlohmann::json diffs_json(const std::vector<cache::KeyInputDiff>& diffs) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& d : diffs) {
    nlohmann::json j = {{"field", d.field}, {"a", d.a}, {"b", d.b}};
    if (!d.note.empty()) j["note"] = d.note;
    list.push_back(j);
  }
  return list;
}

void print_diffs(const std::vector<cache::KeyInputDiff>& diffs, const char* a, const char* b) {
  for (const auto& d : diffs) {
    std::cout << fmt::format("  {}\n    {}: {}\n    {}: {}\n", d.field, a, d.a, b, d.b);
    if (!d.note.empty()) std::cout << fmt::format("    {}\n", d.note);
  }
}

// `explain SPEC`: for each kernel of the spec, a hit, or the nearest entry (fewest differing key
// inputs; the most recently used among equals) and what differs from it.
void run_explain_spec(const CacheArgs& opt) {
  if (!opt.spec_keys) throw CommandExit(kUsage, "error: explain SPEC is not available here");
  const auto store = open_store(opt);
  const std::vector<cache::KeyInputs> wanted = opt.spec_keys(opt.key_a, opt.arch);
  const auto entries = cache::list_entries(store);  // most recent first
  nlohmann::json out = nlohmann::json::array();
  for (const cache::KeyInputs& in : wanted) {
    const std::string key = cache::compute_key(in);
    const nlohmann::json meta = {{"key_inputs", cache::key_inputs_json(in)}, {"source", in.source}};
    nlohmann::json row = {
        {"spec", opt.key_a}, {"kernel", in.kernel}, {"arch", in.arch}, {"key", key}};
    const auto hit = std::find_if(entries.begin(), entries.end(),
                                  [&](const auto& e) { return e.key == key && e.error.empty(); });
    std::optional<std::pair<std::string, std::vector<cache::KeyInputDiff>>> nearest;
    if (hit == entries.end()) {
      for (const auto& e : entries) {
        if (!e.error.empty() || !e.metadata.is_object()) continue;
        auto diffs = cache::diff_key_inputs(meta, e.metadata);
        if (!nearest || diffs.size() < nearest->second.size()) nearest.emplace(e.key, diffs);
      }
    }
    row["cache"] = hit != entries.end() ? "hit" : "miss";
    if (nearest) {
      row["nearest"] = nearest->first;
      row["differences"] = diffs_json(nearest->second);
    }
    if (opt.json) {
      out.push_back(row);
      continue;
    }
    std::cout << fmt::format("{} {} {}: key {} ", opt.key_a, in.kernel, in.arch, short_key(key));
    if (hit != entries.end()) {
      std::cout << "is in the cache (a hit)\n";
    } else if (!nearest) {
      std::cout << "is not in the cache, which has no other entries to compare with\n";
    } else {
      std::cout << fmt::format(
          "is not in the cache; the nearest entry, {}, differs in {} key input(s):\n",
          short_key(nearest->first), nearest->second.size());
      print_diffs(nearest->second, "wanted", "cached");
    }
  }
  if (opt.json) std::cout << out.dump(2) << "\n";
}

void run_explain(const CacheArgs& opt) {
  if (opt.key_b.empty()) return run_explain_spec(opt);
  const auto store = open_store(opt);
  std::vector<cache::KeyInputDiff> diffs;
  std::string a, b;
  try {
    a = cache::resolve_key(store, opt.key_a);
    b = cache::resolve_key(store, opt.key_b);
    diffs = cache::explain(store, a, b);
  } catch (const cache::KeyLookupError& e) {
    throw CommandExit(kUsage, std::string("error: ") + e.what());
  }
  if (opt.json) {
    std::cout << nlohmann::json{{"a", a}, {"b", b}, {"differences", diffs_json(diffs)}}.dump(2)
              << "\n";
    return;
  }
  if (diffs.empty()) {
    std::cout << fmt::format("{} and {} have identical key inputs\n", short_key(a), short_key(b));
    return;
  }
  std::cout << fmt::format("{} (A) and {} (B) differ in {} key input(s):\n", short_key(a),
                           short_key(b), diffs.size());
  print_diffs(diffs, "A", "B");
}

void run_verify(const CacheArgs& opt) {
  const auto store = open_store(opt, kCheckFailed);
  const std::size_t count = store.list().size();
  const auto bad = cache::verify(store);
  std::vector<std::string> keys;
  for (const auto& b : bad) keys.push_back(b.key);
  if (opt.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& b : bad) list.push_back({{"key", b.key}, {"reason", b.reason}});
    std::cout << nlohmann::json{{"dir", store.root().string()},
                                {"entries", count},
                                {"ok", bad.empty()},
                                {"bad", list}}
                     .dump(2)
              << "\n";
    if (!bad.empty()) throw CommandExit(kCheckFailed, "");
    return;
  }
  if (bad.empty()) {
    std::cout << fmt::format("verified {} in {}: all OK\n", entries_word(count),
                             store.root().string());
    return;
  }
  for (const auto& b : bad) std::cout << fmt::format("BAD {}: {}\n", b.key, b.reason);
  std::cout.flush();
  throw CommandExit(
      kCheckFailed,
      fmt::format("error: {} of {} cache entries failed verification: {}\n(they are quarantined "
                  "and rebuilt on next use; `tttc cache rm KEY...` or `tttc cache clear` removes "
                  "them now)",
                  bad.size(), count, fmt::join(keys, ", ")));
}

void report_removed(const std::vector<cache::EntrySummary>& removed, bool dry_run) {
  print_removed(removed);
  std::cout << fmt::format("{} {} ({})\n", dry_run ? "would remove" : "removed",
                           entries_word(removed.size()), cache::format_size(bytes_of(removed)));
}

void run_rm(const CacheArgs& opt) {
  if (opt.keys.empty() == opt.pattern.empty())
    throw CommandExit(kUsage, "error: cache rm takes KEY... or --match PATTERN (one of them)");
  const auto store = open_store(opt);
  std::vector<cache::EntrySummary> removed;
  try {
    if (!opt.keys.empty()) {
      removed = cache::remove_keys(store, opt.keys, opt.dry_run);
    } else {
      const auto pattern = cache::EntryPattern::parse(opt.pattern);
      removed = cache::remove_matching(store, pattern, Clock::now(), opt.dry_run);
    }
  } catch (const cache::KeyLookupError& e) {
    throw CommandExit(kUsage, std::string("error: ") + e.what());
  } catch (const std::invalid_argument& e) {
    throw CommandExit(kUsage, std::string("error: ") + e.what());
  }
  if (removed.empty()) {
    std::cout << fmt::format("no cache entries match '{}'; nothing removed\n", opt.pattern);
    return;
  }
  report_removed(removed, opt.dry_run);
}

void run_gc(const CacheArgs& opt) {
  std::uint64_t max_size = cache::default_max_size();
  if (!opt.max_size.empty()) {
    auto parsed = cache::parse_size(opt.max_size);
    if (!parsed)
      throw CommandExit(kUsage, fmt::format("error: --max-size '{}' is not a size (e.g. 500M, 2G)",
                                            opt.max_size));
    max_size = *parsed;
  }
  const auto store = open_store(opt);
  const auto result = cache::evict_lru(store, max_size, {.dry_run = opt.dry_run});
  print_removed(result.removed);
  std::cout << fmt::format(
      "{} {}, {} of quarantined files and {} abandoned temp files; cache size {} -> {} "
      "(max {})\n",
      opt.dry_run ? "would remove" : "removed", entries_word(result.removed.size()),
      cache::format_size(result.quarantine_bytes_removed), result.temp_files_removed,
      cache::format_size(result.bytes_before), cache::format_size(result.bytes_after),
      cache::format_size(max_size));
}

void run_stats(const CacheArgs& opt) {
  const auto store = open_store(opt);
  if (opt.zero) {
    if (!cache::zero_stats(store))
      throw CommandExit(kRuntimeError, fmt::format("error: cannot write the statistics in {}",
                                                   store.root().string()));
    std::cout << fmt::format("statistics of {} reset to zero\n", store.root().string());
    return;
  }
  const auto files = store.list();
  std::uint64_t bytes = 0;
  for (const auto& f : files) bytes += f.size;
  const cache::DiskStats s = cache::read_stats(store);
  const std::uint64_t lookups = s.hits + s.misses;
  if (opt.json) {
    nlohmann::json j = {
        {"dir", store.root().string()},          {"entries", files.size()}, {"total_bytes", bytes},
        {"max_size", cache::default_max_size()}, {"hits", s.hits},          {"misses", s.misses}};
    if (s.since) j["since"] = cache::format_utc(*s.since);
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("cache directory  {}\n", store.root().string());
  std::cout << fmt::format("entries          {}\n", files.size());
  std::cout << fmt::format("size             {} (cap {})\n", cache::format_size(bytes),
                           cache::format_size(cache::default_max_size()));
  std::cout << fmt::format("hits             {}{}\n", s.hits,
                           lookups ? fmt::format(" ({:.1f}%)", 100.0 * s.hits / lookups) : "");
  std::cout << fmt::format("misses           {}\n", s.misses);
  std::cout << fmt::format("since            {}\n", s.since ? cache::format_utc(*s.since) : "-");
}

void run_clear(const CacheArgs& opt) {
  const auto store = open_store(opt);
  const std::size_t removed = cache::clear(store);
  std::cout << fmt::format("removed {} from {}\n", entries_word(removed), store.root().string());
}

}  // namespace

void register_cache_commands(CLI::App& app, SpecKeyInputs spec_keys) {
  auto opt = std::make_shared<CacheArgs>();
  opt->spec_keys = std::move(spec_keys);
  CLI::App* cache_cmd = app.add_subcommand("cache", "Inspect and manage the compiled-kernel cache");
  cache_cmd->footer(
      "Location: $TTTC_CACHE_DIR, else $XDG_CACHE_HOME/tttc, else ~/.cache/tttc (or --dir).\n"
      "Size cap: $TTTC_CACHE_MAX_SIZE (e.g. 500M, 2G; default 4G), enforced after each new entry\n"
      "by evicting the least recently used entries. The old names TTT_CACHE_DIR and\n"
      "TTT_CACHE_MAX_SIZE still work. See docs/cache.md.");
  cache_cmd->require_subcommand(1);
  cache_cmd->add_option("--dir", opt->dir, "Cache directory to operate on")->type_name("DIR");

  // One-line description for the subcommand list; `details` is shown by `SUBCOMMAND --help`.
  auto sub = [&](const char* name, const char* description, const char* details,
                 void (*run)(const CacheArgs&)) {
    CLI::App* s = cache_cmd->add_subcommand(name, description);
    s->footer(details);
    s->fallthrough();  // so `--dir` may also follow the subcommand name
    s->callback([opt, run] { run(*opt); });
    return s;
  };

  CLI::App* ls = sub("ls", "List entries, most recently used first",
                     "Columns: key prefix, spec name, kernel, arch, binary kind, file size,\n"
                     "registers, compile time and time since last use. Unreadable entries are\n"
                     "listed with the reason below the table.",
                     run_ls);
  ls->add_flag("--json", opt->json,
               "Print JSON: {dir, total_bytes, max_size, entries: [{key, spec_name, kernel, arch, "
               "binary_kind, file_size, registers, shared_bytes, spills, compile_ms, created, "
               "last_use, ...}]}");

  CLI::App* show = sub("show", "Show one entry's metadata and key inputs",
                       "KEY is a full key or a unique prefix of at least 4 hex digits, as printed\n"
                       "by `tttc cache ls`.",
                       run_show);
  show->add_option("key", opt->key_a, "Entry key or unique prefix")->required()->type_name("KEY");
  show->add_flag("--source", opt->source, "Also print the generated CUDA source");
  show->add_flag("--json", opt->json, "Print the metadata as JSON");

  CLI::App* explain =
      sub("explain", "Why a spec misses, or which key inputs differ between two entries",
          "explain SPEC: for each kernel of the spec (for --arch, default: the GPU present,\n"
          "else sm_90a), says whether it is in the cache and, if not, which key inputs differ\n"
          "from the nearest entry (the one with the fewest differences). Nothing is compiled.\n"
          "explain KEY_A KEY_B: every key input that differs, A's value then B's: spec fields\n"
          "(canonical_spec.FIELD), kernel, schedule fields, source (with the first differing\n"
          "line), header hashes, NVRTC version, options and arch.",
          run_explain);
  explain->add_option("key_a", opt->key_a, "A spec file, or the first entry (key or prefix)")
      ->required()
      ->type_name("SPEC|KEY_A");
  explain->add_option("key_b", opt->key_b, "Second entry (key or unique prefix)")
      ->type_name("KEY_B");
  add_arch_option(*explain, opt->arch);
  explain->add_flag("--json", opt->json,
                    "Print JSON: {a, b, differences: [{field, a, b, note}]}; for a spec, a list "
                    "of {spec, kernel, arch, key, cache, nearest, differences}");

  CLI::App* verify =
      sub("verify", "Check every entry; exit status 1 if any is bad",
          "Checks that the directory and every entry are yours and not writable by others,\n"
          "format, lengths, the SHA-256 checksum, that the file name matches the metadata key,\n"
          "and that the key inputs hash to the key. Bad entries are printed ('BAD KEY: reason')\n"
          "and named in the error; verify does not modify the cache.",
          run_verify);
  verify->add_flag("--json", opt->json,
                   "Print JSON: {dir, entries, ok, bad: [{key, reason}]} (exit status as without)");

  CLI::App* stats = sub("stats", "Entries, size, and hits and misses since the last reset",
                        "A hit is a kernel some process found in the cache, a miss one it had to\n"
                        "compile (repeated requests within one process are not counted). --zero\n"
                        "resets the counters.",
                        run_stats);
  stats->add_flag("--zero", opt->zero, "Reset the hit and miss counters to zero");
  stats->add_flag("--json", opt->json,
                  "Print JSON: {dir, entries, total_bytes, max_size, hits, misses, since}");

  CLI::App* rm = sub("rm", "Remove entries by key (or unique prefix) or by pattern",
                     "KEY: a full key or a unique prefix of at least 4 hex digits; every KEY must\n"
                     "name an entry, or nothing is removed.\n"
                     "PATTERN syntax:\n"
                     "  age>DURATION   entries last used more than DURATION ago  (e.g. age>7d)\n"
                     "  age<DURATION   entries last used less than DURATION ago  (e.g. age<2h)\n"
                     "                 DURATION = <integer><unit>, unit s, m, h, d or w\n"
                     "  GLOB           shell glob matched against the spec name or the arch\n"
                     "                 (e.g. 'ttt_mlp*', 'sm_80', '*'); quote it for the shell\n"
                     "The removed entries are printed. Removing nothing is not an error.",
                     run_rm);
  rm->add_option("keys", opt->keys, "Entries to remove (keys or unique prefixes)")
      ->type_name("KEY...");
  rm->add_option("--match", opt->pattern, "age>DURATION | age<DURATION | GLOB (see below)")
      ->type_name("PATTERN");
  rm->add_flag("--dry-run", opt->dry_run, "Print what would be removed; remove nothing");

  CLI::App* gc = sub("gc", "Evict least recently used entries down to a size",
                     "Removes quarantined (corrupt) files first, then entries in least-recently-\n"
                     "used order by the cache's own last-use records, until the cache fits in\n"
                     "SIZE. Also deletes abandoned temp files of crashed writers.",
                     run_gc);
  gc->add_option("--max-size", opt->max_size,
                 "Target size, e.g. 500M, 2G, 1048576 (default: $TTTC_CACHE_MAX_SIZE or 4G)")
      ->type_name("SIZE");
  gc->add_flag("--dry-run", opt->dry_run, "Print what would be removed; remove nothing");

  sub("clear", "Delete every entry",
      "Deletes all entries, quarantined files, last-use records, abandoned temp files and\n"
      "idle lock files. Safe while other processes use the cache: they rebuild as needed.",
      run_clear);
}

}  // namespace ttt::cli
