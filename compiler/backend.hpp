// backend.hpp: the seam between tttc and a run-time compiler: generated kernel source -> a binary
// the driver loads, for one GPU architecture. NVRTC (CUDA, "sm_*" archs) is the only back end
// today; a hiprtc back end (AMD, "gfx*" archs) would be a second implementation that
// backend_for() returns for its archs, with nothing above this header changing.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace ttt::backend {

struct CompileResult {
  std::string binary;       // CUBIN bytes or PTX text
  std::string binary_kind;  // "cubin" or "ptx"
  std::string target;       // what the compiler was asked for: "sm_90a" or "compute_120"
  double compile_ms = 0;
  int registers = -1;  // of the entry function, from the assembler (-1 if not reported)
  long long static_shared_bytes = -1;
  long long spill_bytes = -1;  // spill stores + loads over all functions
  std::string log;
};

class CompileError : public std::runtime_error {
 public:
  CompileError(const std::string& message, std::string log, std::string source_path)
      : std::runtime_error(message), log(std::move(log)), source_path(std::move(source_path)) {}
  std::string log, source_path;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;     // "nvrtc"
  virtual std::string version() const = 0;  // part of every cache key and tuning fingerprint
  // The options that change the binary for `arch` (recorded in the cache key).
  virtual std::vector<std::string> key_options(const std::string& arch) const = 0;
  // Compiles `source` (which includes only the embedded template headers) for `arch`.
  virtual CompileResult compile(const std::string& source, const std::string& kernel_name,
                                const std::string& arch) const = 0;
};

// The back end that targets `arch`; throws std::invalid_argument when none does.
const Backend& backend_for(const std::string& arch);

}  // namespace ttt::backend
