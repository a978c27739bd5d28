// tile_lowering.cpp: forms, distributions, homes, shared-memory offsets and team reductions of a
// step's values for the tile path (see tile_lowering.hpp). Registers are allocated by the CUDA
// compiler from the straight-line code; this file only estimates pressure, to decide what must
// live in shared memory instead.
#include "compiler/tile_lowering.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

namespace ttt::tile {
namespace {

Form form_of(int rows, int cols) {
  if (rows == 1 && cols == 1) return Form::scalar;
  if (cols == 1) return Form::per_row;
  if (rows == 1) return Form::per_col;
  return Form::matrix;
}

int lane_floats_of(Form form, int rows, int cols) {
  switch (form) {
    case Form::scalar:
      return 1;
    case Form::per_row:
      return pad16(rows) / 8;
    case Form::per_col:
      return pad16(cols) / 4;
    case Form::matrix:
      return lane_floats(rows, cols);
  }
  return 0;
}

// "W3" -> true: a state member's name (weights W_l, biases b_l).
bool is_state_name(const std::string& name) {
  return name.size() > 1 && (name[0] == 'W' || name[0] == 'b') &&
         std::all_of(name.begin() + 1, name.end(), ::isdigit);
}

bool is_token(const std::string& name) {
  return name == "Q" || name == "K" || name == "V" || name == "dO";
}

// bf16 parts per matmul operand (0 selects tf32 products).
int operand_parts(const Spec& spec, const std::string& name) {
  switch (spec.precision) {
    case Precision::bf16:
      return 1;
    case Precision::tf32:
      return 0;
    case Precision::accurate:
      break;
  }
  // Tokens are exact in bf16 when stored as bf16, in two parts as f16 (11 significant bits),
  // in three as f32; any computed value is f32 and needs two parts in a 16-bit spec (the x3 rule)
  // and three in an f32 spec, whose tolerance is f32's.
  if (is_token(name)) return spec.dtype == DType::bf16 ? 1 : spec.dtype == DType::f16 ? 2 : 3;
  return spec.dtype == DType::f32 ? 3 : 2;
}

// m16n8k16-sized products per output tile for operands in pa and pb bf16 parts (parts i, j with
// i + j below the larger count, tile.cuh), or tf32 (0 parts: two k8 products).
int products_per_tile(int pa, int pb) {
  if (pa == 0 || pb == 0) return 2;
  int n = 0;
  for (int i = 0; i < pa; ++i)
    for (int j = 0; j < pb; ++j) n += i + j < std::max(pa, pb);
  return n;
}

// Outputs stored (or accumulated) right where they are defined.
bool stored_at_definition(const std::string& role) {
  return role == "O" || role == "dQ" || role == "dK" || role == "dV" || role == "dlr" ||
         role == "dtau" || role == "dtau_last" || role == "dgamma" || role == "dbeta";
}

// What a dimension runs over: nothing (size 1), tokens of the mini-batch, features (the model
// width f) or an MLP's hidden units (the dimensions a team splits: Split).
enum class Dim { one, token, feature, hidden, unknown };
using Dims = std::pair<Dim, Dim>;

// The state member an input or output name refers to ("W2", "dW2'", "W2'", "dW2" -> "W2").
std::string member_base(std::string name) {
  if (!name.empty() && name.back() == '\'') name.pop_back();
  if (name.size() > 2 && name[0] == 'd' && is_state_name(name.substr(1))) name = name.substr(1);
  return is_state_name(name) ? name : "";
}

// depth: the spec's (1 for linear). W_l runs from width l - 1 to width l: features at the ends,
// hidden units between.
Dims input_dims(const std::string& name, int depth) {
  if (is_token(name)) return {Dim::token, Dim::feature};
  if (name == "lr") return {Dim::one, Dim::token};
  if (name == "tau") return {Dim::token, Dim::one};
  if (name == "tau_last") return {Dim::one, Dim::one};
  if (name == "gamma" || name == "beta") return {Dim::one, Dim::feature};
  const std::string base = member_base(name);
  if (!base.empty()) {
    const int layer = std::stoi(base.substr(1));
    const Dim in = layer == 1 ? Dim::feature : Dim::hidden;
    const Dim out = layer == depth ? Dim::feature : Dim::hidden;
    return {base[0] == 'W' ? in : Dim::one, out};
  }
  throw std::logic_error("tile lowering: no dimensions for input " + name);
}

// Dimension kinds of every live value, propagated from the inputs.
std::vector<Dims> value_dims(const ir::Program& p, const std::vector<bool>& live, int depth) {
  const int n = static_cast<int>(p.ops.size());
  std::vector<Dims> d(n, {Dim::one, Dim::one});
  std::map<int, std::string> role_of;
  for (const auto& [role, id] : p.outputs) role_of[id] = role;
  for (int i = 0; i < n; ++i) {
    if (!live[i]) continue;
    const ir::Op& op = p.ops[i];
    const ir::Value& v = p.values[i];
    auto of = [&](int k) { return d[op.args[k]]; };
    switch (op.kind) {
      case ir::OpKind::input:
        d[i] = input_dims(v.name, depth);
        break;
      case ir::OpKind::matmul:
        d[i] = {op.trans_a ? of(0).second : of(0).first, op.trans_b ? of(1).first : of(1).second};
        break;
      case ir::OpKind::elementwise: {
        // A dimension broadcast from size 1 takes its kind from the other operand, or, for a
        // one-operand broadcast, from the values it meets later (resolved below).
        Dims r = of(0);
        if (p.values[op.args[0]].rows == 1 && v.rows > 1)
          r.first = op.args.size() > 1 ? of(1).first : Dim::unknown;
        if (p.values[op.args[0]].cols == 1 && v.cols > 1)
          r.second = op.args.size() > 1 ? of(1).second : Dim::unknown;
        if (v.rows == 1) r.first = Dim::one;
        if (v.cols == 1) r.second = Dim::one;
        d[i] = r;
        break;
      }
      case ir::OpKind::row_sum:
        d[i] = {of(0).first, Dim::one};
        break;
      case ir::OpKind::col_sum:
        d[i] = {Dim::one, of(0).second};
        break;
      case ir::OpKind::transpose:
        d[i] = {of(0).second, of(0).first};
        break;
      case ir::OpKind::fill: {
        // Zero adjoints of inputs nothing depends on: the dimensions of that input.
        auto it = role_of.find(i);
        if (it == role_of.end() || it->second.size() < 2)
          throw std::logic_error("tile lowering: fill without an adjoint role");
        d[i] = input_dims(it->second.substr(1), depth);
        break;
      }
    }
  }
  // Unknown kinds meet known ones where sizes must agree: the operands and result of an
  // elementwise op, the contraction and outer dimensions of a product.
  auto unify = [](Dim& x, Dim& y) {
    if (x == Dim::unknown && y != Dim::unknown) return x = y, true;
    if (y == Dim::unknown && x != Dim::unknown) return y = x, true;
    return false;
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (int i = 0; i < n; ++i) {
      if (!live[i]) continue;
      const ir::Op& op = p.ops[i];
      if (op.kind == ir::OpKind::elementwise) {
        for (int a : op.args) {
          if (p.values[a].rows == p.values[i].rows) changed |= unify(d[a].first, d[i].first);
          if (p.values[a].cols == p.values[i].cols) changed |= unify(d[a].second, d[i].second);
        }
      } else if (op.kind == ir::OpKind::matmul) {
        const int a = op.args[0], b = op.args[1];
        Dim& am = op.trans_a ? d[a].second : d[a].first;
        Dim& ak = op.trans_a ? d[a].first : d[a].second;
        Dim& bk = op.trans_b ? d[b].second : d[b].first;
        Dim& bn = op.trans_b ? d[b].first : d[b].second;
        changed |= unify(ak, bk) | unify(am, d[i].first) | unify(bn, d[i].second);
        if (op.args.size() > 2)
          changed |=
              unify(d[op.args[2]].first, d[i].first) | unify(d[op.args[2]].second, d[i].second);
      }
    }
  }
  return d;
}

// A linear model splits its features by columns (K·W with W split by output columns is local;
// LayerNorm's row sums meet in scratch). An MLP splits only its hidden units, as a tensor-parallel
// MLP does: by columns where the columns run over them (W1, x1 = act(z1)), else by rows (W_L, the
// last layer's weights), so x1·W_L contracts over each warp's slice and only the partial
// products meet in scratch, once per layer boundary; its values over features (z_L, LayerNorm)
// are replicated over the warps. Tokens are never split (a use reads its slice).
Split split_of(const Dims& d, bool hidden_split, Form form) {
  if (!hidden_split) return d.second == Dim::feature ? Split::cols : Split::none;
  if (d.second == Dim::hidden) return Split::cols;
  if (d.first == Dim::hidden && form == Form::matrix) return Split::rows;
  return Split::none;
}

bool splits_hidden(const Spec& spec) { return spec.widths().size() > 2; }

// The widths a team splits: every width of a linear model, an MLP's hidden widths.
std::vector<int> split_widths(const Spec& spec) {
  std::vector<int> w = spec.widths();
  if (splits_hidden(spec)) w = std::vector<int>(w.begin() + 1, w.end() - 1);
  return w;
}

}  // namespace

int feature_slices(const Spec& spec, int warps) { return splits_hidden(spec) ? 1 : warps; }

Split member_split(const Spec& spec, int layer, bool bias, int warps) {
  if (warps == 1) return Split::none;
  const Dims d = input_dims(fmt::format("{}{}", bias ? 'b' : 'W', layer), spec.depth);
  return split_of(d, splits_hidden(spec), bias ? Form::per_col : Form::matrix);
}

MemberSlice member_slice(const Spec& spec, int layer, bool bias, int warps) {
  const std::vector<int> widths = spec.widths();
  MemberSlice m{.split = member_split(spec, layer, bias, warps)};
  m.rows = (bias ? 1 : widths[layer - 1]) / (m.split == Split::rows ? warps : 1);
  m.cols = widths[layer] / (m.split == Split::cols ? warps : 1);
  return m;
}

int lane_floats(int rows, int cols) { return pad16(rows) * pad16(cols) / 32; }
long long smem_floats(int rows, int cols) { return 1LL * pad16(rows) * (pad16(cols) + 8); }

StageLayout stage_layout(const Spec& spec, bool backward_kernel) {
  StageLayout s;
  s.tensors = backward_kernel ? 4 : 3;
  s.row_stride = spec.head_dim + 8;
  const long long rows = pad16(spec.mini_batch);
  s.tensor_bytes = (rows * s.row_stride * dtype_bytes(spec.dtype) + 15) / 16 * 16;
  s.stage_bytes = s.tensors * s.tensor_bytes + rows * 4;
  return s;
}

long long scratch_offset(int slot, const ScratchSlots& slots) {
  long long offset = 0;
  for (int s = 0; s < slot; ++s) offset += slots[s];
  return offset;
}
long long scratch_floats(const ScratchSlots& slots) { return scratch_offset(kScratchSlots, slots); }
ScratchSlots max_slots(const ScratchSlots& a, const ScratchSlots& b) {
  ScratchSlots m;
  for (int s = 0; s < kScratchSlots; ++s) m[s] = std::max(a[s], b[s]);
  return m;
}

TeamLayout team_layout(const Spec& spec, int warps, bool with_dstate, int register_state,
                       int global_state) {
  TeamLayout layout{.warps = warps};
  const int layers = static_cast<int>(spec.widths().size()) - 1;
  auto place_members = [&](std::map<std::string, long long>& offsets,
                           std::map<std::string, long long>& global, bool in_global) {
    for (int l = 1; l <= layers; ++l) {
      const auto [split, rows, cols] = member_slice(spec, l, false, warps);
      const std::string name = fmt::format("W{}", l);
      if (in_global) {
        global[name] = layout.persistent_global_floats;
        layout.persistent_global_floats += 1LL * pad16(rows) * pad16(cols);
      } else if (lane_floats(rows, cols) > register_state) {
        offsets[name] = layout.persistent_floats;
        layout.persistent_floats += smem_floats(rows, cols);
      }
    }
  };
  // The forward kernel keeps its state on chip: global_state is the backward kernel's.
  place_members(layout.state_offset, layout.state_global, with_dstate && global_state >= 2);
  if (with_dstate) place_members(layout.dstate_offset, layout.dstate_global, global_state >= 1);
  return layout;
}

namespace {

// Decides distributions, token variants and team reductions; records why it cannot.
class Distributor {
 public:
  Distributor(LoweredStep& L, const std::vector<Dims>& dims, int warps, bool hidden_split,
              std::vector<std::string>& problems)
      : L_(L),
        p_(L.plan.program),
        dims_(dims),
        warps_(warps),
        hidden_split_(hidden_split),
        problems_(problems) {}

