// Softmax (opset 13: along one axis), LayerNormalization (opset 17) and RMSNormalization
// (opset 23): normalize over the axes from `axis` to the last; the scale (and bias) broadcast
// to those axes' shape.
#include "compiler/ops/op_schema.h"
#include "compiler/vector_op.h"

namespace kpu::compiler {
namespace {

constexpr std::initializer_list<DType> kFloats = {DType::Float32, DType::Float16, DType::BFloat16};

void infer_softmax(InferContext& c) {
    c.need_dtype(0, kFloats);
    c.axis("attribute 'axis'", c.int_attr("axis"), c.rank(0));
    c.output(0, c.shape(0), c.dtype(0));
}

/// The normalized axes' shape, X.shape[axis:], that input i must broadcast to.
void need_broadcast_to_normalized(InferContext& c, size_t i, size_t axis) {
    const std::vector<uint64_t> normalized(c.shape(0).begin() + long(axis), c.shape(0).end());
    if (c.broadcast(c.shape(i), c.describe(i), normalized, "the normalized axes") != normalized)
        c.fail(c.describe(i) + " does not broadcast to the normalized axes " + shape_string(normalized));
    c.same_dtype(0, i);
}

/// LayerNormalization and RMSNormalization: Y like X; LayerNormalization's optional Mean and
/// InvStdDev keep X's leading axes and have 1 for each normalized one (float32: stash_type 1).
void infer_normalization(InferContext& c) {
    c.need_dtype(0, kFloats);
    const size_t axis = c.axis("attribute 'axis'", c.int_attr("axis"), c.rank(0));
    if (c.float_attr("epsilon") <= 0)
        c.fail("attribute 'epsilon' is " + attr_string(c.float_attr("epsilon")) + ", expected > 0");
    for (size_t i = 1; i < c.input_count(); ++i)
        if (c.has_input(i)) need_broadcast_to_normalized(c, i, axis);
    c.output(0, c.shape(0), c.dtype(0));
    std::vector<uint64_t> stats(c.shape(0));
    for (size_t d = axis; d < stats.size(); ++d) stats[d] = 1;
    c.output(1, stats, DType::Float32);
    c.output(2, stats, DType::Float32);
}

}  // namespace

void register_normalization(OpRegistry& registry) {
    OpSchema softmax;
    softmax.kind = "Softmax", softmax.inputs = {"input"}, softmax.outputs = {"output"};
    softmax.attributes = {{"axis", AttrType::Int, int64_t(-1)}};
    softmax.lowering_problem = vector_lowering_problem;
    softmax.infer = infer_softmax;
    registry.add(std::move(softmax));
    const std::vector<AttrSpec> common = {{"axis", AttrType::Int, int64_t(-1)},
                                          {"epsilon", AttrType::Float, 1e-5},
                                          {"stash_type", AttrType::Int, int64_t(1)}};
    OpSchema layer_norm;
    layer_norm.kind = "LayerNormalization", layer_norm.inputs = {"X", "Scale", "B"}, layer_norm.min_inputs = 2;
    layer_norm.outputs = {"Y", "Mean", "InvStdDev"}, layer_norm.attributes = common;
    layer_norm.lowering_problem = vector_lowering_problem;
    layer_norm.infer = infer_normalization;
    registry.add(std::move(layer_norm));
    OpSchema rms_norm;
    rms_norm.kind = "RMSNormalization", rms_norm.inputs = {"X", "scale"}, rms_norm.min_inputs = 2;
    rms_norm.outputs = {"Y"}, rms_norm.attributes = common;
    rms_norm.lowering_problem = vector_lowering_problem;
    rms_norm.infer = infer_normalization;
    registry.add(std::move(rms_norm));
}

}  // namespace kpu::compiler
