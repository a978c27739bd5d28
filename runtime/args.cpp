// args.cpp: shape, dtype, stride, alignment and null checks for every launch argument.
#include "runtime/args.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>

namespace ttt {

TensorRef TensorRef::contiguous(void* data, DType dtype, std::vector<int64_t> shape) {
  return TensorRef{.data = data, .dtype = dtype, .shape = std::move(shape)};
}

std::vector<int64_t> TensorRef::effective_strides() const {
  if (!strides.empty()) return strides;
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
  return s;
}

int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<StateTensor> state_layout(const Spec& spec) {
  std::vector<StateTensor> layout;
  for (const StateMember& m : state_members(spec))
    layout.push_back({m.name,
                      m.bias ? std::vector<int64_t>{m.cols} : std::vector<int64_t>{m.rows, m.cols},
                      m.offset});
  return layout;
}

}  // namespace ttt

namespace ttt::args {
namespace {

[[noreturn]] void fail(const char* name, const std::string& what) {
  throw std::invalid_argument(fmt::format("argument '{}': {}", name, what));
}

// unit_last: any non-negative strides, the last one 1. strided: any non-negative strides (an
// input may broadcast with stride 0). distinct: strided, but no two elements at one address (an
// output).
enum class Layout { contiguous, unit_last, strided, distinct };

// Sorted by stride, each dimension must step over everything the smaller ones span.
bool elements_distinct(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  std::vector<size_t> order(shape.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return strides[a] < strides[b]; });
  int64_t span = 1;
  for (size_t i : order) {
    if (shape[i] == 1) continue;
    if (strides[i] < span) return false;
    span = strides[i] * shape[i];
  }
  return true;
}

void check(const TensorRef& t, const char* name, DType dtype, const std::vector<int64_t>& shape,
           Layout layout = Layout::contiguous) {
  if (!t.data) fail(name, "null data pointer");
  if (t.dtype != dtype)
    fail(name, fmt::format("dtype {} expected, got {}", to_string(dtype), to_string(t.dtype)));
  if (t.shape != shape)
    fail(name, fmt::format("shape [{}] expected, got [{}]", fmt::join(shape, ", "),
                           fmt::join(t.shape, ", ")));
  if (!t.strides.empty() && t.strides.size() != t.shape.size())
    fail(name, fmt::format("{} strides for {} dimensions", t.strides.size(), t.shape.size()));
  // A dimension of size 1 is only ever indexed at 0, so its stride is free (as in PyTorch, whose
  // contiguous() leaves such strides as they were): it counts as the stride expected there.
  auto strides = t.effective_strides();
  const auto packed = TensorRef{.shape = shape}.effective_strides();
  for (size_t i = 0; i < strides.size(); ++i)
    if (shape[i] == 1)
      strides[i] = layout == Layout::unit_last && i + 1 == strides.size() ? 1 : packed[i];
  if (layout == Layout::contiguous && strides != packed)
    fail(name, fmt::format("must be contiguous (strides [{}] given)", fmt::join(strides, ", ")));
  if (layout == Layout::unit_last && strides.back() != 1)
    fail(name, fmt::format("the feature dimension must have stride 1 (got {})", strides.back()));
  if (layout != Layout::contiguous)
    for (int64_t stride : strides)
      if (stride < 0) fail(name, "negative strides are not supported");
  // (the kernels step over tokens, the last dimension of lr and dlr, with a 32-bit stride)
  if ((layout == Layout::strided || layout == Layout::distinct) && strides.back() > INT32_MAX)
    fail(name, fmt::format("stride {} of the last dimension does not fit in 32 bits",
                           strides.back()));
  if (layout == Layout::distinct && !elements_distinct(shape, strides))
    fail(name, fmt::format("strides [{}] make elements overlap (an output needs one address per "
                           "element)",
                           fmt::join(strides, ", ")));
  if (reinterpret_cast<std::uintptr_t>(t.data) % dtype_bytes(dtype) != 0)
    fail(name, fmt::format("data pointer not aligned to {} bytes", dtype_bytes(dtype)));
}

// Per-token scalars (lr [B, H, T]): any strides, e.g. the [B, H, T] view of a [B, T, H] tensor.
void check_lr(const TensorRef& t, const char* name, const std::vector<int64_t>& shape) {
  check(t, name, DType::f32, shape, Layout::strided);
}

Problem problem_from_q(const Spec& spec, const TensorRef& q) {
  if (q.shape.size() != 4 || q.shape[3] != spec.head_dim)
    fail("q", fmt::format("shape [B, H, T, {}] expected, got [{}]", spec.head_dim,
                          fmt::join(q.shape, ", ")));
  if (q.shape[0] < 1 || q.shape[1] < 1 || q.shape[2] < 1)
    fail("q", fmt::format("B, H and T must be positive (got [{}])", fmt::join(q.shape, ", ")));
  if (q.shape[0] * q.shape[1] > INT32_MAX || q.shape[2] > INT32_MAX)
    fail("q", "too large: B*H and T must fit in 32 bits");
  return Problem{.B = static_cast<int>(q.shape[0]),
                 .H = static_cast<int>(q.shape[1]),
                 .T = static_cast<int>(q.shape[2])};
}

// state0 / dstate0: [H, S] shared over the batch or [B, H, S] per batch row.
bool check_state(const TensorRef& t, const char* name, const Problem& p, int64_t S) {
  if (t.shape.size() == 2) {
    check(t, name, DType::f32, {p.H, S});
    return true;
  }
  check(t, name, DType::f32, {p.B, p.H, S});
  return false;
}

tttc::TokenTensor token(const TensorRef& t, int t0 = 0) {
  const auto s = t.effective_strides();
  char* base = static_cast<char*>(t.data) + t0 * s[2] * dtype_bytes(t.dtype);
  return {base, s[0], s[1], s[2]};
}

// The inputs decode and prefill share with the forward, and the token output.
void check_token_inputs(const Spec& spec, const Problem& p, const TensorRef& q, const TensorRef& k,
                        const TensorRef& v, const TensorRef& out, const TensorRef& lr,
                        const TensorRef& tau, const TensorRef& gamma, const TensorRef& beta) {
  const std::vector<int64_t> tokens = {p.B, p.H, p.T, spec.head_dim};
  for (auto [t, name] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}, {&out, "out"}})
    check(*t, name, spec.dtype, tokens, Layout::unit_last);
  check_lr(lr, "lr", {p.B, p.H, p.T});
  check(tau, "tau", DType::f32, {spec.mini_batch});
  check(gamma, "gamma", DType::f32, {p.H, spec.head_dim});
  check(beta, "beta", DType::f32, {p.H, spec.head_dim});
}

