// kernel_impl.cpp: a Build loaded on the GPU: module load, shared-memory opt-in, argument checks,
// workspace handling and the launches (forward, backward; prefill and decode, docs/decode.md).
#include "runtime/kernel_impl.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "runtime/args.hpp"
#include "runtime/driver.hpp"

namespace ttt::jit {
namespace {

struct LoadedFunction {
  CUmodule module = nullptr;
  CUfunction function = nullptr;
  long long shared_bytes = 0;
  int threads = 0, heads_per_cta = 1, ctas_per_head = 1;
  // The decode kernel's cluster builds: (row, head) items that run at once (0: one CTA group per
  // item). Its launches size the grid to this and each group takes items in turn
  // (templates/tttc/decode.cuh).
  long long resident_items = 0;
};

// Called with the device's context current.
LoadedFunction load(const CompiledKernel& ck) {
  const driver::Api& api = driver::api();
  LoadedFunction f;
  driver::check(api.cuModuleLoadData(&f.module, ck.binary.data()), "cuModuleLoadData");
  driver::check(api.cuModuleGetFunction(&f.function, f.module, ck.generated.kernel_name.c_str()),
                "cuModuleGetFunction");
  f.shared_bytes = ck.generated.shared_bytes;
  f.threads = ck.generated.threads;
  f.heads_per_cta = ck.generated.heads_per_cta;
  f.ctas_per_head = ck.generated.ctas_per_head;
  driver::check(api.cuFuncSetAttribute(f.function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                       static_cast<int>(f.shared_bytes)),
                "cuFuncSetAttribute(max dynamic shared memory)");
  return f;
}

// A second entry point of a module (the query kernel of a query-split forward, the output-path
// kernel of a split backward: codegen::Generated), which stays owned by `main`.
LoadedFunction load_second_entry(const LoadedFunction& main, const std::string& name) {
  const driver::Api& api = driver::api();
  LoadedFunction f = main;
  f.module = nullptr;
  driver::check(api.cuModuleGetFunction(&f.function, main.module, name.c_str()),
                ("cuModuleGetFunction(" + name + ")").c_str());
  driver::check(api.cuFuncSetAttribute(f.function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                       static_cast<int>(f.shared_bytes)),
                ("cuFuncSetAttribute(max dynamic shared memory, " + name + ")").c_str());
  return f;
}

// How many (row, head) items of a cluster build of the decode kernel `f` the device holds at
// once (whole clusters), or 0 for one CTA group per item. Measured on an H200 (docs/decode.md,
// "Grid"): mlp2's clusters of 8 run 1.5-2 % faster as a resident grid taking items in turn;
// linear's single CTAs 3-8 % faster one per item, where the hardware balances the last wave.
long long resident_items(const LoadedFunction& f, const driver::Device& device) {
  const int compute_capability = std::stoi(device.arch.substr(3));  // "sm_90a" -> 90
  if (f.ctas_per_head <= 1 || compute_capability < 90) return 0;    // no clusters (decode.cuh)
  CUlaunchConfig config{};
  config.gridDimX = static_cast<unsigned>(f.ctas_per_head);
  config.gridDimY = config.gridDimZ = 1;
  config.blockDimX = static_cast<unsigned>(f.threads);
  config.blockDimY = config.blockDimZ = 1;
  config.sharedMemBytes = static_cast<unsigned>(f.shared_bytes);
  int clusters = 0;
  driver::check(driver::api().cuOccupancyMaxActiveClusters(&clusters, f.function, &config),
                "cuOccupancyMaxActiveClusters(decode)");
  if (clusters <= 0)
    throw std::runtime_error(fmt::format(
        "decode kernel: no cluster of {} CTAs of {} threads with {} bytes of shared memory fits "
        "on {} ({})",
        f.ctas_per_head, f.threads, f.shared_bytes, device.name, device.arch));
  return clusters;
}

// Sets the f32 tensors to zero with one memset per run of adjacent ones in one allocation (a
// caller that places them side by side, as the Python op does, pays for one launch instead of
// four; a memset must not cross from one allocation into the next, even where they touch).
void zero_floats(std::vector<const TensorRef*> tensors, CUstream stream) {
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorRef* a, const TensorRef* b) { return std::less<>{}(a->data, b->data); });
  const driver::Api& api = driver::api();
  for (size_t i = 0; i < tensors.size();) {
    const auto begin = reinterpret_cast<CUdeviceptr>(tensors[i]->data);
    CUdeviceptr base = 0;
    size_t size = 0;
    driver::check(api.cuMemGetAddressRange(&base, &size, begin), "cuMemGetAddressRange");
    CUdeviceptr end = begin + tensors[i]->numel() * 4;
    for (++i; i < tensors.size() && reinterpret_cast<CUdeviceptr>(tensors[i]->data) == end &&
              end + tensors[i]->numel() * 4 <= base + size;
         ++i)
      end += tensors[i]->numel() * 4;
    driver::check(api.cuMemsetD32Async(begin, 0, (end - begin) / 4, stream), "cuMemsetD32Async");
  }
}

