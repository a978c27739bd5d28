// device_buffer.hpp: an owning device allocation (RAII over cuMemAlloc/cuMemFree) with the copies
// and poisoning that tools and tests need.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/driver.hpp"

namespace ttt {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes) driver::check(driver::api().cuMemAlloc(&ptr_, bytes), "cuMemAlloc");
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
    o.ptr_ = 0, o.bytes_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  ~DeviceBuffer() {
    if (ptr_) driver::api().cuMemFree(ptr_);
  }

  static DeviceBuffer from_host(const std::string& bytes) {
    DeviceBuffer b(bytes.size());
    b.upload(bytes);
    return b;
  }
  void upload(const std::string& bytes) {
    if (bytes.size() != bytes_) throw std::logic_error("DeviceBuffer::upload: size mismatch");
    if (bytes_)
      driver::check(driver::api().cuMemcpyHtoD(ptr_, bytes.data(), bytes_), "cuMemcpyHtoD");
  }
  std::string download() const {
    std::string bytes(bytes_, '\0');
    if (bytes_)
      driver::check(driver::api().cuMemcpyDtoH(bytes.data(), ptr_, bytes_), "cuMemcpyDtoH");
    return bytes;
  }
  // Fills with 0xFF bytes: NaN in f32, f16 and bf16, so an element a kernel forgot to write fails
  // every comparison.
  void poison() {
    if (bytes_) driver::check(driver::api().cuMemsetD8(ptr_, 0xFF, bytes_), "cuMemsetD8");
  }
  void* data() const { return reinterpret_cast<void*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  CUdeviceptr ptr_ = 0;
  size_t bytes_ = 0;
};

}  // namespace ttt
