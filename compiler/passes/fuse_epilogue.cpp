#include "compiler/passes/fuse_epilogue.h"

#include <algorithm>
#include <optional>

#include "compiler/ops/expansion.h"
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

/// `op` as the fused form computing the same bits, if it has one (of any element types:
/// step() fuses only a same-bits Relu into one that is not float32).
std::optional<MatmulOperands> fusable_matmul(const Graph& g, const Op& op) {
    if (op.kind != "matmul" && op.kind != "MatMul" && op.kind != "Gemm") return std::nullopt;
    const MatmulOperands mm = matmul_operands(g, op);
    if (mm.trans_a || mm.trans_b || mm.alpha != 1.0f || mm.beta != 1.0f) return std::nullopt;
    for (uint32_t t : {mm.a, mm.b, mm.c})
        if (g.tensor(t).shape.size() != 2) return std::nullopt;
    return mm;
}

/// The drain's epilogue stages in their fixed order: an op absorbs only a later stage than
/// the last one it has, so the fused result is the unfused ops' in their order.
enum class Stage : uint8_t { None, Bias, Scale, Residual, Activation };

Stage last_stage(const MatmulOperands& mm) {
    if (mm.activation != Activation::None) return Stage::Activation;
    if (mm.residual) return Stage::Residual;
    if (mm.scale) return Stage::Scale;
    return mm.bias ? Stage::Bias : Stage::None;
}

/// What a reader of a producer's result `x` adds to the drain, if it is a stage of it.
struct Absorbed {
    Stage stage = Stage::None;
    uint32_t operand = kNoTensor;  ///< Bias, Scale, Residual: the other input
    Activation activation = Activation::None;
};

/// `next` (reading `x`, the producer's result seen as `shape`) as a drain stage after `after`:
/// an activation; an Add of a row vector [n] (the bias, first); a Mul by a per-channel vector
/// (a shape of ones then n); an Add of a tensor of `shape` (the residual). `bias_ok`: an Add
/// of a row vector may become the bias.
std::optional<Absorbed> absorb(const Graph& g, const Op& next, uint32_t x, const std::vector<uint64_t>& shape,
                               uint64_t n, Stage after, bool bias_ok) {
    if (next.outputs.size() != 1 || g.tensor(next.outputs[0]).shape != shape) return std::nullopt;
    if (const std::optional<Activation> a = drain_activation(next))
        return after < Stage::Activation ? std::optional<Absorbed>(Absorbed{Stage::Activation, kNoTensor, *a})
                                         : std::nullopt;
    if ((next.kind != "Add" && next.kind != "Mul") || next.inputs.size() != 2) return std::nullopt;
    const uint32_t other = next.inputs[0] == x ? next.inputs[1] : next.inputs[0];
    if (other == x || other == kNoTensor || g.tensor(other).dtype != DType::Float32) return std::nullopt;
    const std::vector<uint64_t>& s = g.tensor(other).shape;
    bool per_channel = !s.empty() && s.size() <= shape.size() && s.back() == n;
    for (size_t d = 0; d + 1 < s.size(); ++d) per_channel = per_channel && s[d] == 1;
    if (next.kind == "Mul")
        return per_channel && after < Stage::Scale ? std::optional<Absorbed>(Absorbed{Stage::Scale, other, {}})
                                                   : std::nullopt;
    if (bias_ok && after == Stage::None && s == std::vector<uint64_t>{n}) return Absorbed{Stage::Bias, other, {}};
    if (s == shape && after < Stage::Residual) return Absorbed{Stage::Residual, other, {}};
    return std::nullopt;
}

/// Whether every tensor `op` reads and writes is float32 (the scale and residual stages, and
/// activations other than Relu, fuse into those kernels only).
bool float32_only(const Graph& g, const Op& op) {
    for (const std::vector<uint32_t>* list : {&op.inputs, &op.outputs})
        for (uint32_t t : *list)
            if (t != kNoTensor && g.tensor(t).dtype != DType::Float32) return false;
    return true;
}

