// budget.cpp: memory estimate and budget of the CPU reference (see budget.hpp).
#include "compiler/reference/budget.hpp"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>

#include "compiler/reference/reference.hpp"

namespace ttt::ref {
namespace {

std::string gib(uint64_t bytes) {
  return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / (1ull << 30));
}

// a * b + c..., each step checked; `what` names the quantity in the error.
struct Checked {
  const std::string& what;
  uint64_t mul(uint64_t a, uint64_t b) const {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) overflow();
    return r;
  }
  uint64_t add(uint64_t a, uint64_t b) const {
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r)) overflow();
    return r;
  }
  [[noreturn]] void overflow() const {
    throw TooLarge(fmt::format("{}: too large (the size overflows 64 bits)", what));
  }
};

}  // namespace

int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw std::invalid_argument(fmt::format("{}: negative dimension {}", what, d));
    if (__builtin_mul_overflow(n, d, &n))
      throw TooLarge(fmt::format("{}: too large (its element count overflows 64 bits)", what));
  }
  return n;
}

uint64_t memory_estimate(const Spec& spec, int64_t B, int64_t H, int64_t T, bool per_batch_state,
                         bool backward) {
  const std::string what = fmt::format("shape B={} H={} T={}", B, H, T);
  if (B <= 0 || H <= 0 || T <= 0)
    throw std::invalid_argument(what + ": dimensions must be positive");
  const Checked c{what};
  const uint64_t f = spec.head_dim, S = spec.state_floats(), K = spec.mini_batch;
  const uint64_t heads = c.mul(B, H);
  const uint64_t tokens = c.mul(c.mul(heads, T), f);
  // q, k, v, out (+ dout, dq, dk, dv and the backward's own forward output).
  const uint64_t token_tensors = backward ? 9 : 4;
  // Initial, final (and gradient) states; the backward also keeps one checkpoint per group.
  const uint64_t mini_batches = (static_cast<uint64_t>(T) + K - 1) / K;
  const uint64_t groups = (mini_batches + spec.checkpoint_group - 1) / spec.checkpoint_group;
  const uint64_t states = c.add(per_batch_state || backward ? 3 : 2, backward ? groups : 0);
  // Per worker: a mini-batch's activations through the inner model, a generous bound.
  const uint64_t hidden = spec.hidden_dim();
  const uint64_t scratch = c.mul(reference_threads(), c.add(c.mul(32 * K, hidden), 4 * S));
  uint64_t doubles = c.mul(token_tensors, tokens);
  doubles = c.add(doubles, c.mul(c.mul(heads, states), S));
  doubles = c.add(doubles, c.mul(4, c.mul(heads, T)));  // lr, dlr
  doubles = c.add(doubles, scratch);
  return c.mul(doubles, sizeof(double));
}

uint64_t memory_budget() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  uint64_t budget =
      pages > 0 && page > 0 ? static_cast<uint64_t>(pages) / 4 * 3 * page : uint64_t{8} << 30;
  rlimit limit{};
  if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
    budget = std::min<uint64_t>(budget, limit.rlim_cur / 4 * 3);
  return budget;
}

void check_memory(const Spec& spec, int64_t B, int64_t H, int64_t T, bool per_batch_state,
                  bool backward) {
  const uint64_t need = memory_estimate(spec, B, H, T, per_batch_state, backward);
  const uint64_t budget = memory_budget();
  if (need > budget)
    throw TooLarge(fmt::format(
        "shape B={} H={} T={}: too large for the CPU reference: it needs about {} ({} bytes), "
        "more than the {} it may use (3/4 of this machine's memory)",
        B, H, T, gib(need), need, gib(budget)));
}

}  // namespace ttt::ref
