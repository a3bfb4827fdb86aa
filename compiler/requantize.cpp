#include "compiler/requantize.h"

#include <algorithm>

#include "compiler/compile_error.h"
#include "compiler/copy_op.h"
#include "compiler/ops/matmul.h"
#include "compiler/ops/op_schema.h"
#include "compiler/vector_op.h"

namespace kpu::compiler {

namespace {

bool is_matmul_family(const Op& op) {
    return op.kind == "matmul" || op.kind == "MatMul" || op.kind == "Gemm" || op.kind == "conv_nhwc";
}

/// The first non-float32 tensor of `tensors`' message: "tensor 'x' is int8, not yet supported".
std::string not_float32(const Graph& g, std::initializer_list<std::optional<uint32_t>> tensors) {
    for (const std::optional<uint32_t>& t : tensors)
        if (t && *t != kNoTensor && g.tensor(*t).dtype != DType::Float32)
            return "tensor '" + g.tensor(*t).name + "' is " + to_string(g.tensor(*t).dtype) + ", not yet supported";
    return "";
}

std::optional<uint32_t> input(const Op& op, size_t i) {
    return i < op.inputs.size() && op.inputs[i] != kNoTensor ? std::optional<uint32_t>(op.inputs[i]) : std::nullopt;
}

/// The element types of a matmul or conv_nhwc (element_type_problem).
std::string matmul_types_problem(const Graph& g, const Op& op) {
    const std::optional<uint32_t> a = input(op, 0), b = input(op, 1), bias = input(op, 2), scale = input(op, 3),
                                  residual = input(op, 4), c = op.outputs.at(0);
    const DType type = g.tensor(*a).dtype;
    if (type == DType::Float32) return not_float32(g, {a, b, bias, scale, residual, c});
    if (type == DType::BFloat16 || type == DType::Float16) {
        // Products exact in float32, float32 accumulation and bias, C stored in A's type.
        for (const std::optional<uint32_t>& t : {b, c})
            if (g.tensor(*t).dtype != type)
                return "tensor '" + g.tensor(*t).name + "' is " + to_string(g.tensor(*t).dtype) + " but A '" +
                       g.tensor(*a).name + "' is " + to_string(type) + " (B and C must be A's type)";
        if (std::string p = not_float32(g, {bias}); !p.empty()) return p;
        if (scale || residual) return "a drain scale or residual with " + std::string(to_string(type)) + " operands not yet supported";
        return "";
    }
    if (type != DType::Int8) return not_float32(g, {a});
    const Tensor &ta = g.tensor(*a), &tb = g.tensor(*b), &tc = g.tensor(*c);
    if (!ta.quant) return not_float32(g, {a});  // int8 without quantization: no values to compute on
    if (ta.quant->per_channel())
        return "int8 A '" + ta.name + "' needs a per-tensor quantization (scale and zero point)";
    if (!tb.quant) return "int8 B '" + tb.name + "' needs a quantization (scale and zero point)";
    for (int32_t z : tb.quant->zero_point)
        if (z != tb.quant->zero_point[0])
            return "int8 B '" + tb.name + "' has different zero points per channel (" +
                   std::to_string(tb.quant->zero_point[0]) + " and " + std::to_string(z) + "): not yet supported";
    const MatmulOperands mm = matmul_operands(g, op);
    if (tb.quant->per_channel()) {
        const uint32_t axis = mm.conv ? 4 : mm.trans_b ? 0 : 1;  // B's output-channel axis
        if (tb.quant->axis != axis)
            return "int8 B '" + tb.name + "' is quantized per channel along axis " +
                   std::to_string(tb.quant->axis) + ", not its output channels (axis " + std::to_string(axis) + ")";
    }
    if (tc.dtype == DType::Int8 && (!tc.quant || tc.quant->per_channel()))
        return "int8 C '" + tc.name + "' needs a per-tensor quantization (scale and zero point)";
    if (tc.dtype != DType::Int8 && (tc.dtype != DType::Float32 || tc.quant))
        return "C '" + tc.name + "' of int8 A and B is " + to_string(tc.dtype) +
               " (int8 with quantization, or float32 without)";
    if (tc.dtype == DType::Int8 && mm.activation != Activation::None && mm.activation != Activation::Relu)
        return std::string("activation '") + to_string(mm.activation) + "' with an int8 C not yet supported (none or relu)";
    if (bias && g.tensor(*bias).dtype != DType::Int32)
        return "bias '" + g.tensor(*bias).name + "' of int8 A and B is " + to_string(g.tensor(*bias).dtype) +
               ", not int32";
    if (residual) return "a drain residual with int8 operands not yet supported";
    if (scale && g.tensor(*scale).dtype != DType::Float32) return not_float32(g, {scale});
    if (op.kind != "conv_nhwc" && op.kind != "matmul" &&
        (mm.batch != 1 || mm.trans_a || mm.trans_b || mm.alpha != 1.0f || mm.beta != 1.0f ||
         ta.shape.size() != 2 || tb.shape.size() != 2))
        return "an int8 " + op.kind + " other than one [M, K] x [K, N] product (alpha = beta = 1) not yet supported";
    return "";
}

/// The types a vector engine operand may have; int8 per tensor.
std::string vector_operand_problem(const Tensor& t) {
    switch (t.dtype) {
        case DType::Float32: case DType::BFloat16: case DType::Float16: return "";
        case DType::Int8:
            if (t.quant && !t.quant->per_channel()) return "";
            return "int8 tensor '" + t.name + "' needs a per-tensor quantization (scale and zero point)";
        default: return "tensor '" + t.name + "' is " + std::string(to_string(t.dtype)) + ", not yet supported";
    }
}

/// Inputs `op` reads as values (a compile-time input, an int64 axes list, is the compiler's).
std::vector<uint32_t> value_inputs(const Op& op) {
    const std::vector<size_t>& compile_time = schema_of(op).compile_time_inputs;
    std::vector<uint32_t> out;
    for (size_t i = 0; i < op.inputs.size(); ++i)
        if (op.inputs[i] != kNoTensor &&
            std::find(compile_time.begin(), compile_time.end(), i) == compile_time.end())
            out.push_back(op.inputs[i]);
    return out;
}

}  // namespace

std::string element_type_problem(const Graph& g, const Op& op) {
    if (is_matmul_family(op)) return matmul_types_problem(g, op);
    const std::vector<uint32_t> inputs = value_inputs(op);
    const bool vector = is_vector_op(op);
    if (is_view_op(op) || is_copy_op(g, op) || (vector && vector_operands(g, *g.find_op(op.name)).transpose)) {
        // Bytes moved unchanged (a view, a copy, a transpose): of any datapath type (an int8
        // weight's per-channel quantization, an int32 bias), the output the input's.
        for (uint32_t t : inputs) {
            const Tensor &in = g.tensor(t), &out = g.tensor(op.outputs.at(0));
            if (in.dtype == DType::Int64) return not_float32(g, {t});
            const bool same_steps = in.dtype != DType::Int8 || (in.quant && out.quant && in.quant->scale == out.quant->scale &&
                                                               in.quant->zero_point == out.quant->zero_point);
            if (in.dtype != out.dtype || !same_steps)
                return "tensor '" + out.name + "' does not have the type and quantization of '" + in.name + "'";
        }
        return "";
    }
    if (vector) {
        for (uint32_t t : inputs)
            if (std::string p = vector_operand_problem(g.tensor(t)); !p.empty()) return p;
        for (uint32_t t : op.outputs)
            if (t != kNoTensor)
                if (std::string p = vector_operand_problem(g.tensor(t)); !p.empty()) return p;
        const VectorOperands v = vector_operands(g, *g.find_op(op.name));
        return not_float32(g, {v.weight, v.bias});  // read as float32 values
    }
    std::string problem;
    for (const std::vector<uint32_t>* list : {&inputs, &op.outputs})
        for (uint32_t t : *list)
            if (problem.empty()) problem = not_float32(g, {t});
    return problem;
}

void require_config_types(const Graph& g, const hw::Config& config) {
    for (const Op& op : g.ops()) {
        const bool fabric = is_matmul_family(op), vector = !fabric && is_vector_op(op);
        if (!fabric && !vector) continue;
        std::vector<uint32_t> tensors = fabric ? std::vector<uint32_t>{op.inputs.at(0)} : value_inputs(op);
        if (vector) tensors.insert(tensors.end(), op.outputs.begin(), op.outputs.end());
        for (uint32_t t : tensors) {
            if (t == kNoTensor) continue;
            try {
                const std::string type = to_string(g.tensor(t).dtype);
                fabric ? config.fabric_type(type) : config.vector_type(type);
            } catch (const std::exception& e) {
                throw CompileError("op '" + op.name + "' (" + op.kind + "): " + e.what());
            }
        }
    }
}

float requantization_multiplier(float a_scale, float b_scale, float c_scale) {
    return float(double(a_scale) * double(b_scale) / double(c_scale));
}

Graph add_requantization(const Graph& graph, Weights* weights) {
    Graph g = graph;
    std::vector<Op> ops;
    bool changed = false;
    for (const Op& op : graph.ops()) {
        if (!is_matmul_family(op) || g.tensor(op.inputs.at(0)).dtype != DType::Int8) {
            ops.push_back(op);
            continue;
        }
        const MatmulOperands mm = matmul_operands(g, op);
        if (mm.scale)
            throw CompileError("op '" + op.name + "' (" + op.kind + "): int8 operands with a drain scale '" +
                               g.tensor(*mm.scale).name + "' (the requantization multipliers take its place)");
        const Quantization& qa = *g.tensor(mm.a).quant;
        const Quantization& qb = *g.tensor(mm.b).quant;
        const Tensor& c = g.tensor(mm.c);
        const float c_scale = c.dtype == DType::Int8 ? c.quant->scale.at(0) : 1.0f;
        // One multiplier per output channel: a conv's [G, Cog] (its bias's shape), a matmul's [N].
        const uint64_t groups = mm.conv ? mm.conv->groups : 1, channels = groups * mm.n;
        std::vector<double> m(channels);
        for (uint64_t i = 0; i < channels; ++i)
            m[i] = double(requantization_multiplier(qa.scale.at(0), qb.scale.at(qb.per_channel() ? i % mm.n : 0), c_scale));
        const std::vector<uint64_t> shape = mm.conv ? std::vector<uint64_t>{groups, mm.n} : std::vector<uint64_t>{mm.n};
        Tensor t(derived_tensor_name(g, op.name, "requantize"), shape, DType::Float32, TensorRole::Constant);
        if (weights)
            (*weights)[t.name] = Weight{shape, std::vector<float>(m.begin(), m.end()), DType::Float32, {}};
        else
            t.value = std::move(m);
        const uint32_t scale = g.add_tensor(std::move(t));
        if (op.kind == "matmul" || op.kind == "conv_nhwc") {
            Op fused = op;
            if (fused.inputs.size() < 4) fused.inputs.resize(4, kNoTensor);
            fused.inputs[3] = scale;
            ops.push_back(std::move(fused));
        } else {  // a MatMul or Gemm: the fused matmul, which has the scale input
            Op fused = make_matmul(op.name, mm.a, mm.b, mm.c, mm.bias, Activation::None, scale);
            fused.fused_with = op.fused_with;
            ops.push_back(std::move(fused));
        }
        changed = true;
    }
    if (!changed) return graph;
    return used_part(g, std::move(ops), "requantize");
}

}  // namespace kpu::compiler
