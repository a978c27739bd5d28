// ref_test_util.hpp: what the reference tests share: building small specs, comparing tensors by
// relative Frobenius error, and the scalar loss whose gradient backward() computes.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "compiler/reference/reference.hpp"
#include "compiler/spec.hpp"

namespace ttt::ref::testing {

// A small spec: f = 8, K = 4, expansion 2 unless overridden. depth 1 means the linear model.
inline Spec small_spec(int depth, bool causal, Activation act = Activation::gelu_tanh,
                       int checkpoint_group = 1, int head_dim = 8, int mini_batch = 4) {
  Spec s;
  s.name = "test";
  s.model = depth == 1 ? InnerModel::linear : InnerModel::mlp;
  s.depth = depth;
  s.expansion = 2;
  s.activation = act;
  s.head_dim = head_dim;
  s.mini_batch = mini_batch;
  s.causal = causal;
  s.checkpoint_group = checkpoint_group;
  return s;
}

// "linear" for depth 1, else "mlpN": the names the specs use.
inline std::string model_name(int depth) {
  return depth == 1 ? "linear" : "mlp" + std::to_string(depth);
}

inline std::string describe(const Spec& s) {
  return model_name(s.depth) + "/" + to_string(s.activation) +
         (s.causal ? "/causal" : "/non-causal") + "/g" + std::to_string(s.checkpoint_group);
}

inline double norm(const std::vector<double>& a) {
  double s = 0.0;
  for (double x : a) s += x * x;
  return std::sqrt(s);
}

// ||a - b|| / ||b|| (or ||a - b|| when b is zero).
inline double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d += (a[i] - b[i]) * (a[i] - b[i]);
  if (a.size() != b.size()) return INFINITY;
  const double nb = norm(b);
  return nb > 0.0 ? std::sqrt(d) / nb : std::sqrt(d);
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// The scalar whose gradient backward() returns: <dout, out> + sum_l <dW_l, W_l'> + <db_l, b_l'>.
inline double loss(const Spec& spec, const Inputs& in, const Upstream& up) {
  const Outputs o = forward(spec, in);
  double s = dot(up.dout.data, o.out.data);
  for (size_t l = 0; l < o.W_final.size(); ++l) {
    if (up.dW_final) s += dot((*up.dW_final)[l].data, o.W_final[l].data);
    if (up.db_final) s += dot((*up.db_final)[l].data, o.b_final[l].data);
  }
  return s;
}

// Every differentiable input with its gradient, named as in error messages.
struct NamedPair {
  std::string name;
  Tensor* input;
  const Tensor* grad;
};

inline std::vector<NamedPair> input_grad_pairs(Inputs& in, const Grads& g) {
  std::vector<NamedPair> r = {{"q", &in.q, &g.dq},         {"k", &in.k, &g.dk},
                              {"v", &in.v, &g.dv},         {"lr", &in.lr, &g.dlr},
                              {"tau", &in.tau, &g.dtau},   {"gamma", &in.gamma, &g.dgamma},
                              {"beta", &in.beta, &g.dbeta}};
  for (size_t l = 0; l < in.W.size(); ++l) {
    r.push_back({"W[" + std::to_string(l) + "]", &in.W[l], &g.dW[l]});
    r.push_back({"b[" + std::to_string(l) + "]", &in.b[l], &g.db[l]});
  }
  return r;
}

// All gradient tensors of `g` in a fixed order, named.
inline std::vector<std::pair<std::string, const Tensor*>> grad_list(const Grads& g) {
  std::vector<std::pair<std::string, const Tensor*>> r = {
      {"dq", &g.dq},     {"dk", &g.dk},         {"dv", &g.dv},      {"dlr", &g.dlr},
      {"dtau", &g.dtau}, {"dgamma", &g.dgamma}, {"dbeta", &g.dbeta}};
  for (size_t l = 0; l < g.dW.size(); ++l) {
    r.push_back({"dW[" + std::to_string(l) + "]", &g.dW[l]});
    r.push_back({"db[" + std::to_string(l) + "]", &g.db[l]});
  }
  return r;
}

}  // namespace ttt::ref::testing
