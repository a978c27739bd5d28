// tuner.cpp: the search loop of `tttc tune` (see tuner.hpp): a compile pool ahead of a timing
// loop, the check of the winners, incremental database writes and the per-job summary.
#include "autotune/tuner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "autotune/db.hpp"
#include "autotune/knobs.hpp"
#include "autotune/select.hpp"
#include "cache/config.hpp"
#include "runtime/driver.hpp"
#include "runtime/harness/check.hpp"
#include "runtime/jit.hpp"
#include "runtime/tuned.hpp"

namespace ttt::autotune {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Compiles candidates[i] in order on `threads` threads until told to stop; each slot's future
// becomes ready when its compile ends (or is skipped: then it holds the error "skipped").
class CompilePool {
 public:
  CompilePool(Backend& backend, const Spec& spec, const std::vector<Schedule>& candidates,
              int threads)
      : promises_(candidates.size()) {
    for (auto& p : promises_) futures_.push_back(p.get_future());
    for (int w = 0; w < threads; ++w)
      workers_.emplace_back([this, &backend, &spec, &candidates] {
        for (size_t i; (i = next_++) < candidates.size();) {
          std::pair<CompileOutcome, double> c;
          if (stop_) {
            c.first.error = "skipped";
          } else {
            const auto start = Clock::now();
            try {
              c.first = backend.compile(spec, candidates[i]);
            } catch (const std::exception& e) {
              c.first = {.ok = false, .error = e.what()};
            }
            c.second = ms_since(start);
          }
          promises_[i].set_value(std::move(c));
        }
      });
  }
  ~CompilePool() {
    stop_ = true;
    for (auto& w : workers_) w.join();
  }
  // The outcome and the wall time of candidate i's compile.
  std::pair<CompileOutcome, double> take(size_t i) { return futures_[i].get(); }
  void stop() { stop_ = true; }

 private:
  std::vector<std::promise<std::pair<CompileOutcome, double>>> promises_;
  std::vector<std::future<std::pair<CompileOutcome, double>>> futures_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> workers_;
};

struct Timing {
  double median = -1, min = -1, max = -1;
};

Timing summarize(std::vector<double> v) {
  if (v.empty() || v.front() < 0) return {};
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

std::string now_utc() { return cache::format_utc(std::chrono::system_clock::now()); }

std::string speedup(double base, double x) {
  return base > 0 && x > 0 ? fmt::format("{:.2f}x", base / x) : "-";
}

}  // namespace

int timed_length(const Spec& spec, int T) {
  const long long K = spec.mini_batch;
  const long long want = std::max<long long>(512, 2LL * K * spec.checkpoint_group);
  if (T <= want) return T;
  return static_cast<int>((want + K - 1) / K * K);
}

CheckShape check_shape(const Spec& spec, int B, int H, int T) {
  // Past one checkpoint group boundary, with a partial last mini-batch when T allows.
  const int t = std::max(256, spec.mini_batch * spec.checkpoint_group + spec.mini_batch / 2);
  return {std::min(B, 2), std::min(H, 2), std::min(T, t)};
}

namespace {

class JobRunner {
 public:
  JobRunner(const TuneJob& job, const TuneOptions& o, Backend& backend, const TuneDb& db,
            Clock::time_point deadline)
      : job_(job), o_(o), backend_(backend), db_(db), deadline_(deadline) {}

  nlohmann::json run();

 private:
  bool out_of_time() const {
    return (o_.stop && o_.stop->load()) || Clock::now() >= timing_deadline_;
  }
  void log(const std::string& line) const {
    if (o_.log) o_.log(line);
  }
  Record& record(Pass p) { return p == Pass::forward ? fwd_ : bwd_; }
  void save(const std::vector<const Measurement*>& fwd, const std::vector<const Measurement*>& bwd);
  void measure(const Schedule& s, const CompileOutcome& c, double wall_ms, size_t index,
               size_t count);
  bool check_candidate(const Schedule& s);

