// nvrtc_backend.hpp: generated CUDA source -> CUBIN (or PTX for an arch NVRTC cannot target) with
// NVRTC, reporting compile time, registers, shared memory and spills. Include paths come from the
// toolkit location (CUDA_HOME, CUDA_PATH, else the standard /usr/local/cuda), never a fixed path,
// and are not part of the cache key: the kernels include only the embedded templates. The
// functions below are the NVRTC back end (backend.hpp) and what only it offers (PTX for people).
#pragma once

#include <string>
#include <vector>

#include "compiler/backend.hpp"

namespace ttt::nvrtc {

using backend::CompileError;
using backend::CompileResult;

std::string version();                       // e.g. "13.0"
std::vector<std::string> supported_archs();  // e.g. {"sm_75", ..., "sm_120"}
// The options that change the binary for `arch` (recorded in the cache key).
std::vector<std::string> key_options(const std::string& arch);
// Compiles `source` (which includes only the embedded template headers) for `arch` ("sm_90a"):
// a CUBIN where NVRTC can target the arch, else PTX for its newest one.
CompileResult compile(const std::string& source, const std::string& kernel_name,
                      const std::string& arch);
// The PTX of `source` for the virtual arch of `arch` ("sm_90a" -> "compute_90a"), for people and
// tests that read the instructions (no ptxas, so no resource figures).
CompileResult compile_ptx(const std::string& source, const std::string& kernel_name,
                          const std::string& arch);
std::string cuda_home();

}  // namespace ttt::nvrtc
