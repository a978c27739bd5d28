// codegen.cpp: IR step plans -> CUDA source. Every line it writes is either a constant, a
// template call for one op, or a load/store binding a value to the driver's pointers.
#include "compiler/codegen.hpp"

#include <fmt/format.h>

#include <map>
#include <set>
#include <stdexcept>

#include "compiler/codegen_text.hpp"
#include "compiler/plan.hpp"

namespace ttt::codegen {

const char* to_string(KernelKind k) {
  return k == KernelKind::forward ? "forward" : k == KernelKind::backward ? "backward" : "decode";
}

namespace {

using plan::StepKind;
using plan::StepPlan;

const char* ew_constant(ir::Ew e) {
  static const char* names[] = {"tttc::kAdd",    "tttc::kSub",   "tttc::kMul",      "tttc::kAct",
                                "tttc::kActD1",  "tttc::kActD2", "tttc::kSqrt",     "tttc::kRecip",
                                "tttc::kAffine", "tttc::kTril",  "tttc::kBroadcast"};
  return names[static_cast<int>(e)];
}

// Offsets of W_l and b_l inside one head's packed state, by the IR's names for them.
std::map<std::string, long long> state_offsets(const Spec& spec) {
  std::map<std::string, long long> offsets;
  for (const StateMember& m : state_members(spec)) offsets[m.name] = m.offset;
  return offsets;
}

// The token inputs a step loads (load_tokens) and the StepContext pointer and stride of each.
const std::map<std::string, std::string> kTokenSources = {
    {"Q", "c.q, c.sq"}, {"K", "c.k, c.sk"}, {"V", "c.v, c.sv"}, {"dO", "c.dout, c.sdout"}};

// Emits one step function from its plan.
class StepWriter {
 public:
  // on_chip_floats: with a global arena, the floats of its on-chip part (values wholly below
  // that offset live in shared memory, at the same offsets).
  // arena_global, state_global: where the arena (beyond its on-chip part) and the state live.
  StepWriter(const Spec& spec, const StepPlan& plan, const Schedule& schedule,
             long long on_chip_floats, bool arena_global, bool state_global)
      : spec_(spec),
        plan_(plan),
        p_(plan.program),
        schedule_(schedule),
        on_chip_floats_(on_chip_floats),
        arena_global_(arena_global),
        state_global_(state_global) {
    offsets_ = state_offsets(spec);
  }

  std::string write(const std::string& function_name) {
    out_ = fmt::format("  static __device__ void {}(const tttc::StepContext<Cfg::Elem>& c) {{\n",
                       function_name);
    out_ += "    float* const A = c.arena;\n";
    if (on_chip_floats_ > 0) out_ += "    float* const S = c.arena_shared;  // the on-chip part\n";
    std::string section;
    for (size_t i = 0; i < p_.ops.size(); ++i) {
      if (!plan_.live[i]) continue;
      const ir::Op& op = p_.ops[i];
      if (loads_pending_ && op.kind != ir::OpKind::input) sync_loads();
      if (function_name == "forward" && !waited_for_checkpoint_ && writes_state(i)) {
        out_ += "    tttc::wait_checkpoint_reads<Cfg>();  // the state is updated in place below\n";
        waited_for_checkpoint_ = true;
      }
      if (op.section != section) {
        section = op.section;
        out_ += fmt::format("    // {}\n", section);
      }
      std::vector<int> members;
      for (size_t j = i;
           j < p_.ops.size() && (!plan_.live[j] || plan_.group[j] == static_cast<int>(i)); ++j)
        if (plan_.live[j]) members.push_back(static_cast<int>(j));
      if (members.size() > 1) {
        emit_fused(members);
        for (int m : members) emit_output_binding(m);
        i = members.back();
        continue;
      }
      emit_op(op);
      emit_output_binding(op.out);
    }
    if (loads_pending_) sync_loads();
    return out_ + "  }\n";
  }

 private:
  // Whether value id is read from global memory: the arena beyond its on-chip part, a state in
  // global memory, or a state gradient (always in the workspace).
  bool in_global_memory(int id) const {
    const long long slot = plan_.slot[id];
    if (slot >= 0) return arena_global_ && slot + p_.values[id].size() > on_chip_floats_;
    if (slot != plan::kBoundOutside) return false;
    const std::string where = loc(id);
    if (where.starts_with("c.dstate")) return true;
    return where.starts_with("c.state") && state_global_;
  }

