// tile_codegen.cpp: lowered steps (tile_lowering) -> CUDA source for the tile path. The stub
// declares one warp-tile variable per live IR value (registers, or a view of the team's shared
// memory) and calls one template of tttc/tile.cuh per op; the CUDA compiler allocates the
// registers of this straight-line code. State, adjoint state and the kernel loops are in
// tttc/tile_driver.cuh.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include "compiler/codegen.hpp"
#include "compiler/codegen_text.hpp"
#include "compiler/tile_lowering.hpp"

namespace ttt::codegen {
namespace {

using plan::StepKind;
using tile::Form;
using tile::Home;

const char* ew_name(ir::Ew e) {
  static const char* names[] = {"kAdd",  "kSub",   "kMul",    "kAct",  "kActD1", "kActD2",
                                "kSqrt", "kRecip", "kAffine", "kTril", "kCopy"};
  return names[static_cast<int>(e)];
}

// The C++ type of a value of this shape in this home.
std::string tile_type(Form form, Home home, int rows, int cols) {
  switch (form) {
    case Form::scalar:
      return "tl::Scalar";
    case Form::per_row:
      return fmt::format("tl::PerRow<{}>", rows);
    case Form::per_col:
      return fmt::format("tl::PerCol<{}>", cols);
    case Form::matrix:
      break;
  }
  static const std::map<Home, const char*> types = {
      {Home::reg, "Tile"}, {Home::smem, "SmemTile"}, {Home::global, "SpillTile"}};
  return fmt::format("tl::{}<{}, {}>", types.at(home), rows, cols);
}

// struct State / DState: this warp's slice of each member, where it lives, and its I/O from the
// packed layout (tile::member_split: by columns, warp `rank` holds columns [rank * C / W,
// (rank + 1) * C / W); by rows, rows [rank * R / W, ...); replicated members are written by warp
// 0 only), or with the _frag methods from the kernels' own layout of a packed state (weights in
// fragment order, warp `rank`'s slice at rank * R * C / W; biases as in the packed layout).
std::string state_struct(const Spec& spec, const std::string& name, const tile::TeamLayout& layout,
                         bool adjoint) {
  const auto& smem_offsets = adjoint ? layout.dstate_offset : layout.state_offset;
  const auto& global_offsets = adjoint ? layout.dstate_global : layout.state_global;
  std::string decl, bind, load, store, zero, atomic, load_frag, store_frag, add_frag;
  for (const auto& [member, full_rows, full_cols, offset, bias] : state_members(spec)) {
    const bool smem = smem_offsets.count(member) > 0, in_global = global_offsets.count(member) > 0;
    const Home home = smem ? Home::smem : in_global ? Home::global : Home::reg;
    const auto [split, rows, cols] =
        tile::member_slice(spec, std::stoi(member.substr(1)), bias, layout.warps);
    const std::string type = tile_type(bias ? Form::per_col : Form::matrix, home, rows, cols);
    const std::string global =
        bias ? fmt::format("tl::GlobalRow<{}>", cols)
             : fmt::format("tl::GlobalTile<{}, {}, {}>", rows, cols, full_cols);
    const std::string frag = bias ? global : fmt::format("tl::FragTile<{}, {}>", rows, cols);
    const long long slice_offset = split == tile::Split::cols   ? cols
                                   : split == tile::Split::rows ? 1LL * rows * full_cols
                                                                : 0;
    const std::string at =
        slice_offset ? fmt::format("{} + {} * rank", offset, slice_offset) : std::to_string(offset);
    const std::string frag_at =
        bias || !slice_offset ? at : fmt::format("{} + {} * rank", offset, rows * cols);
    // Every warp holds a replicated member whole: one writes it.
    const std::string writer_only = slice_offset ? "" : "if (rank == 0) ";
    decl += fmt::format("  {} {};\n", type, member);
    if (smem)
      bind += fmt::format("    {}.base = warp_smem + {};\n", member, smem_offsets.at(member));
    if (in_global)
      bind += fmt::format("    {}.base = warp_global + {};\n", member, global_offsets.at(member));
    const auto reader = [&](const std::string& view, const std::string& where, const char* op) {
      return fmt::format("    {{ const {} g{{const_cast<float*>(src) + {}}}; {}; }}\n", view, where,
                         fmt::format(fmt::runtime(op), member));
    };
    const auto writer = [&](const std::string& view, const std::string& where, const char* op) {
      return fmt::format("    {}{{ {} g{{dst + {}}}; {}(g, {}); }}\n", writer_only, view, where, op,
                         member);
    };
    // A matrix in shared memory meets the packed layout row by row (tl::copy_rows).
    load += reader(global, at, smem && !bias ? "tl::copy_rows({0}, g)" : "tl::assign({0}, g)");
    load_frag += reader(frag, frag_at, "tl::assign({0}, g)");
    store += writer(global, at, smem && !bias ? "tl::copy_rows" : "tl::assign");
    store_frag += writer(frag, frag_at, "tl::assign");
    zero += fmt::format("    tl::fill({}, 0.f);\n", member);
    add_frag += reader(frag, frag_at, "tl::ew<tl::kAdd, 0>({0}, {0}, g)");
    atomic +=
        "    " + writer_only +
        (bias ? fmt::format("tl::atomic_add_row(dst + {}, {});\n", at, member)
              : fmt::format("tl::atomic_add_tile<{}>(dst + {}, {});\n", full_cols, at, member));
  }
  std::string text = fmt::format(
      "struct {} {{\n{}  int rank;\n"
      "  __device__ __forceinline__ void bind(float* warp_smem, float* warp_global, int team_rank) "
      "{{\n"
      "    rank = team_rank;\n{}  }}\n"
      "  __device__ __forceinline__ void load(const float* src) {{\n{}  }}\n"
      "  __device__ __forceinline__ void store(float* dst) const {{\n{}  }}\n"
      "  __device__ __forceinline__ void load_frag(const float* src) {{\n{}  }}\n"
      "  __device__ __forceinline__ void store_frag(float* dst) const {{\n{}  }}\n",
      name, decl, bind.empty() ? "    (void)warp_smem, (void)warp_global;\n" : bind, load, store,
      load_frag, store_frag);
  // The adjoint starts at zero (no dLoss/dtheta_T) and may be summed over the batch.
  if (adjoint)
    text += fmt::format(
        "  __device__ __forceinline__ void zero() {{\n{}  }}\n"
        "  __device__ __forceinline__ void atomic_add_to(float* dst) const {{\n{}  }}\n"
        "  __device__ __forceinline__ void add_frag(const float* src) {{\n{}  }}\n",
        zero, atomic, add_frag);
  return text + "};\n\n";
}

// A backward split's workspace per (b, h, mini-batch) item: the output path's share of the
// adjoint state (one packed state), then f32 partials of the token gradients both paths produce
// (rows padded to 16), which the update path's kernel adds before its one rounding. Split in
// three (Schedule::backward_split_tokens), the adjoint state the chain started the step from
// comes after the share.
struct SplitItemLayout {
  std::map<std::string, long long> partial_offset;  // "dK" -> floats from the item's start
  long long seed_offset = -1;                       // the chain's dW_l', db_l' (split in three)
  long long item_floats = 0;
};

class TileStepWriter {
 public:
  TileStepWriter(const Spec& spec, const tile::LoweredStep& lowered,
                 const tile::ScratchSlots& slots, const SplitItemLayout& split)
      : spec_(spec), L_(lowered), p_(lowered.plan.program), slots_(slots), split_(split) {}

