// tuner.hpp: `tttc tune`'s search on the GPU: for each (spec, shape), enumerate candidates
// (knobs.hpp), compile them in parallel (the kernel cache makes repeats free), prune after
// compiling, time the survivors on a shortened T with the checker's CUDA-event timing, check the
// fastest per pass against the CPU reference (`tttc check`'s path) until one passes, and write
// every measurement to the tuning database as it is made (so an interrupted run resumes).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autotune/db.hpp"
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

// What the search needs from a device: the GPU's (gpu_backend) compiles with jit::build, times
// with check::run's CUDA events and checks with check::run against the CPU reference; tests
// substitute a fake to exercise the search without a GPU.
struct PassResources {
  int registers = -1, spill_bytes = -1;
  long long shared_bytes = -1;
  double compile_ms = 0;
};
struct CompileOutcome {
  bool ok = false;
  std::string error;  // when !ok
  bool cached = false;
  PassResources pass[2];  // by Pass
};
struct CheckOutcome {
  bool passed = false;
  std::string note;  // the first failing tensor, or the error
};
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string device_name() = 0;
  virtual Fingerprint fingerprint() = 0;
  virtual Target target() = 0;
  // Called from several threads at once.
  virtual CompileOutcome compile(const Spec& spec, const Schedule& s) = 0;
  // One repeat: the median forward and backward ms of `runs` launches (-1: not run). Throws on
  // a launch error.
  virtual std::pair<double, double> time(const Spec& spec, const Schedule& s, int B, int H, int T,
                                         int runs, uint64_t seed) = 0;
  virtual CheckOutcome check(const Spec& spec, const Schedule& s, const CheckShape& shape) = 0;
};
// GPU `ordinal` (-1: TTTC_DEVICE, default 0); throws driver::NoGpuError without one.
std::unique_ptr<Backend> gpu_backend(int ordinal = -1);

// Runs every job; returns one JSON summary per job (docs/tuning.md describes the fields),
// recording into `db`.
nlohmann::json tune(const std::vector<TuneJob>& jobs, const TuneOptions& options, Backend& backend,
                    const TuneDb& db);
// The same on the GPU with the database under the cache directory.
nlohmann::json tune(const std::vector<TuneJob>& jobs, const TuneOptions& options);

}  // namespace ttt::autotune
