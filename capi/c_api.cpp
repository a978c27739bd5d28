// c_api.cpp: the C ABI of capi/tttc.h over the C++ library: spec handles, the double-precision CPU
// reference on flat arrays (packed state <-> per-layer tensors, checkpoints by chunks), and GPU
// kernels launched with caller-provided tensors, workspace and stream. Exceptions never cross the
// ABI: each becomes a status code plus a thread-local message.
#include "capi/tttc.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "compiler/nvrtc_backend.hpp"
#include "compiler/reference/reference.hpp"
#include "compiler/spec.hpp"
#include "runtime/driver.hpp"
#include "runtime/jit.hpp"
#include "runtime/tensor.hpp"

struct tttc_spec {
  ttt::Spec spec;
  std::string info;
  std::mutex mutex;
  // By (device ordinal, launch_heads).
  std::map<std::pair<int, int64_t>, std::shared_ptr<const ttt::jit::Kernel>> kernels;
};

struct tttc_kernel {
  std::shared_ptr<const ttt::jit::Kernel> kernel;
};

namespace {

thread_local std::string last_error;

template <class F>
int guarded(F&& body) {
  try {
    body();
    last_error.clear();
    return TTTC_OK;
  } catch (const ttt::SpecError& e) {
    last_error = e.what();
    return TTTC_INVALID;
  } catch (const std::invalid_argument& e) {
    last_error = e.what();
    return TTTC_INVALID;
  } catch (const ttt::nvrtc::CompileError& e) {
    last_error = e.what();
    return TTTC_COMPILE_ERROR;
  } catch (const ttt::driver::NoGpuError& e) {
    last_error = e.what();
    return TTTC_NO_GPU;
  } catch (const ttt::driver::CudaError& e) {
    last_error = e.what();
    return TTTC_CUDA_ERROR;
  } catch (const std::exception& e) {
    last_error = e.what();
    return TTTC_ERROR;
  }
}

void require(const void* p, const char* name) {
  if (!p) throw std::invalid_argument(fmt::format("argument '{}': null pointer", name));
}

std::string describe(const ttt::Spec& s) {
  nlohmann::json layout = nlohmann::json::array();
  for (const auto& t : ttt::state_layout(s))
    layout.push_back({{"name", t.name}, {"shape", t.shape}, {"offset", t.offset}});
  nlohmann::json passes = nlohmann::json::array();
  if (s.build_forward) passes.push_back("forward");
  if (s.build_backward) passes.push_back("backward");
  if (s.build_decode) passes.push_back("decode");
  return nlohmann::json{{"name", s.name},
                        {"canonical", ttt::canonical_json(s)},
                        {"signature", ttt::spec_signature(s)},
                        {"model", ttt::to_string(s.model)},
                        {"depth", s.depth},
                        {"head_dim", s.head_dim},
                        {"mini_batch", s.mini_batch},
                        {"checkpoint_group", s.checkpoint_group},
                        {"causal", s.causal},
                        {"dtype", ttt::to_string(s.dtype)},
                        {"widths", s.widths()},
                        {"state_floats", s.state_floats()},
                        {"state_layout", layout},
                        {"passes", passes}}
      .dump();
}

tttc_spec* make_spec(ttt::Spec s) {
  auto* h = new tttc_spec;
  h->info = describe(s);
  h->spec = std::move(s);
  return h;
}

// --- the reference on flat arrays -------------------------------------------------------------

struct Dims {
  int64_t B, H, T, f, K, S;
};

ttt::ref::Tensor slice_tokens(const double* src, const Dims& d, int64_t t0, int64_t n,
                              int64_t width) {
  ttt::ref::Tensor t(width == 1 ? std::vector<int64_t>{d.B, d.H, n}
                                 : std::vector<int64_t>{d.B, d.H, n, width});
  for (int64_t bh = 0; bh < d.B * d.H; ++bh)
    std::copy_n(src + (bh * d.T + t0) * width, n * width, t.data.data() + bh * n * width);
  return t;
}

ttt::ref::Tensor copy_of(const double* src, std::vector<int64_t> shape) {
  ttt::ref::Tensor t(std::move(shape));
  std::copy_n(src, t.numel(), t.data.data());
  return t;
}

// Packed state [rows, S] -> per-layer W [rows..., d_in, d_out] and b [rows..., d_out], where
// rows is {H} or {B, H}.
void unpack_state(const ttt::Spec& spec, const double* packed, std::vector<int64_t> rows,
                  std::vector<ttt::ref::Tensor>& W, std::vector<ttt::ref::Tensor>& b) {
  int64_t n = 1;
  for (int64_t r : rows) n *= r;
  const int64_t S = spec.state_floats();
  W.clear(), b.clear();
  for (const ttt::StateTensor& part : ttt::state_layout(spec)) {
    std::vector<int64_t> shape = rows;
    shape.insert(shape.end(), part.shape.begin(), part.shape.end());
    ttt::ref::Tensor t(shape);
    const int64_t size = t.numel() / n;
    for (int64_t r = 0; r < n; ++r)
      std::copy_n(packed + r * S + part.offset, size, t.data.data() + r * size);
    (part.name[0] == 'W' ? W : b).push_back(std::move(t));
  }
}

// Per-layer tensors (rows leading) -> packed [rows, S] at `packed`, row stride `row_stride`.
void pack_state(const ttt::Spec& spec, const std::vector<ttt::ref::Tensor>& W,
                const std::vector<ttt::ref::Tensor>& b, int64_t rows, double* packed,
                int64_t row_stride) {
  size_t w = 0, bi = 0;
  for (const ttt::StateTensor& part : ttt::state_layout(spec)) {
    const ttt::ref::Tensor& t = part.name[0] == 'W' ? W[w++] : b[bi++];
    const int64_t size = t.numel() / rows;
    for (int64_t r = 0; r < rows; ++r)
      std::copy_n(t.data.data() + r * size, size, packed + r * row_stride + part.offset);
  }
}

void reference_forward(const ttt::Spec& spec, const Dims& d, bool per_batch_state,
                       const double* q, const double* k, const double* v, const double* lr,
                       const double* tau, const double* gamma, const double* beta,
                       const double* state0, double* out, double* state_final,
                       double* checkpoints) {
  // Without checkpoints one call covers the sequence; with them, one call per checkpoint group
  // of g*K tokens, carrying the state (every chunk but the last holds whole mini-batches).
  const int64_t chunk = checkpoints ? d.K * spec.checkpoint_group : d.T;
  const int64_t C = (d.T + chunk - 1) / chunk;
  ttt::ref::Inputs in;
  in.B = static_cast<int>(d.B), in.H = static_cast<int>(d.H);
  in.tau = copy_of(tau, {d.K});
  in.gamma = copy_of(gamma, {d.H, d.f});
  in.beta = copy_of(beta, {d.H, d.f});
  in.per_batch_state = per_batch_state;
  unpack_state(spec, state0, per_batch_state ? std::vector{d.B, d.H} : std::vector{d.H}, in.W,
               in.b);
  for (int64_t c = 0; c < C; ++c) {
    const int64_t t0 = c * chunk, n = std::min(chunk, d.T - t0);
    in.T = static_cast<int>(n);
    in.q = slice_tokens(q, d, t0, n, d.f);
    in.k = slice_tokens(k, d, t0, n, d.f);
    in.v = slice_tokens(v, d, t0, n, d.f);
    in.lr = slice_tokens(lr, d, t0, n, 1);
    if (checkpoints) {
      if (in.per_batch_state) {
        pack_state(spec, in.W, in.b, d.B * d.H, checkpoints + c * d.S, C * d.S);
      } else {  // the shared state, once per batch row
        for (int64_t b = 0; b < d.B; ++b)
          pack_state(spec, in.W, in.b, d.H, checkpoints + (b * d.H * C + c) * d.S, C * d.S);
      }
    }
    ttt::ref::Outputs o = ttt::ref::forward(spec, in);
    for (int64_t bh = 0; bh < d.B * d.H; ++bh)
      std::copy_n(o.out.data.data() + bh * n * d.f, n * d.f, out + (bh * d.T + t0) * d.f);
    in.W = std::move(o.W_final);
    in.b = std::move(o.b_final);
    in.per_batch_state = true;
  }
  pack_state(spec, in.W, in.b, d.B * d.H, state_final, d.S);
}

void unpack_rows(const ttt::ref::Tensor& t, double* dst) {
  std::copy(t.data.begin(), t.data.end(), dst);
}

}  // namespace

