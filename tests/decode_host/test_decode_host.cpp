// test_decode_host.cpp: the decode kernel template itself (templates/tttc/decode.cuh), compiled
// for the host through host_cuda_shim.hpp and run thread for thread, against the f64 reference:
// decoding from theta_0 (the prefill-tail launch with `init`, several mini-batch commits inside
// one launch) then single-token steps with rows in permuted pool slots at different positions,
// for linear and mlp2..4, column splits (N < threads), column blocks (N > threads) and f < 32,
// heads split over clusters of 2, 4 and 8 CTAs (emulated: a cluster's CTAs run together), state
// slices staged in shared memory or read from the pool, and the sm_80 builds of split kernels.
// Checks the codegen's constants (threads, shared memory) against the template's own layout.
// This runs in CI without a GPU; the GPU tests (tests/gpu/test_gpu_decode.cpp) check the same on
// the device with f16/bf16 too.
#include "host_cuda_shim.hpp"
// The shim must come first.
#include <gtest/gtest.h>

#include "compiler/codegen.hpp"
#include "compiler/reference/reference.hpp"
#include "runtime/harness/check.hpp"
#include "tttc/decode.cuh"

namespace ttt {
namespace {

// SPLIT CTAs per head work (a cluster), CPH in the grid (the sm_80 build of a split kernel has
// SPLIT = 1 < CPH), STAGE: slices in shared memory.
template <int F, int K, int L, int HID, int NT, int SMEM, long long S, int SPLIT, bool STAGE,
          int CPH>
struct HostCfg {
  using Elem = float;
  static constexpr int kF = F, kK = K, kDepth = L, kHidden = HID;
  static constexpr int kThreads = NT, kAct = tttc::kGeluTanh;
  static constexpr float kEps = 1e-6f;
  static constexpr long long kS = S, kSmemFloats = SMEM;
  static constexpr int kSplit = SPLIT;
  static constexpr bool kStage = STAGE;
  static constexpr int kCtasPerHead = CPH;
};

// Runs one launch as the runtime sizes it for a GPU that holds half the (row, head) items at
// once (so that a group of kCtasPerHead CTAs, one cluster, takes several items in turn): every
// CTA's threads on std::threads, clusters in turn, shared memory poisoned.
template <class Cfg>
void launch(const tttc::DecodeParams& p) {
  constexpr int CPH = Cfg::kCtasPerHead, NT = Cfg::kThreads;
  const int units = (p.B * p.H + 1) / 2;
  for (int head = 0; head < units; ++head) {
    HostCluster cluster(Cfg::kSplit, NT, Cfg::kSmemFloats);
    std::vector<std::unique_ptr<HostCta>> ctas;
    for (int c = 0; c < CPH; ++c) ctas.push_back(std::make_unique<HostCta>(NT));
    std::vector<float> spare(Cfg::kSmemFloats);  // shared memory of the CTAs that exit at once
    std::vector<std::thread> threads;
    for (int c = 0; c < CPH; ++c)
      for (int t = 0; t < NT; ++t)
        threads.emplace_back([&, c, t] {
          threadIdx.x = t;
          blockIdx.x = head * CPH + c;
          gridDim.x = units * CPH;
          host_cta = ctas[c].get();
          host_cluster = &cluster;
          host_smem = c < Cfg::kSplit ? cluster.smem[c].get() : spare.data();
          tttc::decode_kernel<Cfg>(p);
        });
    for (auto& t : threads) t.join();
  }
}

std::vector<float> to_f32(const std::vector<double>& v) { return {v.begin(), v.end()}; }

template <class Cfg>
void run_case(Spec spec) {
  const codegen::Generated g = codegen::generate_decode(spec);
  ASSERT_EQ(g.threads, Cfg::kThreads);
  ASSERT_EQ(g.shared_bytes, 4 * Cfg::kSmemFloats);
  ASSERT_EQ(spec.state_floats(), Cfg::kS);
  ASSERT_EQ(g.ctas_per_head, Cfg::kCtasPerHead);
  const std::string split = "kSplit = " + std::to_string(Cfg::kSplit) + ", kMinBlocks = ";
  const std::string stage = std::string("kStage = ") + (Cfg::kStage ? "true" : "false") + ";";
  const size_t at = g.source.find(split);
  ASSERT_NE(at, std::string::npos) << g.source;
  ASSERT_NE(g.source.find(stage, at), std::string::npos) << g.source;
  const int B = 2, H = 2, f = spec.head_dim, K = spec.mini_batch, N = 3;
  const int T0 = 2 * K + 1, T1 = 5, T = T0 + T1;  // two commits inside the first launch
  const int64_t S = spec.state_floats();
  ref::Inputs in = ref::random_inputs(spec, B, H, T, false, 5);
  for (auto* t : {&in.q, &in.k, &in.v, &in.lr, &in.tau, &in.gamma, &in.beta})
    for (double& x : t->data) x = static_cast<float>(x);
  for (auto* layers : {&in.W, &in.b})
    for (auto& t : *layers)
      for (double& x : t.data) x = static_cast<float>(x);
  const ref::Outputs want = ref::forward(spec, in);

  const std::vector<float> q = to_f32(in.q.data), k = to_f32(in.k.data), v = to_f32(in.v.data);
  const std::vector<float> lr = to_f32(in.lr.data), tau = to_f32(in.tau.data);
  const std::vector<float> gamma = to_f32(in.gamma.data), beta = to_f32(in.beta.data);
  const std::vector<float> state0 = to_f32(check::pack_state(spec, in.W, in.b, H));
  std::vector<float> theta(N * H * S, NAN), accum(N * H * S, NAN), out(B * H * T * f, NAN);
  std::vector<int> pos(N * H, -1);
  // Row 0 in slot 2, row 1 in slot 0; slot 1 unused. Row 1 starts from a prefill tail of no
  // tokens (the slot filled from `init`), then decodes one token per launch.
  const std::vector<int> slots = {2, 0};
  auto token = [&](const std::vector<float>& x, float* o, int t0) {
    tttc::TokenTensor r{const_cast<float*>(o ? o : x.data()), int64_t{H} * T * f, int64_t{T} * f,
                        f};
    r.ptr = static_cast<float*>(r.ptr) + int64_t{t0} * f;
    return r;
  };
  auto params = [&](int rows, int row0, int t0, int n, const float* init) {
    return tttc::DecodeParams{.B = rows,
                              .H = H,
                              .T = n,
                              .q = token(q, nullptr, t0),
                              .k = token(k, nullptr, t0),
                              .v = token(v, nullptr, t0),
                              .out = token(out, out.data(), t0),
                              .lr = lr.data() + t0,
                              .lr_stride_b = int64_t{H} * T,
                              .lr_stride_h = T,
                              .lr_stride_t = 1,
                              .tau = tau.data(),
                              .gamma = gamma.data(),
                              .beta = beta.data(),
                              .slots = slots.data() + row0,
                              .num_slots = N,
                              .theta = theta.data(),
                              .accum = accum.data(),
                              .pos = pos.data(),
                              .init = init,
                              .init_stride_b = 0};
  };
  auto shift_row = [&](tttc::DecodeParams p, int row) {  // view row `row` as a 1-row batch
    for (tttc::TokenTensor* t : {&p.q, &p.k, &p.v, &p.out})
      t->ptr = static_cast<float*>(t->ptr) + row * t->stride_b;
    p.lr += row * p.lr_stride_b;
    return p;
  };
  launch<Cfg>(params(1, 0, 0, T0, state0.data()));               // row 0: T0 tokens from theta_0
  launch<Cfg>(shift_row(params(1, 1, 0, 0, state0.data()), 1));  // row 1: a prefill tail of 0
  for (int t = 0; t < T0; ++t) launch<Cfg>(shift_row(params(1, 1, t, 1, nullptr), 1));
  for (int t = T0; t < T; ++t) launch<Cfg>(params(B, 0, t, 1, nullptr));  // both rows together

  std::vector<double> got(out.begin(), out.end());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << "output " << i << " not written";
    diff += (got[i] - want.out.data[i]) * (got[i] - want.out.data[i]);
    norm += want.out.data[i] * want.out.data[i];
  }
  EXPECT_LT(std::sqrt(diff / norm), 2e-5) << "outputs";

