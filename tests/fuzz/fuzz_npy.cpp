// fuzz_npy.cpp: libFuzzer target for the .npy reader. The bytes are served as a file through a
// memfd (npy::read takes a path); any input must either read or throw NpyError, and an array
// that reads converts without error.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/harness/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = ::memfd_create("fuzz.npy", MFD_CLOEXEC);
  if (fd < 0) __builtin_trap();
  for (size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) __builtin_trap();
    done += static_cast<size_t>(n);
  }
  try {
    const ttt::npy::Array a = ttt::npy::read("/proc/self/fd/" + std::to_string(fd));
    using ttt::npy::ElementType;
    if (a.type == ElementType::f16 || a.type == ElementType::f32 || a.type == ElementType::f64)
      (void)ttt::npy::to_f64(a);
  } catch (const ttt::npy::NpyError&) {
  }
  ::close(fd);
  return 0;
}
