// knobs.cpp: the knob table (the tuner's whole search space) and the enumerator over it.
#include "autotune/knobs.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <stdexcept>

#include "compiler/arch.hpp"
#include "compiler/tile_lowering.hpp"

namespace ttt::autotune {
namespace {

using nlohmann::json;
using Values = std::vector<json>;

Values ints(std::initializer_list<int> v) { return Values(v.begin(), v.end()); }

// Matmul flavours from least to most accurate; simt_f32 and mma_bf16x6 are both about f32.
int accuracy(const std::string& flavour) {
  if (flavour == "mma_bf16") return 1;
  if (flavour == "mma_bf16x3") return 2;
  return 3;  // mma_bf16x6, simt_f32
}

// Precision is the spec's: a matmul knob offers the heuristic's flavour and those at least as
// accurate, never a less accurate one.
Values flavours_from(const std::string& base) {
  Values v;
  for (const char* f : {"simt_f32", "mma_bf16", "mma_bf16x3", "mma_bf16x6"})
    if (f == base || accuracy(f) >= accuracy(base)) v.push_back(f);
  return v;
}

Values placements() { return {"shared", "global"}; }

bool tile_possible(const Spec& spec, const Target& t) {
  return arch_number(t.arch) >= 80 && tile::unsupported(spec, 1).empty();
}

// Global homes (the backward's adjoint state, its state, values past a shared-memory limit in L2)
// are searched for linear backwards that do not fit on chip: there they ran 1.4-3.9x faster than
// the arena backward (H200, session 26; the heuristic takes them only up to K = 32); where the
// backward fits they were slower (W2: 1.13 -> 1.18 ms), and MLPs' spilled (session 24).
bool global_homes_searched(const Spec& spec, const Target& t, const Schedule& base) {
  if (spec.model != InnerModel::linear || !spec.build_backward || !tile_possible(spec, t))
    return false;
  Schedule on_chip = base;
  on_chip.backward_lowering = "tile";
  on_chip.global_state = on_chip.tile_shared_kib = 0;
  return !validate(spec, on_chip, t).empty();
}

}  // namespace

const char* to_string(Pass p) { return p == Pass::forward ? "forward" : "backward"; }

Pass pass_from_string(const std::string& s) {
  if (s == "forward") return Pass::forward;
  if (s == "backward") return Pass::backward;
  throw std::invalid_argument(fmt::format("pass '{}': must be forward or backward", s));
}

const std::vector<Knob>& knobs() {
  static const std::vector<Knob> table = {
      {"lowering", "", Scope::both,
       [](const Spec& spec, const Target& t, const Schedule&) {
         return tile_possible(spec, t) ? Values{"tile", "arena"} : Values{"arena"};
       }},
      // Tile lowering (tile_lowering.hpp). The global homes first: their values are decided
      // once per product, not once per combination of the knobs before them.
      {"global_state", "tile", Scope::backward,
       [](const Spec& spec, const Target& t, const Schedule& base) {
         return global_homes_searched(spec, t, base) ? ints({0, 1, 2}) : Values{base.global_state};
       }},
      // Both kernels: a forward past the limit would move values to L2 as well.
      {"tile_shared_kib", "tile", Scope::both,
       [](const Spec& spec, const Target& t, const Schedule& base) {
         return global_homes_searched(spec, t, base) ? ints({0, 160})
                                                     : Values{base.tile_shared_kib};
       }},
      {"team_warps", "tile", Scope::both,
       [](const Spec&, const Target&, const Schedule&) {
         return ints({1, 2, 4, 8});
       }},
      {"teams_per_cta", "tile", Scope::both,
       [](const Spec&, const Target&, const Schedule&) {
         return ints({1, 2, 4});
       }},
      {"register_budget", "tile", Scope::both,
       [](const Spec&, const Target&, const Schedule&) {
         return ints({160, 224, 255});
       }},
      // The query outputs in a kernel of their own (few heads; needs every state checkpointed).
      {"query_split", "tile", Scope::forward,
       [](const Spec& spec, const Target&, const Schedule&) {
         return spec.checkpoint_group == 1 ? Values{false, true} : Values{false};
       }},
      // The output path's adjoint in a kernel of its own, in parallel over mini-batches (few
      // heads; needs every state checkpointed).
      {"backward_split", "tile", Scope::backward,
       [](const Spec& spec, const Target&, const Schedule&) {
         return spec.checkpoint_group == 1 ? Values{false, true} : Values{false};
       }},
      // ... and the update path's token gradients in a third kernel (needs backward_split).
      {"backward_split_tokens", "tile", Scope::backward,
       [](const Spec& spec, const Target&, const Schedule&) {
         return spec.checkpoint_group == 1 ? Values{false, true} : Values{false};
       }},
      // Arena lowering (codegen.cpp).
      {"threads", "arena", Scope::both,
       [](const Spec&, const Target&, const Schedule&) {
         return ints({128, 256, 512, 1024});
       }},
      {"forward_arena", "arena", Scope::forward,
       [](const Spec&, const Target&, const Schedule&) { return placements(); }},
      {"forward_state", "arena", Scope::forward,
       [](const Spec&, const Target&, const Schedule&) { return placements(); }},
      {"backward_arena", "arena", Scope::backward,
       [](const Spec&, const Target&, const Schedule&) { return placements(); }},
      // The on-chip part of a global arena: none, or the heuristic's (what shared memory leaves).
      {"forward_arena_shared_kib", "arena", Scope::forward,
       [](const Spec&, const Target&, const Schedule& base) {
         return ints({0, base.forward_arena_shared_kib});
       }},
      {"backward_arena_shared_kib", "arena", Scope::backward,
       [](const Spec&, const Target&, const Schedule& base) {
         return ints({0, base.backward_arena_shared_kib});
       }},
      {"forward_blocks_per_sm", "arena", Scope::forward,
       [](const Spec&, const Target&, const Schedule&) {
         return ints({1, 2, 3, 4});
       }},
      {"backward_blocks_per_sm", "arena", Scope::backward,
       [](const Spec&, const Target&, const Schedule&) {
         return ints({1, 2, 3, 4});
       }},
      {"forward_matmul", "arena", Scope::forward,
       [](const Spec&, const Target&, const Schedule& base) {
         return flavours_from(base.forward_matmul);
       }},
      {"backward_matmul", "arena", Scope::backward,
       [](const Spec&, const Target&, const Schedule& base) {
         return flavours_from(base.backward_matmul);
       }},
      // Only 1 is implemented; a cluster split adds its sizes here.
      {"cluster", "arena", Scope::both,
       [](const Spec&, const Target&, const Schedule&) { return ints({1}); }},
  };
  return table;
}

static Schedule with_field(const Schedule& s, const std::string& name, const json& value) {
  json j = schedule_to_json(s);
  j[name] = value;
  // The lowering knob sets both kernels' lowering: candidates are uniform, and the heuristic
  // (which may run the forward on the tile lowering and the backward on the arena) is always a
  // candidate of its own.
  if (name == "lowering") j["backward_lowering"] = value;
  return schedule_from_json(j);
}

json shared_projection(const Schedule& s) {
  json j = schedule_to_json(s);
  for (const Knob& k : knobs())
    if (k.scope != Scope::both) j.erase(k.name);
  return j;
}

json pass_projection(const Schedule& s, Pass pass) {
  const Scope other = pass == Pass::forward ? Scope::backward : Scope::forward;
  json j = schedule_to_json(s);
  for (const Knob& k : knobs())
    if (k.scope == other) j.erase(k.name);
  return j;
}

Schedule with_pass_knobs(Schedule into, const Schedule& from, Pass pass) {
  const Scope wanted = pass == Pass::forward ? Scope::forward : Scope::backward;
  const json src = schedule_to_json(from);
  for (const Knob& k : knobs())
    if (k.scope == wanted) into = with_field(into, k.name, src.at(k.name));
  return into;
}

int distance(const Schedule& a, const Schedule& b) {
  const json ja = schedule_to_json(a), jb = schedule_to_json(b);
  int d = 0;
  for (const auto& [key, value] : ja.items()) d += jb.value(key, json()) != value;
  return d;
}

// The heuristic of one lowering: the start of that lowering's product.
static Schedule lowering_base(const Spec& spec, const Target& t, const std::string& lowering) {
  const Schedule heuristic = default_schedule(spec, t);
  if (heuristic.lowering == lowering && heuristic.backward_lowering == lowering) return heuristic;
  Schedule s = default_arena_schedule(spec, t);
  if (lowering == "arena") return s;
  s.lowering = s.backward_lowering = lowering;
  s.team_warps = tile::default_team_warps(spec);
  return s;
}

static bool affects(const Knob& k, const std::optional<Pass>& pass) {
  if (!pass || k.scope == Scope::both) return true;
  return (k.scope == Scope::forward) == (*pass == Pass::forward);
}

static void product(const Spec& spec, const Target& t, const Schedule& base,
                    const std::vector<const Knob*>& axes, size_t i, const Schedule& current,
                    std::vector<Schedule>& out) {
  if (i == axes.size()) {
    out.push_back(current);
    return;
  }
  for (const json& v : axes[i]->values(spec, t, base))
    product(spec, t, base, axes, i + 1, with_field(current, axes[i]->name, v), out);
}

static Enumeration enumerate_passes(const Spec& spec, const Target& t,
                                    const std::vector<Pass>& passes, long long launch_heads) {
  const Schedule heuristic = default_schedule(spec, t, launch_heads);
  const Knob& lowering = knobs().front();
  std::vector<Schedule> all;
  for (Pass pass : passes)
    for (const json& l : lowering.values(spec, t, heuristic)) {
      const Schedule base = lowering_base(spec, t, l.get<std::string>());
      std::vector<const Knob*> axes;
      for (const Knob& k : knobs())
        if (&k != &lowering && (k.lowering.empty() || k.lowering == base.lowering) &&
            affects(k, pass))
          axes.push_back(&k);
      product(spec, t, base, axes, 0, base, all);
    }
  Enumeration e;
  e.product_size = all.size();
  std::set<std::string> seen;
  std::vector<Schedule> valid;
  all.insert(all.begin(), heuristic);  // first, whatever the products hold
  for (const Schedule& s : all) {
    if (!seen.insert(canonical_schedule(s)).second) continue;
    if (auto reasons = validate(spec, s, t); !reasons.empty())
      e.pruned.push_back({s, std::move(reasons)});
    else
      valid.push_back(s);
  }
  std::stable_sort(valid.begin(), valid.end(), [&](const Schedule& a, const Schedule& b) {
    return distance(a, heuristic) < distance(b, heuristic);
  });
  e.candidates = std::move(valid);
  return e;
}

Enumeration enumerate(const Spec& spec, const Target& target, long long launch_heads) {
  std::vector<Pass> passes;
  if (spec.build_forward) passes.push_back(Pass::forward);
  if (spec.build_backward) passes.push_back(Pass::backward);
  return enumerate_passes(spec, target, passes, launch_heads);
}

Enumeration enumerate(const Spec& spec, const Target& target, Pass pass) {
  return enumerate_passes(spec, target, {pass}, 0);
}

std::string schedule_summary(const Schedule& s, const Schedule& heuristic) {
  const auto a = schedule_to_json(s), b = schedule_to_json(heuristic);
  std::string out;
  if (s.lowering != heuristic.lowering) out = "lowering=" + s.lowering;
  for (const auto& [key, value] : a.items())
    if (key != "lowering" && b.value(key, nlohmann::json()) != value) {
      out += (out.empty() ? "" : " ") + key + "=" +
             (value.is_string() ? value.get<std::string>() : value.dump());
    }
  return out.empty() ? "heuristic" : out;
}

std::vector<std::string> post_compile_reasons(const Resources& candidate,
                                              const Resources& heuristic, Pass pass) {
  std::vector<std::string> reasons;
  if (candidate.spill_bytes > std::max(0, heuristic.spill_bytes))
    reasons.push_back(fmt::format("{} kernel spills {} bytes (the heuristic's: {})",
                                  to_string(pass), candidate.spill_bytes,
                                  std::max(0, heuristic.spill_bytes)));
  return reasons;
}

}  // namespace ttt::autotune