  std::string write(const std::string& function_name) {
    const bool backward = L_.plan.kind == StepKind::backward;
    out_ = fmt::format(
        "  static __device__ __forceinline__ void {}(State& st, {}const "
        "tttc::StepContext<Cfg::Elem>& c, float* smem, const tl::Team& team) {{\n",
        function_name, backward ? "DState& ds, Accum& acc, " : "");
    out_ += fmt::format("    // registers (estimated peak): {} floats per lane\n",
                        L_.peak_register_floats);
    out_ += "    (void)smem;\n    (void)team;\n";
    count_shared_operands();
    position_.clear();
    for (size_t k = 0; k < L_.order.size(); ++k) position_[L_.order[k]] = static_cast<int>(k);
    std::string section;
    for (const int i : L_.order) {
      if (!L_.plan.live[i]) continue;
      const ir::Op& op = p_.ops[i];
      if (op.section != section) {
        section = op.section;
        out_ += fmt::format("    // {}\n", section);
      }
      if (const int by = L_.ops[i].fused_into; by >= 0) {
        out_ += fmt::format("    // %{} is computed by %{}\n", i, by);
        emit_stored_output(op.out);
        continue;
      }
      emit_token_reads(op);
      emit_op(op);
      // A grouped exchange's total exists after its group's barrier (emit_collects stores it).
      if (L_.ops[i].exchange_at < 0) emit_stored_output(op.out);
    }
    emit_state_results();
    return out_ + "  }\n";
  }

