// codegen_text.hpp: the spellings both code generators (codegen.cpp, tile_codegen.cpp) write:
// f32 literals, element and activation names, the reduction/transpose template names.
#pragma once

#include <fmt/format.h>

#include <string>

#include "compiler/ir.hpp"
#include "compiler/spec.hpp"

namespace ttt::codegen {

// A float literal that round-trips to the same f32 (9 significant digits).
inline std::string float_literal(double x) {
  std::string s = fmt::format("{:.9g}", x);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s + "f";
}

inline const char* elem_type(DType d) {
  return d == DType::f32 ? "float" : d == DType::f16 ? "tttc::half_t" : "tttc::bf16_t";
}

inline const char* activation_constant(Activation a) {
  return a == Activation::gelu_tanh ? "tttc::kGeluTanh"
         : a == Activation::relu    ? "tttc::kRelu"
                                    : "tttc::kSilu";
}

// row_sum, col_sum or transpose: the templates share the op's name.
inline const char* reduction_name(ir::OpKind kind) {
  return kind == ir::OpKind::row_sum   ? "row_sum"
         : kind == ir::OpKind::col_sum ? "col_sum"
                                       : "transpose";
}

}  // namespace ttt::codegen
