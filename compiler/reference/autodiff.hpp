// autodiff.hpp: a minimal reverse-mode tape over double matrices. Each op computes its value at
// once (so the same code is the forward) and records what the backward sweep needs. The TTT
// mini-batch step is written once against it (step.hpp) and differentiated to any order the
// chain needs, second-order terms of the inner gradient included.
#pragma once

#include <utility>
#include <vector>

#include "compiler/reference/mat.hpp"
#include "compiler/spec.hpp"

namespace ttt::ref {

class Tape {
 public:
  using Id = int;

  explicit Tape(Activation activation) : activation_(activation) {}

  Id leaf(Mat value);
  // op(A) op(B) with op = transpose when its flag is set (both transposed is not supported).
  Id matmul(Id a, Id b, bool trans_a = false, bool trans_b = false);
  Id add(Id a, Id b);  // elementwise, equal shapes
  Id sub(Id a, Id b);
  Id mul(Id a, Id b);
  Id add_row(Id a, Id row);  // a[i, j] + row[0, j]
  Id mul_row(Id a, Id row);  // a[i, j] * row[0, j]
  Id sub_col(Id a, Id col);  // a[i, j] - col[i, 0]
  Id mul_col(Id a, Id col);  // a[i, j] * col[i, 0]
  Id row_sum(Id a);          // [r x c] -> [r x 1]
  Id scale(Id a, double s);
  Id add_scalar(Id a, double s);
  Id sqrt(Id a);
  Id recip(Id a);
  Id act(Id a);         // the spec's activation, elementwise
  Id act_d1(Id a);      // its derivative, elementwise
  Id tril(Id a);        // zero above the diagonal (diagonal kept)
  Id row(Id a, int i);  // row i as [1 x c]

  const Mat& value(Id id) const { return nodes_[id].value; }
  // Moves a value out, for a tape about to be discarded; the node must not be read again.
  Mat release(Id id) { return std::move(nodes_[id].value); }
  // Adds `g` to the gradient of `id`; call before backward() for every output that has one.
  void seed(Id id, const Mat& g);
  // Sweeps the tape once in reverse, accumulating gradients into every node's inputs.
  void backward();
  // The gradient of a node after backward(); an all-zero matrix when nothing reached it.
  Mat grad(Id id) const;

 private:
  enum class Op {
    leaf,
    matmul,
    add,
    sub,
    mul,
    add_row,
    mul_row,
    sub_col,
    mul_col,
    row_sum,
    scale,
    add_scalar,
    sqrt,
    recip,
    act,
    act_d1,
    tril,
    row
  };
  struct Node {
    Op op = Op::leaf;
    Id a = -1, b = -1;
    bool trans_a = false, trans_b = false;
    double s = 0.0;  // scale / added scalar
    int index = 0;   // row index for Op::row
    Mat value, grad;
    // act, act' and act'' of `value` when an act/act_d1 node reads this node: computed once
    // for both ops and for their backward.
    Mat act_f, act_d1, act_d2;
  };

  Id push(Op op, Mat value, Id a = -1, Id b = -1);
  Mat& grad_of(Id id);  // allocated zero on first use
  const Node& activated(Id id);
  void backward_node(const Node& n);

  Activation activation_;
  std::vector<Node> nodes_;
};

}  // namespace ttt::ref
