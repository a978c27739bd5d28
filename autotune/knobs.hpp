// knobs.hpp: the tuner's search space, declared once. Each knob is a field of the schedule's JSON
// form (schedule_to_json), the lowering it belongs to, the pass(es) it affects and its candidate
// values for a (spec, target). The enumerator takes, per pass, the cartesian product of the knobs
// that affect that pass (the others stay at the heuristic's values), prunes it with validate()
// and the analytic footprint (no code generation), and orders it nearest-to-the-heuristic first.
// Adding a knob is one entry in knobs.cpp's table; nothing else in the tuner names a knob.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compiler/schedule.hpp"
#include "compiler/spec.hpp"

namespace ttt::autotune {

enum class Pass { forward, backward };
const char* to_string(Pass p);
Pass pass_from_string(const std::string& s);  // throws std::invalid_argument

enum class Scope { both, forward, backward };

struct Knob {
  std::string name;      // the schedule JSON field it sets
  std::string lowering;  // "tile", "arena", or "" (every lowering)
  Scope scope;           // which kernels it changes
  // Candidate values for (spec, target); `base` is the heuristic schedule of the lowering being
  // enumerated (for values relative to it, e.g. matmul flavours no less accurate).
  std::function<std::vector<nlohmann::json>(const Spec&, const Target&, const Schedule& base)>
      values;
};

// The table, "lowering" first (it selects which other knobs apply).
const std::vector<Knob>& knobs();

// The schedule's fields that both passes share (the knobs of scope both): two schedules with the
// same projection run the same forward/backward code apart from pass-scoped knobs.
nlohmann::json shared_projection(const Schedule& s);
// The schedule's fields that can change `pass`'s kernel: every field but the knobs scoped to the
// other pass. Candidates with the same projection run the same kernel for that pass.
nlohmann::json pass_projection(const Schedule& s, Pass pass);
// `into` with the knobs of `pass`'s scope copied from `from`.
Schedule with_pass_knobs(Schedule into, const Schedule& from, Pass pass);

struct Pruned {
  Schedule schedule;
  std::vector<std::string> reasons;
};

struct Enumeration {
  std::vector<Schedule> candidates;  // valid, distinct, heuristic first, then by distance
  std::vector<Pruned> pruned;        // rejected before compiling, with validate()'s reasons
  size_t product_size = 0;           // schedules in the cartesian products, before pruning
};

// Candidates for the passes the spec builds (the union of each pass's product). The heuristic
// candidate is the one get_kernel would run at `launch_heads` (B * H; 0: unknown), so the splits
// for few heads are in it where the target's SM count is known.
Enumeration enumerate(const Spec& spec, const Target& target, long long launch_heads = 0);
// The product for one pass only.
Enumeration enumerate(const Spec& spec, const Target& target, Pass pass);

// Number of schedule fields that differ (the enumeration's order).
int distance(const Schedule& a, const Schedule& b);

// A one-line summary of `s`: the fields that differ from `heuristic` ("heuristic" when none).
std::string schedule_summary(const Schedule& s, const Schedule& heuristic);

// Resources of a compiled kernel, for pruning after compilation.
struct Resources {
  int registers = -1, spill_bytes = -1;
};
// Reasons to drop a compiled candidate: it spills more than the heuristic did (spills cost more
// than any tile-size gain on these latency-bound scans). Empty: keep it.
std::vector<std::string> post_compile_reasons(const Resources& candidate,
                                              const Resources& heuristic, Pass pass);

}  // namespace ttt::autotune
