// plan.cpp: dead-code elimination and first-fit arena allocation over value lifetimes.
#include "compiler/plan.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

namespace ttt::plan {

long long Arena::allocate(long long size, long long limit) {
  size = (size + 15) / 16 * 16;
  long long offset = 0;
  for (const auto& [start, length] : used_) {
    if (start - offset >= size) break;
    offset = std::max(offset, start + length);
  }
  if (limit >= 0 && offset + size > limit) return -1;
  used_[offset] = size;
  high_ = std::max(high_, offset + size);
  return offset;
}

bool bound_outside_arena(const std::string& name, StepKind kind) {
  // Inside the backward step the updated state is an intermediate like any other.
  if (kind == StepKind::backward && !name.empty() && name.back() == '\'' && name[0] != 'd')
    return false;
  auto base = name;
  if (!base.empty() && base.back() == '\'') base.pop_back();
  if (base.rfind("d", 0) == 0 && base.size() > 1 && (base[1] == 'W' || base[1] == 'b'))
    base = base.substr(1);
  const bool state = base.size() > 1 && (base[0] == 'W' || base[0] == 'b') &&
                     std::all_of(base.begin() + 1, base.end(), ::isdigit);
  return state || name == "gamma" || name == "beta";
}

namespace {

// dW_l, db_l: the adjoint of the state before the step.
bool is_state_adjoint(const std::string& role) {
  return role.size() > 2 && role[0] == 'd' && (role[1] == 'W' || role[1] == 'b') &&
         std::all_of(role.begin() + 2, role.end(), ::isdigit);
}

std::vector<std::string> wanted_outputs(const ir::Program& p, StepKind kind, AdjointPart part) {
  std::vector<std::string> names;
  for (const auto& [role, id] : p.outputs) {
    if (kind == StepKind::advance && role == "O") continue;
    if (part == AdjointPart::update_state && !is_state_adjoint(role)) continue;
    if (part == AdjointPart::update_tokens && is_state_adjoint(role)) continue;
    // Zero on this path: the other part of the split backward writes it.
    if (part != AdjointPart::whole && p.ops[id].kind == ir::OpKind::fill && p.ops[id].c == 0.0)
      continue;
    names.push_back(role);
  }
  return names;
}

// The seeds fixed at zero for one path of the adjoint.
std::set<std::string> zero_seeds(const ir::Program& adjoint, AdjointPart part) {
  std::set<std::string> zero;
  for (const ir::Op& op : adjoint.ops) {
    if (op.kind != ir::OpKind::input) continue;
    const std::string& name = adjoint.values[op.out].name;
    const bool state_seed = name.size() > 2 && name[0] == 'd' && name.back() == '\'';
    if (part == AdjointPart::output_path ? state_seed : name == "dO") zero.insert(name);
  }
  return zero;
}

// Keeps the ops that some wanted output depends on.
std::vector<bool> live_ops(const ir::Program& p, const std::vector<std::string>& wanted) {
  std::vector<bool> live(p.ops.size(), false);
  for (const auto& name : wanted) live[p.output_id(name)] = true;  // value id == op index
  for (size_t i = p.ops.size(); i-- > 0;)
    if (live[i])
      for (int a : p.ops[i].args) live[a] = true;
  return live;
}

std::vector<int> fuse_elementwise(const ir::Program& p, const std::vector<bool>& live) {
  std::vector<int> group(p.ops.size(), -1);
  int current = -1;
  for (size_t i = 0; i < p.ops.size(); ++i) {
    if (!live[i]) continue;
    const ir::Op& op = p.ops[i];
    const ir::Value& v = p.values[i];
    bool joins = current >= 0 && op.kind == ir::OpKind::elementwise &&
                 p.ops[current].kind == ir::OpKind::elementwise &&
                 p.values[current].rows == v.rows && p.values[current].cols == v.cols;
    // An operand made inside the group must be read at this op's own element (same shape).
    for (int a : op.args)
      if (joins && a >= current && group[a] == current)
        joins = p.values[a].rows == v.rows && p.values[a].cols == v.cols;
    if (!joins) current = static_cast<int>(i);
    group[i] = current;
  }
  return group;
}

}  // namespace

StepPlan plan_step(const Spec& spec, StepKind kind, AdjointPart part) {
  if (kind != StepKind::backward && part != AdjointPart::whole)
    throw std::logic_error("plan_step: only a backward step has adjoint parts");
  StepPlan plan{.kind = kind, .part = part};
  ir::Program forward = ir::build_step(spec);
  plan.program = kind == StepKind::backward ? ir::append_adjoint(forward) : forward;
  if (part != AdjointPart::whole)
    plan.program = ir::with_zero_inputs(plan.program, zero_seeds(plan.program, part));
  const ir::Program& p = plan.program;
  const std::vector<std::string> wanted = wanted_outputs(p, kind, part);
  plan.live = live_ops(p, wanted);

  const size_t n = p.ops.size();
  plan.group = fuse_elementwise(p, plan.live);
  std::vector<int> group_end(n, -1);
  for (size_t i = 0; i < n; ++i)
    if (plan.live[i]) group_end[plan.group[i]] = static_cast<int>(i);

  // Lifetimes in units of groups: a value is alive from its group's first op to the last op of
  // the last group that reads it, so a fused pass never overwrites anything it still reads.
  std::vector<long long> last_use(n, -1);
  std::vector<bool> read_outside_group(n, false);
  for (size_t i = 0; i < n; ++i) {
    if (!plan.live[i]) continue;
    last_use[i] = std::max<long long>(last_use[i], group_end[plan.group[i]]);
    for (int a : p.ops[i].args) {
      last_use[a] = std::max<long long>(last_use[a], group_end[plan.group[i]]);
      if (plan.group[a] != plan.group[i]) read_outside_group[a] = true;
    }
  }
  std::set<int> outputs;
  for (const auto& [role, id] : p.outputs) outputs.insert(id);
  std::vector<std::vector<int>> dies_at(n);
  for (size_t v = 0; v < n; ++v)
    if (last_use[v] >= 0) dies_at[last_use[v]].push_back(static_cast<int>(v));

  plan.slot.assign(n, kBoundOutside);
  for (size_t i = 0; i < n; ++i) {
    if (!plan.live[i]) continue;
    const ir::Value& v = p.values[i];
    const bool fused = group_end[plan.group[i]] != plan.group[i];
    if (bound_outside_arena(v.name, kind)) continue;
    if (fused && !read_outside_group[i] && !outputs.count(static_cast<int>(i)))
      plan.slot[i] = kRegister;
    else
      plan.slot[i] = 0;  // needs arena memory: placed below
  }
  Arena arena;
  for (size_t i = 0; i < n; ++i) {
    if (!plan.live[i]) continue;
    if (plan.slot[i] >= 0) plan.slot[i] = arena.allocate(p.values[i].size());
    // Released after the group's outputs are placed, so a pass never overwrites its operands.
    if (group_end[plan.group[i]] == static_cast<int>(i))
      for (int dead : dies_at[i])
        if (plan.slot[dead] >= 0) arena.release(plan.slot[dead]);
  }
  plan.arena_floats = arena.high_water();
  return plan;
}

Footprint footprint(const Spec& spec) {
  auto rounded = [](long long n) { return (n + 15) / 16 * 16; };
  Footprint f{.state_floats = spec.state_floats()};
  f.forward_arena_floats = rounded(plan_step(spec, StepKind::forward).arena_floats);
  f.backward_arena_floats = rounded(plan_step(spec, StepKind::backward).arena_floats);
  if (spec.checkpoint_group > 1)
    f.backward_arena_floats =
        std::max(f.backward_arena_floats, rounded(plan_step(spec, StepKind::advance).arena_floats));
  return f;
}

}  // namespace ttt::plan