extern "C" {

const char* tttc_version(void) { return "0.1.0"; }

const char* tttc_last_error(void) { return last_error.c_str(); }

int tttc_gpu_available(const char** reason) {
  const ttt::driver::DriverStatus& s = ttt::driver::status();
  if (reason) *reason = s.available ? "" : s.reason.c_str();
  return s.available ? 1 : 0;
}

int tttc_spec_parse(const char* text, const char* origin, tttc_spec** out) {
  return guarded([&] {
    require(text, "text");
    require(out, "out");
    *out = make_spec(ttt::parse_spec(text, origin ? origin : "<string>"));
  });
}

int tttc_spec_load_file(const char* path, tttc_spec** out) {
  return guarded([&] {
    require(path, "path");
    require(out, "out");
    *out = make_spec(ttt::load_spec_file(path));
  });
}

void tttc_spec_free(tttc_spec* spec) { delete spec; }

const char* tttc_spec_info(const tttc_spec* spec) { return spec ? spec->info.c_str() : ""; }

int tttc_reference_forward(const tttc_spec* spec, int64_t B, int64_t H, int64_t T,
                           int per_batch_state, const double* q, const double* k, const double* v,
                           const double* lr, const double* tau, const double* gamma,
                           const double* beta, const double* state0, double* out,
                           double* state_final, double* checkpoints) {
  return guarded([&] {
    require(spec, "spec");
    for (auto [p, name] : {std::pair{q, "q"}, {k, "k"}, {v, "v"}, {lr, "lr"}, {tau, "tau"},
                           {gamma, "gamma"}, {beta, "beta"}, {state0, "state0"}})
      require(p, name);
    require(out, "out");
    require(state_final, "state_final");
    if (B < 1 || H < 1 || T < 1)
      throw std::invalid_argument(fmt::format("argument 'q': B, H, T = {}, {}, {}: each must be >= 1", B, H, T));
    const ttt::Spec& s = spec->spec;
    const Dims d{B, H, T, s.head_dim, s.mini_batch, s.state_floats()};
    reference_forward(s, d, per_batch_state != 0, q, k, v, lr, tau, gamma, beta, state0, out,
                      state_final, checkpoints);
  });
}

int tttc_reference_backward(const tttc_spec* spec, int64_t B, int64_t H, int64_t T,
                            const double* q, const double* k, const double* v, const double* lr,
                            const double* tau, const double* gamma, const double* beta,
                            const double* checkpoints, int64_t C, const double* dout,
                            const double* dstate_final, int shared_dstate0, double* dq, double* dk,
                            double* dv, double* dlr, double* dtau, double* dgamma, double* dbeta,
                            double* dstate0) {
  return guarded([&] {
    require(spec, "spec");
    for (auto [p, name] :
         {std::pair{q, "q"}, {k, "k"}, {v, "v"}, {lr, "lr"}, {tau, "tau"}, {gamma, "gamma"},
          {beta, "beta"}, {checkpoints, "checkpoints"}, {dout, "dout"}})
      require(p, name);
    for (auto [p, name] : {std::pair{dq, "dq"}, {dk, "dk"}, {dv, "dv"}, {dlr, "dlr"},
                           {dtau, "dtau"}, {dgamma, "dgamma"}, {dbeta, "dbeta"},
                           {dstate0, "dstate0"}})
      require(p, name);
    if (B < 1 || H < 1 || T < 1 || C < 1)
      throw std::invalid_argument(
          fmt::format("argument 'q': B, H, T, C = {}, {}, {}, {}: each must be >= 1", B, H, T, C));
    const ttt::Spec& s = spec->spec;
    const Dims d{B, H, T, s.head_dim, s.mini_batch, s.state_floats()};
    ttt::ref::Inputs in;
    in.B = static_cast<int>(B), in.H = static_cast<int>(H), in.T = static_cast<int>(T);
    in.q = copy_of(q, {B, H, T, d.f});
    in.k = copy_of(k, {B, H, T, d.f});
    in.v = copy_of(v, {B, H, T, d.f});
    in.lr = copy_of(lr, {B, H, T});
    in.tau = copy_of(tau, {d.K});
    in.gamma = copy_of(gamma, {H, d.f});
    in.beta = copy_of(beta, {H, d.f});
    in.per_batch_state = true;  // checkpoint 0 holds each row's initial state
    std::vector<double> state0(static_cast<size_t>(B * H * d.S));
    for (int64_t bh = 0; bh < B * H; ++bh)
      std::copy_n(checkpoints + bh * C * d.S, d.S, state0.data() + bh * d.S);
    unpack_state(s, state0.data(), {B, H}, in.W, in.b);
    ttt::ref::Upstream up;
    up.dout = copy_of(dout, {B, H, T, d.f});
    if (dstate_final) {
      std::vector<ttt::ref::Tensor> dW, db;
      unpack_state(s, dstate_final, {B, H}, dW, db);
      up.dW_final = std::move(dW);
      up.db_final = std::move(db);
    }
    const ttt::ref::Grads g = ttt::ref::backward(s, in, up);
    unpack_rows(g.dq, dq), unpack_rows(g.dk, dk), unpack_rows(g.dv, dv);
    unpack_rows(g.dlr, dlr), unpack_rows(g.dtau, dtau);
    unpack_rows(g.dgamma, dgamma), unpack_rows(g.dbeta, dbeta);
    if (shared_dstate0) {  // summed over the batch in a fixed order
      std::vector<double> rows(static_cast<size_t>(B * H * d.S));
      pack_state(s, g.dW, g.db, B * H, rows.data(), d.S);
      std::fill_n(dstate0, H * d.S, 0.0);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < H * d.S; ++i) dstate0[i] += rows[b * H * d.S + i];
    } else {
      pack_state(s, g.dW, g.db, B * H, dstate0, d.S);
    }
  });
}

