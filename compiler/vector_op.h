// The ops that run on the vector engine, as the DFX generator and the binder see them: the
// op's tensors viewed as 2D [product of the leading dims, last dim], the function and its
// parameters, and how a second input broadcasts over the rows x cols tile. The op files'
// lowering_problem hooks call vector_lowering_problem() (docs/compiler.md, "Vector ops").
// A last-two-axes Transpose takes the same path with no VECTOR op: the movers transpose.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compiler/graph.h"
#include "hardware/vector_command.h"

namespace kpu::compiler {

struct VectorOperands {
    uint32_t a = 0, y = 0;                  ///< tensor indices: the input and the output
    std::optional<uint32_t> b;              ///< second input (Add .. Pow)
    hw::Broadcast b_broadcast = hw::Broadcast::None;
    std::optional<uint32_t> weight, bias;   ///< the norms: [cols] vectors; depthwise_conv: W and B
    uint64_t rows = 0, cols = 0;            ///< the 2D view of the input a (of the output but for reductions)
    hw::VectorCommand command;              ///< function and parameters (addresses and sizes unset)
    /// Transpose (the last two axes swapped): no VECTOR op, the movers transpose each matrix of
    /// matrix_rows x cols (rows = batch * matrix_rows); a row tile holds whole matrices.
    bool transpose = false;
    uint64_t matrix_rows = 1;               ///< Transpose: rows of one input matrix (1 otherwise)
    /// masked_softmax of matrices [Sq, Skv] that is causal or whose mask repeats per matrix:
    /// row tiles are cut into pieces at every multiple of `period` (= Sq) rows, one VECTOR
    /// each, since the causal diagonal and the mask's rows restart with each matrix. 0: no cut.
    uint64_t period = 0;
    std::vector<uint64_t> matrix_dims;      ///< with period: a's dims before [Sq, Skv] (which matrix a row is in)
    std::vector<uint64_t> mask_strides;     ///< with period and b: the mask's rows per step of each of those dims (0: broadcast)
    bool mask_per_query = false;            ///< with period and b: a mask row per query row (else one per matrix, Row broadcast)

    /// The weight's 2D view as a task loads it (a norm's [cols]: 1 x cols; depthwise_conv's
    /// W [C, 1, kH, kW]: C kH x kW), and the bias's elements (cols; depthwise_conv's C).
    uint64_t weight_rows = 1, weight_cols = 0, bias_cols = 0;
    /// A vector_chain (passes/fuse_rows.h): its steps' operands in order, each a command over
    /// the same rows x cols; step i's a is step i-1's result (the first's is a). The chain's own
    /// b, weight and bias are unset, its command is its last step's.
    std::vector<VectorOperands> chain;

