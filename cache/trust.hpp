// trust.hpp: which files and directories the cache may trust. A checksum detects corruption,
// not forgery: an entry planted by another user is a valid entry. So the cache only uses a
// directory or file that is owned by a trusted user and not writable by group or others, and it
// never follows a symbolic link inside the cache (see docs/cache.md, "Threat model").
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ttt::cache {

// Who may own what the cache reads. The default is the effective user alone; a read-only
// shared cache (TTTC_CACHE_READONLY_DIR) also accepts root, who provisions such caches.
struct TrustPolicy {
  std::vector<uid_t> owners;
  static TrustPolicy current_user();
  static TrustPolicy current_user_or_root();
};

// Why a file with this status may not be trusted ("is owned by uid 1001 (alice), not by you
// (uid 0)", "is writable by group or others (mode 0777)"), or nothing. `path` names it.
std::optional<std::string> untrusted_reason(const std::filesystem::path& path,
                                            const struct stat& st, const TrustPolicy& policy);

// The same for a directory: it must be a directory (a symbolic link is refused unless
// `follow_link`, used for the cache root only, since ~/.cache is often a link to another disk).
// A directory that does not exist is no problem: the cache creates it, owned by the user, 0700.
std::optional<std::string> untrusted_dir_reason(const std::filesystem::path& dir,
                                                const TrustPolicy& policy, bool follow_link);

}  // namespace ttt::cache
