#include "compiler/passes/precision.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>

#include "compiler/compile_error.h"
#include "compiler/const_eval.h"
#include "compiler/ops/op_schema.h"
#include "hardware/numeric.h"

namespace kpu::compiler {
namespace {

bool is_mac(const Op& op) { return op.kind == "Conv" || op.kind == "MatMul" || op.kind == "Gemm"; }

}  // namespace

std::vector<bool> constant_derived(const Graph& graph) {
    std::vector<bool> out(graph.tensors().size(), false);
    for (uint32_t t = 0; t < out.size(); ++t) out[t] = graph.tensor(t).role == TensorRole::Constant;
    for (const Op& op : graph.ops()) {
        bool any = false, all = true;
        for (uint32_t t : op.inputs)
            if (t != kNoTensor) any = true, all = all && out[t];
        if (any && all)
            for (uint32_t t : op.outputs)
                if (t != kNoTensor) out[t] = true;
    }
    return out;
}

namespace {

/// Every read of `from` by `ops` (from index `first` on) made a read of `to`.
void redirect(std::vector<Op>& ops, size_t first, uint32_t from, uint32_t to) {
    for (size_t i = first; i < ops.size(); ++i)
        for (uint32_t& t : ops[i].inputs)
            if (t == from) t = to;
}

Op conversion(Graph& g, const std::string& kind, const std::string& name, uint32_t in, uint32_t out) {
    Op op;
    op.name = derived_tensor_name(g, name, kind);  // a fresh op name of the same spelling
    op.kind = kind;
    op.inputs = {in};
    op.outputs = {out};
    return op;
}

/// A float constant's values rounded to `type` (exact as float32).
float rounded(float v, DType type) {
    return type == DType::BFloat16 ? hw::bfloat16_to_float(hw::float_to_bfloat16(v)) : hw::half_to_float(hw::float_to_half(v));
}

/// A Cast of `in` into `out` (of `type`), named after `name`.
Op cast(Graph& g, const std::string& name, uint32_t in, uint32_t out, DType type) {
    Op op = conversion(g, "Cast", name, in, out);
    op.attributes["to"] = std::string(to_string(type));
    return op;
}

/// An operand `t` in `type`: itself for an activation (already of the type) or a tensor of
/// another type than float32; a constant's values rounded in place (unless `keep`: a MAC's
/// bias, which stays float32); otherwise (computed from constants) a Cast's output, one per tensor.
uint32_t low_operand(Graph& g, Weights& weights, uint32_t t, const std::vector<bool>& derived, DType type,
                     const std::set<uint32_t>& keep, std::map<uint32_t, uint32_t>& cast_of, std::vector<Op>& out) {
    if (t == kNoTensor || t >= derived.size() || !derived[t] || g.tensor(t).dtype != DType::Float32) return t;
    Tensor& x = g.tensor(t);
    const auto w = weights.find(x.name);
    auto* inline_values = std::get_if<std::vector<double>>(&x.value);
    const bool in_place = x.role == TensorRole::Constant && !keep.count(t);
    if (in_place && w != weights.end()) {
        for (float& v : w->second.values) v = rounded(v, type);
        w->second.dtype = x.dtype = type;
        return t;
    }
    if (in_place && inline_values) {
        for (double& v : *inline_values) v = rounded(float(v), type);
        x.dtype = type;
        return t;
    }
    auto [it, fresh] = cast_of.try_emplace(t, 0);
    if (fresh) {
        Tensor c(derived_tensor_name(g, x.name, "cast"), x.shape, type);
        c.rank0 = x.rank0;
        const std::string name = x.name;
        it->second = g.add_tensor(std::move(c));
        out.push_back(cast(g, name, t, it->second, type));
    }
    return it->second;
}

}  // namespace

Graph to_float_precision(const Graph& graph, Weights& weights, DType type, const hw::Config& config) {
    if (type != DType::BFloat16 && type != DType::Float16)
        throw CompileError(std::string("precision ") + to_string(type) + ": not a reduced float type (bfloat16, float16)");
    config.fabric_type(to_string(type));
    Graph g = graph;
    std::vector<Op> ops = graph.ops();
    const std::vector<bool> derived = constant_derived(graph);
    // Activations: every float32 tensor computed from the inputs.
    for (uint32_t t = 0; t < graph.tensors().size(); ++t) {
        Tensor& x = g.tensor(t);
        if (!derived[t] && x.role != TensorRole::Input && x.dtype == DType::Float32) x.dtype = type;
    }
    std::vector<Op> out;
    // Inputs read through a Cast.
    for (uint32_t t = 0; t < graph.tensors().size(); ++t) {
        const Tensor& x = graph.tensor(t);
        if (x.role != TensorRole::Input || x.dtype != DType::Float32) continue;
        Tensor low(derived_tensor_name(g, x.name, "cast"), x.shape, type);
        low.rank0 = x.rank0;
        const uint32_t c = g.add_tensor(std::move(low));
        redirect(ops, 0, t, c);
        out.push_back(cast(g, x.name, t, c, type));
    }
    // Constant MAC operands rounded to the type, or cast when computed from constants.
    std::map<uint32_t, uint32_t> cast_of;  // constant-derived operand -> its Cast's output
    std::set<uint32_t> biases;  // a MAC's bias stays float32
    for (const Op& op : ops)
        if (is_mac(op) && op.inputs.size() > 2 && op.inputs[2] != kNoTensor) biases.insert(op.inputs[2]);
    for (size_t k = 0; k < ops.size(); ++k) {
        Op& op = ops[k];
        if (is_mac(op)) {
            for (size_t i = 0; i < 2; ++i)
                op.inputs[i] = low_operand(g, weights, op.inputs[i], derived, type, {}, cast_of, out);
        } else {
            // A vector op reads its float operands in one type: the activation's, when it reads one.
            bool reads_activation = false;
            for (uint32_t t : op.inputs)
                if (t != kNoTensor && (t >= derived.size() || !derived[t]) && g.tensor(t).dtype == type)
                    reads_activation = true;
            // A norm's weight and bias stay float32: the vector engine reads them so.
            const bool norm = op.kind == "LayerNormalization" || op.kind == "RMSNormalization";
            const std::vector<size_t>& compile_time = schema_of(op).compile_time_inputs;
            for (size_t i = 0; reads_activation && i < (norm ? 1 : op.inputs.size()); ++i)
                if (std::find(compile_time.begin(), compile_time.end(), i) == compile_time.end())
                    op.inputs[i] = low_operand(g, weights, op.inputs[i], derived, type, biases, cast_of, out);
        }
        // Outputs written by a Cast back to float32; later readers read the type's tensor.
        std::vector<Op> casts;
        for (uint32_t& t : op.outputs) {
            if (t == kNoTensor || graph.tensor(t).role != TensorRole::Output || graph.tensor(t).dtype != DType::Float32)
                continue;
            g.tensor(t).dtype = DType::Float32;
            Tensor low(derived_tensor_name(g, op.name, graph.tensor(t).name), graph.tensor(t).shape, type);
            low.rank0 = graph.tensor(t).rank0;
            const uint32_t l = g.add_tensor(std::move(low));
            casts.push_back(cast(g, graph.tensor(t).name, l, t, DType::Float32));
            redirect(ops, k + 1, t, l);
            t = l;
        }
        out.push_back(op);
        for (Op& c : casts) out.push_back(std::move(c));
    }
    return used_part(g, std::move(out), std::string(to_string(type)) + " precision");
}

namespace {

/// What quantize_int8 builds: the graph's tensors and the new ones, and the new ops in order.
class QdqBuilder {
public:
    QdqBuilder(const Graph& graph, Weights& weights, const QuantTable& table)
        : graph_(graph), g_(graph), weights_(weights), table_(table) {}

