// on_first_use.hpp: TTTC_AUTOTUNE=on: the first time a kernel is asked for without a tuned record
// for its launch bucket on this device, tune that (spec, bucket) here within a small budget, record
// every measurement as `tttc tune` does (only checked winners are ever chosen) and use the winner.
// Each (database, device, spec, bucket) is tuned at most once per process, however many threads
// ask; one tuning runs at a time; nothing asked for from inside a tuning run tunes. docs/tuning.md.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "autotune/db.hpp"
#include "autotune/select.hpp"
#include "autotune/tuner.hpp"

namespace ttt::autotune {

struct FirstUseSetup {
  TuneDb db;
  Fingerprint fingerprint;  // the present device's: selects the database file
  // The device to tune on, made only when tuning starts (the GPU's throws without one); its
  // fingerprint must be `fingerprint`.
  std::function<std::unique_ptr<Backend>()> make_backend;
  std::chrono::seconds budget{20};
  // Candidates timed at most (nearest to the heuristic first; 0: no cap, the budget decides). A
  // cap with a budget it never reaches makes a tuning's outcome independent of the machine's load.
  size_t max_candidates = 0;
  std::function<void(const std::string&)> log;  // progress lines (one per candidate) and summary
};

// The shape a first use is tuned at. get_kernel knows only B*H (KernelConfig::launch_heads), and
// only B*H matters (the grid, the bucket): B = 1, H = heads. T: the shortened length `tttc tune`
// times any longer sequence on (timed_length), since the launch's T is not known either.
TuneJob first_use_job(const Spec& spec, long long heads);

class FirstUseTuner {
 public:
  // The tuned schedule for `spec` at launches of `heads` = B*H: the record of this launch's
  // bucket when there is one, else (once per key) tune the bucket now and use what was recorded.
  // When it does not tune (launch size unknown, the bucket was tuned before without a checked
  // winner, called from inside a tuning run, no device, the tuning failed), the plain lookup's
  // choice (another bucket's record, or none: the heuristic), with the reason in Choice::why.
  Choice choose(const Spec& spec, long long heads, const FirstUseSetup& setup);
  // Tuning runs started by this object (tests).
  int tunings() const { return tunings_; }

 private:
  struct Attempt {
    std::mutex mutex;     // held while the key is tuned: other askers wait, then read the record
    bool done = false;    // tuned, or decided not to
    std::string failure;  // why the tuning failed (not retried in this process)
  };
  std::shared_ptr<Attempt> attempt(const std::string& key);
  std::string run_tuning(const Spec& spec, long long heads, const FirstUseSetup& setup);

  std::mutex attempts_mutex_;
  std::map<std::string, std::shared_ptr<Attempt>> attempts_;
  std::mutex tuning_mutex_;  // one tuning at a time: concurrent timings would distort each other
  std::atomic<int> tunings_{0};
};

// The process's (get_kernel's).
FirstUseTuner& process_first_use_tuner();

// Makes get_kernel (runtime/tuned.hpp) tune on first use under TTTC_AUTOTUNE=on with the
// process's tuner on the GPU, progress on stderr. Programs call it once at start.
void install_first_use_tuning();

// True on a thread that is running a first-use tuning or one of its device calls (compile pool
// threads included): what it asks for is never tuned.
bool inside_first_use_tuning();

}  // namespace ttt::autotune
