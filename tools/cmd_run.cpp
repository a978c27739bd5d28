// cmd_run.cpp: commands that run kernels: `tttc check` (forward and backward on seeded random
// inputs against the CPU reference), `tttc bench` (CUDA-event timings) and `tttc run` (the user's
// .npy files, on the GPU or, with --device cpu, through the double-precision CPU reference).
#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "runtime/device_buffer.hpp"
#include "runtime/driver.hpp"
#include "runtime/harness/check.hpp"
#include "runtime/harness/host_convert.hpp"
#include "runtime/harness/run_io.hpp"
#include "runtime/jit.hpp"
#include "tools/bench_decode.hpp"
#include "tools/progress.hpp"
#include "tools/shape.hpp"

namespace ttt::cli {
namespace {

void require_gpu() {
  if (!driver::status().available) throw CommandExit(kNoGpu, "no GPU: " + driver::status().reason);
}

nlohmann::json checks_json(const std::vector<check::TensorCheck>& checks) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : checks)
    list.push_back({{"name", c.name},
                    {"rel_error", c.rel_error},
                    {"tolerance", c.tolerance},
                    {"finite", c.finite},
                    {"passed", c.passed()}});
  return list;
}

nlohmann::json shape_json(int B, int H, int T) { return {{"B", B}, {"H", H}, {"T", T}}; }

void print_checks(const char* title, const std::vector<check::TensorCheck>& checks) {
  for (const auto& c : checks)
    fmt::print("  {:8} {:14} rel err {:.3e}  (tol {:.0e})  {}\n", title, c.name, c.rel_error,
               c.tolerance, c.passed() ? "pass" : (c.finite ? "FAIL" : "FAIL (non-finite)"));
}

void add_check(CLI::App& app) {
  struct Options {
    std::string spec, shape = "2,4,256", layout = "bhtf";
    bool per_batch = false, no_backward = false, json = false;
    uint64_t seed = 1;
    ScheduleOptions schedule;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "check",
      "Run the spec's forward and backward on the GPU with seeded random inputs and "
      "compare every output and gradient with the CPU reference. Exit 0 pass, 1 fail, "
      "4 no GPU.");
  cmd->add_option("SPEC", o->spec, "spec file (JSON)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--shape", o->shape, "B,H,T (default 2,4,256)");
  cmd->add_option("--seed", o->seed, "random seed (default 1)");
  cmd->add_option("--layout", o->layout, "token layout: bhtf or bthf")
      ->check(CLI::IsMember({"bhtf", "bthf"}));
  cmd->add_flag("--per-batch-state", o->per_batch, "one initial state per batch row");
  cmd->add_flag("--no-backward", o->no_backward, "check the forward only");
  add_schedule_options(*cmd, o->schedule);
  cmd->add_flag(
      "--json", o->json,
      "print one JSON object: spec, device, arch, shape {B, H, T}, seed, passed, "
      "reference_ms, forward and backward [{name, rel_error, tolerance, finite, passed}]");
  cmd->callback([o] {
    const Spec spec = load_spec_file(o->spec);
    const auto [B, H, T] = parse_shape(o->shape);
    require_gpu();
    Spec run_spec = spec;
    if (o->no_backward) run_spec.build_backward = false;
    jit::KernelConfig config = kernel_config(spec, o->schedule, 1LL * B * H);
    config.spec = run_spec;
    auto kernel = jit::get_kernel(config);
    const auto& dev = driver::current_device();
    if (!o->json)
      fmt::print("{} on {} ({}), B={} H={} T={}\n", o->spec, dev.name, dev.arch, B, H, T);
    // The CPU reference dominates on large shapes: show that it is working (terminal only).
    check::Report r;
    {
      Ticker ticker("running the kernels and the CPU reference");
      r = check::run(run_spec,
                     {.B = B,
                      .H = H,
                      .T = T,
                      .per_batch_state = o->per_batch,
                      .tokens_bthf = o->layout == "bthf",
                      .backward = run_spec.build_backward,
                      .seed = o->seed},
                     *kernel);
    }
    if (o->json) {
      const nlohmann::json j = {{"spec", o->spec},
                                {"name", spec.name},
                                {"device", dev.name},
                                {"arch", dev.arch},
                                {"shape", shape_json(B, H, T)},
                                {"seed", o->seed},
                                {"passed", r.passed()},
                                {"reference_ms", r.reference_ms},
                                {"forward", checks_json(r.forward)},
                                {"backward", checks_json(r.backward)}};
      fmt::print("{}\n", j.dump(2));
    } else {
      print_checks("forward", r.forward);
      print_checks("backward", r.backward);
      fmt::print("{} (reference {:.0f} ms)\n", r.passed() ? "PASS" : "FAIL", r.reference_ms);
    }
    if (!r.passed()) throw CommandExit(kCheckFailed, "");
  });
}

