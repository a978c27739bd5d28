// ir.hpp: the compiler's description of ONE mini-batch step of the inner model, as a straight-line
// SSA program over small f32 matrices (rows x cols, vectors are 1 x n or n x 1). build_step()
// writes the inner forward on keys, the inner-loss gradient, the state update and the query output
// (causal dual form or non-causal form); autodiff.cpp appends its reverse-mode adjoint for the
// backward. codegen.cpp turns a Program into calls of the device templates, one call per Op.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "compiler/spec.hpp"

namespace ttt::ir {

enum class OpKind {
  input,        // bound by the kernel driver (token rows, lr, tau, gamma/beta, state, seeds)
  matmul,       // out = alpha * op(a) op(b) + beta * d   (op = optional transpose)
  elementwise,  // out = F(a[, b]) with 2-D broadcasting of 1-sized dims
  row_sum,      // [r, c] -> [r, 1]
  col_sum,      // [r, c] -> [1, c]
  transpose,    // [r, c] -> [c, r]
  fill,         // out = scalar
};

enum class Ew {
  add,
  sub,
  mul,  // binary
  act,
  act_d1,
  act_d2,  // activation and its first/second derivative
  sqrt,
  recip,      // unary
  affine,     // s * a + c
  tril,       // a where row >= col, else 0
  broadcast,  // copy a, broadcast to the output shape
};

struct Value {
  std::string name;
  int rows = 0, cols = 0;
  long long size() const { return 1LL * rows * cols; }
};

struct Op {
  OpKind kind = OpKind::input;
  int out = -1;
  std::vector<int> args;  // matmul: a, b[, d]; elementwise: a[, b]; reductions: a
  bool trans_a = false, trans_b = false;
  double alpha = 1.0, beta = 0.0;  // matmul scales
  Ew ew = Ew::add;
  double s = 1.0, c = 0.0;  // affine scale/shift; fill value in c
  std::string section;      // which part of the step this op belongs to (for printing)
};

struct Program {
  std::vector<Value> values;
  std::vector<Op> ops;
  std::map<std::string, int> outputs;  // role name -> value id
  Activation activation = Activation::gelu_tanh;

  int input_id(const std::string& name) const;  // throws if absent
  int output_id(const std::string& name) const;
  std::string to_text() const;
};

// Names of bound inputs/outputs, shared by builder, autodiff and codegen.
std::string weight_name(int layer);       // "W1"..
std::string bias_name(int layer);         // "b1"..
std::string updated(const std::string&);  // "W1'" (state after the step)
std::string adjoint(const std::string&);  // "dW1" etc.

// One mini-batch step of `spec` (forward only). Inputs: Q, K, V [K, f]; lr [1, K]; tau [K, 1];
// tau_last [1, 1]; gamma, beta [1, f]; W_l [d_{l-1}, d_l]; b_l [1, d_l].
// Outputs: O [K, f]; W_l', b_l'.
Program build_step(const Spec& spec);

// Appends the reverse-mode adjoint of `forward` (built by build_step). New inputs: dO, dW_l',
// db_l'. New outputs: dQ, dK, dV, dlr, dtau, dtau_last, dgamma, dbeta, dW_l, db_l.
Program append_adjoint(const Program& forward);

// The program with the inputs named in `zero` fixed at zero and the zeros propagated: an op
// whose value is then zero (a product with a zero factor, a sum of zeros, act(0)) is dropped and
// its readers simplified; outputs that become zero are a `fill 0`. With one of the adjoint's
// seeds zeroed (dO, or every dW_l' and db_l') it is the adjoint of one path of the step alone
// (ir_zero.cpp). Throws std::logic_error for a name that is not an input.
Program with_zero_inputs(const Program& program, const std::set<std::string>& zero);

// A readable description of the step for `tttc ir`: layers, shapes, then the op list.
std::string describe(const Spec& spec, const Program& program);

}  // namespace ttt::ir
