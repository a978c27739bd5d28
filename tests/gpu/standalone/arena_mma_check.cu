// arena_mma_check.cu: checks templates/tttc/arena_mma.cuh's matmul_mma on a GPU against a double
// CPU product for every transpose pair, split depth and a spread of shapes (rows and k that are
// not multiples of 16, register limits that change the blocking, splits over k), with C aliasing
// D. Built with nvcc by scripts/device-bundle.sh; prints one line per case and exits 1 on any
// failure.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "tttc/arena_mma.cuh"

template <bool TA, bool TB, int PA, int PB, int M, int N, int KD, int W, int R>
__global__ void run(float* C, const float* A, const float* B, float alpha, const float* D,
                    float beta) {
  tttc::matmul_mma<TA, TB, PA, PB, M, N, KD, W, R>(C, A, B, alpha, D, beta);
}

static int failures = 0;

// The bf16 value nearest to x (inputs here are finite): what a bf16 token holds.
float to_bf16(float x) {
  unsigned u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}

// An operand split into 1 term while the other takes more stands for a bf16 token: its values
// are bf16, and the result must be as accurate as the deeper split.
// TOKENS: both operands are tokens (1 term each, exact products).
template <bool TA, bool TB, int PA, int PB, int M, int N, int KD, int W, int R, bool TOKENS>
void check(bool alias) {
  constexpr int P = PA > PB ? PA : PB;
  constexpr bool exact_a = PA < P || TOKENS, exact_b = PB < P || TOKENS;
  std::mt19937 rng(M * 1000003 + N * 1009 + KD * 7 + TA * 2 + TB + PA * 11 + PB * 13 + alias);
  std::normal_distribution<float> nd;
  std::vector<float> a(M * KD), b(KD * N), d(M * N), c(M * N);
  for (auto* v : {&a, &b, &d})
    for (float& x : *v) x = nd(rng);
  if (exact_a)
    for (float& x : a) x = to_bf16(x);
  if (exact_b)
    for (float& x : b) x = to_bf16(x);
  float *da, *db, *dc, *dd;
  cudaMalloc(&da, a.size() * 4), cudaMalloc(&db, b.size() * 4), cudaMalloc(&dc, c.size() * 4);
  cudaMalloc(&dd, d.size() * 4);
  cudaMemcpy(da, a.data(), a.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(db, b.data(), b.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(dd, d.data(), d.size() * 4, cudaMemcpyHostToDevice);
  cudaMemset(dc, 0xff, c.size() * 4);  // poisoned: NaN
  const float alpha = -1.25f, beta = 0.75f;
  if (alias) {
    cudaMemcpy(dc, d.data(), d.size() * 4, cudaMemcpyHostToDevice);
    run<TA, TB, PA, PB, M, N, KD, W, R><<<1, W * 32>>>(dc, da, db, alpha, dc, beta);
  } else {
    run<TA, TB, PA, PB, M, N, KD, W, R>
        <<<1, W * 32>>>(dc, da, db, alpha, (P == 2 ? nullptr : dd), beta);
  }
  const cudaError_t err = cudaDeviceSynchronize();
  cudaMemcpy(c.data(), dc, c.size() * 4, cudaMemcpyDeviceToHost);
  const bool use_d = alias || P != 2;
  double worst = 0, scale = 0;
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double s = 0;
      for (int k = 0; k < KD; ++k)
        s += double(TA ? a[k * M + m] : a[m * KD + k]) * double(TB ? b[n * KD + k] : b[k * N + n]);
      double ref = alpha * s + (use_d ? beta * double(d[m * N + n]) : 0.0);
      const double e = std::fabs(ref - c[m * N + n]);
      worst = std::isnan(e) ? INFINITY : std::fmax(worst, e);
      scale = std::fmax(scale, std::fabs(ref));
    }
  const double rel = worst / scale, tol = P == 1 && !TOKENS ? 2e-2 : P == 2 ? 1e-4 : 1e-5;
  const bool ok = err == cudaSuccess && rel <= tol;
  failures += !ok;
  std::printf(
      "%s TA=%d TB=%d PA=%d PB=%d M=%d N=%d KD=%d warps=%d regs=%d ksplit=%d alias=%d rel=%.2e%s\n",
      ok ? "pass" : "FAIL", TA, TB, PA, PB, M, N, KD, W, R,
      tttc::MatmulMma<TA, TB, PA, PB, M, N, KD, W, R>::KSPLIT, alias, rel,
      err == cudaSuccess ? "" : cudaGetErrorString(err));
  cudaFree(da), cudaFree(db), cudaFree(dc), cudaFree(dd);
}

template <int P, int M, int N, int KD, int W, int R, int PA = P, int PB = P, bool TOKENS = false>
void all_transposes() {
  check<false, false, PA, PB, M, N, KD, W, R, TOKENS>(false);
  check<false, true, PA, PB, M, N, KD, W, R, TOKENS>(true);
  check<true, false, PA, PB, M, N, KD, W, R, TOKENS>(true);
  check<true, true, PA, PB, M, N, KD, W, R, TOKENS>(false);
}

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("skip: no GPU\n");
    return 0;
  }
  all_transposes<3, 16, 256, 64, 8, 224>();
  all_transposes<3, 16, 64, 256, 8, 224>();
  all_transposes<3, 64, 256, 16, 8, 224>();
  all_transposes<3, 256, 64, 16, 8, 128>();
  all_transposes<3, 16, 16, 64, 8, 64>();
  all_transposes<3, 8, 64, 8, 8, 128>();
  all_transposes<3, 24, 128, 24, 4, 255>();
  all_transposes<3, 40, 48, 40, 16, 64>();
  all_transposes<2, 128, 128, 128, 8, 255>();
  all_transposes<2, 72, 32, 56, 2, 255>();
  all_transposes<1, 16, 512, 64, 8, 255>();
  all_transposes<1, 8, 8, 8, 1, 255>();
  all_transposes<3, 16, 256, 64, 8, 248, 1, 3>();  // token x f32
  all_transposes<3, 64, 256, 16, 8, 128, 1, 3>();
  all_transposes<3, 16, 64, 256, 8, 248, 3, 1>();  // f32 x token
  all_transposes<2, 24, 64, 40, 4, 64, 1, 2>();
  all_transposes<1, 16, 16, 64, 8, 248, 1, 1, true>();  // token x token: exact products
  // split over k (few blocks, long contractions): 2 and 4 parts, k and rows not multiples of 16
  all_transposes<3, 16, 64, 256, 16, 128>();
  all_transposes<3, 16, 16, 256, 16, 128>();
  all_transposes<3, 16, 16, 200, 16, 128>();
  all_transposes<2, 24, 16, 120, 8, 255>();
  all_transposes<3, 16, 64, 256, 16, 128, 3, 1>();
  std::printf("%s: %d failures\n", failures ? "FAIL" : "pass", failures);
  return failures ? 1 : 0;
}
