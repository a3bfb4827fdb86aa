#include "compiler/long_rows.h"

#include "compiler/ops/expansion.h"
#include "compiler/tiler.h"
#include "compiler/vector_op.h"

namespace kpu::compiler {
namespace {

/// Whether `v` with rows of `cols` elements fits.
bool fits_with(const hw::Config& config, const Graph& g, VectorOperands v, uint64_t cols) {
    v.rows = v.rows * v.cols / cols;
    v.cols = cols;
    return vector_tile_fits(config, g, v, 1);
}

/// The smallest c in [2, n) dividing the row length n whose rows of n / c fit (and, for a
/// reduction, whose second pass over rows of c), 0 when none does.
uint64_t chunks(const hw::Config& config, const Graph& g, const VectorOperands& v, bool reduction) {
    for (uint64_t c = 2; c < v.cols; ++c)
        if (v.cols % c == 0 && fits_with(config, g, v, v.cols / c) && (!reduction || fits_with(config, g, v, c))) return c;
    return 0;
}

bool split(const hw::Config& config, Graph& g, const Op& op, std::vector<Op>& ops) {
    if (!is_vector_op(op) || !vector_lowering_problem(g, op).empty()) return false;
    const VectorOperands v = vector_operands(g, *g.find_op(op.name));
    const hw::VectorShape shape = hw::traits_of(v.command.function).shape;
    const bool elementwise = shape == hw::VectorShape::Elementwise && !v.transpose &&
                             (!v.b || v.b_broadcast == hw::Broadcast::None || v.b_broadcast == hw::Broadcast::Scalar);
    if ((!elementwise && shape != hw::VectorShape::Reduction) || v.command.function == hw::VectorFunction::Copy)
        return false;
    if (vector_tile_fits(config, g, v, 1)) return false;
    const uint64_t c = chunks(config, g, v, !elementwise);
    if (c == 0) return false;
    const uint64_t n = v.cols / c, rows = v.rows * c;
    Expansion x(g, op, ops);
    const uint32_t y = op.outputs[0];
    if (elementwise) {  // the same values on a view with rows of n
        std::vector<uint32_t> inputs{x.reshape("rows", v.a, {rows, n})};
        if (v.b) inputs.push_back(v.b_broadcast == hw::Broadcast::Scalar ? *v.b : x.reshape("b_rows", *v.b, {rows, n}));
        for (size_t i = inputs.size(); i < op.inputs.size(); ++i) inputs.push_back(op.inputs[i]);  // Clip's bounds
        x.reshape("y", x.add(op.kind, "short_rows", inputs, kNoTensor, op.attributes), g.tensor(y).shape, y);
        return true;
    }
    // A reduction: over chunks of n (keepdims 0: one value per chunk), then over the c chunks
    // of each row. Every chunk has n elements, so the mean of their means is the mean.
    const uint32_t part = x.add(op.kind, "chunks", {x.reshape("rows", v.a, {rows, n}), x.ints("axes", {-1})},
                                kNoTensor, {{"keepdims", int64_t(0)}});
    const uint32_t whole = x.add(op.kind, "whole", {x.reshape("per_row", part, {v.rows, c}), x.ints("row_axes", {-1})},
                                 kNoTensor, {{"keepdims", int64_t(0)}});
    x.reshape("y", whole, g.tensor(y).shape, y);
    return true;
}

}  // namespace

Graph split_long_rows(const Graph& graph, const hw::Config& config) {
    return rewrite_ops(
        graph, [&](Graph& g, const Op& op, std::vector<Op>& ops) { return split(config, g, op, ops); }, "graph");
}

}  // namespace kpu::compiler