int tttc_kernel_get(tttc_spec* spec, int device, tttc_kernel** out) {
  return tttc_kernel_get_for_launch(spec, device, 0, out);
}

int tttc_kernel_get_for_launch(tttc_spec* spec, int device, int64_t launch_heads,
                               tttc_kernel** out) {
  return guarded([&] {
    require(spec, "spec");
    require(out, "out");
    if (launch_heads < 0)
      throw std::invalid_argument(
          fmt::format("launch_heads = {}: must be 0 (unknown) or B*H", launch_heads));
    std::lock_guard lock(spec->mutex);
    auto& kernel = spec->kernels[{device, launch_heads}];
    if (!kernel)
      kernel = ttt::jit::get_kernel(
          {.spec = spec->spec, .device = device, .launch_heads = launch_heads});
    // The runtime keeps every loaded kernel for the life of the process; so does this handle.
    static std::mutex handles_mutex;
    static std::map<const ttt::jit::Kernel*, std::unique_ptr<tttc_kernel>> handles;
    std::lock_guard handles_lock(handles_mutex);
    auto& h = handles[kernel.get()];
    if (!h) h = std::make_unique<tttc_kernel>(tttc_kernel{kernel});
    *out = h.get();
  });
}

int tttc_kernel_memory(const tttc_kernel* kernel, int64_t B, int64_t H, int64_t T,
                       tttc_memory_plan* out) {
  return guarded([&] {
    require(kernel, "kernel");
    require(out, "out");
    const ttt::jit::MemoryPlan m =
        kernel->kernel->memory(static_cast<int>(B), static_cast<int>(H), static_cast<int>(T));
    *out = tttc_memory_plan{m.checkpoints,
                            static_cast<int64_t>(m.state_bytes),
                            static_cast<int64_t>(m.checkpoint_bytes),
                            static_cast<int64_t>(m.forward_workspace_bytes),
                            static_cast<int64_t>(m.backward_workspace_bytes),
                            static_cast<int64_t>(m.forward_total_bytes)};
  });
}

}  // extern "C"

