// nvrtc_backend.cpp: the NVRTC calls, option building and the ptxas resource-report parser.
#include "compiler/nvrtc_backend.hpp"

#include <fmt/format.h>
#include <nvrtc.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "compiler/arch.hpp"
#include "compiler/hash.hpp"
#include "templates/embedded.hpp"

namespace ttt::nvrtc {
namespace {

void check(nvrtcResult r, const char* what) {
  if (r != NVRTC_SUCCESS)
    throw std::runtime_error(fmt::format("NVRTC {} failed: {}", what, nvrtcGetErrorString(r)));
}

int checked_arch_number(const std::string& arch) {  // "sm_90a" -> 90
  const int n = arch_number(arch);
  if (n < 0)
    throw std::invalid_argument(fmt::format("'{}' is not an sm_XY GPU architecture", arch));
  return n;
}

// The NVRTC target for `arch`: itself if NVRTC can emit a CUBIN for it, else PTX for the newest
// architecture it knows (the driver finishes the compile for the newer GPU).
std::pair<std::string, bool> target_for(const std::string& arch) {
  const int wanted = checked_arch_number(arch);
  const auto archs = supported_archs();
  int newest = 0;
  for (const auto& a : archs) {
    const int n = std::stoi(a.substr(3));
    if (n == wanted) return {arch, true};
    newest = std::max(newest, n);
  }
  if (wanted < newest)
    throw std::invalid_argument(fmt::format("NVRTC {} cannot target {} (oldest supported: {})",
                                            version(), arch, archs.empty() ? "?" : archs.front()));
  return {fmt::format("compute_{}", newest), false};
}

long long sum_matches(const std::string& log, const std::regex& re) {
  long long total = 0;
  bool any = false;
  for (std::sregex_iterator it(log.begin(), log.end(), re), end; it != end; ++it) {
    total += std::stoll((*it)[1]);
    any = true;
  }
  return any ? total : -1;
}

void parse_resources(CompileResult& r, const std::string& kernel_name) {
  const std::string& log = r.log;
  // ptxas prints "Compiling entry function 'NAME'" then "Used N registers, ... M bytes smem".
  auto entry = log.find("entry function '" + kernel_name + "'");
  if (entry != std::string::npos) {
    std::smatch m;
    std::string tail = log.substr(entry);
    if (std::regex_search(tail, m, std::regex("Used ([0-9]+) registers")))
      r.registers = std::stoi(m[1]);
    if (std::regex_search(tail, m, std::regex("([0-9]+) bytes smem")))
      r.static_shared_bytes = std::stoll(m[1]);
  }
  long long stores = sum_matches(log, std::regex("([0-9]+) bytes spill stores"));
  long long loads = sum_matches(log, std::regex("([0-9]+) bytes spill loads"));
  if (stores >= 0 || loads >= 0) r.spill_bytes = std::max(0LL, stores) + std::max(0LL, loads);
}

std::string write_failed_source(const std::string& source) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path();
  const fs::path path = dir / fmt::format("tttc-failed-{}.cu", sha256_hex(source).substr(0, 16));
  std::ofstream(path) << source;
  return path.string();
}

}  // namespace

std::string version() {
  int major = 0, minor = 0;
  check(nvrtcVersion(&major, &minor), "version");
  return fmt::format("{}.{}", major, minor);
}

std::vector<std::string> supported_archs() {
  int n = 0;
  check(nvrtcGetNumSupportedArchs(&n), "supported archs");
  std::vector<int> archs(n);
  check(nvrtcGetSupportedArchs(archs.data()), "supported archs");
  std::vector<std::string> names;
  for (int a : archs) names.push_back(fmt::format("sm_{}", a));
  return names;
}

std::string cuda_home() {
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* v = std::getenv(var); v && *v) return v;
  return "/usr/local/cuda";
}

std::vector<std::string> key_options(const std::string& arch) {
  std::vector<std::string> options = {"--gpu-architecture=" + target_for(arch).first, "-std=c++17",
                                      "--ptxas-options=-v"};
  // Source lines in the binaries, for profilers (Nsight Compute's source page): an option, so a
  // part of the cache key, and such kernels never serve a build without it.
  if (const char* v = std::getenv("TTTC_LINEINFO"); v && *v && std::string(v) != "0")
    options.push_back("-lineinfo");
  return options;
}

