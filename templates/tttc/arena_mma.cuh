// arena_mma.cuh: the arena lowering's tensor-core matmul, C = alpha * op(A) op(B) + beta * D over
// row-major f32 matrices in shared or global memory, with compile-time shapes.
//
// Each warp computes a block of BM x BN tiles of 16x8 with mma.sync m16n8k16 (bf16 terms of a
// split of each operand, f32 accumulation). Within a block the order of rows, columns and k is free
// as long as A, B, C and D agree, so the block permutes them to make every lane's elements
// contiguous in memory: a lane loads its A rows, B columns and C rows as float2/float4 vectors
// instead of one f32 at a time, and each fragment is loaded and split once per k step for the whole
// block.
#pragma once

namespace tttc {

// Two floats rounded to bf16 (nearest even) in one register, `lo` in the low half.
__device__ __forceinline__ unsigned pack_bf16x2(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

// D += A B on the tensor cores for one m16n8k16 fragment set.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const unsigned (&a)[4],
                                         const unsigned (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

namespace arena_mma {

// (x0, x1) as PARTS packed bf16x2 terms: each term is the bf16 rounding of what the earlier terms
// left (the residual x - bf16(x) is exact in f32).
template <int PARTS>
__device__ __forceinline__ void split_pair(float x0, float x1, unsigned (&out)[PARTS]) {
#pragma unroll
  for (int p = 0; p < PARTS; ++p) {
    out[p] = pack_bf16x2(x0, x1);
    if (p + 1 < PARTS) {
      x0 -= __uint_as_float(out[p] << 16);
      x1 -= __uint_as_float(out[p] & 0xffff0000u);
    }
  }
}

// W contiguous floats (W = 1, 2, 4 or 8; the address is aligned to min(W, 4) floats).
template <int W>
__device__ __forceinline__ void load_vec(const float* p, float* out) {
  if constexpr (W == 1) {
    out[0] = *p;
  } else if constexpr (W == 2) {
    const float2 v = *reinterpret_cast<const float2*>(p);
    out[0] = v.x, out[1] = v.y;
  } else {
#pragma unroll
    for (int i = 0; i < W; i += 4) {
      const float4 v = *reinterpret_cast<const float4*>(p + i);
      out[i] = v.x, out[i + 1] = v.y, out[i + 2] = v.z, out[i + 3] = v.w;
    }
  }
}

template <int W>
__device__ __forceinline__ void store_vec(float* p, const float* v) {
  if constexpr (W == 1) {
    *p = v[0];
  } else if constexpr (W == 2) {
    *reinterpret_cast<float2*>(p) = make_float2(v[0], v[1]);
  } else {
#pragma unroll
    for (int i = 0; i < W; i += 4)
      *reinterpret_cast<float4*>(p + i) = make_float4(v[i], v[i + 1], v[i + 2], v[i + 3]);
  }
}

struct Blocking {
  int bm, bn;  // 16-row and 8-column tiles per warp block
};

// Registers a lane holds for a block: accumulators, split fragments, raw loads, and addressing.
__host__ __device__ constexpr int block_registers(int bm, int bn, int pa, int pb) {
  return 4 * bm * bn + (4 * pa + 8) * bm + (2 * pb + 4) * bn + 24;
}

// Products a_i b_j of the split terms that are added: i + j below the deeper split (the x3/x6
// rules). An operand split into fewer terms is exact in them (a bf16 token), so the products its
// missing terms would add are exactly zero.
__host__ __device__ constexpr int split_products(int pa, int pb) {
  int n = 0;
  for (int i = 0; i < pa; ++i)
    for (int j = 0; j < pb; ++j) n += i + j < (pa > pb ? pa : pb);
  return n;
}

// The block shape that minimises one warp's issue slots: a k step of a block costs its MMAs plus
// loading and splitting each A fragment (8 floats) and each B fragment (4 floats) once; blocks
// are dealt to the warps round-robin. Blocks whose registers exceed the kernel's per-thread limit
// (REGS, from its launch bounds) are not taken, except 1 x 1 which always is.
template <int TILES_M, int TILES_N, int WARPS, int PA, int PB, int REGS>
__host__ __device__ constexpr Blocking choose_blocking() {
  Blocking best{1, 1};
  long long best_cost = -1;
  for (int bm = 1; bm <= 4; bm *= 2)
    for (int bn = 1; bn <= 8; bn *= 2) {
      if (TILES_M % bm || TILES_N % bn || bm * bn > 8) continue;
      if (bm * bn > 1 && block_registers(bm, bn, PA, PB) > REGS) continue;
      const long long blocks = (TILES_M / bm) * (TILES_N / bn);
      const long long rounds = (blocks + WARPS - 1) / WARPS;
      const long long cost =
          rounds * (8 * bm * bn * split_products(PA, PB) + bm * (20 * PA + 4) + bn * (10 * PB + 4));
      if (best_cost < 0 || cost < best_cost) best = {bm, bn}, best_cost = cost;
    }
  return best;
}

}  // namespace arena_mma

// The matmul below, as a type: its blocking, its split over k, and the block product and store.
template <bool TA, bool TB, int PA, int PB, int M, int N, int KD, int WARPS, int REGS>
struct MatmulMma {
  static_assert(PA >= 1 && PA <= 3 && PB >= 1 && PB <= 3, "split terms: 1, 2 or 3");
  static constexpr int P = PA > PB ? PA : PB;
  static_assert(M % 4 == 0 && KD % 4 == 0 && N % 8 == 0, "matmul_mma: shape");
  static constexpr int TILES_M = (M + 15) / 16, TILES_N = N / 8;
  static constexpr arena_mma::Blocking blk =
      arena_mma::choose_blocking<TILES_M, TILES_N, WARPS, PA, PB, REGS>();
  static constexpr int BM = blk.bm, BN = blk.bn, ROWS = 2 * BM;  // ROWS: a lane's rows in a block
  static constexpr int BLOCKS_N = TILES_N / BN, BLOCKS = (TILES_M / BM) * BLOCKS_N;
  static_assert(M % 16 == 0 || M % ROWS == 0, "matmul_mma: a lane's rows are all in or all out");

  // Split over k: when the blocks leave at least half the warps idle (few rows and columns, a
  // long contraction: [16 x 64] = [16 x 256][256 x 64]), KSPLIT warps share a block, each
  // taking a run of k, and add their partial products into C in turn (a fixed order, so the
  // result does not depend on timing). At most 4 parts: each costs a CTA barrier.
  static constexpr int KSTEPS = (KD + 15) / 16;
  __host__ __device__ static constexpr int ksplit() {
    int k = 1;
    while (k < 4 && BLOCKS * 2 * k <= WARPS && KSTEPS >= 4 * k) k *= 2;
    return k;
  }
  static constexpr int KSPLIT = ksplit();
  static constexpr int KCHUNK = 16 * ((KSTEPS + KSPLIT - 1) / KSPLIT);

  // acc = op(A) op(B) over k in [k_begin, k_end) for one block of tiles.
  static __device__ __forceinline__ void product(float (&acc)[BM][BN][4], const float* A,
                                                 const float* B, int row0, int col0, bool rows_in,
                                                 int k_begin, int k_end) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll 2
    for (int k0 = k_begin; k0 < k_end; k0 += 16) {
      const int k = k0 + 4 * t;  // this lane's four k
      const bool k_in = KD % 16 == 0 || k < KD;
      float a[ROWS][4] = {}, b[BN][4] = {};
      if (rows_in && k_in) {
        if constexpr (TA) {
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            float v[ROWS];
            arena_mma::load_vec<ROWS>(A + (k + q) * M + row0, v);
#pragma unroll
            for (int r = 0; r < ROWS; ++r) a[r][q] = v[r];
          }
        } else {
#pragma unroll
          for (int r = 0; r < ROWS; ++r) arena_mma::load_vec<4>(A + (row0 + r) * KD + k, a[r]);
        }
      }
      if (k_in) {
        if constexpr (TB) {
#pragma unroll
          for (int j = 0; j < BN; ++j)
            arena_mma::load_vec<4>(B + (col0 + g * BN + j) * KD + k, b[j]);
        } else {
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            float v[BN];
            arena_mma::load_vec<BN>(B + (k + q) * N + col0 + g * BN, v);
#pragma unroll
            for (int j = 0; j < BN; ++j) b[j][q] = v[j];
          }
        }
      }
      unsigned af[BM][PA][4], bf[BN][PB][2];
#pragma unroll
      for (int i = 0; i < BM; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          unsigned lo[PA], hi[PA];
          arena_mma::split_pair<PA>(a[2 * i + h][0], a[2 * i + h][1], lo);
          arena_mma::split_pair<PA>(a[2 * i + h][2], a[2 * i + h][3], hi);
#pragma unroll
          for (int p = 0; p < PA; ++p) af[i][p][h] = lo[p], af[i][p][2 + h] = hi[p];
        }
#pragma unroll
      for (int j = 0; j < BN; ++j) {
        unsigned lo[PB], hi[PB];
        arena_mma::split_pair<PB>(b[j][0], b[j][1], lo);
        arena_mma::split_pair<PB>(b[j][2], b[j][3], hi);
#pragma unroll
        for (int p = 0; p < PB; ++p) bf[j][p][0] = lo[p], bf[j][p][1] = hi[p];
      }
#pragma unroll
      for (int i = 0; i < BM; ++i)
#pragma unroll
        for (int j = 0; j < BN; ++j)
#pragma unroll
          for (int order = P - 1; order >= 0; --order)  // smallest products first
#pragma unroll
            for (int s = 0; s <= order; ++s)
              if (s < PA && order - s < PB) mma_bf16(acc[i][j], af[i][s], bf[j][order - s]);
    }
  }

