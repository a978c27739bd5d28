// fake_device.hpp: a device for the tuner's tests (autotune::Backend without a GPU): compiles,
// timings and checks are functions of the schedule, with counters, an optional stop after N
// timings and a delay per timing. threads = 128 does not compile, threads = 1024 spills, one
// schedule fails to launch, and threads = `fast_wrong_threads` (512 unless a test moves it off
// the heuristic's) is the fastest everywhere and fails its check.
#pragma once

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "autotune/tuner.hpp"
#include "tune_test_util.hpp"

namespace ttt::autotune::test_util {

class FakeDevice : public Backend {
 public:
  std::atomic<int> compiles{0}, timings{0}, checks{0};
  int stop_after_timings = -1;  // sets *stop after this many timings
  std::atomic<bool>* stop = nullptr;
  int sleep_ms = 0;
  int fast_wrong_threads = 512;

  std::string device_name() override { return "Fake GPU"; }
  Fingerprint fingerprint() override { return test_fingerprint(); }
  Target target() override { return Target::for_arch("sm_90a"); }

  CompileOutcome compile(const Spec&, const Schedule& s) override {
    ++compiles;
    if (s.threads == 128) throw std::runtime_error("NVRTC says no");
    CompileOutcome c{.ok = true};
    for (auto& p : c.pass) p = {.registers = 96, .spill_bytes = s.threads == 1024 ? 64 : 0};
    return c;
  }
  static double forward_ms(const Schedule& s, int fast_threads = 512) {
    return 1.0 - 0.1 * s.forward_blocks_per_sm - (s.threads == fast_threads ? 0.3 : 0) +
           (s.forward_matmul == "simt_f32" ? 0.05 : 0);
  }
  static double backward_ms(const Schedule& s, int fast_threads = 512) {
    return 2.0 - 0.2 * s.backward_blocks_per_sm + (s.threads == fast_threads ? -0.5 : 0);
  }
  std::pair<double, double> time(const Spec&, const Schedule& s, int, int, int, int,
                                 uint64_t) override {
    if (++timings == stop_after_timings && stop) *stop = true;
    if (sleep_ms) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    if (s.threads == 256 && s.forward_blocks_per_sm == 4 && s.backward_blocks_per_sm == 2 &&
        s.forward_arena == Placement::global)
      throw std::runtime_error("launch failed");
    return {forward_ms(s, fast_wrong_threads), backward_ms(s, fast_wrong_threads)};
  }
  // threads = fast_wrong_threads is the fastest everywhere, and wrong.
  CheckOutcome check(const Spec&, const Schedule& s, const CheckShape&) override {
    ++checks;
    if (s.threads == fast_wrong_threads) return {false, "out: rel error 1e-1 over 1e-2"};
    return {true, ""};
  }
};

// Forwards to a device the test keeps (with its counters) where the code under test wants to own
// its backend.
class BorrowedDevice : public Backend {
 public:
  explicit BorrowedDevice(Backend& device) : device_(device) {}
  std::string device_name() override { return device_.device_name(); }
  Fingerprint fingerprint() override { return device_.fingerprint(); }
  Target target() override { return device_.target(); }
  CompileOutcome compile(const Spec& spec, const Schedule& s) override {
    return device_.compile(spec, s);
  }
  std::pair<double, double> time(const Spec& spec, const Schedule& s, int B, int H, int T, int runs,
                                 uint64_t seed) override {
    return device_.time(spec, s, B, H, T, runs, seed);
  }
  CheckOutcome check(const Spec& spec, const Schedule& s, const CheckShape& shape) override {
    return device_.check(spec, s, shape);
  }

 private:
  Backend& device_;
};

}  // namespace ttt::autotune::test_util