  void run() {
    const int n = static_cast<int>(p_.ops.size());
    L_.token_full.assign(n, false);
    L_.token_slice.assign(n, false);
    for (int i = 0; i < n; ++i) {
      ValuePlace& pl = L_.place[i];
      const ir::Value& v = p_.values[i];
      if (warps_ > 1 && L_.plan.live[i] &&
          (dims_[i].first == Dim::unknown || dims_[i].second == Dim::unknown))
        fail(i, "cannot tell whether a broadcast runs over tokens or features");
      const Split how = warps_ > 1 && !token(i)
                            ? split_of(dims_[i], hidden_split_, form_of(v.rows, v.cols))
                            : Split::none;
      pl.split = how == Split::cols;
      pl.split_rows = how == Split::rows;
      pl.rows = pl.split_rows ? v.rows / warps_ : v.rows;
      pl.cols = pl.split ? v.cols / warps_ : v.cols;
    }
    for (int i = 0; i < n; ++i)
      if (L_.plan.live[i]) plan_op(i);
  }

 private:
  bool token(int v) const {
    return p_.ops[v].kind == ir::OpKind::input && is_token(p_.values[v].name);
  }
  bool split(int v) const { return L_.place[v].split; }
  bool split_rows(int v) const { return L_.place[v].split_rows; }
  void fail(int i, const std::string& why) {
    problems_.push_back(fmt::format("%{} ({} warps per team): {}", i, warps_, why));
  }
  // A token operand read whole or as this warp's column slice.
  void use_token(int i, size_t arg, bool slice) {
    const int v = p_.ops[i].args[arg];
    L_.ops[i].token_slice[arg] = slice;
    (slice ? L_.token_slice : L_.token_full)[v] = true;
  }

