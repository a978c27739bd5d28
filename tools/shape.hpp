// shape.hpp: the one strict parser for --shape B,H,T, shared by every command that takes one
// (reference, check, bench, run --device cpu). sscanf accepted "1,1,5xyz" and "1,1,1,1" and
// wrapped "1,1,4294967297" to T=1 (issue 11); this accepts exactly three bounded integers.
#pragma once

#include <string>

namespace ttt::cli {

struct Shape {
  int B, H, T;
};

// Upper bounds per dimension, far above any real use; sizes beyond what memory allows are
// refused later, with the figure, by the code that would allocate.
inline constexpr int kMaxBatch = 1 << 20, kMaxHeads = 1 << 16, kMaxTokens = 1 << 26;

// "B,H,T": three decimal integers in 1..their bound, separated by single commas, nothing else.
// Throws CommandExit(kUsage) with a message that quotes the text and says what is wrong.
Shape parse_shape(const std::string& text);

}  // namespace ttt::cli
