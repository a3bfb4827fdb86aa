// Elementwise ops: the binary arithmetic with multidirectional (numpy) broadcasting and the
// unary activations. The output has the broadcast shape (binary) or the input's (unary) and
// the first input's dtype. They lower onto the vector engine (compiler/vector_op.h), Clip
// with constant bounds.
#include "compiler/ops/op_schema.h"
#include "compiler/ops/quantize.h"
#include "compiler/vector_op.h"

namespace kpu::compiler {
namespace {

constexpr std::initializer_list<DType> kFloats = {DType::Float32, DType::Float16, DType::BFloat16};

void infer_binary(InferContext& c) {
    // Pow's exponent may be of another type
    const DType type = c.op().kind != "Pow" ? vector_dtype(c, {0, 1}) : vector_dtype(c, {0});
    c.output(0, c.broadcast(c.shape(0), "input 'A' ('" + c.input(0).name + "')", c.shape(1),
                            "input 'B' ('" + c.input(1).name + "')"),
             type);
}

/// Relu, Neg, Abs: any numeric type (int8 with quant: as the reals it stands for).
void infer_unary(InferContext& c) { c.output(0, c.shape(0), vector_dtype(c, {0})); }

/// The functions defined on reals only (int8 with quant: on the reals it stands for).
void infer_unary_float(InferContext& c) {
    if (!quantized_operand(c, 0)) c.need_dtype(0, kFloats);
    c.output(0, c.shape(0), vector_dtype(c, {0}));
}

void infer_gelu(InferContext& c) {
    const std::string approximate = c.string_attr("approximate");
    if (approximate != "none" && approximate != "tanh")
        c.fail("attribute 'approximate' is '" + approximate + "', expected 'none' or 'tanh'");
    infer_unary_float(c);
}

/// Clip's bounds are optional scalars of the input's type.
void infer_clip(InferContext& c) {
    for (size_t i : {size_t(1), size_t(2)})
        if (c.has_input(i)) {
            if (c.input(i).elements() != 1 || c.rank(i) > 1)
                c.fail(c.describe(i) + " must be a scalar");
        }
    // The bounds are values the compiler reads (the command's clip_min / clip_max): with a
    // reduced-precision X, any float type; with a float32 one, X's type as before.
    if (c.dtype(0) != DType::Float32)
        for (size_t i : {size_t(1), size_t(2)})
            if (c.has_input(i)) c.need_dtype(i, {DType::Float32, DType::Float16, DType::BFloat16});
    c.output(0, c.shape(0), c.dtype(0) == DType::Float32 ? vector_dtype(c, {0, 1, 2}) : vector_dtype(c, {0}));
}

OpSchema unary(const std::string& kind, void (*infer)(InferContext&), std::vector<AttrSpec> attributes = {}) {
    OpSchema s;
    s.kind = kind, s.inputs = {"X"}, s.outputs = {"Y"}, s.attributes = std::move(attributes), s.infer = infer;
    s.lowering_problem = vector_lowering_problem;
    return s;
}

}  // namespace

void register_elementwise(OpRegistry& registry) {
    for (const char* kind : {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"}) {
        OpSchema s;
        s.kind = kind, s.inputs = {"A", "B"}, s.min_inputs = 2, s.outputs = {"C"}, s.infer = infer_binary;
        s.lowering_problem = vector_lowering_problem;
        registry.add(std::move(s));
    }
    for (const char* kind : {"Relu", "Neg", "Abs"}) registry.add(unary(kind, infer_unary));
    for (const char* kind : {"Sigmoid", "Tanh", "Exp", "Sqrt", "Reciprocal", "Erf", "HardSwish", "Silu"})
        registry.add(unary(kind, infer_unary_float));
    registry.add(unary("LeakyRelu", infer_unary_float, {{"alpha", AttrType::Float, 0.01}}));
    registry.add(unary("HardSigmoid", infer_unary_float,
                       {{"alpha", AttrType::Float, 0.2}, {"beta", AttrType::Float, 0.5}}));
    registry.add(unary("Gelu", infer_gelu, {{"approximate", AttrType::String, std::string("none")}}));
    OpSchema clip = unary("Clip", infer_clip);
    clip.inputs = {"input", "min", "max"}, clip.outputs = {"output"};
    clip.compile_time_inputs = {1, 2};  // constant bounds become the command's clip_min, clip_max
    registry.add(std::move(clip));
}

}  // namespace kpu::compiler