 private:
  std::string var(int id) const { return fmt::format("v{}", id); }
  bool is_token_input(int id) const {
    const std::string& name = value(id).name;
    return p_.ops[id].kind == ir::OpKind::input &&
           (name == "Q" || name == "K" || name == "V" || name == "dO");
  }
  // Argument k of op i: a token read for this op (whole or this warp's column slice), or the
  // value itself.
  // A computed value that feeds several matmuls (W1 in K·W1, Q·W1 and the backward's products
  // with W1^T) is split into bf16 parts once, at its first use: the parts of the transposed view
  // are the parts transposed (one movmatrix each), so only the orientation differs between uses.
  struct SplitUses {
    int plain = 0, transposed = 0;  // matmuls that want blocks of the value / of its transpose
    // Transposing costs P movmatrix per block: at the split when stored transposed, else at each
    // transposed use.
    bool store_transposed() const { return 1 + plain < transposed; }
  };
  // The matmul wants blocks of op(A) from A, and of op(B)^T from B (tile.cuh).
  static bool wants_transposed(const ir::Op& op, int side) {
    return side == 0 ? op.trans_a : !op.trans_b;
  }
  void count_shared_operands() {
    split_uses_.clear();
    for (size_t i = 0; i < p_.ops.size(); ++i) {
      const ir::Op& op = p_.ops[i];
      if (!L_.plan.live[i] || op.kind != ir::OpKind::matmul) continue;
      for (int side : {0, 1})
        if (!is_token_input(op.args[side]) && L_.parts[op.args[side]] > 0)
          ++(wants_transposed(op, side) ? split_uses_[op.args[side]].transposed
                                        : split_uses_[op.args[side]].plain);
    }
  }
  // The matmul argument for operand `side`: the value, or its shared split (emitted on first use).
  // A value in shared memory is split at each use instead: a split kept in registers between
  // its uses costs 2 registers per float (mlp2's W1 and W2 slices: 128 each, and spills).
  std::string matmul_arg(const ir::Op& op, int side) {
    const int a = op.args[side];
    if (is_token_input(a) || L_.parts[a] == 0 || place(a).home != Home::reg) return arg(op, side);
    const SplitUses& uses = split_uses_.at(a);
    if (uses.plain + uses.transposed < 2) return arg(op, side);
    const std::string name = var(a) + "_s";
    if (split_emitted_.insert(name).second)
      out_ +=
          fmt::format("    const auto {} = tl::split_operand<{}, {}>({});  // {} matmuls{}\n", name,
                      L_.parts[a], uses.store_transposed(), var(a), uses.plain + uses.transposed,
                      uses.plain && uses.transposed ? ", both orientations" : "");
    return name;
  }
  std::map<int, SplitUses> split_uses_;
  std::map<int, int> position_;  // op id -> its place in L_.order
  std::set<std::string> split_emitted_;

  std::string arg(const ir::Op& op, size_t k) const {
    const int a = op.args[k];
    if (is_token_input(a)) return fmt::format("t{}_{}", op.out, k);
    return var(a);
  }
  // Tokens are read from the step's stage in shared memory (copied ahead by the driver) at every
  // use: keeping them in registers across the step would cost registers other values need.
  void emit_token_reads(const ir::Op& op) {
    static const std::map<std::string, const char*> stages = {
        {"Q", "c.tq"}, {"K", "c.tk"}, {"V", "c.tv"}, {"dO", "c.tdo"}};
    for (size_t k = 0; k < op.args.size(); ++k) {
      const int a = op.args[k];
      if (!is_token_input(a)) continue;
      const bool slice = L_.ops[op.out].token_slice[k];
      const int cols = slice ? value(a).cols / warps() : value(a).cols;
      out_ += fmt::format(
          "    const tl::StagedTokens<Cfg::Elem, {}, {}, Cfg::kStageRowStride> {}{{{}{}}};  // "
          "{}{}\n",
          value(a).rows, cols, arg(op, k), stages.at(value(a).name),
          slice ? fmt::format(" + {} * team.rank", cols) : "", value(a).name,
          slice ? " (this warp's columns)" : "");
    }
  }

  const ir::Value& value(int id) const { return p_.values[id]; }
  const tile::ValuePlace& place(int id) const { return L_.place[id]; }
  int warps() const { return L_.warps; }
  long long slot(int id) const { return tile::scratch_offset(L_.ops[id].scratch_slot, slots_); }
  // Local shape of argument k as op i reads it.
  std::pair<int, int> arg_shape(const ir::Op& op, size_t k) const {
    const int a = op.args[k];
    const auto& slice = L_.ops[op.out].token_slice;
    const bool sliced = k < slice.size() && slice[k];
    return {place(a).rows, sliced ? place(a).cols / warps() : place(a).cols};
  }

  void line(const std::string& text, int id) {
    const ir::Value& v = value(id);
    out_ += fmt::format("    {}  // %{}{} [{}x{}]\n", text, id, v.name.empty() ? "" : " " + v.name,
                        v.rows, v.cols);
  }

  std::string type_of(int id) const {
    const tile::ValuePlace& pl = place(id);
    return tile_type(pl.form, pl.home, pl.rows, pl.cols);
  }
  // The declaration of a computed value.
  std::string declare(int id) const {
    const tile::ValuePlace& pl = place(id);
    if (pl.home == Home::smem)
      return fmt::format("{} {}{{smem + {}}};", type_of(id), var(id), pl.offset);
    if (pl.home == Home::global)
      return fmt::format("{} {}{{c.warp_global + {}}};", type_of(id), var(id), pl.offset);
    return fmt::format("{} {};", type_of(id), var(id));
  }

  bool is_member_name(const std::string& name) const {
    return name.size() > 1 && (name[0] == 'W' || name[0] == 'b') &&
           name.find_first_not_of("0123456789", 1) == std::string::npos;
  }

