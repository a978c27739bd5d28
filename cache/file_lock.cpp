// file_lock.cpp: flock acquisition with the "is it still the same inode" check that makes lock
// files removable (by gc/clear) without ever letting two holders lock different files.
#include "cache/file_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace ttt::cache {

std::optional<FileLock> FileLock::acquire(const std::filesystem::path& path, bool wait,
                                          std::error_code& error) {
  error.clear();
  for (;;) {
    // O_NOFOLLOW: a planted symbolic link must not make us create or lock a file elsewhere.
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    // An existing lock file in a directory we may not write still works read-only: flock does
    // not need write access.
    if (fd < 0 && (errno == EACCES || errno == EROFS))
      fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      error = {errno, std::generic_category()};
      return std::nullopt;
    }
    int rc;
    do {
      rc = ::flock(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      error = (errno == EWOULDBLOCK)
                  ? std::make_error_code(std::errc::resource_unavailable_try_again)
                  : std::error_code(errno, std::generic_category());
      ::close(fd);
      return std::nullopt;
    }
    struct stat held {
    }, current{};
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &current) == 0 &&
        held.st_dev == current.st_dev && held.st_ino == current.st_ino)
      return FileLock(fd, path);
    ::close(fd);  // the file was removed or replaced while we waited: lock the new one
  }
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

FileLock::~FileLock() { release(); }

void FileLock::remove_file() {
  if (fd_ >= 0) ::unlink(path_.c_str());
}

void FileLock::release() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor drops the flock
  fd_ = -1;
}

}  // namespace ttt::cache
