// on_first_use.cpp: TTTC_AUTOTUNE=on (see on_first_use.hpp): the decision to tune a launch bucket,
// the once-per-key bookkeeping, the recursion guard and the progress and summary lines.
#include "autotune/on_first_use.hpp"

#include <fmt/format.h>

#include <limits>

#include "runtime/tuned.hpp"

namespace ttt::autotune {
namespace {

thread_local int tuning_depth = 0;

// Marks the calling thread as working for a first-use tuning for the scope.
class InTuning {
 public:
  InTuning() { ++tuning_depth; }
  ~InTuning() { --tuning_depth; }
  InTuning(const InTuning&) = delete;
  InTuning& operator=(const InTuning&) = delete;
};

// Marks every device call, so that the compile pool's threads are marked too: a kernel they ask
// for (with an explicit schedule anyway) can never start another tuning or wait for this one.
class GuardedBackend final : public Backend {
 public:
  explicit GuardedBackend(Backend& inner) : inner_(inner) {}
  std::string device_name() override { return inner_.device_name(); }
  Fingerprint fingerprint() override { return inner_.fingerprint(); }
  Target target() override { return inner_.target(); }
  CompileOutcome compile(const Spec& spec, const Schedule& s) override {
    InTuning marked;
    return inner_.compile(spec, s);
  }
  std::pair<double, double> time(const Spec& spec, const Schedule& s, int B, int H, int T, int runs,
                                 uint64_t seed) override {
    InTuning marked;
    return inner_.time(spec, s, B, H, T, runs, seed);
  }
  CheckOutcome check(const Spec& spec, const Schedule& s, const CheckShape& shape) override {
    InTuning marked;
    return inner_.check(spec, s, shape);
  }

