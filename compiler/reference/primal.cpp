// primal.cpp: the token-by-token primal form of the causal layer, written independently of the
// tape and the dual form (plain loops over vectors) so that agreement between the two is
// evidence for both: token i is evaluated with theta_i = theta - sum_{j<=i} eta[i, j] grad_j.
#include <cmath>
#include <stdexcept>
#include <vector>

#include "compiler/reference/activation.hpp"
#include "compiler/reference/layout.hpp"
#include "compiler/reference/parallel.hpp"
#include "compiler/reference/reference.hpp"

namespace ttt::ref {
namespace {

using Vec = std::vector<double>;

// x W + b for one row x.
Vec affine(const Vec& x, const Mat& W, const Mat& b) {
  Vec z(b.v);
  for (int i = 0; i < W.rows; ++i)
    for (int j = 0; j < W.cols; ++j) z[j] += x[i] * W(i, j);
  return z;
}

struct Forward {
  std::vector<Vec> x, z;  // layer inputs x_0..x_{L-1}, pre-activations z_1..z_L
};

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

struct Normalized {
  Vec xhat, out;
  double s = 0.0;
};

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

// The per-token inner gradient at theta: layer inputs x_{l-1} and G_l, so dW_l = x^T G, db_l = G.
struct TokenGrad {
  std::vector<Vec> x, G;
};

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

// theta -= e * grad for one token's gradient.
void step(State& theta, const TokenGrad& g, double e) {
  for (size_t l = 0; l < theta.W.size(); ++l) {
    Mat& W = theta.W[l];
    for (int i = 0; i < W.rows; ++i)
      for (int j = 0; j < W.cols; ++j) W(i, j) -= e * g.x[l][i] * g.G[l][j];
    for (int j = 0; j < W.cols; ++j) theta.b[l].v[j] -= e * g.G[l][j];
  }
}

Vec row_of(const Tensor& t, const Dims& d, int b, int h, int tok) {
  const Mat m = load_tokens(t, d, b, h, tok, 1);
  return m.v;
}

}  // namespace

Outputs forward_primal(const Spec& spec, const Inputs& in) {
  if (!spec.causal) {
    throw std::invalid_argument(
        "ttt::ref::forward_primal: the primal (token-by-token) form exists only for causal "
        "specs; this spec is non-causal");
  }
  const Dims d = validate_inputs(spec, in);
  Outputs o;
  o.out = Tensor(token_shape(d));
  make_state_tensors(o.W_final, o.b_final, d, true);
  parallel_for(d.B * d.H, [&](int item) {
    const int b = item / d.H, h = item % d.H;
    const double* gamma = in.gamma.data.data() + static_cast<size_t>(h) * d.f;
    const double* beta = in.beta.data.data() + static_cast<size_t>(h) * d.f;
    const Mat lr = load_token_col(in.lr, d, b, h, 0, d.T);
    State theta = load_state(in.W, in.b, d, b, h, d.per_batch_state);
    for (int c = 0; c < d.chunks(); ++c) {
      const int t0 = c * d.K, n = d.chunk_len(c);
      std::vector<TokenGrad> grads;  // all taken at the state at the start of the mini-batch
      for (int j = 0; j < n; ++j) {
        grads.push_back(token_grad(spec, theta, row_of(in.k, d, b, h, t0 + j),
                                   row_of(in.v, d, b, h, t0 + j), gamma, beta));
      }
      State theta_i;
      for (int i = 0; i < n; ++i) {
        theta_i = theta;
        for (int j = 0; j <= i; ++j) step(theta_i, grads[j], in.tau.data[i] * lr.v[t0 + j]);
        const Vec q = row_of(in.q, d, b, h, t0 + i);
        const Normalized ln =
            layer_norm(run_model(spec, theta_i, q).z.back(), gamma, beta, spec.ln_eps);
        Mat out(1, d.f);
        for (int j = 0; j < d.f; ++j) out.v[j] = q[j] + ln.out[j];
        store_tokens(o.out, d, b, h, t0 + i, out);
      }
      theta = theta_i;  // the last present token's parameters
    }
    store_state(o.W_final, o.b_final, d, b, h, true, theta);
  });
  return o;
}

}  // namespace ttt::ref
