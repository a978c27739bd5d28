// bench_decode.cpp: the decode benchmark (see bench_decode.hpp). Pools are filled by a prefill of
// a few tokens (so every row sits mid-mini-batch), a graph of `steps_per_graph` decode steps is
// captured once and replayed, and a 1 GiB device copy gives the bandwidth to compare against.
#include "tools/bench_decode.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "compiler/reference/reference.hpp"
#include "runtime/device_buffer.hpp"
#include "runtime/driver.hpp"
#include "runtime/harness/check.hpp"
#include "runtime/harness/host_convert.hpp"
#include "runtime/jit.hpp"

namespace ttt::cli {
namespace {

// Times `fn` (enqueueing work on `stream`) with CUDA events; returns milliseconds per call.
template <class Fn>
double time_ms(CUstream stream, int runs, Fn&& fn) {
  const driver::Api& api = driver::api();
  CUevent start, stop;
  driver::check(api.cuEventCreate(&start, 0), "cuEventCreate");
  driver::check(api.cuEventCreate(&stop, 0), "cuEventCreate");
  fn();  // warm-up
  driver::check(api.cuEventRecord(start, stream), "cuEventRecord");
  for (int i = 0; i < runs; ++i) fn();
  driver::check(api.cuEventRecord(stop, stream), "cuEventRecord");
  driver::check(api.cuEventSynchronize(stop), "cuEventSynchronize");
  float ms = 0;
  driver::check(api.cuEventElapsedTime(&ms, start, stop), "cuEventElapsedTime");
  api.cuEventDestroy(start);
  api.cuEventDestroy(stop);
  return ms / runs;
}

// Read + write bandwidth of a device-to-device copy of 1 GiB, in GB/s.
double copy_bandwidth(CUstream stream) {
  const size_t bytes = size_t{1} << 30;
  DeviceBuffer a(bytes), b(bytes);
  const double ms = time_ms(stream, 10, [&] {
    driver::check(
        driver::api().cuMemcpyDtoDAsync(reinterpret_cast<CUdeviceptr>(b.data()),
                                        reinterpret_cast<CUdeviceptr>(a.data()), bytes, stream),
        "cuMemcpyDtoDAsync");
  });
  return 2.0 * bytes / (ms * 1e-3) / 1e9;
}

// Deterministic values in [-1, 1) (a benchmark needs no statistics, only finite data).
std::vector<double> filler(size_t n, uint64_t seed, double scale) {
  std::vector<double> v(n);
  for (auto& x : v) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    x = scale * (static_cast<double>(seed >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  }
  return v;
}

// Shared parameters (tau, gamma, beta, state0) and per-token tensors for B rows of T tokens.
struct Tensors {
  std::vector<DeviceBuffer> owned;
  TensorRef q, k, v, lr, tau, gamma, beta, state0, out;
  Tensors(const Spec& spec, const ref::Inputs& shared, int B, int H, int T) {
    const int f = spec.head_dim;
    const size_t tokens = static_cast<size_t>(B) * H * T;
    auto up = [&](const std::vector<double>& x, DType d, std::vector<int64_t> shape) {
      owned.push_back(DeviceBuffer::from_host(encode(x, d)));
      return TensorRef::contiguous(owned.back().data(), d, std::move(shape));
    };
    q = up(filler(tokens * f, 1, 1.0), spec.dtype, {B, H, T, f});
    k = up(filler(tokens * f, 2, 1.0), spec.dtype, {B, H, T, f});
    v = up(filler(tokens * f, 3, 1.0), spec.dtype, {B, H, T, f});
    lr = up(std::vector<double>(tokens, 1e-3), DType::f32, {B, H, T});
    tau = up(shared.tau.data, DType::f32, {spec.mini_batch});
    gamma = up(shared.gamma.data, DType::f32, {H, f});
    beta = up(shared.beta.data, DType::f32, {H, f});
    state0 =
        up(check::pack_state(spec, shared.W, shared.b, H), DType::f32, {H, spec.state_floats()});
    owned.emplace_back(tokens * f * dtype_bytes(spec.dtype));
    out = TensorRef::contiguous(owned.back().data(), spec.dtype, {B, H, T, f});
  }
};

struct PoolBuffers {
  DeviceBuffer theta, accum, pos, slots;
  DecodePool refs;
  TensorRef slot_ref;
  PoolBuffers(const Spec& spec, int N, int H) {
    const int64_t S = spec.state_floats();
    theta = DeviceBuffer(4 * static_cast<size_t>(N) * H * S);
    accum = DeviceBuffer(4 * static_cast<size_t>(N) * H * S);
    pos = DeviceBuffer(4 * static_cast<size_t>(N) * H);
    std::vector<int> ids(N);
    for (int i = 0; i < N; ++i) ids[i] = N - 1 - i;  // permuted, as a serving engine's would be
    slots = DeviceBuffer::from_host(std::string(reinterpret_cast<const char*>(ids.data()), 4 * N));
    refs = {TensorRef::contiguous(theta.data(), DType::f32, {N, H, S}),
            TensorRef::contiguous(accum.data(), DType::f32, {N, H, S}),
            TensorRef::contiguous(pos.data(), DType::i32, {N, H})};
    slot_ref = TensorRef::contiguous(slots.data(), DType::i32, {N});
  }
};

}  // namespace

nlohmann::json DecodeBenchResult::to_json() const {
  return {{"step_us", step_us},
          {"tokens_per_s", tokens_per_s},
          {"state_bytes_per_step", state_bytes_per_step},
          {"state_gb_per_s", state_gb_per_s},
          {"copy_gb_per_s", copy_gb_per_s},
          {"bandwidth_fraction", bandwidth_fraction},
          {"prefill_ms", prefill_ms},
          {"prefill_tokens_per_s", prefill_tokens_per_s}};
}

DecodeBenchResult bench_decode(Spec spec, const DecodeBenchOptions& o) {
  if (!spec.causal)
    throw std::invalid_argument("bench --decode: decode needs a causal spec (\"causal\": true)");
  spec.build_decode = true;
  spec.build_backward = false;
  const driver::Api& api = driver::api();
  driver::current_device();
  auto kernel = jit::get_kernel({.spec = spec});
  const ref::Inputs shared = ref::random_inputs(spec, 1, o.H, 1, false, 7);
  CUstream stream = nullptr;
  driver::check(api.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  DecodeBenchResult r;
  r.copy_gb_per_s = copy_bandwidth(stream);

  {  // decode: fill the pool by a 5-token prefill, then replay a graph of decode steps
    const int B = o.batch, prefill_tokens = 5;
    PoolBuffers pool(spec, B, o.H);
    Tensors fill(spec, shared, B, o.H, prefill_tokens);
    kernel->prefill({.q = fill.q,
                     .k = fill.k,
                     .v = fill.v,
                     .lr = fill.lr,
                     .tau = fill.tau,
                     .gamma = fill.gamma,
                     .beta = fill.beta,
                     .state0 = fill.state0,
                     .slots = pool.slot_ref,
                     .pool = pool.refs,
                     .out = fill.out},
                    stream);
    Tensors step(spec, shared, B, o.H, 1);
    const DecodeArgs args{.q = step.q,
                          .k = step.k,
                          .v = step.v,
                          .lr = step.lr,
                          .tau = step.tau,
                          .gamma = step.gamma,
                          .beta = step.beta,
                          .slots = pool.slot_ref,
                          .pool = pool.refs,
                          .out = step.out};
    CUgraph graph = nullptr;
    CUgraphExec exec = nullptr;
    driver::check(api.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
                  "cuStreamBeginCapture");
    for (int i = 0; i < o.steps_per_graph; ++i) kernel->decode(args, stream);
    driver::check(api.cuStreamEndCapture(stream, &graph), "cuStreamEndCapture");
    driver::check(api.cuGraphInstantiateWithFlags(&exec, graph, 0), "cuGraphInstantiate");
    const double ms = time_ms(
        stream, o.runs, [&] { driver::check(api.cuGraphLaunch(exec, stream), "cuGraphLaunch"); });
    api.cuGraphExecDestroy(exec);
    api.cuGraphDestroy(graph);
    r.step_us = ms * 1e3 / o.steps_per_graph;
    r.tokens_per_s = B / (r.step_us * 1e-6);
    const double S = static_cast<double>(spec.state_floats());
    r.state_bytes_per_step = double(B) * o.H * (12.0 * S + 4.0 * S / spec.mini_batch);
    r.state_gb_per_s = r.state_bytes_per_step / (r.step_us * 1e-6) / 1e9;
    r.bandwidth_fraction = r.state_gb_per_s / r.copy_gb_per_s;
  }
  if (o.prefill_B > 0 && o.prefill_T > 0) {  // prefill: eager launches (it may use a workspace)
    PoolBuffers pool(spec, o.prefill_B, o.H);
    Tensors in(spec, shared, o.prefill_B, o.H, o.prefill_T);
    const PrefillArgs args{.q = in.q,
                           .k = in.k,
                           .v = in.v,
                           .lr = in.lr,
                           .tau = in.tau,
                           .gamma = in.gamma,
                           .beta = in.beta,
                           .state0 = in.state0,
                           .slots = pool.slot_ref,
                           .pool = pool.refs,
                           .out = in.out};
    r.prefill_ms = time_ms(stream, o.runs, [&] { kernel->prefill(args, stream); });
    r.prefill_tokens_per_s = double(o.prefill_B) * o.prefill_T / (r.prefill_ms * 1e-3);
  }
  driver::check(api.cuStreamSynchronize(stream), "cuStreamSynchronize");
  api.cuStreamDestroy(stream);
  return r;
}

}  // namespace ttt::cli
