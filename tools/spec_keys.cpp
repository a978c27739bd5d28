// spec_keys.cpp: the cache key inputs of a spec's kernels without compiling them, for
// `tttc cache explain SPEC`. It runs the JIT's own build with the process cache in probe mode,
// so the inputs are exactly those a real compile would look up (nothing is duplicated here).
#include "cache/kernel_cache.hpp"
#include "tools/cli_common.hpp"

namespace ttt::cli {

SpecKeyInputs spec_key_inputs() {
  return [](const std::string& spec_path, const std::string& arch) {
    std::vector<cache::KeyInputs> inputs;
    auto& cache = cache::KernelCache::process_cache();
    cache.set_probe([&](const cache::KeyInputs& in, const std::string&) { inputs.push_back(in); });
    struct EndProbe {
      cache::KernelCache& c;
      ~EndProbe() { c.set_probe({}); }
    } end{cache};
    jit::build(config_for(spec_path, arch, ""));
    return inputs;
  };
}

}  // namespace ttt::cli
