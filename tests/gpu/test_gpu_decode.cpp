// test_gpu_decode.cpp: prefill and decode (docs/decode.md) on the GPU. Prefill of T0 tokens then
// T1 single-token decode steps gives the forward's outputs and final state on all T0 + T1 tokens
// (the f64 reference, at the forward's tolerances), for rows that sit at different positions in
// permuted pool slots, for linear and mlp2..4 in f32/f16/bf16; a CUDA graph of one step replayed
// 1000 times equals 1000 eager launches bit for bit; a batch larger than the GPU holds at once
// (CTA groups taking several rows in turn) equals one row per launch bit for bit; bad arguments
// are rejected with their name.
// Skips without a GPU. TTTC_DECODE_SANITIZE=1 runs one small case only (for compute-sanitizer).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "compiler/reference/reference.hpp"
#include "runtime/device_buffer.hpp"
#include "runtime/driver.hpp"
#include "runtime/harness/check.hpp"
#include "runtime/harness/host_convert.hpp"

namespace ttt {
namespace {

#define REQUIRE_GPU() \
  if (!driver::status().available) GTEST_SKIP() << driver::status().reason

Spec decode_spec(int depth, DType dtype, int f = 64, int K = 16) {
  Spec s;
  s.name = depth == 1 ? "linear" : "mlp" + std::to_string(depth);
  s.model = depth == 1 ? InnerModel::linear : InnerModel::mlp;
  s.depth = depth;
  s.dtype = dtype;
  s.head_dim = f;
  s.mini_batch = K;
  s.build_backward = false;
  s.build_decode = true;
  return s;
}

template <class T>
DeviceBuffer upload_raw(const std::vector<T>& v) {
  return DeviceBuffer::from_host(
      std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)));
}
template <class T>
std::vector<T> download_raw(const DeviceBuffer& b) {
  const std::string bytes = b.download();
  std::vector<T> v(bytes.size() / sizeof(T));
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

// A pool of N slots on the device.
struct Pool {
  DeviceBuffer theta, accum, pos;
  DecodePool refs;
  Pool(const Spec& spec, int N, int H) {
    const int64_t S = spec.state_floats();
    theta = DeviceBuffer(4 * N * H * S);
    accum = DeviceBuffer(4 * N * H * S);
    pos = DeviceBuffer(4 * N * H);
    for (DeviceBuffer* b : {&theta, &accum, &pos}) b->poison();
    refs = {TensorRef::contiguous(theta.data(), DType::f32, {N, H, S}),
            TensorRef::contiguous(accum.data(), DType::f32, {N, H, S}),
            TensorRef::contiguous(pos.data(), DType::i32, {N, H})};
  }
};

// One row's inputs taken from a B-row reference input (tokens [0, T) of row b).
ref::Inputs row_inputs(const ref::Inputs& in, int b, int T, int f) {
  ref::Inputs r = in;
  r.B = 1;
  r.T = T;
  for (auto [dst, src] : {std::pair{&r.q, &in.q}, {&r.k, &in.k}, {&r.v, &in.v}}) {
    *dst = ref::Tensor({1, in.H, T, f});
    for (int h = 0; h < in.H; ++h)
      std::copy_n(&src->data[((int64_t{b} * in.H + h) * in.T) * f], int64_t{T} * f,
                  &dst->data[int64_t{h} * T * f]);
  }
  r.lr = ref::Tensor({1, in.H, T});
  for (int h = 0; h < in.H; ++h)
    std::copy_n(&in.lr.data[(int64_t{b} * in.H + h) * in.T], T, &r.lr.data[int64_t{h} * T]);
  return r;
}

// Prefill each row alone (prompt lengths T0[b], slot slots[b]), then T1 decode steps of the whole
// batch, one token per row per step, gathered from each row's position.
struct GpuRun {
  std::vector<double> out;   // [B][H][T0[b] + T1][f], rows concatenated
  std::vector<float> theta;  // the pool after the last step
  std::vector<float> accum;
  std::vector<int> pos;
};

struct Problem {
  Spec spec;
  int H = 2, N = 5, T1 = 13;
  std::vector<int> T0 = {21, 16, 7};  // pos 5, 0 (no tail), 7 (no forward) after prefill
  std::vector<int> slots = {3, 0, 2};
  int B() const { return static_cast<int>(T0.size()); }
  int Tmax() const { return *std::max_element(T0.begin(), T0.end()) + T1; }
};

ref::Inputs problem_inputs(const Problem& pb) {
  ref::Inputs in = ref::random_inputs(pb.spec, pb.B(), pb.H, pb.Tmax(), false, 4242);
  for (auto* t : {&in.q, &in.k, &in.v}) quantize(t->data, pb.spec.dtype);
  for (auto* t : {&in.lr, &in.tau, &in.gamma, &in.beta}) quantize(t->data, DType::f32);
  for (auto& t : in.W) quantize(t.data, DType::f32);
  for (auto& t : in.b) quantize(t.data, DType::f32);
  return in;
}

GpuRun run_gpu(const Problem& pb, const ref::Inputs& in, const jit::Kernel& kernel) {
  const Spec& spec = pb.spec;
  const int B = pb.B(), H = pb.H, f = spec.head_dim, Tm = pb.Tmax();
  const DType dt = spec.dtype;
  const int64_t S = spec.state_floats();
  driver::current_device();
  // Whole-sequence inputs [B, H, Tm, f] on the device; prefill reads row views of them.
  DeviceBuffer q = DeviceBuffer::from_host(encode(in.q.data, dt));
  DeviceBuffer k = DeviceBuffer::from_host(encode(in.k.data, dt));
  DeviceBuffer v = DeviceBuffer::from_host(encode(in.v.data, dt));
  DeviceBuffer lr = DeviceBuffer::from_host(encode(in.lr.data, DType::f32));
  DeviceBuffer tau = DeviceBuffer::from_host(encode(in.tau.data, DType::f32));
  DeviceBuffer gamma = DeviceBuffer::from_host(encode(in.gamma.data, DType::f32));
  DeviceBuffer beta = DeviceBuffer::from_host(encode(in.beta.data, DType::f32));
  DeviceBuffer state0 =
      DeviceBuffer::from_host(encode(check::pack_state(spec, in.W, in.b, H), DType::f32));
  DeviceBuffer out(static_cast<size_t>(B) * H * Tm * f * dtype_bytes(dt));
  out.poison();
  Pool pool(spec, pb.N, H);
  const int eb = dtype_bytes(dt);
  auto row_view = [&](const DeviceBuffer& buf, int b, int T, bool token, DType d) {
    const int64_t fs = token ? f : 1;
    char* base = static_cast<char*>(buf.data()) + int64_t{b} * H * Tm * fs * dtype_bytes(d);
    TensorRef r{base, d, token ? std::vector<int64_t>{1, H, T, f} : std::vector<int64_t>{1, H, T}};
    r.strides = token ? std::vector<int64_t>{H * Tm * f, Tm * f, f, 1}
                      : std::vector<int64_t>{H * Tm, Tm, 1};
    return r;
  };
  const TensorRef tau_r = TensorRef::contiguous(tau.data(), DType::f32, {spec.mini_batch});
  const TensorRef gamma_r = TensorRef::contiguous(gamma.data(), DType::f32, {H, f});
  const TensorRef beta_r = TensorRef::contiguous(beta.data(), DType::f32, {H, f});
  for (int b = 0; b < B; ++b) {
    DeviceBuffer slot = upload_raw(std::vector<int>{pb.slots[b]});
    PrefillArgs a{.q = row_view(q, b, pb.T0[b], true, dt),
                  .k = row_view(k, b, pb.T0[b], true, dt),
                  .v = row_view(v, b, pb.T0[b], true, dt),
                  .lr = row_view(lr, b, pb.T0[b], false, DType::f32),
                  .tau = tau_r,
                  .gamma = gamma_r,
                  .beta = beta_r,
                  .state0 = TensorRef::contiguous(state0.data(), DType::f32, {H, S}),
                  .slots = TensorRef::contiguous(slot.data(), DType::i32, {1}),
                  .pool = pool.refs,
                  .out = row_view(out, b, pb.T0[b], true, dt)};
    kernel.prefill(a);
    driver::check(driver::api().cuCtxSynchronize(), "prefill");
  }
  // The decode steps read gathered single-token inputs [B, H, 1, f] per step.
  std::vector<double> sq, sk, sv, slr;
  for (int j = 0; j < pb.T1; ++j)
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h) {
        const int64_t t = pb.T0[b] + j, row = (int64_t{b} * H + h) * Tm + t;
        for (auto [dst, src] : {std::pair{&sq, &in.q}, {&sk, &in.k}, {&sv, &in.v}})
          dst->insert(dst->end(), src->data.begin() + row * f, src->data.begin() + (row + 1) * f);
        slr.push_back(in.lr.data[row]);
      }
  DeviceBuffer dq = DeviceBuffer::from_host(encode(sq, dt));
  DeviceBuffer dk = DeviceBuffer::from_host(encode(sk, dt));
  DeviceBuffer dv = DeviceBuffer::from_host(encode(sv, dt));
  DeviceBuffer dlr = DeviceBuffer::from_host(encode(slr, DType::f32));
  DeviceBuffer dout(static_cast<size_t>(pb.T1) * B * H * f * eb);
  dout.poison();
  DeviceBuffer slots = upload_raw(pb.slots);
  const int64_t step_tokens = int64_t{B} * H * f;
  for (int j = 0; j < pb.T1; ++j) {
    auto tok = [&](const DeviceBuffer& buf) {
      return TensorRef::contiguous(static_cast<char*>(buf.data()) + j * step_tokens * eb, dt,
                                   {B, H, 1, f});
    };
    DecodeArgs a{.q = tok(dq),
                 .k = tok(dk),
                 .v = tok(dv),
                 .lr = TensorRef::contiguous(static_cast<float*>(dlr.data()) + j * B * H,
                                             DType::f32, {B, H, 1}),
                 .tau = tau_r,
                 .gamma = gamma_r,
                 .beta = beta_r,
                 .slots = TensorRef::contiguous(slots.data(), DType::i32, {B}),
                 .pool = pool.refs,
                 .out = tok(dout)};
    kernel.decode(a);
  }
  driver::check(driver::api().cuCtxSynchronize(), "decode");

  GpuRun r;
  const std::vector<double> head = decode(out.download(), dt);
  const std::vector<double> tail = decode(dout.download(), dt);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int64_t row = (int64_t{b} * H + h) * Tm;
      r.out.insert(r.out.end(), head.begin() + row * f, head.begin() + (row + pb.T0[b]) * f);
      for (int j = 0; j < pb.T1; ++j) {
        const int64_t at = ((int64_t{j} * B + b) * H + h) * f;
        r.out.insert(r.out.end(), tail.begin() + at, tail.begin() + at + f);
      }
    }
  r.theta = download_raw<float>(pool.theta);
  r.accum = download_raw<float>(pool.accum);
  r.pos = download_raw<int>(pool.pos);
  return r;
}

