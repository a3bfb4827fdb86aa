#include "compiler/ops/matmul.h"

#include <algorithm>
#include <sstream>

#include "compiler/compile_error.h"
#include "compiler/ops/op_schema.h"
#include "compiler/ops/quantize.h"

namespace kpu::compiler {

namespace {

/// C[M,N] = act(A[M,K] @ B[K,N] (+ bias[N])): the messages of the original matmul-only IR.
void infer_fused(InferContext& c) {
    auto operand = [&](size_t i) {  // "A 'x'": the role and the tensor (i == 3: the output C, 4: the scale)
        if (i == 3) return "C '" + c.output_tensor(0)->name + "'";
        if (i == 4) return "scale '" + c.input(3).name + "'";
        return std::string(i == 0 ? "A" : i == 1 ? "B" : "bias") + " '" + c.input(i).name + "'";
    };
    auto need_rank = [&](size_t i, const std::vector<uint64_t>& shape, size_t rank) {
        if (shape.size() != rank)
            c.fail(operand(i) + " has shape " + shape_string(shape) + ", expected rank " + std::to_string(rank));
    };
    need_rank(0, c.shape(0), 2);
    need_rank(1, c.shape(1), 2);
    const auto& a = c.shape(0);
    const auto& b = c.shape(1);
    if (a[1] != b[0])
        c.fail(operand(0) + " dimension 1 is " + std::to_string(a[1]) + " but " + operand(1) + " dimension 0 is " +
               std::to_string(b[0]));
    if (c.has_input(2)) {
        need_rank(2, c.shape(2), 1);
        if (c.shape(2)[0] != b[1])
            c.fail(operand(2) + " dimension 0 is " + std::to_string(c.shape(2)[0]) + " but " + operand(1) +
                   " dimension 1 is " + std::to_string(b[1]));
    }
    const DType type = product_dtype(c, {0, 1, {1}, 2});
    need_activation(c);
    // The drain's scale and residual stages compute in float32: after an int8 product, float32 ones.
    const bool integer = c.dtype(0) == DType::Int8;
    if (c.has_input(3)) {
        need_rank(4, c.shape(3), 1);
        if (c.shape(3)[0] != b[1])
            c.fail("scale '" + c.input(3).name + "' dimension 0 is " + std::to_string(c.shape(3)[0]) + " but " +
                   operand(1) + " dimension 1 is " + std::to_string(b[1]));
        if (integer) c.need_dtype(3, {DType::Float32});
        else c.same_dtype(0, 3);
    }
    if (c.has_input(4)) {
        const std::vector<uint64_t> want{a[0], b[1]};
        if (c.shape(4) != want)
            c.fail("residual '" + c.input(4).name + "' has shape " + shape_string(c.shape(4)) + " but C is " +
                   shape_string(want));
        if (integer) c.need_dtype(4, {DType::Float32});
        else c.same_dtype(0, 4);
    }
    if (const Tensor* out = c.output_tensor(0); out && out->has_shape()) {
        need_rank(3, out->shape, 2);
        if (out->shape[0] != a[0])
            c.fail(operand(3) + " dimension 0 is " + std::to_string(out->shape[0]) + " but " + operand(0) +
                   " dimension 0 is " + std::to_string(a[0]));
        if (out->shape[1] != b[1])
            c.fail(operand(3) + " dimension 1 is " + std::to_string(out->shape[1]) + " but " + operand(1) +
                   " dimension 1 is " + std::to_string(b[1]));
    }
    c.output(0, {a[0], b[1]}, type);
}

/// numpy matmul: rank-1 operands get a 1 prepended (A) or appended (B), removed after; the
/// batch dimensions broadcast.
void infer_matmul(InferContext& c) {
    c.need_rank(0, 1, kMaxRank);
    c.need_rank(1, 1, kMaxRank);
    const DType type = product_dtype(c, {0, 1, {c.rank(1) - 1}});
    std::vector<uint64_t> a = c.shape(0), b = c.shape(1);
    const bool a_vector = a.size() == 1, b_vector = b.size() == 1;
    if (a_vector) a.insert(a.begin(), 1);
    if (b_vector) b.push_back(1);
    const uint64_t k_a = a[a.size() - 1], k_b = b[b.size() - 2];
    if (k_a != k_b)
        c.fail(c.describe(0) + " dimension " + std::to_string(c.rank(0) - 1) + " is " + std::to_string(k_a) + " but " +
               c.describe(1) + " dimension " + std::to_string(b_vector ? 0 : c.rank(1) - 2) + " is " +
               std::to_string(k_b));
    std::vector<uint64_t> out = c.broadcast({a.begin(), a.end() - 2}, "batch dimensions of input 'A'",
                                            {b.begin(), b.end() - 2}, "batch dimensions of input 'B'");
    if (!a_vector) out.push_back(a[a.size() - 2]);
    if (!b_vector) out.push_back(b.back());
    c.output(0, out, type);
}

std::string matmul_lowering(const Graph& g, const Op& op) {
    // B [K] would be a column of C's rows: neither its view nor C's is a matrix of rows.
    if (g.tensor(op.inputs[1]).shape.size() == 1) return "B of rank 1 not yet supported";
    return "";
}

void infer_gemm(InferContext& c) {
    c.need_rank(0, 2, 2);
    c.need_rank(1, 2, 2);
    const bool ta = c.int_attr("transA") != 0, tb = c.int_attr("transB") != 0;
    const DType type = product_dtype(c, {0, 1, {tb ? size_t(0) : size_t(1)}, 2});
    const uint64_t m = c.shape(0)[ta ? 1 : 0], k = c.shape(0)[ta ? 0 : 1];
    const uint64_t kb = c.shape(1)[tb ? 1 : 0], n = c.shape(1)[tb ? 0 : 1];
    if (k != kb)
        c.fail(c.describe(0) + " has K = " + std::to_string(k) + " (transA = " + std::to_string(int(ta)) + ") but " +
               c.describe(1) + " has K = " + std::to_string(kb) + " (transB = " + std::to_string(int(tb)) + ")");
    if (c.has_input(2)) {
        const std::vector<uint64_t> mn{m, n};
        if (c.broadcast(c.shape(2), "input 'C'", mn, "A' @ B'") != mn)
            c.fail("input 'C' " + shape_string(c.shape(2)) + " does not broadcast to " + shape_string(mn));
    }
    c.output(0, {m, n}, type);
}

/// A float attribute's value (a JSON integer reads as int64).
double number(const AttrValue& v) {
    return std::holds_alternative<int64_t>(v) ? double(std::get<int64_t>(v)) : std::get<double>(v);
}

std::string gemm_lowering(const Graph& g, const Op& op) {
    // alpha and beta scale the sum and the bias row in the drain (MatmulOperands).
    const bool has_c = op.inputs.size() > 2 && op.inputs[2] != kNoTensor;
    if (has_c) {
        const Tensor& bias = g.tensor(op.inputs[2]);
        const uint64_t n = g.tensor(op.outputs[0]).shape[1];
        if (bias.shape != std::vector<uint64_t>{n})
            return "C of shape " + shape_string(bias.shape) + " not yet supported (only [N] = [" + std::to_string(n) +
                   "])";
    }
    return "";
}

/// A MatMul's batch: C's batch dims and each operand's matrix steps along them. B with one
/// matrix (a shared weight) folds A's batch into m: one tall matmul over A's 2D view.
void batch_operands(const Graph& graph, MatmulOperands& out) {
    std::vector<uint64_t> a = graph.tensor(out.a).shape;  // a rank-1 A is [1, K]
    const std::vector<uint64_t>& b = graph.tensor(out.b).shape;
    if (a.size() == 1) a.insert(a.begin(), 1);
    const std::vector<uint64_t> a_batch(a.begin(), a.end() - 2), b_batch(b.begin(), b.end() - 2);
    uint64_t b_matrices = 1;
    for (uint64_t d : b_batch) b_matrices *= d;
    if (b_matrices == 1) {
        out.m = graph.tensor(out.a).elements() / out.k;
        return;
    }
    const size_t rank = std::max(a_batch.size(), b_batch.size());
    out.batch_rank = uint32_t(rank);
    // Right-aligned; an operand's step along a dim is its matrices per index there.
    uint64_t a_stride = 1, b_stride = 1;
    for (size_t d = rank; d-- > 0;) {
        const size_t from_right = rank - 1 - d;
        const uint64_t x = from_right < a_batch.size() ? a_batch[a_batch.size() - 1 - from_right] : 1;
        const uint64_t y = from_right < b_batch.size() ? b_batch[b_batch.size() - 1 - from_right] : 1;
        out.batch_shape[d] = std::max(x, y);
        out.a_step[d] = x == 1 ? 0 : a_stride;
        out.b_step[d] = y == 1 ? 0 : b_stride;
        a_stride *= x;
        b_stride *= y;
        out.batch *= out.batch_shape[d];
    }
}

}  // namespace

void need_activation(InferContext& c) {
    Activation activation;
    if (!parse_activation(c.string_attr("activation"), activation))
        c.fail("attribute 'activation' is '" + c.string_attr("activation") + "', expected " +
               hw::names_in(hw::kActivationNames));
}

Activation activation_of(const Op& op) {
    Activation out = Activation::None;  // validated by check(); read directly: the tiler and binder ask often
    if (const auto it = op.attributes.find("activation"); it != op.attributes.end())
        parse_activation(std::get<std::string>(it->second), out);
    return out;
}

namespace {

/// The element types of `out`'s operands, from their tensors.
void add_element_types(const Graph& graph, MatmulOperands& out) {
    const auto type = [&](std::optional<uint32_t> t) { return t ? graph.tensor(*t).dtype : DType::Float32; };
    out.a_type = type(out.a), out.b_type = type(out.b), out.c_type = type(out.c);
    out.bias_type = type(out.bias), out.scale_type = type(out.scale), out.residual_type = type(out.residual);
}

MatmulOperands plain_matmul_operands(const Graph& graph, const Op& op) {
    const bool fused = op.kind == "matmul";
    if (!fused && op.kind != "MatMul" && op.kind != "Gemm")
        throw CompileError("op '" + op.name + "' (" + op.kind + ") is not a matmul");
    MatmulOperands out;
    out.a = op.inputs.at(0), out.b = op.inputs.at(1), out.c = op.outputs.at(0);
    if (op.kind != "MatMul" && op.inputs.size() > 2 && op.inputs[2] != kNoTensor) out.bias = op.inputs[2];
    if (fused) out.activation = activation_of(op);
    if (fused) epilogue_operands(op, out);
    const std::vector<uint64_t>& a = graph.tensor(out.a).shape;
    const std::vector<uint64_t>& b = graph.tensor(out.b).shape;
    if (op.kind == "MatMul") {
        out.k = a.back();
        out.m = a.size() == 1 ? 1 : a[a.size() - 2];
        out.n = b.back();
        batch_operands(graph, out);
        return out;
    }
    if (op.kind == "Gemm") {
        const OpSchema& schema = schema_of(op);
        const auto flag = [&](const char* name) { return std::get<int64_t>(*attribute_of(op, schema, name)) != 0; };
        out.trans_a = flag("transA"), out.trans_b = flag("transB");
        out.alpha = float(number(*attribute_of(op, schema, "alpha")));
        out.beta = float(number(*attribute_of(op, schema, "beta")));
    }
    out.m = a.at(out.trans_a ? 1 : 0);
    out.k = a.at(out.trans_a ? 0 : 1);
    out.n = b.at(out.trans_b ? 0 : 1);
    return out;
}

}  // namespace

MatmulOperands matmul_operands(const Graph& graph, const Op& op) {
    MatmulOperands out = op.kind == "conv_nhwc" ? conv_operands(graph, op) : plain_matmul_operands(graph, op);
    add_element_types(graph, out);
    return out;
}

MatmulOperands matmul_operands(const Graph& graph, uint32_t op) { return matmul_operands(graph, graph.ops().at(op)); }

void epilogue_operands(const Op& op, MatmulOperands& out) {
    if (op.inputs.size() > 3 && op.inputs[3] != kNoTensor) out.scale = op.inputs[3];
    if (op.inputs.size() > 4 && op.inputs[4] != kNoTensor) out.residual = op.inputs[4];
}

Op make_matmul(std::string name, uint32_t a, uint32_t b, uint32_t c, std::optional<uint32_t> bias,
               Activation activation, std::optional<uint32_t> scale, std::optional<uint32_t> residual) {
    Op op;
    op.name = std::move(name);
    op.kind = "matmul";
    op.inputs = {a, b};
    // Absent operands before a present one are kNoTensor: a plain matmul keeps its two or three.
    if (bias || scale || residual) op.inputs.push_back(bias ? *bias : kNoTensor);
    if (scale || residual) op.inputs.push_back(scale ? *scale : kNoTensor);
    if (residual) op.inputs.push_back(*residual);
    op.outputs = {c};
    if (activation != Activation::None) op.attributes["activation"] = std::string(to_string(activation));
    return op;
}

void register_matmul(OpRegistry& registry) {
    registry.add({"matmul", {"A", "B", "bias", "scale", "residual"}, 2, false, {"C"}, 1, false,
                  {{"activation", AttrType::String, std::string("none")}}, infer_fused,
                  [](const Graph&, const Op&) { return std::string(); }, {}});
    registry.add({"MatMul", {"A", "B"}, 2, false, {"Y"}, 1, false, {}, infer_matmul, matmul_lowering, {}});
    registry.add({"Gemm", {"A", "B", "C"}, 2, false, {"Y"}, 1, false,
                  {{"alpha", AttrType::Float, 1.0},
                   {"beta", AttrType::Float, 1.0},
                   {"transA", AttrType::Int, int64_t(0)},
                   {"transB", AttrType::Int, int64_t(0)}},
                  infer_gemm, gemm_lowering, {}});
}

}  // namespace kpu::compiler