  const TuneJob& job_;
  const TuneOptions& o_;
  Backend& backend_;
  const TuneDb& db_;
  Clock::time_point deadline_, timing_deadline_;
  Fingerprint fingerprint_;
  Schedule heuristic_;
  Resources heuristic_resources_[2];
  std::vector<Pass> passes_;
  int timed_T_ = 0;
  Record fwd_, bwd_;
  std::map<std::string, std::string> checked_;  // canonical schedule -> pass|fail
  int compiled_ = 0, pruned_after_ = 0, errors_ = 0, timed_ = 0, resumed_ = 0;
};

// Writes the given measurements of each record to the database (merged into what is there).
void JobRunner::save(const std::vector<const Measurement*>& fwd,
                     const std::vector<const Measurement*>& bwd) {
  std::vector<Record> delta;
  for (Pass p : passes_) {
    Record r = record(p);
    r.candidates.clear();
    for (const Measurement* m : p == Pass::forward ? fwd : bwd) r.candidates.push_back(*m);
    r.updated = now_utc();
    delta.push_back(std::move(r));
  }
  db_.put(fingerprint_, delta);
}

void JobRunner::measure(const Schedule& s, const CompileOutcome& c, double wall_ms, size_t index,
                        size_t count) {
  Measurement m[2];
  for (Pass p : passes_) m[int(p)].schedule = s;
  std::vector<double> times[2];
  std::string status;
  if (!c.ok) {
    ++errors_;
    for (auto& x : m) x.check = kCheckError, x.note = c.error;
    status = "compile error: " + c.error.substr(0, c.error.find('\n'));
  } else {
    ++compiled_;
    std::vector<std::string> reasons;
    for (Pass p : passes_) {
      const PassResources& k = c.pass[int(p)];
      Measurement& x = m[int(p)];
      x.registers = k.registers;
      x.spill_bytes = k.spill_bytes;
      x.shared_bytes = k.shared_bytes;
      x.compile_ms = k.compile_ms;
      const Resources r{k.registers, k.spill_bytes};
      if (index == 0) heuristic_resources_[int(p)] = r;
      for (auto& why : post_compile_reasons(r, heuristic_resources_[int(p)], p))
        reasons.push_back(why);
    }
    if (!reasons.empty() && index != 0) {
      ++pruned_after_;
      for (auto& x : m) x.check = kCheckPruned, x.note = reasons.front();
      status = "pruned: " + reasons.front();
    } else {
      try {
        for (int rep = 0; rep < o_.repeats; ++rep) {
          const auto [fwd, bwd] =
              backend_.time(job_.spec, s, job_.B, job_.H, timed_T_, o_.runs, uint64_t(rep + 1));
          times[0].push_back(fwd);
          times[1].push_back(bwd);
        }
        ++timed_;
      } catch (const std::exception& e) {
        ++errors_;
        times[0].clear();
        times[1].clear();
        for (auto& x : m) x.check = kCheckError, x.note = e.what();
        status = fmt::format("run error: {}", e.what());
      }
    }
  }
  for (Pass p : passes_) {
    const Timing t = summarize(times[int(p)]);
    m[int(p)].median_ms = t.median;
    m[int(p)].min_ms = t.min;
    m[int(p)].max_ms = t.max;
    m[int(p)].runs = t.median >= 0 ? o_.runs * o_.repeats : 0;
    Record& r = record(p);
    if (Measurement* old = find(r, s))
      *old = m[int(p)];
    else
      r.candidates.push_back(m[int(p)]);
  }
  save({find(fwd_, s)}, {find(bwd_, s)});
  // The progress line: schedule, compile, times, check, speed-up over the heuristic.
  std::string times_text;
  for (Pass p : passes_) {
    const Measurement* h = heuristic_measurement(record(p));
    const double x = m[int(p)].median_ms;
    times_text +=
        fmt::format(" {} {} ({})", p == Pass::forward ? "fwd" : "bwd",
                    x >= 0 ? fmt::format("{:.3f} ms", x) : "-", speedup(h ? h->median_ms : -1, x));
  }
  log(fmt::format("[{}/{}] {} | compile {:.0f} ms{} |{} | {}", index + 1, count,
                  schedule_summary(s, heuristic_), wall_ms, c.cached ? " (cached)" : "", times_text,
                  status.empty() ? "unchecked" : status));
}

// Checks `s` against the CPU reference (once per schedule); true when it passed.
bool JobRunner::check_candidate(const Schedule& s) {
  const std::string key = canonical_schedule(s);
  if (auto it = checked_.find(key); it != checked_.end()) return it->second == kCheckPass;
  const CheckShape shape = check_shape(job_.spec, job_.B, job_.H, job_.T);
  std::string result = kCheckFail, note;
  try {
    const CheckOutcome outcome = backend_.check(job_.spec, s, shape);
    if (outcome.passed) result = kCheckPass;
    note = outcome.note;
  } catch (const std::exception& e) {
    note = e.what();
  }
  checked_[key] = result;
  for (Pass p : passes_)
    if (Measurement* m = find(record(p), s)) m->check = result, m->note = note;
  save({find(fwd_, s)}, {find(bwd_, s)});
  log(fmt::format("check {} on B={} H={} T={}: {}{}", schedule_summary(s, heuristic_), shape.B,
                  shape.H, shape.T, result, note.empty() ? "" : " (" + note + ")"));
  return result == kCheckPass;
}

nlohmann::json JobRunner::run() {
  const auto start = Clock::now();
  // Leave a fifth of the job's time for the checks.
  timing_deadline_ = start + (deadline_ - start) * 4 / 5;
  const Spec& spec = job_.spec;
  passes_ = passes_of(spec);
  const Target target = backend_.target();
  fingerprint_ = backend_.fingerprint();
  // The baseline is what get_kernel would run at this launch size without a record.
  const long long launch_heads = 1LL * job_.B * job_.H;
  heuristic_ = default_schedule(spec, target, launch_heads);
  timed_T_ = timed_length(spec, job_.T);
  const int bucket = launch_bucket(1LL * job_.B * job_.H, fingerprint_.sm_count);
  for (Pass p : passes_) {
    Record& r = record(p);
    r = Record{.spec_signature = spec_signature(spec),
               .spec_name = spec.name,
               .spec = nlohmann::json::parse(canonical_json(spec)),
               .pass = p,
               .bucket = bucket,
               .B = job_.B,
               .H = job_.H,
               .T = job_.T,
               .timed_T = timed_T_,
               .heuristic = canonical_schedule(heuristic_)};
  }
  // Resume: what an earlier run measured for this record at the same timed length.
  const DbFile existing = db_.load(fingerprint_);
  if (!existing.usable())
    log(fmt::format("warning: {}: {}; it will be set aside", existing.path.string(),
                    existing.error));
  for (Pass p : passes_)
    if (auto it = existing.records.find(record_key(record(p)));
        it != existing.records.end() && it->second.timed_T == timed_T_)
      record(p).candidates = it->second.candidates;
  const Enumeration e = enumerate(spec, target, launch_heads);
  std::vector<Schedule> todo;
  for (const Schedule& s : e.candidates) {
    const Measurement* done = find(record(passes_.front()), s);
    const bool measured =
        done && (done->median_ms >= 0 || done->check == kCheckPruned || done->check == kCheckError);
    if (measured && canonical_schedule(s) != canonical_schedule(heuristic_)) {
      ++resumed_;
      if (done->check == kCheckPass || done->check == kCheckFail)
        checked_[canonical_schedule(s)] = done->check;
      continue;
    }
    todo.push_back(s);
  }
  if (o_.max_candidates > 0 && todo.size() > o_.max_candidates) todo.resize(o_.max_candidates);
  log(fmt::format(
      "tune {} B={} H={} T={} on {} ({} SMs): bucket w{}; {} candidates ({} in the knob products, "
      "{} pruned before compiling), {} already measured; timing on T={}{}",
      job_.label, job_.B, job_.H, job_.T, backend_.device_name(), fingerprint_.sm_count, bucket,
      e.candidates.size(), e.product_size, e.pruned.size(), resumed_, timed_T_,
      timed_T_ < job_.T ? fmt::format(" (shortened from {}: time is linear in T)", job_.T) : ""));
  {
    const int threads =
        o_.jobs > 0 ? o_.jobs : std::max(1, int(std::thread::hardware_concurrency()));
    CompilePool pool(backend_, spec, todo, threads);
    for (size_t i = 0; i < todo.size(); ++i) {
      if (out_of_time() && i > 0) {
        pool.stop();
        log(fmt::format("{}: stopping after {} of {} candidates",
                        o_.stop && o_.stop->load() ? "interrupted" : "budget reached", i,
                        todo.size()));
        break;
      }
      const auto [c, wall_ms] = pool.take(i);
      measure(todo[i], c, wall_ms, i, todo.size());
    }
  }
  // The winners: per pass the fastest (group of) candidate(s) that passes its check.
  const bool interrupted = o_.stop && o_.stop->load();
  nlohmann::json winners = nlohmann::json::object();
  for (Pass p : passes_) {
    const Measurement* chosen = nullptr;
    double chosen_ms = -1;  // its group's time
    const std::string heuristic = canonical_schedule(heuristic_);
    // Candidates that differ only in the other pass's knobs ran the same kernel for this one, so
    // their timings of it differ by noise alone (H200, session 25: the video backward's timings
    // spread by 6 % over its forward knobs). Such a group competes with the time of its member
    // nearest the heuristic (the heuristic's own in its group). Grouped once: checks change
    // statuses, not times.
    std::map<std::string, std::pair<const Measurement*, int>> nearest;  // group -> member, distance
    std::vector<std::pair<const Measurement*, const Measurement*>> timed;  // member, its nearest
    {
      std::vector<std::pair<const Measurement*, std::string>> keyed;
      for (const auto& m : record(p).candidates) {
        if (m.median_ms < 0) continue;
        std::string key = pass_projection(m.schedule, p).dump();
        const int d = distance(m.schedule, heuristic_);
        auto [it, added] = nearest.try_emplace(key, &m, d);
        if (!added && d < it->second.second) it->second = {&m, d};
        keyed.emplace_back(&m, std::move(key));
      }
      for (const auto& [m, key] : keyed) timed.emplace_back(m, nearest.at(key).first);
    }
    while (!interrupted) {
      // Past the job's deadline (many failing checks), only the heuristic is still checked.
      const bool late = Clock::now() >= deadline_;
      // The fastest group with a member not failed yet; within it, its fastest such member is
      // the one checked, as before groups (each runs the same kernel for this pass).
      const Measurement* best = nullptr;
      double best_ms = 0;
      for (const auto& [m, group] : timed) {
        if ((m->check != kCheckUnchecked && m->check != kCheckPass) ||
            (late && canonical_schedule(m->schedule) != heuristic))
          continue;
        const double t = group->median_ms;
        if (!best || t < best_ms || (t == best_ms && m->median_ms < best->median_ms))
          best = m, best_ms = t;
      }
      if (!best) break;
      const Schedule s = best->schedule;
      if (check_candidate(s)) {
        chosen = find(record(p), s);
        chosen_ms = best_ms;
        break;
      }
    }
    const Measurement* h = heuristic_measurement(record(p));
    winners[to_string(p)] = {
        {"heuristic_ms", h ? h->median_ms : -1},
        {"tuned_ms", chosen ? chosen_ms : -1},
        {"speedup", h && chosen && chosen_ms > 0 ? h->median_ms / chosen_ms : 0},
        {"schedule", chosen ? schedule_to_json(chosen->schedule) : nlohmann::json()},
        {"summary", chosen ? schedule_summary(chosen->schedule, heuristic_) : "none"}};
  }
  int failed = 0;
  for (const auto& [k, v] : checked_) failed += v == kCheckFail;
  const Choice choice = choose(db_.load(fingerprint_), spec, 1LL * job_.B * job_.H);
  nlohmann::json summary = {
      {"spec", job_.label},
      {"name", spec.name},
      {"signature", spec_signature(spec)},
      {"shape", {{"B", job_.B}, {"H", job_.H}, {"T", job_.T}}},
      {"timed_T", timed_T_},
      {"bucket", bucket},
      {"device", fingerprint_.gpu_name},
      {"fingerprint", fingerprint_id(fingerprint_)},
      {"candidates",
       {{"in_products", e.product_size},
        {"pruned_before_compile", e.pruned.size()},
        {"valid", e.candidates.size()},
        {"resumed", resumed_},
        {"compiled", compiled_},
        {"pruned_after_compile", pruned_after_},
        {"errors", errors_},
        {"timed", timed_},
        {"failed_check", failed}}},
      {"passes", winners},
      {"schedule", choice.schedule ? schedule_to_json(*choice.schedule) : nlohmann::json()},
      {"interrupted", interrupted},
      {"wall_s", ms_since(start) / 1000}};
  return summary;
}

}  // namespace

nlohmann::json tune(const std::vector<TuneJob>& jobs, const TuneOptions& options, Backend& backend,
                    const TuneDb& db) {
  nlohmann::json out = nlohmann::json::array();
  const auto end = Clock::now() + options.budget;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (options.stop && options.stop->load()) break;
    // An even share of what is left.
    const auto left = end - Clock::now();
    if (left <= Clock::duration::zero()) break;
    const auto deadline = Clock::now() + left / static_cast<long>(jobs.size() - i);
    out.push_back(JobRunner(jobs[i], options, backend, db, deadline).run());
  }
  return out;
}

