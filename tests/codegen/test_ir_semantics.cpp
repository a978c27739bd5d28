// test_ir_semantics.cpp: the step IR that every kernel is generated from (build_step, and the
// adjoint append_adjoint derives from it), evaluated in double precision on the CPU, equals one
// mini-batch of the exact reference (its own tape, written independently) on random inputs:
// the output, the carried state and every gradient. It checks the IR and its autodiff without
// a GPU; the kernels' lowering of the IR is checked on the GPU (tests/gpu).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>

#include "compiler/ir.hpp"
#include "compiler/reference/activation.hpp"
#include "compiler/reference/autodiff.hpp"
#include "compiler/reference/mat.hpp"
#include "compiler/reference/step.hpp"

namespace ttt {
namespace {

using ref::Mat;

// Reads a with numpy-style broadcasting of its 1-sized dimensions.
double at(const Mat& a, int i, int j) { return a(a.rows == 1 ? 0 : i, a.cols == 1 ? 0 : j); }

double apply(ir::Ew ew, Activation act, double a, double b, double s, double c, int i, int j) {
  switch (ew) {
    case ir::Ew::add:
      return a + b;
    case ir::Ew::sub:
      return a - b;
    case ir::Ew::mul:
      return a * b;
    case ir::Ew::act:
      return ref::act_all(act, a).f;
    case ir::Ew::act_d1:
      return ref::act_all(act, a).d1;
    case ir::Ew::act_d2:
      return ref::act_all(act, a).d2;
    case ir::Ew::sqrt:
      return std::sqrt(a);
    case ir::Ew::recip:
      return 1.0 / a;
    case ir::Ew::affine:
      return s * a + c;
    case ir::Ew::tril:
      return i >= j ? a : 0.0;
    case ir::Ew::broadcast:
      return a;
  }
  return NAN;
}

// Runs every op of `p` in order, the inputs taken from `inputs` by name.
std::vector<Mat> evaluate(const ir::Program& p, const std::map<std::string, Mat>& inputs) {
  std::vector<Mat> v(p.values.size());
  for (const ir::Op& op : p.ops) {
    const ir::Value& out = p.values[op.out];
    Mat r(out.rows, out.cols);
    switch (op.kind) {
      case ir::OpKind::input:
        r = inputs.at(out.name);
        break;
      case ir::OpKind::fill:
        std::fill(r.v.begin(), r.v.end(), op.c);
        break;
      case ir::OpKind::matmul:
        ref::gemm(v[op.args[0]], op.trans_a, v[op.args[1]], op.trans_b, r, false);
        for (size_t e = 0; e < r.size(); ++e)
          r.v[e] = op.alpha * r.v[e] + (op.args.size() > 2 ? op.beta * v[op.args[2]].v[e] : 0.0);
        break;
      case ir::OpKind::elementwise:
        for (int i = 0; i < r.rows; ++i)
          for (int j = 0; j < r.cols; ++j)
            r(i, j) = apply(op.ew, p.activation, at(v[op.args[0]], i, j),
                            op.args.size() > 1 ? at(v[op.args[1]], i, j) : 0.0, op.s, op.c, i, j);
        break;
      case ir::OpKind::row_sum:
      case ir::OpKind::col_sum:
        for (int i = 0; i < v[op.args[0]].rows; ++i)
          for (int j = 0; j < v[op.args[0]].cols; ++j)
            (op.kind == ir::OpKind::row_sum ? r(i, 0) : r(0, j)) += v[op.args[0]](i, j);
        break;
      case ir::OpKind::transpose:
        for (int i = 0; i < r.rows; ++i)
          for (int j = 0; j < r.cols; ++j) r(i, j) = v[op.args[0]](j, i);
        break;
    }
    EXPECT_EQ(r.rows, out.rows) << "%" << op.out;
    EXPECT_EQ(r.cols, out.cols) << "%" << op.out;
    v[op.out] = std::move(r);
  }
  return v;
}

Mat random_mat(std::mt19937_64& rng, int rows, int cols, double lo, double hi) {
  std::uniform_real_distribution<double> d(lo, hi);
  Mat m(rows, cols);
  for (double& x : m.v) x = d(rng);
  return m;
}

Mat transposed(const Mat& a) {
  Mat t(a.cols, a.rows);
  for (int i = 0; i < a.rows; ++i)
    for (int j = 0; j < a.cols; ++j) t(j, i) = a(i, j);
  return t;
}

// max |a - b| / max(max |b|, 1e-30): the tensors here are O(1), the check is a bit-level one.
double relative_error(const Mat& a, const Mat& b) {
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.cols, b.cols);
  double diff = 0, scale = 1e-30;
  for (size_t e = 0; e < std::min(a.size(), b.size()); ++e) {
    diff = std::max(diff, std::abs(a.v[e] - b.v[e]));
    scale = std::max(scale, std::abs(b.v[e]));
  }
  return diff / scale;
}

struct Case {
  int depth;
  bool causal;
  Activation activation;
};

class IrSemantics : public ::testing::TestWithParam<Case> {};

// A small spec of the case's model (f = 8, K = 5: every shape distinct).
Spec small_spec(const Case& c) {
  Spec spec;
  spec.model = c.depth == 1 ? InnerModel::linear : InnerModel::mlp;
  spec.depth = c.depth;
  spec.causal = c.causal;
  spec.activation = c.activation;
  spec.head_dim = 8;
  spec.expansion = 2;
  spec.mini_batch = 5;
  return spec;
}

TEST_P(IrSemantics, ForwardAndAdjointEqualTheReferenceMiniBatch) {
  const Case c = GetParam();
  const Spec spec = small_spec(c);
  const int K = spec.mini_batch, f = spec.head_dim;
  const std::vector<int> widths = spec.widths();
  std::mt19937_64 rng(1234 + 10 * c.depth + c.causal);

  // Inputs, in the reference's shapes.
  std::map<std::string, Mat> in;
  for (const char* t : {"Q", "K", "V"}) in[t] = random_mat(rng, K, f, -1, 1);
  const Mat lr = random_mat(rng, K, 1, 0.1, 1), tau = random_mat(rng, K, 1, 0.2, 1);
  const Mat gamma = random_mat(rng, 1, f, 0.5, 1.5), beta = random_mat(rng, 1, f, -0.5, 0.5);
  std::vector<Mat> W, b;
  for (int l = 1; l < static_cast<int>(widths.size()); ++l) {
    const double s = 1.0 / std::sqrt(widths[l - 1]);
    W.push_back(random_mat(rng, widths[l - 1], widths[l], -s, s));
    b.push_back(random_mat(rng, 1, widths[l], -0.1, 0.1));
  }
  const Mat dO = random_mat(rng, K, f, -1, 1);
  std::vector<Mat> dW, db;
  for (size_t l = 0; l < W.size(); ++l) {
    dW.push_back(random_mat(rng, W[l].rows, W[l].cols, -1, 1));
    db.push_back(random_mat(rng, 1, b[l].cols, -1, 1));
  }

  // The reference: one mini-batch on its tape, seeded with dO and the next state's gradients.
  ref::Tape tape(spec.activation);
  const ref::ChunkNodes chunk{tape.leaf(in["Q"]), tape.leaf(in["K"]), tape.leaf(in["V"]),
                              tape.leaf(lr), tape.leaf(tau)};
  const ref::Tape::Id g_id = tape.leaf(gamma), b_id = tape.leaf(beta);
  ref::StateNodes theta;
  for (size_t l = 0; l < W.size(); ++l) {
    theta.W.push_back(tape.leaf(W[l]));
    theta.b.push_back(tape.leaf(b[l]));
  }
  const ref::StateNodes theta0 = theta;
  const ref::Tape::Id out = ref::append_minibatch(tape, spec, chunk, g_id, b_id, theta);
  tape.seed(out, dO);
  for (size_t l = 0; l < W.size(); ++l) {
    tape.seed(theta.W[l], dW[l]);
    tape.seed(theta.b[l], db[l]);
  }
  tape.backward();

  // The IR, in its own shapes: lr as a row, tau_last apart.
  const ir::Program program = ir::append_adjoint(ir::build_step(spec));
  std::map<std::string, Mat> inputs = in;
  inputs["lr"] = transposed(lr);
  inputs["tau"] = tau;
  inputs["tau_last"] = Mat(1, 1, &tau.v[K - 1]);
  inputs["gamma"] = gamma;
  inputs["beta"] = beta;
  inputs["dO"] = dO;
  for (size_t l = 0; l < W.size(); ++l) {
    const std::string wn = ir::weight_name(static_cast<int>(l) + 1);
    const std::string bn = ir::bias_name(static_cast<int>(l) + 1);
    inputs[wn] = W[l];
    inputs[bn] = b[l];
    inputs[ir::adjoint(ir::updated(wn))] = dW[l];
    inputs[ir::adjoint(ir::updated(bn))] = db[l];
  }
  const std::vector<Mat> v = evaluate(program, inputs);
  const ir::Program forward = ir::build_step(spec);
  const std::vector<Mat> fv = evaluate(forward, inputs);

  constexpr double kTol = 1e-11;
  EXPECT_LT(relative_error(fv[forward.output_id("O")], tape.value(out)), kTol) << "O";
  for (size_t l = 0; l < W.size(); ++l) {
    const std::string wn = ir::weight_name(static_cast<int>(l) + 1);
    const std::string bn = ir::bias_name(static_cast<int>(l) + 1);
    EXPECT_LT(relative_error(fv[forward.output_id(ir::updated(wn))], tape.value(theta.W[l])), kTol)
        << wn << "'";
    EXPECT_LT(relative_error(fv[forward.output_id(ir::updated(bn))], tape.value(theta.b[l])), kTol)
        << bn << "'";
    EXPECT_LT(relative_error(v[program.output_id(ir::adjoint(wn))], tape.grad(theta0.W[l])), kTol)
        << "d" << wn;
    EXPECT_LT(relative_error(v[program.output_id(ir::adjoint(bn))], tape.grad(theta0.b[l])), kTol)
        << "d" << bn;
  }
  EXPECT_LT(relative_error(v[program.output_id("dQ")], tape.grad(chunk.q)), kTol) << "dQ";
  EXPECT_LT(relative_error(v[program.output_id("dK")], tape.grad(chunk.k)), kTol) << "dK";
  EXPECT_LT(relative_error(v[program.output_id("dV")], tape.grad(chunk.v)), kTol) << "dV";
  EXPECT_LT(relative_error(v[program.output_id("dgamma")], tape.grad(g_id)), kTol) << "dgamma";
  EXPECT_LT(relative_error(v[program.output_id("dbeta")], tape.grad(b_id)), kTol) << "dbeta";
  EXPECT_LT(relative_error(transposed(v[program.output_id("dlr")]), tape.grad(chunk.lr)), kTol)
      << "dlr";
  // tau_last is tau's last entry: its gradient adds there.
  Mat dtau = v[program.output_id("dtau")];
  dtau.v[K - 1] += v[program.output_id("dtau_last")].v[0];
  EXPECT_LT(relative_error(dtau, tape.grad(chunk.tau)), kTol) << "dtau";
}

// The adjoint is linear in its seeds: the adjoint with the state seeds at zero (the query
// outputs' path) plus the one with dO at zero (the state update's path) is the whole adjoint,
// and each of the two is a smaller program.
TEST_P(IrSemantics, TheAdjointsOfTheTwoPathsAddUpToTheWhole) {
  const Case c = GetParam();
  const Spec spec = small_spec(c);
  std::mt19937_64 rng(77 + c.depth);
  const ir::Program whole = ir::append_adjoint(ir::build_step(spec));
  std::map<std::string, Mat> inputs;
  std::set<std::string> state_seeds;
  for (const ir::Op& op : whole.ops) {
    if (op.kind != ir::OpKind::input) continue;
    const ir::Value& v = whole.values[op.out];
    const bool positive = v.name == "lr" || v.name == "tau" || v.name == "tau_last";
    inputs[v.name] = random_mat(rng, v.rows, v.cols, positive ? 0.1 : -1, 1);
    if (v.name.size() > 2 && v.name[0] == 'd' && v.name.back() == '\'') state_seeds.insert(v.name);
  }
  ASSERT_FALSE(state_seeds.empty());
  const ir::Program query_path = ir::with_zero_inputs(whole, state_seeds);
  const ir::Program update_path = ir::with_zero_inputs(whole, {"dO"});
  EXPECT_LT(query_path.ops.size(), whole.ops.size());
  EXPECT_LT(update_path.ops.size(), whole.ops.size());
  const std::vector<Mat> w = evaluate(whole, inputs), q = evaluate(query_path, inputs),
                         u = evaluate(update_path, inputs);
  for (const auto& [role, id] : whole.outputs) {
    Mat sum = q[query_path.output_id(role)];
    const Mat& other = u[update_path.output_id(role)];
    for (size_t e = 0; e < sum.size(); ++e) sum.v[e] += other.v[e];
    EXPECT_LT(relative_error(sum, w[id]), 1e-12) << role;
  }
  EXPECT_THROW(ir::with_zero_inputs(whole, {"no such input"}), std::logic_error);
}

INSTANTIATE_TEST_SUITE_P(
    Models, IrSemantics,
    ::testing::Values(Case{1, true, Activation::gelu_tanh}, Case{1, false, Activation::gelu_tanh},
                      Case{2, true, Activation::gelu_tanh}, Case{2, false, Activation::gelu_tanh},
                      Case{2, true, Activation::relu}, Case{2, true, Activation::silu},
                      Case{3, true, Activation::silu}, Case{4, false, Activation::gelu_tanh}),
    [](const auto& info) {
      const Case& c = info.param;
      return "depth" + std::to_string(c.depth) + (c.causal ? "_causal_" : "_noncausal_") +
             to_string(c.activation);
    });

}  // namespace
}  // namespace ttt
