// bench_decode.hpp: `tttc bench SPEC --decode`: the decode step (CUDA-graph replay) and prefill
// timings of docs/decode.md, with tokens per second and the state bandwidth against a measured
// device-to-device copy.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "compiler/spec.hpp"

namespace ttt::cli {

struct DecodeBenchOptions {
  int batch = 1;  // decode batch (sequences advanced per step)
  int H = 12;     // heads
  int prefill_B = 32, prefill_T = 512;
  int runs = 20;             // timed graph replays (and prefill runs)
  int steps_per_graph = 16;  // decode steps captured in one graph
};

struct DecodeBenchResult {
  double step_us = 0;               // one decode step of the whole batch
  double tokens_per_s = 0;          // batch / step time
  double state_bytes_per_step = 0;  // 12 S per (row, head) plus the commit's 4 S / K
  double state_gb_per_s = 0;
  double copy_gb_per_s = 0;  // measured device-to-device copy (read + write)
  double bandwidth_fraction = 0;
  double prefill_ms = 0, prefill_tokens_per_s = 0;
  nlohmann::json to_json() const;
};

// Runs on the current GPU; `spec` gains the decode pass when its passes lack it (it must be
// causal: std::invalid_argument otherwise).
DecodeBenchResult bench_decode(Spec spec, const DecodeBenchOptions& o);

}  // namespace ttt::cli
