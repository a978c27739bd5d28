// args.hpp: validation of launch arguments and their translation into the kernels' parameter
// structs. Every problem is reported as std::invalid_argument naming the argument and what was
// expected, before anything touches the GPU.
#pragma once

#include "runtime/tensor.hpp"
#include "templates/tttc/params.h"

namespace ttt::args {

struct Problem {
  int B = 0, H = 0, T = 0;
  bool shared_state = true;  // state0 / dstate0 of shape [H, S] rather than [B, H, S]
};

// Checks every forward argument against the spec; returns the problem size.
Problem check_forward(const Spec& spec, const ForwardArgs& a, int checkpoints);
Problem check_backward(const Spec& spec, const BackwardArgs& a, int checkpoints);

// Decode and prefill (docs/decode.md): also check the pool and the slots; `slots` is the pool's N.
struct DecodeProblem : Problem {
  int slots = 0;
};
DecodeProblem check_decode(const Spec& spec, const DecodeArgs& a);
DecodeProblem check_prefill(const Spec& spec, const PrefillArgs& a);

tttc::ForwardParams forward_params(const Problem& p, const ForwardArgs& a);
// The decode launch over tokens [t0, t0 + T) of the token tensors (T = p.T - t0 when T < 0).
// `init`: null, or the state every row starts from (prefill's tail), [B, H, S] or shared [H, S].
tttc::DecodeParams decode_params(const DecodeProblem& p, const TensorRef& q, const TensorRef& k,
                                 const TensorRef& v, const TensorRef& lr, const TensorRef& tau,
                                 const TensorRef& gamma, const TensorRef& beta,
                                 const TensorRef& slots, const DecodePool& pool,
                                 const TensorRef& out, int t0, const float* init, bool shared_init);
tttc::BackwardParams backward_params(const Problem& p, const BackwardArgs& a);

}  // namespace ttt::args
