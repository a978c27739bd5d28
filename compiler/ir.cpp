// ir.cpp: the step builder (spec -> one mini-batch step as an SSA program) and the IR printer.
#include "compiler/ir.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace ttt::ir {

std::string weight_name(int layer) { return fmt::format("W{}", layer); }
std::string bias_name(int layer) { return fmt::format("b{}", layer); }
std::string updated(const std::string& name) { return name + "'"; }
std::string adjoint(const std::string& name) { return "d" + name; }

int Program::input_id(const std::string& name) const {
  for (size_t i = 0; i < ops.size(); ++i)
    if (ops[i].kind == OpKind::input && values[ops[i].out].name == name) return ops[i].out;
  throw std::logic_error("IR: no input named " + name);
}

int Program::output_id(const std::string& name) const {
  auto it = outputs.find(name);
  if (it == outputs.end()) throw std::logic_error("IR: no output named " + name);
  return it->second;
}

namespace {

// Builds SSA values and ops; each helper returns the id of the value it defines.
class Builder {
 public:
  explicit Builder(Program& p) : p_(p) {}
  std::string section;

  int input(const std::string& name, int rows, int cols) {
    Op op{.kind = OpKind::input};
    return emit(op, name, rows, cols);
  }
  int matmul(int a, int b, bool ta = false, bool tb = false, double alpha = 1, int d = -1,
             double beta = 0) {
    const Value &va = p_.values[a], &vb = p_.values[b];
    int m = ta ? va.cols : va.rows, ka = ta ? va.rows : va.cols;
    int kb = tb ? vb.cols : vb.rows, n = tb ? vb.rows : vb.cols;
    if (ka != kb) throw std::logic_error(fmt::format("IR matmul: inner dims {} vs {}", ka, kb));
    Op op{.kind = OpKind::matmul, .args = {a, b}, .trans_a = ta, .trans_b = tb, .alpha = alpha};
    if (d >= 0) {
      require_shape(d, m, n, "matmul addend");
      op.args.push_back(d);
      op.beta = beta;
    }
    return emit(op, "", m, n);
  }
  int ew(Ew kind, int a, int b = -1, double s = 1, double c = 0) {
    int rows = p_.values[a].rows, cols = p_.values[a].cols;
    Op op{.kind = OpKind::elementwise, .args = {a}, .ew = kind, .s = s, .c = c};
    if (b >= 0) {
      rows = broadcast_dim(rows, p_.values[b].rows);
      cols = broadcast_dim(cols, p_.values[b].cols);
      op.args.push_back(b);
    }
    return emit(op, "", rows, cols);
  }
  int broadcast_to(int a, int rows, int cols) {
    Op op{.kind = OpKind::elementwise, .args = {a}, .ew = Ew::broadcast};
    return emit(op, "", rows, cols);
  }
  int add(int a, int b) { return ew(Ew::add, a, b); }
  int sub(int a, int b) { return ew(Ew::sub, a, b); }
  int mul(int a, int b) { return ew(Ew::mul, a, b); }
  int affine(int a, double s, double c) { return ew(Ew::affine, a, -1, s, c); }
  int row_sum(int a) { return emit({.kind = OpKind::row_sum, .args = {a}}, "", rows(a), 1); }
  int col_sum(int a) { return emit({.kind = OpKind::col_sum, .args = {a}}, "", 1, cols(a)); }
  int transpose(int a) {
    return emit({.kind = OpKind::transpose, .args = {a}}, "", cols(a), rows(a));
  }
  int fill(int rows, int cols, double value) {
    return emit({.kind = OpKind::fill, .c = value}, "", rows, cols);
  }
  void name(int id, const std::string& n) { p_.values[id].name = n; }
  int rows(int id) const { return p_.values[id].rows; }
  int cols(int id) const { return p_.values[id].cols; }
  Program& program() { return p_; }

