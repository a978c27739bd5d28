// plan.hpp: from a step Program to what codegen emits: dead-code elimination for the outputs a
// kernel wants, where every value lives (a slot in the CTA's arena, or bound to a driver pointer
// such as the state), and a liveness-based arena layout so values that are never alive together
// share memory.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "compiler/ir.hpp"

namespace ttt::plan {

// First-fit allocator over [offset, offset + size) float blocks, 16-float (64-byte) aligned:
// the arena path's step memory and the tile path's shared-memory homes.
class Arena {
 public:
  // First fit; with limit >= 0, -1 (and nothing allocated) where that fit would end past it.
  long long allocate(long long size, long long limit = -1);
  void release(long long offset) { used_.erase(offset); }
  long long high_water() const { return high_; }

 private:
  std::map<long long, long long> used_;
  long long high_ = 0;
};

// The three step functions a kernel can contain.
enum class StepKind {
  forward,   // forward kernel: O and the updated state
  advance,   // backward kernel, rematerialisation: the updated state only
  backward,  // backward kernel: all adjoints
};

// Which part of the backward step's adjoint a kernel computes. The adjoint is linear in its seeds,
// so the two paths add up to the whole (ir::with_zero_inputs; docs/tile-lowering.md, "Backward
// split"): the output path depends only on the state before the step, the tokens and dO, and
// runs in parallel over mini-batches; the update path carries the chain dW_{m+1} -> dW_m.
enum class AdjointPart {
  whole,
  output_path,  // the seeds dW_l', db_l' at zero: the query outputs' share of every gradient
  update_path,  // dO at zero: the state update's share
  // The update path in two (Schedule::backward_split_tokens): the adjoint state alone (the
  // chain), and everything else given the adjoint state the chain saw (in parallel).
  update_state,
  update_tokens,
};

// Values bound to driver pointers instead of arena slots: the state, its adjoint, gamma, beta.
bool bound_outside_arena(const std::string& value_name, StepKind kind);

// slot values that are not arena offsets.
constexpr long long kBoundOutside = -1;  // a driver pointer (state, gradients, gamma, beta) or dead
constexpr long long kRegister = -2;      // lives only inside its fused group, in a register

struct StepPlan {
  StepKind kind;
  AdjointPart part = AdjointPart::whole;  // backward steps only
  ir::Program program;                    // forward or forward+adjoint, unpruned (ids stay stable)
  std::vector<bool> live;                 // per op: emitted or not
  // Consecutive elementwise ops of one output shape, each reading its group's earlier values only
  // at its own element, run as one fused pass: group[i] is the index of the group's first op.
  std::vector<int> group;
  std::vector<long long> slot;  // per value: arena offset in floats, kBoundOutside or kRegister
  long long arena_floats = 0;
};

// part: backward steps only. A part's outputs that are zero on its path are not computed (they
// stay `fill 0` ops of the program, dead).
StepPlan plan_step(const Spec& spec, StepKind kind, AdjointPart part = AdjointPart::whole);

// What an arena-lowered kernel's steps need, known without generating code (the schedule's
// checks and the tuner's pruning use it; codegen lays memory out from the same numbers): the
// forward step's arena, the larger of the backward kernel's steps (advance when
// checkpoint_group > 1, backward), each rounded to 16 floats, and one head's state.
struct Footprint {
  long long forward_arena_floats = 0;
  long long backward_arena_floats = 0;
  long long state_floats = 0;
};
Footprint footprint(const Spec& spec);

}  // namespace ttt::plan
