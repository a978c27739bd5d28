// activation.hpp: the inner model's activation and its first two derivatives, per scalar.
// act' enters the inner gradient G, so the outer backward needs act'' as well.
#pragma once

#include "compiler/spec.hpp"

namespace ttt::ref {

double act(Activation a, double x);
double act_d1(Activation a, double x);  // d act / dx

// All three at once, sharing the one tanh / exp they need (the reference's hot spot).
struct ActValues {
  double f, d1, d2;
};
ActValues act_all(Activation a, double x);

}  // namespace ttt::ref
