// jit.hpp: the public C++ API. get_kernel(config) returns a ready kernel object for a spec:
// generated, compiled with NVRTC (or loaded from the content-addressed cache), and loaded on the
// GPU. It is thread-safe, and concurrent calls for one configuration compile once. build() does
// the same without a GPU (ahead-of-time `tttc compile`).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "compiler/codegen.hpp"
#include "compiler/schedule.hpp"
#include "compiler/spec.hpp"
#include "runtime/tensor.hpp"

namespace ttt::jit {

// The stream a launch is queued on: a CUstream or cudaStream_t (both convert implicitly), or
// another back end's stream type; opaque here so this header needs no vendor header. nullptr is
// the default stream.
using StreamHandle = void*;

struct KernelConfig {
  Spec spec;
  std::optional<Schedule> schedule;  // default: the heuristic for the target
  std::string arch;                  // "" = the GPU present; else e.g. "sm_80", "sm_90a"
  // CUDA device ordinal that get_kernel loads on (and whose arch "" means); -1 = TTTC_DEVICE,
  // default 0. get_kernel keeps one loaded kernel per device.
  int device = -1;
  // B*H of the launches this kernel will serve (0: unknown): picks the launch bucket of a tuned
  // record (docs/tuning.md). Without a schedule, a tuned record for this device comes before the
  // heuristic (TTTC_AUTOTUNE); under TTTC_AUTOTUNE=on a bucket without a record is tuned on first
  // use, which needs this launch size (0: never tuned).
  long long launch_heads = 0;
};

// One compiled kernel (forward or backward) and how it was obtained.
struct CompiledKernel {
  codegen::Generated generated;
  std::string key;
  std::string cache;  // "hit" (memory or disk) or "miss" (compiled now)
  std::string binary, binary_kind;
  double compile_ms = 0;  // of the NVRTC compile that produced the binary (0 when unknown)
  int registers = -1, spill_bytes = -1;
};

struct Build {
  Spec spec;
  Schedule schedule;
  std::string schedule_source;  // "explicit", "tuned" or "heuristic"
  std::string schedule_why;     // for "tuned" and "heuristic": the record used, or why none
  Target target;
  std::optional<CompiledKernel> forward, backward;  // per the spec's passes
  std::optional<CompiledKernel> decode;             // when the passes name "decode"
};

// What the kernels are compiled for: `arch`'s documented limits, or ("") device `ordinal`'s.
Target target_for(const std::string& arch, int ordinal);

// Generates and compiles (or loads from the cache) every pass of the spec. No GPU needed.
// Throws std::invalid_argument for a schedule that cannot run on the target (with the reasons),
// nvrtc::CompileError when NVRTC rejects the source.
Build build(const KernelConfig& config);

// Memory a call needs for (B, H, T), in bytes.
struct MemoryPlan {
  int checkpoints = 0;                  // ceil(ceil(T / K) / checkpoint_group)
  size_t state_bytes = 0;               // one head's state (f32)
  size_t checkpoint_bytes = 0;          // B*H*checkpoints*state: saved by the forward
  size_t forward_workspace_bytes = 0;   // scratch of the forward kernel
  size_t backward_workspace_bytes = 0;  // scratch of the backward kernel
  size_t forward_total_bytes = 0;       // out + final state + checkpoints + workspace
  // Prefill's scratch (docs/decode.md): the forward's final state, checkpoints and workspace for
  // the prompt's whole mini-batches, floor(T / K) K tokens.
  size_t prefill_workspace_bytes = 0;
};
MemoryPlan memory_plan(const Spec& spec, const Schedule& schedule, int B, int H, int T);
// The same from the kernels' workspace sizes per (b, h) (codegen::Generated::workspace_floats)
// and, for a split backward, per (b, h, mini-batch) (Generated::item_workspace_floats).
MemoryPlan memory_plan(const Spec& spec, int B, int H, int T, long long forward_workspace_floats,
                       long long backward_workspace_floats, long long backward_item_floats = 0);

// Bytes of a decode state pool of `slots` slots (docs/decode.md): theta and accum f32
// [slots, H, S] and pos i32 [slots, H].
size_t decode_state_bytes(const Spec& spec, int slots, int H);

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual const Build& build_info() const = 0;
  // The CUDA device ordinal the kernel is loaded on (its launches run in that device's primary
  // context; memory for its arguments must live there).
  virtual int device_ordinal() const = 0;
  virtual MemoryPlan memory(int B, int H, int T) const = 0;
  // Validates every argument (shape, dtype, strides, alignment, null) and launches on `stream`.
  // A null workspace makes the kernel use (and grow) its own buffer, one per stream.
  virtual void forward(const ForwardArgs& args, StreamHandle stream = nullptr) const = 0;
  virtual void backward(const BackwardArgs& args, StreamHandle stream = nullptr) const = 0;
  // Generation (docs/decode.md; the spec's passes must name "decode"). prefill runs the forward
  // on the prompt's whole mini-batches and decode steps on the rest, and leaves each row's decode
  // state in pool slot slots[b]; a null workspace uses the kernel's own, as forward does.
  // decode advances every row by T tokens (T = 1: one step) from its pool slot: one launch, no
  // allocation, no host synchronisation, so it can be captured in a CUDA graph and replayed.
  virtual void prefill(const PrefillArgs& args, StreamHandle stream = nullptr) const = 0;
  virtual void decode(const DecodeArgs& args, StreamHandle stream = nullptr) const = 0;
};

std::shared_ptr<const Kernel> get_kernel(const KernelConfig& config);

}  // namespace ttt::jit
