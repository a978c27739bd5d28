// kernel_impl.hpp: the loaded implementation behind jit::Kernel (internal to the runtime).
#pragma once

#include <memory>

#include "runtime/jit.hpp"

namespace ttt::jit {

// Loads the build's binaries on device `ordinal` (-1: the default device). Launches run in that
// device's primary context and restore the caller's. Throws driver::NoGpuError without a GPU.
std::shared_ptr<const Kernel> make_loaded_kernel(Build build, int ordinal = -1);

}  // namespace ttt::jit
