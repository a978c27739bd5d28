// random_inputs.cpp: seeded inputs and upstream gradients for tests, goldens and the CLI.
// Uses its own generator (splitmix64) and only integer-to-double conversion, never <random>'s
// distributions, whose output differs between standard libraries: the same seed gives the same
// bits on every machine.
#include <cmath>
#include <stdexcept>

#include "compiler/reference/budget.hpp"
#include "compiler/reference/layout.hpp"
#include "compiler/reference/reference.hpp"

namespace ttt::ref {
namespace {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform(double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(next() >> 11) * 0x1.0p-53;
  }
  void fill(Tensor& t, double lo, double hi) {
    for (double& x : t.data) x = uniform(lo, hi);
  }

 private:
  uint64_t state_;
};

Dims dims_of(const Spec& spec, int B, int H, int T, bool per_batch_state) {
  if (B <= 0 || H <= 0 || T <= 0 || spec.head_dim <= 0 || spec.mini_batch <= 0) {
    throw std::invalid_argument("ttt::ref: random inputs need positive B, H, T, head_dim, K");
  }
  // Before allocating: a huge shape must be refused, not left to the OOM killer.
  check_memory(spec, B, H, T, per_batch_state, /*backward=*/false);
  return {.B = B,
          .H = H,
          .T = T,
          .f = spec.head_dim,
          .K = spec.mini_batch,
          .widths = spec.widths(),
          .per_batch_state = per_batch_state};
}

}  // namespace

Inputs random_inputs(const Spec& spec, int B, int H, int T, bool per_batch_state, uint64_t seed) {
  const Dims d = dims_of(spec, B, H, T, per_batch_state);
  Rng rng(seed);
  Inputs in;
  in.B = B;
  in.H = H;
  in.T = T;
  in.per_batch_state = per_batch_state;
  const double unit = std::sqrt(3.0);  // U(-sqrt 3, sqrt 3) has unit variance
  for (Tensor* t : {&in.q, &in.k, &in.v}) {
    *t = Tensor(token_shape(d));
    rng.fill(*t, -unit, unit);
  }
  // lr as the reference computes it: base_lr * sigmoid(.) / f, with base_lr = 1.
  in.lr = Tensor({B, H, T});
  rng.fill(in.lr, 0.2 / d.f, 1.0 / d.f);
  // tau_i = 1/(i+1) + a small non-negative learned offset.
  in.tau = Tensor({d.K});
  for (int i = 0; i < d.K; ++i) in.tau.data[i] = 1.0 / (i + 1) + rng.uniform(0.0, 0.1);
  in.gamma = Tensor({H, d.f});
  rng.fill(in.gamma, 0.8, 1.2);
  in.beta = Tensor({H, d.f});
  rng.fill(in.beta, -0.2, 0.2);
  make_state_tensors(in.W, in.b, d, per_batch_state);
  for (int l = 0; l < d.depth(); ++l) {
    const double s = unit / std::sqrt(d.widths[l]);  // variance 1/d_in keeps activations O(1)
    rng.fill(in.W[l], -s, s);
    rng.fill(in.b[l], -0.1, 0.1);
  }
  return in;
}

Upstream random_upstream(const Spec& spec, int B, int H, int T, bool with_state_grads,
                         uint64_t seed) {
  const Dims d = dims_of(spec, B, H, T, true);
  Rng rng(seed);
  Upstream up;
  up.dout = Tensor(token_shape(d));
  rng.fill(up.dout, -1.0, 1.0);
  if (with_state_grads) {
    std::vector<Tensor> W, b;
    make_state_tensors(W, b, d, true);
    for (int l = 0; l < d.depth(); ++l) {
      rng.fill(W[l], -1.0, 1.0);
      rng.fill(b[l], -1.0, 1.0);
    }
    up.dW_final = std::move(W);
    up.db_final = std::move(b);
  }
  return up;
}

}  // namespace ttt::ref