    /// The calibrated quantization of `t` (read by `op`).
    const Quantization& quant(uint32_t t, const Op& op) const {
        if (const auto d = original_.find(t); d != original_.end()) t = d->second;
        const auto it = table_.find(graph_.tensor(t).name);
        if (it == table_.end())
            throw CompileError("int8: the calibration has no entry for tensor '" + graph_.tensor(t).name + "' (of op '" +
                               op.name + "')");
        return it->second;
    }

    /// `t` through QuantizeLinear -> DequantizeLinear (once per tensor): the DQ output.
    uint32_t qdq(uint32_t t, const Op& op) {
        if (dequantized_.count(t)) return dequantized_[t];
        if (original_.count(t)) return t;
        const Tensor& x = g_.tensor(t);
        Tensor q(derived_tensor_name(g_, x.name, "quantized"), x.shape, DType::Int8);
        q.rank0 = x.rank0;
        q.quant = per_tensor(quant(t, op), x.name);
        const std::string name = x.name;
        const uint32_t qi = g_.add_tensor(std::move(q));
        const uint32_t d = dequantize(qi, name);
        ops_.push_back(conversion(g_, "QuantizeLinear", name, t, qi));
        ops_.push_back(dq_);
        dequantized_[t] = d;
        original_[d] = t;
        return d;
    }

