// tune_probe.cpp: a fresh process for the GPU tuning test: get_kernel for a spec and launch size
// (no explicit schedule), then prints the schedule's source and the schedule as one JSON line.
//   tune_probe SPEC_FILE B H
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "autotune/on_first_use.hpp"
#include "runtime/jit.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: tune_probe SPEC_FILE B H\n");
    return 2;
  }
  try {
    ttt::autotune::install_first_use_tuning();  // as tttc and libtttc do
    auto kernel = ttt::jit::get_kernel({.spec = ttt::load_spec_file(argv[1]),
                                        .launch_heads = std::atoll(argv[2]) * std::atoll(argv[3])});
    const auto& b = kernel->build_info();
    std::printf("%s\n", nlohmann::json{{"schedule_source", b.schedule_source},
                                       {"schedule", ttt::schedule_to_json(b.schedule)}}
                            .dump()
                            .c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tune_probe: %s\n", e.what());
    return 1;
  }
  return 0;
}
