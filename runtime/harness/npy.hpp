// npy.hpp: NumPy .npy reading and writing (format versions 1.0, 2.0, 3.0) for `tttc run`, plus
// the float conversions the runtime needs. IEEE half <-> float conversion is implemented here by
// hand because Debian ships no host-side half library without CUDA (cuda_fp16.h needs nvcc).
// Only little-endian, C-ordered float16/32/64 and int32/64 arrays are supported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ttt::npy {

// Every failure in this module. Errors about a file start with its path ("x.npy: ...").
class NpyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ElementType { f16, f32, f64, i32, i64 };

std::size_t element_size(ElementType type);     // 2, 4, 8, 4, 8
std::string_view dtype_name(ElementType type);  // "float16", "float32", ..., "int64"
std::string_view descr(ElementType type);       // "<f2", "<f4", "<f8", "<i4", "<i8"

// A dense C-ordered array; `bytes` holds numel() * element_size(type) little-endian elements.
struct Array {
  ElementType type = ElementType::f32;
  std::vector<int64_t> shape;  // empty = 0-d (scalar, numel 1)
  std::vector<uint8_t> bytes;
  int64_t numel() const;
};

// Reads a .npy file (or any readable stream, e.g. /dev/stdin). Throws NpyError naming the path and
// the exact problem: cannot open/read, bad magic, unsupported version, malformed header dict,
// unsupported or big-endian dtype, fortran_order True, negative dims, truncated data or trailing
// bytes after the data.
Array read(const std::string& path);

// Writes format 1.0 (2.0 when the header exceeds 65535 bytes) with the data starting at a
// multiple of 64 bytes, as NumPy does. The file appears atomically: it is written to a temporary
// file in the same directory, fsync'ed, then renamed over `path`, so a crash never leaves a
// half-written file at `path`. Throws NpyError if the array is inconsistent or on I/O failure.
void write(const std::string& path, const Array& array);

// Float conversions. Integer arrays are rejected (NpyError): silently turning indices or counts
// into floats hides caller bugs. Narrowing f64 -> f32 rounds to nearest.
std::vector<float> to_f32(const Array& array);
std::vector<double> to_f64(const Array& array);
// Throw NpyError if a dimension is negative or the shape's element count != data.size().
Array from_f32(std::vector<int64_t> shape, const std::vector<float>& data);
Array from_f64(std::vector<int64_t> shape, const std::vector<double>& data);

// "float32[2, 4, 128, 64]"; a 0-d array is "float32[]".
std::string describe(const Array& array);

// IEEE 754 binary16 <-> binary32. half_to_float is exact (subnormals, inf, NaN payloads kept).
// float_to_half rounds to nearest, ties to even; overflow gives inf; NaN stays NaN keeping the top
// payload bits, so half -> float -> half is the identity on all 65536 bit patterns.
float half_to_float(uint16_t half);
uint16_t float_to_half(float value);

}  // namespace ttt::npy
