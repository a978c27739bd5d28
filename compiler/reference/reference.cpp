// reference.cpp: the public entry points of the reference: the dual-form forward and the outer
// backward with checkpoint groups, each head (b, h) on its own thread, shared-parameter
// gradients reduced afterwards in a fixed order.
#include "compiler/reference/reference.hpp"

#include <algorithm>
#include <functional>
#include <numeric>
#include <utility>

#include "compiler/reference/budget.hpp"
#include "compiler/reference/layout.hpp"
#include "compiler/reference/parallel.hpp"
#include "compiler/reference/step.hpp"

namespace ttt::ref {

Tensor::Tensor(std::vector<int64_t> s) : shape(std::move(s)), data(static_cast<size_t>(numel())) {}

int64_t Tensor::numel() const { return checked_numel(shape); }

namespace {

// The state enters a tape by value (moved: each state is used by one tape only) ...
StateNodes state_leaves(Tape& t, State s) {
  StateNodes n;
  for (Mat& w : s.W) n.W.push_back(t.leaf(std::move(w)));
  for (Mat& b : s.b) n.b.push_back(t.leaf(std::move(b)));
  return n;
}

// ... and leaves a tape that is about to be discarded the same way.
State release_state(Tape& t, const StateNodes& n) {
  State s;
  for (Tape::Id w : n.W) s.W.push_back(t.release(w));
  for (Tape::Id b : n.b) s.b.push_back(t.release(b));
  return s;
}

State state_grads(const Tape& t, const StateNodes& n) {
  State s;
  for (Tape::Id w : n.W) s.W.push_back(t.grad(w));
  for (Tape::Id b : n.b) s.b.push_back(t.grad(b));
  return s;
}

// One head (b, h) of a call.
struct Head {
  const Spec& spec;
  const Inputs& in;
  const Dims& d;
  int b, h;

  State initial_state() const { return load_state(in.W, in.b, d, b, h, d.per_batch_state); }

  ChunkNodes chunk_leaves(Tape& t, int c) const {
    const int t0 = c * d.K, n = d.chunk_len(c);
    return {.q = t.leaf(load_tokens(in.q, d, b, h, t0, n)),
            .k = t.leaf(load_tokens(in.k, d, b, h, t0, n)),
            .v = t.leaf(load_tokens(in.v, d, b, h, t0, n)),
            .lr = t.leaf(load_token_col(in.lr, d, b, h, t0, n)),
            .tau = t.leaf(Mat(n, 1, in.tau.data.data()))};
  }

