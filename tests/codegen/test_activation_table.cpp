// test_activation_table.cpp: every row of the activation table (compiler/activation.hpp) is
// reachable from every place that reads it: the spec parser takes its name and the canonical form
// writes it back, the code generators emit its id, the device switch of templates/tttc/numeric.cuh
// has a case for the id (compiled by NVRTC, and on the host through the decode shim) whose label
// carries the id, and the device formula agrees with the CPU reference's for the value and both
// derivatives. An id without a device case must not compile.
#include "../decode_host/host_cuda_shim.hpp"
// The shim must come first.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <utility>

#include "compiler/activation.hpp"
#include "compiler/codegen.hpp"
#include "compiler/nvrtc_backend.hpp"
#include "compiler/reference/activation.hpp"
#include "compiler/spec.hpp"
#include "tttc/numeric.cuh"

namespace ttt {
namespace {

constexpr int kRows = static_cast<int>(std::size(kActivations));

Spec spec_with(Activation a, int head_dim = 16) {
  return parse_spec(fmt::format(
      R"({{"tttc_spec":1,"head_dim":{},"mini_batch":8,"inner_model":{{"type":"mlp","depth":2,"activation":"{}"}}}})",
      head_dim, activation_info(a).name));
}

TEST(ActivationTable, TheParserTakesEveryNameAndTheCanonicalFormWritesItBack) {
  for (const ActivationInfo& row : kActivations) {
    const Spec s = spec_with(row.value);
    EXPECT_EQ(s.activation, row.value) << row.name;
    EXPECT_EQ(to_string(s.activation), row.name);
    EXPECT_NE(canonical_json(s).find(fmt::format("\"activation\":\"{}\"", row.name)),
              std::string::npos);
  }
  EXPECT_THROW(parse_spec(R"({"tttc_spec":1,"inner_model":{"type":"mlp","activation":"tanh"}})"),
               SpecError);
}

TEST(ActivationTable, EveryGeneratorEmitsTheRowsId) {
  std::set<std::string> lowerings;  // both of them must be reached
  for (const ActivationInfo& row : kActivations) {
    const std::string want = fmt::format("kAct = {} /* {} */", row.id(), row.name);
    for (int head_dim : {16, 64}) {
      Spec s = spec_with(row.value, head_dim);
      const Schedule sched = default_schedule(s, Target::for_arch("sm_90a"));
      for (auto kind : {codegen::KernelKind::forward, codegen::KernelKind::backward}) {
        lowerings.insert(lowering_of(sched, kind == codegen::KernelKind::backward));
        EXPECT_NE(codegen::generate(s, sched, kind).source.find(want), std::string::npos)
            << row.name << " f=" << head_dim << " " << codegen::to_string(kind);
      }
      EXPECT_NE(codegen::generate_decode(s).source.find(want), std::string::npos) << row.name;
    }
  }
  EXPECT_EQ(lowerings, (std::set<std::string>{"arena", "tile"}));
}

// The stub NVRTC compiles for one id: the label (when given) must carry the id, and the value and
// both derivatives must instantiate.
std::string device_stub(int id, std::string_view label) {
  std::string src = "#include \"tttc/numeric.cuh\"\n";
  if (!label.empty()) src += fmt::format("static_assert(tttc::{} == {});\n", label, id);
  return src + fmt::format(
                   "extern \"C\" __global__ void act_stub(float* y) {{\n"
                   "  y[0] = tttc::activation<{0}, 0>(y[0]) + tttc::activation<{0}, 1>(y[1]) +\n"
                   "         tttc::activation<{0}, 2>(y[2]);\n}}\n",
                   id);
}

TEST(ActivationTable, EveryRowHasADeviceCaseUnderNvrtc) {
  for (const ActivationInfo& row : kActivations) {
    const auto r = nvrtc::compile_ptx(device_stub(row.id(), row.device_name), "act_stub", "sm_90a");
    EXPECT_NE(r.binary.find("act_stub"), std::string::npos) << row.name;
  }
  // An id the table does not have: the device switch refuses it instead of falling through.
  try {
    nvrtc::compile_ptx(device_stub(kRows, ""), "act_stub", "sm_90a");
    ADD_FAILURE() << "an activation id without a device case compiled";
  } catch (const nvrtc::CompileError& e) {
    EXPECT_NE(e.log.find("no device formula"), std::string::npos) << e.log;
  }
}

// The device formula (f32, on the host through the shim) against the reference (f64), in both
// forms (kTanhForm: the decode kernel's).
template <int Id, bool kTanhForm>
void expect_device_matches_reference() {
  const Activation a = kActivations[Id].value;
  for (double x : {-6.0, -2.5, -1.0, -0.3, -1e-3, 0.2, 0.7, 1.5, 3.0, 8.0}) {
    const ref::ActValues r = ref::act_all(a, x);
    const float xf = static_cast<float>(x);
    const double want[] = {r.f, r.d1, r.d2};
    const float got[] = {tttc::activation<Id, 0, kTanhForm>(xf),
                         tttc::activation<Id, 1, kTanhForm>(xf),
                         tttc::activation<Id, 2, kTanhForm>(xf)};
    for (int order = 0; order < 3; ++order)
      EXPECT_NEAR(got[order], want[order], 2e-6 + 2e-6 * std::fabs(want[order]))
          << kActivations[Id].name << " order " << order << " at x = " << x
          << (kTanhForm ? " (tanh form)" : "");
  }
}

template <int... Ids>
void expect_all_rows(std::integer_sequence<int, Ids...>) {
  (expect_device_matches_reference<Ids, false>(), ...);
  (expect_device_matches_reference<Ids, true>(), ...);
}

TEST(ActivationTable, DeviceFormulasMatchTheReference) {
  expect_all_rows(std::make_integer_sequence<int, kRows>());
}

}  // namespace
}  // namespace ttt