void bench_decode_command(const std::string& path, const Spec& spec, int batch, int B, int H, int T,
                          int runs, bool json) {
  const DecodeBenchResult r =
      bench_decode(spec, {.batch = batch, .H = H, .prefill_B = B, .prefill_T = T, .runs = runs});
  const auto& dev = driver::current_device();
  if (json) {
    nlohmann::json j = r.to_json();
    j.update({{"spec", path},
              {"name", spec.name},
              {"device", dev.name},
              {"arch", dev.arch},
              {"batch", batch},
              {"heads", H},
              {"prefill_shape", shape_json(B, H, T)},
              {"runs", runs}});
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print(
      "{} decode batch={} H={}: step {:.2f} us, {:.0f} tokens/s, state {:.1f} MB/step at {:.0f} "
      "GB/s = {:.0f}% of copy bandwidth ({:.0f} GB/s)\n",
      path, batch, H, r.step_us, r.tokens_per_s, r.state_bytes_per_step / 1e6, r.state_gb_per_s,
      100 * r.bandwidth_fraction, r.copy_gb_per_s);
  fmt::print("{} prefill B={} H={} T={}: {:.3f} ms, {:.0f} tokens/s\n", path, B, H, T, r.prefill_ms,
             r.prefill_tokens_per_s);
}

void add_bench(CLI::App& app) {
  struct Options {
    std::string spec, shape = "16,12,2048";
    int runs = 20, threads = 0, forward_blocks = 0, backward_blocks = 0;
    bool no_backward = false, json = false;
    ScheduleOptions schedule;
    bool decode = false;
    int batch = 0;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "bench",
      "Time the forward and backward kernels with CUDA events (median of --runs after a "
      "warm-up) on random inputs.");
  cmd->add_option("SPEC", o->spec, "spec file (JSON)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--shape", o->shape, "B,H,T (default 16,12,2048)");
  cmd->add_option("--runs", o->runs, "timed runs (default 20)")->check(CLI::Range(1, 10000));
  cmd->add_flag("--no-backward", o->no_backward, "time the forward only");
  add_schedule_options(*cmd, o->schedule);
  cmd->add_option("--threads", o->threads, "override the schedule's threads per CTA");
  cmd->add_option("--forward-blocks-per-sm", o->forward_blocks,
                  "override the forward's occupancy target");
  cmd->add_option("--backward-blocks-per-sm", o->backward_blocks,
                  "override the backward's occupancy target");
  cmd->add_flag("--json", o->json,
                "print one JSON object: spec, device, arch, shape {B, H, T}, runs, schedule, "
                "schedule_source (explicit, tuned or heuristic), forward_ms, backward_ms (-1: "
                "not run)");
  cmd->add_flag("--decode", o->decode,
                "time decode instead (docs/decode.md): one step of --batch sequences replayed "
                "from a CUDA graph, tokens/s, state bandwidth against a measured copy, and the "
                "prefill of --shape B,H,T");
  cmd->add_option("--batch", o->batch, "decode batch (with --decode; default: B of --shape)")
      ->check(CLI::Range(1, kMaxBatch));
  cmd->callback([o] {
    const Spec spec = load_spec_file(o->spec);
    const auto [B, H, T] = parse_shape(o->shape);
    require_gpu();
    if (o->decode)
      return bench_decode_command(o->spec, spec, o->batch > 0 ? o->batch : B, B, H, T, o->runs,
                                  o->json);
    jit::KernelConfig config = kernel_config(spec, o->schedule, 1LL * B * H);
    if (o->threads > 0 || o->forward_blocks > 0 || o->backward_blocks > 0) {
      Schedule s = config.schedule
                       ? *config.schedule
                       : default_schedule(spec, Target::for_arch(driver::current_device().arch));
      if (o->threads > 0) s.threads = o->threads;
      if (o->forward_blocks > 0) s.forward_blocks_per_sm = o->forward_blocks;
      if (o->backward_blocks > 0) s.backward_blocks_per_sm = o->backward_blocks;
      config.schedule = s;
    }
    auto kernel = jit::get_kernel(config);
    const check::Report r = check::run(spec,
                                       {.B = B,
                                        .H = H,
                                        .T = T,
                                        .backward = spec.build_backward && !o->no_backward,
                                        .compare = false,
                                        .timing_runs = o->runs},
                                       *kernel);
    const Schedule& used = kernel->build_info().schedule;
    if (o->json) {
      const auto& dev = driver::current_device();
      const nlohmann::json j = {{"spec", o->spec},
                                {"name", spec.name},
                                {"device", dev.name},
                                {"arch", dev.arch},
                                {"shape", shape_json(B, H, T)},
                                {"runs", o->runs},
                                {"schedule", schedule_to_json(used)},
                                {"schedule_source", kernel->build_info().schedule_source},
                                {"forward_ms", r.forward_ms},
                                {"backward_ms", r.backward_ms}};
      fmt::print("{}\n", j.dump(2));
      return;
    }
    fmt::print("{} B={} H={} T={} precision={}: {}", o->spec, B, H, T, to_string(spec.precision),
               describe_lowerings(spec, used));
    fmt::print(": forward {:.3f} ms", r.forward_ms);
    if (r.backward_ms >= 0) fmt::print(", backward {:.3f} ms", r.backward_ms);
    fmt::print(" (median of {})\n", o->runs);
  });
}

// Uploads `t` rounded to `dtype` and returns a contiguous TensorRef into `buffers`.
TensorRef upload(std::vector<DeviceBuffer>& buffers, const std::vector<double>& values, DType dtype,
                 std::vector<int64_t> shape) {
  buffers.push_back(DeviceBuffer::from_host(encode(values, dtype)));
  return TensorRef{buffers.back().data(), dtype, std::move(shape)};
}

TensorRef output(std::vector<DeviceBuffer>& buffers, DType dtype, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  buffers.emplace_back(n * dtype_bytes(dtype));
  buffers.back().poison();
  return TensorRef{buffers.back().data(), dtype, std::move(shape)};
}

std::vector<double> fetch(const std::vector<DeviceBuffer>& buffers, const TensorRef& t) {
  for (const auto& b : buffers)
    if (b.data() == t.data) return decode(b.download(), t.dtype);
  throw std::logic_error("run: unknown tensor");
}

// The .npy files a run writes, named as they are written (for --json and the summary line).
struct Written {
  std::filesystem::path dir;
  std::vector<std::string> names;
  void operator()(const std::string& name, const std::vector<int64_t>& shape,
                  const std::vector<double>& values) {
    run_io::write(dir, name, shape, values);
    names.push_back(name);
  }
};

// Writes one head-packed state tensor [heads..., S] as per-layer W<l>/b<l> files.
void write_state(Written& out, const Spec& spec, const std::string& suffix,
                 std::vector<int64_t> lead, const std::vector<double>& packed,
                 const std::string& prefix = "") {
  int64_t heads = 1;
  for (auto d : lead) heads *= d;
  const int64_t S = spec.state_floats();
  for (const StateTensor& t : state_layout(spec)) {
    int64_t n = 1;
    for (auto d : t.shape) n *= d;
    std::vector<double> values(heads * n);
    for (int64_t h = 0; h < heads; ++h) std::copy_n(&packed[h * S + t.offset], n, &values[h * n]);
    std::vector<int64_t> shape = lead;
    shape.insert(shape.end(), t.shape.begin(), t.shape.end());
    out(prefix + t.name + suffix, shape, values);
  }
}

struct RunTimes {
  double forward_ms = -1, backward_ms = -1;
};

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// The double-precision CPU reference on the user's tensors: the same files in and out as on the
// GPU (per-layer W<l>/b<l> names), so the two can be compared file by file.
RunTimes run_on_cpu(const Spec& spec, const run_io::RunInputs& r, bool backward, Written& out) {
  const ref::Inputs& in = r.inputs;
  RunTimes times;
  auto start = std::chrono::steady_clock::now();
  ref::Outputs o;
  {
    Ticker ticker("CPU reference: forward");
    o = ref::forward(spec, in);
  }
  times.forward_ms = ms_since(start);
  out("out", o.out.shape, o.out.data);
  for (size_t l = 0; l < o.W_final.size(); ++l) {
    out(fmt::format("W{}_final", l + 1), o.W_final[l].shape, o.W_final[l].data);
    out(fmt::format("b{}_final", l + 1), o.b_final[l].shape, o.b_final[l].data);
  }
  if (!backward) return times;
  start = std::chrono::steady_clock::now();
  ref::Grads g;
  {
    Ticker ticker("CPU reference: forward and backward");
    g = ref::backward(spec, in, *r.upstream);
  }
  times.backward_ms = ms_since(start);
  for (const auto& [name, t] : g.named()) out(name, t->shape, t->data);
  for (size_t l = 0; l < g.dW.size(); ++l) {
    out(fmt::format("dW{}", l + 1), g.dW[l].shape, g.dW[l].data);
    out(fmt::format("db{}", l + 1), g.db[l].shape, g.db[l].data);
  }
  return times;
}

RunTimes run_on_gpu(const Spec& spec, const run_io::RunInputs& r, bool backward, Written& out,
                    const ScheduleOptions& schedule) {
  const ref::Inputs& in = r.inputs;
  auto kernel = jit::get_kernel(kernel_config(spec, schedule, int64_t(in.B) * in.H));
  const int64_t B = in.B, H = in.H, T = in.T, f = spec.head_dim, S = spec.state_floats();
  const int64_t heads = in.per_batch_state ? B * H : H;
  const std::vector<int64_t> tokens = {B, H, T, f};
  const std::vector<int64_t> state_shape =
      in.per_batch_state ? std::vector<int64_t>{B, H, S} : std::vector<int64_t>{H, S};
  std::vector<DeviceBuffer> buffers;
  buffers.reserve(64);
  ForwardArgs fa;
  fa.q = upload(buffers, in.q.data, spec.dtype, tokens);
  fa.k = upload(buffers, in.k.data, spec.dtype, tokens);
  fa.v = upload(buffers, in.v.data, spec.dtype, tokens);
  fa.lr = upload(buffers, in.lr.data, DType::f32, {B, H, T});
  fa.tau = upload(buffers, in.tau.data, DType::f32, {spec.mini_batch});
  fa.gamma = upload(buffers, in.gamma.data, DType::f32, {H, f});
  fa.beta = upload(buffers, in.beta.data, DType::f32, {H, f});
  fa.state0 = upload(buffers, check::pack_state(spec, in.W, in.b, heads), DType::f32, state_shape);
  fa.out = output(buffers, spec.dtype, tokens);
  fa.state_final = output(buffers, DType::f32, {B, H, S});
  fa.checkpoints =
      output(buffers, DType::f32, {B, H, kernel->memory(in.B, in.H, in.T).checkpoints, S});
  RunTimes times;
  auto start = std::chrono::steady_clock::now();
  kernel->forward(fa);
  driver::check(driver::api().cuCtxSynchronize(), "forward kernel");
  times.forward_ms = ms_since(start);
  out("out", tokens, fetch(buffers, fa.out));
  write_state(out, spec, "_final", {B, H}, fetch(buffers, fa.state_final));
  if (!backward) return times;
  const ref::Upstream& up = *r.upstream;
  BackwardArgs ba = check::backward_inputs(fa);
  ba.dout = upload(buffers, up.dout.data, spec.dtype, tokens);
  if (up.dW_final)
    ba.dstate_final = upload(buffers, check::pack_state(spec, *up.dW_final, *up.db_final, B * H),
                             DType::f32, {B, H, S});
  check::allocate_gradients(spec, fa, ba,
                            [&](DType d, std::vector<int64_t> shape, std::vector<int64_t>) {
                              return output(buffers, d, std::move(shape));
                            });
  start = std::chrono::steady_clock::now();
  kernel->backward(ba);
  driver::check(driver::api().cuCtxSynchronize(), "backward kernel");
  times.backward_ms = ms_since(start);
  for (auto [name, t] : {std::pair{"dq", &ba.dq},
                         {"dk", &ba.dk},
                         {"dv", &ba.dv},
                         {"dlr", &ba.dlr},
                         {"dtau", &ba.dtau},
                         {"dgamma", &ba.dgamma},
                         {"dbeta", &ba.dbeta}})
    out(name, t->shape, fetch(buffers, *t));
  write_state(out, spec, "",
              in.per_batch_state ? std::vector<int64_t>{B, H} : std::vector<int64_t>{H},
              fetch(buffers, ba.dstate0), "d");
  return times;
}

void add_run(CLI::App& app) {
  struct Options {
    std::string spec, inputs, outputs, device = "gpu";
    bool backward = false, json = false;
    ScheduleOptions schedule;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "run",
      "Run the spec's kernels on your tensors, read from NumPy .npy files, and write the results "
      "as float32 .npy files. With --device cpu the double-precision CPU reference computes the "
      "same outputs (no GPU needed), so results can be checked or compared file by file.\n"
      "Inputs (float16/32/64): q, k, v [B,H,T,f]; lr [B,H,T]; tau [K]; gamma, beta [H,f];\n"
      "  W<l> [H,d_in,d_out] or [B,H,d_in,d_out]; b<l> [H,d_out] or [B,H,d_out] (l = 1..depth);\n"
      "  with --backward: dout [B,H,T,f], optional W<l>_final_grad, b<l>_final_grad [B,H,...].\n"
      "Outputs: out [B,H,T,f], W<l>_final, b<l>_final [B,H,...]; with --backward: dq, dk, dv,\n"
      "  dlr, dtau, dgamma, dbeta and dW<l>, db<l> shaped like W<l>, b<l>.");
  cmd->add_option("SPEC", o->spec, "spec file (JSON)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--inputs", o->inputs, "directory of input .npy files")->required();
  cmd->add_option("--outputs", o->outputs, "directory for the output .npy files (created)")
      ->required();
  cmd->add_flag("--backward", o->backward, "also run the backward (needs dout.npy)");
  cmd->add_option("--device", o->device,
                  "gpu (default): the generated kernels; cpu: the double-precision CPU reference")
      ->check(CLI::IsMember({"gpu", "cpu"}));
  add_schedule_options(*cmd, o->schedule);
  cmd->add_flag("--json", o->json,
                "print one JSON object: spec, device, shape {B, H, T}, outputs (directory), "
                "files (names written), forward_ms, backward_ms (-1: not run)");
  cmd->callback([o] {
    Spec spec = load_spec_file(o->spec);
    run_io::RunInputs r;
    try {
      r = run_io::load(spec, o->inputs, o->backward);
    } catch (const run_io::InputError& e) {
      throw CommandExit(kUsage, std::string("error: ") + e.what());
    }
    if (o->backward && !spec.build_backward)
      throw CommandExit(
          kUsage, fmt::format("error: {}: --backward needs \"backward\" in $.passes", o->spec));
    const bool cpu = o->device == "cpu";
    if (!cpu) require_gpu();
    if (!o->backward) spec.build_backward = false;
    Written out{o->outputs, {}};
    RunTimes times;
    if (cpu) {
      try {
        times = run_on_cpu(spec, r, o->backward, out);
      } catch (const std::invalid_argument& e) {  // e.g. ref::TooLarge
        throw CommandExit(kUsage, std::string("error: ") + e.what());
      }
    } else {
      times = run_on_gpu(spec, r, o->backward, out, o->schedule);
    }
    const std::string device = cpu ? "cpu" : driver::current_device().name;
    const ref::Inputs& in = r.inputs;
    if (o->json) {
      const nlohmann::json j = {{"spec", o->spec},
                                {"name", spec.name},
                                {"device", device},
                                {"shape", shape_json(in.B, in.H, in.T)},
                                {"outputs", o->outputs},
                                {"files", out.names},
                                {"forward_ms", times.forward_ms},
                                {"backward_ms", times.backward_ms}};
      fmt::print("{}\n", j.dump(2));
      return;
    }
    fmt::print(
        "{} on {}: B={} H={} T={}, forward {:.1f} ms{}\n", o->spec, device, in.B, in.H, in.T,
        times.forward_ms,
        times.backward_ms >= 0 ? fmt::format(", backward {:.1f} ms", times.backward_ms) : "");
    fmt::print("wrote {} files to {}: {}.npy\n", out.names.size(), o->outputs,
               fmt::join(out.names, ".npy, "));
  });
}

}  // namespace

void register_run_commands(CLI::App& app) {
  add_check(app);
  add_bench(app);
  add_run(app);
}

}  // namespace ttt::cli
