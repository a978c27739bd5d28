// fs.cpp: POSIX implementations. Everything goes through raw file descriptors because
// std::filesystem offers neither fsync nor O_EXCL.
#include "cache/fs.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <ctime>

namespace ttt::cache {
namespace {

std::error_code last_error() { return {errno, std::generic_category()}; }

// Closes on scope exit; keeps error paths short.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::error_code fsync_dir(const std::filesystem::path& dir) {
  Fd d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
  if (d.fd < 0) return last_error();
  if (::fsync(d.fd) != 0) return last_error();
  return {};
}

std::error_code write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

std::string temp_name(const std::filesystem::path& path) {
  static std::atomic<unsigned> counter{0};
  return fmt::format("{}{}.{}.{}", kTempPrefix, path.filename().string(), ::getpid(),
                     counter.fetch_add(1));
}

}  // namespace

std::error_code make_private_dirs(const std::filesystem::path& dir) {
  std::filesystem::path current;
  for (const auto& part : dir) {
    current /= part;
    if (::mkdir(current.c_str(), 0700) == 0) continue;
    const int mkdir_errno = errno;
    // EEXIST, but also EACCES/EROFS on an existing parent we cannot write: fine if it is a
    // directory.
    struct stat st {};
    if (::stat(current.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) continue;
      return std::make_error_code(std::errc::not_a_directory);
    }
    return {mkdir_errno, std::generic_category()};
  }
  return {};
}

std::error_code write_file_atomic(const std::filesystem::path& path, std::string_view data,
                                  WriteOptions options) {
  return write_file_atomic(path, {data}, options);
}

std::error_code write_file_atomic(const std::filesystem::path& path,
                                  std::initializer_list<std::string_view> pieces,
                                  WriteOptions options) {
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  const std::filesystem::path temp = dir / temp_name(path);
  Fd f{::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, options.mode)};
  if (f.fd < 0) return last_error();
  auto fail = [&](std::error_code ec) {
    ::unlink(temp.c_str());
    return ec;
  };
  if (::flock(f.fd, LOCK_EX) != 0) return fail(last_error());
  for (std::string_view piece : pieces)
    if (auto ec = write_all(f.fd, piece)) return fail(ec);
  // Flushed before the rename: otherwise a power loss after it can expose an empty file.
  if (options.durable && ::fsync(f.fd) != 0) return fail(last_error());
  if (::rename(temp.c_str(), path.c_str()) != 0) return fail(last_error());
  if (options.durable) return fsync_dir(dir);
  return {};
}

std::string read_file(const std::filesystem::path& path, std::error_code& error,
                      std::uint64_t max_bytes, const TrustPolicy* policy, std::string* untrusted) {
  error.clear();
  // O_NONBLOCK: a FIFO in place of a file must not block the open (regular files ignore it).
  Fd f{::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
  if (f.fd < 0) {
    error = last_error();
    if (untrusted && errno == ELOOP)
      *untrusted = path.string() + " is a symbolic link (the cache never follows links inside it)";
    return {};
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) {
    error = last_error();
    return {};
  }
  if (policy) {
    std::optional<std::string> why = S_ISREG(st.st_mode) ? untrusted_reason(path, st, *policy)
                                                         : path.string() + " is not a regular file";
    if (why) {
      if (untrusted) *untrusted = std::move(*why);
      error = std::make_error_code(std::errc::permission_denied);
      return {};
    }
  }
  std::string out;
  out.reserve(std::min<std::uint64_t>(static_cast<std::uint64_t>(st.st_size), max_bytes));
  char buffer[1 << 16];
  while (out.size() < max_bytes) {
    std::size_t want = std::min<std::uint64_t>(sizeof buffer, max_bytes - out.size());
    ssize_t n = ::read(f.fd, buffer, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = last_error();
      return {};
    }
    if (n == 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

bool is_abandoned_temp(const std::filesystem::path& path, int min_age_seconds) {
  Fd f{::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
  if (f.fd < 0) return false;
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) return false;
  if (std::time(nullptr) - st.st_mtime < min_age_seconds) return false;
  // The writer holds LOCK_EX until it closes the file; if we can take it, nobody is writing.
  return ::flock(f.fd, LOCK_EX | LOCK_NB) == 0;
}

}  // namespace ttt::cache
