// select.cpp: choosing a tuned schedule from a record set (bucket rule, composing two passes).
#include "autotune/select.hpp"

#include <fmt/format.h>

#include <limits>
#include <map>
#include <set>

namespace ttt::autotune {

std::vector<Pass> passes_of(const Spec& spec) {
  std::vector<Pass> p;
  if (spec.build_forward) p.push_back(Pass::forward);
  if (spec.build_backward) p.push_back(Pass::backward);
  return p;
}

// Best passing candidate per shared projection.
static std::map<std::string, const Measurement*> best_by_projection(const Record& r) {
  std::map<std::string, const Measurement*> best;
  for (const auto& m : r.candidates) {
    if (m.check != kCheckPass || m.median_ms < 0) continue;
    const Measurement*& b = best[shared_projection(m.schedule).dump()];
    if (!b || m.median_ms < b->median_ms) b = &m;
  }
  return best;
}

Choice choose(const DbFile& file, const Spec& spec, long long heads) {
  Choice c;
  if (!file.usable()) {
    c.why = fmt::format("the tuning database {} is unusable ({})", file.path.string(), file.error);
    return c;
  }
  const std::string signature = spec_signature(spec);
  const std::vector<Pass> passes = passes_of(spec);
  // Buckets where every pass has a record with a winner.
  std::vector<int> buckets;
  std::set<int> seen;
  for (const auto& [key, r] : file.records) {
    if (r.spec_signature != signature || !seen.insert(r.bucket).second) continue;
    bool complete = true;
    for (Pass p : passes) {
      auto it = file.records.find(record_key(signature, p, r.bucket));
      complete &= it != file.records.end() && winner(it->second) != nullptr;
    }
    if (complete) buckets.push_back(r.bucket);
  }
  if (buckets.empty()) {
    c.why = seen.empty() ? "no record for this spec on this device"
                         : "records exist for this spec but not with a checked winner for every "
                           "pass it builds";
    return c;
  }
  const int wanted =
      heads > 0 && file.fingerprint ? launch_bucket(heads, file.fingerprint->sm_count) : 0;
  c.bucket = nearest_bucket(buckets, wanted);
  std::map<Pass, std::map<std::string, const Measurement*>> best;
  for (Pass p : passes) {
    const std::string key = record_key(signature, p, c.bucket);
    c.records.push_back(key);
    best[p] = best_by_projection(file.records.at(key));
  }
  // The projection minimising the summed time of the passes.
  double best_total = std::numeric_limits<double>::infinity();
  for (const auto& [projection, first] : best[passes.front()]) {
    double total = first->median_ms;
    const Measurement* second = nullptr;
    if (passes.size() == 2) {
      auto it = best[passes.back()].find(projection);
      if (it == best[passes.back()].end()) continue;
      second = it->second;
      total += second->median_ms;
    }
    if (total >= best_total) continue;
    best_total = total;
    c.schedule = second ? with_pass_knobs(first->schedule, second->schedule, Pass::backward)
                        : first->schedule;
  }
  if (!c.schedule) {
    c.why = "the forward and backward winners share no configuration of the common knobs";
    c.bucket = 0;
    return c;
  }
  c.why = wanted == 0 ? fmt::format(
                            "tuned record of bucket w{} (launch size unknown: the "
                            "largest bucket tuned)",
                            c.bucket)
          : wanted == c.bucket
              ? fmt::format("tuned record of bucket w{} (this launch's)", c.bucket)
              : fmt::format("tuned record of bucket w{} (nearest to this launch's w{})", c.bucket,
                            wanted);
  return c;
}

}  // namespace ttt::autotune