    /// One value per row: y is rows x 1, its values contiguous whatever y's shape.
    bool reduces() const { return hw::traits_of(command.function).shape == hw::VectorShape::Reduction; }
    /// A window op (MaxPool, AveragePool, depthwise_conv, Resize): a row is a plane of NCHW
    /// (rows = N C, cols = H W), y's rows are its out_h x out_w planes; both tensors move in
    /// their own 2D views, in_h (out_h) view rows per plane (command.window).
    bool windowed() const { return hw::traits_of(command.function).shape == hw::VectorShape::Window; }
    /// Elements of one row of y: 1 for a reduction, an output plane for a window op, else cols.
    uint64_t y_width() const {
        return reduces() ? 1 : windowed() ? uint64_t(command.window.out_h) * command.window.out_w : cols;
    }
    /// Rows of a's (y's) 2D view per row of the op: a plane's in_h (out_h) for a window op, else 1.
    uint64_t a_view_rows() const { return windowed() ? command.window.in_h : 1; }
    uint64_t y_view_rows() const { return windowed() ? command.window.out_h : 1; }
    /// Columns of a's (y's) 2D view as the op moves it: a plane's in_w (out_w), else cols (y_width()).
    uint64_t a_view_cols() const { return windowed() ? command.window.in_w : cols; }
    uint64_t y_view_cols() const { return windowed() ? command.window.out_w : y_width(); }
    /// Elements of the weight and of the bias (0 without).
    uint64_t weight_elements() const { return weight ? weight_rows * weight_cols : 0; }
    uint64_t bias_elements() const { return bias ? bias_cols : 0; }
    /// b comes row tile by row tile (a tile or a column, or a cut softmax's mask: piece by
    /// piece), not once per task (a row or a scalar).
    bool b_per_row() const {
        return b && (b_broadcast == hw::Broadcast::None || b_broadcast == hw::Broadcast::Column ||
                     (period && b_broadcast == hw::Broadcast::Row));
    }
    /// With period and b per row: the first mask row of the piece starting at row `row` of a.
    uint64_t mask_row(uint64_t row) const;
    /// Rows of b a piece of `count` rows reads: 1 for a cut softmax's Row-broadcast mask.
    uint64_t mask_rows(uint64_t count) const { return period && !mask_per_query ? 1 : count; }
    /// Elements of one row of b: cols for a tile or a row, 1 for a column or a scalar.
    uint64_t b_width() const {
        return b_broadcast == hw::Broadcast::None || b_broadcast == hw::Broadcast::Row ? cols : 1;
    }
};

/// Where a vector_chain's operands other than a sit on chip (docs/compiler.md, "Row fusion"):
/// each distinct tensor once, those read row tile by row tile (a same-shape b) one after the
/// other in the row slots, those read whole (a row or scalar b, a weight, a bias) one after
/// the other in the vector buffer.
struct ChainLayout {
    std::vector<uint32_t> row_inputs;  ///< tensors loaded per row tile; the p-th at p tm cols of its slot
    std::vector<uint32_t> vectors;     ///< tensors loaded once per task
    std::vector<uint64_t> vector_at;   ///< per vectors entry: its first element in the vector buffer
    std::vector<uint64_t> vector_width;  ///< per vectors entry: its elements
    uint64_t vector_elements = 0;      ///< of all vectors
    /// Per step: its b's index into row_inputs (per row) or element in the vector buffer, its
    /// weight's and bias's elements there (0 when it has none).
    std::vector<uint64_t> b_at, weight_at, bias_at;
};
ChainLayout chain_layout(const VectorOperands& op);

/// Calls visit(piece) for each piece of row tile `rows`: the tile cut at multiples of
/// op.period, or the whole tile when the op has none.
template <class Visit>
void for_each_piece(const VectorOperands& op, uint64_t first, uint64_t count, Visit visit) {
    for (uint64_t at = first, end = first + count; at < end;) {
        const uint64_t next = op.period ? std::min(end, (at / op.period + 1) * op.period) : end;
        visit(at, next - at);
        at = next;
    }
}

/// Pieces (for_each_piece) of the row tiles of `tm` rows in rows [first, end), `first` a
/// multiple of tm.
uint64_t piece_count(const VectorOperands& op, uint64_t tm, uint64_t first, uint64_t end);

/// Elements of b that a task over rows [first, end) in row tiles of `tm` reads.
uint64_t b_elements(const VectorOperands& op, uint64_t tm, uint64_t first, uint64_t end);

/// Whether `op` is elementwise (y[i] from the inputs' elements at i, after broadcasting).
bool is_elementwise_op(const Op& op);

/// Whether `op` is of a kind that lowers onto the vector engine (whether this instance does:
/// vector_lowering_problem()).
bool is_vector_op(const Op& op);

/// Why op `op` of a checked graph does not lower onto the vector engine, "" when it does.
std::string vector_lowering_problem(const Graph& graph, const Op& op);

/// The op's operands; throws CompileError for an op that does not lower onto the vector engine.
VectorOperands vector_operands(const Graph& graph, uint32_t op);

/// What a kernel's tile grid spans: a matmul's C is m x n with reduction k, `batch` times
/// (a batched matmul's tile grid per C matrix); a vector op's output is rows x cols with
/// k = 1 (its tile is [rows per tile, cols, 1]); a copy op's grid has a row per copy and its
/// longest copy's rows, k its widest copy's cols (copy_op.h; its tile is [1, rows per piece,
/// cols per piece]).
struct KernelDims {
    uint64_t m = 0, n = 0, k = 0;
    uint64_t batch = 1;
};
KernelDims kernel_dims(const Graph& graph, uint32_t op);

}  // namespace kpu::compiler
