// test_tttc_run.cpp: `tttc run` on .npy files. Argument and file errors are caught before any
// GPU work (so they are tested everywhere); on a GPU, the written outputs and gradients match the
// CPU reference on the same files.
#include <nlohmann/json.hpp>

#include "compiler/reference/reference.hpp"
#include "runtime/driver.hpp"
#include "runtime/harness/check.hpp"
#include "runtime/harness/npy.hpp"
#include "tttc_test_util.hpp"

namespace {

ttt::Spec linear_spec() {
  return ttt::load_spec_file(test_path("TTTC_TEST_SOURCE_DIR", TTTC_SOURCE_DIR) +
                             "/examples/linear-f32-d32.json");
}

void save(const fs::path& dir, const std::string& name, const ttt::ref::Tensor& t) {
  std::vector<float> f(t.data.begin(), t.data.end());
  ttt::npy::write((dir / (name + ".npy")).string(), ttt::npy::from_f32(t.shape, f));
}

// Writes a complete, valid input directory for `spec` and returns the inputs it holds.
ttt::ref::Inputs write_inputs(const ttt::Spec& spec, const fs::path& dir, bool with_dout) {
  fs::create_directories(dir);
  const ttt::ref::Inputs in = ttt::ref::random_inputs(spec, 2, 2, 37, false, 5);
  for (auto [name, t] : {std::pair{"q", &in.q},
                         {"k", &in.k},
                         {"v", &in.v},
                         {"lr", &in.lr},
                         {"tau", &in.tau},
                         {"gamma", &in.gamma},
                         {"beta", &in.beta}})
    save(dir, name, *t);
  for (size_t l = 0; l < in.W.size(); ++l) {
    save(dir, fmt::format("W{}", l + 1), in.W[l]);
    save(dir, fmt::format("b{}", l + 1), in.b[l]);
  }
  if (with_dout) save(dir, "dout", ttt::ref::random_upstream(spec, 2, 2, 37, false, 6).dout);
  return in;
}

class TttcRun : public TttcCli {};

TEST_F(TttcRun, FileErrorsNameTheFile) {
  const fs::path in = cache_ / "in", out = cache_ / "out";
  const std::string base =
      "run examples/linear-f32-d32.json --inputs " + in.string() + " --outputs " + out.string();
  Result r = tttc(base, cache_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("not a directory"), std::string::npos) << r.out;

  write_inputs(linear_spec(), in, false);
  fs::remove(in / "k.npy");
  r = tttc(base, cache_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("k.npy: missing"), std::string::npos) << r.out;

  ttt::npy::write((in / "k.npy").string(),
                  ttt::npy::from_f32({2, 2, 37, 16}, std::vector<float>(2 * 2 * 37 * 16, 1.f)));
  r = tttc(base, cache_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("k.npy: shape [2, 2, 37, 16]"), std::string::npos) << r.out;

  write_inputs(linear_spec(), in, false);
  ttt::npy::Array ints{
      ttt::npy::ElementType::i32, {2, 2, 37}, std::vector<uint8_t>(2 * 2 * 37 * 4)};
  ttt::npy::write((in / "lr.npy").string(), ints);
  r = tttc(base, cache_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("lr.npy"), std::string::npos) << r.out;

  write_inputs(linear_spec(), in, false);
  std::FILE* f = std::fopen((in / "W1.npy").c_str(), "w");
  std::fputs("garbage", f);
  std::fclose(f);
  r = tttc(base, cache_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("W1.npy"), std::string::npos) << r.out;

  write_inputs(linear_spec(), in, false);
  r = tttc(base + " --backward", cache_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("dout.npy: missing"), std::string::npos) << r.out;

  EXPECT_EQ(tttc("run examples/linear-f32-d32.json --outputs x", cache_).exit_code,
            2);  // --inputs required
}

TEST_F(TttcRun, WithoutAGpuValidInputsExitWithTheNoGpuCode) {
  if (ttt::driver::status().available) GTEST_SKIP() << "a GPU is present";
  const fs::path in = cache_ / "in";
  write_inputs(linear_spec(), in, true);
  const Result r = tttc("run examples/linear-f32-d32.json --backward --inputs " + in.string() +
                            " --outputs " + (cache_ / "out").string(),
                        cache_);
  EXPECT_EQ(r.exit_code, 4) << r.out;
}

// The outputs in `out_dir` equal the reference on the float32 values of the input files.
void expect_outputs_match(const ttt::Spec& spec, const ttt::ref::Inputs& in,
                          const fs::path& out_dir, double tolerance) {
  ttt::ref::Upstream up = ttt::ref::random_upstream(spec, 2, 2, 37, false, 6);
  // The files hold float32 values: the reference must see exactly those.
  ttt::ref::Inputs in32 = in;
  for (auto* t : {&in32.q, &in32.k, &in32.v, &in32.lr, &in32.tau, &in32.gamma, &in32.beta,
                  &in32.W[0], &in32.b[0], &up.dout})
    for (auto& x : t->data) x = static_cast<float>(x);
  const ttt::ref::Outputs want = ttt::ref::forward(spec, in32);
  const ttt::ref::Grads g = ttt::ref::backward(spec, in32, up);
  auto load = [&](const char* name) {
    return ttt::npy::to_f64(ttt::npy::read((out_dir / (std::string(name) + ".npy")).string()));
  };
  for (auto [name, ref] : {std::pair{"out", &want.out.data},
                           {"W1_final", &want.W_final[0].data},
                           {"b1_final", &want.b_final[0].data},
                           {"dq", &g.dq.data},
                           {"dk", &g.dk.data},
                           {"dv", &g.dv.data},
                           {"dlr", &g.dlr.data},
                           {"dtau", &g.dtau.data},
                           {"dgamma", &g.dgamma.data},
                           {"dbeta", &g.dbeta.data},
                           {"dW1", &g.dW[0].data},
                           {"db1", &g.db[0].data}}) {
    bool finite = true;
    EXPECT_LE(ttt::check::relative_error(load(name), *ref, &finite), tolerance) << name;
    EXPECT_TRUE(finite) << name;
  }
}

TEST_F(TttcRun, OutputsMatchTheReferenceOnAGpu) {
  if (!ttt::driver::status().available) GTEST_SKIP() << ttt::driver::status().reason;
  const ttt::Spec spec = linear_spec();
  const fs::path in_dir = cache_ / "in", out_dir = cache_ / "out";
  const ttt::ref::Inputs in = write_inputs(spec, in_dir, true);
  const Result r = tttc("run examples/linear-f32-d32.json --backward --inputs " + in_dir.string() +
                            " --outputs " + out_dir.string(),
                        cache_);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  expect_outputs_match(spec, in, out_dir, 1e-4);
}

TEST_F(TttcRun, CpuDeviceRunsTheReferenceOnTheUsersFiles) {
  // Before: the reference only took seeded random inputs, so a user without a GPU could not
  // check their own data.
  const ttt::Spec spec = linear_spec();
  const fs::path in_dir = cache_ / "in", out_dir = cache_ / "out";
  const ttt::ref::Inputs in = write_inputs(spec, in_dir, true);
  const Result r =
      tttc("run examples/linear-f32-d32.json --device cpu --backward --json --inputs " +
               in_dir.string() + " --outputs " + out_dir.string() + " 2>/dev/null",
           cache_);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(j["shape"]["T"], 37);
  EXPECT_GE(j["backward_ms"].get<double>(), 0);
  EXPECT_EQ(j["files"].size(), 12u) << j.dump();  // out, W1/b1_final, 7 gradients, dW1, db1
  expect_outputs_match(spec, in, out_dir, 1e-6);  // only the float32 rounding of the outputs
  EXPECT_EQ(tttc("run examples/linear-f32-d32.json --device tpu --inputs " + in_dir.string() +
                     " --outputs " + out_dir.string(),
                 cache_)
                .exit_code,
            2);
}

}  // namespace
