// select.hpp: which schedule a kernel gets from the tuning database: the bucket rule (record.hpp)
// and how a forward and a backward record become one schedule.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "autotune/db.hpp"
#include "compiler/spec.hpp"

namespace ttt::autotune {

struct Choice {
  std::optional<Schedule> schedule;  // empty: no usable record (use the heuristic)
  int bucket = 0;                    // the record's bucket (0: none)
  std::vector<std::string> records;  // the keys of the records used
  std::string why;                   // one sentence, for `tttc tune explain` and --json
};

// The tuned schedule for `spec` from a usable file of the present fingerprint. `heads` = B*H of
// the launches to serve (0: unknown, then the largest bucket tuned). Both passes the spec builds
// need a record with a winner in the same bucket; the schedule is the forward winner with the
// backward-scoped knobs of the backward winner, among winners sharing the knobs both passes
// share (when the two winners differ there, the pair of candidates with the least summed time).
Choice choose(const DbFile& file, const Spec& spec, long long heads);

// The passes a spec builds.
std::vector<Pass> passes_of(const Spec& spec);

}  // namespace ttt::autotune