struct DecodeCase {
  int depth;
  DType dtype;
};
std::string case_name(const DecodeCase& c) {
  return (c.depth == 1 ? std::string("linear") : "mlp" + std::to_string(c.depth)) + "_" +
         to_string(c.dtype);
}

class GpuDecode : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(GpuDecode, PrefillThenDecodeEqualsForwardOnTheWhole) {
  REQUIRE_GPU();
  Problem pb{.spec = decode_spec(GetParam().depth, GetParam().dtype)};
  const Spec& spec = pb.spec;
  const int f = spec.head_dim, K = spec.mini_batch;
  const int64_t S = spec.state_floats();
  auto kernel = jit::get_kernel({.spec = spec});
  const ref::Inputs in = problem_inputs(pb);
  const GpuRun r = run_gpu(pb, in, *kernel);

  std::vector<double> want_out, want_state, got_state;
  for (int b = 0; b < pb.B(); ++b) {
    const ref::Outputs o = ref::forward(spec, row_inputs(in, b, pb.T0[b] + pb.T1, f));
    want_out.insert(want_out.end(), o.out.data.begin(), o.out.data.end());
    const std::vector<double> packed = check::pack_state(spec, o.W_final, o.b_final, pb.H);
    want_state.insert(want_state.end(), packed.begin(), packed.end());
    for (int h = 0; h < pb.H; ++h) {
      const int64_t head = int64_t{pb.slots[b]} * pb.H + h;
      const int p = r.pos[head];
      EXPECT_EQ(p, (pb.T0[b] + pb.T1) % K) << "row " << b << " head " << h;
      const double tau = p > 0 ? in.tau.data[p - 1] : 0.0;  // docs/decode.md: theta - tau A
      for (int64_t i = 0; i < S; ++i)
        got_state.push_back(r.theta[head * S + i] - tau * r.accum[head * S + i]);
    }
  }
  bool finite = true;
  const double out_err = check::relative_error(r.out, want_out, &finite);
  EXPECT_TRUE(finite);
  EXPECT_LE(out_err, check::forward_tolerance(spec)) << case_name(GetParam());
  const double state_err = check::relative_error(got_state, want_state, &finite);
  EXPECT_TRUE(finite);
  EXPECT_LE(state_err, check::forward_tolerance(spec)) << case_name(GetParam());
  // The slot no row names is untouched (still the poison pattern).
  const int unused = 1;
  EXPECT_TRUE(std::isnan(r.theta[int64_t{unused} * pb.H * S]));
  EXPECT_EQ(r.pos[unused * pb.H], -1);
  RecordProperty("out_rel_err", std::to_string(out_err));
}

