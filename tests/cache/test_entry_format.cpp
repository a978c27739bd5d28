// test_entry_format.cpp: entry bytes round-trip, and every single-bit flip and every truncation
// of an entry is rejected by the parser.
#include <gtest/gtest.h>

#include "cache/entry_format.hpp"
#include "cache/key.hpp"
#include "cache_test_util.hpp"

namespace ttt::cache {
namespace {

Entry small_entry() {
  Entry e;
  e.key = compute_key(test_util::sample_inputs());
  e.metadata = {{"spec_name", "tiny"}, {"arch", "sm_90a"}};
  e.binary = std::string(
      "\x7f"
      "ELF\0\1\2\3binary",
      15);
  return e;
}

TEST(CacheEntryFormat, RoundTrip) {
  const Entry e = small_entry();
  const std::string bytes = serialize_entry(e);
  EXPECT_EQ(bytes.substr(0, 8), "TTTCACHE");
  auto parsed = parse_entry(bytes, e.key);
  ASSERT_TRUE(std::holds_alternative<Entry>(parsed)) << std::get<EntryError>(parsed).reason;
  const Entry& back = std::get<Entry>(parsed);
  EXPECT_EQ(back.key, e.key);
  EXPECT_EQ(back.binary, e.binary);
  EXPECT_EQ(back.metadata["spec_name"], "tiny");
  EXPECT_EQ(back.metadata["key"], e.key);
}

TEST(CacheEntryFormat, EmptyBinaryRoundTrips) {
  Entry e = small_entry();
  e.binary.clear();
  auto parsed = parse_entry(serialize_entry(e), e.key);
  ASSERT_TRUE(std::holds_alternative<Entry>(parsed));
  EXPECT_TRUE(std::get<Entry>(parsed).binary.empty());
}

TEST(CacheEntryFormat, EverySingleBitFlipIsRejected) {
  const Entry e = small_entry();
  const std::string bytes = serialize_entry(e);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      EXPECT_TRUE(std::holds_alternative<EntryError>(parse_entry(bad, e.key)))
          << "flip of bit " << bit << " in byte " << i << " was accepted";
    }
  }
}

TEST(CacheEntryFormat, EveryTruncationIsRejected) {
  const Entry e = small_entry();
  const std::string bytes = serialize_entry(e);
  for (std::size_t n = 0; n < bytes.size(); ++n)
    EXPECT_TRUE(std::holds_alternative<EntryError>(parse_entry(bytes.substr(0, n), e.key)))
        << "truncation to " << n << " bytes was accepted";
  EXPECT_TRUE(std::holds_alternative<EntryError>(parse_entry(bytes + "x", e.key)));
}

TEST(CacheEntryFormat, ErrorsNameTheProblem) {
  const Entry e = small_entry();
  const std::string bytes = serialize_entry(e);
  auto reason = [&](const std::string& b, const std::string& key) {
    auto r = parse_entry(b, key);
    return std::holds_alternative<EntryError>(r) ? std::get<EntryError>(r).reason : "";
  };
  EXPECT_EQ(reason("XXXXXXXX" + bytes.substr(8), e.key), "bad magic");
  EXPECT_NE(reason(bytes.substr(0, bytes.size() - 1), e.key).find("bad lengths"),
            std::string::npos);
  std::string flipped = bytes;
  flipped[40] ^= 1;
  EXPECT_EQ(reason(flipped, e.key), "checksum mismatch");
  EXPECT_NE(reason(bytes, std::string(64, '0')).find("does not match file name"),
            std::string::npos);
  std::string huge = bytes;
  huge[23] = '\x7f';  // metadata length ~ 2^63
  EXPECT_NE(reason(huge, e.key).find("bad lengths"), std::string::npos);
}

TEST(CacheEntryFormat, MetadataOnlyParse) {
  const Entry e = small_entry();
  const std::string bytes = serialize_entry(e);
  auto need = entry_metadata_prefix_size(bytes.substr(0, kEntryHeaderSize));
  ASSERT_TRUE(need.has_value());
  auto meta = parse_entry_metadata(bytes.substr(0, *need), bytes.size());
  ASSERT_TRUE(std::holds_alternative<nlohmann::json>(meta));
  EXPECT_EQ(std::get<nlohmann::json>(meta)["arch"], "sm_90a");
  EXPECT_TRUE(std::holds_alternative<EntryError>(
      parse_entry_metadata(bytes.substr(0, *need), bytes.size() - 3)));
}

}  // namespace
}  // namespace ttt::cache
