// step.cpp: the dual form of ttt-math.md on the tape: the inner gradient G at the mini-batch's
// starting state, the causal K x K form (or the non-causal update-then-evaluate form), the
// output LayerNorm with the query residual, and the state carried to the next mini-batch.
#include "compiler/reference/step.hpp"

#include <utility>

namespace ttt::ref {
namespace {

struct LayerNormNodes {
  Tape::Id xhat, inv_s, out;  // normalized rows, 1/s per row [r x 1], gamma * xhat + beta
};

// LN over each row: biased variance, s = sqrt(var + eps).
LayerNormNodes layer_norm(Tape& t, Tape::Id z, Tape::Id gamma, Tape::Id beta, double eps) {
  const double inv_f = 1.0 / t.value(z).cols;
  const Tape::Id centered = t.sub_col(z, t.scale(t.row_sum(z), inv_f));
  const Tape::Id var = t.scale(t.row_sum(t.mul(centered, centered)), inv_f);
  const Tape::Id inv_s = t.recip(t.sqrt(t.add_scalar(var, eps)));
  const Tape::Id xhat = t.mul_col(centered, inv_s);
  return {xhat, inv_s, t.add_row(t.mul_row(xhat, gamma), beta)};
}

// f_theta(x): returns z_l for l = 1..L and the layer inputs x_0..x_{L-1}.
struct ModelNodes {
  std::vector<Tape::Id> z, x;
};

ModelNodes run_model(Tape& t, Tape::Id x0, const StateNodes& theta) {
  ModelNodes m;
  m.x.push_back(x0);
  const size_t depth = theta.W.size();
  for (size_t l = 0; l < depth; ++l) {
    m.z.push_back(t.add_row(t.matmul(m.x.back(), theta.W[l]), theta.b[l]));
    if (l + 1 < depth) m.x.push_back(t.act(m.z.back()));
  }
  return m;
}

// G_l for every layer at the state `theta`, from the per-token loss 1/2 ||LN(f(k)) - (v - k)||^2:
// G_L = (f g - sum(g) - xhat sum(g xhat)) / (f s), g = gamma (LN(z) - (v - k));
// G_l = (G_{l+1} W_{l+1}^T) act'(z_l).
std::vector<Tape::Id> inner_gradients(Tape& t, const ModelNodes& m, const StateNodes& theta,
                                      Tape::Id k, Tape::Id v, Tape::Id gamma, Tape::Id beta,
                                      double eps) {
  const Tape::Id z_out = m.z.back();
  const int f = t.value(z_out).cols;
  const LayerNormNodes ln = layer_norm(t, z_out, gamma, beta, eps);
  const Tape::Id g = t.mul_row(t.sub(ln.out, t.sub(v, k)), gamma);
  const Tape::Id sum_g = t.row_sum(g);
  const Tape::Id sum_gx = t.row_sum(t.mul(g, ln.xhat));
  const Tape::Id num = t.sub(t.sub_col(t.scale(g, f), sum_g), t.mul_col(ln.xhat, sum_gx));
  std::vector<Tape::Id> G(m.z.size());
  G.back() = t.mul_col(num, t.scale(ln.inv_s, 1.0 / f));
  for (size_t l = G.size() - 1; l-- > 0;) {
    G[l] = t.mul(t.matmul(G[l + 1], theta.W[l + 1], false, true), t.act_d1(m.z[l]));
  }
  return G;
}

// The causal dual form, layer by layer from xbar_0 = Q; returns zbar_L:
// zbar_l = xbar W_l + b_l - (eta .* (xbar x_{l-1}^T) + eta) G_l, eta[i, j] = tau_i lr_j for j <= i.
// eta is lower triangular, so it already masks the product.
Tape::Id causal_output(Tape& t, const ChunkNodes& c, const ModelNodes& inner,
                       const std::vector<Tape::Id>& G, const StateNodes& theta) {
  const Tape::Id eta = t.tril(t.matmul(c.tau, c.lr, false, true));  // [Kc x Kc]
  Tape::Id zbar = -1;
  for (size_t l = 0; l < G.size(); ++l) {
    const Tape::Id xbar = l == 0 ? c.q : t.act(zbar);
    const Tape::Id attn = t.mul(eta, t.matmul(xbar, inner.x[l], false, true));
    zbar =
        t.sub(t.add_row(t.matmul(xbar, theta.W[l]), theta.b[l]), t.matmul(t.add(attn, eta), G[l]));
  }
  return zbar;
}

}  // namespace

Tape::Id append_minibatch(Tape& t, const Spec& spec, const ChunkNodes& c, Tape::Id gamma,
                          Tape::Id beta, StateNodes& theta) {
  const int kc = t.value(c.q).rows;
  const ModelNodes inner = run_model(t, c.k, theta);
  const std::vector<Tape::Id> G =
      inner_gradients(t, inner, theta, c.k, c.v, gamma, beta, spec.ln_eps);

  // The carried state uses the last PRESENT row: eta_last_j = tau_{Kc-1} lr_j.
  const Tape::Id eta_last = t.matmul(c.lr, t.row(c.tau, kc - 1));  // [Kc x 1]
  StateNodes next;
  for (size_t l = 0; l < G.size(); ++l) {
    const Tape::Id weighted = t.mul_col(G[l], eta_last);
    next.W.push_back(t.sub(theta.W[l], t.matmul(inner.x[l], weighted, true, false)));
    next.b.push_back(t.sub(theta.b[l], t.matmul(eta_last, G[l], true, false)));
  }

  // Non-causal: every token sees the updated state.
  const Tape::Id z_out =
      spec.causal ? causal_output(t, c, inner, G, theta) : run_model(t, c.q, next).z.back();
  theta = std::move(next);
  return t.add(c.q, layer_norm(t, z_out, gamma, beta, spec.ln_eps).out);
}

}  // namespace ttt::ref
