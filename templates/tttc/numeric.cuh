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

// 1 / x to about 1 ulp in one MUFU instruction (IEEE division adds a slow-path branch).
__device__ __forceinline__ float rcp_approx(float x) {
#ifdef TTTC_DECODE_HOST  // the host test shim (tests/decode_host): g++ has no PTX
  return 1.f / x;
#else
  float r;
  asm("rcp.approx.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
#endif
}

// s = 1 / (1 + e^-v) and 1 - s, each to a few ulp: e s where s is near 1 (1 - s would cancel),
// else 1 - s (e may be infinite there). __expf is ex2.approx of v log2(e): its error grows with
// |v| as v log2(e) rounds, a few ulp over the range where s is not 0 or 1.
struct Sigmoid {
  float s, one_minus_s;
};
__device__ __forceinline__ Sigmoid sigmoid(float v) {
  const float e = __expf(-v), s = rcp_approx(1.f + e);
  return {s, e < 1.f ? e * s : 1.f - s};
}

// The ids are those of the host table compiler/activation.hpp (generated code passes the id);
// these labels are for reading. tests/compiler checks that every row of the table has a case
// below and that each label carries its row's id.
enum Activation { kGeluTanh = 0, kRelu = 1, kSilu = 2 };

template <int Act>
constexpr bool kNoDeviceActivation = false;

// act, act' and act'' (Order 0, 1, 2). The forward uses act and act' (in the inner gradient);
// the backward differentiates act' again. GELU goes through one sigmoid by default:
// 0.5 (1 + tanh(w)) = sigmoid(2w), one exponential and one MUFU reciprocal instead of tanhf, and
// 1 - tanh^2 = 4 s (1 - s) without tanh's cancellation near +-1 (mlp2's tile forward 3.8 % faster
// on the H200). kTanhForm keeps tanhf: the decode kernel's loops hold many activations at once,
// and at its 128-register cap mlp4-d128's decode spilled 8 bytes with the sigmoid form.
template <int Act, int Order, bool kTanhForm = false>
__device__ __forceinline__ float activation(float x) {
  if constexpr (Act == kGeluTanh) {
    const float c = 0.7978845608028654f,
                a = 0.044715f;  // c = sqrt(2 / pi), exactly as f32 holds it
    const float w = c * (x + a * x * x * x);
    float half_one_plus_t, sech2, t;  // 0.5 (1 + tanh w), 1 - tanh^2 w, tanh w
    if constexpr (kTanhForm) {
      t = tanhf(w);
      half_one_plus_t = 0.5f * (1.f + t);
      sech2 = 1.f - t * t;
    } else {
      const Sigmoid sg = sigmoid(2.f * w);
      half_one_plus_t = sg.s;
      sech2 = 4.f * sg.s * sg.one_minus_s;
      t = sg.s - sg.one_minus_s;
    }
    if (Order == 0) return x * half_one_plus_t;
    const float u = c * (1.f + 3.f * a * x * x);  // d(inner)/dx
    if (Order == 1) return half_one_plus_t + 0.5f * x * sech2 * u;
    const float du = 6.f * c * a * x;
    return sech2 * u + 0.5f * x * (-2.f * t * sech2 * u * u + sech2 * du);
  } else if constexpr (Act == kRelu) {
    if (Order == 0) return x > 0.f ? x : 0.f;
    if (Order == 1) return x > 0.f ? 1.f : 0.f;
    return 0.f;
  } else if constexpr (Act == kSilu) {
    const Sigmoid sg = sigmoid(x);
    if (Order == 0) return x * sg.s;
    const float ds = sg.s * sg.one_minus_s;
    if (Order == 1) return sg.s + x * ds;
    return 2.f * ds + x * ds * (sg.one_minus_s - sg.s);
  } else {
    static_assert(kNoDeviceActivation<Act>, "tttc::activation: no device formula for this id");
    return 0.f;
  }
}

}  // namespace tttc
