// fuzz_spec.cpp: libFuzzer target for the spec parser. Any input must either parse or throw
// SpecError; anything else (another exception, a crash, a hang, runaway memory) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "compiler/spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const ttt::Spec spec =
        ttt::parse_spec(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
    // A parsed spec is valid and has a canonical form that parses back to itself.
    ttt::validate_spec(spec);
    const std::string canonical = ttt::canonical_json(spec);
    if (ttt::canonical_json(ttt::parse_spec(canonical)) != canonical) __builtin_trap();
  } catch (const ttt::SpecError&) {
  }
  return 0;
}
