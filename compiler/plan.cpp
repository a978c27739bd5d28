// plan.cpp: dead-code elimination and first-fit arena allocation over value lifetimes.
#include "compiler/plan.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace ttt::plan {

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

std::vector<std::string> wanted_outputs(const ir::Program& p, StepKind kind) {
  std::vector<std::string> names;
  for (const auto& [role, id] : p.outputs)
    if (kind != StepKind::advance || role != "O") names.push_back(role);
  return names;
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

// First-fit allocator over [offset, offset + size) blocks, 16-float (64-byte) aligned.
class Arena {
 public:
  long long allocate(long long size) {
    size = (size + 15) / 16 * 16;
    long long offset = 0;
    for (const auto& [start, length] : used_) {
      if (start - offset >= size) break;
      offset = std::max(offset, start + length);
    }
    used_[offset] = size;
    high_ = std::max(high_, offset + size);
    return offset;
  }
  void release(long long offset) { used_.erase(offset); }
  long long high_water() const { return high_; }

 private:
  std::map<long long, long long> used_;
  long long high_ = 0;
};

}  // namespace

StepPlan plan_step(const Spec& spec, StepKind kind) {
  StepPlan plan{.kind = kind};
  ir::Program forward = ir::build_step(spec);
  plan.program = kind == StepKind::backward ? ir::append_adjoint(forward) : forward;
  const ir::Program& p = plan.program;
  const std::vector<std::string> wanted = wanted_outputs(p, kind);
  plan.live = live_ops(p, wanted);

  const size_t n = p.ops.size();
  std::vector<long long> last_use(n, -1);
  for (size_t i = 0; i < n; ++i) {
    if (!plan.live[i]) continue;
    last_use[i] = std::max<long long>(last_use[i], i);
    for (int a : p.ops[i].args) last_use[a] = std::max<long long>(last_use[a], i);
  }
  std::vector<std::vector<int>> dies_at(n);
  for (size_t v = 0; v < n; ++v)
    if (last_use[v] >= 0) dies_at[last_use[v]].push_back(static_cast<int>(v));

  plan.slot.assign(n, -1);
  Arena arena;
  for (size_t i = 0; i < n; ++i) {
    if (!plan.live[i]) continue;
    const ir::Value& v = p.values[i];
    if (!bound_outside_arena(v.name, kind)) plan.slot[i] = arena.allocate(v.size());
    // Released after the op's own output is placed, so an op never overwrites its operands.
    for (int dead : dies_at[i])
      if (plan.slot[dead] >= 0) arena.release(plan.slot[dead]);
  }
  plan.arena_floats = arena.high_water();
  return plan;
}

}  // namespace ttt::plan
