// host_convert.cpp: f32/f16/bf16 encoding; f16 through the npy library's IEEE conversion.
#include "runtime/harness/host_convert.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "runtime/harness/npy.hpp"

namespace ttt {
namespace {

uint16_t float_to_bf16(float x) {
  uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // keep NaN a NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float bf16_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

}  // namespace

std::string encode(const std::vector<double>& values, DType dtype) {
  std::string bytes(values.size() * dtype_bytes(dtype), '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    const float f = static_cast<float>(values[i]);
    if (dtype == DType::f32) {
      std::memcpy(&bytes[4 * i], &f, 4);
    } else {
      const uint16_t h = dtype == DType::f16 ? npy::float_to_half(f) : float_to_bf16(f);
      std::memcpy(&bytes[2 * i], &h, 2);
    }
  }
  return bytes;
}

std::vector<double> decode(const std::string& bytes, DType dtype) {
  const size_t n = bytes.size() / dtype_bytes(dtype);
  std::vector<double> values(n);
  for (size_t i = 0; i < n; ++i) {
    if (dtype == DType::f32) {
      float f;
      std::memcpy(&f, &bytes[4 * i], 4);
      values[i] = f;
    } else {
      uint16_t h;
      std::memcpy(&h, &bytes[2 * i], 2);
      values[i] = dtype == DType::f16 ? npy::half_to_float(h) : bf16_to_float(h);
    }
  }
  return values;
}

void quantize(std::vector<double>& values, DType dtype) {
  values = decode(encode(values, dtype), dtype);
}

}  // namespace ttt