  // Whether op i, or a fused group it starts, writes the state after the step.
  bool writes_state(size_t i) const {
    for (size_t j = i;
         j < p_.ops.size() && (j == i || !plan_.live[j] || plan_.group[j] == static_cast<int>(i));
         ++j)
      if (plan_.live[j] && plan_.slot[p_.ops[j].out] == plan::kBoundOutside &&
          loc(p_.ops[j].out).starts_with("c.state_out"))
        return true;
    return false;
  }

  // The input loads do not end with a barrier each: one after the last of them lets their memory
  // latencies overlap.
  void sync_loads() {
    out_ += "    __syncthreads();  // the inputs above\n";
    loads_pending_ = false;
  }

  // Where value `id` lives, as a C++ expression.
  std::string loc(int id) const {
    if (const long long slot = plan_.slot[id]; slot >= 0)
      return fmt::format("{} + {}", slot + p_.values[id].size() <= on_chip_floats_ ? "S" : "A",
                         slot);
    const std::string& name = p_.values[id].name;
    if (name == "gamma" || name == "beta") return "c." + name;
    std::string base = name;
    const bool after = !base.empty() && base.back() == '\'';
    if (after) base.pop_back();
    const bool grad = base[0] == 'd';
    if (grad) base = base.substr(1);
    const long long offset = offsets_.at(base);
    const char* pointer =
        grad ? (after ? "c.dstate_next" : "c.dstate_prev") : (after ? "c.state_out" : "c.state_in");
    return fmt::format("{} + {}", pointer, offset);
  }

  std::string shape(int id) const {
    return fmt::format("{}, {}", p_.values[id].rows, p_.values[id].cols);
  }

  void line(const std::string& text, int id) {
    const ir::Value& v = p_.values[id];
    out_ += fmt::format("    {}  // %{}{} [{}x{}]\n", text, id, v.name.empty() ? "" : " " + v.name,
                        v.rows, v.cols);
  }

  void emit_input(int id) {
    const std::string& name = p_.values[id].name;
    const int K = spec_.mini_batch, f = spec_.head_dim;
    loads_pending_ |=
        kTokenSources.count(name) || name == "lr" || name == "tau" || name == "tau_last";
    if (auto it = kTokenSources.find(name); it != kTokenSources.end())
      line(fmt::format("tttc::load_tokens({}, {}, {}, {}, c.valid);", loc(id), K, f, it->second),
           id);
    else if (name == "lr")
      line(fmt::format("tttc::load_vector({}, {}, c.lr, c.valid, c.slr);", loc(id), K), id);
    else if (name == "tau")
      line(fmt::format("tttc::load_vector({}, {}, c.tau, {});", loc(id), K, K), id);
    else if (name == "tau_last")
      line(fmt::format("tttc::load_vector({}, 1, c.tau + c.valid - 1, 1);", loc(id)), id);
    else if (plan_.slot[id] >= 0)
      throw std::logic_error("codegen: no binding for input " + name);
  }

  void emit_output_binding(int id) {
    const std::string& name = p_.values[id].name;
    bool is_output = false;
    for (const auto& [role, vid] : p_.outputs) is_output |= (vid == id && role == name);
    if (!is_output || plan_.slot[id] < 0) return;
    const int K = spec_.mini_batch, f = spec_.head_dim;
    static const std::map<std::string, std::pair<const char*, const char*>> token_targets = {
        {"O", {"c.out", "c.sout"}},
        {"dQ", {"c.dq", "c.sdq"}},
        {"dK", {"c.dk", "c.sdk"}},
        {"dV", {"c.dv", "c.sdv"}}};
    if (auto it = token_targets.find(name); it != token_targets.end()) {
      out_ += fmt::format("    tttc::store_tokens({}, {}, {}, {}, {}, c.valid);\n",
                          it->second.first, loc(id), K, f, it->second.second);
    } else if (name == "dlr") {
      out_ += fmt::format("    tttc::store_vector(c.dlr, {}, {}, c.valid, c.sdlr);\n", loc(id), K);
    } else if (name == "dtau") {
      out_ += fmt::format("    tttc::accumulate(c.acc_tau, {}, {});\n", loc(id), K);
    } else if (name == "dtau_last") {
      out_ += fmt::format("    tttc::accumulate(c.acc_tau + c.valid - 1, {}, 1);\n", loc(id));
    } else if (name == "dgamma" || name == "dbeta") {
      out_ += fmt::format("    tttc::accumulate(c.acc_{}, {}, {});\n", name.substr(1), loc(id), f);
    } else {
      throw std::logic_error("codegen: no binding for output " + name);
    }
  }