  // C = alpha * acc + beta * D for one block (D may be null, or C itself).
  static __device__ __forceinline__ void store(float* C, const float (&acc)[BM][BN][4], int row0,
                                               int col0, float alpha, const float* D, float beta) {
    const int t = threadIdx.x % 4;
#pragma unroll
    for (int i = 0; i < BM; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int idx = (row0 + 2 * i + h) * N + col0 + 2 * t * BN;
        float v[2 * BN];
#pragma unroll
        for (int c = 0; c < 2; ++c)
#pragma unroll
          for (int j = 0; j < BN; ++j) v[c * BN + j] = alpha * acc[i][j][2 * h + c];
        if (D) {  // the addend on its own path: a vector loaded on one branch only spills
          float d[2 * BN];
          arena_mma::load_vec<2 * BN>(D + idx, d);
#pragma unroll
          for (int e = 0; e < 2 * BN; ++e) v[e] = fmaf(beta, d[e], v[e]);
        }
        arena_mma::store_vec<2 * BN>(C + idx, v);
      }
  }

  static __device__ __forceinline__ void run(float* C, const float* A, const float* B, float alpha,
                                             const float* D, float beta) {
    const int warp = threadIdx.x / 32, g = threadIdx.x % 32 / 4;
    const auto origin = [&](int block, int& row0, int& col0) {  // this lane's first row
      row0 = (block / BLOCKS_N) * 16 * BM + g * ROWS;
      col0 = (block % BLOCKS_N) * 8 * BN;
      return M % 16 == 0 || row0 < M;
    };
    if constexpr (KSPLIT == 1) {
      for (int block = warp; block < BLOCKS; block += WARPS) {
        int row0, col0;
        const bool rows_in = origin(block, row0, col0);
        float acc[BM][BN][4] = {};
        product(acc, A, B, row0, col0, rows_in, 0, KD);
        if (rows_in) store(C, acc, row0, col0, alpha, D, beta);
      }
      __syncthreads();
    } else {
      const int part = warp / BLOCKS;  // warps past BLOCKS * KSPLIT take no part
      int row0, col0;
      const bool rows_in = origin(warp % BLOCKS, row0, col0) && part < KSPLIT;
      float acc[BM][BN][4] = {};
      if (part < KSPLIT)
        product(acc, A, B, row0, col0, rows_in, part * KCHUNK, min(KD, (part + 1) * KCHUNK));
#pragma unroll 1
      for (int round = 0; round < KSPLIT; ++round) {
        if (part == round && rows_in)
          store(C, acc, row0, col0, alpha, round == 0 ? D : C, round == 0 ? beta : 1.f);
        __syncthreads();
      }
    }
  }
};

