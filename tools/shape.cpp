// shape.cpp: the strict --shape parser (see shape.hpp).
#include "tools/shape.hpp"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <cstdint>

#include "tools/cli_common.hpp"

namespace ttt::cli {

Shape parse_shape(const std::string& text) {
  constexpr std::array<const char*, 3> names = {"B (batch)", "H (heads)", "T (tokens)"};
  constexpr std::array<int, 3> bounds = {kMaxBatch, kMaxHeads, kMaxTokens};
  auto fail = [&](const std::string& why) {
    // The echo is cut so a pasted megabyte does not become the error line.
    const std::string shown = text.size() > 64 ? text.substr(0, 64) + "..." : text;
    return CommandExit(kUsage, fmt::format("error: --shape '{}': {}; expected B,H,T: three "
                                           "positive integers such as 2,4,2048",
                                           shown, why));
  };
  std::array<int64_t, 3> v{};
  const char* p = text.data();
  const char* const end = p + text.size();
  for (size_t i = 0; i < v.size(); ++i) {
    if (p == end || *p < '0' || *p > '9')  // from_chars would accept a sign
      throw fail(p == end ? fmt::format("{} is missing", names[i])
                          : fmt::format("{} is not a number", names[i]));
    const auto [next, ec] = std::from_chars(p, end, v[i]);
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && v[i] > bounds[i]))
      throw fail(fmt::format("{} is too large (at most {})", names[i], bounds[i]));
    if (v[i] == 0) throw fail(fmt::format("{} must be at least 1", names[i]));
    p = next;
    const bool last = i + 1 == v.size();
    if (last && p != end)
      throw fail(*p == ','
                     ? std::string("more than three values")
                     : fmt::format("unexpected '{}' after {}", std::string(p, end), names[i]));
    if (!last) {
      if (p == end) throw fail(fmt::format("{} is missing", names[i + 1]));
      if (*p != ',') throw fail(fmt::format("unexpected '{}' after {}", *p, names[i]));
      ++p;
    }
  }
  return {static_cast<int>(v[0]), static_cast<int>(v[1]), static_cast<int>(v[2])};
}

}  // namespace ttt::cli
