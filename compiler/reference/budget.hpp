// budget.hpp: how much memory the CPU reference needs for a shape, and the check that refuses a
// shape before anything is allocated (issue 11: a huge --shape ran until the OOM killer ended it,
// and element counts overflowed). All arithmetic is overflow-checked.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "compiler/spec.hpp"

namespace ttt::ref {

// A shape whose tensors cannot be held: the message says "too large" and gives the figures. An
// invalid_argument, so command-line callers report it as bad input (exit 2).
struct TooLarge : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Product of `shape`; throws TooLarge when it overflows int64 (`what` names the tensor).
int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what = "tensor");

// Upper estimate of the reference's peak memory in bytes for B x H x T tokens: inputs, outputs,
// states, the checkpoints of the backward and per-thread scratch. Throws TooLarge on overflow.
uint64_t memory_estimate(const Spec& spec, int64_t B, int64_t H, int64_t T, bool per_batch_state,
                         bool backward);

// Bytes the reference may use: 3/4 of physical memory, or less under an address-space limit.
uint64_t memory_budget();

// Throws TooLarge ("B=.. H=.. T=..: too large for the CPU reference: needs about X GiB, the
// budget is Y GiB") when memory_estimate exceeds memory_budget.
void check_memory(const Spec& spec, int64_t B, int64_t H, int64_t T, bool per_batch_state,
                  bool backward);

}  // namespace ttt::ref