  void plan_op(int i) {
    const ir::Op& op = p_.ops[i];
    OpPlan& o = L_.ops[i];
    o.token_slice.assign(op.args.size(), false);
    switch (op.kind) {
      case ir::OpKind::input:
      case ir::OpKind::fill:
        return;
      case ir::OpKind::elementwise:
        for (size_t k = 0; k < op.args.size(); ++k) {
          const int a = op.args[k];
          if (token(a))
            use_token(i, k, split(i));
          else if ((p_.values[a].cols == p_.values[i].cols && split(a) != split(i)) ||
                   (p_.values[a].rows == p_.values[i].rows && split_rows(a) != split_rows(i)))
            fail(i, "elementwise operands split differently");
        }
        return;
      case ir::OpKind::row_sum:
        if (token(op.args[0])) use_token(i, 0, false);
        if (split(op.args[0])) o.reduce = TeamReduce::rows;
        if (split_rows(op.args[0])) fail(i, "row sum of split rows");
        return;
      case ir::OpKind::col_sum:
        if (token(op.args[0])) use_token(i, 0, split(i));
        if (split_rows(op.args[0])) fail(i, "column sum over split rows");
        return;
      case ir::OpKind::transpose:
        if (split(op.args[0]) || split(i) || split_rows(op.args[0]) || split_rows(i))
          fail(i, "transpose of a split vector");
        return;
      case ir::OpKind::matmul:
        plan_matmul(i);
        return;
    }
  }

  // op(A) [M, Kd] op(B) [Kd, N]: which of M, Kd, N a warp holds a slice of, per factor, from
  // how it is split (columns or rows) and transposed. A token factor is whole, or read as its
  // column slice where the product needs one.
  void plan_matmul(int i) {
    const ir::Op& op = p_.ops[i];
    OpPlan& o = L_.ops[i];
    const int a = op.args[0], b = op.args[1];
    const bool ta = op.trans_a, tb = op.trans_b;
    const bool a_m = ta ? split(a) : split_rows(a), a_k = ta ? split_rows(a) : split(a);
    const bool b_k = tb ? split(b) : split_rows(b), b_n = tb ? split_rows(b) : split(b);
    const bool out_m = split_rows(i), out_n = split(i);
    if (a_k || b_k) {
      // The contraction runs over slices: each warp's partial product meets in scratch.
      if (token(a) && !ta)
        use_token(i, 0, true);
      else if (!a_k)
        fail(i, "one factor holds the whole contraction, the other a slice");
      if (token(b) && tb)
        use_token(i, 1, true);
      else if (!b_k)
        fail(i, "one factor holds the whole contraction, the other a slice");
      if (a_m || b_n || out_m) fail(i, "a product over a split contraction with split rows");
      o.reduce = out_n ? TeamReduce::product_scatter : TeamReduce::product_all;
      o.partial_rows = ta ? p_.values[a].cols : p_.values[a].rows;
      o.partial_cols = tb ? p_.values[b].rows : p_.values[b].cols;
      if (op.args.size() > 2 && op.beta != 1.0) fail(i, "a reduced product with an addend scale");
    } else {
      if (token(a)) {
        use_token(i, 0, false);
        if (out_m) fail(i, "factor A is a whole token matrix, the result's rows are split");
      } else if (a_m != out_m) {
        fail(i, "factor A's rows are split unlike the result's");
      }
      if (token(b)) {
        use_token(i, 1, !tb && out_n);
        if (tb && out_n) fail(i, "factor B^T is a whole token matrix, the result's columns split");
      } else if (b_n != out_n) {
        fail(i, "factor B's columns are split unlike the result's");
      }
    }
    if (op.args.size() > 2) {
      const int d = op.args[2];
      if (token(d))
        use_token(i, 2, out_n);
      else if (split(d) != out_n || split_rows(d) != out_m)
        fail(i, "the addend is split unlike the result");
    }
  }

