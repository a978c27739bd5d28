// token.hpp: the inner model on ONE token, in plain loops (no tape): f_theta(x), the LayerNorm,
// and the per-token inner gradient at a given state. Shared by the token-by-token primal form
// (primal.cpp) and the token-by-token decode (decode.cpp), both written independently of the
// tape's dual form so that their agreement with it is evidence for both.
#pragma once

#include <vector>

#include "compiler/reference/layout.hpp"

namespace ttt::ref::token {

using Vec = std::vector<double>;

// x W + b for one row x.
Vec affine(const Vec& x, const Mat& W, const Mat& b);

struct Forward {
  std::vector<Vec> x, z;  // layer inputs x_0..x_{L-1}, pre-activations z_1..z_L
};
Forward run_model(const Spec& spec, const State& theta, const Vec& x0);

struct Normalized {
  Vec xhat, out;  // (z - mean) / s and gamma * xhat + beta
  double s = 0.0;
};
Normalized layer_norm(const Vec& z, const double* gamma, const double* beta, double eps);

// The per-token inner gradient at theta: layer inputs x_{l-1} and G_l, so dW_l = x^T G, db_l = G.
struct TokenGrad {
  std::vector<Vec> x, G;
};
TokenGrad token_grad(const Spec& spec, const State& theta, const Vec& k, const Vec& v,
                     const double* gamma, const double* beta);

// Row `tok` of head (b, h) of a [B, H, T, f] tensor.
Vec row_of(const Tensor& t, const Dims& d, int b, int h, int tok);

}  // namespace ttt::ref::token
