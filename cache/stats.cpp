// stats.cpp: the cross-process hit/miss counters (see stats.hpp).
#include "cache/stats.hpp"

#include <nlohmann/json.hpp>

#include "cache/fs.hpp"

namespace ttt::cache {
namespace {

std::filesystem::path stats_path(const DiskStore& store) { return store.base() / "stats.json"; }
std::filesystem::path lock_path(const DiskStore& store) { return store.base() / "stats.lock"; }

DiskStats parse(const DiskStore& store) {
  std::error_code ec;
  std::string untrusted;
  const std::string text = read_file(stats_path(store), ec, 4096, &store.policy(), &untrusted);
  DiskStats s;
  if (ec) return s;
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return s;
  auto count = [&](const char* name) {
    auto it = j.find(name);
    return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
  };
  s.hits = count("hits");
  s.misses = count("misses");
  if (auto it = j.find("since_unix_ns"); it != j.end() && it->is_number_integer())
    s.since = from_unix_ns(it->get<std::int64_t>());
  return s;
}

bool store_stats(const DiskStore& store, const DiskStats& s) {
  nlohmann::json j = {{"hits", s.hits}, {"misses", s.misses}};
  if (s.since) j["since_unix_ns"] = to_unix_ns(*s.since);
  return !write_file_atomic(stats_path(store), j.dump(), WriteOptions{.durable = false});
}

}  // namespace

void add_stats(const DiskStore& store, std::uint64_t hits, std::uint64_t misses) {
  std::error_code ec;
  auto lock = FileLock::acquire(lock_path(store), /*wait=*/true, ec);
  if (!lock) return;
  DiskStats s = parse(store);
  s.hits += hits;
  s.misses += misses;
  if (!s.since) s.since = Clock::now();
  store_stats(store, s);
}

DiskStats read_stats(const DiskStore& store) { return parse(store); }

bool zero_stats(const DiskStore& store) {
  if (store.ensure_layout()) return false;
  std::error_code ec;
  auto lock = FileLock::acquire(lock_path(store), /*wait=*/true, ec);
  if (!lock) return false;
  return store_stats(store, DiskStats{.since = Clock::now()});
}

}  // namespace ttt::cache
