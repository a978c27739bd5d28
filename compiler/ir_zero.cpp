// ir_zero.cpp: a step program with some inputs fixed at zero, the zeros propagated (ops that
// then compute zero are dropped and their readers simplified). With one of the backward's seeds
// at zero it is the adjoint of one path alone: the query outputs' (dW' = 0) or the state
// update's (dO = 0); the two add up to the whole adjoint, which is linear in its seeds.
#include <fmt/format.h>

#include <set>
#include <stdexcept>

#include "compiler/ir.hpp"

namespace ttt::ir {
namespace {

constexpr int kZero = -1;  // a value known to be zero: no op computes it

class ZeroPropagation {
 public:
  ZeroPropagation(const Program& from, const std::set<std::string>& zero)
      : from_(from), zero_(zero), map_(from.values.size(), kZero) {
    out_.activation = from.activation;
  }

  Program run() {
    for (const Op& op : from_.ops) map_[op.out] = lower(op);
    std::set<int> claimed;
    for (const auto& [role, id] : from_.outputs) {
      const ir::Value& v = from_.values[id];
      int mapped = map_[id];
      // Every output keeps a value of its own (outputs are written to their own buffers).
      if (mapped == kZero)
        mapped = emit({.kind = OpKind::fill, .c = 0.0}, v.rows, v.cols, "");
      else if (claimed.count(mapped) || out_.ops[mapped].kind == OpKind::input)
        mapped = emit({.kind = OpKind::elementwise, .args = {mapped}, .ew = Ew::broadcast}, v.rows,
                      v.cols, "");
      claimed.insert(mapped);
      out_.values[mapped].name = role;
      out_.outputs[role] = mapped;
    }
    return std::move(out_);
  }

 private:
  int emit(Op op, int rows, int cols, const std::string& name) {
    op.out = static_cast<int>(out_.values.size());
    out_.values.push_back({name, rows, cols});
    out_.ops.push_back(op);
    return op.out;
  }
  // `id` (of the new program) as a value of shape rows x cols: itself, or broadcast to it.
  int shaped(int id, int rows, int cols) {
    if (out_.values[id].rows == rows && out_.values[id].cols == cols) return id;
    return emit(
        {.kind = OpKind::elementwise, .args = {id}, .ew = Ew::broadcast, .section = section_}, rows,
        cols, "");
  }
  int affine(int id, double s, int rows, int cols) {
    return shaped(emit({.kind = OpKind::elementwise,
                        .args = {id},
                        .ew = Ew::affine,
                        .s = s,
                        .section = section_},
                       out_.values[id].rows, out_.values[id].cols, ""),
                  rows, cols);
  }
  int zeros(int rows, int cols) {
    return emit({.kind = OpKind::fill, .c = 0.0, .section = section_}, rows, cols, "");
  }

  // The new value of op's output, or kZero.
  int lower(const Op& op) {
    const ir::Value& v = from_.values[op.out];
    section_ = op.section;
    std::vector<int> args;
    bool any_zero = false;
    for (int a : op.args) {
      args.push_back(map_[a]);
      any_zero |= map_[a] == kZero;
    }
    auto copy = [&](std::vector<int> new_args) {
      Op o = op;
      o.args = std::move(new_args);
      return emit(o, v.rows, v.cols, v.name);
    };
    switch (op.kind) {
      case OpKind::input:
        return zero_.count(v.name) ? kZero : copy({});
      case OpKind::fill:
        return op.c == 0.0 ? kZero : copy({});
      case OpKind::matmul: {
        const bool product_zero = args[0] == kZero || args[1] == kZero;
        const bool has_d = args.size() > 2;
        if (!product_zero) {
          if (has_d && args[2] == kZero) {
            Op o = op;
            o.args = {args[0], args[1]};
            o.beta = 0.0;
            return emit(o, v.rows, v.cols, v.name);
          }
          return copy(args);
        }
        if (!has_d || args[2] == kZero) return kZero;
        return op.beta == 1.0 ? args[2] : affine(args[2], op.beta, v.rows, v.cols);
      }
      case OpKind::elementwise:
        return lower_elementwise(op, args, any_zero, v, copy);
      case OpKind::row_sum:
      case OpKind::col_sum:
      case OpKind::transpose:
        return any_zero ? kZero : copy(args);
    }
    throw std::logic_error("zero propagation: unknown op");
  }

  template <class Copy>
  int lower_elementwise(const Op& op, std::vector<int>& args, bool any_zero, const ir::Value& v,
                        Copy& copy) {
    if (!any_zero) return copy(args);
    const int a = args[0], b = args.size() > 1 ? args[1] : kZero;
    switch (op.ew) {
      case Ew::add:
        if (a == kZero && b == kZero) return kZero;
        return shaped(a == kZero ? b : a, v.rows, v.cols);
      case Ew::sub:
        if (a == kZero && b == kZero) return kZero;
        return b == kZero ? shaped(a, v.rows, v.cols) : affine(b, -1.0, v.rows, v.cols);
      case Ew::mul:
      case Ew::tril:
      case Ew::broadcast:
      case Ew::act:  // every activation has act(0) = 0 (GELU, ReLU, SiLU)
        return kZero;
      case Ew::affine:
        if (op.c == 0.0) return kZero;
        return emit({.kind = OpKind::fill, .c = op.c, .section = section_}, v.rows, v.cols, v.name);
      case Ew::act_d1:
      case Ew::act_d2:
      case Ew::sqrt:
      case Ew::recip:  // not zero at zero: computed from a materialised zero
        for (int& x : args)
          if (x == kZero) x = zeros(v.rows, v.cols);
        return copy(args);
    }
    throw std::logic_error("zero propagation: unknown elementwise op");
  }

  const Program& from_;
  const std::set<std::string>& zero_;
  std::vector<int> map_;  // old value id -> new value id or kZero
  Program out_;
  std::string section_;
};

}  // namespace

Program with_zero_inputs(const Program& program, const std::set<std::string>& zero) {
  for (const std::string& name : zero) program.input_id(name);  // throws on an unknown name
  return ZeroPropagation(program, zero).run();
}

}  // namespace ttt::ir
