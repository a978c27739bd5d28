// spec.hpp: the tttc spec language, i.e. WHAT to compute (never how).
// Owns the Spec value type, parsing/validation of spec JSON with errors that name the file and
// JSON path, the canonical form (defaults filled, keys sorted, numbers exact) and its SHA-256
// signature. Schedules (how) live in schedule.hpp.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "compiler/activation.hpp"

namespace ttt {

enum class InnerModel { linear, mlp };
// i32 types index tensors only (decode slots and positions, docs/decode.md), never a spec's dtype.
enum class DType { f32, f16, bf16, i32 };
// How the tensor cores multiply (docs/spec.md): f32-equivalent products, tf32 products, or
// plain bf16 operands (f32 accumulation, state and LayerNorm in every mode). Chosen by the user,
// never by the tuner: it changes results beyond rounding order.
enum class Precision { accurate, tf32, bf16 };

const char* to_string(InnerModel m);
const char* to_string(Activation a);
const char* to_string(DType d);
const char* to_string(Precision p);
int dtype_bytes(DType d);

struct Spec {
  std::string name;  // human label; not part of the signature (it changes no computation)
  InnerModel model = InnerModel::mlp;
  int depth = 2;      // number of weight matrices; 1 for linear
  int expansion = 4;  // hidden width = expansion * head_dim (mlp only)
  Activation activation = Activation::gelu_tanh;
  int head_dim = 64;
  int mini_batch = 16;
  bool causal = true;
  DType dtype = DType::bf16;
  Precision precision = Precision::accurate;
  int checkpoint_group = 1;
  double ln_eps = 1e-6;
  bool build_forward = true;
  bool build_backward = true;
  bool build_decode = false;  // the token-by-token decode kernel (docs/decode.md); causal only

  int hidden_dim() const { return model == InnerModel::linear ? head_dim : expansion * head_dim; }
  // Feature widths through the inner model: {f, h, ..., h, f}; depth + 1 entries.
  std::vector<int> widths() const;
  // Number of f32 values in one head's state (all W_l and b_l).
  long long state_floats() const;
};

// One member of a head's packed state: W_l (rows x cols, row-major: d_{l-1} x d_l) or b_l
// (one row of d_l).
struct StateMember {
  std::string name;  // "W1", "b1", ...
  int rows, cols;
  long long offset;  // in floats from the start of the head's state
  bool bias;
  long long floats() const { return 1LL * rows * cols; }
};
// The one definition of the packed state layout: W1, b1, W2, b2, ... back to back. The code
// generators, the runtime's state_layout, the checker and the C API read it.
std::vector<StateMember> state_members(const Spec& spec);

// A spec problem located in its source: "<file>: <json path>: <message>".
class SpecError : public std::runtime_error {
 public:
  SpecError(std::string file, std::string json_path, std::string message);
  const std::string& file() const { return file_; }
  const std::string& json_path() const { return path_; }
  const std::string& message() const { return message_; }

 private:
  std::string file_, path_, message_;
};

// Parse and validate spec text. `origin` names the source in errors (a file path or "<string>").
Spec parse_spec(const std::string& text, const std::string& origin = "<string>");
Spec load_spec_file(const std::string& path);
// Checks a Spec built in code against the rules the parser applies; error paths name the JSON
// field that would hold the bad value. Parsed specs are always valid. `origin` names the caller.
void validate_spec(const Spec& spec, const std::string& origin = "<spec>");

// Canonical JSON (defaults filled in, keys sorted, no whitespace, exact numbers). Excludes `name`.
std::string canonical_json(const Spec& spec);
// Hex SHA-256 of canonical_json: identical on every machine and build.
std::string spec_signature(const Spec& spec);
// Full JSON including the name (for display and cache metadata).
nlohmann::json spec_to_json(const Spec& spec);

}  // namespace ttt
