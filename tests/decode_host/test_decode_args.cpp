// test_decode_args.cpp: the argument checks of Kernel::prefill and Kernel::decode (runtime/args.*)
// without a GPU, and the strides the forward and backward accept for the per-token scalars (lr,
// dlr): every bad tensor is named, with what was expected. Pointers are never read.
#include <gtest/gtest.h>

#include <cstdint>

#include "runtime/args.hpp"

namespace ttt {
namespace {

Spec decode_spec() {
  Spec s;
  s.model = InnerModel::linear;
  s.depth = 1;
  s.head_dim = 32;
  s.mini_batch = 16;
  s.dtype = DType::bf16;
  s.build_decode = true;
  return s;
}

// A fake, 256-byte aligned device address: the checks look at it, nothing reads it.
void* fake(uintptr_t n = 1) { return reinterpret_cast<void*>(n * 256); }

DecodeArgs good_decode(const Spec& s) {
  const int64_t S = s.state_floats();
  auto t = [](std::vector<int64_t> shape, DType d = DType::f32) {
    return TensorRef{fake(), d, std::move(shape)};
  };
  return DecodeArgs{.q = t({3, 2, 1, 32}, DType::bf16),
                    .k = t({3, 2, 1, 32}, DType::bf16),
                    .v = t({3, 2, 1, 32}, DType::bf16),
                    .lr = t({3, 2, 1}),
                    .tau = t({16}),
                    .gamma = t({2, 32}),
                    .beta = t({2, 32}),
                    .slots = t({3}, DType::i32),
                    .pool = {t({5, 2, S}), t({5, 2, S}), t({5, 2}, DType::i32)},
                    .out = t({3, 2, 1, 32}, DType::bf16)};
}

void expect_error(const Spec& s, const DecodeArgs& a, const std::string& phrase) {
  try {
    args::check_decode(s, a);
    ADD_FAILURE() << "expected an error mentioning " << phrase;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
  }
}

TEST(DecodeArgs, GoodArgumentsGiveTheProblem) {
  const Spec s = decode_spec();
  const args::DecodeProblem p = args::check_decode(s, good_decode(s));
  EXPECT_EQ(p.B, 3);
  EXPECT_EQ(p.H, 2);
  EXPECT_EQ(p.T, 1);
  EXPECT_EQ(p.slots, 5);
  const tttc::DecodeParams k = args::decode_params(
      p, good_decode(s).q, good_decode(s).k, good_decode(s).v, good_decode(s).lr,
      good_decode(s).tau, good_decode(s).gamma, good_decode(s).beta, good_decode(s).slots,
      good_decode(s).pool, good_decode(s).out, 0, nullptr, false);
  EXPECT_EQ(k.num_slots, 5);
  EXPECT_EQ(k.init, nullptr);
  EXPECT_EQ(k.q.stride_b, 2 * 32);
}

// PyTorch leaves the stride of a size-1 dimension as it was (contiguous() keeps it): the lr of
// one token per row, [B, H, 1] viewed from [B, 1, H], has stride H in its last dimension. Only
// index 0 is ever read there, so any stride is accepted; a real stride error still is not.
TEST(DecodeArgs, StridesOfSizeOneDimensionsAreFree) {
  const Spec s = decode_spec();
  DecodeArgs a = good_decode(s);
  a.lr.strides = {2, 1, 2};  // the view torch gives for lr[B, 1, H].permute(0, 2, 1)
  EXPECT_NO_THROW(args::check_decode(s, a));
  a.q.strides = {2 * 32, 32, 7, 1};  // T = 1: its stride is never used
  EXPECT_NO_THROW(args::check_decode(s, a));
  a.q.strides = {2 * 32, 32, 32, 2};  // features not unit-stride: rejected
  expect_error(s, a, "argument 'q': the feature dimension must have stride 1 (got 2)");
}

TEST(DecodeArgs, BadTensorsAreNamed) {
  const Spec s = decode_spec();
  const DecodeArgs a = good_decode(s);
  const int64_t S = s.state_floats();
  DecodeArgs bad = a;
  bad.slots.shape = {4};
  expect_error(s, bad, "argument 'slots': shape [3] expected");
  bad = a;
  bad.slots.dtype = DType::f32;
  expect_error(s, bad, "argument 'slots': dtype i32 expected, got f32");
  bad = a;
  bad.pool.theta.shape = {2, S};
  expect_error(s, bad, "argument 'pool.theta': shape [N, 2,");
  bad = a;
  bad.pool.accum.shape = {4, 2, S};
  expect_error(s, bad, "argument 'pool.accum': shape [5, 2,");
  bad = a;
  bad.pool.pos.dtype = DType::f32;
  expect_error(s, bad, "argument 'pool.pos': dtype i32 expected");
  bad = a;
  bad.pool.theta.data = static_cast<char*>(fake()) + 4;
  expect_error(s, bad, "argument 'pool.theta': data pointer not aligned to 16 bytes");
  bad = a;
  bad.q.dtype = DType::f16;
  expect_error(s, bad, "argument 'q': dtype bf16 expected");
  bad = a;
  bad.lr.shape = {3, 2, 2};
  expect_error(s, bad, "argument 'lr'");
  Spec video = s;
  video.causal = false;
  expect_error(video, a, "causal");
}

TEST(DecodeArgs, PrefillChecksTheInitialStateToo) {
  const Spec s = decode_spec();
  const DecodeArgs d = good_decode(s);
  const int64_t S = s.state_floats();
  PrefillArgs a{.q = d.q,
                .k = d.k,
                .v = d.v,
                .lr = d.lr,
                .tau = d.tau,
                .gamma = d.gamma,
                .beta = d.beta,
                .state0 = TensorRef{fake(), DType::f32, {2, S}},
                .slots = d.slots,
                .pool = d.pool,
                .out = d.out};
  EXPECT_TRUE(args::check_prefill(s, a).shared_state);
  a.state0.shape = {3, 2, S};
  EXPECT_FALSE(args::check_prefill(s, a).shared_state);
  a.state0.shape = {3, S};
  try {
    args::check_prefill(s, a);
    ADD_FAILURE() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("argument 'state0'"), std::string::npos) << e.what();
  }
}

// lr and dlr are [B, H, T] views of whatever PyTorch holds, usually [B, T, H] ('bthf'): the
// kernels index them with three strides, so no copy is needed; an output whose strides would
// put two elements at one address is refused.
TEST(TokenScalarArgs, LrAndDlrTakeAnyStridesButDlrMustNotOverlap) {
  const Spec s = decode_spec();
  const int64_t S = s.state_floats(), B = 3, H = 2, T = 40, C = 3;
  auto t = [](std::vector<int64_t> shape, DType d = DType::f32) {
    return TensorRef{fake(), d, std::move(shape)};
  };
  const TensorRef tokens = t({B, H, T, 32}, DType::bf16);
  BackwardArgs a{.q = tokens,
                 .k = tokens,
                 .v = tokens,
                 .lr = t({B, H, T}),
                 .tau = t({16}),
                 .gamma = t({H, 32}),
                 .beta = t({H, 32}),
                 .checkpoints = t({B, H, C, S}),
                 .dout = tokens,
                 .dq = tokens,
                 .dk = tokens,
                 .dv = tokens,
                 .dlr = t({B, H, T}),
                 .dtau = t({16}),
                 .dgamma = t({H, 32}),
                 .dbeta = t({H, 32}),
                 .dstate0 = t({H, S})};
  a.lr.strides = {T * H, 1, H};  // lr [B, T, H] seen as [B, H, T]
  a.dlr.strides = {T * H, 1, H};
  const args::Problem p = args::check_backward(s, a, C);
  const tttc::BackwardParams k = args::backward_params(p, a);
  EXPECT_EQ(k.lr_stride_t, H);
  EXPECT_EQ(k.lr_stride_h, 1);
  EXPECT_EQ(k.dlr_stride_b, T * H);
  EXPECT_EQ(k.dlr_stride_t, H);
  a.lr.strides = {0, 0, 1};  // one lr row broadcast over batch and heads: fine for an input
  EXPECT_NO_THROW(args::check_backward(s, a, C));
  auto expect_backward_error = [&](const std::string& phrase) {
    try {
      args::check_backward(s, a, C);
      ADD_FAILURE() << "expected an error mentioning " << phrase;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
  };
  a.dlr.strides = {0, 0, 1};  // but not for an output
  expect_backward_error("argument 'dlr': strides [0, 0, 1] make elements overlap");
  a.dlr.strides = {T * H, T, 1};
  a.lr.strides = {T * H, T, -1};
  expect_backward_error("argument 'lr': negative strides");
}

}  // namespace
}  // namespace ttt
