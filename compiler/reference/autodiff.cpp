// autodiff.cpp: forward values and reverse-mode rules of the tape's ops.
#include "compiler/reference/autodiff.hpp"

#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>

#include "compiler/reference/activation.hpp"

namespace ttt::ref {
namespace {

void require(bool ok, const char* what) {
  if (!ok) throw std::logic_error(std::string("ref::Tape: ") + what);
}

template <typename F>
Mat map(const Mat& a, F f) {
  Mat r(a.rows, a.cols);
  for (size_t i = 0; i < a.size(); ++i) r.v[i] = f(a.v[i]);
  return r;
}

template <typename F>
Mat zip(const Mat& a, const Mat& b, F f) {
  require(a.rows == b.rows && a.cols == b.cols, "elementwise shape mismatch");
  Mat r(a.rows, a.cols);
  for (size_t i = 0; i < a.size(); ++i) r.v[i] = f(a.v[i], b.v[i]);
  return r;
}

// r[i, j] = f(a[i, j], row[0, j]) or f(a[i, j], col[i, 0]).
template <typename F>
Mat broadcast(const Mat& a, const Mat& vec, bool along_row, F f) {
  if (along_row) {
    require(vec.rows == 1 && vec.cols == a.cols, "row broadcast shape mismatch");
  } else {
    require(vec.cols == 1 && vec.rows == a.rows, "column broadcast shape mismatch");
  }
  Mat r(a.rows, a.cols);
  for (int i = 0; i < a.rows; ++i)
    for (int j = 0; j < a.cols; ++j) r(i, j) = f(a(i, j), along_row ? vec.v[j] : vec.v[i]);
  return r;
}

void axpy(Mat& dst, double s, const Mat& src) {
  for (size_t i = 0; i < dst.size(); ++i) dst.v[i] += s * src.v[i];
}

}  // namespace

Tape::Id Tape::push(Op op, Mat value, Id a, Id b) {
  Node n;
  n.op = op;
  n.a = a;
  n.b = b;
  n.value = std::move(value);
  nodes_.push_back(std::move(n));
  return static_cast<Id>(nodes_.size()) - 1;
}

Tape::Id Tape::leaf(Mat value) { return push(Op::leaf, std::move(value)); }

Tape::Id Tape::matmul(Id a, Id b, bool trans_a, bool trans_b) {
  require(!(trans_a && trans_b), "matmul with both operands transposed");
  const Mat& va = value(a);
  const Mat& vb = value(b);
  Mat r(trans_a ? va.cols : va.rows, trans_b ? vb.rows : vb.cols);
  gemm(va, trans_a, vb, trans_b, r, true);  // r is already zero
  const Id id = push(Op::matmul, std::move(r), a, b);
  nodes_[id].trans_a = trans_a;
  nodes_[id].trans_b = trans_b;
  return id;
}

Tape::Id Tape::add(Id a, Id b) {
  return push(Op::add, zip(value(a), value(b), std::plus<>()), a, b);
}
Tape::Id Tape::sub(Id a, Id b) {
  return push(Op::sub, zip(value(a), value(b), std::minus<>()), a, b);
}
Tape::Id Tape::mul(Id a, Id b) {
  return push(Op::mul, zip(value(a), value(b), std::multiplies<>()), a, b);
}
Tape::Id Tape::add_row(Id a, Id r) {
  return push(Op::add_row, broadcast(value(a), value(r), true, std::plus<>()), a, r);
}
Tape::Id Tape::mul_row(Id a, Id r) {
  return push(Op::mul_row, broadcast(value(a), value(r), true, std::multiplies<>()), a, r);
}
Tape::Id Tape::sub_col(Id a, Id c) {
  return push(Op::sub_col, broadcast(value(a), value(c), false, std::minus<>()), a, c);
}
Tape::Id Tape::mul_col(Id a, Id c) {
  return push(Op::mul_col, broadcast(value(a), value(c), false, std::multiplies<>()), a, c);
}

Tape::Id Tape::row_sum(Id a) {
  const Mat& va = value(a);
  Mat r(va.rows, 1);
  for (int i = 0; i < va.rows; ++i)
    for (int j = 0; j < va.cols; ++j) r.v[i] += va(i, j);
  return push(Op::row_sum, std::move(r), a);
}

Tape::Id Tape::scale(Id a, double s) {
  const Id id = push(Op::scale, map(value(a), [s](double x) { return s * x; }), a);
  nodes_[id].s = s;
  return id;
}
Tape::Id Tape::add_scalar(Id a, double s) {
  const Id id = push(Op::add_scalar, map(value(a), [s](double x) { return x + s; }), a);
  nodes_[id].s = s;
  return id;
}
Tape::Id Tape::sqrt(Id a) {
  return push(Op::sqrt, map(value(a), [](double x) { return std::sqrt(x); }), a);
}
Tape::Id Tape::recip(Id a) {
  return push(Op::recip, map(value(a), [](double x) { return 1.0 / x; }), a);
}
const Tape::Node& Tape::activated(Id id) {
  Node& n = nodes_[id];
  if (n.act_f.empty()) {
    n.act_f = n.act_d1 = n.act_d2 = Mat(n.value.rows, n.value.cols);
    for (size_t i = 0; i < n.value.size(); ++i) {
      const ActValues r = act_all(activation_, n.value.v[i]);
      n.act_f.v[i] = r.f;
      n.act_d1.v[i] = r.d1;
      n.act_d2.v[i] = r.d2;
    }
  }
  return n;
}

Tape::Id Tape::act(Id a) {
  Mat v = activated(a).act_f;  // a copy: push() may move the nodes
  return push(Op::act, std::move(v), a);
}
Tape::Id Tape::act_d1(Id a) {
  Mat v = activated(a).act_d1;
  return push(Op::act_d1, std::move(v), a);
}

Tape::Id Tape::tril(Id a) {
  Mat r = value(a);
  for (int i = 0; i < r.rows; ++i)
    for (int j = i + 1; j < r.cols; ++j) r(i, j) = 0.0;
  return push(Op::tril, std::move(r), a);
}

Tape::Id Tape::row(Id a, int i) {
  const Mat& va = value(a);
  require(i >= 0 && i < va.rows, "row index out of range");
  const Id id = push(Op::row, Mat(1, va.cols, va.row(i)), a);
  nodes_[id].index = i;
  return id;
}

void Tape::seed(Id id, const Mat& g) {
  require(g.rows == value(id).rows && g.cols == value(id).cols, "seed shape mismatch");
  axpy(grad_of(id), 1.0, g);
}

Mat& Tape::grad_of(Id id) {
  Node& n = nodes_[id];
  if (n.grad.empty()) n.grad = Mat(n.value.rows, n.value.cols);
  return n.grad;
}

Mat Tape::grad(Id id) const {
  const Node& n = nodes_[id];
  return n.grad.empty() ? Mat(n.value.rows, n.value.cols) : n.grad;
}

void Tape::backward() {
  for (Id id = static_cast<Id>(nodes_.size()) - 1; id >= 0; --id) {
    if (nodes_[id].op != Op::leaf && !nodes_[id].grad.empty()) backward_node(nodes_[id]);
  }
}

void Tape::backward_node(const Node& n) {
  const Mat& g = n.grad;
  switch (n.op) {
    case Op::leaf:
      return;
    case Op::matmul: {
      // C = op(A) op(B). NN: dA = dC B^T, dB = A^T dC. NT: dA = dC B, dB = dC^T A.
      // TN: dA = B dC^T, dB = A dC.
      const Mat& a = value(n.a);
      const Mat& b = value(n.b);
      if (!n.trans_a && !n.trans_b) {
        gemm(g, false, b, true, grad_of(n.a), true);
        gemm(a, true, g, false, grad_of(n.b), true);
      } else if (n.trans_b) {
        gemm(g, false, b, false, grad_of(n.a), true);
        gemm(g, true, a, false, grad_of(n.b), true);
      } else {
        gemm(b, false, g, true, grad_of(n.a), true);
        gemm(a, false, g, false, grad_of(n.b), true);
      }
      return;
    }
    case Op::add:
      axpy(grad_of(n.a), 1.0, g);
      axpy(grad_of(n.b), 1.0, g);
      return;
    case Op::sub:
      axpy(grad_of(n.a), 1.0, g);
      axpy(grad_of(n.b), -1.0, g);
      return;
    case Op::mul: {
      const Mat& a = value(n.a);
      const Mat& b = value(n.b);
      Mat& ga = grad_of(n.a);
      for (size_t i = 0; i < g.size(); ++i) ga.v[i] += g.v[i] * b.v[i];
      Mat& gb = grad_of(n.b);
      for (size_t i = 0; i < g.size(); ++i) gb.v[i] += g.v[i] * a.v[i];
      return;
    }
    case Op::add_row:
    case Op::mul_row: {
      const Mat& a = value(n.a);
      const Mat& r = value(n.b);
      const bool mul = n.op == Op::mul_row;
      Mat& ga = grad_of(n.a);
      Mat& gr = grad_of(n.b);
      for (int i = 0; i < g.rows; ++i)
        for (int j = 0; j < g.cols; ++j) {
          ga(i, j) += mul ? g(i, j) * r.v[j] : g(i, j);
          gr.v[j] += mul ? g(i, j) * a(i, j) : g(i, j);
        }
      return;
    }
    case Op::sub_col:
    case Op::mul_col: {
      const Mat& a = value(n.a);
      const Mat& c = value(n.b);
      const bool mul = n.op == Op::mul_col;
      Mat& ga = grad_of(n.a);
      Mat& gc = grad_of(n.b);
      for (int i = 0; i < g.rows; ++i)
        for (int j = 0; j < g.cols; ++j) {
          ga(i, j) += mul ? g(i, j) * c.v[i] : g(i, j);
          gc.v[i] += mul ? g(i, j) * a(i, j) : -g(i, j);
        }
      return;
    }
    case Op::row_sum: {
      Mat& ga = grad_of(n.a);
      for (int i = 0; i < ga.rows; ++i)
        for (int j = 0; j < ga.cols; ++j) ga(i, j) += g.v[i];
      return;
    }
    case Op::scale:
      axpy(grad_of(n.a), n.s, g);
      return;
    case Op::add_scalar:
      axpy(grad_of(n.a), 1.0, g);
      return;
    case Op::sqrt: {
      Mat& ga = grad_of(n.a);
      for (size_t i = 0; i < g.size(); ++i) ga.v[i] += g.v[i] * 0.5 / n.value.v[i];
      return;
    }
    case Op::recip: {
      Mat& ga = grad_of(n.a);
      for (size_t i = 0; i < g.size(); ++i) ga.v[i] -= g.v[i] * n.value.v[i] * n.value.v[i];
      return;
    }
    case Op::act:
    case Op::act_d1: {
      const Node& in = nodes_[n.a];
      const Mat& deriv = n.op == Op::act ? in.act_d1 : in.act_d2;
      Mat& ga = grad_of(n.a);
      for (size_t i = 0; i < g.size(); ++i) ga.v[i] += g.v[i] * deriv.v[i];
      return;
    }
    case Op::tril: {
      Mat& ga = grad_of(n.a);
      for (int i = 0; i < g.rows; ++i)
        for (int j = 0; j <= i && j < g.cols; ++j) ga(i, j) += g(i, j);
      return;
    }
    case Op::row: {
      Mat& ga = grad_of(n.a);
      for (int j = 0; j < g.cols; ++j) ga(n.index, j) += g.v[j];
      return;
    }
  }
}

}  // namespace ttt::ref
