// ReduceSum, ReduceMean, ReduceMax as ONNX opset 18 has them: the axes are an optional int64
// input (given inline, "value"), negative axes count from the end, keepdims (1) keeps the
// reduced axes as 1, and without axes every axis is reduced unless noop_with_empty_axes.
// Over the last axis they lower onto the vector engine (compiler/vector_op.h), the axes read
// at compile time.
#include <set>

#include "compiler/ops/op_schema.h"
#include "compiler/vector_op.h"

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
    if (axes.empty() && c.int_attr("noop_with_empty_axes") != 0) return c.output(0, c.shape(0), c.dtype(0));
    const bool all = axes.empty(), keep = c.int_attr("keepdims") != 0;
    std::vector<uint64_t> out;
    for (size_t d = 0; d < rank; ++d) {
        if (!all && !axes.count(d)) out.push_back(c.shape(0)[d]);
        else if (keep) out.push_back(1);
    }
    c.output(0, out, c.dtype(0));
}

}  // namespace

void register_reduce(OpRegistry& registry) {
    for (const char* kind : {"ReduceSum", "ReduceMean", "ReduceMax"}) {
        OpSchema s;
        s.kind = kind, s.inputs = {"data", "axes"}, s.outputs = {"reduced"};
        s.attributes = {{"keepdims", AttrType::Int, int64_t(1)}, {"noop_with_empty_axes", AttrType::Int, int64_t(0)}};
        s.infer = infer_reduce;
        s.lowering_problem = vector_lowering_problem;
        s.compile_time_inputs = {1};
        registry.add(std::move(s));
    }
}

}  // namespace kpu::compiler