 private:
  int emit(Op op, const std::string& name, int rows, int cols) {
    op.out = static_cast<int>(p_.values.size());
    op.section = section;
    p_.values.push_back({name, rows, cols});
    p_.ops.push_back(op);
    return op.out;
  }
  static int broadcast_dim(int x, int y) {
    if (x == y || y == 1) return x;
    if (x == 1) return y;
    throw std::logic_error(fmt::format("IR: cannot broadcast {} with {}", x, y));
  }
  void require_shape(int id, int r, int c, const char* what) {
    if (rows(id) != r || cols(id) != c) throw std::logic_error(std::string("IR: bad ") + what);
  }
  Program& p_;
};

// LayerNorm of z's rows with the head's gamma/beta: returns y; xhat and 1/s through out-params.
int layer_norm(Builder& b, int z, int gamma, int beta, double eps, int* xhat_out, int* rs_out) {
  const double inv_width = 1.0 / b.cols(z);
  int mean = b.affine(b.row_sum(z), inv_width, 0);
  int centered = b.sub(z, mean);
  int var = b.affine(b.row_sum(b.mul(centered, centered)), inv_width, 0);
  int rs = b.ew(Ew::recip, b.ew(Ew::sqrt, b.affine(var, 1, eps)));
  int xhat = b.mul(centered, rs);
  if (xhat_out) *xhat_out = xhat;
  if (rs_out) *rs_out = rs;
  return b.add(b.mul(xhat, gamma), beta);
}

// The inner model applied to rows x with weights W/b: returns z_L; pre-activations in zs.
int inner_forward(Builder& b, int x, const std::vector<int>& W, const std::vector<int>& bias,
                  std::vector<int>* zs, std::vector<int>* xs) {
  const int depth = static_cast<int>(W.size());
  int cur = x;
  for (int l = 0; l < depth; ++l) {
    if (xs) xs->push_back(cur);
    int z = b.add(b.matmul(cur, W[l]), bias[l]);
    if (zs) zs->push_back(z);
    cur = (l + 1 < depth) ? b.ew(Ew::act, z) : z;
  }
  return cur;
}

}  // namespace

Program build_step(const Spec& spec) {
  Program p;
  p.activation = spec.activation;
  Builder b(p);
  const int K = spec.mini_batch, f = spec.head_dim;
  const int depth = static_cast<int>(spec.widths().size()) - 1;
  const std::vector<int> widths = spec.widths();

  b.section = "inputs";
  int Q = b.input("Q", K, f), X0 = b.input("K", K, f), V = b.input("V", K, f);
  int lr = b.input("lr", 1, K), tau = b.input("tau", K, 1), tau_last = b.input("tau_last", 1, 1);
  int gamma = b.input("gamma", 1, f), beta = b.input("beta", 1, f);
  std::vector<int> W, bias;
  for (int l = 1; l <= depth; ++l) {
    W.push_back(b.input(weight_name(l), widths[l - 1], widths[l]));
    bias.push_back(b.input(bias_name(l), 1, widths[l]));
  }

  b.section = "inner forward on keys";
  std::vector<int> z, x;
  int zL = inner_forward(b, X0, W, bias, &z, &x);

  b.section = "inner-loss gradient";
  int target = b.sub(V, X0);
  int xhat = -1, rs = -1;
  int y = layer_norm(b, zL, gamma, beta, spec.ln_eps, &xhat, &rs);
  int g = b.mul(gamma, b.sub(y, target));
  int sum_g = b.row_sum(g), sum_gx = b.row_sum(b.mul(g, xhat));
  int num = b.sub(b.sub(b.affine(g, f, 0), sum_g), b.mul(xhat, sum_gx));
  std::vector<int> G(depth);
  G[depth - 1] = b.mul(num, b.affine(rs, 1.0 / f, 0));
  for (int l = depth - 1; l >= 1; --l)
    G[l - 1] = b.mul(b.matmul(G[l], W[l], false, true), b.ew(Ew::act_d1, z[l - 1]));
  for (int l = 0; l < depth; ++l) b.name(G[l], fmt::format("G{}", l + 1));

  auto state_update = [&] {
    b.section = "state update (last row's eta)";
    int eta_last = b.mul(b.transpose(lr), tau_last);  // [K, 1]
    for (int l = 0; l < depth; ++l) {
      int scaled = b.mul(G[l], eta_last);
      int w_new = b.matmul(x[l], scaled, true, false, -1.0, W[l], 1.0);
      int b_new = b.sub(bias[l], b.col_sum(scaled));
      b.name(w_new, updated(weight_name(l + 1)));
      b.name(b_new, updated(bias_name(l + 1)));
      p.outputs[updated(weight_name(l + 1))] = w_new;
      p.outputs[updated(bias_name(l + 1))] = b_new;
    }
  };
  auto finish_output = [&](int zq) {
    int out = b.add(Q, layer_norm(b, zq, gamma, beta, spec.ln_eps, nullptr, nullptr));
    b.name(out, "O");
    p.outputs["O"] = out;
  };

  if (spec.causal) {
    // Query rows see the state updated by every earlier token of the mini-batch (dual form).
    b.section = "query output (causal dual form)";
    int eta = b.ew(Ew::tril, b.mul(tau, lr));  // eta[i,j] = tau_i lr_j, j <= i
    b.name(eta, "eta");
    int xq = Q;
    for (int l = 0; l < depth; ++l) {
      int attn = b.add(b.mul(b.matmul(xq, x[l], false, true), eta), eta);
      int base = b.add(b.matmul(xq, W[l]), bias[l]);
      int zq = b.matmul(attn, G[l], false, false, -1.0, base, 1.0);
      xq = (l + 1 < depth) ? b.ew(Ew::act, zq) : zq;
    }
    finish_output(xq);
    state_update();  // last: the in-place state update must follow every read of the old state
  } else {
    state_update();
    b.section = "query output (non-causal: updated state)";
    std::vector<int> W1, b1;
    for (int l = 1; l <= depth; ++l) {
      W1.push_back(p.outputs.at(updated(weight_name(l))));
      b1.push_back(p.outputs.at(updated(bias_name(l))));
    }
    finish_output(inner_forward(b, Q, W1, b1, nullptr, nullptr));
  }
  return p;
}

