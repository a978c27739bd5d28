// tuned.hpp: the runtime's side of the tuner: TTTC_AUTOTUNE, the present device's fingerprint and
// the tuned schedule for a kernel configuration (get_kernel's second choice, after an explicit
// schedule and before the heuristic). See docs/tuning.md.
#pragma once

#include <optional>
#include <string>

#include "autotune/fingerprint.hpp"
#include "autotune/select.hpp"
#include "compiler/schedule.hpp"

namespace ttt::jit {

enum class AutotuneMode { off, cached };
// TTTC_AUTOTUNE: "off" (the heuristic always), "cached" (default: tuned records when present,
// never timing anything implicitly). "on" (tuning on first use) is refused with an error that
// says to run `tttc tune` ahead of time; any other value is an error too (std::invalid_argument).
AutotuneMode autotune_mode();

// The fingerprint of device `ordinal` (-1: the default): TTTC_TUNE_FINGERPRINT_FILE (test-only)
// when set, else the GPU's when there is one, else nothing.
std::optional<autotune::Fingerprint> present_fingerprint(int ordinal);

// The tuned schedule for (spec, target) on device `ordinal` for launches of `heads` = B*H
// (0: unknown), validated for the target; Choice::schedule is empty (and Choice::why says why)
// when the heuristic applies.
autotune::Choice tuned_schedule(const Spec& spec, const Target& target, int ordinal,
                                long long heads);

}  // namespace ttt::jit