    /// The int8 weight of MAC op `op`: its constant values quantized per output channel. With
    /// `transpose` (a Gemm's transB [N, K] weight) it is stored [K, N], the product the fabric runs.
    uint32_t weight(const Op& op, const Quantization& wq, uint32_t axis, bool transpose) {
        const uint32_t w = op.inputs[1];
        const std::optional<ConstValue> value = known_value(graph_, w, &weights_);
        if (!value) throw CompileError("int8: op '" + op.name + "': weight '" + graph_.tensor(w).name + "' is not a constant");
        const Tensor& wt = graph_.tensor(w);
        if (wq.scale.size() != wt.shape[axis])
            throw CompileError("int8: the calibration of weight '" + wt.name + "' has " + std::to_string(wq.scale.size()) +
                               " scales, its output channels are " + std::to_string(wt.shape[axis]));
        uint64_t stride = 1;
        for (size_t d = axis + 1; d < wt.shape.size(); ++d) stride *= wt.shape[d];
        Weight q{wt.shape, {}, DType::Int8, {}};
        q.integers.resize(value->values.size());
        for (uint64_t i = 0; i < q.integers.size(); ++i)
            q.integers[i] = hw::quantize_int8(float(value->values[i]), wq.scale[(i / stride) % wt.shape[axis]], 0);
        Quantization quant = wq;
        quant.zero_point.assign(wq.scale.size(), 0);
        quant.axis = axis;
        if (transpose) {  // [N, K] -> [K, N]: the output channels become dimension 1
            const uint64_t n = wt.shape[0], k = wt.shape[1];
            std::vector<int32_t> t(q.integers.size());
            for (uint64_t r = 0; r < n; ++r)
                for (uint64_t c = 0; c < k; ++c) t[c * n + r] = q.integers[r * k + c];
            q.integers = std::move(t);
            q.shape = {k, n};
            quant.axis = 1;
        }
        return constant(op.name, "W_int8", std::move(q), std::move(quant));
    }

    /// The int32 bias of `op` (scale s_x s_w[c]), or nullopt when it stays float32.
    std::optional<uint32_t> bias(const Op& op, float sx, const Quantization& wq) {
        if (op.inputs.size() < 3 || op.inputs[2] == kNoTensor) return std::nullopt;
        const uint32_t b = op.inputs[2];
        const Tensor& bt = graph_.tensor(b);
        if (bt.shape.size() != 1 || bt.shape[0] != wq.scale.size()) return std::nullopt;
        if (op.kind == "Gemm")
            if (const auto beta = op.attributes.find("beta");
                beta != op.attributes.end() && std::holds_alternative<double>(beta->second) && std::get<double>(beta->second) != 1.0)
                return std::nullopt;
        const std::optional<ConstValue> value = known_value(graph_, b, &weights_);
        if (!value) return std::nullopt;
        Quantization quant;
        quant.axis = 0;
        Weight q{bt.shape, {}, DType::Int32, {}};
        for (uint64_t c = 0; c < bt.shape[0]; ++c) {
            const float s = float(double(sx) * double(wq.scale[c]));
            quant.scale.push_back(s);
            quant.zero_point.push_back(0);
            const double steps = std::nearbyint(value->values[c] / double(s));
            q.integers.push_back(int32_t(std::clamp(steps, double(std::numeric_limits<int32_t>::min()),
                                                    double(std::numeric_limits<int32_t>::max()))));
        }
        return constant(op.name, "B_int32", std::move(q), std::move(quant));
    }