std::vector<DecodeCase> decode_cases() {
  if (std::getenv("TTTC_DECODE_SANITIZE")) return {{2, DType::bf16}};
  std::vector<DecodeCase> cases;
  for (int depth : {1, 2, 3, 4})
    for (DType d : {DType::f32, DType::f16, DType::bf16}) cases.push_back({depth, d});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Models, GpuDecode, ::testing::ValuesIn(decode_cases()),
                         [](const auto& info) { return case_name(info.param); });

// Single-token decode steps of B rows over a live pool of N slots: theta from the reference's
// state, small accumulators, mixed positions (so rows commit at different steps). Every Side has
// its own pool and outputs, started equal, so two ways of launching the same steps compare.
struct LiveSteps {
  Spec spec;
  int B, H, N;
  std::vector<double> theta0, accum0;
  std::vector<int> pos0;
  DeviceBuffer q, k, v, lr, tau, gamma, beta, slots;

  LiveSteps(const Spec& s, int rows, int heads, int pool_slots, const std::vector<int>& slot_of_row,
            uint64_t seed)
      : spec(s), B(rows), H(heads), N(pool_slots) {
    driver::current_device();
    const ref::Inputs in = ref::random_inputs(spec, B, H, 1, false, seed);
    const std::vector<double> packed = check::pack_state(spec, in.W, in.b, H);
    for (int n = 0; n < N; ++n) theta0.insert(theta0.end(), packed.begin(), packed.end());
    for (size_t i = 0; i < theta0.size(); ++i) accum0.push_back(1e-3 * std::sin(0.37 * i));
    for (int i = 0; i < N * H; ++i) pos0.push_back((5 * i) % spec.mini_batch);
    q = DeviceBuffer::from_host(encode(in.q.data, spec.dtype));
    k = DeviceBuffer::from_host(encode(in.k.data, spec.dtype));
    v = DeviceBuffer::from_host(encode(in.v.data, spec.dtype));
    lr = DeviceBuffer::from_host(encode(in.lr.data, DType::f32));
    tau = DeviceBuffer::from_host(encode(in.tau.data, DType::f32));
    gamma = DeviceBuffer::from_host(encode(in.gamma.data, DType::f32));
    beta = DeviceBuffer::from_host(encode(in.beta.data, DType::f32));
    slots = upload_raw(slot_of_row);
  }
  struct Side {
    Pool pool;
    DeviceBuffer out;
  };
  Side side() const {
    Side s{Pool(spec, N, H),
           DeviceBuffer(static_cast<size_t>(B) * H * spec.head_dim * dtype_bytes(spec.dtype))};
    s.pool.theta.upload(encode(theta0, DType::f32));
    s.pool.accum.upload(encode(accum0, DType::f32));
    s.pool.pos.upload(std::string(reinterpret_cast<const char*>(pos0.data()), 4 * pos0.size()));
    return s;
  }
  // One step of rows [b0, b0 + rows) of side `s`.
  DecodeArgs args(Side& s, int b0, int rows) const {
    const int f = spec.head_dim, eb = dtype_bytes(spec.dtype);
    auto tok = [&](const DeviceBuffer& b) {
      return TensorRef::contiguous(static_cast<char*>(b.data()) + int64_t{b0} * H * f * eb,
                                   spec.dtype, {rows, H, 1, f});
    };
    return DecodeArgs{
        .q = tok(q),
        .k = tok(k),
        .v = tok(v),
        .lr = TensorRef::contiguous(static_cast<float*>(lr.data()) + b0 * H, DType::f32,
                                    {rows, H, 1}),
        .tau = TensorRef::contiguous(tau.data(), DType::f32, {spec.mini_batch}),
        .gamma = TensorRef::contiguous(gamma.data(), DType::f32, {H, f}),
        .beta = TensorRef::contiguous(beta.data(), DType::f32, {H, f}),
        .slots = TensorRef::contiguous(static_cast<int*>(slots.data()) + b0, DType::i32, {rows}),
        .pool = s.pool.refs,
        .out = tok(s.out)};
  }
};

