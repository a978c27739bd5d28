// db.hpp: the tuning database: <cache dir>/tune/<fingerprint id>.json, one file per device
// fingerprint, holding that fingerprint and its records keyed by record_key(). Files are written
// atomically (cache::write_file_atomic) under a per-file lock (cache::FileLock), read-merge-write,
// so concurrent tuners lose no record and readers never see a torn file; a checksum over the
// content detects corruption. A corrupted or truncated file is reported and never used.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "autotune/fingerprint.hpp"
#include "autotune/record.hpp"

namespace ttt::autotune {

inline constexpr const char* kDbFormat = "tttc-tune-db/1";

struct DbFile {
  std::filesystem::path path;
  std::optional<Fingerprint> fingerprint;  // absent when the file is unreadable
  std::map<std::string, Record> records;   // by record_key
  std::string error;                       // why the file cannot be used; empty = usable
  bool usable() const { return error.empty() && fingerprint.has_value(); }
};

// The file's text for (fingerprint, records), with its checksum.
std::string serialize(const Fingerprint& f, const std::map<std::string, Record>& records);
// Parses a file's text; never throws: problems go to DbFile::error.
DbFile parse_db(const std::string& text, const std::filesystem::path& path);

class TuneDb {
 public:
  explicit TuneDb(std::filesystem::path cache_dir);
  // Under the kernel cache's directory (TTTC_CACHE_DIR, ...: cache/config.hpp).
  static TuneDb at_default_location();

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path file_for(const Fingerprint& f) const;

  // The file of `f` (a missing file: usable, no records).
  DbFile load(const Fingerprint& f) const;
  // Every database file in the directory, by name, usable or not.
  std::vector<DbFile> load_all() const;
  // Merges `records` into f's file (read-merge-write under the file's lock). A corrupted file is
  // moved aside to NAME.corrupt (reported by load_all) and replaced. Throws std::runtime_error
  // naming the file when it cannot be written.
  void put(const Fingerprint& f, const std::vector<Record>& records) const;
  // Removes the records whose key or spec name contains `pattern` from every usable file;
  // returns how many. A file left without records is deleted.
  size_t remove_matching(const std::string& pattern) const;
  // Deletes a whole file (its lock file stays: removing it could let two writers in).
  void remove_file(const std::filesystem::path& path) const;
  // Deletes every database file; returns how many.
  size_t clear() const;

 private:
  std::filesystem::path dir_;
};

}  // namespace ttt::autotune
