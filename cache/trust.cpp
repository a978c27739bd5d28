// trust.cpp: ownership and permission checks behind the cache's trust rules (see trust.hpp).
#include "cache/trust.hpp"

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ttt::cache {
namespace {

std::string user_name(uid_t uid) {
  const passwd* pw = ::getpwuid(uid);
  return pw && pw->pw_name ? fmt::format("uid {} ({})", uid, pw->pw_name)
                           : fmt::format("uid {}", uid);
}

}  // namespace

TrustPolicy TrustPolicy::current_user() { return {{::geteuid()}}; }

TrustPolicy TrustPolicy::current_user_or_root() {
  if (::geteuid() == 0) return {{0}};
  return {{::geteuid(), 0}};
}

std::optional<std::string> untrusted_reason(const std::filesystem::path& path,
                                            const struct stat& st, const TrustPolicy& policy) {
  if (std::find(policy.owners.begin(), policy.owners.end(), st.st_uid) == policy.owners.end())
    return fmt::format("{} is owned by {}, not by you ({})", path.string(), user_name(st.st_uid),
                       user_name(::geteuid()));
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return fmt::format("{} is writable by group or others (mode {:04o}; chmod go-w fixes it)",
                       path.string(), st.st_mode & 07777);
  return std::nullopt;
}

std::optional<std::string> untrusted_dir_reason(const std::filesystem::path& dir,
                                                const TrustPolicy& policy, bool follow_link) {
  struct stat st {};
  if ((follow_link ? ::stat(dir.c_str(), &st) : ::lstat(dir.c_str(), &st)) != 0) {
    if (errno == ENOENT) return std::nullopt;
    return fmt::format("{} cannot be examined ({})", dir.string(), std::strerror(errno));
  }
  if (S_ISLNK(st.st_mode))
    return fmt::format("{} is a symbolic link (the cache never follows links inside it)",
                       dir.string());
  if (!S_ISDIR(st.st_mode)) return std::nullopt;  // not a directory: creating the layout fails
  return untrusted_reason(dir, st, policy);
}

}  // namespace ttt::cache
