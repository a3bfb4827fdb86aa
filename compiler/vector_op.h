// The ops that run on the vector engine, as the DFX generator and the binder see them: the
// op's tensors viewed as 2D [product of the leading dims, last dim], the function and its
// parameters, and how a second input broadcasts over the rows x cols tile. The op files'
// lowering_problem hooks call vector_lowering_problem() (docs/compiler.md, "Vector ops").
// A last-two-axes Transpose takes the same path with no VECTOR op: the movers transpose.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "compiler/graph.h"
#include "hardware/vector_command.h"

namespace kpu::compiler {

struct VectorOperands {
    uint32_t a = 0, y = 0;                  ///< tensor indices: the input and the output
    std::optional<uint32_t> b;              ///< second input (Add .. Pow)
    hw::Broadcast b_broadcast = hw::Broadcast::None;
    std::optional<uint32_t> weight, bias;   ///< LayerNormalization, RMSNormalization: [cols] vectors
    uint64_t rows = 0, cols = 0;            ///< the 2D view of the input a (of the output but for reductions)
    hw::VectorCommand command;              ///< function and parameters (addresses and sizes unset)
    /// Transpose (the last two axes swapped): no VECTOR op, the movers transpose each matrix of
    /// matrix_rows x cols (rows = batch * matrix_rows); a row tile holds whole matrices.
    bool transpose = false;
    uint64_t matrix_rows = 1;               ///< Transpose: rows of one input matrix (1 otherwise)

    /// One value per row: y is rows x 1, its values contiguous whatever y's shape.
    bool reduces() const { return hw::traits_of(command.function).shape == hw::VectorShape::Reduction; }
    /// Elements of one row of y: 1 for a reduction, else cols.
    uint64_t y_width() const { return reduces() ? 1 : cols; }
    /// b comes row tile by row tile (a tile or a column), not once per task (a row or a scalar).
    bool b_per_row() const {
        return b && (b_broadcast == hw::Broadcast::None || b_broadcast == hw::Broadcast::Column);
    }
    /// Elements of one row of b: cols for a tile or a row, 1 for a column or a scalar.
    uint64_t b_width() const {
        return b_broadcast == hw::Broadcast::None || b_broadcast == hw::Broadcast::Row ? cols : 1;
    }
};

/// Whether `op` is of a kind that lowers onto the vector engine (whether this instance does:
/// vector_lowering_problem()).
bool is_vector_op(const Op& op);

/// Why op `op` of a checked graph does not lower onto the vector engine, "" when it does.
std::string vector_lowering_problem(const Graph& graph, const Op& op);

/// The op's operands; throws CompileError for an op that does not lower onto the vector engine.
VectorOperands vector_operands(const Graph& graph, uint32_t op);

/// What a kernel's tile grid spans: a matmul's C is m x n with reduction k, `batch` times
/// (a batched matmul's tile grid per C matrix); a vector op's output is rows x cols with
/// k = 1 (its tile is [rows per tile, cols, 1]).
struct KernelDims {
    uint64_t m = 0, n = 0, k = 0;
    uint64_t batch = 1;
};
KernelDims kernel_dims(const Graph& graph, uint32_t op);

}  // namespace kpu::compiler
