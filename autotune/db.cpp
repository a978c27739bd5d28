// db.cpp: the tuning database's files: serialization with a checksum, locked read-merge-write.
#include "autotune/db.hpp"

#include <fmt/format.h>

#include <chrono>
#include <stdexcept>

#include "cache/config.hpp"
#include "cache/file_lock.hpp"
#include "cache/fs.hpp"
#include "compiler/hash.hpp"

namespace ttt::autotune {
namespace fs = std::filesystem;
namespace {

nlohmann::json body(const Fingerprint& f, const std::map<std::string, Record>& records) {
  nlohmann::json r = nlohmann::json::object();
  for (const auto& [key, record] : records) r[key] = to_json(record);
  return {{"fingerprint", to_json(f)}, {"records", r}};
}

bool is_db_name(const fs::path& p) {
  const std::string name = p.filename().string();
  if (name.rfind(cache::kTempPrefix, 0) == 0) return false;
  return p.extension() == ".json" || p.extension() == ".corrupt";
}

}  // namespace

std::string serialize(const Fingerprint& f, const std::map<std::string, Record>& records) {
  const nlohmann::json b = body(f, records);
  nlohmann::json file = {{"format", kDbFormat},
                         {"fingerprint", b["fingerprint"]},
                         {"records", b["records"]},
                         {"sha256", sha256_hex(b.dump())}};
  return file.dump(1) + "\n";
}

DbFile parse_db(const std::string& text, const fs::path& path) {
  DbFile d{.path = path};
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    d.error = fmt::format("truncated or not JSON ({})", e.what());
    return d;
  }
  try {
    if (!j.is_object() || j.value("format", "") != kDbFormat) {
      d.error = fmt::format("format: not {}", kDbFormat);
      return d;
    }
    const Fingerprint f = fingerprint_from_json(j.at("fingerprint"));
    std::map<std::string, Record> records;
    for (const auto& [key, value] : j.at("records").items()) {
      Record r = record_from_json(value);
      if (record_key(r) != key)
        throw std::invalid_argument(fmt::format("records.{}: key does not match its record", key));
      records.emplace(key, std::move(r));
    }
    if (sha256_hex(body(f, records).dump()) != j.at("sha256").get<std::string>()) {
      d.error = "checksum mismatch (the file was changed or corrupted)";
      return d;
    }
    d.fingerprint = f;
    d.records = std::move(records);
  } catch (const std::exception& e) {
    d.error = e.what();
  }
  if (path.extension() == ".corrupt" && d.error.empty())
    d.error = "moved aside as corrupted by an earlier write";
  return d;
}

TuneDb::TuneDb(fs::path cache_dir) : dir_(std::move(cache_dir) / "tune") {}

TuneDb TuneDb::at_default_location() { return TuneDb(cache::default_cache_dir()); }

fs::path TuneDb::file_for(const Fingerprint& f) const {
  return dir_ / (fingerprint_id(f) + ".json");
}

static DbFile read_db(const fs::path& path) {
  // Only files of this user that no one else can write (the kernel cache's trust rule).
  std::error_code ec;
  std::string untrusted;
  const cache::TrustPolicy policy = cache::TrustPolicy::current_user();
  const std::string text = cache::read_file(path, ec, 64ull << 20, &policy, &untrusted);
  if (ec) {
    DbFile d{.path = path};
    d.error = untrusted.empty() ? fmt::format("cannot read: {}", ec.message())
                                : fmt::format("not trusted: {}", untrusted);
    return d;
  }
  DbFile d = parse_db(text, path);
  if (d.usable() && path.extension() == ".json" && path.stem() != fingerprint_id(*d.fingerprint)) {
    d.error = fmt::format("file name {} does not match its fingerprint ({})",
                          path.filename().string(), fingerprint_id(*d.fingerprint));
    d.fingerprint.reset();
  }
  return d;
}

DbFile TuneDb::load(const Fingerprint& f) const {
  const fs::path path = file_for(f);
  std::error_code ec;
  if (!fs::exists(path, ec)) return DbFile{.path = path, .fingerprint = f};
  DbFile d = read_db(path);
  if (d.usable() && *d.fingerprint != f)
    d.error = "fingerprint differs from the one its name stands for";
  return d;
}

std::vector<DbFile> TuneDb::load_all() const {
  std::vector<DbFile> out;
  std::error_code ec;
  std::vector<fs::path> paths;
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (e.is_regular_file() && is_db_name(e.path())) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  for (const auto& p : paths) out.push_back(read_db(p));
  return out;
}

static cache::FileLock lock_for(const fs::path& file) {
  std::error_code ec;
  auto lock = cache::FileLock::acquire(fs::path(file).replace_extension(".lock"), true, ec);
  if (!lock)
    throw std::runtime_error(
        fmt::format("tuning database {}: cannot lock: {}", file.string(), ec.message()));
  return std::move(*lock);
}

static void write(const fs::path& path, const Fingerprint& f,
                  const std::map<std::string, Record>& records) {
  if (auto ec = cache::write_file_atomic(path, serialize(f, records)))
    throw std::runtime_error(
        fmt::format("tuning database {}: cannot write: {}", path.string(), ec.message()));
}

void TuneDb::put(const Fingerprint& f, const std::vector<Record>& records) const {
  if (auto ec = cache::make_private_dirs(dir_))
    throw std::runtime_error(
        fmt::format("tuning database {}: cannot create: {}", dir_.string(), ec.message()));
  const fs::path path = file_for(f);
  cache::FileLock lock = lock_for(path);
  DbFile current = load(f);
  if (!current.usable()) {
    std::error_code ec;
    fs::rename(path, fs::path(path).replace_extension(".corrupt"), ec);
    current = DbFile{.path = path, .fingerprint = f};
  }
  for (const Record& r : records) {
    auto [it, inserted] = current.records.try_emplace(record_key(r), r);
    if (!inserted) merge(it->second, r);
  }
  write(path, f, current.records);
}

size_t TuneDb::remove_matching(const std::string& pattern) const {
  size_t removed = 0;
  for (const DbFile& listed : load_all()) {
    if (!listed.usable() || listed.path.extension() != ".json") continue;
    cache::FileLock lock = lock_for(listed.path);
    DbFile d = read_db(listed.path);  // again, under the lock
    if (!d.usable()) continue;
    size_t before = d.records.size();
    std::erase_if(d.records, [&](const auto& kv) {
      return kv.first.find(pattern) != std::string::npos ||
             kv.second.spec_name.find(pattern) != std::string::npos;
    });
    if (d.records.size() == before) continue;
    removed += before - d.records.size();
    if (d.records.empty()) {
      std::error_code ec;
      fs::remove(d.path, ec);
    } else {
      write(d.path, *d.fingerprint, d.records);
    }
  }
  return removed;
}

void TuneDb::remove_file(const fs::path& path) const {
  std::error_code ec;
  fs::remove(path, ec);
  if (ec)
    throw std::runtime_error(fmt::format("cannot remove {}: {}", path.string(), ec.message()));
  // The lock file stays: deleting it could let two writers lock different files.
}

size_t TuneDb::clear() const {
  size_t n = 0;
  for (const DbFile& d : load_all()) {
    remove_file(d.path);
    ++n;
  }
  return n;
}

}  // namespace ttt::autotune