namespace {

// One NVRTC run for `target` ("sm_90a": a CUBIN, "compute_90a": PTX) with `options`.
CompileResult run_nvrtc(const std::string& source, const std::string& kernel_name,
                        const std::string& arch, const std::string& target,
                        std::vector<std::string> options) {
  CompileResult r;
  const bool cubin = target.rfind("sm_", 0) == 0;
  r.target = target;
  r.binary_kind = cubin ? "cubin" : "ptx";

  std::vector<const char*> names, texts;
  for (const auto& h : templates::headers()) {
    names.push_back(h.name);
    texts.push_back(h.text);
  }
  const auto start = std::chrono::steady_clock::now();
  nvrtcProgram prog;
  check(nvrtcCreateProgram(&prog, source.c_str(), "tttc_kernel.cu", static_cast<int>(names.size()),
                           texts.data(), names.data()),
        "create program");
  const std::string home = cuda_home();
  for (const char* sub : {"/include", "/include/cccl"})
    if (std::filesystem::exists(home + sub)) options.push_back("-I" + home + sub);
  std::vector<const char*> option_ptrs;
  for (const auto& o : options) option_ptrs.push_back(o.c_str());
  const nvrtcResult result =
      nvrtcCompileProgram(prog, static_cast<int>(option_ptrs.size()), option_ptrs.data());
  size_t log_size = 0;
  nvrtcGetProgramLogSize(prog, &log_size);
  r.log.resize(log_size);
  if (log_size) nvrtcGetProgramLog(prog, r.log.data());
  while (!r.log.empty() && r.log.back() == '\0') r.log.pop_back();
  if (result != NVRTC_SUCCESS) {
    nvrtcDestroyProgram(&prog);
    const std::string path = write_failed_source(source);
    throw CompileError(
        fmt::format("NVRTC failed to compile {} for {}: {}\n{}\nsource written to {}", kernel_name,
                    arch, nvrtcGetErrorString(result), r.log, path),
        r.log, path);
  }
  size_t size = 0;
  if (cubin) {
    check(nvrtcGetCUBINSize(prog, &size), "CUBIN size");
    r.binary.resize(size);
    check(nvrtcGetCUBIN(prog, r.binary.data()), "CUBIN");
  } else {
    check(nvrtcGetPTXSize(prog, &size), "PTX size");
    r.binary.resize(size);
    check(nvrtcGetPTX(prog, r.binary.data()), "PTX");
  }
  nvrtcDestroyProgram(&prog);
  r.compile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  parse_resources(r, kernel_name);
  return r;
}

}  // namespace

CompileResult compile(const std::string& source, const std::string& kernel_name,
                      const std::string& arch) {
  return run_nvrtc(source, kernel_name, arch, target_for(arch).first, key_options(arch));
}

CompileResult compile_ptx(const std::string& source, const std::string& kernel_name,
                          const std::string& arch) {
  checked_arch_number(arch);
  const std::string target = "compute_" + arch.substr(3);
  CompileResult r =
      run_nvrtc(source, kernel_name, arch, target, {"--gpu-architecture=" + target, "-std=c++17"});
  while (!r.binary.empty() && r.binary.back() == '\0') r.binary.pop_back();  // text for people
  return r;
}

}  // namespace ttt::nvrtc

namespace ttt::backend {
namespace {

class NvrtcBackend final : public Backend {
 public:
  const char* name() const override { return "nvrtc"; }
  std::string version() const override { return nvrtc::version(); }
  std::vector<std::string> key_options(const std::string& arch) const override {
    return nvrtc::key_options(arch);
  }
  CompileResult compile(const std::string& source, const std::string& kernel_name,
                        const std::string& arch) const override {
    return nvrtc::compile(source, kernel_name, arch);
  }
};

}  // namespace

const Backend& backend_for(const std::string& arch) {
  static const NvrtcBackend nvrtc_backend;
  if (arch.rfind("sm_", 0) == 0) return nvrtc_backend;
  throw std::invalid_argument("no compiler back end targets '" + arch +
                              "' (NVRTC targets sm_XY; hiprtc is not built in)");
}

}  // namespace ttt::backend
