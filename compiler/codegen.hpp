// codegen.hpp: writes the CUDA source of one kernel (forward or backward) for a (spec, schedule):
// a small, deterministic stub of compile-time constants plus one template call per IR op. All
// kernel logic lives in templates/tttc/*.cuh. Also the single source of truth for the kernels'
// shared-memory and workspace layouts, which the runtime reads from `Generated`.
#pragma once

#include <string>

#include "compiler/schedule.hpp"
#include "compiler/spec.hpp"

namespace ttt::codegen {

enum class KernelKind { forward, backward, decode };
const char* to_string(KernelKind k);

// Choices made after a first compile, not by the schedule. context_in_memory (arena lowering):
// the step context lives in local memory, re-read where used, instead of in registers across the
// step's calls (templates/tttc/driver.cuh); runtime/jit.cpp compiles it when the default spills.
struct Options {
  bool context_in_memory = false;
};

struct Generated {
  KernelKind kind;
  std::string kernel_name;  // extern "C" entry point
  std::string source;
  long long shared_bytes = 0;      // dynamic shared memory per CTA
  long long workspace_floats = 0;  // global scratch per CTA (per (b, h))
  long long arena_floats = 0;      // the largest step arena in the kernel (arena lowering)
  int threads = 0;                 // CTA size
  int heads_per_cta = 1;           // (b, h) pairs one CTA computes: the grid is ceil(B*H / this)
  int ctas_per_head = 1;  // CTAs sharing one (b, h) (decode's clusters): the grid is B*H*this
  bool context_in_memory = false;  // Options::context_in_memory, as generated
  // A forward with Schedule::query_split: the kernel above runs the state recurrence, this second
  // entry point of the same module the query outputs, one team per run of items_per_team
  // consecutive (b, h, mini-batch) items: its grid is ceil(B*H*steps / items_per_team /
  // heads_per_cta).
  std::string query_kernel_name;
  // A backward with Schedule::backward_split: this entry point runs first, over the (b, h,
  // mini-batch) items like the query kernel, and writes item_workspace_floats per item to the
  // workspace (after the per-(b, h) part); the kernel above then runs the update path's chain.
  std::string output_kernel_name;
  // With Schedule::backward_split_tokens this third entry point runs last, over the items again:
  // the update path's token gradients from the adjoint states the chain saved.
  std::string tokens_kernel_name;
  long long item_workspace_floats = 0;
  int items_per_team = 0;  // of the query or output-path kernel
};

// Dispatches on the kind and the kernel's lowering (lowering_of): decode (decode_codegen.cpp, no
// schedule), else "tile" (tile_codegen.cpp) or "arena" (codegen.cpp).
Generated generate(const Spec& spec, const Schedule& schedule, KernelKind kind,
                   const Options& options = {});
// The token-by-token decode kernel of docs/decode.md (templates/tttc/decode.cuh). Causal specs
// only: throws std::invalid_argument for a non-causal one.
Generated generate_decode(const Spec& spec);
Generated generate_tile(const Spec& spec, const Schedule& schedule, KernelKind kind);
// Cfg::unpack_checkpoint(packed, fragments): a checkpoint of a tile forward with teams of `warps`
// warps (fragment order, templates/tttc/fragment_order.cuh) into the packed layout, for the arena
// backward.
std::string fragment_checkpoint_unpack(const Spec& spec, int warps);

}  // namespace ttt::codegen