class LoadedKernel final : public Kernel {
 public:
  LoadedKernel(Build b, const driver::Device& device) : build_(std::move(b)), device_(device) {
    driver::ContextScope scope(device_);
    if (build_.forward) {
      forward_ = load(*build_.forward);
      if (const std::string& name = build_.forward->generated.query_kernel_name; !name.empty())
        forward_query_ = load_second_entry(forward_, name);
    }
    if (build_.backward) {
      backward_ = load(*build_.backward);
      if (const std::string& name = build_.backward->generated.output_kernel_name; !name.empty())
        backward_output_ = load_second_entry(backward_, name);
      if (const std::string& name = build_.backward->generated.tokens_kernel_name; !name.empty())
        backward_tokens_ = load_second_entry(backward_, name);
    }
    if (build_.decode) {
      decode_ = load(*build_.decode);
      decode_.resident_items = resident_items(decode_, device_);
    }
  }
  ~LoadedKernel() override {
    if (!driver::status().available) return;
    const driver::Api& api = driver::api();
    // No ContextScope: a destructor must not throw, and at process exit the driver may already
    // be shutting down (then there is nothing left to free).
    CUcontext previous = nullptr;
    if (api.cuCtxGetCurrent(&previous) != CUDA_SUCCESS) return;
    if (previous != device_.context && api.cuCtxSetCurrent(device_.context) != CUDA_SUCCESS) return;
    for (const auto& [stream, buffer] : workspaces_) api.cuMemFree(buffer.ptr);
    for (auto* f : {&forward_, &backward_, &decode_})
      if (f->module) api.cuModuleUnload(f->module);
    if (previous && previous != device_.context) api.cuCtxSetCurrent(previous);
  }

  const Build& build_info() const override { return build_; }
  int device_ordinal() const override { return device_.ordinal; }
  MemoryPlan memory(int B, int H, int T) const override {
    // From the build's own layouts: no code generation on the launch path.
    return memory_plan(build_.spec, B, H, T,
                       build_.forward ? build_.forward->generated.workspace_floats : 0,
                       build_.backward ? build_.backward->generated.workspace_floats : 0,
                       build_.backward ? build_.backward->generated.item_workspace_floats : 0);
  }

  void forward(const ForwardArgs& a, StreamHandle handle) const override {
    const CUstream stream = static_cast<CUstream>(handle);
    if (!forward_.function)
      throw std::invalid_argument("this kernel was built without the forward pass");
    const MemoryPlan plan = memory_for(a.q);
    const args::Problem p = args::check_forward(build_.spec, a, plan.checkpoints);
    driver::ContextScope scope(device_);  // the device's context; the caller's is restored
    tttc::ForwardParams params = args::forward_params(p, a);
    std::unique_lock lock = lock_workspaces(a.workspace);
    params.workspace =
        workspace(a.workspace, a.workspace_bytes, plan.forward_workspace_bytes, stream);
    launch(forward_, &params, p, stream);
    if (forward_query_.function) launch_items(forward_query_, *build_.forward, &params, p, stream);
  }

