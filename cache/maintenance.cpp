// maintenance.cpp: listing, lookup, verify, removal and LRU eviction over a DiskStore.
#include "cache/maintenance.hpp"

#include <fmt/format.h>
#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <functional>

#include "cache/config.hpp"
#include "cache/fs.hpp"
#include "compiler/hash.hpp"

namespace ttt::cache {
namespace {

namespace fs = std::filesystem;

// Abandoned temp files must also be older than this, in case their writer has created the file
// but not yet locked it.
constexpr int kTempGraceSeconds = 60;

void for_each_file(const fs::path& dir, const std::function<void(const fs::path&)>& fn) {
  std::error_code ec;
  std::vector<fs::path> paths;  // collected first: fn may delete
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    paths.push_back(it->path());
  for (const auto& p : paths) fn(p);
}

bool is_temp(const fs::path& p) { return p.filename().string().starts_with(kTempPrefix); }

int remove_abandoned_temps(const DiskStore& store, int grace_seconds) {
  int removed = 0;
  for (const char* sub : {"entries", "usage"})
    for_each_file(store.base() / sub, [&](const fs::path& p) {
      std::error_code ec;
      if (is_temp(p) && is_abandoned_temp(p, grace_seconds) && fs::remove(p, ec)) ++removed;
    });
  return removed;
}

// Usage records whose entry is gone (a load raced an eviction) and idle lock files: both are
// recreated on demand, and FileLock tolerates lock files vanishing.
void remove_stale_side_files(const DiskStore& store, bool keep_usage_of_entries) {
  for_each_file(store.base() / "usage", [&](const fs::path& p) {
    if (is_temp(p)) return;
    std::error_code ec;
    const std::string key = p.filename().string();
    if (!keep_usage_of_entries || !fs::exists(store.entry_path(key), ec)) fs::remove(p, ec);
  });
  for_each_file(store.base() / "locks", [&](const fs::path& p) {
    std::error_code ec;
    if (auto idle = FileLock::acquire(p, /*wait=*/false, ec)) idle->remove_file();
  });
}

struct QuarantinedFile {
  fs::path path;
  std::uint64_t size;
};

std::vector<QuarantinedFile> quarantined_files(const DiskStore& store) {
  std::vector<QuarantinedFile> out;
  for_each_file(store.quarantine_dir(), [&](const fs::path& p) {
    std::error_code ec;
    auto size = fs::file_size(p, ec);
    if (!ec) out.push_back({p, size});
  });
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.path < b.path; });
  return out;
}

EntrySummary summarize(const DiskStore& store, const DiskStore::FileInfo& file) {
  EntrySummary s;
  s.key = file.key;
  s.file_size = file.size;
  if (auto meta = store.read_metadata(file.key, &s.error)) s.metadata = std::move(*meta);
  if (s.metadata.is_object() && s.metadata.contains("created_unix_ns") &&
      s.metadata["created_unix_ns"].is_number_integer())
    s.created = from_unix_ns(s.metadata["created_unix_ns"].get<std::int64_t>());
  s.last_use = store.last_use(file.key).value_or(s.created);
  return s;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The reason an entry that parses fine is still not what its name claims, or "".
std::string semantic_problem(const Entry& entry) {
  const auto& meta = entry.metadata;
  try {
    if (meta.contains("key_inputs") && meta.contains("source")) {
      auto inputs =
          key_inputs_from_json(meta.at("key_inputs"), meta.at("source").get<std::string>());
      if (compute_key(inputs) != entry.key) return "key inputs do not hash to the entry's key";
    }
    if (meta.contains("binary_sha256") &&
        meta.at("binary_sha256").get<std::string>() != sha256_hex(entry.binary))
      return "binary does not match binary_sha256";
  } catch (const nlohmann::json::exception& e) {
    return fmt::format("malformed metadata ({})", e.what());
  }
  return "";
}

}  // namespace

std::vector<EntrySummary> list_entries(const DiskStore& store) {
  std::vector<EntrySummary> out;
  for (const auto& file : store.list()) out.push_back(summarize(store, file));
  std::sort(out.begin(), out.end(), [](const EntrySummary& a, const EntrySummary& b) {
    return a.last_use != b.last_use ? a.last_use > b.last_use : a.key < b.key;
  });
  return out;
}

std::uint64_t total_size(const DiskStore& store) {
  std::uint64_t total = 0;
  for (const auto& file : store.list()) total += file.size;
  return total;
}