  // A fused group: one pass over the elements, each op a register value, stored only when read
  // outside the group (plan slot >= 0 or bound to a driver pointer).
  void emit_fused(const std::vector<int>& members) {
    const ir::Value& shape = p_.values[members.front()];
    const std::set<int> inside(members.begin(), members.end());
    auto operand = [&](int id) {
      if (inside.count(id)) return fmt::format("v{}", id);
      const ir::Value& v = p_.values[id];
      const char* index = v.rows == 1 ? (v.cols == 1 ? "0" : "j") : (v.cols == 1 ? "i" : "idx");
      return fmt::format("({})[{}]", loc(id), index);
    };
    // A fused loop loads one element's operands at a time (its stores may alias the next
    // element's loads), so operands in global memory are first requested into L2 as a whole.
    std::set<int> prefetched;
    for (int id : members)
      for (int a : p_.ops[id].args)
        if (!inside.count(a) && p_.values[a].size() == shape.size() && in_global_memory(a) &&
            prefetched.insert(a).second)
          out_ += fmt::format("    tttc::prefetch_l2({}, {});\n", loc(a), shape.size());
    out_ +=
        fmt::format("    for (int idx = threadIdx.x; idx < {}; idx += blockDim.x) {{  // fused\n",
                    shape.size());
    out_ += fmt::format("      const int i = idx / {}, j = idx % {};\n", shape.cols, shape.cols);
    for (int id : members) {
      const ir::Op& op = p_.ops[id];
      const std::string b = op.args.size() > 1 ? operand(op.args[1]) : "0.f";
      out_ += fmt::format("      const float v{} = tttc::ew_apply<{}, kAct>({}, {}, {}, {}, i, j);",
                          id, ew_constant(op.ew), operand(op.args[0]), b, float_literal(op.s),
                          float_literal(op.c));
      const std::string& name = p_.values[id].name;
      out_ += fmt::format("  // %{}{}\n", id, name.empty() ? "" : " " + name);
      if (plan_.slot[id] != plan::kRegister)
        out_ += fmt::format("      ({})[idx] = v{};\n", loc(id), id);
    }
    out_ += "    }\n    __syncthreads();\n";
  }

  // Token inputs of a bf16 spec hold bf16 values (load_tokens widens them exactly), so a matmul
  // needs no further split terms of them: the terms would be zero.
  bool exact_in_bf16(int id) const {
    const std::string& name = p_.values[id].name;
    return spec_.dtype == DType::bf16 && p_.ops[id].kind == ir::OpKind::input &&
           kTokenSources.count(name);
  }

  // Registers per thread that the kernel's launch bounds leave (65536 per SM over its threads).
  int register_limit() const {
    const int blocks = plan_.kind == StepKind::forward ? schedule_.forward_blocks_per_sm
                                                       : schedule_.backward_blocks_per_sm;
    return std::min(255, 65536 / (schedule_.threads * std::max(1, blocks))) / 8 * 8;
  }