/// Whether stage `s`, reading `x` and writing `y`, is a Relu that gives the same bits fused
/// into a kernel whose C is not float32: a Relu commutes with the rounding to bfloat16 or
/// float16, and with an int8 store when x and y are the same type with the same quantization
/// (max(q, zero point) either way). The requantization multiplier already is the int8
/// kernel's scale stage, so no other scale may fuse.
bool same_bits_relu(const Graph& g, const Absorbed& s, uint32_t x, uint32_t y) {
    if (s.stage != Stage::Activation || s.activation != Activation::Relu) return false;
    return g.tensor(x).dtype == g.tensor(y).dtype && g.tensor(x).quant == g.tensor(y).quant;
}

/// Whether the fused op takes its reader's place: a scale or a residual may be computed after
/// the producer (a bias and an activation keep the producer's place, as they always have).
bool moves(Stage stage) { return stage == Stage::Scale || stage == Stage::Residual; }

/// Op `op` with input `index` set to `t` (kNoTensor filling the places before it).
void set_input(Op& op, size_t index, uint32_t t) {
    if (op.inputs.size() <= index) op.inputs.resize(index + 1, kNoTensor);
    op.inputs[index] = t;
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
            if (op.kind == "conv_nhwc" && conv_epilogue(i, readers, reader)) return true;
            const std::optional<MatmulOperands> mm = fusable_matmul(g_, op);
            if (!mm || readers[mm->c] != 1 || g_.tensor(mm->c).role == TensorRole::Output) continue;
            const uint32_t r = reader[mm->c];
            const Op& next = g_.ops()[r];
            const std::optional<Absorbed> s =
                absorb(g_, next, mm->c, g_.tensor(mm->c).shape, mm->n, last_stage(*mm), true);
            if (!s || (moves(s->stage) && second_of_pair(*mm, readers))) continue;
            if (!float32_only(g_, op) && !same_bits_relu(g_, *s, mm->c, next.outputs[0])) continue;
            std::optional<uint32_t> bias = mm->bias, scale = mm->scale, residual = mm->residual;
            Activation activation = mm->activation;
            std::vector<Op> before;  // a view of the scale as [n], before the fused op
            if (s->stage == Stage::Bias) bias = s->operand;
            if (s->stage == Stage::Activation) activation = s->activation;
            if (s->stage == Stage::Scale) scale = as_shape(s->operand, {mm->n}, op, "scale", before);
            if (s->stage == Stage::Residual) residual = s->operand;
            Op fused = make_matmul(op.name, mm->a, mm->b, next.outputs[0], bias, activation, scale, residual);
            fused.fused_with = op.fused_with;
            fused.fused_with.insert(fused.fused_with.end(), next.fused_with.begin(), next.fused_with.end());
            fused.fused_with.push_back(next.name);
            // With a scale or a residual the fused op takes the reader's place: what computes
            // them may come after the producer, and nothing between reads its result.
            const uint32_t at = moves(s->stage) ? r : i;
            std::vector<Op> ops;
            for (uint32_t j = 0; j < g_.ops().size(); ++j)
                if (j == at) {
                    ops.insert(ops.end(), before.begin(), before.end());
                    ops.push_back(fused);
                } else if (j != i && j != r) {
                    ops.push_back(g_.ops()[j]);
                }
            g_ = used_part(g_, std::move(ops), "fuse-epilogue");
            return true;
        }
        return false;
    }

    const Graph& graph() const { return g_; }

