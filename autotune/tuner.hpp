// tuner.hpp: `tttc tune`'s search on the GPU: for each (spec, shape), enumerate candidates
// (knobs.hpp), compile them in parallel (the kernel cache makes repeats free), prune after
// compiling, time the survivors on a shortened T with the checker's CUDA-event timing, check the
// fastest per pass against the CPU reference (`tttc check`'s path) until one passes, and write
// every measurement to the tuning database as it is made (so an interrupted run resumes).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compiler/schedule.hpp"
#include "compiler/spec.hpp"

namespace ttt::autotune {

struct TuneJob {
  std::string label;  // the spec file
  Spec spec;
  int B = 0, H = 0, T = 0;
};

struct TuneOptions {
  std::chrono::seconds budget{600};  // wall time for all jobs, split evenly over what is left
  int runs = 10;                     // timed launches per repeat
  int repeats = 3;                   // repeats per candidate: median of medians, and the spread
  int jobs = 0;                      // compile threads (0: the hardware's)
  size_t max_candidates = 0;         // 0: no cap (the budget still applies)
  std::function<void(const std::string&)> log;  // progress lines
  const std::atomic<bool>* stop = nullptr;      // set (SIGINT): stop timing, keep what was done
};

// The T candidates are timed on: T itself when short, else two checkpoint groups (at least
// 512 tokens), rounded up to whole mini-batches: time is linear in T once a few groups have run.
int timed_length(const Spec& spec, int T);
// The shape winners are checked on against the CPU reference.
struct CheckShape {
  int B, H, T;
};
CheckShape check_shape(const Spec& spec, int B, int H, int T);

// Runs every job; returns one JSON summary per job (docs/tuning.md describes the fields).
// Throws driver::NoGpuError without a GPU.
nlohmann::json tune(const std::vector<TuneJob>& jobs, const TuneOptions& options);

}  // namespace ttt::autotune
