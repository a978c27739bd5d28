// jit.cpp: describe -> choose schedule -> generate -> build (cache) for every pass of a spec, and
// get_kernel's process-wide map of loaded kernels (one compile per configuration per process).
#include "runtime/jit.hpp"

#include <fmt/format.h>

#include <future>
#include <map>
#include <mutex>

#include "cache/kernel_cache.hpp"
#include "compiler/backend.hpp"
#include "compiler/hash.hpp"
#include "runtime/driver.hpp"
#include "runtime/kernel_impl.hpp"
#include "runtime/tuned.hpp"
#include "templates/embedded.hpp"

namespace ttt::jit {
namespace {

std::map<std::string, std::string> header_hashes() {
  std::map<std::string, std::string> hashes;
  for (const auto& h : templates::headers()) hashes[h.name] = sha256_hex(h.text);
  return hashes;
}

}  // namespace

Target target_for(const std::string& arch, int ordinal) {
  if (!arch.empty()) return Target::for_arch(arch);
  const driver::Device& device = driver::device(ordinal);
  Target t;
  try {
    t = Target::for_arch(device.arch);
  } catch (const std::invalid_argument&) {
    t.arch = device.arch;  // a GPU newer than the table: NVRTC emits PTX for it
  }
  t.max_shared_bytes = device.max_shared_optin;
  t.sm_count = device.sm_count;
  return t;
}

namespace {

CompiledKernel compile_generated(const Build& b, codegen::KernelKind kind,
                                 const codegen::Options& options) {
  CompiledKernel ck{.generated = codegen::generate(b.spec, b.schedule, kind, options)};
  const std::string& arch = b.target.arch;
  const backend::Backend& compiler = backend::backend_for(arch);
  cache::KeyInputs inputs{.canonical_spec = canonical_json(b.spec),
                          .kernel = codegen::to_string(kind),
                          .schedule = canonical_schedule(b.schedule),
                          .source = ck.generated.source,
                          .header_hashes = header_hashes(),
                          .nvrtc_version = compiler.version(),
                          .options = compiler.key_options(arch),
                          .arch = arch};
  cache::EntryDescription description{
      .spec_name = b.spec.name,
      .details = {{"spec", spec_to_json(b.spec)},
                  {"schedule", schedule_to_json(b.schedule)},
                  {"shared_bytes", ck.generated.shared_bytes},
                  {"workspace_floats", ck.generated.workspace_floats}}};
  const cache::CacheResult result =
      cache::KernelCache::process_cache().get_or_build(inputs, description, [&] {
        const backend::CompileResult r =
            compiler.compile(ck.generated.source, ck.generated.kernel_name, arch);
        return cache::BuildOutput{
            .binary = r.binary,
            .binary_kind = r.binary_kind,
            .compile_ms = r.compile_ms,
            .registers = r.registers,
            .shared_bytes = static_cast<int>(ck.generated.shared_bytes),
            .spills = static_cast<int>(r.spill_bytes),
            .details = {{"compiler", compiler.name()}, {"nvrtc_target", r.target}, {"log", r.log}}};
      });
  const auto& meta = result.entry->metadata;
  ck.key = result.entry->key;
  ck.cache = result.origin == cache::Origin::built ? "miss" : "hit";
  ck.binary = result.entry->binary;
  ck.binary_kind = meta.value("binary_kind", "cubin");
  ck.compile_ms = meta.value("compile_ms", 0.0);
  ck.registers = meta.value("registers", -1);
  ck.spill_bytes = meta.value("spills", -1);
  return ck;
}

// An arena kernel whose step context spills from registers is compiled again with the context in
// local memory (codegen::Options); the one with fewer spill bytes runs. Both are cached under their
// own source, so a warm cache answers both lookups.
CompiledKernel compile_pass(const Build& b, codegen::KernelKind kind) {
  CompiledKernel ck = compile_generated(b, kind, {});
  if (kind == codegen::KernelKind::decode ||
      lowering_of(b.schedule, kind == codegen::KernelKind::backward) != "arena" ||
      ck.spill_bytes <= 0)
    return ck;
  CompiledKernel in_memory = compile_generated(b, kind, {.context_in_memory = true});
  return in_memory.spill_bytes >= 0 && in_memory.spill_bytes < ck.spill_bytes ? in_memory : ck;
}

}  // namespace

Build build(const KernelConfig& config) {
  validate_spec(config.spec, config.spec.name.empty() ? "<spec>" : config.spec.name);
  Build b{.spec = config.spec, .target = target_for(config.arch, config.device)};
  // An explicit schedule, else a tuned record for this device and launch size (tuned now under
  // TTTC_AUTOTUNE=on), else the heuristic.
  if (config.schedule) {
    b.schedule = *config.schedule;
    b.schedule_source = "explicit";
  } else {
    const autotune::Choice tuned =
        tuned_schedule_or_tune(b.spec, b.target, config.device, config.launch_heads);
    b.schedule =
        tuned.schedule ? *tuned.schedule : default_schedule(b.spec, b.target, config.launch_heads);
    b.schedule_source = tuned.schedule ? "tuned" : "heuristic";
    b.schedule_why = tuned.why;
  }
  if (auto reasons = validate(b.spec, b.schedule, b.target); !reasons.empty()) {
    std::string text =
        fmt::format("spec '{}' cannot run on {} with schedule {}:",
                    b.spec.name.empty() ? spec_signature(b.spec).substr(0, 16) : b.spec.name,
                    b.target.arch, canonical_schedule(b.schedule));
    for (const auto& r : reasons) text += "\n  - " + r;
    throw std::invalid_argument(text);
  }
  // The two passes compile in parallel: NVRTC programs are independent.
  std::future<CompiledKernel> backward;
  if (b.spec.build_backward)
    backward =
        std::async(std::launch::async, compile_pass, std::cref(b), codegen::KernelKind::backward);
  std::future<CompiledKernel> decode;
  if (b.spec.build_decode)
    decode =
        std::async(std::launch::async, compile_pass, std::cref(b), codegen::KernelKind::decode);
  if (b.spec.build_forward) b.forward = compile_pass(b, codegen::KernelKind::forward);
  if (decode.valid()) b.decode = decode.get();
  if (backward.valid()) b.backward = backward.get();
  return b;
}

MemoryPlan memory_plan(const Spec& spec, int B, int H, int T, long long forward_workspace_floats,
                       long long backward_workspace_floats, long long backward_item_floats) {
  MemoryPlan m;
  const long long steps = (T + spec.mini_batch - 1) / spec.mini_batch;
  m.checkpoints = static_cast<int>((steps + spec.checkpoint_group - 1) / spec.checkpoint_group);
  m.state_bytes = 4 * static_cast<size_t>(spec.state_floats());
  const size_t heads = static_cast<size_t>(B) * H;
  m.checkpoint_bytes = heads * m.checkpoints * m.state_bytes;
  m.forward_workspace_bytes = 4 * heads * forward_workspace_floats;
  m.backward_workspace_bytes =
      4 * heads * (backward_workspace_floats + static_cast<size_t>(steps) * backward_item_floats);
  const size_t out_bytes = heads * T * spec.head_dim * dtype_bytes(spec.dtype);
  m.forward_total_bytes =
      out_bytes + heads * m.state_bytes + m.checkpoint_bytes + m.forward_workspace_bytes;
  const int whole = T / spec.mini_batch * spec.mini_batch;
  if (spec.build_decode && whole > 0) {
    Spec forward_only = spec;  // the plan of the forward part (no recursion into this branch)
    forward_only.build_decode = false;
    m.prefill_workspace_bytes =
        prefill_layout(memory_plan(forward_only, B, H, whole, forward_workspace_floats, 0), B, H)
            .total;
  }
  return m;
}

PrefillLayout prefill_layout(const MemoryPlan& whole, int B, int H) {
  auto align = [](size_t n) { return (n + 255) / 256 * 256; };
  PrefillLayout l;
  l.checkpoints = align(static_cast<size_t>(B) * H * whole.state_bytes);
  l.workspace = l.checkpoints + align(whole.checkpoint_bytes);
  l.total = l.workspace + whole.forward_workspace_bytes;
  return l;
}

size_t decode_state_bytes(const Spec& spec, int slots, int H) {
  return static_cast<size_t>(slots) * H * (8 * static_cast<size_t>(spec.state_floats()) + 4);
}

MemoryPlan memory_plan(const Spec& spec, const Schedule& schedule, int B, int H, int T) {
  const codegen::Generated backward =
      codegen::generate(spec, schedule, codegen::KernelKind::backward);
  return memory_plan(
      spec, B, H, T,
      codegen::generate(spec, schedule, codegen::KernelKind::forward).workspace_floats,
      backward.workspace_floats, backward.item_workspace_floats);
}

std::shared_ptr<const Kernel> get_kernel(const KernelConfig& config) {
  // Keyed by what determines the binaries; the in-memory layer makes repeat calls cheap.
  // One loaded kernel per device: modules belong to a device's context.
  const driver::Device& device = driver::device(config.device);
  const std::string arch = config.arch.empty() ? device.arch : config.arch;
  const std::string id =
      fmt::format("{}|{}|{}|{}|{}|{}", canonical_json(config.spec), config.spec.name,
                  config.schedule ? canonical_schedule(*config.schedule) : "", arch, device.ordinal,
                  config.launch_heads);
  struct Slot {
    std::once_flag once;
    std::shared_ptr<const Kernel> kernel;
  };
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<Slot>> slots;
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard lock(mutex);
    auto& s = slots[id];
    if (!s) s = std::make_shared<Slot>();
    slot = s;
  }
  // call_once lets exactly one thread build; if it throws, the next caller tries again.
  std::call_once(slot->once,
                 [&] { slot->kernel = make_loaded_kernel(build(config), device.ordinal); });
  return slot->kernel;
}

}  // namespace ttt::jit
