// autodiff.cpp: reverse-mode differentiation of a step Program at compile time. The adjoint of
// every op is written with the same op vocabulary, so the backward kernel is generated from the
// same templates as the forward, for every inner model, depth and form. Second-order terms (the
// inner gradient G depends on the state, keys, values, gamma and beta) come out of the rules.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>

#include "compiler/ir.hpp"

namespace ttt::ir {
namespace {

// What makes two ops compute the same value: kind, operands (in a canonical order where the op
// commutes), every attribute, and the output shape.
using OpKey =
    std::tuple<OpKind, std::vector<int>, bool, bool, double, double, Ew, double, double, int, int>;
OpKey key_of(const Op& op, int rows, int cols) {
  std::vector<int> args = op.args;
  const bool commutes =
      op.kind == OpKind::elementwise && (op.ew == Ew::add || op.ew == Ew::mul) && args.size() == 2;
  if (commutes) std::sort(args.begin(), args.end());
  return {op.kind, args, op.trans_a, op.trans_b, op.alpha, op.beta, op.ew, op.s, op.c, rows, cols};
}

class Adjoint {
 public:
  // The forward's ops seed the table of known values: the rules re-derive some of them (the
  // derivative of sqrt needs 1/sqrt(a), which LayerNorm's forward already computed).
  explicit Adjoint(Program& p) : p_(p), adj_(p.values.size(), -1) {
    for (const Op& op : p_.ops)
      if (op.kind != OpKind::input) known_.emplace(key_of(op, rows(op.out), cols(op.out)), op.out);
  }

  // Appends `op`, or returns the value an identical earlier op computes (common subexpressions:
  // the rules often ask for the same product or scaling twice, and every duplicate left in the
  // step is work on the kernel's dependency chain). `fresh` forces a new value.
  int emit(Op op, int rows, int cols, const std::string& name = "", bool fresh = false) {
    const bool reusable = op.kind != OpKind::input && !fresh;
    if (reusable) {
      const auto it = known_.find(key_of(op, rows, cols));
      if (it != known_.end()) return it->second;
    }
    op.out = static_cast<int>(p_.values.size());
    op.section = "backward";
    p_.values.push_back({name, rows, cols});
    p_.ops.push_back(op);
    adj_.push_back(-1);
    if (reusable) known_.emplace(key_of(op, rows, cols), op.out);
    return op.out;
  }
  int input(const std::string& name, int like) {
    return emit({.kind = OpKind::input}, rows(like), cols(like), name);
  }
  int ew(Ew kind, int a, int b = -1, double s = 1, double c = 0) {
    int r = rows(a), cl = cols(a);
    Op op{.kind = OpKind::elementwise, .args = {a}, .ew = kind, .s = s, .c = c};
    if (b >= 0) {
      r = std::max(r, rows(b));
      cl = std::max(cl, cols(b));
      op.args.push_back(b);
    }
    return emit(op, r, cl);
  }
  int matmul(int a, int b, bool ta, bool tb, double alpha, int d = -1) {
    int m = ta ? cols(a) : rows(a), n = tb ? rows(b) : cols(b);
    Op op{.kind = OpKind::matmul, .args = {a, b}, .trans_a = ta, .trans_b = tb, .alpha = alpha};
    if (d >= 0) {
      op.args.push_back(d);
      op.beta = 1.0;
    }
    return emit(op, m, n);
  }
  // Sums a broadcast contribution back down to the shape of value `like`.
  int reduce_to(int c, int like) {
    if (rows(like) == 1 && rows(c) > 1)
      c = emit({.kind = OpKind::col_sum, .args = {c}}, 1, cols(c));
    if (cols(like) == 1 && cols(c) > 1)
      c = emit({.kind = OpKind::row_sum, .args = {c}}, rows(c), 1);
    return c;
  }
  // adj[v] += contribution (contribution may be broadcastable to v's shape).
  void accumulate(int v, int contribution) {
    contribution = reduce_to(contribution, v);
    if (adj_[v] < 0) {
      if (rows(contribution) != rows(v) || cols(contribution) != cols(v))
        contribution =
            emit({.kind = OpKind::elementwise, .args = {contribution}, .ew = Ew::broadcast},
                 rows(v), cols(v));
      adj_[v] = contribution;
    } else {
      adj_[v] = ew(Ew::add, adj_[v], contribution);
    }
  }
  // adj[v] += alpha * op(a) op(b), fused into one matmul when v already has an adjoint.
  void accumulate_matmul(int v, int a, int b, bool ta, bool tb, double alpha) {
    adj_[v] = matmul(a, b, ta, tb, alpha, adj_[v]);
  }

