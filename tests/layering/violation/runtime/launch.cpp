// A launch-path file that breaks the layering on purpose: the fixture of the
// layering_catches_violations test (never compiled).
#include "compiler/reference/reference.hpp"
#include "runtime/harness/check.hpp"
