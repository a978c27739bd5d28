// layout.cpp: shape checks (errors name the tensor, its shape and the expected one) and the
// copies between public tensors and per-head matrices.
#include "compiler/reference/layout.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace ttt::ref {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += ',';
    r += std::to_string(s[i]);
  }
  return r + "]";
}

void check(const Tensor& t, const std::string& name, const std::vector<int64_t>& want) {
  if (t.shape != want) {
    throw std::invalid_argument("ttt::ref: tensor '" + name + "' has shape " + shape_str(t.shape) +
                                ", expected " + shape_str(want));
  }
  if (static_cast<int64_t>(t.data.size()) != t.numel()) {
    throw std::invalid_argument("ttt::ref: tensor '" + name + "' holds " +
                                std::to_string(t.data.size()) + " values but its shape " +
                                shape_str(t.shape) + " needs " + std::to_string(t.numel()));
  }
}

// One tensor per layer: W (w = true) or b, in the shared or per-batch layout.
void check_layers(const std::vector<Tensor>& ts, const std::string& name, const Dims& d, bool w,
                  bool per_batch) {
  if (static_cast<int>(ts.size()) != d.depth()) {
    throw std::invalid_argument("ttt::ref: '" + name + "' needs " + std::to_string(d.depth()) +
                                " tensors (one per layer), got " + std::to_string(ts.size()));
  }
  for (int l = 0; l < d.depth(); ++l) {
    check(ts[l], name + "[" + std::to_string(l) + "]", state_shape(d, l, w, per_batch));
  }
}

size_t token_offset(const Dims& d, int b, int h, int t0, int width) {
  return ((static_cast<size_t>(b) * d.H + h) * d.T + t0) * width;
}

size_t state_offset(const Dims& d, int bi, int h, bool per_batch, size_t per_head) {
  return ((per_batch ? static_cast<size_t>(bi) * d.H : 0) + h) * per_head;
}

}  // namespace

Dims validate_inputs(const Spec& spec, const Inputs& in) {
  auto bad = [](const std::string& m) { throw std::invalid_argument("ttt::ref: " + m); };
  if (spec.head_dim <= 0 || spec.mini_batch <= 0) bad("spec needs head_dim > 0 and mini_batch > 0");
  if (spec.checkpoint_group < 1) bad("spec checkpoint_group must be >= 1");
  if (!(spec.ln_eps >= 0.0)) bad("spec ln_eps must be >= 0");
  if (in.B <= 0 || in.H <= 0 || in.T <= 0) {
    bad("B, H, T must be positive (got " + std::to_string(in.B) + ", " + std::to_string(in.H) +
        ", " + std::to_string(in.T) + ")");
  }
  Dims d{.B = in.B,
         .H = in.H,
         .T = in.T,
         .f = spec.head_dim,
         .K = spec.mini_batch,
         .widths = spec.widths(),
         .per_batch_state = in.per_batch_state};
  // widths() is the truth for the layer count (a linear model has one layer whatever `depth` says).
  if (d.widths.size() < 2 || d.widths.front() != d.f || d.widths.back() != d.f ||
      *std::min_element(d.widths.begin(), d.widths.end()) <= 0) {
    bad("spec widths() must be {head_dim, ..., head_dim}, all positive");
  }
  const std::vector<int64_t> tokens = token_shape(d);
  check(in.q, "q", tokens);
  check(in.k, "k", tokens);
  check(in.v, "v", tokens);
  check(in.lr, "lr", {d.B, d.H, d.T});
  check(in.tau, "tau", {d.K});
  check(in.gamma, "gamma", {d.H, d.f});
  check(in.beta, "beta", {d.H, d.f});
  check_layers(in.W, "W", d, true, d.per_batch_state);
  check_layers(in.b, "b", d, false, d.per_batch_state);
  return d;
}

void validate_upstream(const Dims& d, const Upstream& up) {
  check(up.dout, "dout", token_shape(d));
  // Either state gradient may be given alone; the other is then zero.
  if (up.dW_final) check_layers(*up.dW_final, "dW_final", d, true, true);
  if (up.db_final) check_layers(*up.db_final, "db_final", d, false, true);
}

std::vector<int64_t> token_shape(const Dims& d) { return {d.B, d.H, d.T, d.f}; }

std::vector<int64_t> state_shape(const Dims& d, int l, bool w, bool per_batch) {
  std::vector<int64_t> s;
  if (per_batch) s.push_back(d.B);
  s.push_back(d.H);
  if (w) s.push_back(d.widths[l]);
  s.push_back(d.widths[l + 1]);
  return s;
}

Mat load_tokens(const Tensor& x, const Dims& d, int b, int h, int t0, int n) {
  return Mat(n, d.f, x.data.data() + token_offset(d, b, h, t0, d.f));
}

void store_tokens(Tensor& x, const Dims& d, int b, int h, int t0, const Mat& m) {
  std::copy(m.v.begin(), m.v.end(), x.data.begin() + token_offset(d, b, h, t0, d.f));
}

Mat load_token_col(const Tensor& x, const Dims& d, int b, int h, int t0, int n) {
  return Mat(n, 1, x.data.data() + token_offset(d, b, h, t0, 1));
}

void store_token_col(Tensor& x, const Dims& d, int b, int h, int t0, const Mat& m) {
  std::copy(m.v.begin(), m.v.end(), x.data.begin() + token_offset(d, b, h, t0, 1));
}

Mat load_head_row(const Tensor& x, const Dims& d, int h) {
  return Mat(1, d.f, x.data.data() + static_cast<size_t>(h) * d.f);
}

std::vector<Mat> load_layers(const std::vector<Tensor>& ts, const Dims& d, int bi, int h,
                             bool per_batch, bool w) {
  std::vector<Mat> r;
  for (int l = 0; l < d.depth(); ++l) {
    const int rows = w ? d.widths[l] : 1, cols = d.widths[l + 1];
    const size_t per_head = static_cast<size_t>(rows) * cols;
    r.emplace_back(rows, cols, ts[l].data.data() + state_offset(d, bi, h, per_batch, per_head));
  }
  return r;
}

State load_state(const std::vector<Tensor>& W, const std::vector<Tensor>& b, const Dims& d, int bi,
                 int h, bool per_batch) {
  return {load_layers(W, d, bi, h, per_batch, true), load_layers(b, d, bi, h, per_batch, false)};
}

void store_state(std::vector<Tensor>& W, std::vector<Tensor>& b, const Dims& d, int bi, int h,
                 bool per_batch, const State& s, bool accumulate) {
  auto put = [&](Tensor& dst, const Mat& m) {
    double* p = dst.data.data() + state_offset(d, bi, h, per_batch, m.size());
    for (size_t i = 0; i < m.size(); ++i) p[i] = accumulate ? p[i] + m.v[i] : m.v[i];
  };
  for (int l = 0; l < d.depth(); ++l) {
    put(W[l], s.W[l]);
    put(b[l], s.b[l]);
  }
}

void make_state_tensors(std::vector<Tensor>& W, std::vector<Tensor>& b, const Dims& d,
                        bool per_batch) {
  W.clear();
  b.clear();
  for (int l = 0; l < d.depth(); ++l) {
    W.emplace_back(state_shape(d, l, true, per_batch));
    b.emplace_back(state_shape(d, l, false, per_batch));
  }
}

}  // namespace ttt::ref
