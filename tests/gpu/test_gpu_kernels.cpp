// test_gpu_kernels.cpp: forward and backward kernels against the CPU reference on the GPU, across
// the sweep in gpu_sweep.hpp (and its linear cases with the query-split forward), plus
// checkpoint-group invariance and argument checks at launch.
// Skips (does not fail) where no GPU is present. TTTC_GPU_REPORT=path writes a Markdown table of
// every case (errors, times) for docs/.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "compiler/codegen.hpp"
#include "gpu_sweep.hpp"
#include "runtime/device_buffer.hpp"
#include "runtime/driver.hpp"
#include "runtime/harness/check.hpp"

namespace ttt {
namespace {

using testing::SweepCase;

std::mutex report_mutex;
std::vector<std::string>& report_rows() {
  static std::vector<std::string> rows;
  return rows;
}

class GpuEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (!driver::status().available) return;
    // Compile every kernel of the sweep in parallel first; the tests then hit the cache.
    const auto cases = testing::gpu_sweep();
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::future<void>> jobs;
    const size_t workers = std::max(2u, std::thread::hardware_concurrency());
    std::atomic<size_t> next{0};
    for (size_t w = 0; w < workers; ++w)
      jobs.push_back(std::async(std::launch::async, [&] {
        for (size_t i; (i = next++) < cases.size();) jit::build({.spec = cases[i].spec});
      }));
    for (auto& j : jobs) j.get();
    fmt::print("compiled {} specs (forward + backward) in {:.1f} s\n", cases.size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  void TearDown() override {
    const char* path = std::getenv("TTTC_GPU_REPORT");
    if (!path || report_rows().empty()) return;
    std::ofstream out(path);
    out << "| case | fwd compile ms | bwd compile ms | regs fwd/bwd | worst forward rel err | "
           "worst "
           "backward rel err | result |\n|---|---|---|---|---|---|---|\n";
    auto rows = report_rows();
    std::sort(rows.begin(), rows.end());
    for (const auto& r : rows) out << r << "\n";
  }
};
const auto* env = ::testing::AddGlobalTestEnvironment(new GpuEnvironment);

// A macro: GTEST_SKIP must run in the test body itself to end it.
#define REQUIRE_GPU() \
  if (!driver::status().available) GTEST_SKIP() << driver::status().reason

class GpuSweep : public ::testing::TestWithParam<SweepCase> {};

TEST_P(GpuSweep, ForwardAndBackwardMatchReference) {
  REQUIRE_GPU();
  const SweepCase& c = GetParam();
  auto kernel = jit::get_kernel({.spec = c.spec});
  check::Options o{.B = 2,
                   .H = 2,
                   .T = c.T,
                   .per_batch_state = c.per_batch_state,
                   .tokens_bthf = c.tokens_bthf,
                   .seed = 1000 + static_cast<uint64_t>(c.T)};
  const check::Report r = check::run(c.spec, o, *kernel);
  double worst_f = 0, worst_b = 0;
  for (const auto& t : r.forward) {
    EXPECT_TRUE(t.passed()) << "forward " << t.name << ": rel error " << t.rel_error
                            << (t.finite ? "" : " (non-finite values)") << " > " << t.tolerance;
    worst_f = std::max(worst_f, t.finite ? t.rel_error : INFINITY);
  }
  for (const auto& t : r.backward) {
    EXPECT_TRUE(t.passed()) << "backward " << t.name << ": rel error " << t.rel_error
                            << (t.finite ? "" : " (non-finite values)") << " > " << t.tolerance;
    worst_b = std::max(worst_b, t.finite ? t.rel_error : INFINITY);
  }
  const auto& b = kernel->build_info();
  std::lock_guard lock(report_mutex);
  report_rows().push_back(fmt::format("| {} | {:.0f} | {:.0f} | {}/{} | {:.2e} | {:.2e} | {} |",
                                      c.label(), b.forward->compile_ms, b.backward->compile_ms,
                                      b.forward->registers, b.backward->registers, worst_f, worst_b,
                                      r.passed() ? "pass" : "FAIL"));
}

INSTANTIATE_TEST_SUITE_P(Sweep, GpuSweep, ::testing::ValuesIn(testing::gpu_sweep()),
                         [](const auto& info) { return info.param.label(); });

// Gradients must not depend on the checkpoint group size (to 1e-6 relative in f32, accurate
// mode; in the reduced precision modes, whose roundings of the recomputed states may differ,
// within the mode's gate), for the arena lowering (mlp2) and the tile lowering (linear).
Spec checkpoint_spec(bool causal, InnerModel model, int group) {
  Spec spec;
  spec.name = "ckpt";
  spec.model = model;
  spec.depth = model == InnerModel::linear ? 1 : 2;
  spec.dtype = DType::f32;
  spec.precision = testing::sweep_precision();
  spec.head_dim = 32;
  spec.mini_batch = 16;
  spec.causal = causal;
  spec.checkpoint_group = group;
  return spec;
}

TEST(GpuCheckpoint, GradientsAgreeAcrossGroupSizes) {
  REQUIRE_GPU();
  // All 16 kernels compile in parallel first (get_kernel keeps them): the tile lowering's f32
  // kernels take a while each.
  std::vector<std::future<void>> builds;
  for (bool causal : {true, false})
    for (InnerModel model : {InnerModel::mlp, InnerModel::linear})
      for (int g : {1, 2, 3, 8})
        builds.push_back(std::async(std::launch::async, [=] {
          jit::get_kernel({.spec = checkpoint_spec(causal, model, g)});
        }));
  for (auto& b : builds) b.get();
  for (bool causal : {true, false})
    for (InnerModel model : {InnerModel::mlp, InnerModel::linear}) {
      Spec spec = checkpoint_spec(causal, model, 1);
      const double agreement =
          spec.precision == Precision::accurate ? 1e-6 : check::backward_tolerance(spec);
      std::map<int, check::Report> reports;
      for (int g : {1, 2, 3, 8}) {
        spec.checkpoint_group = g;
        auto kernel = jit::get_kernel({.spec = spec});
        check::Options o{.B = 2, .H = 2, .T = 16 * 7 + 3, .seed = 77};  // same seed: same inputs
        reports[g] = check::run(spec, o, *kernel);
        for (const auto& t : reports[g].backward)
          EXPECT_TRUE(t.passed()) << "g=" << g << " " << t.name << " " << t.rel_error;
      }
      for (const auto& [g, r] : reports)
        for (const auto& t : r.backward) {
          bool finite = true;
          const double diff = check::relative_error(r.gpu_values.at(t.name),
                                                    reports[1].gpu_values.at(t.name), &finite);
          EXPECT_TRUE(finite);
          EXPECT_LE(diff, agreement) << (causal ? "causal" : "non-causal") << " "
                                     << to_string(model) << " g=" << g << " vs g=1, " << t.name;
        }
    }
}

// The query-split forward (Schedule::query_split: a recurrence kernel, then the query outputs of
// every (b, h, mini-batch) in parallel from the checkpoints) on every linear case of the sweep
// whose forward is on the tile lowering, with checkpoint group 1 (the split needs it); the
// backward then runs from the checkpoints the recurrence kernel wrote. T = 37 mini-batches and
// a bit, so the query kernel has several CTAs and teams with a partial run.
std::vector<SweepCase> query_split_cases() {
  std::vector<SweepCase> cases;
  for (SweepCase c : testing::gpu_sweep()) {
    if (c.spec.model != InnerModel::linear) continue;
    c.spec.checkpoint_group = 1;
    c.spec.name = "qsplit";
    if (default_schedule(c.spec, Target::for_arch("sm_90a")).lowering != "tile") continue;
    c.T = 37 * c.spec.mini_batch + 3;
    cases.push_back(c);
  }
  return cases;
}

// Runs a split case (B2 H3, the case's T and layouts) under `s` and expects every output and
// gradient within the case's tolerances; `what` names the schedule in failures.
void expect_split_case_passes(const SweepCase& c, const Schedule& s, uint64_t seed,
                              const std::string& what) {
  auto kernel = jit::get_kernel({.spec = c.spec, .schedule = s});
  const check::Report r = check::run(c.spec,
                                     {.B = 2,
                                      .H = 3,
                                      .T = c.T,
                                      .per_batch_state = c.per_batch_state,
                                      .tokens_bthf = c.tokens_bthf,
                                      .seed = seed + static_cast<uint64_t>(c.T)},
                                     *kernel);
  ASSERT_FALSE(r.backward.empty());
  for (const auto* pass : {&r.forward, &r.backward})
    for (const auto& t : *pass)
      EXPECT_TRUE(t.passed()) << what << ", " << t.name << ": rel error " << t.rel_error
                              << (t.finite ? "" : " (non-finite values)") << " > " << t.tolerance;
}

class GpuQuerySplit : public ::testing::TestWithParam<SweepCase> {};

TEST_P(GpuQuerySplit, ForwardAndBackwardMatchReference) {
  REQUIRE_GPU();
  const SweepCase& c = GetParam();
  Schedule s = default_schedule(c.spec, jit::target_for("", -1));
  s.query_split = true;
  ASSERT_FALSE(
      codegen::generate(c.spec, s, codegen::KernelKind::forward).query_kernel_name.empty());
  expect_split_case_passes(c, s, 2000, "query split");
}

INSTANTIATE_TEST_SUITE_P(Sweep, GpuQuerySplit, ::testing::ValuesIn(query_split_cases()),
                         [](const auto& info) { return info.param.label(); });

// The split backward (Schedule::backward_split: the output path's adjoint of every (b, h,
// mini-batch) in parallel, then the update path's chain adding its shares) on the same cases,
// with and without the query split, and in three kernels (backward_split_tokens). A team's run of
// items crosses heads (38 mini-batches a head), so the shared-parameter gradients are flushed
// mid-run.
class GpuBackwardSplit : public ::testing::TestWithParam<SweepCase> {};

TEST_P(GpuBackwardSplit, ForwardAndBackwardMatchReference) {
  REQUIRE_GPU();
  const SweepCase& c = GetParam();
  struct Variant {
    bool query_split, tokens;
    const char* name;
  };
  for (const Variant v : {Variant{false, false, "backward split"},
                          Variant{true, false, "backward split with the query split"},
                          Variant{false, true, "backward split in three kernels"}}) {
    Schedule s = default_schedule(c.spec, jit::target_for("", -1));
    s.backward_split = true;
    s.backward_split_tokens = v.tokens;
    s.query_split = v.query_split;
    const codegen::Generated g = codegen::generate(c.spec, s, codegen::KernelKind::backward);
    ASSERT_FALSE(g.output_kernel_name.empty());
    ASSERT_EQ(g.tokens_kernel_name.empty(), !v.tokens);
    expect_split_case_passes(c, s, 3000, v.name);
  }
}

// The cases above whose backward is on the tile lowering too, and whose split kernels fit in shared
// memory (the split needs both).
std::vector<SweepCase> backward_split_cases() {
  std::vector<SweepCase> cases;
  const Target t = Target::for_arch("sm_90a");
  for (const SweepCase& c : query_split_cases()) {
    Schedule s = default_schedule(c.spec, t);
    s.backward_split = true;
    if (validate(c.spec, s, t).empty()) cases.push_back(c);
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Sweep, GpuBackwardSplit, ::testing::ValuesIn(backward_split_cases()),
                         [](const auto& info) { return info.param.label(); });

// The heuristic splits the query off (and the backward's output path) where the launch leaves
// most SMs idle, and only there.
TEST(GpuQuerySplitHeuristic, FewHeadsSplitManyHeadsDoNot) {
  REQUIRE_GPU();
  Spec spec = checkpoint_spec(true, InnerModel::linear, 1);
  const Target t = jit::target_for("", -1);
  ASSERT_GT(t.sm_count, 8);
  EXPECT_TRUE(
      jit::get_kernel({.spec = spec, .launch_heads = 2})->build_info().schedule.query_split);
  EXPECT_TRUE(
      jit::get_kernel({.spec = spec, .launch_heads = 2})->build_info().schedule.backward_split);
  EXPECT_FALSE(jit::get_kernel({.spec = spec, .launch_heads = 4LL * t.sm_count})
                   ->build_info()
                   .schedule.query_split);
  EXPECT_FALSE(jit::get_kernel({.spec = spec, .launch_heads = 4LL * t.sm_count})
                   ->build_info()
                   .schedule.backward_split);
  spec.checkpoint_group = 2;  // the query kernel reads every state from the checkpoints
  EXPECT_FALSE(
      jit::get_kernel({.spec = spec, .launch_heads = 2})->build_info().schedule.query_split);
  EXPECT_FALSE(
      jit::get_kernel({.spec = spec, .launch_heads = 2})->build_info().schedule.backward_split);
}

// ReLU on a shape where no pre-activation sits at a kink for this seed (see gpu_sweep.hpp).
TEST(GpuActivations, ReluMatchesReference) {
  REQUIRE_GPU();
  for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    Spec spec;
    spec.name = "relu";
    spec.activation = Activation::relu;
    spec.dtype = dtype;
    spec.precision = testing::sweep_precision();
    auto kernel = jit::get_kernel({.spec = spec});
    const check::Report r = check::run(spec, {.B = 2, .H = 2, .T = 37, .seed = 3}, *kernel);
    for (const auto* list : {&r.forward, &r.backward})
      for (const auto& t : *list)
        EXPECT_TRUE(t.passed()) << to_string(dtype) << " " << t.name << ": " << t.rel_error;
  }
}

// Two threads share one kernel object, each with its own inputs and outputs, and both match the
// reference. (A user thread makes the context current before allocating; here current_device().)
TEST(GpuThreads, TwoThreadsShareOneKernel) {
  REQUIRE_GPU();
  Spec spec;
  spec.name = "threads";
  spec.head_dim = 32;
  spec.dtype = DType::f32;
  auto kernel = jit::get_kernel({.spec = spec});
  std::vector<check::Report> reports(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&, i] {
      try {
        driver::current_device();
        reports[i] = check::run(spec, {.B = 2, .H = 2, .T = 45, .seed = 9}, *kernel);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(errors[i], "");
    EXPECT_FALSE(reports[i].backward.empty());
    for (const auto* list : {&reports[i].forward, &reports[i].backward})
      for (const auto& t : *list) EXPECT_TRUE(t.passed()) << t.name << ": " << t.rel_error;
  }
}

TEST(GpuMemory, SavedStateFollowsGroupCount) {
  Spec spec;
  spec.head_dim = 64;
  spec.mini_batch = 16;
  for (int g : {1, 2, 5, 16}) {
    spec.checkpoint_group = g;
    const Schedule s = default_schedule(spec, Target::for_arch("sm_90a"));
    for (int T : {16, 17, 1000, 2048}) {
      const jit::MemoryPlan m = jit::memory_plan(spec, s, 2, 3, T);
      const int expected = (T + 16 * g - 1) / (16 * g);
      EXPECT_EQ(m.checkpoints, expected) << "T=" << T << " g=" << g;
      EXPECT_EQ(m.checkpoint_bytes, size_t{6} * expected * spec.state_floats() * 4);
    }
  }
}

// A split backward's workspace: one item (the output path's share of the state's adjoint and
// the token-gradient partials) per (b, h, mini-batch), sized by Kernel::memory's plan.
TEST(GpuMemory, SplitBackwardWorkspaceHoldsOneItemPerMiniBatch) {
  Spec spec;
  spec.model = InnerModel::linear;
  spec.depth = 1;
  spec.head_dim = 64;
  spec.mini_batch = 16;
  Schedule s = default_schedule(spec, Target::for_arch("sm_90a"));
  ASSERT_EQ(s.backward_lowering, "tile");
  s.backward_split = true;
  const long long item =
      codegen::generate(spec, s, codegen::KernelKind::backward).item_workspace_floats;
  EXPECT_GE(item, spec.state_floats() + 2 * 16 * 64 + 16);  // share, dK, dV and dlr partials
  for (int T : {16, 17, 2048}) {
    const long long steps = (T + 15) / 16;
    EXPECT_EQ(jit::memory_plan(spec, s, 2, 3, T).backward_workspace_bytes,
              static_cast<size_t>(6 * steps * item * 4))
        << "T=" << T;
  }
}

TEST(GpuArguments, BadArgumentsAreRejectedBeforeLaunch) {
  REQUIRE_GPU();
  Spec spec;
  spec.head_dim = 32;
  spec.dtype = DType::f32;
  auto kernel = jit::get_kernel({.spec = spec});
  DeviceBuffer buf(1 << 20);
  auto t = [&](std::vector<int64_t> shape, DType d = DType::f32) {
    return TensorRef{buf.data(), d, shape};
  };
  ForwardArgs a;
  a.q = a.k = a.v = a.out = t({1, 2, 20, 32});
  a.lr = t({1, 2, 20});
  a.tau = t({16});
  a.gamma = a.beta = t({2, 32});
  a.state0 = t({2, spec.state_floats()});
  a.state_final = t({1, 2, spec.state_floats()});
  a.checkpoints = t({1, 2, 2, spec.state_floats()});
  EXPECT_NO_THROW(kernel->forward(a));
  driver::check(driver::api().cuCtxSynchronize(), "sync");
  // A thread that never touched CUDA can launch: the runtime makes the context current.
  std::string fresh_thread_error;
  std::thread([&] {
    try {
      kernel->forward(a);
      driver::check(driver::api().cuCtxSynchronize(), "sync");
    } catch (const std::exception& e) {
      fresh_thread_error = e.what();
    }
  }).join();
  EXPECT_EQ(fresh_thread_error, "");
  auto expect_error = [&](ForwardArgs bad, const std::string& phrase) {
    try {
      kernel->forward(bad);
      ADD_FAILURE() << "expected an error mentioning " << phrase;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
  };
  ForwardArgs bad = a;
  bad.k = t({1, 2, 20, 16});
  expect_error(bad, "argument 'k'");
  bad = a;
  bad.v.data = nullptr;
  expect_error(bad, "null data pointer");
  bad = a;
  bad.q.dtype = DType::bf16;
  expect_error(bad, "dtype f32 expected");
  bad = a;
  bad.q.strides = {1280, 640, 1, 20};
  expect_error(bad, "feature dimension must have stride 1");
  bad = a;
  bad.checkpoints = t({1, 2, 1, spec.state_floats()});
  expect_error(bad, "argument 'checkpoints'");
  bad = a;
  bad.tau = t({8});
  expect_error(bad, "argument 'tau'");
  bad = a;
  bad.q.data = static_cast<char*>(buf.data()) + 2;
  expect_error(bad, "not aligned");
}

}  // namespace
}  // namespace ttt
