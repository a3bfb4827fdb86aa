// Re-blocking: a DFX program tiled for one config, made to fit another (the binder's
// PTX-to-SASS step). A kernel whose buffers (plan_buffers, plan_vector_buffers,
// plan_copy_buffers) do not fit the target's L3, L2 or L1 gets sub-tiles that do: tile sides
// that divide the original ones (a vector op's rows: its tasks' boundaries), so that every
// original task's region is a whole range of sub-tiles, ragged edges included; a smaller K
// chunk and more K passes; and each task cut
// into sub-tasks when its panel or partial sums outgrow L3. The kernel's dataflow, the order
// of its tasks (each replaced by its sub-tasks, in place) and the order of the K sum of every
// C element are kept, so the results are the same bits; the moves, addresses and dependencies
// follow from the new tiles and tasks (for_each_op, the binder). docs/compiler.md, "Re-blocking".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/dfx.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// What re-blocking did to one kernel.
struct ReblockedKernel {
    uint32_t kernel = 0;        ///< its index in the program
    std::string op;             ///< the graph op's name
    std::string op_class;       ///< "matmul", "conv", "vector" or "copy" (how the tile reads)
    TileShape from, to;         ///< the tile before and after
    uint64_t sub_tiles = 1;     ///< sub-tiles per original tile (M, N and K chunk ratios multiplied)
    uint64_t tasks_from = 0;    ///< the kernel's tasks before
    uint64_t tasks_to = 0;      ///< and after (each original task's sub-tasks)
};

/// What re-blocking did to a program: one entry per kernel it changed (none: it fitted).
struct ReblockReport {
    std::string config;                   ///< the config re-blocked for
    std::vector<ReblockedKernel> kernels;
};

/// Whether every kernel's buffers fit `config`'s L3, L2 and L1 as they are.
bool fits_config(const Program& program, const hw::Config& config);

/// `program` with every kernel that does not fit `config` re-blocked for it (the program
/// itself when all fit). A re-blocked program targets `config` (its hints' fabric cycles are
/// counted on config's fabric; a re-blocked kernel's estimated_cycles is 0, not estimated).
/// A kernel that fits no sub-tiling (a vector op's single row, a convolution's input rows
/// too wide for L3) keeps its smallest candidate, and the binder refuses it with the tensor,
/// the level and the numbers. `report`, if given, says what was changed.
Program reblock(const Program& program, const hw::Config& config, ReblockReport* report = nullptr);

/// One line per re-blocked kernel, as kpu-compile --bind and kpu-sim -v print it:
/// "op 'matmul': tile 128x64x128 re-blocked to 32x32x64 for minimal: 16 sub-tiles, ...".
std::string describe(const ReblockReport& report);

}  // namespace kpu::compiler
