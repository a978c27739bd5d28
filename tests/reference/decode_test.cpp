// decode_test.cpp: the token-by-token decode of docs/decode.md equals the dual-form forward to
// 1e-12 (f64): decoding a whole sequence, and prefill of T0 tokens followed by decoding T1, with
// T0 and T1 not multiples of K, for linear and mlp2..4; plus the non-causal error.
#include <gtest/gtest.h>

#include "ref_test_util.hpp"

namespace ttt::ref::testing {
namespace {

// Tokens [t0, t0 + n) of `in`, with the same initial state.
Inputs slice(const Inputs& in, int t0, int n) {
  Inputs r = in;
  r.T = n;
  const int64_t f = in.q.shape[3];
  for (auto [dst, src] : {std::pair{&r.q, &in.q}, {&r.k, &in.k}, {&r.v, &in.v}}) {
    *dst = Tensor({in.B, in.H, n, f});
    for (int64_t bh = 0; bh < int64_t{in.B} * in.H; ++bh)
      for (int64_t i = 0; i < n * f; ++i)
        dst->data[bh * n * f + i] = src->data[(bh * in.T + t0) * f + i];
  }
  r.lr = Tensor({in.B, in.H, n});
  for (int64_t bh = 0; bh < int64_t{in.B} * in.H; ++bh)
    for (int64_t i = 0; i < n; ++i) r.lr.data[bh * n + i] = in.lr.data[bh * in.T + t0 + i];
  return r;
}

// Joins [B, H, T0, f] and [B, H, T1, f] along T.
std::vector<double> concat_tokens(const Tensor& a, const Tensor& b) {
  const int64_t BH = a.shape[0] * a.shape[1], f = a.shape[3];
  const int64_t na = a.shape[2] * f, nb = b.shape[2] * f;
  std::vector<double> r;
  for (int64_t bh = 0; bh < BH; ++bh) {
    r.insert(r.end(), a.data.begin() + bh * na, a.data.begin() + (bh + 1) * na);
    r.insert(r.end(), b.data.begin() + bh * nb, b.data.begin() + (bh + 1) * nb);
  }
  return r;
}

void expect_states_equal(const Spec& spec, const Inputs& in, const DecodeState& s,
                         const Outputs& dual) {
  std::vector<Tensor> W, b;
  decode_final_state(spec, in.tau, s, W, b);
  for (size_t l = 0; l < W.size(); ++l) {
    EXPECT_LT(rel_err(W[l].data, dual.W_final[l].data), 1e-12) << "W" << l + 1;
    EXPECT_LT(rel_err(b[l].data, dual.b_final[l].data), 1e-12) << "b" << l + 1;
  }
}

struct Case {
  int depth, T0, T1;
  bool per_batch_state;
};

std::string case_name(const Case& c) {
  return model_name(c.depth) + "_T" + std::to_string(c.T0) + "_" + std::to_string(c.T1) +
         (c.per_batch_state ? "_perbatch" : "_shared");
}
void PrintTo(const Case& c, std::ostream* os) { *os << case_name(c); }

class Decode : public ::testing::TestWithParam<Case> {};

TEST_P(Decode, WholeSequenceTokenByTokenEqualsDualForm) {
  const Case c = GetParam();
  const Spec spec = small_spec(c.depth, /*causal=*/true);
  const Inputs in = random_inputs(spec, 2, 2, c.T0 + c.T1, c.per_batch_state, 21);
  const Outputs dual = forward(spec, in);
  DecodeState s = decode_start(spec, in);
  const Tensor out = decode(spec, in, s);
  EXPECT_LT(rel_err(out.data, dual.out.data), 1e-12) << describe(spec);
  for (int p : s.pos) EXPECT_EQ(p, (c.T0 + c.T1) % spec.mini_batch);
  expect_states_equal(spec, in, s, dual);
}

TEST_P(Decode, PrefillThenDecodeEqualsDualFormOnTheWhole) {
  const Case c = GetParam();
  const Spec spec = small_spec(c.depth, /*causal=*/true);
  const Inputs in = random_inputs(spec, 2, 3, c.T0 + c.T1, c.per_batch_state, 22);
  const Outputs dual = forward(spec, in);
  DecodeState s;
  const Tensor head = prefill(spec, slice(in, 0, c.T0), s);
  EXPECT_EQ(s.pos[0], c.T0 % spec.mini_batch);
  Tensor tail_out({in.B, in.H, 0, spec.head_dim});
  for (int t = 0; t < c.T1; ++t) {  // one token per call, as a serving loop does
    const Tensor o = decode(spec, slice(in, c.T0 + t, 1), s);
    Tensor joined({in.B, in.H, t + 1, spec.head_dim});
    joined.data = concat_tokens(tail_out, o);
    tail_out = std::move(joined);
  }
  EXPECT_LT(rel_err(concat_tokens(head, tail_out), dual.out.data), 1e-12) << describe(spec);
  expect_states_equal(spec, in, s, dual);
  // The accumulators must be live mid-mini-batch, or the state check proves little.
  if (s.pos[0] > 0) {
    EXPECT_GT(norm(s.AW[0].data), 1e-6);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, Decode,
                         ::testing::Values(Case{1, 5, 7, false}, Case{1, 3, 2, true},
                                           Case{2, 6, 7, false}, Case{2, 9, 3, true},
                                           Case{3, 7, 6, false}, Case{4, 5, 10, true},
                                           Case{2, 8, 5, false}, Case{1, 4, 4, false}),
                         [](const auto& info) { return case_name(info.param); });

TEST(Decode, NonCausalSpecsAreRejected) {
  const Spec spec = small_spec(2, /*causal=*/false);
  const Inputs in = random_inputs(spec, 1, 1, 4, false, 3);
  try {
    decode_start(spec, in);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("causal"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ttt::ref::testing
