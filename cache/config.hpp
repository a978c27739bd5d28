// config.hpp: where the cache lives and how big it may grow, from the environment
// (TTT_CACHE_DIR, XDG_CACHE_HOME, HOME, TTT_CACHE_MAX_SIZE), plus the size/duration syntax
// shared by the environment and the CLI ("2G", "500M", "7d").
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace ttt::cache {

inline constexpr std::uint64_t kDefaultMaxSize = 4ull << 30;  // 4 GiB

// TTT_CACHE_DIR, else $XDG_CACHE_HOME/tttc, else ~/.cache/tttc (HOME, else the passwd entry).
std::filesystem::path default_cache_dir();

// TTT_CACHE_MAX_SIZE parsed with parse_size, else kDefaultMaxSize. An unparsable value warns
// once and falls back to the default. 0 means "no cap".
std::uint64_t default_max_size();

// "123", "123B", "500K", "500M", "2G", "1.5T" (binary units, case-insensitive, optional "iB"/"B").
std::optional<std::uint64_t> parse_size(std::string_view text);
// Human-readable size: "812 B", "3.4 MiB".
std::string format_size(std::uint64_t bytes);

// "90s", "45m", "2h", "7d", "2w" (an integer and one unit letter).
std::optional<std::chrono::seconds> parse_duration(std::string_view text);
// Coarse human duration: "42s", "5m", "3h", "12d".
std::string format_duration(std::chrono::seconds d);

}  // namespace ttt::cache
