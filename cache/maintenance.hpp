// maintenance.hpp: whole-cache operations behind `tttc cache` and automatic eviction: listing,
// key lookup by prefix, explain, verify, pattern removal, LRU garbage collection and clear.
// All of them are safe to run while other processes use the cache.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cache/disk_store.hpp"
#include "cache/key.hpp"

namespace ttt::cache {

struct EntrySummary {
  std::string key;
  std::uint64_t file_size = 0;
  nlohmann::json metadata;  // null when unreadable (then `error` says why)
  std::string error;
  Clock::time_point created;   // from metadata; epoch if unknown
  Clock::time_point last_use;  // the cache's own record, else `created`
};

// Every entry, most recently used first. Reads headers and metadata only.
std::vector<EntrySummary> list_entries(const DiskStore& store);

// Thrown for a key argument that names no entry or several.
struct KeyLookupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A full key or a unique prefix (at least 4 hex digits) -> the full key.
std::string resolve_key(const DiskStore& store, const std::string& key_or_prefix);

// Field-by-field differences between the key inputs of two entries (keys or unique prefixes).
std::vector<KeyInputDiff> explain(const DiskStore& store, const std::string& key_a,
                                  const std::string& key_b);

struct BadEntry {
  std::string key;
  std::string reason;
};
// Fully checks every entry (format, checksum, file name, recomputed key, binary hash).
std::vector<BadEntry> verify(const DiskStore& store);

// Selection for `cache rm --match`:
//   age>DURATION / age<DURATION   time since last use, DURATION = <n>s|m|h|d|w (e.g. age>7d)
//   GLOB                          fnmatch glob against the spec name or the arch (e.g. "ttt_*",
//                                 "sm_80")
class EntryPattern {
 public:
  // Throws std::invalid_argument with a message naming the bad pattern.
  static EntryPattern parse(const std::string& text);
  bool matches(const EntrySummary& entry, Clock::time_point now) const;
  const std::string& text() const { return text_; }

 private:
  enum class Kind { older_than, newer_than, glob } kind_ = Kind::glob;
  std::string text_;
  std::chrono::seconds age_{0};
};

// Removes matching entries (with dry_run: nothing); returns what was (or would be) removed.
std::vector<EntrySummary> remove_matching(const DiskStore& store, const EntryPattern& pattern,
                                          Clock::time_point now = Clock::now(),
                                          bool dry_run = false);

// Removes the entries with these keys (full keys or unique prefixes, see resolve_key; throws
// KeyLookupError before removing anything if one does not resolve). With dry_run, nothing is
// removed. Returns what was (or would be) removed.
std::vector<EntrySummary> remove_keys(const DiskStore& store, const std::vector<std::string>& keys,
                                      bool dry_run = false);

struct EvictOptions {
  std::optional<std::string> keep_key;  // never evicted (the entry just published)
  bool wait = true;      // wait for a concurrent eviction, else skip this run (after a publish)
  bool dry_run = false;  // report what would be removed; change nothing
};
struct EvictResult {
  std::vector<EntrySummary> removed;  // entries, least recently used first
  std::uint64_t quarantine_bytes_removed = 0;
  std::uint64_t bytes_before = 0, bytes_after = 0;
  int temp_files_removed = 0;
  bool skipped = false;  // another eviction was running
};
// Brings entries + quarantine to at most max_size bytes: quarantined files go first, then
// entries by least recent use (the cache's timestamps). Also deletes abandoned temp files and
// orphaned usage records.
EvictResult evict_lru(const DiskStore& store, std::uint64_t max_size, const EvictOptions& options);

// Deletes every entry, quarantined file, usage record, abandoned temp file and idle lock file.
// Returns the number of entries removed.
std::size_t clear(const DiskStore& store);

// Total bytes of entry files.
std::uint64_t total_size(const DiskStore& store);

}  // namespace ttt::cache