namespace {

ttt::TensorRef to_ref(const tttc_tensor& t, const char* name) {
  if (!t.data) return {};
  if (t.ndim < 1 || t.ndim > 4)
    throw std::invalid_argument(fmt::format("argument '{}': {} dimensions (1 to 4 expected)", name, t.ndim));
  if (t.dtype < TTTC_F32 || t.dtype > TTTC_I32)
    throw std::invalid_argument(fmt::format("argument '{}': unknown dtype code {}", name, t.dtype));
  ttt::TensorRef r;
  r.data = t.data;
  r.dtype = static_cast<ttt::DType>(t.dtype);
  r.shape.assign(t.shape, t.shape + t.ndim);
  r.strides.assign(t.strides, t.strides + t.ndim);
  return r;
}

}  // namespace

extern "C" {

int tttc_kernel_forward(const tttc_kernel* kernel, const tttc_tensor* t, void* workspace,
                        uint64_t workspace_bytes, void* stream) {
  return guarded([&] {
    require(kernel, "kernel");
    require(t, "tensors");
    ttt::ForwardArgs a;
    a.q = to_ref(t[TTTC_FWD_Q], "q"), a.k = to_ref(t[TTTC_FWD_K], "k");
    a.v = to_ref(t[TTTC_FWD_V], "v"), a.lr = to_ref(t[TTTC_FWD_LR], "lr");
    a.tau = to_ref(t[TTTC_FWD_TAU], "tau"), a.gamma = to_ref(t[TTTC_FWD_GAMMA], "gamma");
    a.beta = to_ref(t[TTTC_FWD_BETA], "beta"), a.state0 = to_ref(t[TTTC_FWD_STATE0], "state0");
    a.out = to_ref(t[TTTC_FWD_OUT], "out");
    a.state_final = to_ref(t[TTTC_FWD_STATE_FINAL], "state_final");
    a.checkpoints = to_ref(t[TTTC_FWD_CHECKPOINTS], "checkpoints");
    a.workspace = workspace;
    a.workspace_bytes = workspace_bytes;
    kernel->kernel->forward(a, static_cast<CUstream>(stream));
  });
}

int tttc_kernel_backward(const tttc_kernel* kernel, const tttc_tensor* t, void* workspace,
                         uint64_t workspace_bytes, void* stream) {
  return guarded([&] {
    require(kernel, "kernel");
    require(t, "tensors");
    ttt::BackwardArgs a;
    a.q = to_ref(t[TTTC_BWD_Q], "q"), a.k = to_ref(t[TTTC_BWD_K], "k");
    a.v = to_ref(t[TTTC_BWD_V], "v"), a.lr = to_ref(t[TTTC_BWD_LR], "lr");
    a.tau = to_ref(t[TTTC_BWD_TAU], "tau"), a.gamma = to_ref(t[TTTC_BWD_GAMMA], "gamma");
    a.beta = to_ref(t[TTTC_BWD_BETA], "beta");
    a.checkpoints = to_ref(t[TTTC_BWD_CHECKPOINTS], "checkpoints");
    a.dout = to_ref(t[TTTC_BWD_DOUT], "dout");
    a.dstate_final = to_ref(t[TTTC_BWD_DSTATE_FINAL], "dstate_final");
    a.dq = to_ref(t[TTTC_BWD_DQ], "dq"), a.dk = to_ref(t[TTTC_BWD_DK], "dk");
    a.dv = to_ref(t[TTTC_BWD_DV], "dv"), a.dlr = to_ref(t[TTTC_BWD_DLR], "dlr");
    a.dtau = to_ref(t[TTTC_BWD_DTAU], "dtau"), a.dgamma = to_ref(t[TTTC_BWD_DGAMMA], "dgamma");
    a.dbeta = to_ref(t[TTTC_BWD_DBETA], "dbeta");
    a.dstate0 = to_ref(t[TTTC_BWD_DSTATE0], "dstate0");
    a.workspace = workspace;
    a.workspace_bytes = workspace_bytes;
    kernel->kernel->backward(a, static_cast<CUstream>(stream));
  });
}

// --- decode (docs/decode.md) --------------------------------------------------------------------

}  // extern "C"