  void backward(const BackwardArgs& a, StreamHandle handle) const override {
    const CUstream stream = static_cast<CUstream>(handle);
    if (!backward_.function)
      throw std::invalid_argument("this kernel was built without the backward pass");
    const MemoryPlan plan = memory_for(a.q);
    const args::Problem p = args::check_backward(build_.spec, a, plan.checkpoints);
    driver::ContextScope scope(device_);  // before the first driver call below
    tttc::BackwardParams params = args::backward_params(p, a);
    std::unique_lock lock = lock_workspaces(a.workspace);
    params.workspace =
        workspace(a.workspace, a.workspace_bytes, plan.backward_workspace_bytes, stream);
    // Gradients shared by several CTAs are accumulated atomically: start them at zero.
    std::vector<const TensorRef*> zeroed = {&a.dtau, &a.dgamma, &a.dbeta};
    if (p.shared_state) zeroed.push_back(&a.dstate0);
    zero_floats(zeroed, stream);
    // A split backward: the output path over every item first; the chain reads its results.
    if (backward_output_.function)
      launch_items(backward_output_, *build_.backward, &params, p, stream);
    launch(backward_, &params, p, stream);
    // Split in three: the update path's token gradients from the adjoint states the chain saved.
    if (backward_tokens_.function)
      launch_items(backward_tokens_, *build_.backward, &params, p, stream);
  }

  void prefill(const PrefillArgs& a, StreamHandle handle) const override {
    const CUstream stream = static_cast<CUstream>(handle);
    require_decode("prefill");
    const args::DecodeProblem p = args::check_prefill(build_.spec, a);
    const int K = build_.spec.mini_batch, whole = p.T / K * K;
    const MemoryPlan plan = memory(p.B, p.H, p.T);
    driver::ContextScope scope(device_);
    std::unique_lock lock = lock_workspaces(a.workspace);
    char* ws = reinterpret_cast<char*>(
        workspace(a.workspace, a.workspace_bytes, plan.prefill_workspace_bytes, stream));
    const float* init = static_cast<const float*>(a.state0.data);
    bool shared_init = p.shared_state;
    if (whole > 0) {  // the whole mini-batches through the forward kernel
      const PrefillLayout layout = prefill_layout(memory(p.B, p.H, whole), p.B, p.H);
      auto head = [&](const TensorRef& t) {  // the first `whole` tokens, same storage
        TensorRef r = t;
        r.strides = t.effective_strides();
        r.shape[2] = whole;
        return r;
      };
      const int64_t S = build_.spec.state_floats();
      ForwardArgs f{
          .q = head(a.q),
          .k = head(a.k),
          .v = head(a.v),
          .lr = head(a.lr),
          .tau = a.tau,
          .gamma = a.gamma,
          .beta = a.beta,
          .state0 = a.state0,
          .out = head(a.out),
          .state_final = TensorRef::contiguous(ws, DType::f32, {p.B, p.H, S}),
          .checkpoints = TensorRef::contiguous(ws + layout.checkpoints, DType::f32,
                                               {p.B, p.H, memory(p.B, p.H, whole).checkpoints, S}),
          .workspace = ws + layout.workspace,
          .workspace_bytes = plan.prefill_workspace_bytes - layout.workspace};
      forward(f, stream);  // a given workspace: takes no lock
      init = static_cast<const float*>(f.state_final.data);
      shared_init = false;
    }
    // The tail (possibly no tokens) starts every row from `init` and fills its pool slot.
    tttc::DecodeParams params =
        args::decode_params(p, a.q, a.k, a.v, a.lr, a.tau, a.gamma, a.beta, a.slots, a.pool, a.out,
                            whole, init, shared_init);
    launch(decode_, &params, p, stream);
  }

  void decode(const DecodeArgs& a, StreamHandle handle) const override {
    const CUstream stream = static_cast<CUstream>(handle);
    require_decode("decode");
    const args::DecodeProblem p = args::check_decode(build_.spec, a);
    driver::ContextScope scope(device_);
    tttc::DecodeParams params = args::decode_params(p, a.q, a.k, a.v, a.lr, a.tau, a.gamma, a.beta,
                                                    a.slots, a.pool, a.out, 0, nullptr, false);
    launch(decode_, &params, p, stream);
  }

 private:
  void require_decode(const char* what) const {
    if (!decode_.function)
      throw std::invalid_argument(fmt::format(
          "{}: this kernel was built without the decode pass (add \"decode\" to the spec's "
          "passes; the spec must be causal)",
          what));
  }

  MemoryPlan memory_for(const TensorRef& q) const {
    if (q.shape.size() != 4)
      throw std::invalid_argument(
          fmt::format("argument 'q': shape [B, H, T, {}] expected", build_.spec.head_dim));
    return memory(static_cast<int>(q.shape[0]), static_cast<int>(q.shape[1]),
                  static_cast<int>(q.shape[2]));
  }