  const std::vector<double> want_state = check::pack_state(spec, want.W_final, want.b_final, B * H);
  diff = norm = 0;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int64_t head = int64_t{slots[b]} * H + h;
      EXPECT_EQ(pos[head], T % K);
      const double e = pos[head] > 0 ? tau[pos[head] - 1] : 0.0;
      for (int64_t i = 0; i < S; ++i) {
        const double x = theta[head * S + i] - e * accum[head * S + i];
        const double w = want_state[(b * H + h) * S + i];
        diff += (x - w) * (x - w);
        norm += w * w;
      }
    }
  EXPECT_LT(std::sqrt(diff / norm), 2e-5) << "final state";
  EXPECT_EQ(pos[1 * H], -1) << "the unused slot was written";
  EXPECT_TRUE(std::isnan(theta[1 * H * S]));
}

Spec spec_of(int depth, int f, int expansion, int K) {
  Spec s;
  s.model = depth == 1 ? InnerModel::linear : InnerModel::mlp;
  s.depth = depth;
  s.expansion = expansion;
  s.head_dim = f;
  s.mini_batch = K;
  s.dtype = DType::f32;
  return s;
}

// Constants as codegen writes them (run_case checks that it does): the sm_90 build's shape,
// and for split kernels also the sm_80 build's (one CTA per head works, the others exit).
using LinearCfg = HostCfg<32, 4, 1, 32, 128, 2464, 1056, 1, true, 1>;
TEST(DecodeHost, LinearStagedSplitColumns) { run_case<LinearCfg>(spec_of(1, 32, 4, 4)); }
TEST(DecodeHost, LinearF128Cluster4Staged) {  // one column-split layer: gathers, no reductions
  run_case<HostCfg<128, 4, 1, 128, 128, 9280, 16512, 4, true, 4>>(spec_of(1, 128, 4, 4));
}
TEST(DecodeHost, LinearF128Sm80Build) {
  run_case<HostCfg<128, 4, 1, 128, 128, 9280, 16512, 1, false, 4>>(spec_of(1, 128, 4, 4));
}
TEST(DecodeHost, Mlp2Expansion2Staged) {
  run_case<HostCfg<32, 4, 2, 64, 128, 9120, 4192, 1, true, 1>>(spec_of(2, 32, 2, 4));
}
TEST(DecodeHost, Mlp2F64Cluster8Staged) {  // the shape of the 125M/1.3B mlp2 heads
  run_case<HostCfg<64, 4, 2, 256, 128, 9200, 33088, 8, true, 8>>(spec_of(2, 64, 4, 4));
}
TEST(DecodeHost, Mlp2F64Sm80Build) {
  run_case<HostCfg<64, 4, 2, 256, 128, 9200, 33088, 1, false, 8>>(spec_of(2, 64, 4, 4));
}
TEST(DecodeHost, Mlp3NarrowHeadCluster2Staged) {
  run_case<HostCfg<16, 4, 3, 64, 128, 7168, 6288, 2, true, 2>>(spec_of(3, 16, 4, 4));
}
TEST(DecodeHost, Mlp3NarrowHeadSm80Build) {
  run_case<HostCfg<16, 4, 3, 64, 128, 7168, 6288, 1, false, 2>>(spec_of(3, 16, 4, 4));
}
TEST(DecodeHost, Mlp4NarrowHeadCluster2Staged) {
  run_case<HostCfg<16, 4, 4, 64, 128, 11424, 10448, 2, true, 2>>(spec_of(4, 16, 4, 4));
}
// hidden 384 > 256 threads (column blocks); f = 48; too big to stage: a cluster of 4 over
// global memory.
TEST(DecodeHost, Mlp2ColumnBlocksCluster4Unstaged) {
  run_case<HostCfg<48, 4, 2, 384, 256, 3264, 37296, 4, false, 4>>(spec_of(2, 48, 8, 4));
}
TEST(DecodeHost, Mlp2ColumnBlocksSm80Build) {
  run_case<HostCfg<48, 4, 2, 384, 256, 3264, 37296, 1, false, 4>>(spec_of(2, 48, 8, 4));
}

