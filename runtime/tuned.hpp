// tuned.hpp: the runtime's side of the tuner: TTTC_AUTOTUNE and TTTC_AUTOTUNE_BUDGET, the present
// device's fingerprint and the tuned schedule for a kernel configuration (get_kernel's second
// choice, after an explicit schedule and before the heuristic). See docs/tuning.md.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "autotune/db.hpp"
#include "autotune/fingerprint.hpp"
#include "autotune/select.hpp"
#include "compiler/schedule.hpp"

namespace ttt::jit {

enum class AutotuneMode { off, cached, on };
// TTTC_AUTOTUNE: "off" (the heuristic always), "cached" (default, also when unset or empty:
// tuned records when present, never timing anything implicitly), "on" (as cached, and a launch
// bucket without a record is tuned on first use: autotune/on_first_use.hpp). Any other value
// throws std::invalid_argument naming it.
AutotuneMode parse_autotune_mode(std::string_view text);
AutotuneMode autotune_mode();

// TTTC_AUTOTUNE_BUDGET: the wall time of one first-use tuning: whole seconds ("20") or a duration
// with a unit ("90s", "2m", "1h"); default 20 s. Anything else (empty, zero, negative, fractions,
// other units) throws std::invalid_argument naming the value. Read only under TTTC_AUTOTUNE=on.
std::chrono::seconds parse_autotune_budget(std::string_view text);
std::chrono::seconds autotune_budget();
inline constexpr std::chrono::seconds kDefaultAutotuneBudget{20};

// The fingerprint of device `ordinal` (-1: the default): TTTC_TUNE_FINGERPRINT_FILE (test-only)
// when set, else the GPU's when there is one, else nothing.
std::optional<autotune::Fingerprint> present_fingerprint(int ordinal);

// The tuned schedule for (spec, target) on device `ordinal` for launches of `heads` = B*H
// (0: unknown), validated for the target; Choice::schedule is empty (and Choice::why says why)
// when the heuristic applies. Only reads the database (`on` reads it as `cached` does).
autotune::Choice tuned_schedule(const Spec& spec, const Target& target, int ordinal,
                                long long heads);
// get_kernel's and build()'s choice: tuned_schedule, except that under TTTC_AUTOTUNE=on a launch
// bucket without a record is tuned first (progress on stderr), on device `ordinal`, by the
// installed first-use tuning (none installed: the records only, and Choice::why says so).
autotune::Choice tuned_schedule_or_tune(const Spec& spec, const Target& target, int ordinal,
                                        long long heads);

// TTTC_AUTOTUNE=on's tuning. The tuner times and checks candidates against the CPU reference,
// which the runtime does not link (tests/layering): a program that tunes on first use installs
// it once (autotune::install_first_use_tuning(): the tttc tool and the tuning tests do; libtttc
// does not, so the C API and the Python op use tuned records only).
struct FirstUseRequest {
  const Spec& spec;
  long long heads;  // B*H of the launch
  int ordinal;      // the device
  const autotune::Fingerprint& fingerprint;
  const autotune::TuneDb& db;
  std::chrono::seconds budget;
};
using FirstUseTuning = std::function<autotune::Choice(const FirstUseRequest&)>;
void install_first_use_tuning(FirstUseTuning tuning);

}  // namespace ttt::jit
