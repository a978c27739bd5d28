// tuned.cpp: TTTC_AUTOTUNE and its budget, the present device's fingerprint, and the tuned-record
// lookup (with tuning on first use under TTTC_AUTOTUNE=on).
#include "runtime/tuned.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "autotune/db.hpp"
#include "cache/config.hpp"
#include "runtime/driver.hpp"

namespace ttt::jit {

AutotuneMode parse_autotune_mode(std::string_view text) {
  if (text.empty() || text == "cached") return AutotuneMode::cached;
  if (text == "off") return AutotuneMode::off;
  if (text == "on") return AutotuneMode::on;
  throw std::invalid_argument(
      fmt::format("TTTC_AUTOTUNE={}: must be off, cached or on (docs/tuning.md)", text));
}

AutotuneMode autotune_mode() {
  const char* v = std::getenv("TTTC_AUTOTUNE");
  return parse_autotune_mode(v ? v : "");
}

std::chrono::seconds parse_autotune_budget(std::string_view text) {
  const bool digits =
      !text.empty() && text.size() <= 9 &&
      std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
  // parse_duration trims and lower-cases; a budget is taken exactly as written.
  const bool plain = std::none_of(
      text.begin(), text.end(), [](unsigned char c) { return std::isspace(c) || std::isupper(c); });
  std::optional<std::chrono::seconds> budget;
  if (digits)
    budget = std::chrono::seconds(std::stoll(std::string(text)));
  else if (plain && text.size() >= 2 && std::string_view("smh").find(text.back()) != text.npos)
    budget = cache::parse_duration(text);
  if (!budget || budget->count() <= 0)
    throw std::invalid_argument(fmt::format(
        "TTTC_AUTOTUNE_BUDGET={}: expected a positive number of seconds (20) or a duration with "
        "a unit s, m or h (90s, 2m, 1h)",
        text));
  return *budget;
}

std::chrono::seconds autotune_budget() {
  const char* v = std::getenv("TTTC_AUTOTUNE_BUDGET");
  return v ? parse_autotune_budget(v) : kDefaultAutotuneBudget;
}

std::optional<autotune::Fingerprint> present_fingerprint(int ordinal) {
  if (auto f = autotune::fingerprint_override()) return f;
  if (!driver::status().available) return std::nullopt;
  const driver::Device& d = driver::device(ordinal);
  int version = 0;
  driver::check(driver::api().cuDriverGetVersion(&version), "cuDriverGetVersion");
  return autotune::make_fingerprint(d.name, d.arch, d.sm_count, version);
}

namespace {

std::mutex tuning_mutex;
FirstUseTuning& installed() {
  static FirstUseTuning tuning;
  return tuning;
}
FirstUseTuning installed_tuning() {
  std::lock_guard lock(tuning_mutex);
  return installed();
}

autotune::Choice choose_schedule(const Spec& spec, const Target& target, int ordinal,
                                 long long heads, bool may_tune) {
  autotune::Choice none;
  const AutotuneMode mode = autotune_mode();
  if (mode == AutotuneMode::off) {
    none.why = "TTTC_AUTOTUNE=off";
    return none;
  }
  const bool tune = may_tune && mode == AutotuneMode::on;
  const auto fingerprint = present_fingerprint(ordinal);
  if (!fingerprint) {
    none.why =
        tune ? fmt::format("TTTC_AUTOTUNE=on: no GPU here to tune on ({})", driver::status().reason)
             : "no GPU here to look up tuned records for";
    return none;
  }
  if (fingerprint->arch != target.arch) {
    none.why = fmt::format("compiling for {}; the tuned records are for this machine's {}",
                           target.arch, fingerprint->arch);
    return none;
  }
  const autotune::TuneDb db = autotune::TuneDb::at_default_location();
  autotune::Choice c;
  const FirstUseTuning tuning = tune ? installed_tuning() : FirstUseTuning{};
  if (tuning) {
    c = tuning({spec, heads, ordinal, *fingerprint, db, autotune_budget()});
  } else {
    c = autotune::choose(db.load(*fingerprint), spec, heads);
    if (tune)
      c.why =
          "TTTC_AUTOTUNE=on, but this program has no first-use tuner installed (the tttc "
          "tool has; libtttc and the Python op use tuned records only): " +
          c.why;
  }
  if (c.schedule)
    if (auto reasons = validate(spec, *c.schedule, target); !reasons.empty()) {
      none.why =
          fmt::format("the tuned schedule is not valid for {}: {}", target.arch, reasons.front());
      return none;
    }
  return c;
}

}  // namespace

void install_first_use_tuning(FirstUseTuning tuning) {
  std::lock_guard lock(tuning_mutex);
  installed() = std::move(tuning);
}

autotune::Choice tuned_schedule(const Spec& spec, const Target& target, int ordinal,
                                long long heads) {
  return choose_schedule(spec, target, ordinal, heads, false);
}

autotune::Choice tuned_schedule_or_tune(const Spec& spec, const Target& target, int ordinal,
                                        long long heads) {
  return choose_schedule(spec, target, ordinal, heads, true);
}

}  // namespace ttt::jit
