// decode_codegen.cpp: the decode kernel's stub: compile-time constants for
// templates/tttc/decode.cuh (widths, activation, LayerNorm eps, CTA size, how many CTAs share a
// head and whether they stage their state slice in shared memory, shared-memory size) and the
// extern "C" entry point. All logic lives in the template; this file picks the launch shape.
#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "compiler/codegen.hpp"
#include "compiler/codegen_text.hpp"

namespace ttt::codegen {
namespace {

// The launch shape of one architecture's build (docs/decode.md "Decode kernel").
struct DecodeShape {
  int split = 1;       // CTAs per (row, head): a thread-block cluster when > 1 (sm_90 only)
  bool stage = false;  // each CTA copies its slice of theta and A into shared memory
  long long smem_floats = 0;
  // Launch bounds' minimum of CTAs per SM (a register cap): staged, as many as shared memory
  // allows, so that registers never hold the count below it; unstaged, 512 threads per SM (caps
  // registers at 128 per thread: without an explicit minimum, ptxas capped these kernels at 64
  // registers and spilled).
  int min_blocks = 0;
};

// A CTA's staged slices plus its vectors must fit this: 48 KB lets 4-6 CTAs share an SM, so
// that one CTA's loads overlap another's cluster barriers and arithmetic.
constexpr long long kStageBudgetBytes = 48 * 1024;
// Shared memory per SM (sm_90; sm_80) and what the hardware reserves per CTA.
constexpr long long kSm90SharedBytes = 228 * 1024, kSm80SharedBytes = 164 * 1024;
constexpr long long kReservedSharedBytes = 1024;
// Clusters of up to 8 CTAs are portable on sm_90.
constexpr int kMaxSplit = 8;

// Mirrors decode::Smem in the template (which static_asserts that this is enough) for a head
// split over `split` CTAs: the x, z and G stacks (staged, a column-split layer below the last
// keeps only the CTA's columns), q, v, two query-path buffers, two cluster-exchange buffers (a
// row-split layer's output, or the rows of the backward through a column-split layer above the
// first) and the column passes' reduction scratch.
long long vector_floats(const Spec& spec, int threads, int split, bool staged) {
  const auto w = spec.widths();  // d_0 .. d_L
  const int L = static_cast<int>(std::ssize(w)) - 1;
  const auto column_split = [&](int l) { return split > 1 && l % 2 == 1; };
  const auto kept = [&](int l) -> long long {
    return staged && l >= 1 && l < L && column_split(l) ? w[l] / split : w[l];
  };
  long long stack = 0, query = 0, exchange = 0, reduction = 0;
  for (int l = 0; l < L; ++l) stack += kept(l);
  for (int l = 1; l <= L; ++l) {
    query = std::max(query, kept(l));
    if (split > 1)
      exchange = std::max<long long>(exchange, column_split(l) ? (l > 1 ? w[l - 1] : 0) : w[l]);
    const long long nw = column_split(l) ? w[l] / split : w[l], groups = nw / 4;
    if (groups < threads)
      reduction = std::max(reduction, (32 % groups == 0 ? threads / 32 : threads / groups) * nw);
  }
  return 3 * stack + 2LL * w[0] + 2 * query + 2 * exchange + reduction;
}
long long slice_floats(const Spec& spec, int split) { return spec.state_floats() / split; }

// The smallest split (at most max_split) whose slices fit the staging budget: few CTAs per head
// keep the cluster reductions few; staging makes every state byte move once per step. When no
// split fits, the widest split without staging (theta re-read from global memory / L2).
// `sm_shared_bytes`: the shared memory of one SM on the build's architecture.
DecodeShape pick_shape(const Spec& spec, int threads, int max_split, long long sm_shared_bytes) {
  const auto staged = [&](int split, long long floats) {
    const long long fit = sm_shared_bytes / (4 * floats + kReservedSharedBytes);
    return DecodeShape{split, true, floats, static_cast<int>(std::clamp(fit, 1LL, 8LL))};
  };
  int widest_split = 1;
  for (int c = 1; c <= max_split; c *= 2) {
    // every width splits into multiples of 4 floats (16-byte slices)
    if (spec.head_dim % (4 * c) != 0 || spec.hidden_dim() % (4 * c) != 0) break;
    widest_split = c;
    const long long floats = vector_floats(spec, threads, c, true) + 2 * slice_floats(spec, c);
    if (4 * floats <= kStageBudgetBytes) return staged(c, floats);
  }
  return {widest_split, false, vector_floats(spec, threads, widest_split, false), 512 / threads};
}

// sm_90 (clusters) and older builds of one stub: the same CTA size and grid, so the runtime's
// launch does not depend on the architecture.
struct DecodePlan {
  DecodeShape sm90, sm80;
  int threads = 128, ctas_per_head = 1;
};

DecodePlan plan_decode(const Spec& spec) {
  DecodePlan plan;
  // A staged CTA works from shared memory: 128 threads suffice, and more CTAs per SM give more
  // loads in flight. Unstaged, a step is matrix-vector work over global memory: 128 threads keep
  // a small head's columns (f <= 64) split few ways; wider models get 256.
  plan.sm90 = pick_shape(spec, 128, kMaxSplit, kSm90SharedBytes);
  if (!plan.sm90.stage) {
    plan.threads = spec.hidden_dim() <= 64 ? 128 : 256;
    plan.sm90 = pick_shape(spec, plan.threads, kMaxSplit, kSm90SharedBytes);
  }
  plan.sm80 = pick_shape(spec, plan.threads, 1, kSm80SharedBytes);
  plan.ctas_per_head = plan.sm90.split;
  return plan;
}

}  // namespace

Generated generate_decode(const Spec& spec) {
  if (!spec.causal)
    throw std::invalid_argument(
        "decode needs a causal spec: a non-causal mini-batch evaluates every token with the state "
        "updated by the whole mini-batch");
  const DecodePlan plan = plan_decode(spec);
  const long long F = spec.head_dim, Hd = spec.hidden_dim(), L = std::ssize(spec.widths()) - 1;
  Generated g{.kind = KernelKind::decode,
              .kernel_name = "tttc_decode",
              .shared_bytes = 4 * std::max(plan.sm90.smem_floats, plan.sm80.smem_floats),
              .threads = plan.threads,
              .ctas_per_head = plan.ctas_per_head};
  std::string src = source_head("decode", "", spec, std::string(), "tttc/decode.cuh", "");
  src += fmt::format("  static constexpr int kF = {}, kK = {}, kDepth = {}, kHidden = {};\n", F,
                     spec.mini_batch, L, Hd);
  src += fmt::format("  static constexpr int kThreads = {}, kAct = {};\n", plan.threads,
                     activation_constant(spec.activation));
  src += fmt::format("  static constexpr float kEps = {};\n", float_literal(spec.ln_eps));
  src += fmt::format("  static constexpr long long kS = {}, kSmemFloats = {};\n",
                     spec.state_floats(), g.shared_bytes / 4);
  auto shape = [&](const DecodeShape& s) {
    return fmt::format(
        "  static constexpr int kSplit = {}, kMinBlocks = {};\n"
        "  static constexpr bool kStage = {};\n",
        s.split, s.min_blocks, s.stage);
  };
  if (shape(plan.sm90) == shape(plan.sm80)) {
    src += shape(plan.sm90);
  } else {  // clusters need sm_90
    src +=
        "#if __CUDA_ARCH__ >= 900\n" + shape(plan.sm90) + "#else\n" + shape(plan.sm80) + "#endif\n";
  }
  src += fmt::format("  static constexpr int kCtasPerHead = {};\n", plan.ctas_per_head);
  src += "};\n\n}  // namespace\n\n";
  std::string cluster = " ";  // between the launch bounds and the name
  if (plan.sm90.split > 1) {
    src += fmt::format(
        "#if __CUDA_ARCH__ >= 900\n#define TTTC_DECODE_CLUSTER __cluster_dims__({}, 1, 1)\n"
        "#else\n#define TTTC_DECODE_CLUSTER\n#endif\n\n",
        plan.sm90.split);
    cluster = " TTTC_DECODE_CLUSTER\n";
  }
  src += fmt::format(
      "extern \"C\" __global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks){}{}("
      "const tttc::DecodeParams p) {{\n  tttc::decode_kernel<Cfg>(p);\n}}\n",
      cluster, g.kernel_name);
  g.source = std::move(src);
  return g;
}

}  // namespace ttt::codegen