    /// The Q -> DQ after the computed tensor `t` for its later readers `later` (ops from index
    /// `first` of `source`), unless it is a graph output.
    void after(uint32_t t, const Op& op, std::vector<Op>& source, size_t first) {
        if (graph_.tensor(t).role == TensorRole::Output) return;
        const uint32_t d = qdq(t, op);
        redirect(source, first, t, d);
    }

    void push(Op op) { ops_.push_back(std::move(op)); }
    Graph& graph() { return g_; }
    std::vector<Op>& ops() { return ops_; }
    const Graph& source() const { return graph_; }

private:
    Quantization per_tensor(const Quantization& q, const std::string& name) const {
        if (q.scale.size() != 1)
            throw CompileError("int8: the calibration of activation '" + name + "' has " + std::to_string(q.scale.size()) +
                               " scales, not one");
        return q;
    }

    /// A DequantizeLinear of `q` (int8 or int32 with quant) into a new float32 tensor, left in dq_.
    uint32_t dequantize(uint32_t q, const std::string& name) {
        Tensor d(derived_tensor_name(g_, name, "dequantized"), g_.tensor(q).shape, DType::Float32);
        d.rank0 = g_.tensor(q).rank0;
        const uint32_t di = g_.add_tensor(std::move(d));
        dq_ = conversion(g_, "DequantizeLinear", name, q, di);
        return di;
    }

    /// An integer constant "<op>.<part>" with `quant`, read through a DequantizeLinear: the DQ output.
    uint32_t constant(const std::string& op, const std::string& part, Weight w, Quantization quant) {
        Tensor t(derived_tensor_name(g_, op, part), w.shape, w.dtype, TensorRole::Constant);
        t.quant = std::move(quant);
        const std::string name = t.name;
        weights_[name] = std::move(w);
        const uint32_t q = g_.add_tensor(std::move(t));
        const uint32_t d = dequantize(q, name);
        ops_.push_back(dq_);
        return d;
    }

