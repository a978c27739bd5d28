// activation.cpp: gelu_tanh (ttt-math.md), relu and silu with exact first and second derivatives.
#include "compiler/reference/activation.hpp"

#include <cmath>

namespace ttt::ref {
namespace {

// gelu(x) = 0.5 x (1 + tanh(c (x + 0.044715 x^3))) with the exact c = sqrt(2 / pi), as
// PyTorch's tanh GELU computes it (ttt-math.md's 0.79788456 is c rounded: 1e-9 relative off).
// k = 3 * 0.044715 * c is derived, so act' stays the exact derivative of act.
const double kGeluC = std::sqrt(2.0 / 3.14159265358979323846);
constexpr double kGeluA = 0.044715;
const double kGeluK = 3.0 * kGeluA * kGeluC;

}  // namespace

ActValues act_all(Activation a, double x) {
  switch (a) {
    case Activation::gelu_tanh: {
      // With u = c (x + a x^3), p = du/dx = c + k x^2, t = tanh(u):
      // act = 0.5 x (1 + t), act' = 0.5 (1 + t) + 0.5 x (1 - t^2) p,
      // act'' = (1 - t^2) (p - x t p^2 + k x^2).
      const double t = std::tanh(kGeluC * x * (1.0 + kGeluA * x * x));
      const double p = kGeluC + kGeluK * x * x;
      const double sech2 = 1.0 - t * t;
      return {0.5 * x * (1.0 + t), 0.5 * x * sech2 * p + 0.5 * (1.0 + t),
              sech2 * (p - x * t * p * p + kGeluK * x * x)};
    }
    case Activation::relu:
      return {x > 0.0 ? x : 0.0, x > 0.0 ? 1.0 : 0.0, 0.0};
    case Activation::silu: {
      const double s = 1.0 / (1.0 + std::exp(-x));
      return {x * s, s * (1.0 + x * (1.0 - s)), s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s))};
    }
  }
  return {0.0, 0.0, 0.0};
}

double act(Activation a, double x) { return act_all(a, x).f; }
double act_d1(Activation a, double x) { return act_all(a, x).d1; }

}  // namespace ttt::ref
