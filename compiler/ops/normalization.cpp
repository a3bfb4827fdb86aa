// Softmax (opset 13: along one axis), LayerNormalization (opset 17) and RMSNormalization
// (opset 23): normalize over the axes from `axis` to the last; the scale (and bias) broadcast
// to those axes' shape.
// Over other axes they expand (compiler/ops/expansion.h): Softmax between two Transposes that
// swap its axis with the last; the norms over [rows, normalized elements] views.
#include <numeric>

#include "compiler/ops/expansion.h"
#include "compiler/ops/op_schema.h"
#include "compiler/ops/quantize.h"

namespace kpu::compiler {
namespace {

constexpr std::initializer_list<DType> kFloats = {DType::Float32, DType::Float16, DType::BFloat16};

void infer_softmax(InferContext& c) {
    if (!quantized_operand(c, 0)) c.need_dtype(0, kFloats);
    c.axis("attribute 'axis'", c.int_attr("axis"), c.rank(0));
    c.output(0, c.shape(0), vector_dtype(c, {0}));
}

/// The normalized axes' shape, X.shape[axis:], that input i must broadcast to.
void need_broadcast_to_normalized(InferContext& c, size_t i, size_t axis) {
    const std::vector<uint64_t> normalized(c.shape(0).begin() + long(axis), c.shape(0).end());
    if (c.broadcast(c.shape(i), c.describe(i), normalized, "the normalized axes") != normalized)
        c.fail(c.describe(i) + " does not broadcast to the normalized axes " + shape_string(normalized));
    // The vector engine reads a norm's weight and bias as float32 whatever X's type (int8,
    // bfloat16, float16): X's type when X is float32, else float32.
    if (c.dtype(0) == DType::Float32) c.same_dtype(0, i);
    else c.need_dtype(i, {DType::Float32});
}

/// LayerNormalization and RMSNormalization: Y like X; LayerNormalization's optional Mean and
/// InvStdDev keep X's leading axes and have 1 for each normalized one (float32: stash_type 1).
void infer_normalization(InferContext& c) {
    if (!quantized_operand(c, 0)) c.need_dtype(0, kFloats);
    const size_t axis = c.axis("attribute 'axis'", c.int_attr("axis"), c.rank(0));
    if (c.float_attr("epsilon") <= 0)
        c.fail("attribute 'epsilon' is " + attr_string(c.float_attr("epsilon")) + ", expected > 0");
    for (size_t i = 1; i < c.input_count(); ++i)
        if (c.has_input(i)) need_broadcast_to_normalized(c, i, axis);
    c.output(0, c.shape(0), vector_dtype(c, {0}));
    std::vector<uint64_t> stats(c.shape(0));
    for (size_t d = axis; d < stats.size(); ++d) stats[d] = 1;
    c.output(1, stats, DType::Float32);
    c.output(2, stats, DType::Float32);
}

/// The op's `axis` attribute made non-negative (inference has checked its range).
size_t axis_of(const Graph& g, const Op& op) {
    const int64_t axis = std::get<int64_t>(*attribute_of(op, schema_of(op), "axis"));
    return size_t(axis < 0 ? axis + int64_t(g.tensor(op.inputs[0]).shape.size()) : axis);
}

bool expand_softmax(Graph& g, const Op& op, std::vector<Op>& ops) {
    const size_t rank = g.tensor(op.inputs[0]).shape.size(), axis = axis_of(g, op);
    if (rank == 0 || axis == rank - 1) return false;
    std::vector<int64_t> perm(rank);
    std::iota(perm.begin(), perm.end(), 0);
    std::swap(perm[axis], perm[rank - 1]);  // its own inverse
    Expansion x(g, op, ops);
    const uint32_t last = x.transpose("to_last", op.inputs[0], perm);
    x.transpose("back", x.add("Softmax", "softmax", {last}, kNoTensor, {{"axis", int64_t(-1)}}), perm, op.outputs[0]);
    return true;
}

/// A norm over the axes from `axis` on, axis not the last: X viewed as [rows, n] (n the
/// normalized elements), the scale and bias as [n] when they have n elements.
bool expand_normalization(Graph& g, const Op& op, std::vector<Op>& ops) {
    const std::vector<uint64_t> shape = g.tensor(op.inputs[0]).shape;
    const size_t rank = shape.size(), axis = axis_of(g, op);
    if (rank == 0 || axis == rank - 1) return false;
    for (size_t i = 1; i < op.outputs.size(); ++i)
        if (op.outputs[i] != kNoTensor) return false;  // Mean, InvStdDev: not taken
    const uint64_t n = std::accumulate(shape.begin() + long(axis), shape.end(), uint64_t(1), std::multiplies<>());
    for (size_t i = 1; i < op.inputs.size(); ++i)
        if (op.inputs[i] != kNoTensor && g.tensor(op.inputs[i]).elements() != n) return false;
    Expansion x(g, op, ops);
    std::vector<uint32_t> inputs{x.reshape("rows", op.inputs[0], {g.tensor(op.inputs[0]).elements() / n, n})};
    for (size_t i = 1; i < op.inputs.size(); ++i)
        inputs.push_back(op.inputs[i] == kNoTensor ? kNoTensor : x.reshape("vector" + std::to_string(i), op.inputs[i], {n}));
    std::map<std::string, AttrValue> attributes = op.attributes;
    attributes["axis"] = int64_t(-1);
    x.reshape("y", x.add(op.kind, "norm", inputs, kNoTensor, attributes), shape, op.outputs[0]);
    return true;
}

}  // namespace

void register_normalization(OpRegistry& registry) {
    OpSchema softmax;
    softmax.kind = "Softmax", softmax.inputs = {"input"}, softmax.outputs = {"output"};
    softmax.attributes = {{"axis", AttrType::Int, int64_t(-1)}};
    softmax.lowering_problem = expanded_or_vector_problem;
    softmax.infer = infer_softmax;
    softmax.expand = expand_softmax;
    registry.add(std::move(softmax));
    const std::vector<AttrSpec> common = {{"axis", AttrType::Int, int64_t(-1)},
                                          {"epsilon", AttrType::Float, 1e-5},
                                          {"stash_type", AttrType::Int, int64_t(1)}};
    OpSchema layer_norm;
    layer_norm.kind = "LayerNormalization", layer_norm.inputs = {"X", "Scale", "B"}, layer_norm.min_inputs = 2;
    layer_norm.outputs = {"Y", "Mean", "InvStdDev"}, layer_norm.attributes = common;
    layer_norm.lowering_problem = expanded_or_vector_problem;
    layer_norm.infer = infer_normalization;
    layer_norm.expand = expand_normalization;
    registry.add(std::move(layer_norm));
    OpSchema rms_norm;
    rms_norm.kind = "RMSNormalization", rms_norm.inputs = {"X", "scale"}, rms_norm.min_inputs = 2;
    rms_norm.outputs = {"Y"}, rms_norm.attributes = common;
    rms_norm.lowering_problem = expanded_or_vector_problem;
    rms_norm.infer = infer_normalization;
    rms_norm.expand = expand_normalization;
    registry.add(std::move(rms_norm));
}

}  // namespace kpu::compiler
