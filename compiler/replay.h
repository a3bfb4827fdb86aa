// The compiler's cost model of a bound program: its op stream replayed on the engines of one
// config the way the platform's sequencer runs it (an op is queued on its engine when its
// dependencies have completed; every engine serves its queue in order), with each op's time
// from the models' rules reduced to one interval per op (docs/compiler.md, "Replay"). It
// prices what a closed form cannot: the prologue before the first MATMUL, the C tiles'
// round trip at a K pass boundary, the waits the reuse dependencies impose. No SystemC.
#pragma once

#include <cmath>

#include "compiler/bound_program.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// Estimated fabric cycles from START to the last op's completion. With a `limit`, the
/// replay stops at the first op that completes after it and returns that op's completion
/// time (more than `limit`, less than the whole replay): what a search that only wants the
/// candidates faster than a bound needs to know.
double replay_cycles(const BoundProgram& program, const hw::Config& config, double limit = INFINITY);

}  // namespace kpu::compiler
