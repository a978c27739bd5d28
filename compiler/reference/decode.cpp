// decode.cpp: the token-by-token decode of docs/decode.md in plain loops: per token the inner
// gradient at the mini-batch's start state is accumulated into A, the output uses theta - tau_i A,
// and the mini-batch's last token folds A into theta. Also prefill (forward + decode tail) and the
// conversion of a decode state to the forward's final state, for the tests.
#include <stdexcept>

#include "compiler/reference/layout.hpp"
#include "compiler/reference/parallel.hpp"
#include "compiler/reference/reference.hpp"
#include "compiler/reference/token.hpp"

namespace ttt::ref {
namespace {

void require_causal(const Spec& spec, const char* what) {
  if (!spec.causal)
    throw std::invalid_argument(std::string("ttt::ref::") + what +
                                ": decode needs a causal spec (a non-causal mini-batch evaluates "
                                "every token with the state updated by the whole mini-batch)");
}

// The decode state of one head as matrices.
struct HeadState {
  State theta, A;
  int pos = 0;
};

Dims state_dims(const Spec& spec, const DecodeState& s) {
  if (s.W.empty() || s.W[0].shape.size() != 4)
    throw std::invalid_argument("ttt::ref: decode state has no W tensors of shape [B, H, d, d']");
  return Dims{.B = static_cast<int>(s.W[0].shape[0]),
              .H = static_cast<int>(s.W[0].shape[1]),
              .T = 1,
              .f = spec.head_dim,
              .K = spec.mini_batch,
              .widths = spec.widths(),
              .per_batch_state = true};
}

HeadState load_head(const DecodeState& s, const Dims& d, int b, int h) {
  return {load_state(s.W, s.b, d, b, h, true), load_state(s.AW, s.Ab, d, b, h, true),
          s.pos.at(static_cast<size_t>(b) * d.H + h)};
}

void store_head(DecodeState& s, const Dims& d, int b, int h, const HeadState& hs) {
  store_state(s.W, s.b, d, b, h, true, hs.theta);
  store_state(s.AW, s.Ab, d, b, h, true, hs.A);
  s.pos[static_cast<size_t>(b) * d.H + h] = hs.pos;
}

// theta - e * A, layer by layer.
State minus(const State& theta, const State& A, double e) {
  State r = theta;
  for (size_t l = 0; l < r.W.size(); ++l) {
    for (size_t i = 0; i < r.W[l].size(); ++i) r.W[l].v[i] -= e * A.W[l].v[i];
    for (size_t i = 0; i < r.b[l].size(); ++i) r.b[l].v[i] -= e * A.b[l].v[i];
  }
  return r;
}

// One decode step of docs/decode.md; returns the token's output row.
token::Vec step(const Spec& spec, HeadState& s, const token::Vec& q, const token::Vec& k,
                const token::Vec& v, double lr, const double* tau, const double* gamma,
                const double* beta) {
  const token::TokenGrad g = token::token_grad(spec, s.theta, k, v, gamma, beta);
  for (size_t l = 0; l < s.A.W.size(); ++l) {  // A += lr * grad (rank-1 for W)
    Mat& AW = s.A.W[l];
    for (int i = 0; i < AW.rows; ++i)
      for (int j = 0; j < AW.cols; ++j) AW(i, j) += lr * g.x[l][i] * g.G[l][j];
    for (int j = 0; j < AW.cols; ++j) s.A.b[l].v[j] += lr * g.G[l][j];
  }
  const State theta_i = minus(s.theta, s.A, tau[s.pos]);
  const token::Normalized ln =
      token::layer_norm(token::run_model(spec, theta_i, q).z.back(), gamma, beta, spec.ln_eps);
  token::Vec out(q.size());
  for (size_t j = 0; j < q.size(); ++j) out[j] = q[j] + ln.out[j];
  if (++s.pos == spec.mini_batch) {  // the mini-batch is complete: carry theta_{K-1}
    s.theta = theta_i;
    for (auto* layers : {&s.A.W, &s.A.b})
      for (Mat& m : *layers) m = Mat(m.rows, m.cols);
    s.pos = 0;
  }
  return out;
}

}  // namespace

DecodeState decode_start(const Spec& spec, const Inputs& in) {
  require_causal(spec, "decode_start");
  const Dims d = validate_inputs(spec, in);
  DecodeState s;
  make_state_tensors(s.W, s.b, d, true);
  make_state_tensors(s.AW, s.Ab, d, true);
  s.pos.assign(static_cast<size_t>(d.B) * d.H, 0);
  for (int b = 0; b < d.B; ++b)
    for (int h = 0; h < d.H; ++h)
      store_state(s.W, s.b, d, b, h, true, load_state(in.W, in.b, d, b, h, d.per_batch_state));
  return s;
}

Tensor decode(const Spec& spec, const Inputs& in, DecodeState& state) {
  require_causal(spec, "decode");
  const Dims d = validate_inputs(spec, in);
  const Dims sd = state_dims(spec, state);
  if (sd.B != d.B || sd.H != d.H || state.pos.size() != static_cast<size_t>(d.B) * d.H)
    throw std::invalid_argument(
        "ttt::ref::decode: the decode state's B, H differ from the inputs'");
  Tensor out(token_shape(d));
  parallel_for(d.B * d.H, [&](int item) {
    const int b = item / d.H, h = item % d.H;
    const double* gamma = in.gamma.data.data() + static_cast<size_t>(h) * d.f;
    const double* beta = in.beta.data.data() + static_cast<size_t>(h) * d.f;
    const Mat lr = load_token_col(in.lr, d, b, h, 0, d.T);
    HeadState hs = load_head(state, sd, b, h);
    for (int t = 0; t < d.T; ++t) {
      const token::Vec o =
          step(spec, hs, token::row_of(in.q, d, b, h, t), token::row_of(in.k, d, b, h, t),
               token::row_of(in.v, d, b, h, t), lr.v[t], in.tau.data.data(), gamma, beta);
      store_tokens(out, d, b, h, t, Mat(1, d.f, o.data()));
    }
    store_head(state, sd, b, h, hs);
  });
  return out;
}

Tensor prefill(const Spec& spec, const Inputs& in, DecodeState& state) {
  require_causal(spec, "prefill");
  const Dims d = validate_inputs(spec, in);
  const int whole = d.T / d.K * d.K;
  auto slice = [&](int t0, int n) {  // tokens [t0, t0 + n) of `in`
    Inputs r = in;
    r.T = n;
    for (Tensor* t : {&r.q, &r.k, &r.v}) *t = Tensor(std::vector<int64_t>{d.B, d.H, n, d.f});
    r.lr = Tensor({d.B, d.H, n});
    const Dims rd{.B = d.B, .H = d.H, .T = n, .f = d.f, .K = d.K, .widths = d.widths};
    for (int b = 0; b < d.B; ++b)
      for (int h = 0; h < d.H; ++h) {
        store_tokens(r.q, rd, b, h, 0, load_tokens(in.q, d, b, h, t0, n));
        store_tokens(r.k, rd, b, h, 0, load_tokens(in.k, d, b, h, t0, n));
        store_tokens(r.v, rd, b, h, 0, load_tokens(in.v, d, b, h, t0, n));
        store_token_col(r.lr, rd, b, h, 0, load_token_col(in.lr, d, b, h, t0, n));
      }
    return r;
  };
  Tensor out(token_shape(d));
  Inputs rest = whole < d.T ? slice(whole, d.T - whole) : Inputs{};
  if (whole > 0) {
    const Outputs o = forward(spec, whole == d.T ? in : slice(0, whole));
    const Dims wd{.B = d.B, .H = d.H, .T = whole, .f = d.f, .K = d.K, .widths = d.widths};
    for (int b = 0; b < d.B; ++b)
      for (int h = 0; h < d.H; ++h)
        store_tokens(out, d, b, h, 0, load_tokens(o.out, wd, b, h, 0, whole));
    Inputs from = in;  // the decode continues from the forward's state at the boundary
    from.per_batch_state = true;
    from.W = o.W_final;
    from.b = o.b_final;
    state = decode_start(spec, from);
    if (whole == d.T) return out;
    rest.W = o.W_final;
    rest.b = o.b_final;
    rest.per_batch_state = true;
  } else {
    state = decode_start(spec, in);
  }
  const Tensor tail = decode(spec, rest, state);
  const Dims td{.B = d.B, .H = d.H, .T = d.T - whole, .f = d.f, .K = d.K, .widths = d.widths};
  for (int b = 0; b < d.B; ++b)
    for (int h = 0; h < d.H; ++h)
      store_tokens(out, d, b, h, whole, load_tokens(tail, td, b, h, 0, d.T - whole));
  return out;
}

void decode_final_state(const Spec& spec, const Tensor& tau, const DecodeState& state,
                        std::vector<Tensor>& W, std::vector<Tensor>& b) {
  const Dims d = state_dims(spec, state);
  make_state_tensors(W, b, d, true);
  for (int bi = 0; bi < d.B; ++bi)
    for (int h = 0; h < d.H; ++h) {
      const HeadState hs = load_head(state, d, bi, h);
      const double e = hs.pos > 0 ? tau.data.at(hs.pos - 1) : 0.0;
      store_state(W, b, d, bi, h, true, minus(hs.theta, hs.A, e));
    }
}

}  // namespace ttt::ref
