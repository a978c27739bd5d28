// entry_format.hpp: the on-disk byte layout of one cache entry (a fixed header, metadata JSON,
// binary, trailing SHA-256) and its strict parser. Pure functions: no I/O, so every corruption
// case can be tested on byte strings.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace ttt::cache {

// Layout (all integers little-endian):
//   0  char[8]  magic "TTTCACHE"
//   8  u32      format version (kEntryFormatVersion)
//  12  u32      reserved, 0
//  16  u64      metadata length M
//  24  u64      binary length B
//  32  M bytes  metadata, UTF-8 JSON object (must contain "key")
//  32+M B bytes binary (cubin or PTX)
//  32+M+B 64    lowercase hex SHA-256 of bytes [0, 32+M+B)
// The file length must be exactly 32+M+B+64.
inline constexpr std::string_view kEntryMagic = "TTTCACHE";
inline constexpr std::uint32_t kEntryFormatVersion = 1;
inline constexpr std::size_t kEntryHeaderSize = 32;
inline constexpr std::size_t kEntryChecksumSize = 64;

struct Entry {
  std::string key;
  nlohmann::json metadata;  // includes "key", "key_inputs", "source", stats...
  std::string binary;
};

// Serializes an entry; metadata["key"] is set to entry.key.
std::string serialize_entry(const Entry& entry);

// Why bytes were rejected; the message names the failed check.
struct EntryError {
  std::string reason;
};

// Parses and fully validates `bytes` (magic, version, lengths, checksum, JSON, metadata key ==
// expected_key). Never returns a partially valid entry.
std::variant<Entry, EntryError> parse_entry(std::string_view bytes,
                                            const std::string& expected_key);

// Header + metadata only, for listing without reading or hashing the binary. `prefix` holds the
// file's first bytes, `file_size` its full size; the checksum is NOT verified (use parse_entry).
std::variant<nlohmann::json, EntryError> parse_entry_metadata(std::string_view prefix,
                                                              std::uint64_t file_size);

// How many leading bytes parse_entry_metadata needs, from the first kEntryHeaderSize bytes;
// nullopt if the header is already invalid (parse_entry_metadata then says why).
std::optional<std::size_t> entry_metadata_prefix_size(std::string_view header);

}  // namespace ttt::cache
