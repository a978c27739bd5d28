// step.hpp: one TTT mini-batch (dual form) written once against the tape, so that running it is
// the forward and sweeping the tape back is the exact outer backward. Causal and non-causal.
#pragma once

#include <vector>

#include "compiler/reference/autodiff.hpp"
#include "compiler/spec.hpp"

namespace ttt::ref {

// Tape nodes of one head's inner-model parameters: W[l-1] is [d_{l-1} x d_l], b[l-1] is [1 x d_l].
struct StateNodes {
  std::vector<Tape::Id> W, b;
};

// Tape nodes of one mini-batch of Kc tokens (Kc <= K; the last mini-batch may be short).
struct ChunkNodes {
  Tape::Id q, k, v;  // [Kc x f]
  Tape::Id lr;       // [Kc x 1]
  Tape::Id tau;      // [Kc x 1]: tau_0 .. tau_{Kc-1}
};

// Appends one mini-batch starting from `theta`; returns the output node [Kc x f] and replaces
// `theta` with the state carried on. gamma and beta are [1 x f] nodes.
Tape::Id append_minibatch(Tape& t, const Spec& spec, const ChunkNodes& c, Tape::Id gamma,
                          Tape::Id beta, StateNodes& theta);

}  // namespace ttt::ref
