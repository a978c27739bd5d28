// record.cpp: tuning records: JSON form, merging, the winner, the launch-bucket rule.
#include "autotune/record.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace ttt::autotune {

int launch_bucket(long long heads, int sm_count) {
  const long long waves =
      std::max<long long>(1, (heads + std::max(1, sm_count) - 1) / std::max(1, sm_count));
  int bucket = 1;
  while (bucket < waves && bucket < (1 << 30)) bucket *= 2;
  return bucket;
}

int nearest_bucket(const std::vector<int>& available, int wanted) {
  if (available.empty()) throw std::invalid_argument("nearest_bucket: no buckets");
  if (wanted <= 0) return *std::max_element(available.begin(), available.end());
  int best = available.front();
  auto gap = [&](int b) { return std::fabs(std::log2(double(b)) - std::log2(double(wanted))); };
  for (int b : available)
    if (gap(b) < gap(best) || (gap(b) == gap(best) && b > best)) best = b;
  return best;
}

std::string record_key(const std::string& signature, Pass pass, int bucket) {
  return fmt::format("{}/{}/w{}", signature, to_string(pass), bucket);
}
std::string record_key(const Record& r) { return record_key(r.spec_signature, r.pass, r.bucket); }

nlohmann::json to_json(const Measurement& m) {
  return {{"schedule", schedule_to_json(m.schedule)},
          {"median_ms", m.median_ms},
          {"min_ms", m.min_ms},
          {"max_ms", m.max_ms},
          {"runs", m.runs},
          {"registers", m.registers},
          {"spill_bytes", m.spill_bytes},
          {"shared_bytes", m.shared_bytes},
          {"compile_ms", m.compile_ms},
          {"check", m.check},
          {"note", m.note}};
}

nlohmann::json to_json(const Record& r) {
  nlohmann::json candidates = nlohmann::json::array();
  for (const auto& m : r.candidates) candidates.push_back(to_json(m));
  return {{"spec_signature", r.spec_signature},
          {"spec_name", r.spec_name},
          {"spec", r.spec},
          {"pass", to_string(r.pass)},
          {"bucket", r.bucket},
          {"shape", {{"B", r.B}, {"H", r.H}, {"T", r.T}}},
          {"timed_T", r.timed_T},
          {"heuristic", r.heuristic},
          {"updated", r.updated},
          {"candidates", candidates}};
}

static Measurement measurement_from_json(const nlohmann::json& j) {
  Measurement m{.schedule = schedule_from_json(j.at("schedule"))};
  m.median_ms = j.at("median_ms").get<double>();
  m.min_ms = j.value("min_ms", -1.0);
  m.max_ms = j.value("max_ms", -1.0);
  m.runs = j.value("runs", 0);
  m.registers = j.value("registers", -1);
  m.spill_bytes = j.value("spill_bytes", -1);
  m.shared_bytes = j.value("shared_bytes", -1LL);
  m.compile_ms = j.value("compile_ms", 0.0);
  m.check = j.at("check").get<std::string>();
  m.note = j.value("note", "");
  return m;
}

Record record_from_json(const nlohmann::json& j) {
  try {
    Record r;
    r.spec_signature = j.at("spec_signature").get<std::string>();
    r.spec_name = j.value("spec_name", "");
    r.spec = j.at("spec");
    r.pass = pass_from_string(j.at("pass").get<std::string>());
    r.bucket = j.at("bucket").get<int>();
    const auto& shape = j.at("shape");
    r.B = shape.at("B").get<int>();
    r.H = shape.at("H").get<int>();
    r.T = shape.at("T").get<int>();
    r.timed_T = j.value("timed_T", r.T);
    r.heuristic = j.value("heuristic", "");
    r.updated = j.value("updated", "");
    for (const auto& c : j.at("candidates")) r.candidates.push_back(measurement_from_json(c));
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("record: ") + e.what());
  }
}

const Measurement* winner(const Record& r) {
  const Measurement* best = nullptr;
  for (const auto& m : r.candidates)
    if (m.check == kCheckPass && m.median_ms >= 0 && (!best || m.median_ms < best->median_ms))
      best = &m;
  return best;
}

const Measurement* heuristic_measurement(const Record& r) {
  for (const auto& m : r.candidates)
    if (canonical_schedule(m.schedule) == r.heuristic && m.median_ms >= 0) return &m;
  return nullptr;
}

std::vector<const Measurement*> sorted_candidates(const Record& r) {
  std::vector<const Measurement*> out;
  for (const auto& m : r.candidates) out.push_back(&m);
  auto rank = [](const Measurement* m) {
    if (m->median_ms < 0) return 3;
    return m->check == kCheckPass ? 0 : m->check == kCheckUnchecked ? 1 : 2;
  };
  std::stable_sort(out.begin(), out.end(), [&](const Measurement* a, const Measurement* b) {
    if (rank(a) != rank(b)) return rank(a) < rank(b);
    return a->median_ms < b->median_ms;
  });
  return out;
}

Measurement* find(Record& r, const Schedule& s) {
  const std::string key = canonical_schedule(s);
  for (auto& m : r.candidates)
    if (canonical_schedule(m.schedule) == key) return &m;
  return nullptr;
}

void merge(Record& into, const Record& from) {
  // Times taken on another length are not comparable: the newer measurements replace them.
  std::vector<Measurement> candidates;
  if (into.timed_T == from.timed_T) candidates = std::move(into.candidates);
  into = from;
  into.candidates = std::move(candidates);
  for (const auto& m : from.candidates) {
    if (Measurement* existing = find(into, m.schedule))
      *existing = m;
    else
      into.candidates.push_back(m);
  }
}

}  // namespace ttt::autotune
