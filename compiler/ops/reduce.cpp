// ReduceSum, ReduceMean, ReduceMax as ONNX opset 18 has them: the axes are an optional int64
// input (given inline, "value"), negative axes count from the end, keepdims (1) keeps the
// reduced axes as 1, and without axes every axis is reduced unless noop_with_empty_axes.
// Over the last axis they lower onto the vector engine (compiler/vector_op.h), the axes read
// at compile time. Over other axes they expand (compiler/ops/expansion.h): a Transpose moving
// the reduced axes last (none when they already are), a view with them as one last axis, the
// reduction over it, and a view to the output's shape.
#include <set>

#include "compiler/ops/expansion.h"
#include "compiler/ops/op_schema.h"
#include "compiler/ops/quantize.h"

namespace kpu::compiler {
namespace {

void infer_reduce(InferContext& c) {
    const size_t rank = c.rank(0);
    std::set<size_t> axes;
    if (c.has_input(1)) {
        c.need_dtype(1, {DType::Int64});
        const std::vector<int64_t>& values = c.int_values(1);
        for (size_t i = 0; i < values.size(); ++i) {
            const size_t axis = c.axis("axes[" + std::to_string(i) + "]", values[i], rank);
            if (!axes.insert(axis).second) c.fail("axes[" + std::to_string(i) + "] repeats axis " + std::to_string(axis));
        }
    }
    const DType type = vector_dtype(c, {0});
    if (axes.empty() && c.int_attr("noop_with_empty_axes") != 0) return c.output(0, c.shape(0), type);
    const bool all = axes.empty(), keep = c.int_attr("keepdims") != 0;
    std::vector<uint64_t> out;
    for (size_t d = 0; d < rank; ++d) {
        if (!all && !axes.count(d)) out.push_back(c.shape(0)[d]);
        else if (keep) out.push_back(1);
    }
    c.output(0, out, type);
}

bool expand_reduce(Graph& g, const Op& op, std::vector<Op>& ops) {
    const std::vector<uint64_t> shape = g.tensor(op.inputs[0]).shape;
    const size_t rank = shape.size();
    std::set<size_t> axes;
    if (op.inputs.size() > 1 && op.inputs[1] != kNoTensor)
        for (int64_t a : std::get<std::vector<int64_t>>(g.tensor(op.inputs[1]).value))
            axes.insert(size_t(a < 0 ? a + int64_t(rank) : a));
    const bool noop = std::get<int64_t>(*attribute_of(op, schema_of(op), "noop_with_empty_axes")) != 0;
    if (axes.empty()) {
        if (noop || rank <= 1) return false;  // a copy, or what lowers as it is
        for (size_t d = 0; d < rank; ++d) axes.insert(d);
    }
    if (axes.size() == 1 && *axes.begin() == rank - 1) return false;
    std::vector<int64_t> perm;  // the kept axes in order, then the reduced ones
    std::vector<uint64_t> kept;
    uint64_t n = 1;
    for (size_t d = 0; d < rank; ++d)
        if (!axes.count(d)) perm.push_back(int64_t(d)), kept.push_back(shape[d]);
    for (size_t d : axes) perm.push_back(int64_t(d)), n *= shape[d];
    bool trailing = true;
    for (size_t d = 0; d < rank; ++d) trailing = trailing && perm[d] == int64_t(d);
    Expansion x(g, op, ops);
    uint32_t data = trailing ? op.inputs[0] : x.transpose("to_last", op.inputs[0], perm);
    std::vector<uint64_t> rows = kept;
    rows.push_back(n);
    data = x.reshape("rows", data, rows);
    const uint32_t y = op.outputs[0];
    const bool same = g.tensor(y).shape == kept && g.tensor(y).rank0 == kept.empty();
    const uint32_t reduced = x.add(op.kind, "reduce", {data, x.ints("axes", {-1})}, same ? y : kNoTensor,
                                   {{"keepdims", int64_t(0)}});
    if (!same) x.reshape("y", reduced, g.tensor(y).shape, y);
    return true;
}

}  // namespace

void register_reduce(OpRegistry& registry) {
    for (const char* kind : {"ReduceSum", "ReduceMean", "ReduceMax"}) {
        OpSchema s;
        s.kind = kind, s.inputs = {"data", "axes"}, s.outputs = {"reduced"};
        s.attributes = {{"keepdims", AttrType::Int, int64_t(1)}, {"noop_with_empty_axes", AttrType::Int, int64_t(0)}};
        s.infer = infer_reduce;
        s.lowering_problem = expanded_or_vector_problem;
        s.expand = expand_reduce;
        s.compile_time_inputs = {1};
        registry.add(std::move(s));
    }
}

}  // namespace kpu::compiler
