// token.cpp: the inner model on one token in plain loops (see token.hpp).
#include "compiler/reference/token.hpp"

#include <cmath>

#include "compiler/reference/activation.hpp"

namespace ttt::ref::token {

Vec affine(const Vec& x, const Mat& W, const Mat& b) {
  Vec z(b.v);
  for (int i = 0; i < W.rows; ++i)
    for (int j = 0; j < W.cols; ++j) z[j] += x[i] * W(i, j);
  return z;
}

Forward run_model(const Spec& spec, const State& theta, const Vec& x0) {
  Forward r;
  r.x.push_back(x0);
  for (size_t l = 0; l < theta.W.size(); ++l) {
    r.z.push_back(affine(r.x.back(), theta.W[l], theta.b[l]));
    if (l + 1 < theta.W.size()) {
      Vec a(r.z.back().size());
      for (size_t j = 0; j < a.size(); ++j) a[j] = act(spec.activation, r.z.back()[j]);
      r.x.push_back(a);
    }
  }
  return r;
}

Normalized layer_norm(const Vec& z, const double* gamma, const double* beta, double eps) {
  const double n = static_cast<double>(z.size());
  double mean = 0.0, var = 0.0;
  for (double e : z) mean += e;
  mean /= n;
  for (double e : z) var += (e - mean) * (e - mean);
  Normalized r;
  r.s = std::sqrt(var / n + eps);
  for (size_t j = 0; j < z.size(); ++j) {
    r.xhat.push_back((z[j] - mean) / r.s);
    r.out.push_back(gamma[j] * r.xhat[j] + beta[j]);
  }
  return r;
}

TokenGrad token_grad(const Spec& spec, const State& theta, const Vec& k, const Vec& v,
                     const double* gamma, const double* beta) {
  const Forward fw = run_model(spec, theta, k);
  const Normalized ln = layer_norm(fw.z.back(), gamma, beta, spec.ln_eps);
  const size_t f = k.size();
  Vec g(f);
  double sum_g = 0.0, sum_gx = 0.0;
  for (size_t j = 0; j < f; ++j) {
    g[j] = gamma[j] * (ln.out[j] - (v[j] - k[j]));
    sum_g += g[j];
    sum_gx += g[j] * ln.xhat[j];
  }
  TokenGrad r{fw.x, std::vector<Vec>(theta.W.size())};
  Vec& G_out = r.G.back();
  for (size_t j = 0; j < f; ++j) {
    G_out.push_back((f * g[j] - sum_g - ln.xhat[j] * sum_gx) / (f * ln.s));
  }
  for (size_t l = theta.W.size() - 1; l-- > 0;) {
    const Mat& W = theta.W[l + 1];
    r.G[l].assign(W.rows, 0.0);
    for (int i = 0; i < W.rows; ++i) {
      for (int j = 0; j < W.cols; ++j) r.G[l][i] += r.G[l + 1][j] * W(i, j);
      r.G[l][i] *= act_d1(spec.activation, fw.z[l][i]);
    }
  }
  return r;
}

Vec row_of(const Tensor& t, const Dims& d, int b, int h, int tok) {
  const Mat m = load_tokens(t, d, b, h, tok, 1);
  return m.v;
}

}  // namespace ttt::ref::token
