// entry_format.cpp: entry (de)serialization. Lengths are checked against the real size before
// any allocation or slicing, so a truncated or hostile file can never cause an out-of-bounds read.
#include "cache/entry_format.hpp"

#include <fmt/format.h>

#include "compiler/hash.hpp"

namespace ttt::cache {
namespace {

// Entries are kernels: metadata is kilobytes to a few MB (it holds the source), binaries are MBs.
// The bounds only reject absurd lengths from garbage headers.
constexpr std::uint64_t kMaxMetadata = 256ull << 20;
constexpr std::uint64_t kMaxBinary = 4ull << 30;

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get_le(std::string_view bytes, std::size_t offset, int width) {
  std::uint64_t v = 0;
  for (int i = 0; i < width; ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  return v;
}

struct Header {
  std::uint64_t metadata_length;
  std::uint64_t binary_length;
};

std::variant<Header, EntryError> parse_header(std::string_view bytes, std::uint64_t file_size) {
  if (bytes.size() < kEntryHeaderSize)
    return EntryError{
        fmt::format("truncated: {} bytes, header needs {}", bytes.size(), kEntryHeaderSize)};
  if (bytes.substr(0, kEntryMagic.size()) != kEntryMagic) return EntryError{"bad magic"};
  auto version = get_le(bytes, 8, 4);
  if (version != kEntryFormatVersion)
    return EntryError{fmt::format("unsupported format version {}", version)};
  Header h{get_le(bytes, 16, 8), get_le(bytes, 24, 8)};
  if (h.metadata_length > kMaxMetadata || h.binary_length > kMaxBinary)
    return EntryError{
        fmt::format("bad lengths (metadata {}, binary {})", h.metadata_length, h.binary_length)};
  std::uint64_t expected =
      kEntryHeaderSize + h.metadata_length + h.binary_length + kEntryChecksumSize;
  if (file_size != expected)
    return EntryError{
        fmt::format("bad lengths: file has {} bytes, header implies {}", file_size, expected)};
  return h;
}

std::variant<nlohmann::json, EntryError> parse_metadata(std::string_view text) {
  auto meta = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.is_object()) return EntryError{"metadata is not a JSON object"};
  auto key = meta.find("key");
  if (key == meta.end() || !key->is_string()) return EntryError{"metadata has no key"};
  return meta;
}

}  // namespace

std::string serialize_entry(const Entry& entry) {
  nlohmann::json meta = entry.metadata;
  meta["key"] = entry.key;
  // Invalid UTF-8 in a source comment must not make the entry unwritable.
  std::string meta_text = meta.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(kEntryHeaderSize + meta_text.size() + entry.binary.size() + kEntryChecksumSize);
  out.append(kEntryMagic);
  put_u32(out, kEntryFormatVersion);
  put_u32(out, 0);
  put_u64(out, meta_text.size());
  put_u64(out, entry.binary.size());
  out.append(meta_text);
  out.append(entry.binary);
  out.append(sha256_hex(out));
  return out;
}

std::variant<Entry, EntryError> parse_entry(std::string_view bytes,
                                            const std::string& expected_key) {
  auto header = parse_header(bytes, bytes.size());
  if (auto* e = std::get_if<EntryError>(&header)) return *e;
  const auto [m, b] = std::get<Header>(header);
  std::string_view body = bytes.substr(0, kEntryHeaderSize + m + b);
  std::string_view stored = bytes.substr(kEntryHeaderSize + m + b, kEntryChecksumSize);
  if (sha256_hex(body) != stored) return EntryError{"checksum mismatch"};
  auto meta = parse_metadata(bytes.substr(kEntryHeaderSize, m));
  if (auto* e = std::get_if<EntryError>(&meta)) return *e;
  Entry entry;
  entry.metadata = std::move(std::get<nlohmann::json>(meta));
  entry.key = entry.metadata["key"].get<std::string>();
  if (entry.key != expected_key)
    return EntryError{fmt::format("metadata key {} does not match file name", entry.key)};
  entry.binary.assign(bytes.substr(kEntryHeaderSize + m, b));
  return entry;
}

std::optional<std::size_t> entry_metadata_prefix_size(std::string_view header) {
  if (header.size() < kEntryHeaderSize || header.substr(0, kEntryMagic.size()) != kEntryMagic)
    return std::nullopt;
  std::uint64_t m = get_le(header, 16, 8);
  if (m > kMaxMetadata) return std::nullopt;
  return kEntryHeaderSize + static_cast<std::size_t>(m);
}

std::variant<nlohmann::json, EntryError> parse_entry_metadata(std::string_view prefix,
                                                              std::uint64_t file_size) {
  auto header = parse_header(prefix, file_size);
  if (auto* e = std::get_if<EntryError>(&header)) return *e;
  const auto m = std::get<Header>(header).metadata_length;
  if (prefix.size() < kEntryHeaderSize + m) return EntryError{"truncated metadata"};
  return parse_metadata(prefix.substr(kEntryHeaderSize, m));
}

}  // namespace ttt::cache
