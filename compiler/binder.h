// The binder: DFX Program + config -> BoundProgram (bound_program.h), the driver-side step.
// Places every tensor in DRAM (own range, aligned to the interleave granularity), every
// logical buffer at a concrete L3 / L2 bank / L1 buffer address of the compute tile its task
// runs on (tasks go round-robin over all compute tiles), every move on an engine instance,
// and adds the write-after-read / write-after-write dependencies of reused buffers and of the
// fabric's accumulator set. Deterministic and pure: same input, same addresses.
//
// Its policies, each in a file of its own: tile_placement.h (which tile a task runs on, where
// its buffers sit), engine_choice.h (the engine of each move, DMA slicing), move_elision.h
// (moves whose bytes are already in place), large_load_limit.h (one big LOAD in flight per
// tile). bound_program_json.h renders the result.
#pragma once

#include <cstdint>

#include "compiler/bound_program.h"
#include "compiler/dfx.h"
#include "compiler/engine_choice.h"
#include "compiler/tile_placement.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// A kernel whose buffers do not fit `config` is re-blocked first (reblock.h: the same
/// results from sub-tiles that fit); the bound ops' dfx_op ids are then the re-blocked
/// program's, which reblock(program, config) gives. Throws CompileError naming the tensor,
/// the level and the numbers when something does not fit even re-blocked.
BoundProgram bind(const Program& program, const hw::Config& config);

/// Where a host puts a program image of `image_bytes` for `bound`: the first DRAM interleave
/// boundary after its last tensor (kpu-sim's choice; any DRAM the inputs do not use until
/// START would do). Throws CompileError with the numbers when the image does not fit.
uint64_t image_address(const BoundProgram& bound, const hw::Config& config, uint64_t image_bytes);

}  // namespace kpu::compiler
