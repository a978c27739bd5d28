// host_convert.hpp: host-side conversion between double values and the bytes of a tensor in a
// spec dtype (f32, f16, bf16), with the same rounding the kernels use (nearest even).
#pragma once

#include <string>
#include <vector>

#include "compiler/spec.hpp"

namespace ttt {

std::string encode(const std::vector<double>& values, DType dtype);
std::vector<double> decode(const std::string& bytes, DType dtype);
// Rounds each value to the nearest representable value of `dtype` (what a kernel will see).
void quantize(std::vector<double>& values, DType dtype);

}  // namespace ttt
