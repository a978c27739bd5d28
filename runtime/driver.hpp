// driver.hpp: the CUDA driver API, loaded at run time with dlopen("libcuda.so.1") so that every
// tool and test starts on a machine without a GPU or driver, where "no GPU" is a status
// (DriverStatus), never a crash or a link error.
#pragma once

#include <cuda.h>

#include <stdexcept>
#include <string>

namespace ttt::driver {

// Every driver entry point tttc uses, resolved once.
struct Api {
#define TTTC_DRIVER_FUNCTIONS(X)                                  \
  X(cuInit, "cuInit")                                             \
  X(cuDriverGetVersion, "cuDriverGetVersion")                     \
  X(cuDeviceGetCount, "cuDeviceGetCount")                         \
  X(cuDeviceGet, "cuDeviceGet")                                   \
  X(cuDeviceGetName, "cuDeviceGetName")                           \
  X(cuDeviceGetAttribute, "cuDeviceGetAttribute")                 \
  X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain")         \
  X(cuCtxSetCurrent, "cuCtxSetCurrent")                           \
  X(cuCtxGetCurrent, "cuCtxGetCurrent")                           \
  X(cuCtxSynchronize, "cuCtxSynchronize")                         \
  X(cuModuleLoadData, "cuModuleLoadData")                         \
  X(cuModuleUnload, "cuModuleUnload")                             \
  X(cuModuleGetFunction, "cuModuleGetFunction")                   \
  X(cuFuncSetAttribute, "cuFuncSetAttribute")                     \
  X(cuFuncGetAttribute, "cuFuncGetAttribute")                     \
  X(cuLaunchKernel, "cuLaunchKernel")                             \
  X(cuOccupancyMaxActiveClusters, "cuOccupancyMaxActiveClusters") \
  X(cuMemAlloc, "cuMemAlloc_v2")                                  \
  X(cuMemFree, "cuMemFree_v2")                                    \
  X(cuMemcpyHtoD, "cuMemcpyHtoD_v2")                              \
  X(cuMemcpyDtoH, "cuMemcpyDtoH_v2")                              \
  X(cuMemsetD32Async, "cuMemsetD32Async")                         \
  X(cuMemGetAddressRange, "cuMemGetAddressRange_v2")              \
  X(cuMemsetD8, "cuMemsetD8_v2")                                  \
  X(cuMemGetInfo, "cuMemGetInfo_v2")                              \
  X(cuStreamSynchronize, "cuStreamSynchronize")                   \
  X(cuStreamCreate, "cuStreamCreate")                             \
  X(cuStreamDestroy, "cuStreamDestroy_v2")                        \
  X(cuStreamBeginCapture, "cuStreamBeginCapture_v2")              \
  X(cuStreamEndCapture, "cuStreamEndCapture")                     \
  X(cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags")   \
  X(cuGraphLaunch, "cuGraphLaunch")                               \
  X(cuGraphExecDestroy, "cuGraphExecDestroy")                     \
  X(cuGraphDestroy, "cuGraphDestroy")                             \
  X(cuMemcpyDtoD, "cuMemcpyDtoD_v2")                              \
  X(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2")                    \
  X(cuEventCreate, "cuEventCreate")                               \
  X(cuEventRecord, "cuEventRecord")                               \
  X(cuEventSynchronize, "cuEventSynchronize")                     \
  X(cuEventElapsedTime, "cuEventElapsedTime")                     \
  X(cuEventDestroy, "cuEventDestroy_v2")                          \
  X(cuGetErrorName, "cuGetErrorName")                             \
  X(cuGetErrorString, "cuGetErrorString")
#define TTTC_DECLARE(fn, symbol) decltype(&::fn) fn = nullptr;
  TTTC_DRIVER_FUNCTIONS(TTTC_DECLARE)
#undef TTTC_DECLARE
};

struct DriverStatus {
  bool available = false;  // driver loaded, initialised, and at least one GPU present
  std::string reason;      // why not, in words (e.g. "libcuda.so.1 not found: ...")
};

// Loads and initialises the driver once per process; never throws.
const DriverStatus& status();
// The loaded API; throws NoGpuError when status() is not available.
const Api& api();

class NoGpuError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class CudaError : public std::runtime_error {
 public:
  CudaError(CUresult code, const std::string& message) : std::runtime_error(message), code(code) {}
  CUresult code;
};

// Throws CudaError naming `what` and the driver's error name and text.
void check(CUresult result, const char* what);

struct Device {
  int ordinal = 0;
  CUdevice handle = 0;
  CUcontext context = nullptr;  // its primary context, retained once per process
  std::string name;
  std::string arch;  // "sm_90a" on Hopper (wgmma-capable), else "sm_XY"
  int sm_count = 0;
  int max_shared_optin = 0;
};

// The default ordinal: TTTC_DEVICE, else 0 (read once per process).
int default_ordinal();

// Device `ordinal` (-1: default_ordinal()), its facts read and its primary context retained once
// per process. Leaves the calling thread's current context alone. Throws std::invalid_argument
// for an ordinal the driver does not have.
const Device& device(int ordinal);

// Device default_ordinal() with its primary context made current on the calling thread.
const Device& current_device();

// Makes `d`'s primary context current for the scope and restores the caller's on exit. A thread
// that had no current context keeps `d`'s (so later driver calls of the thread work, as with
// current_device()). No driver call when the context is already current besides the query.
class ContextScope {
 public:
  explicit ContextScope(const Device& d);
  ~ContextScope();
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  CUcontext previous_ = nullptr;
  bool restore_ = false;
};

}  // namespace ttt::driver