    const Graph& graph_;                      ///< the float32 source graph
    Graph g_;                                 ///< its tensors and the new ones
    Weights& weights_;                        ///< the program's weights
    const QuantTable& table_;                 ///< the calibration
    std::vector<Op> ops_;                     ///< the rewritten graph's ops, in order
    std::map<uint32_t, uint32_t> dequantized_;  ///< tensor -> its Q -> DQ output
    std::map<uint32_t, uint32_t> original_;   ///< an activation's Q -> DQ output -> the activation
    Op dq_;                                   ///< the last DequantizeLinear made
};

/// The output-channel axis of a MAC op's weight in ONNX's layouts.
uint32_t output_axis(const Graph& graph, const Op& op) {
    if (op.kind == "Conv") return 0;
    if (op.kind == "Gemm") {
        const auto it = op.attributes.find("transB");
        return it != op.attributes.end() && std::get<int64_t>(it->second) != 0 ? 0 : 1;
    }
    return uint32_t(graph.tensor(op.inputs[1]).shape.size() - 1);  // MatMul: B [..., K, N]
}

bool is_pool(const Op& op) {
    return op.kind == "MaxPool" || op.kind == "AveragePool" || op.kind == "GlobalAveragePool" ||
           op.kind == "GlobalMaxPool";
}

}  // namespace

Graph quantize_int8(const Graph& graph, Weights& weights, const QuantTable& table, const hw::Config& config) {
    config.fabric_type(to_string(DType::Int8));
    const std::vector<bool> derived = constant_derived(graph);
    std::vector<uint32_t> readers(graph.tensors().size(), 0), last_reader(graph.tensors().size(), 0);
    for (uint32_t i = 0; i < graph.ops().size(); ++i)
        for (uint32_t t : graph.ops()[i].inputs)
            if (t != kNoTensor) ++readers[t], last_reader[t] = i;
    const auto only_reader = [&](uint32_t t) { return readers[t] == 1 ? std::optional<uint32_t>(last_reader[t]) : std::nullopt; };
    const auto activation = [&](uint32_t t) { return t >= derived.size() || !derived[t]; };
    QdqBuilder b(graph, weights, table);
    std::vector<Op> ops = graph.ops();
    std::vector<bool> done(ops.size(), false);
    std::vector<std::string> replaced;  // float weights and biases now read as integers
    for (size_t i = 0; i < ops.size(); ++i) {
        if (done[i]) continue;
        Op op = ops[i];
        const Op& source = graph.ops()[i];
        // A grouped Conv (MobileNet's depthwise ones) stays float32 between its Q/DQ: the int8
        // fabric takes per-channel weights for ungrouped products only.
        const auto group = op.attributes.find("group");
        const bool grouped = group != op.attributes.end() && std::get<int64_t>(group->second) > 1;
        const bool mac = is_mac(op) && !grouped && activation(op.inputs[0]) && !activation(op.inputs[1]);
        const bool joins = (op.kind == "Add" && activation(op.inputs[0]) && activation(op.inputs[1])) || is_pool(op);
        if (!mac && !joins) {
            b.push(std::move(op));
            continue;
        }
        if (mac) {
            const float sx = float(b.quant(op.inputs[0], op).scale.at(0));
            op.inputs[0] = b.qdq(op.inputs[0], op);
            const Quantization& wq = b.quant(source.inputs[1], op);
            // A Gemm's transB weight is stored transposed: the int8 product is a plain [M, K] x [K, N].
            const bool transpose = op.kind == "Gemm" && output_axis(graph, source) == 0;
            op.inputs[1] = b.weight(source, wq, output_axis(graph, source), transpose);
            if (transpose) op.attributes["transB"] = int64_t(0);
            replaced.push_back(graph.tensor(source.inputs[1]).name);
            if (const std::optional<uint32_t> bias = b.bias(source, sx, wq)) {
                replaced.push_back(graph.tensor(source.inputs[2]).name);
                op.inputs[2] = *bias;
            }
        } else {
            for (uint32_t& t : op.inputs)
                if (t != kNoTensor && activation(t) && b.graph().tensor(t).dtype == DType::Float32) t = b.qdq(t, op);
        }
        b.push(op);
        uint32_t y = op.outputs[0];
        // A Relu alone reading the output: the quantization goes after it.
        if (y != kNoTensor && graph.tensor(y).role != TensorRole::Output && only_reader(y) &&
            ops[*only_reader(y)].kind == "Relu") {
            const uint32_t r = *only_reader(y);
            b.push(ops[r]);
            done[r] = true;
            y = ops[r].outputs[0];
        }
        // A result only a Softmax reads (logits) stays float32: int8 steps there would move
        // the probabilities by up to half a step each, and a float output costs nothing here.
        bool softmax_only = y != kNoTensor && readers[y] > 0;
        for (size_t r = i + 1; softmax_only && r < ops.size(); ++r)
            for (uint32_t t : ops[r].inputs)
                if (t == y && ops[r].kind != "Softmax" && ops[r].kind != "LogSoftmax") softmax_only = false;
        if (y != kNoTensor && !softmax_only) b.after(y, op, ops, i + 1);
    }
    Graph out = used_part(b.graph(), std::move(b.ops()), "int8 precision");
    drop_unused_weights(out, replaced, &weights);
    return out;
}

}  // namespace kpu::compiler
