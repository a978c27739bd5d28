// fragment_order.cuh: where the tile lowering's fragment order puts element (i, j) of a state
// matrix (tile::FragTile: a warp's slice in 8 x 8 blocks, row-major over blocks, each lane's two
// elements side by side), for kernels that read the tile forward's checkpoints by packed index
// (the arena backward). Plain C++ as well, so host tests can check it.
#pragma once

#if defined(__CUDACC__)
#define TTTC_HOST_DEVICE __host__ __device__
#else
#define TTTC_HOST_DEVICE
#endif

namespace tttc {

// How the tile forward's team held a member (tile::member_split).
enum FragmentSplit { kFragmentWhole = 0, kFragmentCols = 1, kFragmentRows = 2 };

// Element k of an R x C matrix in the packed (row-major) layout -> its float in the fragment
// layout of a team of Warps warps: warp w's slice at w * (slice size), in its blocks' order.
template <int R, int C, int Split, int Warps>
TTTC_HOST_DEVICE constexpr long long fragment_index(long long k) {
  constexpr int r = Split == kFragmentRows ? R / Warps : R;
  constexpr int c = Split == kFragmentCols ? C / Warps : C;
  const int i = static_cast<int>(k / C), j = static_cast<int>(k % C);
  const int rank = Split == kFragmentCols ? j / c : Split == kFragmentRows ? i / r : 0;
  const int li = i - (Split == kFragmentRows ? rank * r : 0);
  const int lj = j - (Split == kFragmentCols ? rank * c : 0);
  const int block = (li / 8) * (c / 8) + lj / 8, lane = (li % 8) * 4 + (lj % 8) / 2;
  return 1LL * rank * r * c + (32LL * block + lane) * 2 + (lj & 1);
}

// The inverse: the packed index of float f of the fragment layout (f even: a lane's first
// element, whose neighbour in the row is f + 1). 32-bit arithmetic with compile-time divisors:
// the arena backward converts every checkpoint it reads with it.
template <int R, int C, int Split, int Warps>
TTTC_HOST_DEVICE constexpr int packed_index(int f) {
  constexpr int r = Split == kFragmentRows ? R / Warps : R;
  constexpr int c = Split == kFragmentCols ? C / Warps : C;
  const int rank = f / (r * c), within = f % (r * c);
  const int block = within / 64, lane = within % 64 / 2;
  const int i = (block / (c / 8)) * 8 + lane / 4 + (Split == kFragmentRows ? rank * r : 0);
  const int j =
      (block % (c / 8)) * 8 + (lane % 4) * 2 + (f & 1) + (Split == kFragmentCols ? rank * c : 0);
  return i * C + j;
}

}  // namespace tttc