// The pool (theta, accum f32 [N, H, S]; pos i32 [N, H]) and the slots (i32 [B]); returns N.
int check_pool(const Spec& spec, const Problem& p, const DecodePool& pool, const TensorRef& slots) {
  const int64_t S = spec.state_floats();
  const TensorRef& theta = pool.theta;
  if (theta.shape.size() != 3 || theta.shape[0] < 1)
    fail("pool.theta", fmt::format("shape [N, {}, {}] with N >= 1 slots expected, got [{}]", p.H, S,
                                   fmt::join(theta.shape, ", ")));
  if (theta.shape[0] > INT32_MAX) fail("pool.theta", "too many slots: N must fit in 32 bits");
  const int64_t N = theta.shape[0];
  check(theta, "pool.theta", DType::f32, {N, p.H, S});
  check(pool.accum, "pool.accum", DType::f32, {N, p.H, S});
  for (auto [t, name] : {std::pair{&theta, "pool.theta"}, {&pool.accum, "pool.accum"}})
    if (reinterpret_cast<std::uintptr_t>(t->data) % 16 != 0)
      fail(name, "data pointer not aligned to 16 bytes (the decode kernel reads it as float4)");
  check(pool.pos, "pool.pos", DType::i32, {N, p.H});
  check(slots, "slots", DType::i32, {p.B});
  return static_cast<int>(N);
}

}  // namespace