  void emit_op(const ir::Op& op) {
    const int id = op.out;
    const ir::Value& v = p_.values[id];
    switch (op.kind) {
      case ir::OpKind::input:
        emit_input(id);
        return;
      case ir::OpKind::matmul: {
        const ir::Value& a = p_.values[op.args[0]];
        const int kd = op.trans_a ? a.rows : a.cols;
        const bool has_d = op.args.size() > 2;
        if (v.rows % 4 || v.cols % 4)
          throw std::logic_error(
              fmt::format("codegen: matmul %{} is {}x{}, not a multiple of 4", id, v.rows, v.cols));
        const std::string& flavour =
            plan_.kind == StepKind::forward ? schedule_.forward_matmul : schedule_.backward_matmul;
        const bool mma = flavour != "simt_f32";
        if (mma && v.cols % 8)
          throw std::logic_error(fmt::format("codegen: mma matmul %{} has {} columns", id, v.cols));
        const std::string args =
            fmt::format("{}, {}, {}", loc(id), loc(op.args[0]), loc(op.args[1]));
        const std::string epilogue =
            fmt::format("{}, {}, {}", float_literal(op.alpha), has_d ? loc(op.args[2]) : "nullptr",
                        float_literal(has_d ? op.beta : 0.0));
        if (mma) {
          const int parts = flavour == "mma_bf16" ? 1 : flavour == "mma_bf16x3" ? 2 : 3;
          line(fmt::format("tttc::matmul_mma<{}, {}, {}, {}, {}, {}, {}, {}, {}>({}, {});",
                           op.trans_a, op.trans_b, exact_in_bf16(op.args[0]) ? 1 : parts,
                           exact_in_bf16(op.args[1]) ? 1 : parts, v.rows, v.cols, kd,
                           schedule_.threads / 32, register_limit(), args, epilogue),
               id);
        } else {
          line(fmt::format("tttc::matmul<{}, {}>({}, {}, {}, {}, {});", op.trans_a, op.trans_b,
                           args, v.rows, v.cols, kd, epilogue),
               id);
        }
        return;
      }
      case ir::OpKind::elementwise: {
        const int a = op.args[0], b = op.args.size() > 1 ? op.args[1] : -1;
        line(fmt::format("tttc::elementwise<{}, kAct>({}, {}, {}, {}, {}, {}, {}, {});",
                         ew_constant(op.ew), loc(id), shape(id), loc(a), shape(a),
                         b >= 0 ? loc(b) : "nullptr", b >= 0 ? shape(b) : "1, 1",
                         float_literal(op.s), float_literal(op.c)),
             id);
        return;
      }
      case ir::OpKind::row_sum:
      case ir::OpKind::col_sum:
      case ir::OpKind::transpose: {
        const char* fn = reduction_name(op.kind);
        line(fmt::format("tttc::{}({}, {}, {});", fn, loc(id), loc(op.args[0]), shape(op.args[0])),
             id);
        return;
      }
      case ir::OpKind::fill:
        line(fmt::format("tttc::fill({}, {}, {});", loc(id), shape(id), float_literal(op.c)), id);
        return;
    }
  }

