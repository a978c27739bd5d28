// decode_codegen.cpp: the decode kernel's stub: compile-time constants for
// templates/tttc/decode.cuh (widths, activation, LayerNorm eps, CTA size, shared-memory size)
// and the extern "C" entry point. All logic lives in the template.
#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "compiler/codegen.hpp"
#include "compiler/codegen_text.hpp"

namespace ttt::codegen {
namespace {

// A decode step is matrix-vector work over the state: 128 threads keep a small linear head's
// columns (f <= 64) split few ways; wider models get 256.
int decode_threads(const Spec& spec) { return spec.hidden_dim() <= 64 ? 128 : 256; }
// At least this many threads resident per SM (caps registers at 128 per thread): a step is
// memory-bound, and more CTAs in flight hide more load latency. Without an explicit minimum,
// ptxas capped these kernels at 64 registers and spilled.
constexpr int kDecodeThreadsPerSm = 512;

}  // namespace

Generated generate_decode(const Spec& spec) {
  if (!spec.causal)
    throw std::invalid_argument(
        "decode needs a causal spec: a non-causal mini-batch evaluates every token with the state "
        "updated by the whole mini-batch");
  const int threads = decode_threads(spec);
  const long long F = spec.head_dim, Hd = spec.hidden_dim(), L = spec.depth;
  // Mirrors decode::Smem in the template (which static_asserts that this is enough): the x, z and
  // G stacks, q, v, two query-path buffers and the reduction scratch (a float4 per thread).
  const long long stack = F + (L - 1) * Hd, widest = std::max(F, Hd);
  const long long smem_floats = 3 * stack + 2 * F + 2 * widest + 4 * threads;
  Generated g{.kind = KernelKind::decode,
              .kernel_name = "tttc_decode",
              .shared_bytes = 4 * smem_floats,
              .threads = threads};
  std::string src = source_head("decode", "", spec, std::string(), "tttc/decode.cuh", "");
  src += fmt::format("  static constexpr int kF = {}, kK = {}, kDepth = {}, kHidden = {};\n", F,
                     spec.mini_batch, L, Hd);
  src += fmt::format("  static constexpr int kThreads = {}, kAct = {};\n", threads,
                     activation_constant(spec.activation));
  src += fmt::format("  static constexpr float kEps = {};\n", float_literal(spec.ln_eps));
  src += fmt::format("  static constexpr long long kS = {}, kSmemFloats = {};\n",
                     spec.state_floats(), smem_floats);
  src += fmt::format(
      "}};\n\n}}  // namespace\n\n"
      "extern \"C\" __global__ void __launch_bounds__({}, {}) {}(const tttc::DecodeParams p) "
      "{{\n  tttc::decode_kernel<Cfg>(p);\n}}\n",
      threads, kDecodeThreadsPerSm / threads, g.kernel_name);
  g.source = std::move(src);
  return g;
}

}  // namespace ttt::codegen
