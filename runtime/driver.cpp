// driver.cpp: dlopen/dlsym of libcuda.so.1, one-time initialisation, error text, device facts.
#include "runtime/driver.hpp"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>

namespace ttt::driver {
namespace {

struct Loaded {
  Api api;
  DriverStatus status;
};

Loaded load() {
  Loaded l;
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    l.status.reason =
        fmt::format("no CUDA driver: libcuda.so.1 could not be loaded ({})", dlerror());
    return l;
  }
#define TTTC_RESOLVE(fn, symbol)                                               \
  l.api.fn = reinterpret_cast<decltype(&::fn)>(dlsym(lib, symbol));            \
  if (!l.api.fn) {                                                             \
    l.status.reason = fmt::format("CUDA driver too old: it lacks {}", symbol); \
    return l;                                                                  \
  }
  TTTC_DRIVER_FUNCTIONS(TTTC_RESOLVE)
#undef TTTC_RESOLVE
  if (CUresult r = l.api.cuInit(0); r != CUDA_SUCCESS) {
    const char* name = nullptr;
    l.api.cuGetErrorName(r, &name);
    l.status.reason = fmt::format("no usable GPU: cuInit failed ({})", name ? name : "?");
    return l;
  }
  int count = 0;
  if (l.api.cuDeviceGetCount(&count) != CUDA_SUCCESS || count == 0) {
    l.status.reason = "no GPU: the CUDA driver reports no devices";
    return l;
  }
  l.status.available = true;
  return l;
}

const Loaded& loaded() {
  static const Loaded l = load();
  return l;
}

}  // namespace

const DriverStatus& status() { return loaded().status; }

const Api& api() {
  const Loaded& l = loaded();
  if (!l.status.available) throw NoGpuError(l.status.reason);
  return l.api;
}

void check(CUresult result, const char* what) {
  if (result == CUDA_SUCCESS) return;
  const char *name = "?", *text = "?";
  api().cuGetErrorName(result, &name);
  api().cuGetErrorString(result, &text);
  throw CudaError(result, fmt::format("CUDA error in {}: {} ({})", what, name, text));
}

int default_ordinal() {
  static const int ordinal = [] {
    const char* env = std::getenv("TTTC_DEVICE");
    return env ? std::atoi(env) : 0;
  }();
  return ordinal;
}

namespace {

Device open_device(int ordinal) {
  const Api& a = api();
  int count = 0;
  check(a.cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (ordinal < 0 || ordinal >= count)
    throw std::invalid_argument(fmt::format(
        "argument 'device': ordinal {} but the driver reports {} device(s)", ordinal, count));
  Device device;
  device.ordinal = ordinal;
  check(a.cuDeviceGet(&device.handle, ordinal), "cuDeviceGet");
  char name[256] = {};
  check(a.cuDeviceGetName(name, sizeof name, device.handle), "cuDeviceGetName");
  device.name = name;
  int major = 0, minor = 0;
  check(a.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device.handle),
        "cuDeviceGetAttribute");
  check(a.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device.handle),
        "cuDeviceGetAttribute");
  device.arch = fmt::format("sm_{}{}{}", major, minor, major == 9 && minor == 0 ? "a" : "");
  check(a.cuDeviceGetAttribute(&device.sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                               device.handle),
        "cuDeviceGetAttribute");
  check(
      a.cuDeviceGetAttribute(&device.max_shared_optin,
                             CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, device.handle),
      "cuDeviceGetAttribute");
  // Retained once for the process: the primary context lives as long as tttc does.
  check(a.cuDevicePrimaryCtxRetain(&device.context, device.handle), "cuDevicePrimaryCtxRetain");
  return device;
}

}  // namespace

const Device& device(int ordinal) {
  if (ordinal < 0) ordinal = default_ordinal();
  // Entries are never erased, so references stay valid; std::map nodes do not move.
  static std::mutex mutex;
  static std::map<int, Device> devices;
  std::lock_guard lock(mutex);
  if (auto it = devices.find(ordinal); it != devices.end()) return it->second;
  return devices.emplace(ordinal, open_device(ordinal)).first->second;
}

const Device& current_device() {
  const Device& d = device(-1);
  // The primary context is per device but "current" is per thread.
  check(api().cuCtxSetCurrent(d.context), "cuCtxSetCurrent");
  return d;
}

ContextScope::ContextScope(const Device& d) {
  const Api& a = api();
  check(a.cuCtxGetCurrent(&previous_), "cuCtxGetCurrent");
  if (previous_ == d.context) return;
  check(a.cuCtxSetCurrent(d.context), "cuCtxSetCurrent");
  restore_ = previous_ != nullptr;
}

ContextScope::~ContextScope() {
  if (restore_) api().cuCtxSetCurrent(previous_);
}

}  // namespace ttt::driver