  const Spec& spec_;
  const StepPlan& plan_;
  const ir::Program& p_;
  const Schedule& schedule_;
  const long long on_chip_floats_;
  const bool arena_global_, state_global_;
  std::map<std::string, long long> offsets_;
  std::string out_;
  bool loads_pending_ = false;  // input loads emitted since the last barrier
  bool waited_for_checkpoint_ = false;
};

// The forward kernel updates the state in place: no op may read W_l / b_l after W_l' / b_l'.
void check_in_place_update(const StepPlan& plan) {
  const ir::Program& p = plan.program;
  for (const auto& [role, out_id] : p.outputs) {
    if (role == "O") continue;
    const int old_id = p.input_id(role.substr(0, role.size() - 1));
    for (size_t i = out_id + 1; i < p.ops.size(); ++i)
      for (int a : p.ops[i].args)
        if (plan.live[i] && a == old_id)
          throw std::logic_error("codegen: " + role +
                                 " is written before the last read of the old state");
  }
}

long long round16(long long n) { return (n + 15) / 16 * 16; }

}  // namespace

Generated generate(const Spec& spec, const Schedule& schedule, KernelKind kind,
                   const Options& options) {
  if (kind == KernelKind::decode) return generate_decode(spec);
  if (lowering_of(schedule, kind == KernelKind::backward) == "tile")
    return generate_tile(spec, schedule, kind);
  Generated g{.kind = kind,
              .kernel_name = fmt::format("tttc_{}", to_string(kind)),
              .threads = schedule.threads,
              .context_in_memory = options.context_in_memory};
  const long long S = spec.state_floats(), K = spec.mini_batch, F = spec.head_dim;
  std::vector<std::pair<std::string, StepPlan>> steps;
  if (kind == KernelKind::forward) {
    steps.emplace_back("forward", plan::plan_step(spec, StepKind::forward));
    check_in_place_update(steps[0].second);
  } else {
    // Rematerialisation inside a checkpoint group; with groups of one step there is none.
    if (spec.checkpoint_group > 1)
      steps.emplace_back("advance", plan::plan_step(spec, StepKind::advance));
    steps.emplace_back("backward", plan::plan_step(spec, StepKind::backward));
  }
  const plan::Footprint footprint = plan::footprint(spec);
  g.arena_floats = kind == KernelKind::forward ? footprint.forward_arena_floats
                                               : footprint.backward_arena_floats;

  // Layouts: shared memory first, then the per-CTA global workspace.
  std::map<std::string, long long> c;
  const bool arena_shared =
      (kind == KernelKind::forward ? schedule.forward_arena : schedule.backward_arena) ==
      Placement::shared;
  const bool state_shared =
      kind == KernelKind::forward && schedule.forward_state == Placement::shared;
  long long smem = 0, ws = 0;
  c["kSmemArena"] = 0;
  const long long on_chip = arena_shared_floats(
      kind == KernelKind::forward ? schedule.forward_arena : schedule.backward_arena,
      kind == KernelKind::forward ? schedule.forward_arena_shared_kib
                                  : schedule.backward_arena_shared_kib,
      g.arena_floats);
  smem += on_chip;
  c["kSmemState"] = smem;
  if (state_shared) smem += round16(S);
  c["kWsArena"] = 0;
  if (!arena_shared) ws += g.arena_floats;
  // Where the schedule asks, a tile forward writes its checkpoints in fragment order: the backward
  // converts each group's into the packed layout its steps read (in a slot of its own).
  const bool fragment_checkpoints = kind == KernelKind::backward && schedule.lowering == "tile" &&
                                    schedule.convert_checkpoints;
  if (kind == KernelKind::backward) {
    c["kWsCheckpoint"] = ws;
    if (fragment_checkpoints) ws += round16(S);
    c["kWsGroupStates"] = ws;
    ws += round16((spec.checkpoint_group - 1) * S);  // a group's first state is its checkpoint
    c["kWsDstateA"] = ws;
    ws += round16(S);
    c["kWsDstateB"] = ws;
    ws += round16(S);
    c["kWsAccTau"] = ws;
    c["kWsAccGamma"] = ws + K;
    c["kWsAccBeta"] = ws + K + F;
    ws += round16(K + 2 * F);
  }
  c["kWorkspaceFloats"] = ws;
  g.shared_bytes = 4 * smem;
  g.workspace_floats = ws;

  std::string src = source_head(to_string(kind), "", spec, schedule, "tttc/driver.cuh", "");
  src += fmt::format("  static constexpr int kK = {}, kF = {}, kGroup = {};\n", K, F,
                     spec.checkpoint_group);
  src += fmt::format("  static constexpr long long kS = {};\n", S);
  src += fmt::format(
      "  static constexpr bool kArenaShared = {}, kStateShared = {}, kContextInMemory = {};\n",
      arena_shared, state_shared, options.context_in_memory);
  for (const auto& [name, value] : c)
    src += fmt::format("  static constexpr long long {} = {};\n", name, value);
  if (kind == KernelKind::backward)
    src += fmt::format(
        "  static constexpr bool kFragmentCheckpoints = {};\n{}", fragment_checkpoints,
        fragment_checkpoints ? fragment_checkpoint_unpack(spec, schedule.team_warps) : "");
  src += fmt::format("}};\nconstexpr int kAct = {};\n\nstruct Step {{\n",
                     activation_constant(spec.activation));
  for (const auto& [name, plan] : steps)
    src +=
        StepWriter(spec, plan, schedule, arena_shared ? 0 : on_chip, !arena_shared, !state_shared)
            .write(name);
  src += "};\n\n}  // namespace\n\n";
  const char* params = kind == KernelKind::forward ? "ForwardParams" : "BackwardParams";
  src += fmt::format(
      "extern \"C\" __global__ void __launch_bounds__({}, {}) {}(const tttc::{} p) {{\n"
      "  tttc::{}_kernel<Cfg, Step>(p);\n}}\n",
      schedule.threads,
      kind == KernelKind::forward ? schedule.forward_blocks_per_sm
                                  : schedule.backward_blocks_per_sm,
      g.kernel_name, params, to_string(kind));
  g.source = std::move(src);
  return g;
}

}  // namespace ttt::codegen