namespace {

// Reference inputs for B rows of T tokens; the initial state from `state0` (rows {H} or {B, H}).
ttt::ref::Inputs reference_inputs(const ttt::Spec& s, const Dims& d, bool per_batch_state,
                                  const double* q, const double* k, const double* v,
                                  const double* lr, const double* tau, const double* gamma,
                                  const double* beta, const double* state0) {
  for (auto [p, name] : {std::pair{q, "q"}, {k, "k"}, {v, "v"}, {lr, "lr"}, {tau, "tau"},
                         {gamma, "gamma"}, {beta, "beta"}, {state0, "state0"}})
    require(p, name);
  if (d.B < 1 || d.H < 1 || d.T < 1)
    throw std::invalid_argument(fmt::format(
        "argument 'q': B, H, T = {}, {}, {}: each must be >= 1", d.B, d.H, d.T));
  ttt::ref::Inputs in;
  in.B = static_cast<int>(d.B), in.H = static_cast<int>(d.H), in.T = static_cast<int>(d.T);
  in.q = slice_tokens(q, d, 0, d.T, d.f);
  in.k = slice_tokens(k, d, 0, d.T, d.f);
  in.v = slice_tokens(v, d, 0, d.T, d.f);
  in.lr = slice_tokens(lr, d, 0, d.T, 1);
  in.tau = copy_of(tau, {d.K});
  in.gamma = copy_of(gamma, {d.H, d.f});
  in.beta = copy_of(beta, {d.H, d.f});
  in.per_batch_state = per_batch_state;
  unpack_state(s, state0, per_batch_state ? std::vector{d.B, d.H} : std::vector{d.H}, in.W, in.b);
  return in;
}

void store_decode_state(const ttt::Spec& s, const Dims& d, const ttt::ref::DecodeState& st,
                        double* theta, double* accum, int32_t* pos) {
  pack_state(s, st.W, st.b, d.B * d.H, theta, d.S);
  pack_state(s, st.AW, st.Ab, d.B * d.H, accum, d.S);
  std::copy(st.pos.begin(), st.pos.end(), pos);
}

}  // namespace