  void differentiate(const Op& op) {
    const int dC = adj_[op.out];
    if (dC < 0) return;  // nothing downstream depends on this value
    switch (op.kind) {
      case OpKind::input:
      case OpKind::fill:
        return;
      case OpKind::matmul: {
        const int A = op.args[0], B = op.args[1];
        if (op.trans_a)
          accumulate_matmul(A, B, dC, op.trans_b, true, op.alpha);
        else
          accumulate_matmul(A, dC, B, false, !op.trans_b, op.alpha);
        if (op.trans_b)
          accumulate_matmul(B, dC, A, true, op.trans_a, op.alpha);
        else
          accumulate_matmul(B, A, dC, !op.trans_a, false, op.alpha);
        if (op.args.size() > 2)
          accumulate(op.args[2], op.beta == 1.0 ? dC : ew(Ew::affine, dC, -1, op.beta, 0));
        return;
      }
      case OpKind::row_sum:
      case OpKind::col_sum:
        accumulate(op.args[0], dC);
        return;
      case OpKind::transpose:
        accumulate(op.args[0], emit({.kind = OpKind::transpose, .args = {dC}}, cols(dC), rows(dC)));
        return;
      case OpKind::elementwise:
        differentiate_elementwise(op, dC);
        return;
    }
  }

  void differentiate_elementwise(const Op& op, int dC) {
    const int a = op.args[0], b = op.args.size() > 1 ? op.args[1] : -1;
    switch (op.ew) {
      case Ew::add:
        accumulate(a, dC);
        accumulate(b, dC);
        return;
      case Ew::sub:
        accumulate(a, dC);
        accumulate(b, ew(Ew::affine, dC, -1, -1, 0));
        return;
      case Ew::mul:
        accumulate(a, ew(Ew::mul, dC, b));
        accumulate(b, ew(Ew::mul, dC, a));
        return;
      case Ew::act:
        accumulate(a, ew(Ew::mul, dC, ew(Ew::act_d1, a)));
        return;
      case Ew::act_d1:
        accumulate(a, ew(Ew::mul, dC, ew(Ew::act_d2, a)));
        return;
      case Ew::act_d2:
        throw std::logic_error("autodiff: third derivative of the activation");
      case Ew::sqrt:  // d sqrt(a) = 0.5 / sqrt(a)
        accumulate(a, ew(Ew::mul, dC, ew(Ew::affine, ew(Ew::recip, op.out), -1, 0.5, 0)));
        return;
      case Ew::recip:  // d (1/a) = -(1/a)^2
        accumulate(a, ew(Ew::mul, dC, ew(Ew::affine, ew(Ew::mul, op.out, op.out), -1, -1, 0)));
        return;
      case Ew::affine:
        accumulate(a, op.s == 1.0 ? dC : ew(Ew::affine, dC, -1, op.s, 0));
        return;
      case Ew::tril:
        accumulate(a, ew(Ew::tril, dC));
        return;
      case Ew::broadcast:
        accumulate(a, dC);
        return;
    }
  }

  int rows(int id) const { return p_.values[id].rows; }
  int cols(int id) const { return p_.values[id].cols; }
  int& adj(int id) { return adj_[id]; }

 private:
  Program& p_;
  std::vector<int> adj_;
  std::map<OpKey, int> known_;
};

}  // namespace

Program append_adjoint(const Program& forward) {
  Program p = forward;
  const size_t forward_ops = p.ops.size();
  Adjoint ad(p);

  // Seeds: dLoss/dO and dLoss/d(state after the step).
  std::vector<std::pair<std::string, int>> seeds;
  for (const auto& [role, id] : forward.outputs) seeds.emplace_back(role, id);
  for (const auto& [role, id] : seeds) ad.adj(id) = ad.input(adjoint(role), id);

  // A copy of each op: differentiating appends to p.ops, which may move its elements.
  for (size_t i = forward_ops; i-- > 0;) ad.differentiate(Op(p.ops[i]));

  // Every forward input gets an adjoint output (zero when nothing depends on it).
  p.outputs.clear();
  std::set<int> claimed;
  for (size_t i = 0; i < forward_ops; ++i) {
    const Op& op = p.ops[i];
    if (op.kind != OpKind::input) continue;
    int d = ad.adj(op.out);
    if (d < 0)
      d = ad.emit({.kind = OpKind::fill, .c = 0.0}, ad.rows(op.out), ad.cols(op.out), "",
                  /*fresh=*/true);
    // Outputs are written to their own buffers: never let one alias a seed or another output.
    if (p.ops[d].kind == OpKind::input || claimed.count(d))
      d = ad.emit({.kind = OpKind::elementwise, .args = {d}, .ew = Ew::broadcast}, ad.rows(d),
                  ad.cols(d), "", /*fresh=*/true);
    claimed.insert(d);
    const std::string role = adjoint(p.values[op.out].name);
    p.values[d].name = role;
    p.outputs[role] = d;
  }
  return p;
}

}  // namespace ttt::ir