Problem check_forward(const Spec& spec, const ForwardArgs& a, int checkpoints) {
  Problem p = problem_from_q(spec, a.q);
  const std::vector<int64_t> tokens = {p.B, p.H, p.T, spec.head_dim};
  const int64_t S = spec.state_floats();
  for (auto [t, name] : {std::pair{&a.q, "q"}, {&a.k, "k"}, {&a.v, "v"}, {&a.out, "out"}})
    check(*t, name, spec.dtype, tokens, Layout::unit_last);
  check_lr(a.lr, "lr", {p.B, p.H, p.T});
  check(a.tau, "tau", DType::f32, {spec.mini_batch});
  check(a.gamma, "gamma", DType::f32, {p.H, spec.head_dim});
  check(a.beta, "beta", DType::f32, {p.H, spec.head_dim});
  p.shared_state = check_state(a.state0, "state0", p, S);
  check(a.state_final, "state_final", DType::f32, {p.B, p.H, S});
  check(a.checkpoints, "checkpoints", DType::f32, {p.B, p.H, checkpoints, S});
  return p;
}

Problem check_backward(const Spec& spec, const BackwardArgs& a, int checkpoints) {
  Problem p = problem_from_q(spec, a.q);
  const std::vector<int64_t> tokens = {p.B, p.H, p.T, spec.head_dim};
  const int64_t S = spec.state_floats();
  for (auto [t, name] : {std::pair{&a.q, "q"},
                         {&a.k, "k"},
                         {&a.v, "v"},
                         {&a.dout, "dout"},
                         {&a.dq, "dq"},
                         {&a.dk, "dk"},
                         {&a.dv, "dv"}})
    check(*t, name, spec.dtype, tokens, Layout::unit_last);
  check_lr(a.lr, "lr", {p.B, p.H, p.T});
  check(a.dlr, "dlr", DType::f32, {p.B, p.H, p.T}, Layout::distinct);
  check(a.tau, "tau", DType::f32, {spec.mini_batch});
  check(a.dtau, "dtau", DType::f32, {spec.mini_batch});
  for (auto [t, name] : {std::pair{&a.gamma, "gamma"},
                         {&a.beta, "beta"},
                         {&a.dgamma, "dgamma"},
                         {&a.dbeta, "dbeta"}})
    check(*t, name, DType::f32, {p.H, spec.head_dim});
  check(a.checkpoints, "checkpoints", DType::f32, {p.B, p.H, checkpoints, S});
  if (a.dstate_final.data) check(a.dstate_final, "dstate_final", DType::f32, {p.B, p.H, S});
  p.shared_state = check_state(a.dstate0, "dstate0", p, S);
  return p;
}

DecodeProblem check_decode(const Spec& spec, const DecodeArgs& a) {
  if (!spec.causal) fail("spec", "decode needs a causal spec");
  DecodeProblem p{problem_from_q(spec, a.q)};
  check_token_inputs(spec, p, a.q, a.k, a.v, a.out, a.lr, a.tau, a.gamma, a.beta);
  p.slots = check_pool(spec, p, a.pool, a.slots);
  return p;
}

DecodeProblem check_prefill(const Spec& spec, const PrefillArgs& a) {
  if (!spec.causal) fail("spec", "prefill needs a causal spec");
  DecodeProblem p{problem_from_q(spec, a.q)};
  check_token_inputs(spec, p, a.q, a.k, a.v, a.out, a.lr, a.tau, a.gamma, a.beta);
  p.shared_state = check_state(a.state0, "state0", p, spec.state_floats());
  p.slots = check_pool(spec, p, a.pool, a.slots);
  return p;
}