std::string resolve_key(const DiskStore& store, const std::string& key_or_prefix) {
  const std::string prefix = lower(key_or_prefix);
  const bool hex = std::all_of(prefix.begin(), prefix.end(),
                               [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
  if (!hex || prefix.size() < 4 || prefix.size() > 64)
    throw KeyLookupError(fmt::format(
        "'{}' is not a cache key (expected 4 to 64 hex digits of a key from `tttc cache ls`)",
        key_or_prefix));
  std::vector<std::string> matches;
  for (const auto& file : store.list())
    if (file.key.starts_with(prefix)) matches.push_back(file.key);
  if (matches.empty())
    throw KeyLookupError(
        fmt::format("no cache entry matches '{}' in {}", key_or_prefix, store.root().string()));
  if (matches.size() > 1) {
    std::sort(matches.begin(), matches.end());
    throw KeyLookupError(
        fmt::format("'{}' is ambiguous: it matches {} entries ({}); give more digits",
                    key_or_prefix, matches.size(), fmt::join(matches, ", ")));
  }
  return matches.front();
}

std::vector<KeyInputDiff> explain(const DiskStore& store, const std::string& key_a,
                                  const std::string& key_b) {
  auto metadata = [&](const std::string& arg) {
    const std::string key = resolve_key(store, arg);
    std::string error;
    auto meta = store.read_metadata(key, &error);
    if (!meta) throw KeyLookupError(fmt::format("cache entry {} is unreadable: {}", key, error));
    return *meta;
  };
  return diff_key_inputs(metadata(key_a), metadata(key_b));
}

std::vector<BadEntry> verify(const DiskStore& store) {
  std::vector<BadEntry> bad;
  for (const auto& file : store.list()) {
    auto loaded = store.load(file.key);
    using Status = DiskStore::LoadResult::Status;
    if (loaded.status == Status::missing) continue;  // removed while we looked
    if (loaded.status != Status::ok) {
      bad.push_back({file.key, loaded.detail});
      continue;
    }
    if (auto problem = semantic_problem(loaded.entry); !problem.empty())
      bad.push_back({file.key, problem});
  }
  std::sort(bad.begin(), bad.end(), [](auto& a, auto& b) { return a.key < b.key; });
  return bad;
}

EntryPattern EntryPattern::parse(const std::string& text) {
  EntryPattern p;
  p.text_ = text;
  if (text.empty()) throw std::invalid_argument("empty --match pattern");
  if (text.starts_with("age")) {
    const std::string rest = text.substr(3);
    std::optional<std::chrono::seconds> age;
    if (!rest.empty() && (rest[0] == '>' || rest[0] == '<')) age = parse_duration(rest.substr(1));
    if (!age)
      throw std::invalid_argument(fmt::format(
          "bad age pattern '{}': expected age>N or age<N with N like 90s, 30m, 2h, 7d or 2w",
          text));
    p.kind_ = rest[0] == '>' ? Kind::older_than : Kind::newer_than;
    p.age_ = *age;
  }
  return p;
}

bool EntryPattern::matches(const EntrySummary& e, Clock::time_point now) const {
  switch (kind_) {
    case Kind::older_than:
      return now - e.last_use > age_;
    case Kind::newer_than:
      return now - e.last_use < age_;
    case Kind::glob:
      break;
  }
  auto field = [&](const char* name) -> std::string {
    if (!e.metadata.is_object() || !e.metadata.contains(name) || !e.metadata[name].is_string())
      return "";
    return e.metadata[name].get<std::string>();
  };
  for (const char* name : {"spec_name", "arch"}) {
    const std::string value = field(name);
    if (!value.empty() && ::fnmatch(text_.c_str(), value.c_str(), 0) == 0) return true;
  }
  return false;
}

std::vector<EntrySummary> remove_matching(const DiskStore& store, const EntryPattern& pattern,
                                          Clock::time_point now, bool dry_run) {
  std::vector<EntrySummary> removed;
  for (auto& entry : list_entries(store))
    if (pattern.matches(entry, now) && (dry_run || store.remove(entry.key)))
      removed.push_back(std::move(entry));
  return removed;
}

std::vector<EntrySummary> remove_keys(const DiskStore& store, const std::vector<std::string>& keys,
                                      bool dry_run) {
  std::vector<std::string> full;
  for (const auto& k : keys) full.push_back(resolve_key(store, k));  // all resolve, or none goes
  std::vector<EntrySummary> removed;
  for (auto& entry : list_entries(store))
    if (std::find(full.begin(), full.end(), entry.key) != full.end() &&
        (dry_run || store.remove(entry.key)))
      removed.push_back(std::move(entry));
  return removed;
}

EvictResult evict_lru(const DiskStore& store, std::uint64_t max_size, const EvictOptions& options) {
  EvictResult result;
  std::error_code ec;
  auto gc_lock = FileLock::acquire(store.gc_lock_path(), options.wait, ec);
  if (!gc_lock && ec == std::errc::resource_unavailable_try_again) {
    result.skipped = true;
    return result;
  }
  if (!options.dry_run) {
    result.temp_files_removed = remove_abandoned_temps(store, kTempGraceSeconds);
    remove_stale_side_files(store, /*keep_usage_of_entries=*/true);
  }

  auto quarantined = quarantined_files(store);
  std::uint64_t total = total_size(store);
  for (const auto& q : quarantined) total += q.size;
  result.bytes_before = total;
  // Quarantined files are only kept for inspection, so they go first.
  for (const auto& q : quarantined) {
    if (total <= max_size) break;
    if (options.dry_run || fs::remove(q.path, ec)) {
      total -= q.size;
      result.quarantine_bytes_removed += q.size;
    }
  }
  if (total > max_size) {
    auto entries = list_entries(store);  // most recent first: evict from the back
    for (auto it = entries.rbegin(); it != entries.rend() && total > max_size; ++it) {
      if (options.keep_key && it->key == *options.keep_key) continue;
      if (options.dry_run || store.remove(it->key)) {
        total -= std::min(total, it->file_size);
        result.removed.push_back(std::move(*it));
      }
    }
  }
  result.bytes_after = total;
  return result;
}

std::size_t clear(const DiskStore& store) {
  std::size_t removed = 0;
  for (const auto& file : store.list())
    if (store.remove(file.key)) ++removed;
  for (const auto& q : quarantined_files(store)) {
    std::error_code ec;
    fs::remove(q.path, ec);
  }
  remove_abandoned_temps(store, /*grace_seconds=*/0);
  remove_stale_side_files(store, /*keep_usage_of_entries=*/false);
  return removed;
}

}  // namespace ttt::cache