extern "C" {

int tttc_reference_decode(const tttc_spec* spec, int64_t B, int64_t H, int64_t T,
                          const double* q, const double* k, const double* v, const double* lr,
                          const double* tau, const double* gamma, const double* beta,
                          double* theta, double* accum, int32_t* pos, double* out) {
  return guarded([&] {
    require(spec, "spec");
    for (auto [p, name] : {std::pair<const void*, const char*>{theta, "theta"},
                           {accum, "accum"}, {pos, "pos"}, {out, "out"}})
      require(p, name);
    const ttt::Spec& s = spec->spec;
    const Dims d{B, H, T, s.head_dim, s.mini_batch, s.state_floats()};
    const ttt::ref::Inputs in =
        reference_inputs(s, d, true, q, k, v, lr, tau, gamma, beta, theta);
    ttt::ref::DecodeState st = ttt::ref::decode_start(s, in);
    unpack_state(s, accum, {B, H}, st.AW, st.Ab);
    for (int64_t i = 0; i < B * H; ++i) {
      if (pos[i] < 0 || pos[i] >= s.mini_batch)
        throw std::invalid_argument(fmt::format(
            "argument 'pos': element {} is {}, outside [0, {})", i, pos[i], s.mini_batch));
      st.pos[i] = pos[i];
    }
    const ttt::ref::Tensor o = ttt::ref::decode(s, in, st);
    std::copy(o.data.begin(), o.data.end(), out);
    store_decode_state(s, d, st, theta, accum, pos);
  });
}

int tttc_reference_prefill(const tttc_spec* spec, int64_t B, int64_t H, int64_t T,
                           int per_batch_state, const double* q, const double* k, const double* v,
                           const double* lr, const double* tau, const double* gamma,
                           const double* beta, const double* state0, double* out, double* theta,
                           double* accum, int32_t* pos) {
  return guarded([&] {
    require(spec, "spec");
    for (auto [p, name] : {std::pair<const void*, const char*>{theta, "theta"},
                           {accum, "accum"}, {pos, "pos"}, {out, "out"}})
      require(p, name);
    const ttt::Spec& s = spec->spec;
    const Dims d{B, H, T, s.head_dim, s.mini_batch, s.state_floats()};
    const ttt::ref::Inputs in =
        reference_inputs(s, d, per_batch_state != 0, q, k, v, lr, tau, gamma, beta, state0);
    ttt::ref::DecodeState st;
    const ttt::ref::Tensor o = ttt::ref::prefill(s, in, st);
    std::copy(o.data.begin(), o.data.end(), out);
    store_decode_state(s, d, st, theta, accum, pos);
  });
}

int tttc_decode_state_bytes(const tttc_spec* spec, int64_t slots, int64_t H, int64_t* out) {
  return guarded([&] {
    require(spec, "spec");
    require(out, "out");
    if (slots < 1 || H < 1)
      throw std::invalid_argument(fmt::format("slots = {}, H = {}: each must be >= 1", slots, H));
    *out = static_cast<int64_t>(
        ttt::jit::decode_state_bytes(spec->spec, static_cast<int>(slots), static_cast<int>(H)));
  });
}

int tttc_kernel_prefill_workspace(const tttc_kernel* kernel, int64_t B, int64_t H, int64_t T,
                                  int64_t* out) {
  return guarded([&] {
    require(kernel, "kernel");
    require(out, "out");
    *out = static_cast<int64_t>(
        kernel->kernel
            ->memory(static_cast<int>(B), static_cast<int>(H), static_cast<int>(T))
            .prefill_workspace_bytes);
  });
}

int tttc_kernel_prefill(const tttc_kernel* kernel, const tttc_tensor* t, void* workspace,
                        uint64_t workspace_bytes, void* stream) {
  return guarded([&] {
    require(kernel, "kernel");
    require(t, "tensors");
    ttt::PrefillArgs a;
    a.q = to_ref(t[TTTC_PRE_Q], "q"), a.k = to_ref(t[TTTC_PRE_K], "k");
    a.v = to_ref(t[TTTC_PRE_V], "v"), a.lr = to_ref(t[TTTC_PRE_LR], "lr");
    a.tau = to_ref(t[TTTC_PRE_TAU], "tau"), a.gamma = to_ref(t[TTTC_PRE_GAMMA], "gamma");
    a.beta = to_ref(t[TTTC_PRE_BETA], "beta"), a.state0 = to_ref(t[TTTC_PRE_STATE0], "state0");
    a.slots = to_ref(t[TTTC_PRE_SLOTS], "slots");
    a.pool = {to_ref(t[TTTC_PRE_THETA], "pool.theta"), to_ref(t[TTTC_PRE_ACCUM], "pool.accum"),
              to_ref(t[TTTC_PRE_POS], "pool.pos")};
    a.out = to_ref(t[TTTC_PRE_OUT], "out");
    a.workspace = workspace;
    a.workspace_bytes = workspace_bytes;
    kernel->kernel->prefill(a, static_cast<CUstream>(stream));
  });
}

int tttc_kernel_decode(const tttc_kernel* kernel, const tttc_tensor* t, void* stream) {
  return guarded([&] {
    require(kernel, "kernel");
    require(t, "tensors");
    ttt::DecodeArgs a;
    a.q = to_ref(t[TTTC_DEC_Q], "q"), a.k = to_ref(t[TTTC_DEC_K], "k");
    a.v = to_ref(t[TTTC_DEC_V], "v"), a.lr = to_ref(t[TTTC_DEC_LR], "lr");
    a.tau = to_ref(t[TTTC_DEC_TAU], "tau"), a.gamma = to_ref(t[TTTC_DEC_GAMMA], "gamma");
    a.beta = to_ref(t[TTTC_DEC_BETA], "beta"), a.slots = to_ref(t[TTTC_DEC_SLOTS], "slots");
    a.pool = {to_ref(t[TTTC_DEC_THETA], "pool.theta"), to_ref(t[TTTC_DEC_ACCUM], "pool.accum"),
              to_ref(t[TTTC_DEC_POS], "pool.pos")};
    a.out = to_ref(t[TTTC_DEC_OUT], "out");
    kernel->kernel->decode(a, static_cast<CUstream>(stream));
  });
}

}  // extern "C"
