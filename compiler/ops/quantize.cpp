// The element-type conversions: QuantizeLinear (a float tensor to int8), DequantizeLinear
// (int8 or int32 to float32) and Cast (between the float types). In the IR the scale and the
// zero point are not inputs: they are the int8 side's Quantization (Tensor::quant), which
// the ONNX importer fills from ONNX's y_scale / y_zero_point (docs/graph-format.md,
// Quantization).
#include "compiler/ops/quantize.h"

#include <algorithm>
#include <functional>
#include <optional>

#include "compiler/ops/matmul.h"
#include "compiler/ops/op_schema.h"
#include "compiler/vector_op.h"

namespace kpu::compiler {
namespace {

constexpr std::initializer_list<DType> kFloats = {DType::Float32, DType::Float16, DType::BFloat16};

std::string count(size_t n) { return std::to_string(n); }

/// Per-channel quantization of a tensor the program computes: the vector engine reads and
/// writes through one (scale, zero point) per operand, so only constants (weights) may have
/// one per channel.
std::string quantize_lowering(const Graph& graph, const Op& op) {
    for (const std::vector<uint32_t>* side : {&op.inputs, &op.outputs})
        for (uint32_t t : *side) {
            if (t == kNoTensor) continue;
            const Tensor& x = graph.tensor(t);
            if (x.quant && x.quant->scale.size() > 1 && x.role != TensorRole::Constant)
                return "tensor '" + x.name + "' has per-channel quantization (" + count(x.quant->scale.size()) +
                       " scales along axis " + count(x.quant->axis) +
                       ") but is computed by the program: only constants may be quantized per channel";
        }
    return vector_lowering_problem(graph, op);
}

void infer_quantize(InferContext& c) {
    c.need_dtype(0, kFloats);
    const Tensor* y = c.output_tensor(0);
    if (y && !y->quant) c.fail("output 'y' ('" + y->name + "') has no quantization (its scale and zero point)");
    c.output(0, c.shape(0), DType::Int8);
}

void infer_dequantize(InferContext& c) {
    c.need_dtype(0, {DType::Int8, DType::Int32});
    if (!c.input(0).quant) c.fail(c.describe(0) + " has no quantization (its scale and zero point)");
    c.output(0, c.shape(0), DType::Float32);
}

void infer_cast(InferContext& c) {
    const std::string to = c.string_attr("to");
    DType type;
    if (!parse_dtype(to, type)) c.fail("attribute 'to' is '" + to + "' (" + hw::names_in(kDTypeNames) + ")");
    c.output(0, c.shape(0), type);
}

}  // namespace

bool quantized_operand(const InferContext& c, size_t i) {
    return c.has_input(i) && c.dtype(i) == DType::Int8 && c.input(i).quant.has_value();
}

DType product_dtype(const InferContext& c, const ProductInputs& in) {
    const bool has_bias = in.bias != SIZE_MAX && c.has_input(in.bias);
    const Tensor* y = c.output_tensor(0);
    const bool quantized = c.input(in.a).quant || c.input(in.b).quant || (y && y->quant);
    if (c.dtype(in.a) != DType::Int8 || !quantized) {  // no quantization anywhere: the rule of one type
        c.same_dtype(in.a, in.b);
        if (has_bias) {
            const bool narrow = c.dtype(in.a) == DType::BFloat16 || c.dtype(in.a) == DType::Float16;
            if (narrow) c.need_dtype(in.bias, {DType::Float32});
            else c.same_dtype(in.a, in.bias);
        }
        return c.dtype(in.a);
    }
    c.same_dtype(in.a, in.b);
    for (size_t i : {in.a, in.b})
        if (!c.input(i).quant)
            c.fail(c.describe(i) + " is int8 without quantization (its scale and zero point)");
    if (c.input(in.a).quant->scale.size() != 1)
        c.fail(c.describe(in.a) + " is quantized per channel (" + count(c.input(in.a).quant->scale.size()) +
               " scales): A must be quantized per tensor");
    const Quantization& qb = *c.input(in.b).quant;
    if (qb.scale.size() > 1) {
        if (std::find(in.b_axes.begin(), in.b_axes.end(), size_t(qb.axis)) == in.b_axes.end())
            c.fail(c.describe(in.b) + " is quantized per channel along axis " + count(qb.axis) +
                   ", which is not its output-channel axis");
        if (std::adjacent_find(qb.zero_point.begin(), qb.zero_point.end(), std::not_equal_to<>()) != qb.zero_point.end())
            c.fail(c.describe(in.b) + " has per-channel zero points that differ (" + count(qb.zero_point.front()) +
                   " and others): the fabric subtracts one zero point from B");
    }
    if (has_bias) c.need_dtype(in.bias, {DType::Int32});
    if (y && y->quant && y->quant->scale.size() != 1)
        c.fail("output '" + y->name + "' is quantized per channel (" + count(y->quant->scale.size()) +
               " scales): an int8 result must be quantized per tensor");
    if (y && y->quant && c.has_attr("activation") && activation_of(c.op()) != Activation::None &&
        activation_of(c.op()) != Activation::Relu)
        c.fail("attribute 'activation' is '" + c.string_attr("activation") + "' but output '" + y->name +
               "' is int8: only 'none' and 'relu' before an int8 result");
    return y && y->quant ? DType::Int8 : DType::Float32;
}

DType vector_dtype(const InferContext& c, std::initializer_list<size_t> operands) {
    const Tensor* y = c.output_tensor(0);
    bool quantized = y && y->quant;
    for (size_t i : operands) quantized = quantized || quantized_operand(c, i);
    if (!quantized) {  // the float rule
        for (size_t i : operands)
            if (c.has_input(i) && i != *operands.begin()) c.same_dtype(*operands.begin(), i);
        return c.dtype(*operands.begin());
    }
    std::optional<size_t> first_float;
    for (size_t i : operands) {
        if (!c.has_input(i)) continue;
        if (c.dtype(i) == DType::Int8) {
            if (!c.input(i).quant)
                c.fail(c.describe(i) + " is int8 without quantization (its scale and zero point)");
            if (c.input(i).quant->scale.size() != 1)
                c.fail(c.describe(i) + " is quantized per channel (" + count(c.input(i).quant->scale.size()) +
                       " scales): the vector engine reads an int8 operand through one scale and zero point");
            continue;
        }
        c.need_dtype(i, kFloats);
        if (first_float) c.same_dtype(*first_float, i);
        else first_float = i;
    }
    if (y && y->quant) {
        if (y->quant->scale.size() != 1)
            c.fail("output '" + y->name + "' is quantized per channel (" + count(y->quant->scale.size()) +
                   " scales): the vector engine writes int8 through one scale and zero point");
        return DType::Int8;
    }
    return c.dtype(*operands.begin()) == DType::Int8 ? DType::Float32 : c.dtype(*operands.begin());
}

void register_quantize(OpRegistry& registry) {
    OpSchema q;
    q.kind = "QuantizeLinear", q.inputs = {"x"}, q.outputs = {"y"}, q.infer = infer_quantize;
    q.lowering_problem = quantize_lowering;
    registry.add(q);
    OpSchema dq;
    dq.kind = "DequantizeLinear", dq.inputs = {"x"}, dq.outputs = {"y"}, dq.infer = infer_dequantize;
    dq.lowering_problem = quantize_lowering;
    registry.add(dq);
    OpSchema cast;
    cast.kind = "Cast", cast.inputs = {"input"}, cast.outputs = {"output"}, cast.infer = infer_cast;
    cast.attributes = {{"to", AttrType::String, std::nullopt}};
    cast.lowering_problem = quantize_lowering;
    registry.add(cast);
}

}  // namespace kpu::compiler
