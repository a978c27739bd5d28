// file_lock.hpp: cross-process mutual exclusion per cache key, via flock(2) on a lock file.
// The kernel releases a flock when the holder's descriptor closes, including when the process is
// SIGKILLed, so a crashed compiler never leaves a lock that blocks anyone.
#pragma once

#include <filesystem>
#include <optional>
#include <system_error>

namespace ttt::cache {

class FileLock {
 public:
  // Opens (creating, mode 0600) and exclusively locks `path`. With wait=false a busy lock fails
  // with std::errc::resource_unavailable_try_again. Fails with the open error when the file
  // cannot be created or opened (e.g. a read-only cache directory).
  static std::optional<FileLock> acquire(const std::filesystem::path& path, bool wait,
                                         std::error_code& error);

  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

  // Deletes the lock file while holding it. Safe against concurrent acquirers: acquire() checks
  // that the file it locked is still the one at `path` and retries otherwise.
  void remove_file();

 private:
  FileLock(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  void release();

  int fd_ = -1;
  std::filesystem::path path_;
};

}  // namespace ttt::cache