  // The whole sequence from the initial state, one tape per mini-batch (values only). Outputs go
  // to `out` when given; the state at the start of every g-th mini-batch to `checkpoints` when
  // given. Returns the final state.
  State forward(Tensor* out, std::vector<State>* checkpoints) const {
    State theta = initial_state();
    for (int c = 0; c < d.chunks(); ++c) {
      if (checkpoints && c % spec.checkpoint_group == 0) checkpoints->push_back(theta);
      Tape t(spec.activation);
      const Tape::Id gamma = t.leaf(load_head_row(in.gamma, d, h));
      const Tape::Id beta = t.leaf(load_head_row(in.beta, d, h));
      StateNodes s = state_leaves(t, std::move(theta));
      const Tape::Id o = append_minibatch(t, spec, chunk_leaves(t, c), gamma, beta, s);
      if (out) store_tokens(*out, d, b, h, c * d.K, t.value(o));
      theta = release_state(t, s);
    }
    return theta;
  }
};

// One head's gradients of the parameters that heads share, reduced once all heads finish.
struct SharedGrads {
  std::vector<double> dtau;
  Mat dgamma, dbeta;
  State dtheta0;
};

State zeros_like(const State& s) {
  State z;
  for (const Mat& w : s.W) z.W.emplace_back(w.rows, w.cols);
  for (const Mat& b : s.b) z.b.emplace_back(b.rows, b.cols);
  return z;
}

void add_into(Mat& dst, const Mat& src) {
  for (size_t i = 0; i < dst.size(); ++i) dst.v[i] += src.v[i];
}

// The outer backward of one head: a forward that saves checkpoints, then the groups in reverse,
// each recomputed on one tape and swept back from the state gradient flowing in at its end.
// Per-token gradients go straight into `g` (each head owns its slices).
SharedGrads backward_head(const Head& hd, const Upstream& up, Grads& g) {
  const Dims& d = hd.d;
  std::vector<State> checkpoints;
  hd.forward(nullptr, &checkpoints);

  State dtheta = zeros_like(checkpoints.front());  // dLoss/dtheta at the end of the next group
  if (up.dW_final) dtheta.W = load_layers(*up.dW_final, d, hd.b, hd.h, true, true);
  if (up.db_final) dtheta.b = load_layers(*up.db_final, d, hd.b, hd.h, true, false);

  SharedGrads r{std::vector<double>(d.K), Mat(1, d.f), Mat(1, d.f), State{}};
  const int group = hd.spec.checkpoint_group;
  for (int gi = static_cast<int>(checkpoints.size()) - 1; gi >= 0; --gi) {
    const int first = gi * group, last = std::min(first + group, d.chunks());
    Tape t(hd.spec.activation);
    const Tape::Id gamma = t.leaf(load_head_row(hd.in.gamma, d, hd.h));
    const Tape::Id beta = t.leaf(load_head_row(hd.in.beta, d, hd.h));
    const StateNodes start = state_leaves(t, std::move(checkpoints[gi]));
    StateNodes s = start;
    std::vector<ChunkNodes> chunks;
    for (int c = first; c < last; ++c) {
      chunks.push_back(hd.chunk_leaves(t, c));
      const Tape::Id o = append_minibatch(t, hd.spec, chunks.back(), gamma, beta, s);
      t.seed(o, load_tokens(up.dout, d, hd.b, hd.h, c * d.K, d.chunk_len(c)));
    }
    for (int l = 0; l < d.depth(); ++l) {
      t.seed(s.W[l], dtheta.W[l]);
      t.seed(s.b[l], dtheta.b[l]);
    }
    t.backward();

    for (int c = first; c < last; ++c) {
      const ChunkNodes& n = chunks[c - first];
      const int t0 = c * d.K;
      store_tokens(g.dq, d, hd.b, hd.h, t0, t.grad(n.q));
      store_tokens(g.dk, d, hd.b, hd.h, t0, t.grad(n.k));
      store_tokens(g.dv, d, hd.b, hd.h, t0, t.grad(n.v));
      store_token_col(g.dlr, d, hd.b, hd.h, t0, t.grad(n.lr));
      const Mat dtau = t.grad(n.tau);
      for (int i = 0; i < dtau.rows; ++i) r.dtau[i] += dtau.v[i];
    }
    add_into(r.dgamma, t.grad(gamma));
    add_into(r.dbeta, t.grad(beta));
    dtheta = state_grads(t, start);
  }
  r.dtheta0 = std::move(dtheta);
  return r;
}

}  // namespace

Outputs forward(const Spec& spec, const Inputs& in) {
  const Dims d = validate_inputs(spec, in);
  check_memory(spec, d.B, d.H, d.T, d.per_batch_state, /*backward=*/false);
  Outputs o;
  o.out = Tensor(token_shape(d));
  make_state_tensors(o.W_final, o.b_final, d, true);
  parallel_for(d.B * d.H, [&](int i) {
    const Head hd{spec, in, d, i / d.H, i % d.H};
    store_state(o.W_final, o.b_final, d, hd.b, hd.h, true, hd.forward(&o.out, nullptr));
  });
  return o;
}

Grads backward(const Spec& spec, const Inputs& in, const Upstream& up) {
  const Dims d = validate_inputs(spec, in);
  check_memory(spec, d.B, d.H, d.T, d.per_batch_state, /*backward=*/true);
  validate_upstream(d, up);
  Grads g;
  for (Tensor* t : {&g.dq, &g.dk, &g.dv}) *t = Tensor(token_shape(d));
  g.dlr = Tensor({d.B, d.H, d.T});
  g.dtau = Tensor({d.K});
  g.dgamma = Tensor({d.H, d.f});
  g.dbeta = Tensor({d.H, d.f});
  make_state_tensors(g.dW, g.db, d, d.per_batch_state);

  std::vector<SharedGrads> heads(static_cast<size_t>(d.B) * d.H);
  parallel_for(d.B * d.H, [&](int i) {
    heads[i] = backward_head(Head{spec, in, d, i / d.H, i % d.H}, up, g);
  });
  // Summed in head order (b-major), never in completion order: the same bits for any thread count.
  for (int i = 0; i < d.B * d.H; ++i) {
    const int b = i / d.H, h = i % d.H;
    const SharedGrads& r = heads[i];
    for (int j = 0; j < d.K; ++j) g.dtau.data[j] += r.dtau[j];
    for (int j = 0; j < d.f; ++j) {
      g.dgamma.data[static_cast<size_t>(h) * d.f + j] += r.dgamma.v[j];
      g.dbeta.data[static_cast<size_t>(h) * d.f + j] += r.dbeta.v[j];
    }
    store_state(g.dW, g.db, d, b, h, d.per_batch_state, r.dtheta0, !d.per_batch_state);
  }
  return g;
}

}  // namespace ttt::ref
