// activation.hpp: the one table of the inner model's activations. The spec parser reads the
// names, the code generators emit the ids, the CPU reference and tests/compiler iterate the rows.
// Adding an activation (docs/design.md, "Extension points"): an enumerator and a row here, the
// device formula in templates/tttc/numeric.cuh (a case on the id) and the reference formula in
// compiler/reference/activation.cpp.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string_view>

namespace ttt {

// The enumerator's value is the id the device code switches on (tttc::activation<Act, Order>).
enum class Activation { gelu_tanh = 0, relu = 1, silu = 2 };

struct ActivationInfo {
  Activation value;
  std::string_view name;         // the spelling in spec JSON and in the canonical form
  std::string_view device_name;  // numeric.cuh's label for the id (readability only)
  constexpr int id() const { return static_cast<int>(value); }
};

inline constexpr ActivationInfo kActivations[] = {
    {Activation::gelu_tanh, "gelu_tanh", "kGeluTanh"},
    {Activation::relu, "relu", "kRelu"},
    {Activation::silu, "silu", "kSilu"},
};

// Row i describes the activation with id i, so an id indexes the table.
constexpr bool activation_rows_in_id_order() {
  for (std::size_t i = 0; i < std::size(kActivations); ++i)
    if (kActivations[i].id() != static_cast<int>(i)) return false;
  return true;
}
static_assert(activation_rows_in_id_order(), "kActivations: row i must hold the id i");

constexpr const ActivationInfo& activation_info(Activation a) {
  const auto i = static_cast<std::size_t>(a);
  if (i >= std::size(kActivations)) throw std::out_of_range("activation id outside kActivations");
  return kActivations[i];
}

}  // namespace ttt