void expect_same_bits(const LiveSteps::Side& a, const LiveSteps::Side& b) {
  EXPECT_EQ(a.out.download(), b.out.download());
  EXPECT_EQ(a.pool.theta.download(), b.pool.theta.download());
  EXPECT_EQ(a.pool.accum.download(), b.pool.accum.download());
  EXPECT_EQ(a.pool.pos.download(), b.pool.pos.download());
}

// One decode step captured in a CUDA graph and replayed 1000 times equals 1000 eager launches
// bit for bit (outputs and pool), from the same starting pool, with rows at mixed positions.
TEST(GpuDecodeGraph, ReplayEqualsEagerBitForBit) {
  REQUIRE_GPU();
  if (std::getenv("TTTC_DECODE_SANITIZE")) GTEST_SKIP() << "sanitizer run: one case only";
  const driver::Api& api = driver::api();
  const Spec spec = decode_spec(2, DType::bf16);
  auto kernel = jit::get_kernel({.spec = spec});
  const int B = 4, steps = 1000;
  const LiveSteps live(spec, B, 3, 6, {4, 1, 5, 0}, 99);
  LiveSteps::Side eager = live.side(), graph = live.side();
  CUstream stream = nullptr;
  driver::check(api.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  const DecodeArgs ea = live.args(eager, 0, B), ga = live.args(graph, 0, B);
  for (int i = 0; i < steps; ++i) kernel->decode(ea, stream);
  CUgraph g = nullptr;
  CUgraphExec exec = nullptr;
  driver::check(api.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "capture");
  kernel->decode(ga, stream);
  driver::check(api.cuStreamEndCapture(stream, &g), "cuStreamEndCapture");
  driver::check(api.cuGraphInstantiateWithFlags(&exec, g, 0), "cuGraphInstantiate");
  for (int i = 0; i < steps; ++i) driver::check(api.cuGraphLaunch(exec, stream), "cuGraphLaunch");
  driver::check(api.cuStreamSynchronize(stream), "sync");
  api.cuGraphExecDestroy(exec);
  api.cuGraphDestroy(g);
  api.cuStreamDestroy(stream);
  expect_same_bits(eager, graph);
  // 1000 steps moved the state: theta differs from where it started, positions are live.
  EXPECT_NE(eager.pool.theta.download(), encode(live.theta0, DType::f32));
  const std::vector<double> outs = decode(eager.out.download(), spec.dtype);
  for (double x : outs) ASSERT_TRUE(std::isfinite(x));
}

// A batch of many more (row, head) items than the GPU holds at once (mlp2: each cluster takes
// several items in turn, templates/tttc/decode.cuh; linear: one CTA per item, in waves) must
// equal launching every row alone bit for bit, including a row whose slot is outside the pool
// (NaN outputs, no slot touched) amid the others.
class GpuDecodeManyRows : public ::testing::TestWithParam<int> {};

TEST_P(GpuDecodeManyRows, ManyRowsEqualOneRowPerLaunchBitForBit) {
  REQUIRE_GPU();
  const Spec spec = decode_spec(GetParam(), DType::bf16);
  auto kernel = jit::get_kernel({.spec = spec});
  // Under a sanitizer a smaller batch, still more items than an H200 holds at once for mlp2
  // (about 50 clusters of 8 CTAs).
  const bool sanitize = std::getenv("TTTC_DECODE_SANITIZE") != nullptr;
  const int B = sanitize ? 8 : 96, H = 12, N = B + 3, steps = sanitize ? 2 : 3;
  std::vector<int> slot_of_row(B);
  for (int b = 0; b < B; ++b) slot_of_row[b] = (7 * b + 3) % N;  // a permutation (7, N coprime)
  slot_of_row[B / 2] = -1;
  const LiveSteps live(spec, B, H, N, slot_of_row, 7);
  LiveSteps::Side batched = live.side(), alone = live.side();
  for (int i = 0; i < steps; ++i) {
    kernel->decode(live.args(batched, 0, B));
    for (int b = 0; b < B; ++b) kernel->decode(live.args(alone, b, 1));
  }
  driver::check(driver::api().cuCtxSynchronize(), "decode");
  expect_same_bits(batched, alone);
  const std::vector<double> outs = decode(batched.out.download(), spec.dtype);
  const int64_t row = int64_t{H} * spec.head_dim;
  for (int64_t i = 0; i < std::ssize(outs); ++i)
    ASSERT_EQ(std::isfinite(outs[i]), i / row != B / 2) << "output " << i;
}

INSTANTIATE_TEST_SUITE_P(Models, GpuDecodeManyRows, ::testing::Values(1, 2),
                         [](const auto& info) { return info.param == 1 ? "linear" : "mlp2"; });

TEST(GpuDecodeArguments, BadArgumentsAreRejectedBeforeLaunch) {
  REQUIRE_GPU();
  const Spec spec = decode_spec(1, DType::f32, 32);
  auto kernel = jit::get_kernel({.spec = spec});
  const int64_t S = spec.state_floats();
  DeviceBuffer buf(1 << 20);
  auto t = [&](std::vector<int64_t> shape, DType d = DType::f32) {
    return TensorRef{buf.data(), d, shape};
  };
  DecodeArgs a{.q = t({2, 3, 1, 32}),
               .k = t({2, 3, 1, 32}),
               .v = t({2, 3, 1, 32}),
               .lr = t({2, 3, 1}),
               .tau = t({16}),
               .gamma = t({3, 32}),
               .beta = t({3, 32}),
               .slots = t({2}, DType::i32),
               .pool = {t({4, 3, S}), t({4, 3, S}), t({4, 3}, DType::i32)},
               .out = t({2, 3, 1, 32})};
  auto expect_error = [&](DecodeArgs bad, const std::string& phrase) {
    try {
      kernel->decode(bad);
      ADD_FAILURE() << "expected an error mentioning " << phrase;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
  };
  DecodeArgs bad = a;
  bad.slots = t({3}, DType::i32);
  expect_error(bad, "argument 'slots'");
  bad = a;
  bad.slots.dtype = DType::f32;
  expect_error(bad, "dtype i32 expected");
  bad = a;
  bad.pool.accum = t({5, 3, S});
  expect_error(bad, "argument 'pool.accum'");
  bad = a;
  bad.pool.theta = t({3, S});
  expect_error(bad, "argument 'pool.theta'");
  bad = a;
  bad.pool.pos = t({4, 3});
  expect_error(bad, "argument 'pool.pos'");
  Spec no_decode = spec;
  no_decode.build_decode = false;
  try {
    jit::get_kernel({.spec = no_decode})->decode(a);
    ADD_FAILURE() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("without the decode pass"), std::string::npos);
  }
}

}  // namespace
}  // namespace ttt
