// kernel_impl.hpp: the loaded implementation behind jit::Kernel (internal to the runtime).
#pragma once

#include <memory>

#include "runtime/jit.hpp"

namespace ttt::jit {

// Loads the build's binaries on the current GPU. Throws driver::NoGpuError without a GPU.
std::shared_ptr<const Kernel> make_loaded_kernel(Build build);

}  // namespace ttt::jit
