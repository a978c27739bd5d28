// record.hpp: one tuning record, keyed by (spec signature, pass, launch bucket): every candidate
// measured for it (schedule, timings, resources, check result), so that `tttc tune show` can
// explain the choice and an interrupted run can resume; plus the launch-bucket rule.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autotune/knobs.hpp"
#include "compiler/schedule.hpp"

namespace ttt::autotune {

// The launch-size part of a record's key: waves = ceil(B*H / SM count), rounded up to a power of
// two (1, 2, 4, 8, ...). A record tuned at one bucket serves every launch of that bucket.
int launch_bucket(long long heads, int sm_count);
// The bucket among `available` (non-empty) to use for `wanted`: the same, else the nearest on a
// log2 scale (ties: the larger); wanted <= 0 (launch size unknown): the largest.
int nearest_bucket(const std::vector<int>& available, int wanted);

// Check results of a candidate.
inline constexpr const char* kCheckPass = "pass";            // matched the CPU reference
inline constexpr const char* kCheckFail = "fail";            // did not: never chosen
inline constexpr const char* kCheckUnchecked = "unchecked";  // timed, not (yet) checked
inline constexpr const char* kCheckPruned = "pruned";        // dropped after compiling
inline constexpr const char* kCheckError = "error";          // did not compile or launch

struct Measurement {
  Schedule schedule;
  double median_ms = -1;            // median over the repeats' medians
  double min_ms = -1, max_ms = -1;  // spread over the repeats
  int runs = 0;                     // timed launches in all
  int registers = -1, spill_bytes = -1;
  long long shared_bytes = -1;
  double compile_ms = 0;
  std::string check = kCheckUnchecked;
  std::string note;  // why it failed or was pruned
};

struct Record {
  std::string spec_signature, spec_name;
  nlohmann::json spec;  // canonical spec JSON
  Pass pass = Pass::forward;
  int bucket = 1;
  int B = 0, H = 0, T = 0, timed_T = 0;  // the shape tuned, and the shortened T it was timed on
  std::string heuristic;                 // canonical schedule of the heuristic at tuning time
  std::string updated;                   // ISO 8601 UTC
  std::vector<Measurement> candidates;
};

std::string record_key(const std::string& signature, Pass pass, int bucket);
std::string record_key(const Record& r);

nlohmann::json to_json(const Measurement& m);
nlohmann::json to_json(const Record& r);
Record record_from_json(const nlohmann::json& j);  // throws std::invalid_argument

// The chosen candidate: the fastest that passed its check; nullptr when none did.
const Measurement* winner(const Record& r);
// The heuristic's measurement, if it was timed.
const Measurement* heuristic_measurement(const Record& r);
// Candidates sorted: passed by time, then unchecked by time, then failed/pruned/errors.
std::vector<const Measurement*> sorted_candidates(const Record& r);
// Adds `from`'s candidates into `into` (a candidate of the same schedule is replaced by the one
// of `from`; when the two were timed on different lengths, `from`'s replace all); the other
// fields come from `from`.
void merge(Record& into, const Record& from);
Measurement* find(Record& r, const Schedule& s);

}  // namespace ttt::autotune
