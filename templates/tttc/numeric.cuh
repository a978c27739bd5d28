// numeric.cuh: element types (f32, f16, bf16 as raw bits), exact conversions through PTX and bit
// arithmetic (no cuda_fp16.h / cuda_bf16.h: they slow NVRTC down), and the inner model's
// activations with their first and second derivatives.
#pragma once

namespace tttc {

struct half_t {
  unsigned short bits;
};
struct bf16_t {
  unsigned short bits;
};

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(half_t x) {
  float f;
  asm("{ .reg .b16 h; mov.b16 h, %1; cvt.f32.f16 %0, h; }" : "=f"(f) : "h"(x.bits));
  return f;
}
__device__ __forceinline__ float to_float(bf16_t x) {
  return __uint_as_float(static_cast<unsigned int>(x.bits) << 16);
}

template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ half_t from_float<half_t>(float x) {
  half_t h;
  asm("{ .reg .b16 r; cvt.rn.f16.f32 r, %1; mov.b16 %0, r; }" : "=h"(h.bits) : "f"(x));
  return h;
}
template <>
__device__ __forceinline__ bf16_t from_float<bf16_t>(float x) {
  bf16_t b;
#if __CUDA_ARCH__ >= 800
  // One instruction; round to nearest even as below, a NaN stays a NaN (the canonical one).
  asm("{ .reg .b16 r; cvt.rn.bf16.f32 r, %1; mov.b16 %0, r; }" : "=h"(b.bits) : "f"(x));
#else
  unsigned int u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays NaN (rounding could make it infinity)
    b.bits = 0x7fc0;
    return b;
  }
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  b.bits = static_cast<unsigned short>(u >> 16);
#endif
  return b;
}

// The ids are those of the host table compiler/activation.hpp (generated code passes the id);
// these labels are for reading. tests/compiler checks that every row of the table has a case
// below and that each label carries its row's id.
enum Activation { kGeluTanh = 0, kRelu = 1, kSilu = 2 };

template <int Act>
constexpr bool kNoDeviceActivation = false;

// act, act' and act'' (Order 0, 1, 2). The forward uses act and act' (in the inner gradient);
// the backward differentiates act' again.
template <int Act, int Order>
__device__ __forceinline__ float activation(float x) {
  if constexpr (Act == kGeluTanh) {
    const float c = 0.7978845608028654f,
                a = 0.044715f;  // c = sqrt(2 / pi), exactly as f32 holds it
    const float t = tanhf(c * (x + a * x * x * x));
    if (Order == 0) return 0.5f * x * (1.f + t);
    const float u = c * (1.f + 3.f * a * x * x);  // d(inner)/dx
    const float sech2 = 1.f - t * t;
    if (Order == 1) return 0.5f * (1.f + t) + 0.5f * x * sech2 * u;
    const float du = 6.f * c * a * x;
    return sech2 * u + 0.5f * x * (-2.f * t * sech2 * u * u + sech2 * du);
  } else if constexpr (Act == kRelu) {
    if (Order == 0) return x > 0.f ? x : 0.f;
    if (Order == 1) return x > 0.f ? 1.f : 0.f;
    return 0.f;
  } else if constexpr (Act == kSilu) {
    const float s = 1.f / (1.f + expf(-x));
    if (Order == 0) return x * s;
    const float ds = s * (1.f - s);
    if (Order == 1) return s + x * ds;
    return 2.f * ds + x * ds * (1.f - 2.f * s);
  } else {
    static_assert(kNoDeviceActivation<Act>, "tttc::activation: no device formula for this id");
    return 0.f;
  }
}

}  // namespace tttc