private:
    /// Whether matmul `mm` is the second of two fabric matmuls through an A only it reads:
    /// fuse-ffn's pair, whose ffn kernel drains no scale or residual, so they stay out of it.
    bool second_of_pair(const MatmulOperands& mm, const std::vector<uint32_t>& readers) const {
        if (readers[mm.a] != 1 || g_.tensor(mm.a).role == TensorRole::Output) return false;
        for (const Op& op : g_.ops())
            if (!op.outputs.empty() && op.outputs[0] == mm.a) return fusable_matmul(g_, op).has_value() && float32_only(g_, op);
        return false;
    }

    /// `t` viewed as `shape` (a Reshape appended to `ops`, named after `op`) when it is not
    /// already; the view holds the same elements in the same order.
    uint32_t as_shape(uint32_t t, std::vector<uint64_t> shape, const Op& op, const char* part, std::vector<Op>& ops) {
        if (g_.tensor(t).shape == shape) return t;
        return Expansion(g_, op, ops).reshape(part, t, std::move(shape));
    }

    /// Conv op i whose result, through views read by nothing else, only one op reads: that op
    /// as the conv's next drain stage (a per-channel Mul of an ungrouped conv, an Add of a
    /// tensor of the views' shape, an activation), its readers then reading the view.
    bool conv_epilogue(uint32_t i, const std::vector<uint32_t>& readers, const std::vector<uint32_t>& reader) {
        const Op& conv = g_.ops()[i];
        uint32_t t = conv.outputs[0];
        std::vector<uint32_t> views;  // the view ops from the conv's result to t, in order
        while (readers[t] == 1 && g_.tensor(t).role != TensorRole::Output && is_view_op(g_.ops()[reader[t]])) {
            views.push_back(reader[t]);
            t = g_.ops()[reader[t]].outputs[0];
        }
        if (readers[t] != 1 || g_.tensor(t).role == TensorRole::Output) return false;
        const uint32_t r = reader[t];
        const Op& next = g_.ops()[r];
        const MatmulOperands mm = conv_operands(g_, conv);
        const std::vector<uint64_t>& shape = g_.tensor(t).shape;
        std::optional<Absorbed> s = absorb(g_, next, t, shape, mm.n, last_stage(mm), false);
        if (!s) return false;
        if (!float32_only(g_, conv) && !same_bits_relu(g_, *s, t, next.outputs[0])) return false;
        // Per channel means per last dim of t: of the conv's channels when t's rows are its
        // pixels (t's last dim is Cog) and it has one group.
        if (s->stage == Stage::Scale && (mm.conv->groups != 1 || shape.back() != mm.n)) return false;
        const uint32_t y = next.outputs[0];
        if (g_.tensor(y).role == TensorRole::Output) return false;
        Op fused = conv;
        std::vector<Op> before;  // the views the epilogue's operands need, before the conv
        if (s->stage == Stage::Activation) fused.attributes["activation"] = std::string(to_string(s->activation));
        if (s->stage == Stage::Scale) set_input(fused, 3, as_shape(s->operand, {1, mm.n}, conv, "scale", before));
        if (s->stage == Stage::Residual)
            set_input(fused, 4, as_shape(s->operand, g_.tensor(conv.outputs[0]).shape, conv, "residual", before));
        fused.fused_with.insert(fused.fused_with.end(), next.fused_with.begin(), next.fused_with.end());
        fused.fused_with.push_back(next.name);
        // With a scale or a residual the conv and its views take the reader's place (what
        // computes them may come after the conv); else they stay.
        const bool move = moves(s->stage);
        std::vector<Op> ops;
        const auto rewired = [&](Op o) {
            for (uint32_t& in : o.inputs)
                if (in == y) in = t;  // the stage's readers read what it read
            return o;
        };
        for (uint32_t j = 0; j < g_.ops().size(); ++j) {
            if (j == (move ? r : i)) {
                ops.insert(ops.end(), before.begin(), before.end());
                ops.push_back(fused);
                if (move)
                    for (uint32_t v : views) ops.push_back(g_.ops()[v]);
            }
            const bool moved = move && (j == i || std::find(views.begin(), views.end(), j) != views.end());
            if (j != r && j != i && !moved) ops.push_back(rewired(g_.ops()[j]));
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