  void emit_input(int id) {
    const std::string& name = value(id).name;
    static const std::map<std::string, std::string> tokens = {
        {"Q", "c.q, c.sq"}, {"K", "c.k, c.sk"}, {"V", "c.v, c.sv"}, {"dO", "c.dout, c.sdout"}};
    if (tokens.count(name)) {
      return;  // read where used (emit_token_reads)
    } else if (name == "lr") {
      line(fmt::format("{} tl::load_row({}, c.lr, c.valid);", declare(id), var(id)), id);
    } else if (name == "tau") {
      line(
          fmt::format("{} tl::load_column({}, c.tau, {});", declare(id), var(id), spec_.mini_batch),
          id);
    } else if (name == "tau_last") {
      line(fmt::format("{} tl::load_scalar({}, c.tau + c.valid - 1);", declare(id), var(id)), id);
    } else if ((name == "gamma" || name == "beta") && !place(id).split) {
      // Replicated (an MLP's team): a whole row would hold 2 registers per 8 columns for the
      // whole step; read where used instead (an L1 hit).
      line(fmt::format("const tl::GlobalRow<{}> {}{{const_cast<float*>(c.{})}};", place(id).cols,
                       var(id), name),
           id);
    } else if (name == "gamma" || name == "beta") {
      const int cols = place(id).cols;
      line(fmt::format("{} {{ const tl::GlobalRow<{}> g{{const_cast<float*>(c.{}) + {} * "
                       "team.rank}}; tl::assign({}, g); }}",
                       declare(id), cols, name, cols, var(id)),
           id);
    } else if (is_member_name(name)) {
      line(fmt::format("auto& {} = st.{};", var(id), name), id);
    } else if (name.size() > 2 && name[0] == 'd' && name.back() == '\'' &&
               is_member_name(name.substr(1, name.size() - 2))) {
      line(fmt::format("auto& {} = ds.{};", var(id), name.substr(1, name.size() - 2)), id);
    } else {
      throw std::logic_error("tile codegen: no binding for input " + name);
    }
  }

  // A token gradient's f32 partial in the split backward's workspace item (c.partial): the output
  // path's kernel stores it, the update path's adds it before rounding. This warp's slice.
  std::string partial_view(int id) const {
    const tile::ValuePlace& pl = place(id);
    const long long offset = split_.partial_offset.at(value(id).name);
    if (pl.form == Form::per_col)
      return fmt::format("tl::GlobalRow<{}>{{c.partial + {}}}", tile::pad16(pl.cols), offset);
    const int full = pl.split ? pl.cols * warps() : pl.cols;
    return fmt::format("tl::GlobalTile<{}, {}, {}>{{c.partial + {}{}}}", tile::pad16(pl.rows),
                       pl.cols, full, offset,
                       pl.split ? fmt::format(" + {} * team.rank", pl.cols) : "");
  }

  // Token outputs and accumulated gradients are written where they are computed: a warp writes
  // its column slice; replicated values are written by the team's first warp only.
  void emit_stored_output(int id) {
    const std::string& name = value(id).name;
    bool is_output = false;
    for (const auto& [role, vid] : p_.outputs) is_output |= (vid == id && role == name);
    if (!is_output) return;
    const std::string first_warp_only = place(id).split ? "" : "if (team.rank == 0) ";
    // The value written: the value itself, or in the update path of a split backward its sum
    // with the output path's partial, in a register copy (other ops may still read the value).
    std::string stored = var(id), close;
    if (split_.partial_offset.count(name)) {
      if (L_.plan.part == plan::AdjointPart::output_path) {
        out_ += fmt::format("    {{ auto g = {}; {}tl::assign(g, {}); }}  // {}'s partial\n",
                            partial_view(id), first_warp_only, var(id), name);
        return;
      }
      const tile::ValuePlace& pl = place(id);
      stored = var(id) + "_total";
      out_ +=
          fmt::format("    {{ {} {}; tl::ew<tl::kAdd, 0>({}, {}, {});  // + the output path's {}\n",
                      tile_type(pl.form, Home::reg, pl.rows, pl.cols), stored, stored, var(id),
                      partial_view(id), name);
      close = "    }\n";
    }
    static const std::map<std::string, std::string> tokens = {{"O", "c.out, c.sout"},
                                                              {"dQ", "c.dq, c.sdq"},
                                                              {"dK", "c.dk, c.sdk"},
                                                              {"dV", "c.dv, c.sdv"}};
    if (auto it = tokens.find(name); it != tokens.end()) {
      const auto comma = it->second.find(',');
      const std::string ptr = it->second.substr(0, comma), stride = it->second.substr(comma + 2);
      const std::string at =
          place(id).split ? fmt::format("{} + {} * team.rank", ptr, place(id).cols) : ptr;
      out_ += fmt::format("    {}tl::store_tokens({}, {}, {}, c.valid);\n{}", first_warp_only, at,
                          stride, stored, close);
    } else if (name == "dlr") {
      out_ += fmt::format("    {}tl::store_row(c.dlr, {}, c.valid, c.sdlr);\n{}", first_warp_only,
                          stored, close);
    } else if (name == "dtau") {
      out_ += fmt::format("    tl::ew<tl::kAdd, 0>(acc.tau, acc.tau, {});\n", var(id));
    } else if (name == "dtau_last") {
      out_ += fmt::format("    tl::add_at_row(acc.tau, {}, c.valid - 1);\n", var(id));
    } else if (name == "dgamma" || name == "dbeta") {
      out_ +=
          fmt::format("    tl::ew<tl::kAdd, 0>(acc.{0}, acc.{0}, {1});\n", name.substr(1), var(id));
    }
  }

