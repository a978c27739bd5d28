// main.cpp: the consumer project's program. Through the installed headers and libtttc it parses
// a spec (C++ API), runs the CPU reference both through the C++ API and through the C ABI on
// the same inputs, and checks that they agree; it asks the runtime for a GPU and reports the
// answer (a kernel launch needs one, so without a GPU that part is skipped).
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "capi/tttc.h"
#include "compiler/reference/reference.hpp"
#include "compiler/spec.hpp"
#include "runtime/jit.hpp"
#include "runtime/tensor.hpp"

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::fprintf(stderr, "usage: tttc_consumer SPEC.json\n");
    return 2;
  }
  const ttt::Spec spec = ttt::load_spec_file(argv[1]);
  const int B = 2, H = 2, T = 37;
  const ttt::ref::Inputs in = ttt::ref::random_inputs(spec, B, H, T, false, 3);
  const ttt::ref::Outputs ref = ttt::ref::forward(spec, in);

  // The same call through the C ABI: pack the state as [H, S].
  tttc_spec* handle = nullptr;
  if (tttc_spec_load_file(argv[1], &handle) != TTTC_OK) {
    std::fprintf(stderr, "tttc_spec_load_file: %s\n", tttc_last_error());
    return 1;
  }
  const long long S = spec.state_floats();
  std::vector<double> state0(static_cast<size_t>(H * S));
  size_t w = 0, b = 0;
  for (const ttt::StateTensor& part : ttt::state_layout(spec)) {
    const auto& t = part.name[0] == 'W' ? in.W[w++] : in.b[b++];
    const long long n = t.numel() / H;
    for (int h = 0; h < H; ++h)
      for (long long i = 0; i < n; ++i) state0[h * S + part.offset + i] = t.data[h * n + i];
  }
  std::vector<double> out(ref.out.data.size()), final_state(static_cast<size_t>(B * H * S));
  if (tttc_reference_forward(handle, B, H, T, 0, in.q.data.data(), in.k.data.data(),
                             in.v.data.data(), in.lr.data.data(), in.tau.data.data(),
                             in.gamma.data.data(), in.beta.data.data(), state0.data(), out.data(),
                             final_state.data(), nullptr) != TTTC_OK) {
    std::fprintf(stderr, "tttc_reference_forward: %s\n", tttc_last_error());
    return 1;
  }
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    max_diff = std::fmax(max_diff, std::fabs(out[i] - ref.out.data[i]));
    max_abs = std::fmax(max_abs, std::fabs(ref.out.data[i]));
  }
  // An argument error names the argument.
  const int bad = tttc_reference_forward(handle, B, H, T, 0, nullptr, nullptr, nullptr, nullptr,
                                         nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                         nullptr);
  const bool named = bad == TTTC_INVALID && std::string(tttc_last_error()).find("'q'") != std::string::npos;
  tttc_spec_free(handle);

  const char* reason = nullptr;
  const bool gpu = tttc_gpu_available(&reason) == 1;
  std::printf("tttc %s consumer: spec %s, C ABI vs C++ reference max |diff| %.3g (max |out| %.3g), "
              "argument error named: %s, GPU: %s\n",
              tttc_version(), spec.name.c_str(), max_diff, max_abs, named ? "yes" : "no",
              gpu ? "yes" : reason);
  if (gpu) {  // get_kernel compiles and loads; nothing is launched here
    auto kernel = ttt::jit::get_kernel({.spec = spec});
    std::printf("kernel loaded; forward workspace for B=%d H=%d T=%d: %zu bytes\n", B, H, T,
                kernel->memory(B, H, T).forward_workspace_bytes);
  }
  return max_diff == 0 && max_abs > 0.1 && named ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "tttc_consumer: %s\n", e.what());
  return 1;
}