namespace {

// The present GPU: jit::build compiles (through the cache), check::run times and checks.
class GpuBackend : public Backend {
 public:
  explicit GpuBackend(int ordinal)
      : device_(driver::device(ordinal)),
        target_(jit::target_for("", device_.ordinal)),
        fingerprint_(*jit::present_fingerprint(device_.ordinal)) {}
  std::string device_name() override { return device_.name; }
  Fingerprint fingerprint() override { return fingerprint_; }
  Target target() override { return target_; }

  CompileOutcome compile(const Spec& spec, const Schedule& s) override {
    const jit::Build b =
        jit::build({.spec = spec, .schedule = s, .arch = target_.arch, .device = device_.ordinal});
    CompileOutcome c{.ok = true};
    for (Pass p : passes_of(spec)) {
      const auto& k = p == Pass::forward ? b.forward : b.backward;
      c.pass[int(p)] = {k->registers, k->spill_bytes, k->generated.shared_bytes, k->compile_ms};
      c.cached |= k->cache == "hit";
    }
    return c;
  }

  std::pair<double, double> time(const Spec& spec, const Schedule& s, int B, int H, int T, int runs,
                                 uint64_t seed) override {
    // A cache hit; an explicit schedule, so this never consults (or runs) the tuner.
    auto kernel = jit::get_kernel({.spec = spec, .schedule = s, .device = device_.ordinal});
    const check::Report r = check::run(spec,
                                       {.B = B,
                                        .H = H,
                                        .T = T,
                                        .backward = spec.build_backward,
                                        .compare = false,
                                        .seed = seed,
                                        .timing_runs = runs},
                                       *kernel);
    return {r.forward_ms, r.backward_ms};
  }

  CheckOutcome check(const Spec& spec, const Schedule& s, const CheckShape& shape) override {
    auto kernel = jit::get_kernel({.spec = spec, .schedule = s, .device = device_.ordinal});
    const check::Report r = check::run(
        spec, {.B = shape.B, .H = shape.H, .T = shape.T, .backward = spec.build_backward}, *kernel);
    CheckOutcome c{.passed = r.passed()};
    for (const auto* list : {&r.forward, &r.backward})
      for (const auto& t : *list)
        if (!t.passed() && c.note.empty())
          c.note = fmt::format("{}: rel error {:.2e} over {:.0e}{}", t.name, t.rel_error,
                               t.tolerance, t.finite ? "" : " (non-finite)");
    return c;
  }

 private:
  const driver::Device& device_;
  Target target_;
  Fingerprint fingerprint_;
};

}  // namespace

std::unique_ptr<Backend> gpu_backend(int ordinal) { return std::make_unique<GpuBackend>(ordinal); }

nlohmann::json tune(const std::vector<TuneJob>& jobs, const TuneOptions& options) {
  auto backend = gpu_backend();
  return tune(jobs, options, *backend, TuneDb::at_default_location());
}

}  // namespace ttt::autotune