  LoweredStep& L_;
  const ir::Program& p_;
  const std::vector<Dims>& dims_;
  int warps_;
  bool hidden_split_;
  std::vector<std::string>& problems_;
};

// Fewer barriers and shorter chains, without changing what is computed:
//  - 1 / sqrt(x) where the sqrt has no other use: one rsqrt;
//  - LayerNorm's statistics, sum(X) then sum((X - sum(X) / C)^2) over split columns: one
//    exchange of each warp's slice sum and squares about its slice mean (tile::row_mean_m2);
//  - a row sum over split columns whose total is first needed after the next such sum: both
//    totals through one barrier (sum g and sum g * xhat in LayerNorm's backward).
void fuse_step(LoweredStep& L, const std::vector<std::vector<int>>& uses) {
  const ir::Program& p = L.plan.program;
  const int n = static_cast<int>(p.ops.size());
  auto live_uses = [&](int v) {
    std::vector<int> u;
    for (int i : uses[v])
      if (L.plan.live[i]) u.push_back(i);
    return u;
  };
  auto is_ew = [&](int v, ir::Ew e) {
    return p.ops[v].kind == ir::OpKind::elementwise && p.ops[v].ew == e;
  };
  auto is_output = [&](int v) {
    for (const auto& [role, id] : p.outputs)
      if (id == v) return true;
    return false;
  };
  auto team_row_sum = [&](int v) {
    return L.plan.live[v] && p.ops[v].kind == ir::OpKind::row_sum &&
           L.ops[v].reduce == TeamReduce::rows;
  };
  for (int i = 0; i < n; ++i) {
    if (!L.plan.live[i]) continue;
    const ir::Op& op = p.ops[i];
    if (is_ew(i, ir::Ew::recip) && is_ew(op.args[0], ir::Ew::sqrt) &&
        live_uses(op.args[0]).size() == 1 && !is_output(op.args[0]) &&
        p.ops[p.ops[op.args[0]].args[0]].kind != ir::OpKind::input) {
      L.ops[i].rsqrt = true;
      L.ops[op.args[0]].fused_into = i;
    }
    // i = sum(S), S = D * D, D = X - M, M = R1 / C, R1 = sum(X).
    if (!team_row_sum(i) || L.place[i].form != Form::per_row) continue;
    const int squares = op.args[0];
    if (!is_ew(squares, ir::Ew::mul) || p.ops[squares].args[0] != p.ops[squares].args[1] ||
        live_uses(squares).size() != 1 || is_output(squares))
      continue;
    const int centred = p.ops[squares].args[0];
    if (!is_ew(centred, ir::Ew::sub)) continue;
    const int x = p.ops[centred].args[0], mean = p.ops[centred].args[1];
    if (!is_ew(mean, ir::Ew::affine) || p.ops[mean].c != 0.0 ||
        std::abs(p.ops[mean].s * p.values[x].cols - 1.0) > 1e-12)
      continue;
    const int first = p.ops[mean].args[0];
    if (!team_row_sum(first) || p.ops[first].args[0] != x || L.ops[first].second_moment >= 0 ||
        L.place[first].form != Form::per_row || L.place[x].form != Form::matrix)
      continue;
    L.ops[first].second_moment = i;
    L.ops[i].fused_into = first;
    L.ops[squares].fused_into = first;
  }
  // Grouping: a sum's total is needed at its first "hard" use; small vector ops on it (scaling a
  // per-row sum, a transpose, a column sum of it) are moved to just after the group's exchange.
  auto pairable = [&](int v) {
    const OpPlan& o = L.ops[v];
    return team_row_sum(v) && o.fused_into < 0 && o.second_moment < 0 && o.deferred_to < 0 &&
           o.completes.empty();
  };
  auto movable = [&](int v) {
    const ir::Op& op = p.ops[v];
    if (!L.plan.live[v] || L.place[v].form == Form::matrix || L.place[v].home != Home::reg ||
        L.ops[v].reduce != TeamReduce::none || L.ops[v].fused_into >= 0 || L.ops[v].rsqrt ||
        op.kind == ir::OpKind::input || op.kind == ir::OpKind::matmul)
      return false;
    for (int a : op.args)
      if (L.place[a].home != Home::reg) return false;
    return true;
  };
  // The ops that follow sum v through movable ops only, and the first op that needs them.
  auto followers = [&](int v, std::vector<int>& moved) {
    std::set<int> group = {v};
    int hard = n;
    for (int i = v + 1; i < n; ++i) {
      if (!L.plan.live[i]) continue;
      bool uses_group = false;
      for (int a : p.ops[i].args) uses_group |= group.count(a) > 0;
      if (!uses_group) continue;
      if (movable(i) && i < hard) {
        group.insert(i);
        moved.push_back(i);
      } else {
        hard = std::min(hard, i);
      }
    }
    return hard;
  };
  std::vector<std::vector<int>> after(n);  // ops moved to just after op i
  std::vector<bool> moved_away(n, false);
  for (int i = 0; i < n; ++i) {
    if (!pairable(i)) continue;
    std::vector<int> members = {i}, moved;
    int limit = followers(i, moved);
    for (int j = i + 1; j < limit && members.size() < 3; ++j)
      if (pairable(j)) {
        std::vector<int> moved_j;
        const int hard_j = followers(j, moved_j);
        members.push_back(j);
        limit = std::min(limit, hard_j);
        moved.insert(moved.end(), moved_j.begin(), moved_j.end());
      }
    if (members.size() < 2) continue;
    const int last = members.back();
    for (size_t k = 0; k + 1 < members.size(); ++k) {
      L.ops[members[k]].deferred_to = last;
      L.ops[last].completes.push_back(members[k]);
    }
    std::sort(moved.begin(), moved.end());
    for (int m : moved)
      if (m < last && !moved_away[m]) {
        moved_away[m] = true;
        after[last].push_back(m);
      }
  }
  L.order.clear();
  for (int i = 0; i < n; ++i) {
    if (!moved_away[i]) L.order.push_back(i);
    for (int m : after[i]) L.order.push_back(m);
  }
}

// An elementwise op of tokens alone (V - K) is emitted just before its first use: tokens are
// read from the stage at every use anyway, and computed early its value would hold registers
// across everything in between (mlp2's LayerNorm: 32 a lane; its forward's spills 140 -> 124
// bytes).
void sink_token_values(LoweredStep& L, const std::vector<std::vector<int>>& uses) {
  const ir::Program& p = L.plan.program;
  auto token_only = [&](int i) {
    const ir::Op& op = p.ops[i];
    if (op.kind != ir::OpKind::elementwise || L.place[i].home != Home::reg) return false;
    for (const auto& [role, id] : p.outputs)
      if (id == i) return false;
    for (int a : op.args)
      if (p.ops[a].kind != ir::OpKind::input || !is_token(p.values[a].name)) return false;
    return true;
  };
  std::vector<int> order;
  std::vector<int> sunk;
  for (int i : L.order) {
    if (L.plan.live[i] && token_only(i)) {
      sunk.push_back(i);
      continue;
    }
    for (auto it = sunk.begin(); it != sunk.end();) {
      const auto& users = uses[*it];
      if (std::find(users.begin(), users.end(), i) != users.end()) {
        order.push_back(*it);
        it = sunk.erase(it);
      } else {
        ++it;
      }
    }
    order.push_back(i);
  }
  order.insert(order.end(), sunk.begin(), sunk.end());
  L.order = std::move(order);
}

// Exchanges that do not depend on each other share one barrier (a step's time is its team's
// dependency chain, and each exchange is a wait on it): W2's backward has 12 exchanges but a
// chain of 9 (LayerNorm's statistics beside dW' K^T's scatter; the token-by-token adjoint, dQ's
// scatter and three row sums after one exchange), 10 with one product a group (below). An
// exchange joins the group before it when it
// does not depend on the group's totals and the ops between them that do can move after it
// (registers only: a value in shared or global memory has a slot the lowering allocated in IR
// order). The group's last member waits for the team; each member posts where it is computed.
void group_exchanges(LoweredStep& L) {
  const ir::Program& p = L.plan.program;
  const int n = static_cast<int>(p.ops.size());
  std::vector<int> exchange_of(n, -1);  // a value a team exchange yields -> that exchange
  std::vector<int> exchanges;           // in emission order
  for (int i : L.order) {
    const OpPlan& o = L.ops[i];
    if (!L.plan.live[i] || o.reduce == TeamReduce::none || o.deferred_to >= 0 || o.fused_into >= 0)
      continue;
    exchanges.push_back(i);
    exchange_of[i] = i;
    for (int c : o.completes) exchange_of[c] = i;
    if (o.second_moment >= 0) exchange_of[o.second_moment] = i;
  }
  if (exchanges.size() < 2) return;
  // The exchanges whose totals each op needs, directly or through other ops (IR order is a
  // topological order).
  std::vector<std::set<int>> needs(n);
  for (int i = 0; i < n; ++i) {
    for (int a : p.ops[i].args) {
      needs[i].insert(needs[a].begin(), needs[a].end());
      if (exchange_of[a] >= 0 && exchange_of[a] != i) needs[i].insert(exchange_of[a]);
    }
  }
  // What an exchange posts needs: its own sum's inputs and those of the sums it completes.
  auto post_needs = [&](int x) {
    std::set<int> s = needs[x];
    for (int c : L.ops[x].completes) s.insert(needs[c].begin(), needs[c].end());
    return s;
  };
  auto movable = [&](int i) {
    if (L.place[i].home != Home::reg || L.ops[i].reduce != TeamReduce::none) return false;
    for (int a : p.ops[i].args)
      if (L.place[a].home != Home::reg) return false;
    return true;
  };
  std::vector<int>& order = L.order;
  auto position = [&](int op) {
    return static_cast<int>(std::find(order.begin(), order.end(), op) - order.begin());
  };
  std::vector<int> group;  // the current group's members, in order
  int products = 0, rows = 0;
  for (int x : exchanges) {
    const bool product = L.ops[x].reduce != TeamReduce::rows;
    // One product a group: two would need a third product slot (partials of K x f per warp:
    // mlp2's forward would no longer fit its shared memory); row sums take a few floats.
    bool joins = !group.empty() && (product ? products < 1 : rows < 2) && group.size() < 3;
    std::vector<int> moving;  // ops between the group and x that need its totals
    if (joins) {
      const std::set<int> mine = post_needs(x);
      for (int g : group) joins = joins && !mine.count(g);
      const int from = position(group.front()), to = position(x);
      for (int k = from + 1; joins && k < to; ++k) {
        const int i = order[k];
        if (std::find(group.begin(), group.end(), i) != group.end()) continue;
        bool needs_group = false;
        for (int g : group) needs_group = needs_group || needs[i].count(g) > 0;
        if (!needs_group) continue;
        // A dead op is not emitted, a fused op is computed by the op it is fused into (checked on
        // its own): they move to keep the emission order a topological order.
        if (!L.plan.live[i] || L.ops[i].fused_into >= 0 || (movable(i) && L.ops[i].deferred_to < 0))
          moving.push_back(i);
        else
          joins = false;
      }
    }
    if (!joins) {
      group = {x};
      products = product ? 1 : 0;
      rows = product ? 0 : 1;
      continue;
    }
    // Move the dependent ops to just after x, in their order.
    std::vector<int> reordered;
    for (int i : order)
      if (std::find(moving.begin(), moving.end(), i) == moving.end()) {
        reordered.push_back(i);
        if (i == x) reordered.insert(reordered.end(), moving.begin(), moving.end());
      }
    order = std::move(reordered);
    const int leader = group.back();
    OpPlan& now = L.ops[x];
    now.exchanged = L.ops[leader].exchanged;
    now.exchanged.push_back(leader);
    L.ops[leader].exchanged.clear();
    for (int g : now.exchanged) L.ops[g].exchange_at = x;
    group.push_back(x);
    (product ? products : rows) += 1;
  }
}

LoweredStep lower(const Spec& spec, plan::StepKind kind, const TeamLayout& layout,
                  int register_budget, std::vector<std::string>& problems,
                  plan::AdjointPart part = plan::AdjointPart::whole,
                  long long warp_smem_limit = -1) {
  LoweredStep L{.plan = plan::plan_step(spec, kind, part), .warps = layout.warps};
  const ir::Program& p = L.plan.program;
  const int n = static_cast<int>(p.ops.size());
  const int warps = layout.warps;
  L.place.assign(n, {});
  L.ops.assign(n, {});
  L.parts.assign(n, 1);
  const bool hidden_split = splits_hidden(spec);
  for (int f : split_widths(spec))
    if (f % (16 * warps) != 0)
      problems.push_back(fmt::format("width {} does not split into {} slices of 16", f, warps));
  const std::vector<Dims> dims = value_dims(p, L.plan.live, spec.depth);
  Distributor(L, dims, warps, hidden_split, problems).run();

  // Members: the state (and in the backward step the adjoint of the next state) are bound to the
  // kernel's persistent storage.
  std::vector<std::string> member(n);
  for (int i = 0; i < n; ++i) {
    const ir::Value& v = p.values[i];
    L.place[i].form = form_of(v.rows, v.cols);
    L.parts[i] = operand_parts(spec, v.name);
    if (!L.plan.live[i] || p.ops[i].kind != ir::OpKind::input) continue;
    const bool adjoint_member = kind == plan::StepKind::backward && v.name.size() > 2 &&
                                v.name[0] == 'd' && v.name.back() == '\'';
    auto bind = [&](const std::map<std::string, long long>& smem,
                    const std::map<std::string, long long>& global, const std::string& base) {
      if (auto it = smem.find(base); it != smem.end())
        L.place[i].home = Home::smem, L.place[i].offset = it->second;
      if (auto it = global.find(base); it != global.end())
        L.place[i].home = Home::global, L.place[i].offset = it->second;
    };
    if (is_state_name(v.name)) {
      member[i] = "state";
      bind(layout.state_offset, layout.state_global, v.name);
    } else if (adjoint_member && !member_base(v.name).empty()) {
      member[i] = "dstate";
      bind(layout.dstate_offset, layout.dstate_global, member_base(v.name));
    }
  }

  // Tensor-core products one warp issues per step: straight-line code, so NVRTC's time and the
  // kernel's size grow with it.
  for (int i = 0; i < n; ++i) {
    const ir::Op& op = p.ops[i];
    if (!L.plan.live[i] || op.kind != ir::OpKind::matmul) continue;
    const ir::Value& a = p.values[op.args[0]];
    const bool partial = L.ops[i].reduce == TeamReduce::product_all ||
                         L.ops[i].reduce == TeamReduce::product_scatter;
    const int contraction = (op.trans_a ? a.rows : a.cols) / (partial ? warps : 1);
    const long long tiles = 1LL * (pad16(L.place[i].rows) / 16) * (pad16(L.place[i].cols) / 8) *
                            (pad16(contraction) / 16);
    L.mma_per_warp += tiles * products_per_tile(operand_parts(spec, a.name),
                                                operand_parts(spec, p.values[op.args[1]].name));
  }

  // Lifetimes over op indices; outputs kept to the end of the step unless stored at once.
  std::vector<int> last_use(n, -1);
  std::vector<std::vector<int>> uses(n);
  for (int i = 0; i < n; ++i) {
    if (!L.plan.live[i]) continue;
    last_use[i] = std::max(last_use[i], i);
    for (int a : p.ops[i].args) {
      last_use[a] = std::max(last_use[a], i);
      uses[a].push_back(i);
    }
  }
  for (const auto& [role, id] : p.outputs)
    if (L.plan.live[id] && !stored_at_definition(role)) last_use[id] = n;

  // In shared (or global) memory also: a member's new value (W1' over W1, dW1 over dW1') and any
  // value that can be computed in place over an operand there (the chain of updates of dW1).
  auto in_place_candidate = [&](int i) {
    const ir::Op& op = p.ops[i];
    if (L.ops[i].reduce != TeamReduce::none) return -1;
    std::vector<int> candidates;
    // A matmul reads its factors while it writes: the addend may be overwritten only if it is
    // not also a factor.
    if (op.kind == ir::OpKind::matmul && op.args.size() > 2 && op.args[2] != op.args[0] &&
        op.args[2] != op.args[1])
      candidates.push_back(op.args[2]);
    if (op.kind == ir::OpKind::elementwise) candidates = op.args;
    for (int c : candidates)
      if (L.place[c].home != Home::reg && last_use[c] == i && L.place[c].rows == L.place[i].rows &&
          L.place[c].cols == L.place[i].cols)
        return c;
    return -1;
  };
  const bool adjoint_step = kind == plan::StepKind::backward;
  const auto& member_offsets = adjoint_step ? layout.dstate_offset : layout.state_offset;
  const auto& member_global = adjoint_step ? layout.dstate_global : layout.state_global;
  for (const auto& [role, id] : p.outputs) {
    const std::string base = member_base(role);
    const bool mine = adjoint_step ? role[0] == 'd' : role.back() == '\'';
    if (!L.plan.live[id] || !mine || base.empty()) continue;
    if (member_offsets.count(base)) L.place[id].home = Home::smem;
    if (member_global.count(base)) L.place[id].home = Home::global;
  }
  for (int i = 0; i < n; ++i)
    if (L.plan.live[i] && member[i].empty() && in_place_candidate(i) >= 0)
      L.place[i].home = L.place[in_place_candidate(i)].home;

  // Register pressure: walk the ops; when the live values overflow the budget, move the matrix
  // whose next use is farthest to shared memory for its whole life. Tokens are re-read (from L1)
  // by every op that uses them, and partial products live only in their op: both count there.
  auto token_input = [&](int v) {
    return p.ops[v].kind == ir::OpKind::input && is_token(p.values[v].name);
  };
  auto floats = [&](int v) {
    const ValuePlace& pl = L.place[v];
    return lane_floats_of(pl.form, pl.rows, pl.cols);
  };
  auto transient = [&](int i) {
    const ir::Op& op = p.ops[i];
    int f = 0;
    for (size_t k = 0; k < op.args.size(); ++k)
      if (token_input(op.args[k])) {
        const ValuePlace& pl = L.place[op.args[k]];
        f += lane_floats_of(pl.form, pl.rows, L.ops[i].token_slice[k] ? pl.cols / warps : pl.cols);
      }
    if (L.ops[i].reduce == TeamReduce::product_all ||
        L.ops[i].reduce == TeamReduce::product_scatter)
      f += lane_floats(L.ops[i].partial_rows, L.ops[i].partial_cols);
    return f;
  };
  int persistent = 0;
  for (int i = 0; i < n; ++i)
    if (!member[i].empty() && L.place[i].home == Home::reg) persistent += floats(i);
  if (kind == plan::StepKind::backward)  // accumulators of dtau, dgamma, dbeta
    persistent +=
        pad16(spec.mini_batch) / 8 + 2 * (pad16(spec.head_dim / feature_slices(spec, warps)) / 4);
  auto next_use_after = [&](int v, int i) {
    for (int u : uses[v])
      if (u > i) return u;
    return last_use[v];
  };
  std::set<int> live_regs;
  for (int i = 0; i < n; ++i) {
    if (!L.plan.live[i]) continue;
    if (member[i].empty() && !token_input(i)) live_regs.insert(i);
    int total = persistent + transient(i);
    for (int v : live_regs)
      if (L.place[v].home == Home::reg) total += floats(v);
    while (total > register_budget) {
      int victim = -1, farthest = -1;
      for (int v : live_regs)
        if (L.place[v].home == Home::reg && L.place[v].form == Form::matrix &&
            next_use_after(v, i) > farthest)
          victim = v, farthest = next_use_after(v, i);
      if (victim < 0) break;  // only vectors left: the estimate stays over budget
      total -= floats(victim);
      L.place[victim].home = Home::smem;
    }
    L.peak_register_floats = std::max(L.peak_register_floats, total);
    for (auto it = live_regs.begin(); it != live_regs.end();)
      it = last_use[*it] <= i ? live_regs.erase(it) : std::next(it);
  }

  // Shared-memory offsets. Member slots are fixed and taken over only in place (W1' computed
  // over W1, the chain of dW1 updates over dW1'); other values share a first-fit arena after the
  // members. In place: an addend or elementwise operand of the same shape that dies here. A value
  // that does not fit below the warp's shared-memory limit takes the same place in its global
  // region (after the global members).
  plan::Arena arena, global_arena;
  const long long arena_limit =
      warp_smem_limit < 0 ? -1 : std::max(0LL, warp_smem_limit - layout.persistent_floats);
  std::vector<bool> owns_arena_slot(n, false);
  std::vector<long long> arena_slot(n, -1);
  auto arena_of = [&](int v) -> plan::Arena& {
    return L.place[v].home == Home::global ? global_arena : arena;
  };
  for (int i = 0; i < n; ++i) {
    if (!L.plan.live[i]) continue;
    const ir::Op& op = p.ops[i];
    ValuePlace& pl = L.place[i];
    if (pl.home != Home::reg && member[i].empty()) {
      const int in_place = in_place_candidate(i);
      if (in_place >= 0 && L.place[in_place].home == pl.home) {
        pl.offset = L.place[in_place].offset;
        if (owns_arena_slot[in_place]) {
          owns_arena_slot[in_place] = false;
          owns_arena_slot[i] = true;
          arena_slot[i] = arena_slot[in_place];
        }
      } else {
        if (pl.home == Home::smem) {
          arena_slot[i] = arena.allocate(smem_floats(pl.rows, pl.cols), arena_limit);
          pl.offset = layout.persistent_floats + arena_slot[i];
        }
        if (arena_slot[i] < 0 || pl.home == Home::global) {
          pl.home = Home::global;
          arena_slot[i] = global_arena.allocate(1LL * pad16(pl.rows) * pad16(pl.cols));
          pl.offset = layout.persistent_global_floats + arena_slot[i];
        }
        owns_arena_slot[i] = true;
      }
    }
    for (int a : op.args)
      if (last_use[a] == i && owns_arena_slot[a]) {
        arena_of(a).release(arena_slot[a]);
        owns_arena_slot[a] = false;
      }
  }
  L.smem_end = layout.persistent_floats + arena.high_water();
  L.global_end = layout.persistent_global_floats + global_arena.high_water();

  fuse_step(L, uses);
  // Linear steps keep the IR's order: there the move took ptxas's spills both ways (sm_90a,
  // linear-f32-d32 backward 48 -> 56 bytes, lm-125m-linear 372 -> 346).
  if (hidden_split) sink_token_values(L, uses);
  if (warps > 1) group_exchanges(L);

  // Team scratch: products meet in slots 0..3, row sums in 4..7. An exchange group never takes a
  // slot of the group just before it: the barrier of group r proves every warp done reading the
  // slots of groups before r - 1. A step may start on the slots the previous one ended on: the
  // driver's stage barrier at the start of every step (tile_driver.cuh, Staging::wait) proves
  // every warp done with the previous step.
  std::vector<std::vector<int>> groups;  // in emission order, each ending with its barrier's op
  for (int i : L.order) {
    const OpPlan& o = L.ops[i];
    if (!L.plan.live[i] || o.reduce == TeamReduce::none || o.deferred_to >= 0 ||
        o.fused_into >= 0 || o.exchange_at >= 0)
      continue;
    groups.push_back(o.exchanged);
    groups.back().push_back(i);
  }
  auto row_region = [&](int i) {
    return 1LL * warps * (L.place[i].form == Form::scalar ? 16 : pad16(L.place[i].rows));
  };
  std::set<int> previous;
  for (const std::vector<int>& group : groups) {
    std::set<int> taken;
    for (int i : group) {
      OpPlan& o = L.ops[i];
      const bool rows = o.reduce == TeamReduce::rows;
      int slot = rows ? kProductSlots : 0;
      while (previous.count(slot) || taken.count(slot)) ++slot;
      if (slot >= (rows ? kScratchSlots : kProductSlots))
        throw std::logic_error("tile lowering: an exchange group needs more scratch slots");
      o.scratch_slot = slot;
      taken.insert(slot);
      long long floats = 1LL * warps * smem_floats(o.partial_rows, o.partial_cols);
      if (rows) {
        floats = row_region(i) + (o.second_moment >= 0 ? row_region(o.second_moment) : 0);
        for (int other : o.completes) floats += row_region(other);
      }
      L.slot_floats[slot] = std::max(L.slot_floats[slot], floats);
    }
    previous = std::move(taken);
  }
  return L;
}

}  // namespace

LoweredStep lower_step(const Spec& spec, plan::StepKind kind, const TeamLayout& layout,
                       int register_budget, plan::AdjointPart part, long long warp_smem_limit) {
  std::vector<std::string> problems;
  LoweredStep L = lower(spec, kind, layout, register_budget, problems, part, warp_smem_limit);
  if (!problems.empty())
    throw std::logic_error("tile lowering: " + problems.front() + " (see unsupported())");
  return L;
}

std::vector<std::string> unsupported(const Spec& spec, int warps, bool forward, bool backward) {
  std::vector<std::string> reasons;
  if (warps < 1 || warps > 8) return {fmt::format("{} warps per team (1..8 allowed)", warps)};
  std::vector<plan::StepKind> kinds;
  if (spec.build_forward && forward) kinds.push_back(plan::StepKind::forward);
  if (spec.build_backward && backward) kinds.push_back(plan::StepKind::backward);
  for (plan::StepKind kind : kinds) {
    const plan::StepPlan plan = plan::plan_step(spec, kind);
    const ir::Program& p = plan.program;
    for (size_t i = 0; i < p.ops.size(); ++i) {
      if (!plan.live[i]) continue;
      const ir::Op& op = p.ops[i];
      const ir::Value& v = p.values[i];
      if (op.kind == ir::OpKind::transpose && v.rows > 1 && v.cols > 1)
        reasons.push_back(fmt::format("%{}: transpose of a {}x{} matrix", i, v.rows, v.cols));
      if (op.kind == ir::OpKind::matmul) {
        if (std::abs(op.alpha) != 1.0)
          reasons.push_back(fmt::format("%{}: matmul scale {} (only +1 and -1)", i, op.alpha));
        for (int a : op.args)
          if (form_of(p.values[a].rows, p.values[a].cols) != Form::matrix)
            reasons.push_back(fmt::format("%{}: matmul of a vector", i));
      }
    }
    if (!reasons.empty()) continue;
    lower(spec, kind, team_layout(spec, warps, kind == plan::StepKind::backward), 255, reasons);
  }
  return reasons;
}

int default_team_warps(const Spec& spec, bool forward, bool backward) {
  int warps = 1;
  int narrowest = spec.head_dim * 8;
  for (int w : split_widths(spec)) narrowest = std::min(narrowest, w);
  for (int candidate : {2, 4, 8})
    if (narrowest % (16 * candidate) == 0 &&
        unsupported(spec, candidate, forward, backward).empty())
      warps = candidate;
  return warps;
}

std::vector<KernelStep> kernel_steps(const Spec& spec, bool backward_kernel, bool query_split,
                                     bool backward_split, bool backward_split_tokens) {
  using Part = plan::AdjointPart;
  using plan::StepKind;
  if (!backward_kernel) {
    std::vector<KernelStep> steps;
    if (query_split) steps.push_back({"advance", StepKind::advance});  // the recurrence's step
    steps.push_back({"forward", StepKind::forward});
    return steps;
  }
  std::vector<KernelStep> steps;
  if (spec.checkpoint_group > 1) steps.push_back({"advance", StepKind::advance});
  if (!backward_split) {
    steps.push_back({"backward", StepKind::backward});
  } else {
    steps.push_back({"backward_output", StepKind::backward, Part::output_path});
    if (backward_split_tokens) {
      steps.push_back({"backward_update", StepKind::backward, Part::update_state});
      steps.push_back({"backward_tokens", StepKind::backward, Part::update_tokens});
    } else {
      steps.push_back({"backward_update", StepKind::backward, Part::update_path});
    }
  }
  return steps;
}

LoweredKernel lower_kernel(const Spec& spec, const std::vector<KernelStep>& steps,
                           const TeamLayout& layout, int register_budget, bool backward_kernel,
                           long long team_smem_limit) {
  auto lower_all = [&](long long warp_smem_limit) {
    LoweredKernel k;
    for (const KernelStep& s : steps) {
      k.steps.push_back(lower_step(spec, s.kind, layout, register_budget, s.part, warp_smem_limit));
      k.slots = max_slots(k.slots, k.steps.back().slot_floats);
      k.warp_floats = std::max(k.warp_floats, k.steps.back().smem_end);
      k.warp_global = std::max(k.warp_global, k.steps.back().global_end);
    }
    k.warp_floats = (k.warp_floats + 15) / 16 * 16;
    k.warp_global = (k.warp_global + 15) / 16 * 16;
    return k;
  };
  LoweredKernel k = lower_all(-1);
  if (team_smem_limit <= 0) return k;
  // Where the values go does not change the scratch: its slots hold partial products and sums.
  const long long shared = scratch_floats(k.slots) +
                           2 * stage_layout(spec, backward_kernel).stage_bytes / 4 +
                           layout.warps * k.warp_floats;
  if (shared <= team_smem_limit) return k;
  const long long room = team_smem_limit - scratch_floats(k.slots) -
                         2 * stage_layout(spec, backward_kernel).stage_bytes / 4;
  return lower_all(std::max(0LL, room / layout.warps / 16 * 16));
}

TeamFootprint team_footprint(const Spec& spec, int warps, bool backward_kernel, int register_budget,
                             bool backward_split, bool backward_split_tokens, int register_state,
                             int global_state, long long team_smem_limit) {
  TeamFootprint f{.warps = warps};
  const TeamLayout layout = team_layout(spec, warps, backward_kernel, register_state, global_state);
  const LoweredKernel k = lower_kernel(
      spec, kernel_steps(spec, backward_kernel, false, backward_split, backward_split_tokens),
      layout, register_budget, backward_kernel, team_smem_limit);
  for (const LoweredStep& L : k.steps) {
    f.peak_register_floats = std::max(f.peak_register_floats, L.peak_register_floats);
    f.mma_per_warp = std::max(f.mma_per_warp, L.mma_per_warp);
  }
  f.warp_floats = k.warp_floats;
  f.warp_global_floats = k.warp_global;
  f.scratch_floats = scratch_floats(k.slots);
  f.stage_floats = 2 * stage_layout(spec, backward_kernel).stage_bytes / 4;
  return f;
}

}  // namespace ttt::tile
