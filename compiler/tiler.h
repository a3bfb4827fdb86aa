// The tiler: picks, per matmul, the fabric tile (tm, tn), the K chunk tk and the task grid
// (how many C tile rows and columns one task covers) for a target config. Every candidate
// must fit L1, L2 and L3 of one compute tile with its double buffers (K split into passes
// when its panel does not fit L3). A closed-form estimate ranks every candidate; the best
// ones are bound and replayed (replay.h), and the fastest replay wins, then the least DRAM
// traffic, then the fewest ops. The cost models are in docs/compiler.md.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "compiler/dfx.h"
#include "hardware/config.h"

namespace kpu::compiler {

struct TilingChoice {
    TileShape tile;
    uint32_t task_rows = 0, task_cols = 0;  ///< C tiles per task (rows x columns)
    double cycles = 0;                      ///< estimated fabric cycles, all compute tiles (replayed once chosen)
    uint64_t dram_bytes = 0;
    uint64_t ops = 0;
    uint32_t passes = 1;                    ///< K passes (1: all of K at once)
};

/// Evaluates one candidate with K in about `passes` passes (1: all of K at once); false if
/// its buffers do not fit one compute tile of `config`.
bool evaluate_tiling(const hw::Config& config, const Graph& graph, uint32_t op, Dataflow dataflow, TileShape tile,
                     uint32_t task_rows, uint32_t task_cols, TilingChoice& out, uint32_t passes = 1);

/// The best candidate; throws CompileError naming the op, the level and the numbers when
/// nothing fits.
TilingChoice choose_tiling(const hw::Config& config, const Graph& graph, uint32_t op, Dataflow dataflow);

/// Whether row tiles of `tm` rows of vector op `v` fit L2 and L3 of a compute tile with
/// their double buffers.
bool vector_tile_fits(const hw::Config& config, const Graph& graph, const VectorOperands& v, uint64_t tm);

/// The row tiles of vector op `op` (tile [rows per tile, cols, 1], one task per compute tile
/// in turn); throws CompileError naming the op and the numbers when a single row does not fit
/// L2 and L3 with its double buffers (long_rows.h has shortened the rows it can).
TilingChoice choose_vector_tiling(const hw::Config& config, const Graph& graph, uint32_t op);

/// The pieces of copy op `op` (copy_op.h; tile [1, rows, cols per piece]): a row of the widest
/// copy if it fits, about two pieces per compute tile, the largest that fit L3 (and L2 when
/// transposing) with their double buffers; its estimate is the replay of its op stream.
TilingChoice choose_copy_tiling(const hw::Config& config, const Graph& graph, uint32_t op);

/// The tiling of op `op` (not a view) of an expanded graph by its class (copy_tiling,
/// vector_tiling, tiling), and the dataflow it runs in: `requested` for a matmul, output-
/// stationary for the others (a conv_nhwc keeps its input rows in L3 that way).
std::pair<Dataflow, TilingChoice> choose_op_tiling(const hw::Config& config, const Graph& graph, uint32_t op,
                                                   Dataflow requested);

/// The candidate as a program of its own: op `op` alone, its operands and result in DRAM,
/// with its hints (a valid .kpu).
Program tiling_program(const hw::Config& config, const Graph& graph, uint32_t op, Dataflow dataflow,
                       const TilingChoice& choice);

/// Fabric cycles of that program, bound to `config` and replayed (replay.h); with a `limit`,
/// some time above it as soon as the replay passes it.
double replay_tiling(const hw::Config& config, const Graph& graph, uint32_t op, Dataflow dataflow,
                     const TilingChoice& choice, double limit = INFINITY);

/// Per compute tile capacity of a level.
uint64_t level_capacity(const hw::Config& config, hw::Level level);

}  // namespace kpu::compiler