namespace {

const char* ew_name(Ew e) {
  switch (e) {
    case Ew::add:
      return "add";
    case Ew::sub:
      return "sub";
    case Ew::mul:
      return "mul";
    case Ew::act:
      return "act";
    case Ew::act_d1:
      return "act'";
    case Ew::act_d2:
      return "act''";
    case Ew::sqrt:
      return "sqrt";
    case Ew::recip:
      return "recip";
    case Ew::affine:
      return "affine";
    case Ew::tril:
      return "tril";
    case Ew::broadcast:
      return "broadcast";
  }
  return "?";
}

std::string ref(const Program& p, int id) {
  const std::string& n = p.values[id].name;
  return n.empty() ? fmt::format("%{}", id) : fmt::format("%{}:{}", id, n);
}

}  // namespace

std::string Program::to_text() const {
  std::string text, section;
  for (const Op& op : ops) {
    if (op.section != section) {
      section = op.section;
      text += fmt::format("  // {}\n", section);
    }
    const Value& v = values[op.out];
    std::string rhs;
    switch (op.kind) {
      case OpKind::input:
        rhs = "input";
        break;
      case OpKind::matmul:
        rhs = fmt::format("matmul {}{}, {}{}", ref(*this, op.args[0]), op.trans_a ? "^T" : "",
                          ref(*this, op.args[1]), op.trans_b ? "^T" : "");
        if (op.alpha != 1) rhs += fmt::format(" * {}", op.alpha);
        if (op.args.size() > 2) rhs += fmt::format(" + {} * {}", op.beta, ref(*this, op.args[2]));
        break;
      case OpKind::elementwise:
        rhs = fmt::format("{} {}", ew_name(op.ew), ref(*this, op.args[0]));
        if (op.args.size() > 1) rhs += ", " + ref(*this, op.args[1]);
        if (op.ew == Ew::affine) rhs += fmt::format(" (* {} + {})", op.s, op.c);
        break;
      case OpKind::row_sum:
        rhs = "row_sum " + ref(*this, op.args[0]);
        break;
      case OpKind::col_sum:
        rhs = "col_sum " + ref(*this, op.args[0]);
        break;
      case OpKind::transpose:
        rhs = "transpose " + ref(*this, op.args[0]);
        break;
      case OpKind::fill:
        rhs = fmt::format("fill {}", op.c);
        break;
    }
    text += fmt::format("  {} [{}x{}] = {}\n", ref(*this, op.out), v.rows, v.cols, rhs);
  }
  text += "  outputs:";
  for (const auto& [role, id] : outputs) text += fmt::format(" {}={}", role, ref(*this, id));
  return text + "\n";
}

std::string describe(const Spec& spec, const Program& program) {
  std::string text = fmt::format(
      "step of {} (depth {}, activation {}), head_dim {}, mini_batch {}, {}, ln_eps {}\n",
      to_string(spec.model), spec.widths().size() - 1, to_string(spec.activation), spec.head_dim,
      spec.mini_batch, spec.causal ? "causal dual form" : "non-causal form", spec.ln_eps);
  const std::vector<int> widths = spec.widths();
  const int depth = static_cast<int>(widths.size()) - 1;
  for (int l = 1; l <= depth; ++l)
    text += fmt::format("  layer {}: W{} [{}x{}], b{} [{}]{}\n", l, l, widths[l - 1], widths[l], l,
                        widths[l], l < depth ? " -> act" : " -> LayerNorm");
  text += fmt::format("  state per head: {} floats ({} bytes)\n", spec.state_floats(),
                      4 * spec.state_floats());
  return text + program.to_text();
}

}  // namespace ttt::ir
