#include "compiler/passes/fuse_epilogue.h"

#include <optional>

#include "compiler/ops/matmul.h"
#include "compiler/ops/op_schema.h"

namespace kpu::compiler {
namespace {

/// The drain activation computing op `op` (an ONNX activation of one input), if any.
std::optional<Activation> drain_activation(const Op& op) {
    if (op.kind == "Relu") return Activation::Relu;
    if (op.kind == "Sigmoid") return Activation::Sigmoid;
    if (op.kind == "Silu") return Activation::Silu;
    if (op.kind == "Tanh") return Activation::Tanh;
    if (op.kind == "Gelu") {
        const AttrValue mode = *attribute_of(op, schema_of(op), "approximate");
        return std::get<std::string>(mode) == "tanh" ? Activation::Gelu : Activation::GeluErf;
    }
    return std::nullopt;
}

/// `op` as the fused form computing the same bits, if it has one.
std::optional<MatmulOperands> fusable_matmul(const Graph& g, const Op& op) {
    if (op.kind != "matmul" && op.kind != "MatMul" && op.kind != "Gemm") return std::nullopt;
    const MatmulOperands mm = matmul_operands(g, op);
    if (mm.trans_a || mm.trans_b || mm.alpha != 1.0f || mm.beta != 1.0f) return std::nullopt;
    for (uint32_t t : {mm.a, mm.b, mm.c})
        if (g.tensor(t).shape.size() != 2 || g.tensor(t).dtype != DType::Float32) return std::nullopt;
    return mm;
}

class Fuser {
public:
    explicit Fuser(Graph graph) : g_(std::move(graph)) {}

    /// Fuses one producer with its reader; false when none is left.
    bool step() {
        std::vector<uint32_t> readers(g_.tensors().size(), 0), reader(g_.tensors().size(), kNoTensor);
        for (uint32_t i = 0; i < g_.ops().size(); ++i)
            for (uint32_t t : g_.ops()[i].inputs)
                if (t != kNoTensor) ++readers[t], reader[t] = i;
        for (uint32_t i = 0; i < g_.ops().size(); ++i) {
            const Op& op = g_.ops()[i];
            if (op.kind == "conv_nhwc" && conv_activation(i, readers, reader)) return true;
            const std::optional<MatmulOperands> mm = fusable_matmul(g_, op);
            if (!mm || readers[mm->c] != 1 || g_.tensor(mm->c).role == TensorRole::Output) continue;
            const Op& next = g_.ops()[reader[mm->c]];
            if (next.outputs.size() != 1 || g_.tensor(next.outputs[0]).shape != g_.tensor(mm->c).shape) continue;
            std::optional<uint32_t> bias = mm->bias;
            Activation activation = mm->activation;
            if (mm->activation != Activation::None) continue;  // nothing comes after the activation
            if (const std::optional<Activation> a = drain_activation(next)) {
                activation = *a;
            } else if (next.kind == "Add" && !bias) {
                const uint32_t other = next.inputs[0] == mm->c ? next.inputs[1] : next.inputs[0];
                if (other == mm->c || g_.tensor(other).shape != std::vector<uint64_t>{mm->n} ||
                    g_.tensor(other).dtype != DType::Float32)
                    continue;
                bias = other;
            } else {
                continue;
            }
            Op fused = make_matmul(op.name, mm->a, mm->b, next.outputs[0], bias, activation);
            fused.fused_with = op.fused_with;
            fused.fused_with.insert(fused.fused_with.end(), next.fused_with.begin(), next.fused_with.end());
            fused.fused_with.push_back(next.name);
            std::vector<Op> ops;
            for (uint32_t j = 0; j < g_.ops().size(); ++j)
                if (j == i) ops.push_back(fused);
                else if (j != reader[mm->c]) ops.push_back(g_.ops()[j]);
            g_ = used_part(g_, std::move(ops), "fuse-epilogue");
            return true;
        }
        return false;
    }

    const Graph& graph() const { return g_; }

private:
    /// Conv op i (no activation yet) whose result, through views read by nothing else, only an
    /// activation reads: that activation in the conv's drain, its readers reading the view.
    bool conv_activation(uint32_t i, const std::vector<uint32_t>& readers, const std::vector<uint32_t>& reader) {
        const Op& conv = g_.ops()[i];
        if (activation_of(conv) != Activation::None) return false;
        uint32_t t = conv.outputs[0];
        while (readers[t] == 1 && g_.tensor(t).role != TensorRole::Output && is_view_op(g_.ops()[reader[t]]))
            t = g_.ops()[reader[t]].outputs[0];
        if (readers[t] != 1 || g_.tensor(t).role == TensorRole::Output) return false;
        const Op& next = g_.ops()[reader[t]];
        const std::optional<Activation> a = drain_activation(next);
        const uint32_t y = next.outputs[0];
        if (!a || g_.tensor(y).role == TensorRole::Output) return false;
        Op fused = conv;
        fused.attributes["activation"] = std::string(to_string(*a));
        fused.fused_with.insert(fused.fused_with.end(), next.fused_with.begin(), next.fused_with.end());
        fused.fused_with.push_back(next.name);
        std::vector<Op> ops;
        for (uint32_t j = 0; j < g_.ops().size(); ++j) {
            if (j == reader[t]) continue;
            Op o = j == i ? fused : g_.ops()[j];
            for (uint32_t& in : o.inputs)
                if (in == y) in = t;  // the activation's readers read what it read
            ops.push_back(std::move(o));
        }
        g_ = used_part(g_, std::move(ops), "fuse-epilogue");
        return true;
    }

    Graph g_;
};

}  // namespace

Graph fuse_epilogue(const Graph& graph) {
    Fuser f(graph);
    while (f.step()) {
    }
    return f.graph();
}

}  // namespace kpu::compiler
