// fs.hpp: the POSIX file operations the cache relies on for crash safety: private directory
// creation, atomic publish (temp file + fsync + rename + directory fsync) and whole-file reads.
// Errors are returned as std::error_code so callers decide between "warn" and "fail".
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>
#include <system_error>

#include "cache/trust.hpp"

namespace ttt::cache {

// Temp files start with this; listings skip them and gc removes the abandoned ones.
inline constexpr std::string_view kTempPrefix = ".tmp.";

// mkdir -p, creating each missing component with mode 0700 (existing ones are left alone).
std::error_code make_private_dirs(const std::filesystem::path& dir);

struct WriteOptions {
  bool durable = true;   // fsync the file and its directory (entries); false for advisory files
  unsigned mode = 0600;  // of the new file (before the umask): private cache files by default
};

// Writes `data` to a temp file in path's directory and renames it over `path`, so readers see
// either the old file or the complete new one. The temp file is flock'ed while it is written,
// which lets gc tell an abandoned temp file (its writer died) from one in progress.
std::error_code write_file_atomic(const std::filesystem::path& path, std::string_view data,
                                  WriteOptions options = {});
// The same for a file made of several pieces written one after another (no concatenated copy).
std::error_code write_file_atomic(const std::filesystem::path& path,
                                  std::initializer_list<std::string_view> pieces,
                                  WriteOptions options = {});

// Reads the whole file (or its first max_bytes); `error` is set on failure. A symbolic link is
// never followed (ELOOP). With a `policy`, a file that is not a regular file trusted by it is not
// read: `error` is permission_denied and `*untrusted` says why.
std::string read_file(const std::filesystem::path& path, std::error_code& error,
                      std::uint64_t max_bytes = UINT64_MAX, const TrustPolicy* policy = nullptr,
                      std::string* untrusted = nullptr);

// True if `path` is a temp file whose writer is gone (its flock is free) and that is older
// than `min_age_seconds` (by mtime: only a guard against a writer that has just created it).
bool is_abandoned_temp(const std::filesystem::path& path, int min_age_seconds);

}  // namespace ttt::cache
