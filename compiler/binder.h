// The binder: DFX Program + config -> BoundProgram (bound_program.h), the driver-side step.
// Places every tensor in DRAM (own range, aligned to the interleave granularity), every
// logical buffer at a concrete L3 / L2 bank / L1 buffer address of the compute tile its task
// runs on (tasks go round-robin over all compute tiles), every move on an engine instance,
// and adds the write-after-read / write-after-write dependencies of reused buffers and of the
// fabric's accumulator set. Deterministic and pure: same input, same addresses.
#pragma once

#include <string>

#include "compiler/bound_program.h"
#include "compiler/dfx.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// Throws CompileError naming the tensor, the level and the numbers when something does not fit.
BoundProgram bind(const Program& program, const hw::Config& config);

/// The compute tile a task runs on.
uint32_t task_tile(const Program& program, uint32_t task, const hw::Config& config);

/// JSON rendering of a bound program for inspection (kpu-compile --bind).
std::string write_bound_program(const BoundProgram& bound);

const char* to_string(EngineKind engine);

}  // namespace kpu::compiler
