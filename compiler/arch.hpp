// arch.hpp: GPU architecture names ("sm_90a") parsed in one place, for the schedule's checks and
// the NVRTC back end's choice of target.
#pragma once

#include <cctype>
#include <string>

namespace ttt {

// "sm_90a" -> 90, "sm_120" -> 120; -1 for anything that is not sm_<digits> with an optional 'a'.
inline int arch_number(const std::string& arch) {
  if (arch.rfind("sm_", 0) != 0) return -1;
  std::size_t end = arch.size();
  if (end > 3 && arch[end - 1] == 'a') --end;
  if (end == 3) return -1;
  int n = 0;
  for (std::size_t i = 3; i < end; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(arch[i])) || n > 100000) return -1;
    n = 10 * n + (arch[i] - '0');
  }
  return n;
}

}  // namespace ttt