  // The new state (forward, advance) or the adjoint of the previous state (backward) back into
  // the persistent members, unless it was computed in place.
  void emit_state_results() {
    const bool backward = L_.plan.kind == StepKind::backward;
    auto has_input = [&](const std::string& name) {
      for (const ir::Op& op : p_.ops)
        if (op.kind == ir::OpKind::input && value(op.out).name == name) return true;
      return false;
    };
    for (const auto& [role, id] : p_.outputs) {
      if (!L_.plan.live[id]) continue;
      std::string member;
      if (backward && role.size() > 1 && role[0] == 'd' && is_member_name(role.substr(1)))
        member = "ds." + role.substr(1);
      else if (!backward && role.back() == '\'' && is_member_name(role.substr(0, role.size() - 1)))
        member = "st." + role.substr(0, role.size() - 1);
      if (member.empty()) continue;
      const std::string source_name =
          backward ? fmt::format("d{}'", role.substr(1)) : role.substr(0, role.size() - 1);
      // The output path has no dW' (a zero seed): nothing can have been computed in place.
      const int source = has_input(source_name) ? p_.input_id(source_name) : -1;
      if (source >= 0 && place(id).home != Home::reg && place(source).home == place(id).home &&
          place(id).offset == place(source).offset)
        out_ += fmt::format("    // {} computed in place ({})\n", member, var(id));
      else
        out_ += fmt::format("    tl::assign({}, {});\n", member, var(id));
    }
  }

  // Where op `id`'s result becomes available in the step: the position of the op that computes
  // it (inputs and the state: before the first op).
  int ready_at(int id) const {
    if (p_.ops[id].kind == ir::OpKind::input) return -1;
    const int by = L_.ops[id].fused_into;
    return position_.at(by >= 0 ? by : id);
  }
  // The state, its adjoint and their updates (W1, W1', dW1', dW1, ...): values summed over the
  // whole sequence.
  bool carries_state(int id) const {
    std::string name = value(id).name;
    if (!name.empty() && name.back() == '\'') name.pop_back();
    if (name.size() > 2 && name[0] == 'd') name.erase(0, 1);
    return is_member_name(name);
  }
  // A matmul's addend seeds its accumulators (tl::seed) when it is ready before the last of the
  // operands; one computed later is added after the MMAs, which then need not wait for it (W1's
  // forward: Q·W1 + b1 is the addend of the product that follows it). A state's update is never
  // seeded: the tensor cores' f32 accumulation does not round to nearest, and the state's
  // magnitude in the accumulator would cost its low bits at every step (measured: 2.4e-5 in W1'
  // of an f32 spec after 148 steps, against its 1e-5 gate).
  std::string addend_arg(const ir::Op& op) const {
    const int d = op.args[2];
    const bool seeds = !carries_state(d) && !carries_state(op.out) &&
                       ready_at(d) < std::max(ready_at(op.args[0]), ready_at(op.args[1]));
    return seeds ? fmt::format("tl::seed({})", arg(op, 2)) : arg(op, 2);
  }

