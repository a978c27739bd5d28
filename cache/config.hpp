// config.hpp: where the cache lives, how big it may grow, whether it is bypassed and where a
// read-only shared cache is, from the environment (TTTC_CACHE_DIR, XDG_CACHE_HOME, HOME,
// TTTC_CACHE_MAX_SIZE, TTTC_CACHE_DISABLE, TTTC_CACHE_READONLY_DIR; the old TTT_CACHE_DIR and
// TTT_CACHE_MAX_SIZE are aliases), plus the size/duration syntax shared by the environment and the
// CLI ("2G", "500M", "7d").
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace ttt::cache {

inline constexpr std::uint64_t kDefaultMaxSize = 4ull << 30;  // 4 GiB

// The value of environment variable `name`, else of its old alias (TTT_CACHE_DIR for
// TTTC_CACHE_DIR, TTT_CACHE_MAX_SIZE for TTTC_CACHE_MAX_SIZE); nothing when unset or empty.
std::optional<std::string> cache_env(const char* name);

// TTTC_CACHE_DIR, else $XDG_CACHE_HOME/tttc, else ~/.cache/tttc (HOME, else the passwd entry).
std::filesystem::path default_cache_dir();

// TTTC_CACHE_MAX_SIZE parsed with parse_size, else kDefaultMaxSize. An unparsable value warns
// once and falls back to the default. 0 means "no cap".
std::uint64_t default_max_size();

// TTTC_CACHE_DISABLE set to anything but "" or "0": bypass the disk cache for this process
// (every kernel is compiled; nothing is read from or written to the cache directory).
bool cache_disabled_by_env();

// TTTC_CACHE_READONLY_DIR: a second, read-only cache (e.g. shared and pre-populated for a
// cluster), consulted after the user's own; empty when unset.
std::filesystem::path readonly_cache_dir();

// "123", "123B", "500K", "500M", "2G", "1.5T" (binary units, case-insensitive, optional "iB"/"B").
std::optional<std::uint64_t> parse_size(std::string_view text);
// Human-readable size: "812 B", "3.4 MiB".
std::string format_size(std::uint64_t bytes);

// "90s", "45m", "2h", "7d", "2w" (an integer and one unit letter).
std::optional<std::chrono::seconds> parse_duration(std::string_view text);
// Coarse human duration: "42s", "5m", "3h", "12d".
std::string format_duration(std::chrono::seconds d);
// A wall-clock time as ISO 8601 UTC, "2026-11-29T16:57:39Z" (entry metadata, cache commands).
std::string format_utc(std::chrono::system_clock::time_point t);

}  // namespace ttt::cache
