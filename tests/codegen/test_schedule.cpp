// test_schedule.cpp: schedule validity reasons, the default per target, JSON round trip.
#include <gtest/gtest.h>

#include "compiler/schedule.hpp"

namespace ttt {
namespace {

bool mentions(const std::vector<std::string>& reasons, const std::string& phrase) {
  for (const auto& r : reasons)
    if (r.find(phrase) != std::string::npos) return true;
  return false;
}

TEST(Schedule, DefaultIsValidForEveryModelAndTarget) {
  for (const char* arch : {"sm_80", "sm_86", "sm_89", "sm_90", "sm_90a"})
    for (int depth : {1, 2, 4})
      for (int f : {16, 64, 256}) {
        Spec s;
        s.model = depth == 1 ? InnerModel::linear : InnerModel::mlp;
        s.depth = depth;
        s.head_dim = f;
        s.mini_batch = 128;
        const Target t = Target::for_arch(arch);
        const Schedule sched = default_schedule(s, t);
        EXPECT_TRUE(validate(s, sched, t).empty()) << arch << " depth " << depth << " f " << f;
      }
}

TEST(Schedule, InvalidSchedulesExplainWhy) {
  Spec s;
  s.head_dim = 128;
  const Target t = Target::for_arch("sm_86");
  Schedule bad;
  bad.threads = 48;
  EXPECT_TRUE(mentions(validate(s, bad, t), "threads = 48"));
  bad = Schedule{};
  bad.cluster = 2;
  EXPECT_TRUE(mentions(validate(s, bad, t), "cluster = 2"));
  bad = Schedule{};
  bad.backward_matmul = "wgmma";
  EXPECT_TRUE(mentions(validate(s, bad, t), "backward_matmul = 'wgmma'"));
  bad = Schedule{};
  bad.forward_state =
      Placement::shared;  // mlp2 f=128: 512 KiB of state cannot sit in shared memory
  EXPECT_TRUE(mentions(validate(s, bad, t), "bytes of shared memory"));
}

TEST(Schedule, JsonRoundTripAndErrors) {
  Schedule s;
  s.threads = 512;
  s.forward_arena = Placement::shared;
  const Schedule back = schedule_from_json(schedule_to_json(s));
  EXPECT_EQ(canonical_schedule(back), canonical_schedule(s));
  auto j = schedule_to_json(s);
  j["forward_state"] = "registers";
  EXPECT_THROW(schedule_from_json(j), std::invalid_argument);
  EXPECT_THROW(Target::for_arch("sm_70"), std::invalid_argument);
}

}  // namespace
}  // namespace ttt