  // The [m, n] shape one warp computes of a matmul.
  std::pair<int, int> product_shape(const ir::Op& op) const {
    const auto [ar, ac] = arg_shape(op, 0);
    const auto [br, bc] = arg_shape(op, 1);
    return {op.trans_a ? ac : ar, op.trans_b ? br : bc};
  }
  void emit_matmul(const ir::Op& op) {
    const int id = op.out;
    const tile::OpPlan& plan = L_.ops[id];
    const auto [ar, ac] = arg_shape(op, 0);
    const int kd = op.trans_a ? ar : ac;
    const auto [m, n] = product_shape(op);
    const bool has_d = op.args.size() > 2;
    const std::string head =
        fmt::format("tl::matmul<{}, {}, {}, {}, {}, {}, {}>", L_.parts[op.args[0]],
                    L_.parts[op.args[1]], op.trans_a, op.trans_b, m, n, kd);
    if (plan.reduce == tile::TeamReduce::none) {
      const std::string a = matmul_arg(op, 0), b = matmul_arg(op, 1);
      line(fmt::format("{} {}({}, {}, {}, {}, {}, {});", declare(id), head, var(id), a, b,
                       float_literal(op.alpha), has_d ? addend_arg(op) : "tl::NoAddend{}",
                       float_literal(has_d ? op.beta : 0.0)),
           id);
      return;
    }
    // The contraction runs over split columns: every warp's partial product meets in scratch.
    const std::string partial = var(id) + "_p";
    const std::string a = matmul_arg(op, 0), b = matmul_arg(op, 1);
    std::string text =
        fmt::format("tl::Tile<{}, {}> {}; {}({}, {}, {}, {}, tl::NoAddend{{}}, 0.f);", m, n,
                    partial, head, partial, a, b, float_literal(op.alpha));
    if (grouped(id)) {
      line(text + fmt::format(" tl::post_sum<{}>({}, team, {});{}", warps(), partial, slot(id),
                              collected_at(id)),
           id);
      if (!plan.exchanged.empty()) emit_collects(id);
      return;
    }
    if (plan.reduce == tile::TeamReduce::product_all)
      text += fmt::format(" tl::team_sum<{}>({}, team, {}); {} tl::assign({}, {});", warps(),
                          partial, slot(id), declare(id), var(id), partial);
    else
      text += fmt::format(" {} tl::team_sum_scatter<{}>({}, {}, team, {});", declare(id), warps(),
                          var(id), partial, slot(id));
    if (has_d)
      text += fmt::format(" tl::ew<tl::kAdd, 0>({}, {}, {});", var(id), var(id), arg(op, 2));
    line(text, id);
  }

  void emit_op(const ir::Op& op) {
    const int id = op.out;
    switch (op.kind) {
      case ir::OpKind::input:
        emit_input(id);
        return;
      case ir::OpKind::matmul:
        emit_matmul(op);
        return;
      case ir::OpKind::elementwise: {
        if (L_.ops[id].rsqrt) {
          line(fmt::format("{} tl::ew<tl::kRsqrt, kAct>({}, {});", declare(id), var(id),
                           var(p_.ops[op.args[0]].args[0])),
               id);
          return;
        }
        const std::string b = op.args.size() > 1 ? ", " + arg(op, 1) : "";
        line(fmt::format("{} tl::ew<tl::{}, kAct>({}, {}{}, {}, {});", declare(id), ew_name(op.ew),
                         var(id), arg(op, 0), b, float_literal(op.s), float_literal(op.c)),
             id);
        return;
      }
      case ir::OpKind::row_sum:
      case ir::OpKind::col_sum:
      case ir::OpKind::transpose: {
        const char* fn = reduction_name(op.kind);
        const tile::OpPlan& plan = L_.ops[id];
        if (plan.second_moment >= 0) {
          line(fmt::format("{} {} tl::{}<{}>({}, {}, {}, team, {});{}", declare(id),
                           declare(plan.second_moment),
                           grouped(id) ? "post_mean_m2" : "row_mean_m2", warps(), var(id),
                           var(plan.second_moment), arg(op, 0), slot(id), collected_at(id)),
               id);
          if (!plan.exchanged.empty()) emit_collects(id);
          return;
        }
        std::string text = fmt::format("{} tl::{}({}, {});", declare(id), fn, var(id), arg(op, 0));
        if (plan.deferred_to >= 0)
          text += fmt::format(" /* total with %{} */", plan.deferred_to);
        else if (plan.reduce == tile::TeamReduce::rows)
          text +=
              fmt::format(" tl::{}<{}>(team, {}, {});{}", grouped(id) ? "post_sums" : "team_sums",
                          warps(), slot(id), summed_values(id), collected_at(id));
        line(text, id);
        if (!plan.exchanged.empty()) emit_collects(id);
        return;
      }
      case ir::OpKind::fill:
        line(fmt::format("{} tl::fill({}, {});", declare(id), var(id), float_literal(op.c)), id);
        return;
    }
  }

  // Exchanges that share a barrier (tile::OpPlan::exchange_at): each member posts where it is
  // computed; the group's last one waits for the team, then every member collects its total.
  bool grouped(int id) const {
    return L_.ops[id].exchange_at >= 0 || !L_.ops[id].exchanged.empty();
  }
  std::string collected_at(int id) const {
    const int at = L_.ops[id].exchange_at;
    return at >= 0 ? fmt::format(" /* collected at %{} */", at) : "";
  }
  // The sums one row exchange completes: those deferred to it, then its own.
  std::string summed_values(int id) const {
    std::string values;
    for (int other : L_.ops[id].completes) values += var(other) + ", ";
    return values + var(id);
  }
  void emit_collects(int leader) {
    const tile::OpPlan& plan = L_.ops[leader];
    std::string members;
    for (int m : plan.exchanged) members += fmt::format("%{}, ", m);
    out_ += fmt::format("    team.sync();  // the exchanges of {}%{}\n", members, leader);
    std::vector<int> all = plan.exchanged;
    all.push_back(leader);
    for (int id : all) {
      const ir::Op& op = p_.ops[id];
      const tile::OpPlan& o = L_.ops[id];
      if (op.kind == ir::OpKind::matmul) {
        const auto [m, n] = product_shape(op);
        std::string text = fmt::format(
            "{} tl::{}<{}, {}, {}>({}, team, {});", declare(id),
            o.reduce == tile::TeamReduce::product_all ? "collect_sum" : "collect_sum_scatter",
            warps(), m, n, var(id), slot(id));
        if (op.args.size() > 2)
          text += fmt::format(" tl::ew<tl::kAdd, 0>({}, {}, {});", var(id), var(id), arg(op, 2));
        line(text, id);
      } else if (o.second_moment >= 0) {
        line(fmt::format("tl::collect_mean_m2<{}, {}>({}, {}, team, {});", warps(),
                         place(op.args[0]).cols, var(id), var(o.second_moment), slot(id)),
             id);
      } else {
        line(fmt::format("tl::collect_sums<{}>(team, {}, {});", warps(), slot(id),
                         summed_values(id)),
             id);
      }
      if (id != leader) emit_stored_output(id);  // the leader's: after emit_op, as any op's
    }
  }

