// disk_store.hpp: the cache directory and everything stored in it: layout, reading and validating
// entries, atomic publish, quarantine of corrupt entries, last-use timestamps and per-key locks.
// No policy here (when to build, evict or warn): see kernel_cache.hpp and maintenance.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "cache/entry_format.hpp"
#include "cache/file_lock.hpp"
#include "cache/trust.hpp"

namespace ttt::cache {

using Clock = std::chrono::system_clock;

// <root>/v1/entries/<key>.entry     one file per entry (entry_format.hpp)
// <root>/v1/usage/<key>             last use, decimal nanoseconds since the Unix epoch
// <root>/v1/locks/<key>.lock        flock target while the key is being built
// <root>/v1/quarantine/<key>.<ns>.entry  corrupt entries moved aside
// <root>/v1/gc.lock                 serializes evictions
class DiskStore {
 public:
  // `policy`: whose files this store trusts (default: the current user's only; trust.hpp).
  explicit DiskStore(std::filesystem::path root, TrustPolicy policy = TrustPolicy::current_user());

  const std::filesystem::path& root() const { return root_; }
  const std::filesystem::path& base() const { return base_; }
  std::filesystem::path entry_path(const std::string& key) const;
  std::filesystem::path usage_path(const std::string& key) const;
  std::filesystem::path lock_path(const std::string& key) const;
  std::filesystem::path quarantine_dir() const { return base_ / "quarantine"; }
  std::filesystem::path gc_lock_path() const { return base_ / "gc.lock"; }

  // Creates any missing directory of the layout with mode 0700.
  std::error_code ensure_layout() const;

  // Why this cache may not be used, or nothing: the root (which may be a symbolic link) and
  // every existing directory of the layout (which may not) must be owned by a trusted user and
  // not writable by group or others. Missing directories are fine: the cache creates them.
  std::optional<std::string> trust_problem() const;
  const TrustPolicy& policy() const { return policy_; }

  struct LoadResult {
    // untrusted: a symbolic link, not a regular file, or owned/writable by someone untrusted.
    enum class Status { ok, missing, corrupt, unreadable, untrusted } status = Status::missing;
    Entry entry;         // valid only for ok
    std::string detail;  // why corrupt / unreadable / untrusted
  };
  // Reads and fully validates the entry stored under `key`.
  LoadResult load(const std::string& key) const;

  // Atomically (re)places the entry file; durable once this returns success.
  std::error_code publish(const Entry& entry) const;

  // Moves the entry file into quarantine/ and returns where it went. Callers hold the key's lock
  // so that a freshly rebuilt entry is never the one moved.
  std::optional<std::filesystem::path> quarantine(const std::string& key,
                                                  std::error_code& error) const;

  // Last-use timestamps kept by the cache itself (filesystem atime/mtime are unreliable: noatime
  // mounts, copies, backups). Recording is best effort.
  std::error_code record_use(const std::string& key, Clock::time_point when = Clock::now()) const;
  std::optional<Clock::time_point> last_use(const std::string& key) const;

  struct FileInfo {
    std::string key;
    std::uint64_t size = 0;
  };
  // Every entry file (temp files and foreign names are skipped), unordered.
  std::vector<FileInfo> list() const;

  // Metadata of an entry without reading the binary or checking the checksum (for listings).
  std::optional<nlohmann::json> read_metadata(const std::string& key, std::string* error) const;

  // Deletes the entry, its last-use record and (if nobody holds it) its lock file. Returns
  // whether the entry file existed.
  bool remove(const std::string& key) const;

  // Exclusive per-key lock; fails (with `error`) when the lock file cannot be opened.
  std::optional<FileLock> lock(const std::string& key, bool wait, std::error_code& error) const;

 private:
  std::filesystem::path root_;
  std::filesystem::path base_;
  TrustPolicy policy_;
};

// Nanoseconds since the epoch <-> time points, the representation used in usage files and metadata.
std::int64_t to_unix_ns(Clock::time_point t);
Clock::time_point from_unix_ns(std::int64_t ns);

}  // namespace ttt::cache