tttc::DecodeParams decode_params(const DecodeProblem& p, const TensorRef& q, const TensorRef& k,
                                 const TensorRef& v, const TensorRef& lr, const TensorRef& tau,
                                 const TensorRef& gamma, const TensorRef& beta,
                                 const TensorRef& slots, const DecodePool& pool,
                                 const TensorRef& out, int t0, const float* init,
                                 bool shared_init) {
  const auto lrs = lr.effective_strides();
  const int64_t S = pool.theta.shape[2];
  return tttc::DecodeParams{.B = p.B,
                            .H = p.H,
                            .T = p.T - t0,
                            .q = token(q, t0),
                            .k = token(k, t0),
                            .v = token(v, t0),
                            .out = token(out, t0),
                            .lr = static_cast<const float*>(lr.data) + t0 * lrs[2],
                            .lr_stride_b = lrs[0],
                            .lr_stride_h = lrs[1],
                            .lr_stride_t = lrs[2],
                            .tau = static_cast<const float*>(tau.data),
                            .gamma = static_cast<const float*>(gamma.data),
                            .beta = static_cast<const float*>(beta.data),
                            .slots = static_cast<const int*>(slots.data),
                            .num_slots = p.slots,
                            .theta = static_cast<float*>(pool.theta.data),
                            .accum = static_cast<float*>(pool.accum.data),
                            .pos = static_cast<int*>(pool.pos.data),
                            .init = init,
                            .init_stride_b = shared_init ? 0 : p.H * S};
}

tttc::ForwardParams forward_params(const Problem& p, const ForwardArgs& a) {
  const auto lr = a.lr.effective_strides();
  const int64_t S = a.state_final.shape[2];
  return tttc::ForwardParams{.B = p.B,
                             .H = p.H,
                             .T = p.T,
                             .q = token(a.q),
                             .k = token(a.k),
                             .v = token(a.v),
                             .out = token(a.out),
                             .lr = static_cast<const float*>(a.lr.data),
                             .lr_stride_b = lr[0],
                             .lr_stride_h = lr[1],
                             .lr_stride_t = lr[2],
                             .tau = static_cast<const float*>(a.tau.data),
                             .gamma = static_cast<const float*>(a.gamma.data),
                             .beta = static_cast<const float*>(a.beta.data),
                             .state0 = static_cast<const float*>(a.state0.data),
                             .state0_stride_b = p.shared_state ? 0 : p.H * S,
                             .state_final = static_cast<float*>(a.state_final.data),
                             .checkpoints = static_cast<float*>(a.checkpoints.data),
                             .workspace = static_cast<float*>(a.workspace)};
}

tttc::BackwardParams backward_params(const Problem& p, const BackwardArgs& a) {
  const auto lr = a.lr.effective_strides(), dlr = a.dlr.effective_strides();
  const int64_t S = a.checkpoints.shape[3];
  return tttc::BackwardParams{.B = p.B,
                              .H = p.H,
                              .T = p.T,
                              .q = token(a.q),
                              .k = token(a.k),
                              .v = token(a.v),
                              .dout = token(a.dout),
                              .dq = token(a.dq),
                              .dk = token(a.dk),
                              .dv = token(a.dv),
                              .lr = static_cast<const float*>(a.lr.data),
                              .lr_stride_b = lr[0],
                              .lr_stride_h = lr[1],
                              .lr_stride_t = lr[2],
                              .dlr = static_cast<float*>(a.dlr.data),
                              .dlr_stride_b = dlr[0],
                              .dlr_stride_h = dlr[1],
                              .dlr_stride_t = dlr[2],
                              .tau = static_cast<const float*>(a.tau.data),
                              .dtau = static_cast<float*>(a.dtau.data),
                              .gamma = static_cast<const float*>(a.gamma.data),
                              .beta = static_cast<const float*>(a.beta.data),
                              .dgamma = static_cast<float*>(a.dgamma.data),
                              .dbeta = static_cast<float*>(a.dbeta.data),
                              .checkpoints = static_cast<const float*>(a.checkpoints.data),
                              .dstate_final = static_cast<const float*>(a.dstate_final.data),
                              .dstate0 = static_cast<float*>(a.dstate0.data),
                              .dstate0_stride_b = p.shared_state ? 0 : p.H * S,
                              .workspace = static_cast<float*>(a.workspace)};
}

}  // namespace ttt::args
