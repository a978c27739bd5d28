// run_io.cpp: .npy inputs -> reference-shaped tensors, with file-named errors; float32 outputs.
#include "runtime/harness/run_io.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/harness/host_convert.hpp"
#include "runtime/harness/npy.hpp"

namespace ttt::run_io {
namespace fs = std::filesystem;

namespace {

ref::Tensor read_tensor(const fs::path& dir, const std::string& name,
                        const std::vector<std::vector<int64_t>>& allowed, DType round_to) {
  const fs::path path = dir / (name + ".npy");
  if (!fs::exists(path))
    throw InputError(fmt::format("{}: missing (expected shape [{}])", path.string(),
                                 fmt::join(allowed.front(), ", ")));
  npy::Array a;
  try {
    a = npy::read(path.string());
  } catch (const npy::NpyError& e) {
    throw InputError(e.what());
  }
  bool ok = false;
  for (const auto& shape : allowed) ok |= a.shape == shape;
  if (!ok) {
    std::string expected;
    for (const auto& shape : allowed)
      expected += fmt::format("{}[{}]", expected.empty() ? "" : " or ", fmt::join(shape, ", "));
    throw InputError(fmt::format("{}: shape [{}] does not match the spec and q.npy; expected {}",
                                 path.string(), fmt::join(a.shape, ", "), expected));
  }
  ref::Tensor t(a.shape);
  try {
    t.data = npy::to_f64(a);
  } catch (const npy::NpyError& e) {
    throw InputError(fmt::format("{}: {}", path.string(), e.what()));
  }
  quantize(t.data, round_to);
  return t;
}

}  // namespace

RunInputs load(const Spec& spec, const fs::path& dir, bool backward) {
  if (!fs::is_directory(dir)) throw InputError(fmt::format("{}: not a directory", dir.string()));
  const int64_t f = spec.head_dim;
  // q.npy fixes B, H and T.
  npy::Array q;
  const fs::path q_path = dir / "q.npy";
  if (!fs::exists(q_path))
    throw InputError(fmt::format("{}: missing (expected shape [B, H, T, {}])", q_path.string(), f));
  try {
    q = npy::read(q_path.string());
  } catch (const npy::NpyError& e) {
    throw InputError(e.what());
  }
  if (q.shape.size() != 4 || q.shape[3] != f || q.shape[0] < 1 || q.shape[1] < 1 || q.shape[2] < 1)
    throw InputError(fmt::format("{}: shape [{}]; expected [B, H, T, {}]", q_path.string(),
                                 fmt::join(q.shape, ", "), f));
  const int64_t B = q.shape[0], H = q.shape[1], T = q.shape[2];
  RunInputs r;
  ref::Inputs& in = r.inputs;
  in.B = static_cast<int>(B), in.H = static_cast<int>(H), in.T = static_cast<int>(T);
  in.q = read_tensor(dir, "q", {{B, H, T, f}}, spec.dtype);
  in.k = read_tensor(dir, "k", {{B, H, T, f}}, spec.dtype);
  in.v = read_tensor(dir, "v", {{B, H, T, f}}, spec.dtype);
  in.lr = read_tensor(dir, "lr", {{B, H, T}}, DType::f32);
  in.tau = read_tensor(dir, "tau", {{spec.mini_batch}}, DType::f32);
  in.gamma = read_tensor(dir, "gamma", {{H, f}}, DType::f32);
  in.beta = read_tensor(dir, "beta", {{H, f}}, DType::f32);
  const auto widths = spec.widths();
  for (size_t l = 1; l < widths.size(); ++l) {
    const int64_t din = widths[l - 1], dout = widths[l];
    in.W.push_back(
        read_tensor(dir, fmt::format("W{}", l), {{H, din, dout}, {B, H, din, dout}}, DType::f32));
    const bool per_batch = in.W.back().shape.size() == 4;
    if (l == 1)
      in.per_batch_state = per_batch;
    else if (per_batch != in.per_batch_state)
      throw InputError(fmt::format(
          "{}: every W<l>/b<l> must be shared [H, ...] or per batch row [B, H, ...] alike",
          (dir / fmt::format("W{}.npy", l)).string()));
    const std::vector<int64_t> b_shape =
        per_batch ? std::vector<int64_t>{B, H, dout} : std::vector<int64_t>{H, dout};
    in.b.push_back(read_tensor(dir, fmt::format("b{}", l), {b_shape}, DType::f32));
  }
  if (backward) {
    ref::Upstream up;
    up.dout = read_tensor(dir, "dout", {{B, H, T, f}}, spec.dtype);
    if (fs::exists(dir / "W1_final_grad.npy")) {
      std::vector<ref::Tensor> dW, db;
      for (size_t l = 1; l < widths.size(); ++l) {
        dW.push_back(read_tensor(dir, fmt::format("W{}_final_grad", l),
                                 {{B, H, widths[l - 1], widths[l]}}, DType::f32));
        db.push_back(
            read_tensor(dir, fmt::format("b{}_final_grad", l), {{B, H, widths[l]}}, DType::f32));
      }
      up.dW_final = std::move(dW);
      up.db_final = std::move(db);
    }
    r.upstream = std::move(up);
  }
  return r;
}

void write(const fs::path& dir, const std::string& name, const std::vector<int64_t>& shape,
           const std::vector<double>& values) {
  fs::create_directories(dir);
  std::vector<float> f(values.begin(), values.end());
  npy::write((dir / (name + ".npy")).string(), npy::from_f32(shape, f));
}

}  // namespace ttt::run_io
