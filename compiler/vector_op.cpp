#include "compiler/vector_op.h"

#include <map>

#include "compiler/compile_error.h"
#include "compiler/copy_op.h"
#include "compiler/ffn_fusion.h"
#include "compiler/flash_attention.h"
#include "compiler/ops/matmul.h"
#include "compiler/ops/op_schema.h"
#include "compiler/ops/window.h"
#include "compiler/passes/fuse_rows.h"

namespace kpu::compiler {
namespace {

using hw::VectorFunction;

/// ONNX kinds that map one to one onto a vector function.
const std::map<std::string, VectorFunction>& functions() {
    static const std::map<std::string, VectorFunction> map = {
        {"Relu", VectorFunction::Relu},         {"LeakyRelu", VectorFunction::LeakyRelu},
        {"Sigmoid", VectorFunction::Sigmoid},   {"Silu", VectorFunction::Silu},
        {"Tanh", VectorFunction::Tanh},         {"Exp", VectorFunction::Exp},
        {"Erf", VectorFunction::Erf},           {"Sqrt", VectorFunction::Sqrt},
        {"Reciprocal", VectorFunction::Reciprocal}, {"Neg", VectorFunction::Neg},
        {"Abs", VectorFunction::Abs},           {"HardSigmoid", VectorFunction::HardSigmoid},
        {"HardSwish", VectorFunction::HardSwish}, {"Gelu", VectorFunction::Gelu},
        {"Add", VectorFunction::Add},           {"Sub", VectorFunction::Sub},
        {"Mul", VectorFunction::Mul},           {"Div", VectorFunction::Div},
        {"Max", VectorFunction::Max},           {"Min", VectorFunction::Min},
        {"Pow", VectorFunction::Pow},           {"Softmax", VectorFunction::Softmax},
        {"LayerNormalization", VectorFunction::LayerNorm}, {"RMSNormalization", VectorFunction::RmsNorm},
        {"ReduceSum", VectorFunction::ReduceSum}, {"ReduceMean", VectorFunction::ReduceMean},
        {"ReduceMax", VectorFunction::ReduceMax}, {"Clip", VectorFunction::Clip},
        {"masked_softmax", VectorFunction::Softmax},
        // The element-type conversions: a copy read through x's encoding, written through y's.
        {"QuantizeLinear", VectorFunction::Copy}, {"DequantizeLinear", VectorFunction::Copy},
        {"Cast", VectorFunction::Copy},
    };
    return map;
}

bool present(const Op& op, size_t i) { return i < op.inputs.size() && op.inputs[i] != kNoTensor; }

/// Whether reduction `op` reduces over its input's last axis only (ONNX: the axes input,
/// none meaning every axis unless noop_with_empty_axes); else false with `problem` set. With
/// no axis reduced the op is the identity: `c` becomes a copy.
template <typename Attr>
bool reduces_last_axis(const Graph& g, const Op& op, const Attr& attr, hw::VectorCommand& c, std::string& problem) {
    const int64_t rank = int64_t(g.tensor(op.inputs.at(0)).shape.size());
    std::vector<int64_t> axes;
    if (present(op, 1)) axes = std::get<std::vector<int64_t>>(g.tensor(op.inputs[1]).value);  // inference needs it
    if (axes.empty() && std::get<int64_t>(attr("noop_with_empty_axes")) != 0) {
        c.function = VectorFunction::Copy;
        return true;
    }
    if (axes.empty() ? rank <= 1 : axes.size() == 1 && (axes[0] == -1 || axes[0] == rank - 1)) return true;
    std::string list;
    for (int64_t a : axes) list += (list.empty() ? "" : ", ") + std::to_string(a);
    problem = (axes.empty() ? std::string("axes omitted (every axis)") : "axes = [" + list + "]") +
              " not yet supported (only the last axis (" + std::to_string(rank - 1) + "))";
    return false;
}

/// Transpose of the last two axes: the input's 2D view, a matrix every matrix_rows rows.
VectorOperands transpose_operands(const Graph& g, const Op& op, std::string& problem) {
    VectorOperands out;
    out.transpose = true;
    out.command.function = VectorFunction::Copy;  // unused: no VECTOR op
    out.a = op.inputs.at(0);
    out.y = op.outputs.at(0);
    const std::vector<uint64_t>& shape = g.tensor(out.a).shape;
    const std::vector<int64_t> perm = transpose_perm(g, op);
    const size_t rank = perm.size();
    if (!swaps_last_two_axes(perm)) {  // the other perms are copies (copy_op.h)
        problem = "perm = " + attr_string(perm) + " not yet supported (only swapping the last two axes)";
        return out;
    }
    out.cols = shape.back();
    out.matrix_rows = shape[rank - 2];
    out.rows = out.cols ? g.tensor(out.a).elements() / out.cols : 0;
    if (out.rows == 0 || out.cols == 0) problem = "an empty output " + shape_string(g.tensor(out.y).shape) + " not yet supported";
    return out;
}

/// masked_softmax: scale, causal, and how the mask's rows map onto a's (VectorOperands::period).
void masked_softmax_operands(const Graph& g, const Op& op, VectorOperands& out, std::string& problem) {
    const OpSchema& schema = schema_of(op);
    hw::VectorCommand& c = out.command;
    c.scale = float(attr_number(*attribute_of(op, schema, "scale")));
    c.causal = std::get<int64_t>(*attribute_of(op, schema, "is_causal")) != 0;
    const std::vector<uint64_t>& x = g.tensor(out.a).shape;
    const size_t rank = x.size();
    const uint64_t sq = x[rank - 2];
    out.matrix_dims.assign(x.begin(), x.end() - 2);
    if (!present(op, 1)) {
        if (c.causal) out.period = sq;
        return;
    }
    out.b = op.inputs[1];
    c.has_b = true;
    const Tensor& mask = g.tensor(*out.b);
    std::vector<uint64_t> m(rank - std::min(rank, mask.shape.size()), 1);  // aligned to x
    m.insert(m.end(), mask.shape.begin(), mask.shape.end());
    if (mask.elements() == 1) {  // loaded once per task
        out.b_broadcast = hw::Broadcast::Scalar;
        if (c.causal) out.period = sq;
        return;
    }
    if (m.back() != out.cols) {
        problem = "input 'mask' of shape " + shape_string(mask.shape) + " broadcast along the last axis (" +
                  std::to_string(out.cols) + ") not yet supported";
        return;
    }
    if (m == x && !c.causal) return;  // the same shape: row tile by row tile
    out.period = sq;
    out.mask_per_query = m[rank - 2] != 1;
    out.b_broadcast = out.mask_per_query ? hw::Broadcast::None : hw::Broadcast::Row;
    // The mask's 2D view has a row per index of its dims before the last; step sizes in rows.
    uint64_t stride = out.mask_per_query ? sq : 1;
    out.mask_strides.assign(rank - 2, 0);
    for (size_t d = rank - 2; d-- > 0;) {
        out.mask_strides[d] = m[d] == 1 ? 0 : stride;
        stride *= m[d];
    }
}

/// A window op: a row per plane of X [N, C, H, W], depthwise_conv's W and B as its weight and bias.
VectorOperands window_operands(const Graph& g, const Op& op, std::string& problem) {
    VectorOperands out;
    hw::VectorCommand& c = out.command;
    c.function = window_function(op.kind);
    c.window = window_of(g, op, problem);
    out.a = op.inputs.at(0);
    out.y = op.outputs.at(0);
    if (!problem.empty()) return out;
    const std::vector<uint64_t>& x = g.tensor(out.a).shape;
    out.rows = x[0] * x[1];
    out.cols = x[2] * x[3];
    if (c.function != VectorFunction::DepthwiseConv) return out;
    out.weight = op.inputs.at(1);
    out.weight_rows = x[1] * c.window.kernel_h;
    out.weight_cols = c.window.kernel_w;
    c.has_weight = true;
    if (present(op, 2)) {
        out.bias = op.inputs[2];
        out.bias_cols = x[1];
        c.has_bias = true;
    }
    return out;
}

VectorOperands operands(const Graph& g, const Op& op, std::string& problem);

/// A vector_chain: its steps' operands, each step's ONNX op with the previous result standing
/// in as the chain's output tensor (the same shape), which must be the step's a.
VectorOperands chain_operands(const Graph& g, const Op& op, std::string& problem) {
    VectorOperands out;
    const std::vector<ChainStep> steps = chain_steps(op, problem);
    if (!problem.empty()) return out;
    out.y = op.outputs.at(0);
    for (size_t s = 0; s < steps.size(); ++s) {
        Op step = steps[s].op;
        if (steps[s].chained) step.inputs[*steps[s].chained] = out.y;
        VectorOperands v = operands(g, step, problem);
        const std::string where = "step " + std::to_string(s) + " (" + step.kind + ")";
        if (!problem.empty()) {
            problem = where + ": " + problem;
            return out;
        }
        const bool stream = v.b && (v.b_broadcast == hw::Broadcast::None || v.b_broadcast == hw::Broadcast::Row ||
                                    v.b_broadcast == hw::Broadcast::Scalar);
        if ((s > 0) != (v.a == out.y) || (v.b && (*v.b == out.y || !stream)) || v.period || v.reduces() ||
            v.windowed() || v.transpose) {
            problem = where + " is not a step over the chain's rows (its first operand the previous result, any "
                              "other a tensor of the same shape, a row or a scalar)";
            return out;
        }
        if (s == 0) {
            out.a = v.a, out.rows = v.rows, out.cols = v.cols;
            if (v.a != op.inputs.at(0)) {
                problem = where + "'s first operand is not input 0";
                return out;
            }
        }
        out.command = v.command;
        out.chain.push_back(std::move(v));
    }
    return out;
}

/// The operands, or why there are none (`problem` set).
VectorOperands operands(const Graph& g, const Op& op, std::string& problem) {
    VectorOperands out;
    if (op.kind == "vector_chain") return chain_operands(g, op, problem);
    if (op.kind == "Transpose") return transpose_operands(g, op, problem);
    if (is_window_kind(op.kind)) return window_operands(g, op, problem);
    const auto it = functions().find(op.kind);
    if (it == functions().end()) {
        problem = "not yet lowered";
        return out;
    }
    const OpSchema& schema = schema_of(op);
    const auto attr = [&](const char* name) { return *attribute_of(op, schema, name); };
    hw::VectorCommand& c = out.command;
    c.function = it->second;
    out.a = op.inputs.at(0);
    out.y = op.outputs.at(0);
    const bool reduction = hw::traits_of(c.function).shape == hw::VectorShape::Reduction;
    if (reduction && !reduces_last_axis(g, op, attr, c, problem)) return out;
    // A reduction's rows x cols are its input's; y holds one value per row.
    const Tensor& viewed = g.tensor(reduction ? out.a : out.y);
    const std::vector<uint64_t>& shape = viewed.shape;
    out.cols = shape.empty() ? 1 : shape.back();
    out.rows = out.cols ? viewed.elements() / out.cols : 0;
    if (out.rows == 0 || out.cols == 0) {
        problem = "an empty output " + shape_string(shape) + " not yet supported";
        return out;
    }
    const std::string last = "the last axis (" + std::to_string(shape.empty() ? 0 : shape.size() - 1) + ")";
    // Row-wise functions work along the last axis only (for now).
    const auto last_axis_only = [&]() -> bool {
        const int64_t axis = std::get<int64_t>(attr("axis"));
        const int64_t rank = int64_t(g.tensor(out.a).shape.size());
        if (axis == -1 || axis == rank - 1) return true;
        problem = "axis = " + std::to_string(axis) + " not yet supported (only " + last + ")";
        return false;
    };
    switch (c.function) {
        case VectorFunction::LeakyRelu: c.alpha = float(attr_number(attr("alpha"))); break;
        case VectorFunction::HardSigmoid:
            c.alpha = float(attr_number(attr("alpha")));
            c.beta = float(attr_number(attr("beta")));
            break;
        case VectorFunction::Gelu:
            if (std::get<std::string>(attr("approximate")) == "tanh") c.function = VectorFunction::GeluTanh;
            break;
        case VectorFunction::Softmax:
            if (op.kind == "masked_softmax") {
                masked_softmax_operands(g, op, out, problem);
                if (!problem.empty()) return out;
            } else if (!last_axis_only()) {
                return out;
            }
            break;
        case VectorFunction::LayerNorm:
        case VectorFunction::RmsNorm: {
            if (!last_axis_only()) return out;
            for (size_t i = 1; i < op.outputs.size(); ++i)
                if (op.outputs[i] != kNoTensor) {
                    problem = "output '" + schema.output_name(i) + "' not yet supported";
                    return out;
                }
            c.epsilon = float(attr_number(attr("epsilon")));
            for (size_t i : {size_t(1), size_t(2)}) {
                if (!present(op, i)) continue;
                const Tensor& v = g.tensor(op.inputs[i]);
                if (v.elements() != out.cols) {
                    problem = "input '" + schema.input_name(i) + "' of shape " + shape_string(v.shape) +
                              " not yet supported (only [" + std::to_string(out.cols) + "], over " + last + ")";
                    return out;
                }
                (i == 1 ? out.weight : out.bias) = op.inputs[i];
            }
            c.has_weight = out.weight.has_value();
            c.has_bias = out.bias.has_value();
            out.weight_cols = out.bias_cols = out.cols;
            break;
        }
        case VectorFunction::Clip:
            for (size_t i : {size_t(1), size_t(2)}) {
                if (!present(op, i)) continue;
                const Tensor& bound = g.tensor(op.inputs[i]);
                const auto* values = std::get_if<std::vector<double>>(&bound.value);
                if (!values || values->size() != 1) {
                    problem = "input '" + schema.input_name(i) + "' ('" + bound.name +
                              "') without an inline value not yet supported (only a constant bound)";
                    return out;
                }
                (i == 1 ? c.clip_min : c.clip_max) = float(values->front());
            }
            break;
        default: break;
    }
    // A commutative op whose A broadcasts and B does not (torch exports Add(bias, x)) takes
    // them the other way round.
    const bool commutative = c.function == VectorFunction::Add || c.function == VectorFunction::Mul ||
                             c.function == VectorFunction::Max || c.function == VectorFunction::Min;
    const bool swapped = commutative && g.tensor(out.a).shape != shape && g.tensor(op.inputs.at(1)).shape == shape;
    if (swapped) out.a = op.inputs.at(1);
    if (g.tensor(out.a).shape != shape) {
        problem = "input '" + schema.input_name(0) + "' of shape " + shape_string(g.tensor(out.a).shape) +
                  " broadcast to " + shape_string(shape) + " not yet supported";
        return out;
    }
    if (hw::traits_of(c.function).needs_b) {
        out.b = op.inputs.at(swapped ? 0 : 1);
        c.has_b = true;
        const std::vector<uint64_t>& bs = g.tensor(*out.b).shape;
        std::vector<uint64_t> column = shape;
        if (!column.empty()) column.back() = 1;
        size_t lead = 0;  // leading 1s of b
        while (lead < bs.size() && bs[lead] == 1) ++lead;
        if (bs == shape)
            out.b_broadcast = hw::Broadcast::None;
        else if (g.tensor(*out.b).elements() == 1)
            out.b_broadcast = hw::Broadcast::Scalar;
        else if (bs.size() - lead == 1 && bs.back() == out.cols)
            out.b_broadcast = hw::Broadcast::Row;
        else if (bs == column)
            out.b_broadcast = hw::Broadcast::Column;
        else
            problem = "input '" + schema.input_name(swapped ? 0 : 1) + "' of shape " + shape_string(bs) + " broadcast to " +
                      shape_string(shape) + " not yet supported (only the same shape, a scalar, a row [" +
                      std::to_string(out.cols) + "] or a column " + shape_string(column) + ")";
    }
    return out;
}

}  // namespace

uint64_t VectorOperands::mask_row(uint64_t row) const {
    uint64_t matrix = row / period, at = mask_per_query ? row % period : 0;
    for (size_t d = matrix_dims.size(); d-- > 0;) {
        at += matrix % matrix_dims[d] * mask_strides[d];
        matrix /= matrix_dims[d];
    }
    return at;
}

uint64_t piece_count(const VectorOperands& op, uint64_t tm, uint64_t first, uint64_t end) {
    if (!op.period) return (end - first + tm - 1) / tm;
    uint64_t pieces = 0;
    for (uint64_t at = first; at < end; at += tm)
        for_each_piece(op, at, std::min(tm, end - at), [&](uint64_t, uint64_t) { ++pieces; });
    return pieces;
}

uint64_t b_elements(const VectorOperands& op, uint64_t tm, uint64_t first, uint64_t end) {
    if (!op.b) return 0;
    if (!op.b_per_row()) return op.b_width();
    if (!op.period || op.mask_per_query) return (end - first) * op.b_width();
    return piece_count(op, tm, first, end) * op.cols;
}

bool is_elementwise_op(const Op& op) {
    const auto it = functions().find(op.kind);
    return it != functions().end() && hw::traits_of(it->second).shape == hw::VectorShape::Elementwise;
}

bool is_vector_op(const Op& op) {
    return functions().count(op.kind) != 0 || op.kind == "Transpose" || is_window_kind(op.kind) || is_chain_op(op);
}

ChainLayout chain_layout(const VectorOperands& op) {
    ChainLayout l;
    const auto vector_slot = [&](uint32_t tensor, uint64_t width) {
        for (size_t i = 0; i < l.vectors.size(); ++i)
            if (l.vectors[i] == tensor) return l.vector_at[i];
        l.vectors.push_back(tensor);
        l.vector_at.push_back(l.vector_elements);
        l.vector_width.push_back(width);
        l.vector_elements += width;
        return l.vector_at.back();
    };
    for (const VectorOperands& s : op.chain) {
        uint64_t b = 0;
        if (s.b && s.b_per_row()) {
            const auto it = std::find(l.row_inputs.begin(), l.row_inputs.end(), *s.b);
            b = uint64_t(it - l.row_inputs.begin());
            if (it == l.row_inputs.end()) l.row_inputs.push_back(*s.b);
        } else if (s.b) {
            b = vector_slot(*s.b, s.b_width());
        }
        l.b_at.push_back(b);
        l.weight_at.push_back(s.weight ? vector_slot(*s.weight, s.weight_elements()) : 0);
        l.bias_at.push_back(s.bias ? vector_slot(*s.bias, s.bias_elements()) : 0);
    }
    return l;
}

std::string vector_lowering_problem(const Graph& graph, const Op& op) { return problem_of(graph, op, operands); }

VectorOperands vector_operands(const Graph& graph, uint32_t index) { return operands_of(graph, index, operands); }

KernelDims kernel_dims(const Graph& graph, uint32_t op) {
    if (is_flash_op(graph.ops().at(op))) {  // a grid of query blocks by key blocks per (batch, head) matrix
        const FlashOperands f = flash_operands(graph, op);
        return {f.sq, f.skv, f.e, f.matrices()};
    }
    if (is_copy_op(graph, graph.ops().at(op))) {  // a grid row per copy, its rows in chunks of tn
        const CopyOperands c = copy_operands(graph, op);
        return {c.copies.size(), c.max_rows, c.max_cols};
    }
    if (is_vector_op(graph.ops().at(op))) {
        const VectorOperands v = vector_operands(graph, op);
        return {v.rows, v.cols, 1};
    }
    if (is_ffn_op(graph.ops().at(op))) {  // a row block per task; tk chunks both reductions
        const FfnOperands f = ffn_operands(graph, op);
        return {f.m, f.n, std::max(f.k, f.hidden)};
    }
    const MatmulOperands mm = matmul_operands(graph, op);
    return {mm.m, mm.n, mm.k, mm.batch};
}

}  // namespace kpu::compiler
