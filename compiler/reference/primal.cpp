// primal.cpp: the token-by-token primal form of the causal layer, written independently of the
// tape and the dual form (plain loops over vectors) so that agreement between the two is
// evidence for both: token i is evaluated with theta_i = theta - sum_{j<=i} eta[i, j] grad_j.
#include <cmath>
#include <stdexcept>
#include <vector>

#include "compiler/reference/layout.hpp"
#include "compiler/reference/parallel.hpp"
#include "compiler/reference/reference.hpp"
#include "compiler/reference/token.hpp"

namespace ttt::ref {
namespace {

using token::TokenGrad;
using token::Vec;

// theta -= e * grad for one token's gradient.
void step(State& theta, const TokenGrad& g, double e) {
  for (size_t l = 0; l < theta.W.size(); ++l) {
    Mat& W = theta.W[l];
    for (int i = 0; i < W.rows; ++i)
      for (int j = 0; j < W.cols; ++j) W(i, j) -= e * g.x[l][i] * g.G[l][j];
    for (int j = 0; j < W.cols; ++j) theta.b[l].v[j] -= e * g.G[l][j];
  }
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
        grads.push_back(token::token_grad(spec, theta, token::row_of(in.k, d, b, h, t0 + j),
                                          token::row_of(in.v, d, b, h, t0 + j), gamma, beta));
      }
      State theta_i;
      for (int i = 0; i < n; ++i) {
        theta_i = theta;
        for (int j = 0; j <= i; ++j) step(theta_i, grads[j], in.tau.data[i] * lr.v[t0 + j]);
        const Vec q = token::row_of(in.q, d, b, h, t0 + i);
        const token::Normalized ln = token::layer_norm(token::run_model(spec, theta_i, q).z.back(),
                                                       gamma, beta, spec.ln_eps);
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
