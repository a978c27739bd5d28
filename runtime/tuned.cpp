// tuned.cpp: TTTC_AUTOTUNE, the present device's fingerprint, and the tuned-record lookup.
#include "runtime/tuned.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <stdexcept>

#include "autotune/db.hpp"
#include "runtime/driver.hpp"

namespace ttt::jit {

AutotuneMode autotune_mode() {
  const char* v = std::getenv("TTTC_AUTOTUNE");
  const std::string mode = v ? v : "";
  if (mode.empty() || mode == "cached") return AutotuneMode::cached;
  if (mode == "off") return AutotuneMode::off;
  if (mode == "on")
    throw std::invalid_argument(
        "TTTC_AUTOTUNE=on (tuning on first use) is not supported: tune ahead of time with "
        "`tttc tune SPEC --shape B,H,T`, then the default TTTC_AUTOTUNE=cached uses the records");
  throw std::invalid_argument(
      fmt::format("TTTC_AUTOTUNE={}: must be off or cached (docs/tuning.md)", mode));
}

std::optional<autotune::Fingerprint> present_fingerprint(int ordinal) {
  if (auto f = autotune::fingerprint_override()) return f;
  if (!driver::status().available) return std::nullopt;
  const driver::Device& d = driver::device(ordinal);
  int version = 0;
  driver::check(driver::api().cuDriverGetVersion(&version), "cuDriverGetVersion");
  return autotune::make_fingerprint(d.name, d.arch, d.sm_count, version);
}

autotune::Choice tuned_schedule(const Spec& spec, const Target& target, int ordinal,
                                long long heads) {
  autotune::Choice none;
  if (autotune_mode() == AutotuneMode::off) {
    none.why = "TTTC_AUTOTUNE=off";
    return none;
  }
  const auto fingerprint = present_fingerprint(ordinal);
  if (!fingerprint) {
    none.why = "no GPU here to look up tuned records for";
    return none;
  }
  if (fingerprint->arch != target.arch) {
    none.why = fmt::format("compiling for {}; the tuned records are for this machine's {}",
                           target.arch, fingerprint->arch);
    return none;
  }
  autotune::Choice c =
      autotune::choose(autotune::TuneDb::at_default_location().load(*fingerprint), spec, heads);
  if (c.schedule)
    if (auto reasons = validate(spec, *c.schedule, target); !reasons.empty()) {
      none.why =
          fmt::format("the tuned schedule is not valid for {}: {}", target.arch, reasons.front());
      return none;
    }
  return c;
}

}  // namespace ttt::jit