 private:
  Backend& inner_;
};

std::string label_of(const Spec& spec) {
  return spec.name.empty() ? "spec " + spec_signature(spec).substr(0, 12) : spec.name;
}

// Whether any pass of `spec` has a record in `bucket` (a tuning ran there, winner or not).
bool tuned_before(const DbFile& file, const Spec& spec, int bucket) {
  const std::string signature = spec_signature(spec);
  for (Pass p : passes_of(spec))
    if (file.records.count(record_key(signature, p, bucket))) return true;
  return false;
}

Choice prefixed(Choice c, const std::string& reason) {
  c.why = "TTTC_AUTOTUNE=on: " + reason + "; " + c.why;
  return c;
}

// "mlp2 bucket w2: tuned in 18.4 s, 9 of 310 candidates timed; forward 1.21x, backward 1.02x over
// the heuristic; recorded in FILE"
std::string summary_line(const nlohmann::json& job, const std::string& file) {
  std::string passes;
  for (const auto& [pass, v] : job["passes"].items()) {
    const double speedup = v["speedup"].get<double>();
    passes += fmt::format("{}{} {}", passes.empty() ? "" : ", ", pass,
                          speedup > 0 ? fmt::format("{:.2f}x", speedup) : "no checked winner");
  }
  const auto& c = job["candidates"];
  const int failed = c["failed_check"].get<int>();
  return fmt::format(
      "{} bucket w{}: tuned in {:.1f} s, {} of {} candidates timed{}; {} over the heuristic; "
      "recorded in {}",
      job["name"].get<std::string>().empty() ? job["spec"].get<std::string>()
                                             : job["name"].get<std::string>(),
      job["bucket"].get<int>(), job["wall_s"].get<double>(), c["timed"].get<int>(),
      c["valid"].get<size_t>(),
      failed ? fmt::format(" ({} failed their check)", failed) : std::string(), passes, file);
}

}  // namespace

bool inside_first_use_tuning() { return tuning_depth > 0; }

TuneJob first_use_job(const Spec& spec, long long heads) {
  return {.label = label_of(spec),
          .spec = spec,
          .B = 1,
          .H = static_cast<int>(std::min<long long>(heads, std::numeric_limits<int>::max())),
          .T = timed_length(spec, std::numeric_limits<int>::max())};
}

std::shared_ptr<FirstUseTuner::Attempt> FirstUseTuner::attempt(const std::string& key) {
  std::lock_guard lock(attempts_mutex_);
  auto& a = attempts_[key];
  if (!a) a = std::make_shared<Attempt>();
  return a;
}

std::string FirstUseTuner::run_tuning(const Spec& spec, long long heads,
                                      const FirstUseSetup& setup) {
  std::lock_guard one_at_a_time(tuning_mutex_);
  ++tunings_;
  auto log = [&](const std::string& line) {
    if (setup.log) setup.log(line);
  };
  const TuneJob job = first_use_job(spec, heads);
  log(fmt::format(
      "no tuned record for {} at launch bucket w{} (B*H = {}) on {}: tuning it now within {} s "
      "(TTTC_AUTOTUNE=on; TTTC_AUTOTUNE_BUDGET sets the budget, `tttc tune` tunes ahead of time)",
      job.label, launch_bucket(heads, setup.fingerprint.sm_count), heads,
      setup.fingerprint.gpu_name, setup.budget.count()));
  try {
    InTuning marked;
    const std::unique_ptr<Backend> device = setup.make_backend();
    if (device->fingerprint() != setup.fingerprint)
      throw std::logic_error("the device's fingerprint is not the one the records were read for");
    GuardedBackend guarded(*device);
    const nlohmann::json jobs = tune(
        {job}, {.budget = setup.budget, .max_candidates = setup.max_candidates, .log = setup.log},
        guarded, setup.db);
    if (jobs.empty()) throw std::runtime_error("the budget left no time to tune");
    log(summary_line(jobs[0], setup.db.file_for(setup.fingerprint).string()));
    return "";
  } catch (const std::exception& e) {
    log(fmt::format("tuning {} failed, not retried in this process: {}", job.label, e.what()));
    return e.what();
  }
}

Choice FirstUseTuner::choose(const Spec& spec, long long heads, const FirstUseSetup& setup) {
  auto lookup = [&] { return autotune::choose(setup.db.load(setup.fingerprint), spec, heads); };
  Choice c = lookup();
  if (heads <= 0)
    return c.schedule
               ? c
               : prefixed(c,
                          "not tuning: the launch size is unknown (KernelConfig::launch_heads "
                          "= 0)");
  const int bucket = launch_bucket(heads, setup.fingerprint.sm_count);
  if (c.schedule && c.bucket == bucket) return c;
  if (inside_first_use_tuning()) return prefixed(c, "not tuning from inside a tuning run");
  const std::string key =
      fmt::format("{}|{}|{}|w{}", setup.db.dir().string(), fingerprint_id(setup.fingerprint),
                  spec_signature(spec), bucket);
  const std::shared_ptr<Attempt> a = attempt(key);
  std::lock_guard lock(a->mutex);  // waits while another thread tunes this key
  bool tuned_here = false;
  if (!a->done) {
    a->done = true;
    // Another process may have tuned it since the lookup above.
    if (const DbFile file = setup.db.load(setup.fingerprint); !tuned_before(file, spec, bucket)) {
      a->failure = run_tuning(spec, heads, setup);
      tuned_here = true;
    }
  }
  c = lookup();
  if (!a->failure.empty())
    return prefixed(c, fmt::format("tuning bucket w{} failed (not retried in this process: {})",
                                   bucket, a->failure));
  if (c.schedule && c.bucket == bucket) {
    c.why = "tuned on first use (TTTC_AUTOTUNE=on): " + c.why;
    return c;
  }
  return prefixed(c, fmt::format("bucket w{} was tuned {} without a checked winner for every pass "
                                 "(`tttc tune show`; `tttc tune SPEC --shape B,H,T` resumes it), "
                                 "not tuning it again",
                                 bucket, tuned_here ? "now" : "before"));
}

FirstUseTuner& process_first_use_tuner() {
  static FirstUseTuner tuner;
  return tuner;
}

void install_first_use_tuning() {
  jit::install_first_use_tuning([](const jit::FirstUseRequest& r) {
    const int ordinal = r.ordinal;
    const FirstUseSetup setup{
        .db = r.db,
        .fingerprint = r.fingerprint,
        .make_backend = [ordinal] { return gpu_backend(ordinal); },
        .budget = r.budget,
        .log = [](const std::string& line) { fmt::print(stderr, "tttc autotune: {}\n", line); }};
    return process_first_use_tuner().choose(r.spec, r.heads, setup);
  });
}

}  // namespace ttt::autotune
