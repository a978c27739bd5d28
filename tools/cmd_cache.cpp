// cmd_cache.cpp: `tttc cache ls|show|explain|verify|rm|gc|clear`, the command-line face of the
// kernel cache (cache/). Each subcommand is a thin layer over cache/maintenance.hpp that formats
// a readable table or, with --json, machine-readable output.
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
};

// The directory must pass the cache's trust rules (cache/trust.hpp) before any command reads or
// deletes anything in it: its entries could be forged, and a symbolic link inside it could point
// the removal commands at files outside the cache. For verify that is a failed check (exit 1).
cache::DiskStore open_store(const CacheArgs& opt, int untrusted_exit = kUsage) {
  cache::DiskStore store(opt.dir.empty() ? cache::default_cache_dir()
                                         : std::filesystem::path(opt.dir));
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

std::string iso(Clock::time_point t) {
  std::time_t secs = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
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
                      {"last_use", iso(e.last_use)},
                      {"last_use_unix_ns", cache::to_unix_ns(e.last_use)}};
  if (!e.error.empty()) j["error"] = e.error;
  if (e.metadata.is_object()) {
    for (const char* f : {"spec_name", "kernel", "arch", "binary_kind", "binary_size", "created",
                          "compile_ms", "registers", "shared_bytes", "spills"})
      if (e.metadata.contains(f)) j[f] = e.metadata[f];
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
    meta["file"] = store.entry_path(entry.key).string();
    if (auto used = store.last_use(entry.key)) meta["last_use"] = iso(*used);
    std::cout << meta.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("key           {}\n", entry.key);
  std::cout << fmt::format("file          {}\n", store.entry_path(entry.key).string());
  for (const char* f : {"spec_name", "kernel", "arch", "binary_kind", "binary_size", "created",
                        "compile_ms", "registers", "shared_bytes", "spills"})
    std::cout << fmt::format("{:<14}{}\n", f, str_field(meta, f));
  if (auto used = store.last_use(entry.key))
    std::cout << fmt::format("{:<14}{} ({})\n", "last_use", iso(*used), ago(*used, Clock::now()));
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

void run_explain(const CacheArgs& opt) {
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
  if (diffs.empty()) {
    std::cout << fmt::format("{} and {} have identical key inputs\n", short_key(a), short_key(b));
    return;
  }
  std::cout << fmt::format("{} (A) and {} (B) differ in {} key input(s):\n", short_key(a),
                           short_key(b), diffs.size());
  for (const auto& d : diffs) {
    std::cout << fmt::format("  {}\n    A: {}\n    B: {}\n", d.field, d.a, d.b);
    if (!d.note.empty()) std::cout << fmt::format("    {}\n", d.note);
  }
}

void run_verify(const CacheArgs& opt) {
  const auto store = open_store(opt, kCheckFailed);
  const std::size_t count = store.list().size();
  const auto bad = cache::verify(store);
  if (bad.empty()) {
    std::cout << fmt::format("verified {} in {}: all OK\n", entries_word(count),
                             store.root().string());
    return;
  }
  for (const auto& b : bad) std::cout << fmt::format("BAD {}: {}\n", b.key, b.reason);
  std::vector<std::string> keys;
  for (const auto& b : bad) keys.push_back(b.key);
  std::cout.flush();
  throw CommandExit(
      kCheckFailed,
      fmt::format(
          "error: {} of {} cache entries failed verification: {}\n(they are quarantined and "
          "rebuilt on next use; `tttc cache rm` or `tttc cache clear` removes them now)",
          bad.size(), count, fmt::join(keys, ", ")));
}

void run_rm(const CacheArgs& opt) {
  std::optional<cache::EntryPattern> pattern;
  try {
    pattern = cache::EntryPattern::parse(opt.pattern);
  } catch (const std::invalid_argument& e) {
    throw CommandExit(kUsage, std::string("error: ") + e.what());
  }
  const auto store = open_store(opt);
  const auto removed = cache::remove_matching(store, *pattern);
  if (removed.empty()) {
    std::cout << fmt::format("no cache entries match '{}'; nothing removed\n", opt.pattern);
    return;
  }
  print_removed(removed);
  std::cout << fmt::format("removed {} ({})\n", entries_word(removed.size()),
                           cache::format_size(bytes_of(removed)));
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
  const auto result = cache::evict_lru(store, max_size, {});
  print_removed(result.removed);
  std::cout << fmt::format(
      "removed {}, {} of quarantined files and {} abandoned temp files; cache size {} -> {} "
      "(max {})\n",
      entries_word(result.removed.size()), cache::format_size(result.quarantine_bytes_removed),
      result.temp_files_removed, cache::format_size(result.bytes_before),
      cache::format_size(result.bytes_after), cache::format_size(max_size));
}

void run_clear(const CacheArgs& opt) {
  const auto store = open_store(opt);
  const std::size_t removed = cache::clear(store);
  std::cout << fmt::format("removed {} from {}\n", entries_word(removed), store.root().string());
}

}  // namespace

void register_cache_commands(CLI::App& app) {
  auto opt = std::make_shared<CacheArgs>();
  CLI::App* cache_cmd = app.add_subcommand("cache", "Inspect and manage the compiled-kernel cache");
  cache_cmd->footer(
      "Location: $TTT_CACHE_DIR, else $XDG_CACHE_HOME/tttc, else ~/.cache/tttc (or --dir).\n"
      "Size cap: $TTT_CACHE_MAX_SIZE (e.g. 500M, 2G; default 4G), enforced after each new entry\n"
      "by evicting the least recently used entries. See docs/cache.md.");
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
      sub("explain", "Show which key inputs differ between two entries",
          "Prints every key input that differs, A's value then B's: spec fields\n"
          "(canonical_spec.FIELD), kernel, schedule fields, source (with the first differing\n"
          "line), header hashes, NVRTC version, options and arch. Use it to find out why a\n"
          "kernel was recompiled.",
          run_explain);
  explain->add_option("key_a", opt->key_a, "First entry (key or unique prefix)")
      ->required()
      ->type_name("KEY_A");
  explain->add_option("key_b", opt->key_b, "Second entry (key or unique prefix)")
      ->required()
      ->type_name("KEY_B");

  sub("verify", "Check every entry; exit status 1 if any is bad",
      "Checks format, lengths, the SHA-256 checksum, that the file name matches the\n"
      "metadata key, and that the key inputs hash to the key. Bad entries are printed\n"
      "('BAD KEY: reason') and named in the error; verify does not modify the cache.",
      run_verify);

  CLI::App* rm = sub("rm", "Remove the entries matching a pattern",
                     "PATTERN syntax:\n"
                     "  age>DURATION   entries last used more than DURATION ago  (e.g. age>7d)\n"
                     "  age<DURATION   entries last used less than DURATION ago  (e.g. age<2h)\n"
                     "                 DURATION = <integer><unit>, unit s, m, h, d or w\n"
                     "  GLOB           shell glob matched against the spec name or the arch\n"
                     "                 (e.g. 'ttt_mlp*', 'sm_80', '*'); quote it for the shell\n"
                     "The removed entries are printed. Removing nothing is not an error.",
                     run_rm);
  rm->add_option("--match", opt->pattern, "age>DURATION | age<DURATION | GLOB (see below)")
      ->required()
      ->type_name("PATTERN");

  CLI::App* gc = sub("gc", "Evict least recently used entries down to a size",
                     "Removes quarantined (corrupt) files first, then entries in least-recently-\n"
                     "used order by the cache's own last-use records, until the cache fits in\n"
                     "SIZE. Also deletes abandoned temp files of crashed writers.",
                     run_gc);
  gc->add_option("--max-size", opt->max_size,
                 "Target size, e.g. 500M, 2G, 1048576 (default: $TTT_CACHE_MAX_SIZE or 4G)")
      ->type_name("SIZE");

  sub("clear", "Delete every entry",
      "Deletes all entries, quarantined files, last-use records, abandoned temp files and\n"
      "idle lock files. Safe while other processes use the cache: they rebuild as needed.",
      run_clear);
}

}  // namespace ttt::cli
