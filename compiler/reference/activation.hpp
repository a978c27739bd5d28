// activation.hpp: the inner model's activation and its first two derivatives, per scalar.
// act' enters the inner gradient G, so the outer backward needs act'' as well.
#pragma once

#include "compiler/spec.hpp"

namespace ttt::ref {

double act(Activation a, double x);
double act_d1(Activation a, double x);  // d act / dx
double act_d2(Activation a, double x);  // d^2 act / dx^2

}  // namespace ttt::ref
