// disk_store.cpp: file layout and I/O for entries, usage records, quarantine and locks.
#include "cache/disk_store.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "cache/fs.hpp"
#include "cache/key.hpp"

namespace ttt::cache {
namespace {

constexpr std::string_view kEntrySuffix = ".entry";
namespace fs = std::filesystem;

}  // namespace

std::int64_t to_unix_ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

Clock::time_point from_unix_ns(std::int64_t ns) {
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

DiskStore::DiskStore(fs::path root, TrustPolicy policy)
    : root_(std::move(root)), base_(root_ / "v1"), policy_(std::move(policy)) {}

fs::path DiskStore::entry_path(const std::string& key) const {
  return base_ / "entries" / (key + std::string(kEntrySuffix));
}

fs::path DiskStore::usage_path(const std::string& key) const { return base_ / "usage" / key; }

fs::path DiskStore::lock_path(const std::string& key) const {
  return base_ / "locks" / (key + ".lock");
}

std::error_code DiskStore::ensure_layout() const {
  for (const char* sub : {"entries", "usage", "locks", "quarantine"})
    if (auto ec = make_private_dirs(base_ / sub)) return ec;
  return {};
}

std::optional<std::string> DiskStore::trust_problem() const {
  if (auto why = untrusted_dir_reason(root_, policy_, /*follow_link=*/true)) return why;
  if (auto why = untrusted_dir_reason(base_, policy_, false)) return why;
  for (const char* sub : {"entries", "usage", "locks", "quarantine"})
    if (auto why = untrusted_dir_reason(base_ / sub, policy_, false)) return why;
  return std::nullopt;
}

DiskStore::LoadResult DiskStore::load(const std::string& key) const {
  using Status = LoadResult::Status;
  std::error_code ec;
  std::string untrusted;
  std::string bytes = read_file(entry_path(key), ec, UINT64_MAX, &policy_, &untrusted);
  if (!untrusted.empty()) return {Status::untrusted, {}, untrusted};
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory)
      return {Status::missing, {}, {}};
    return {Status::unreadable, {}, ec.message()};
  }
  auto parsed = parse_entry(bytes, key);
  if (auto* error = std::get_if<EntryError>(&parsed)) return {Status::corrupt, {}, error->reason};
  return {Status::ok, std::move(std::get<Entry>(parsed)), {}};
}

std::error_code DiskStore::publish(const Entry& entry) const {
  return write_file_atomic(entry_path(entry.key), serialize_entry(entry));
}

std::optional<fs::path> DiskStore::quarantine(const std::string& key,
                                              std::error_code& error) const {
  error = make_private_dirs(quarantine_dir());
  if (error) return std::nullopt;
  fs::path target =
      quarantine_dir() / fmt::format("{}.{}{}", key, to_unix_ns(Clock::now()), kEntrySuffix);
  fs::rename(entry_path(key), target, error);
  if (error) return std::nullopt;
  return target;
}

std::error_code DiskStore::record_use(const std::string& key, Clock::time_point when) const {
  // Not fsync'ed: losing a timestamp in a crash only makes an entry look older.
  return write_file_atomic(usage_path(key), std::to_string(to_unix_ns(when)),
                           WriteOptions{.durable = false});
}

std::optional<Clock::time_point> DiskStore::last_use(const std::string& key) const {
  std::error_code ec;
  std::string text = read_file(usage_path(key), ec, 32);
  if (ec) return std::nullopt;
  std::int64_t ns = 0;
  auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), ns);
  if (err != std::errc() || end != text.data() + text.size() || ns < 0) return std::nullopt;
  return from_unix_ns(ns);
}

std::vector<DiskStore::FileInfo> DiskStore::list() const {
  std::vector<FileInfo> out;
  std::error_code ec;
  for (fs::directory_iterator it(base_ / "entries", ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!name.ends_with(kEntrySuffix)) continue;
    std::string key = name.substr(0, name.size() - kEntrySuffix.size());
    if (!is_valid_key(key)) continue;  // temp files and strangers
    // lstat: a symbolic link is listed by its own size (verify reports it), never followed.
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;  // removed while we listed
    out.push_back({key, static_cast<std::uint64_t>(st.st_size)});
  }
  return out;
}

std::optional<nlohmann::json> DiskStore::read_metadata(const std::string& key,
                                                       std::string* error) const {
  auto fail = [&](std::string why) -> std::optional<nlohmann::json> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  std::error_code ec;
  const fs::path path = entry_path(key);
  std::string untrusted;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return fail(std::strerror(errno));
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::string prefix = read_file(path, ec, kEntryHeaderSize, &policy_, &untrusted);
  if (!untrusted.empty()) return fail(untrusted);
  if (ec) return fail(ec.message());
  if (auto need = entry_metadata_prefix_size(prefix)) {
    prefix = read_file(path, ec, *need, &policy_, &untrusted);
    if (!untrusted.empty()) return fail(untrusted);
    if (ec) return fail(ec.message());
  }
  auto meta = parse_entry_metadata(prefix, size);
  if (auto* e = std::get_if<EntryError>(&meta)) return fail(e->reason);
  auto& json = std::get<nlohmann::json>(meta);
  if (json["key"] != key) return fail("metadata key does not match file name");
  return std::move(json);
}

bool DiskStore::remove(const std::string& key) const {
  std::error_code ec;
  bool existed = fs::remove(entry_path(key), ec);
  fs::remove(usage_path(key), ec);
  // A lock file in use belongs to a build in progress; leave it to its holder.
  std::error_code lock_ec;
  if (auto held = FileLock::acquire(lock_path(key), /*wait=*/false, lock_ec)) held->remove_file();
  return existed;
}

std::optional<FileLock> DiskStore::lock(const std::string& key, bool wait,
                                        std::error_code& error) const {
  return FileLock::acquire(lock_path(key), wait, error);
}

}  // namespace ttt::cache
