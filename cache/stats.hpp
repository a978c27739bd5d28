// stats.hpp: hit and miss counters kept in the cache directory (v1/stats.json) across processes,
// for `tttc cache stats`. A hit is a kernel a process found on disk, a miss one it had to compile;
// repeated requests within one process (memory hits) are not counted. Best effort: updates are
// serialized by v1/stats.lock and written atomically, but not fsync'ed.
#pragma once

#include <cstdint>
#include <optional>

#include "cache/disk_store.hpp"

namespace ttt::cache {

struct DiskStats {
  std::uint64_t hits = 0, misses = 0;
  std::optional<Clock::time_point> since;  // last reset (--zero), or the first count
};

// Adds to the counters; errors are ignored (statistics never fail a build).
void add_stats(const DiskStore& store, std::uint64_t hits, std::uint64_t misses);
DiskStats read_stats(const DiskStore& store);
// Resets the counters to zero, starting now. Returns false when the file cannot be written.
bool zero_stats(const DiskStore& store);

}  // namespace ttt::cache