// C[M,N] = alpha * op(A) op(B) + beta * D (D may be null). A is [M,KD] (or [KD,M] when TA); B is
// [KD,N] (or [N,KD] when TB). M and KD are multiples of 4 and N of 8 (the spec language makes
// every dimension a multiple of 8); rows past M and k past KD read as zero. Pointers are 16-byte
// aligned (arena slots and state offsets are multiples of 4 floats). C may alias D (each element
// is read and written by one lane) but no other operand. PA and PB: the bf16 terms A and B are
// split into; with P terms each, 1 rounds operands to bf16 (about 2^-8 relative), 2 adds 3
// products (2^-16), 3 adds 6 products (2^-24, like f32); an operand whose values are bf16
// already (tokens) takes 1 term at no loss. WARPS and REGS are the kernel's warps and register
// limit per thread.
//
// Fragment layout (PTX ISA, m16n8k16, lane = 4g + t): A rows g, g+8 and k 2t, 2t+1, 2t+8, 2t+9;
// B k the same and column g; C rows g, g+8 and columns 2t, 2t+1. Within a block of bm x bn tiles
// this lane's slots stand for: k slot (2t, 2t+1, 2t+8, 2t+9) -> k 4t..4t+3; row slot g (+8 h) of
// tile i -> row g*2bm + 2i + h; column slot s of tile j -> column s*bn + j.
template <bool TA, bool TB, int PA, int PB, int M, int N, int KD, int WARPS, int REGS>
__device__ __noinline__ void matmul_mma(float* C, const float* A, const float* B, float alpha,
                                        const float* D, float beta) {
  MatmulMma<TA, TB, PA, PB, M, N, KD, WARPS, REGS>::run(C, A, B, alpha, D, beta);
}

}  // namespace tttc