  // Held from the workspace lookup through the launch when the kernel's own buffers are used, so
  // no other thread can grow (free) a buffer between our lookup and our launch.
  std::unique_lock<std::mutex> lock_workspaces(void* given) const {
    return given ? std::unique_lock<std::mutex>() : std::unique_lock<std::mutex>(workspace_mutex_);
  }

  // The caller's workspace, or this kernel's own buffer for `stream`: launches on one stream run
  // in order, so they can share a buffer; each stream gets its own so that concurrent streams
  // never share scratch memory. The per-thread default stream is one handle for many streams, so
  // it is keyed by thread too. A buffer only grows, after the stream's earlier work is done.
  // Called with workspace_mutex_ held (lock_workspaces) when `given` is null.
  float* workspace(void* given, size_t given_bytes, size_t needed, CUstream stream) const {
    if (needed == 0) return nullptr;
    if (given) {
      if (given_bytes < needed)
        throw std::invalid_argument(
            fmt::format("argument 'workspace': {} bytes given, {} needed (see Kernel::memory)",
                        given_bytes, needed));
      return static_cast<float*>(given);
    }
    const auto key = std::pair{
        stream, stream == CU_STREAM_PER_THREAD ? std::this_thread::get_id() : std::thread::id()};
    Buffer& buffer = workspaces_[key];
    if (buffer.bytes < needed) {
      const driver::Api& api = driver::api();
      if (buffer.ptr) {
        driver::check(api.cuStreamSynchronize(stream),
                      "cuStreamSynchronize(before growing the workspace)");
        driver::check(api.cuMemFree(buffer.ptr), "cuMemFree");
      }
      buffer = Buffer{};
      driver::check(api.cuMemAlloc(&buffer.ptr, needed), "cuMemAlloc(workspace)");
      buffer.bytes = needed;
    }
    return reinterpret_cast<float*>(buffer.ptr);
  }

  void launch(const LoadedFunction& f, void* params, const args::Problem& p,
              CUstream stream) const {
    // The decode kernel's clusters are compiled in (__cluster_dims__): a plain launch of a grid
    // that is a multiple of the cluster size.
    long long items = 1LL * p.B * p.H;
    if (f.resident_items > 0) items = std::min(items, f.resident_items);
    launch_ctas(f, params, (items * f.ctas_per_head + f.heads_per_cta - 1) / f.heads_per_cta,
                stream);
  }
  // A kernel over every (b, h, mini-batch) item, a run of items_per_team per team.
  void launch_items(const LoadedFunction& f, const CompiledKernel& ck, void* params,
                    const args::Problem& p, CUstream stream) const {
    const long long steps = (p.T + build_.spec.mini_batch - 1) / build_.spec.mini_batch;
    const long long per_team = ck.generated.items_per_team;
    const long long teams = (1LL * p.B * p.H * steps + per_team - 1) / per_team;
    launch_ctas(f, params, (teams + f.heads_per_cta - 1) / f.heads_per_cta, stream);
  }
  void launch_ctas(const LoadedFunction& f, void* params, long long ctas, CUstream stream) const {
    if (ctas > 0x7fffffffLL)
      throw std::invalid_argument(fmt::format("launch of {} CTAs: more than a grid holds", ctas));
    void* kernel_args[] = {params};
    driver::check(driver::api().cuLaunchKernel(f.function, static_cast<unsigned>(ctas), 1, 1,
                                               static_cast<unsigned>(f.threads), 1, 1,
                                               static_cast<unsigned>(f.shared_bytes), stream,
                                               kernel_args, nullptr),
                  "cuLaunchKernel");
  }

  Build build_;
  const driver::Device& device_;
  LoadedFunction forward_, forward_query_, backward_, backward_output_, backward_tokens_, decode_;
  struct Buffer {
    CUdeviceptr ptr = 0;
    size_t bytes = 0;
  };
  mutable std::mutex workspace_mutex_;
  mutable std::map<std::pair<CUstream, std::thread::id>, Buffer> workspaces_;
};

}  // namespace

std::shared_ptr<const Kernel> make_loaded_kernel(Build build, int ordinal) {
  driver::api();  // throws NoGpuError with the reason when there is no GPU
  return std::make_shared<LoadedKernel>(std::move(build), driver::device(ordinal));
}

}  // namespace ttt::jit