  const Spec& spec_;
  const tile::LoweredStep& L_;
  const ir::Program& p_;
  tile::ScratchSlots slots_;
  const SplitItemLayout& split_;
  std::string out_;
};

}  // namespace

SplitItemLayout split_item_layout(
    const Spec& spec, const std::vector<std::pair<std::string, tile::LoweredStep>>& steps) {
  auto produces = [&](const std::string& step, const std::string& role) {
    for (const auto& [name, L] : steps)
      if (name == step)
        return L.plan.program.outputs.count(role) > 0 &&
               L.plan.live[L.plan.program.output_id(role)];
    return false;
  };
  SplitItemLayout layout{.item_floats = spec.state_floats()};
  const bool three = std::any_of(steps.begin(), steps.end(),
                                 [](const auto& step) { return step.first == "backward_tokens"; });
  if (three) {
    layout.seed_offset = layout.item_floats;
    layout.item_floats += spec.state_floats();
  }
  const long long rows = tile::pad16(spec.mini_batch);
  for (const char* role : {"dQ", "dK", "dV", "dlr"})
    if (produces("backward_output", role) &&
        produces(three ? "backward_tokens" : "backward_update", role)) {
      layout.partial_offset[role] = layout.item_floats;
      layout.item_floats += std::string(role) == "dlr" ? rows : rows * spec.head_dim;
    }
  layout.item_floats = (layout.item_floats + 15) / 16 * 16;
  return layout;
}

// (b, h, mini-batch) items one team of a query kernel takes in turn: the next item's tokens are
// staged while the current one computes.
constexpr int kQueryItemsPerTeam = 4;

std::string fragment_checkpoint_unpack(const Spec& spec, int warps) {
  std::string body;
  for (const StateMember& m : state_members(spec)) {
    const std::string at =
        fmt::format("(packed + {0}, fragments + {0});  // {1}\n", m.offset, m.name);
    if (m.bias) {  // biases keep the packed layout (GlobalRow)
      body += fmt::format("    tttc::copy_row<{}>{}", m.cols, at);
      continue;
    }
    const tile::Split split = tile::member_split(spec, std::stoi(m.name.substr(1)), false, warps);
    const char* kind = split == tile::Split::cols   ? "kFragmentCols"
                       : split == tile::Split::rows ? "kFragmentRows"
                                                    : "kFragmentWhole";
    body += fmt::format("    tttc::unpack_fragments<{}, {}, tttc::{}, {}>{}", m.rows, m.cols, kind,
                        warps, at);
  }
  return fmt::format(
      "  // The tile forward's checkpoints (teams of {} warps) into the packed layout.\n"
      "  static __device__ __forceinline__ void unpack_checkpoint(float* packed, const float* "
      "fragments) {{\n{}  }}\n",
      warps, body);
}

Generated generate_tile(const Spec& spec, const Schedule& schedule, KernelKind kind) {
  Generated g{.kind = kind, .kernel_name = fmt::format("tttc_{}", to_string(kind))};
  const bool backward = kind == KernelKind::backward;
  const int warps = schedule.team_warps;
  const tile::TeamLayout layout =
      tile::team_layout(spec, warps, backward, schedule.register_state, schedule.global_state);
  const bool query_split = !backward && schedule.query_split;
  const bool backward_split = backward && schedule.backward_split;
  const std::vector<tile::KernelStep> kernel_steps = tile::kernel_steps(
      spec, backward, query_split, backward_split, schedule.backward_split_tokens);
  const tile::LoweredKernel lowered =
      tile::lower_kernel(spec, kernel_steps, layout, schedule.register_budget, backward,
                         256LL * schedule.tile_shared_kib);
  std::vector<std::pair<std::string, tile::LoweredStep>> steps;
  for (size_t i = 0; i < kernel_steps.size(); ++i)
    steps.emplace_back(kernel_steps[i].name, lowered.steps[i]);
  const tile::ScratchSlots& slots = lowered.slots;
  const long long warp_floats = lowered.warp_floats;
  const SplitItemLayout split = backward_split ? split_item_layout(spec, steps) : SplitItemLayout{};
  const long long scratch = tile::scratch_floats(slots);
  const tile::StageLayout stage = tile::stage_layout(spec, backward);
  const long long team_floats = scratch + 2 * stage.stage_bytes / 4 + warps * warp_floats;
  const int teams = schedule.teams_per_cta;
  g.threads = 32 * warps * teams;
  g.heads_per_cta = teams;
  g.shared_bytes = 4 * team_floats * teams;
  // Per (b, h): the group's recomputed states (backward, groups longer than 1), then each warp's
  // global region.
  const long long group_states =
      backward && spec.checkpoint_group > 1 ? 1LL * spec.checkpoint_group * spec.state_floats() : 0;
  g.workspace_floats = group_states + warps * lowered.warp_global;

  std::string src = source_head(to_string(kind), " (tile lowering)", spec, schedule,
                                "tttc/tile_driver.cuh", "namespace tl = tttc::tile;\n\n");
  src += fmt::format(
      "  static constexpr int kK = {}, kF = {}, kGroup = {}, kTeams = {}, kWarps = {}, "
      "kFeatureSlices = {};\n",
      spec.mini_batch, spec.head_dim, spec.checkpoint_group, teams, warps,
      tile::feature_slices(spec, warps));
  src += fmt::format(
      "  static constexpr long long kS = {}, kTeamSmemFloats = {}, kScratchFloats = {}, "
      "kWarpSmemFloats = {};\n",
      spec.state_floats(), team_floats, scratch, warp_floats);
  src += fmt::format(
      "  static constexpr int kStageTensors = {}, kStageRowStride = {}, kStageTensorBytes = {}, "
      "kStageBytes = {};\n",
      stage.tensors, stage.row_stride, stage.tensor_bytes, stage.stage_bytes);
  // Checkpoints in fragment order (FragTile) where the tile forward writes them for tile kernels
  // or for none, or for an arena backward that converts each one it reads
  // (Schedule::convert_checkpoints, Cfg::unpack_checkpoint). An arena forward writes the packed
  // layout.
  const bool frag_checkpoints = schedule.lowering == "tile" &&
                                (!spec.build_backward || schedule.backward_lowering == "tile" ||
                                 schedule.convert_checkpoints);
  src += fmt::format("  static constexpr bool kFragmentCheckpoints = {};\n", frag_checkpoints);
  src += fmt::format(
      "  static constexpr long long kWorkspaceFloats = {}, kGlobalOffset = {}, kWarpGlobalFloats = "
      "{};\n",
      g.workspace_floats, group_states, lowered.warp_global);
  if (backward_split)
    src += fmt::format("  static constexpr long long kItemFloats = {}, kSeedOffset = {};\n",
                       split.item_floats, split.seed_offset);
  if (query_split || backward_split)
    src += fmt::format("  static constexpr int kQueryItems = {};\n", kQueryItemsPerTeam);
  src += "};\n";
  src += fmt::format("constexpr int kAct = {};\n\n", activation_constant(spec.activation));
  src += state_struct(spec, "TeamState", layout, false);
  if (backward) src += state_struct(spec, "TeamDState", layout, true);
  src += "struct Step {\n  using State = TeamState;\n";
  if (backward)
    src += fmt::format("  using DState = TeamDState;\n  using Accum = tttc::Accum<{}, {}>;\n",
                       spec.mini_batch, spec.head_dim / tile::feature_slices(spec, warps));
  for (const auto& [name, step] : steps)
    src += TileStepWriter(spec, step, slots, split).write(name);
  src += "};\n\n}  // namespace\n\n";
  const char* params = backward ? "BackwardParams" : "ForwardParams";
  auto entry = [&](const std::string& name, const std::string& driver) {
    src += fmt::format(
        "extern \"C\" __global__ void __launch_bounds__({}) {}(const tttc::{} p) {{\n"
        "  tttc::tile_{}_kernel<Cfg, Step>(p);\n}}\n",
        g.threads, name, params, driver);
  };
  if (query_split) {
    g.query_kernel_name = g.kernel_name + "_query";
    g.items_per_team = kQueryItemsPerTeam;
    entry(g.kernel_name, "recurrence");
    src += "\n";
    entry(g.query_kernel_name, "query");
  } else if (backward_split) {
    g.output_kernel_name = g.kernel_name + "_output";
    g.items_per_team = kQueryItemsPerTeam;
    g.item_workspace_floats = split.item_floats;
    entry(g.output_kernel_name, "backward_output");
    src += "\n";
    entry(g.kernel_name, "backward_chain");
    if (schedule.backward_split_tokens) {
      g.tokens_kernel_name = g.kernel_name + "_tokens";
      src += "\n";
      entry(g.tokens_kernel_name, "backward_tokens");
    }
  } else {
    entry(g.kernel_name, to_string(kind));
  }
  g.source = std::move(src);
  return g;
}

}  // namespace ttt::codegen
