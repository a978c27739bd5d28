// config.cpp: environment lookup and the size/duration parsers.
#include "cache/config.hpp"

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <ctime>

#include "cache/warnings.hpp"

namespace ttt::cache {
namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::string> cache_env(const char* name) {
  if (auto v = env(name)) return v;
  const std::string_view n = name;
  // The pre-TTTC_ names keep working, documented as aliases.
  if (n == "TTTC_CACHE_DIR") return env("TTT_CACHE_DIR");
  if (n == "TTTC_CACHE_MAX_SIZE") return env("TTT_CACHE_MAX_SIZE");
  return std::nullopt;
}

std::filesystem::path default_cache_dir() {
  if (auto dir = cache_env("TTTC_CACHE_DIR")) return *dir;
  if (auto xdg = env("XDG_CACHE_HOME")) return std::filesystem::path(*xdg) / "tttc";
  std::optional<std::string> home = env("HOME");
  if (!home) {
    if (const passwd* pw = getpwuid(geteuid()); pw && pw->pw_dir) home = pw->pw_dir;
  }
  // Without any home the cache still needs a per-user place; /tmp is the last resort.
  if (!home) return std::filesystem::path("/tmp") / fmt::format("tttc-cache-{}", geteuid());
  return std::filesystem::path(*home) / ".cache" / "tttc";
}

std::uint64_t default_max_size() {
  auto text = cache_env("TTTC_CACHE_MAX_SIZE");
  if (!text) return kDefaultMaxSize;
  const char* name = env("TTTC_CACHE_MAX_SIZE") ? "TTTC_CACHE_MAX_SIZE" : "TTT_CACHE_MAX_SIZE";
  if (auto size = parse_size(*text)) return *size;
  static std::atomic<bool> warned{false};  // one warning per process, not one per lookup
  if (!warned.exchange(true)) {
    warn(fmt::format("{}='{}' is not a size (e.g. 500M, 2G); using {}", name, *text,
                     format_size(kDefaultMaxSize)));
  }
  return kDefaultMaxSize;
}

bool cache_disabled_by_env() {
  auto v = env("TTTC_CACHE_DISABLE");
  return v && *v != "0";
}

std::filesystem::path readonly_cache_dir() { return env("TTTC_CACHE_READONLY_DIR").value_or(""); }

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::string s = lower(trim(text));
  if (s.empty()) return std::nullopt;
  std::size_t digits = 0;
  while (digits < s.size() &&
         (std::isdigit(static_cast<unsigned char>(s[digits])) || s[digits] == '.'))
    ++digits;
  if (digits == 0) return std::nullopt;
  std::string number = s.substr(0, digits);
  std::string unit(trim(std::string_view(s).substr(digits)));
  if (unit.ends_with("ib"))
    unit.resize(unit.size() - 2);
  else if (unit.size() > 1 && unit.ends_with("b"))
    unit.resize(unit.size() - 1);
  int shift = 0;
  if (unit.empty() || unit == "b")
    shift = 0;
  else if (unit == "k")
    shift = 10;
  else if (unit == "m")
    shift = 20;
  else if (unit == "g")
    shift = 30;
  else if (unit == "t")
    shift = 40;
  else
    return std::nullopt;
  char* end = nullptr;
  double value = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size() || !std::isfinite(value) || value < 0)
    return std::nullopt;
  double bytes = std::ldexp(value, shift);
  if (bytes >= 18446744073709551615.0) return std::nullopt;
  return static_cast<std::uint64_t>(std::llround(bytes));
}

std::string format_size(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  static const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = -1;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
  std::string s = lower(trim(text));
  if (s.size() < 2) return std::nullopt;
  char unit = s.back();
  std::string number = s.substr(0, s.size() - 1);
  for (char c : number)
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  if (number.size() > 9) return std::nullopt;
  long long n = std::stoll(number);
  switch (unit) {
    case 's':
      return std::chrono::seconds(n);
    case 'm':
      return std::chrono::seconds(n * 60);
    case 'h':
      return std::chrono::seconds(n * 3600);
    case 'd':
      return std::chrono::seconds(n * 86400);
    case 'w':
      return std::chrono::seconds(n * 7 * 86400);
    default:
      return std::nullopt;
  }
}

std::string format_duration(std::chrono::seconds d) {
  long long s = d.count();
  if (s < 0) s = 0;
  if (s < 120) return fmt::format("{}s", s);
  if (s < 2 * 3600) return fmt::format("{}m", s / 60);
  if (s < 2 * 86400) return fmt::format("{}h", s / 3600);
  return fmt::format("{}d", s / 86400);
}

std::string format_utc(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

}  // namespace ttt::cache
