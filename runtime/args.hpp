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

tttc::ForwardParams forward_params(const Problem& p, const ForwardArgs& a);
tttc::BackwardParams backward_params(const Problem& p, const BackwardArgs& a);

}  // namespace ttt::args
