// kernel_impl.hpp: the loaded implementation behind jit::Kernel (internal to the runtime).
#pragma once

#include <memory>

#include "runtime/jit.hpp"

namespace ttt::jit {

// Where prefill's scratch puts the forward's final state (at 0), its checkpoints and its
// workspace, in bytes, from the memory plan of the prompt's whole mini-batches.
struct PrefillLayout {
  size_t checkpoints = 0, workspace = 0, total = 0;
};
PrefillLayout prefill_layout(const MemoryPlan& whole, int B, int H);

// Loads the build's binaries on device `ordinal` (-1: the default device). Launches run in that
// device's primary context and restore the caller's. Throws driver::NoGpuError without a GPU.
std::shared_ptr<const Kernel> make_loaded_kernel(Build build, int ordinal = -1);

}  // namespace ttt::jit