// A slot outside the pool: the row's outputs are NaN and no slot is touched (checked on the
// device, since the host never reads slots).
TEST(DecodeHost, OutOfRangeSlotLeavesThePoolAlone) {
  using Cfg = LinearCfg;
  const int H = 2, f = 32, N = 2;
  std::vector<float> tokens(H * f, 0.5f), lr(H, 0.01f), tau(4, 0.5f), gamma(H * f, 1.f),
      beta(H * f, 0.f), theta(N * H * Cfg::kS, 0.25f), accum(N * H * Cfg::kS, 0.125f),
      out(H * f, 1.f);
  std::vector<int> pos(N * H, 3);
  for (int bad : {-1, N}) {
    const int slot = bad;
    tttc::TokenTensor t{tokens.data(), H * f, f, f};
    launch<Cfg>(tttc::DecodeParams{.B = 1,
                                   .H = H,
                                   .T = 1,
                                   .q = t,
                                   .k = t,
                                   .v = t,
                                   .out = {out.data(), H * f, f, f},
                                   .lr = lr.data(),
                                   .lr_stride_b = H,
                                   .lr_stride_h = 1,
                                   .lr_stride_t = H,
                                   .tau = tau.data(),
                                   .gamma = gamma.data(),
                                   .beta = beta.data(),
                                   .slots = &slot,
                                   .num_slots = N,
                                   .theta = theta.data(),
                                   .accum = accum.data(),
                                   .pos = pos.data(),
                                   .init = nullptr,
                                   .init_stride_b = 0});
    for (float x : out) EXPECT_TRUE(std::isnan(x)) << "slot " << bad;
    for (float x : theta) ASSERT_EQ(x, 0.25f);
    for (float x : accum) ASSERT_EQ(x, 0.125f);
    for (int p : pos) ASSERT_EQ(p, 3);
  }
}

}  // namespace
}  // namespace ttt
