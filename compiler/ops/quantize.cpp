// The element-type conversions: QuantizeLinear (a float tensor to int8), DequantizeLinear
// (int8 or int32 to float32) and Cast (between the float types). In the IR the scale and the
// zero point are not inputs: they are the int8 side's Quantization (Tensor::quant), which
// the ONNX importer fills from ONNX's y_scale / y_zero_point (docs/graph-format.md,
// Quantization).
#include "compiler/ops/op_schema.h"

namespace kpu::compiler {
namespace {

constexpr std::initializer_list<DType> kFloats = {DType::Float32, DType::Float16, DType::BFloat16};

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

void register_quantize(OpRegistry& registry) {
    OpSchema q;
    q.kind = "QuantizeLinear", q.inputs = {"x"}, q.outputs = {"y"}, q.infer = infer_quantize;
    registry.add(q);
    OpSchema dq;
    dq.kind = "DequantizeLinear", dq.inputs = {"x"}, dq.outputs = {"y"}, dq.infer = infer_dequantize;
    registry.add(dq);
    OpSchema cast;
    cast.kind = "Cast", cast.inputs = {"input"}, cast.outputs = {"output"}, cast.infer = infer_cast;
    cast.attributes = {{"to", AttrType::String, std::nullopt}};
    registry.add(cast);
}

}  // namespace kpu::compiler
