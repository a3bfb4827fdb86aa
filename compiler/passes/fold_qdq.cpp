#include "compiler/passes/fold_qdq.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>

#include "compiler/const_eval.h"
#include "compiler/ops/op_schema.h"
#include "compiler/vector_op.h"

namespace kpu::compiler {
namespace {

bool present(const Op& op, size_t i) { return i < op.inputs.size() && op.inputs[i] != kNoTensor; }

bool per_tensor_int8(const Tensor& t) { return t.dtype == DType::Int8 && t.quant && t.quant->scale.size() == 1; }

/// The rewrite: the source graph read, the ops rewritten in place and marked gone.
class Folder {
public:
    Folder(const Graph& graph, Weights* weights, std::vector<std::string>* notes)
        : graph_(graph), scratch_(graph), ops_(graph.ops()), gone_(ops_.size(), false),
          producer_(graph.tensors().size()), reader_(graph.tensors().size()), readers_(graph.tensors().size(), 0),
          alias_(graph.tensors().size()), weights_(weights), notes_(notes) {
        for (uint32_t i = 0; i < ops_.size(); ++i) {
            for (uint32_t t : ops_[i].inputs)
                if (t != kNoTensor) ++readers_[t], reader_[t] = i;
            for (uint32_t t : ops_[i].outputs)
                if (t != kNoTensor) producer_[t] = i;
        }
    }

    Graph run() {
        bool folded = false;
        for (uint32_t i = 0; i < ops_.size(); ++i)
            if (ops_[i].kind == "QuantizeLinear") folded = requantize_pair(i) || folded;
        for (uint32_t i = 0; i < ops_.size(); ++i) {
            const std::string& kind = ops_[i].kind;
            if (gone_[i]) continue;
            if (kind == "Conv" || kind == "MatMul" || kind == "Gemm") folded = fold_product(i) || folded;
            else folded = fold_vector(i) || folded;
        }
        if (!folded) return graph_;
        for (Op& op : ops_)  // (c): the re-quantized value read as the original
            for (uint32_t& t : op.inputs)
                if (t != kNoTensor && alias_[t]) t = *alias_[t];
        std::vector<uint32_t> readers(graph_.tensors().size(), 0);
        for (uint32_t i = 0; i < ops_.size(); ++i)
            if (!gone_[i])
                for (uint32_t t : ops_[i].inputs)
                    if (t != kNoTensor) ++readers[t];
        std::vector<Op> kept;
        for (uint32_t i = 0; i < ops_.size(); ++i) {
            const uint32_t y = ops_[i].outputs.empty() ? kNoTensor : ops_[i].outputs[0];
            const bool unread = ops_[i].kind == "DequantizeLinear" && readers[y] == 0 &&
                                graph_.tensor(y).role != TensorRole::Output;
            if (!gone_[i] && !unread) kept.push_back(std::move(ops_[i]));
        }
        Graph out = used_part(scratch_, std::move(kept), "fold-qdq");
        drop_unused_weights(out, replaced_, weights_);
        return out;
    }

private:
    void note(const std::string& text) {
        if (notes_) notes_->push_back("fold-qdq: " + text);
    }
    std::string quoted(uint32_t t) const { return "'" + scratch_.tensor(t).name + "'"; }  // new ones too
    std::string describe(const Op& op) const { return "op '" + op.name + "' (" + op.kind + ")"; }

    /// The int8 or int32 tensor DequantizeLinear output `t` stands for, when t is one.
    std::optional<uint32_t> dequantized(uint32_t t) const {
        if (t == kNoTensor || !producer_[t] || graph_.ops()[*producer_[t]].kind != "DequantizeLinear") return std::nullopt;
        return graph_.ops()[*producer_[t]].inputs[0];
    }

    /// The QuantizeLinear (per tensor) that is `t`'s one reader, t being no graph output.
    std::optional<uint32_t> sole_reader(uint32_t t, const std::string& kind) const {
        if (readers_[t] != 1 || graph_.tensor(t).role == TensorRole::Output || gone_[*reader_[t]]) return std::nullopt;
        const Op& op = graph_.ops()[*reader_[t]];
        if (op.kind != kind) return std::nullopt;
        if (kind == "QuantizeLinear" && !per_tensor_int8(graph_.tensor(op.outputs[0]))) return std::nullopt;
        return *reader_[t];
    }

    /// (c) QuantizeLinear(DequantizeLinear(x)) with x's quant: x.
    bool requantize_pair(uint32_t i) {
        const Op& q = ops_[i];
        const std::optional<uint32_t> x = dequantized(q.inputs[0]);
        const uint32_t y = q.outputs[0];
        if (!x || graph_.tensor(*x).dtype != graph_.tensor(y).dtype || !(graph_.tensor(*x).quant == graph_.tensor(y).quant) ||
            graph_.tensor(y).role == TensorRole::Output)
            return false;
        alias_[y] = *x;
        gone_[i] = true;
        note(describe(q) + " re-quantizes " + quoted(*x) + " with its own scale and zero point: read as " + quoted(*x));
        return true;
    }

    /// Why a Conv, MatMul or Gemm on x and W does not fold, "" when it does; `axis` is W's
    /// output-channel dimension.
    std::string product_problem(const Op& op, uint32_t x, uint32_t w, size_t& axis) const {
        const Tensor &tx = graph_.tensor(x), &tw = graph_.tensor(w);
        const bool tb = op.kind == "Gemm" && std::get<int64_t>(*attribute_of(op, schema_of(op), "transB")) != 0;
        axis = op.kind == "Conv" ? 0 : op.kind == "Gemm" ? (tb ? 0 : 1) : tw.shape.size() - 1;
        if (!per_tensor_int8(tx)) return "A " + quoted(x) + " is not int8 quantized per tensor";
        if (tw.dtype != DType::Int8 || !tw.quant || tw.role != TensorRole::Constant)
            return "B " + quoted(w) + " is not an int8 constant";
        const Quantization& q = *tw.quant;
        if (q.scale.size() > 1 && q.axis != axis)
            return "B " + quoted(w) + " is quantized along axis " + std::to_string(q.axis) +
                   ", not its output channels (axis " + std::to_string(axis) + ")";
        for (int32_t z : q.zero_point)
            if (z != q.zero_point.front()) return "B " + quoted(w) + " has per-channel zero points that differ";
        if (op.kind == "Gemm") {
            const OpSchema& s = schema_of(op);
            if (std::get<int64_t>(*attribute_of(op, s, "transA")) != 0) return "Gemm's transA = 1";
            for (const char* a : {"alpha", "beta"}) {
                const AttrValue v = *attribute_of(op, s, a);
                if ((std::holds_alternative<double>(v) ? std::get<double>(v) : double(std::get<int64_t>(v))) != 1.0)
                    return std::string("Gemm's ") + a + " is not 1";
            }
        }
        return "";
    }

    /// The int32 bias (at scale s_x s_w[c]) of a folded product: the tensor itself when it is
    /// DequantizeLinear of such a constant, else a new constant of the values rounded there;
    /// kNoTensor with `problem` set when it cannot be made.
    uint32_t int_bias(const Op& op, uint32_t b, const Quantization& qx, const Quantization& qw, uint64_t channels,
                      std::string& problem) {
        if (graph_.tensor(b).shape != std::vector<uint64_t>{channels}) {
            problem = "bias " + quoted(b) + " is not one value per output channel";
            return kNoTensor;
        }
        Quantization want;
        for (float s : qw.scale) want.scale.push_back(qx.scale[0] * s);  // float32, as ONNX's quantizers compute it
        want.zero_point.assign(want.scale.size(), 0);
        std::optional<ConstValue> v;
        std::string source = graph_.tensor(b).name;  // the constant read
        std::vector<float> scale(channels, 1.0f);  // the real value of one unit of each element
        if (const std::optional<uint32_t> q = dequantized(b)) {
            const Tensor& tq = graph_.tensor(*q);
            if (tq.dtype == DType::Int32 && tq.role == TensorRole::Constant && tq.quant == want) return *q;
            if (tq.role == TensorRole::Constant && tq.quant)
                for (uint64_t c = 0; c < channels; ++c) scale[c] = tq.quant->scale[tq.quant->scale.size() > 1 ? c : 0];
            v = known_value(graph_, *q, weights_);
            source = tq.name;
            if (weights_ && weights_->count(tq.name) && !weights_->at(tq.name).integers.empty()) {  // an integer weight
                const std::vector<int32_t>& ints = weights_->at(tq.name).integers;
                v = ConstValue{tq.dtype, tq.shape, {ints.begin(), ints.end()}};
            }
        } else if (graph_.tensor(b).dtype == DType::Float32) {
            v = known_value(graph_, b, weights_);
        }
        if (!v) {
            problem = "bias " + quoted(b) + " is not a known float32 or dequantized int32 constant";
            return kNoTensor;
        }
        std::vector<int32_t> ints(channels);
        for (uint64_t c = 0; c < channels; ++c) {
            const double s = want.scale[want.scale.size() > 1 ? c : 0];
            const double real = double(float(v->values[c] * double(scale[c])));
            const double q = std::nearbyint(real / s);  // round half to even (the default rounding mode)
            if (!(std::fabs(q) <= double(INT32_MAX))) {
                problem = "bias " + quoted(b) + " value " + std::to_string(real) + " does not fit int32 at scale " +
                          std::to_string(s);
                return kNoTensor;
            }
            ints[c] = int32_t(q);
        }
        Tensor t(derived_tensor_name(scratch_, op.name, "bias_int32"), {channels}, DType::Int32, TensorRole::Constant);
        t.quant = want;
        if (weights_) (*weights_)[t.name] = Weight{{channels}, {}, DType::Int32, ints};
        else t.value = std::vector<int64_t>(ints.begin(), ints.end());
        replaced_.push_back(source);
        return scratch_.add_tensor(std::move(t));
    }

    /// (a) a Conv, MatMul or Gemm between DequantizeLinear and QuantizeLinear.
    bool fold_product(uint32_t i) {
        Op& op = ops_[i];
        const std::optional<uint32_t> x = dequantized(op.inputs[0]), w = dequantized(op.inputs[1]);
        if (!x || !w) return false;
        size_t axis = 0;
        std::string problem = product_problem(op, *x, *w, axis);
        uint32_t bias = kNoTensor;
        if (problem.empty() && present(op, 2))
            bias = int_bias(op, op.inputs[2], *graph_.tensor(*x).quant, *graph_.tensor(*w).quant,
                            graph_.tensor(*w).shape[axis], problem);
        if (!problem.empty()) {
            note(describe(op) + " keeps its dequantized float inputs: " + problem);
            return false;
        }
        const std::string read = quoted(*x) + " and " + quoted(*w) + (bias != kNoTensor ? " (int32 bias " + quoted(bias) + ")" : "");
        op.inputs = {*x, *w};
        if (bias != kNoTensor) op.inputs.push_back(bias);
        const uint32_t y = op.outputs[0];
        std::optional<uint32_t> q = sole_reader(y, "QuantizeLinear"), relu;
        if (!q) {
            relu = sole_reader(y, "Relu");
            if (relu) q = sole_reader(graph_.ops()[*relu].outputs[0], "QuantizeLinear");
            if (!q) relu.reset();
        }
        if (!q) {
            note(describe(op) + " computes on int8 " + read + ", writing float32 " + quoted(y) + " (dequantized)");
            return true;
        }
        const uint32_t out = ops_[*q].outputs[0];
        gone_[*q] = true;
        if (relu) {  // the Relu stays between, on int8 with the result's quant (fuse-epilogue fuses it)
            Tensor& t = scratch_.tensor(y);
            t.dtype = DType::Int8;
            t.quant = graph_.tensor(out).quant;
            ops_[*relu].outputs = {out};
            ops_[*relu].fused_with.push_back(ops_[*q].name);
            note(describe(op) + " computes on int8 " + read + ", writing int8 " + quoted(y) + "; its Relu writes " +
                 quoted(out));
        } else {
            op.outputs = {out};
            op.fused_with.push_back(ops_[*q].name);
            note(describe(op) + " computes on int8 " + read + ", writing int8 " + quoted(out));
        }
        return true;
    }

    /// (b) an op the vector engine runs as it is, between DequantizeLinear and QuantizeLinear.
    bool fold_vector(uint32_t i) {
        Op& op = ops_[i];
        static const std::vector<std::string> kNot = {"QuantizeLinear", "DequantizeLinear", "Cast", "Transpose",
                                                      "vector_chain"};
        if (!is_vector_op(op) || std::find(kNot.begin(), kNot.end(), op.kind) != kNot.end() ||
            !vector_lowering_problem(graph_, op).empty())
            return false;
        static const std::vector<std::string> kBinary = {"Add", "Sub", "Mul", "Div", "Max", "Min"};
        const size_t operands = std::find(kBinary.begin(), kBinary.end(), op.kind) != kBinary.end() ? 2 : 1;
        std::string read, wrote;
        for (size_t j = 0; j < operands && j < op.inputs.size(); ++j)
            if (const std::optional<uint32_t> x = dequantized(op.inputs[j]); x && per_tensor_int8(graph_.tensor(*x))) {
                op.inputs[j] = *x;
                read += (read.empty() ? "" : " and ") + quoted(*x);
            }
        const uint32_t y = op.outputs[0];
        if (const std::optional<uint32_t> q = sole_reader(y, "QuantizeLinear"); q && op.outputs.size() == 1) {
            gone_[*q] = true;
            op.outputs = {ops_[*q].outputs[0]};
            op.fused_with.push_back(ops_[*q].name);
            wrote = quoted(op.outputs[0]);
        }
        if (read.empty() && wrote.empty()) return false;
        note(describe(op) + (read.empty() ? "" : " reads int8 " + read) + (read.empty() || wrote.empty() ? "" : ",") +
             (wrote.empty() ? "" : " writes int8 " + wrote));
        return true;
    }

    const Graph& graph_;
    Graph scratch_;                                   ///< the graph's tensors and the new ones
    std::vector<Op> ops_;                             ///< rewritten in place
    std::vector<bool> gone_;                          ///< by op: folded into another
    std::vector<std::optional<uint32_t>> producer_;   ///< by tensor, in the source graph
    std::vector<std::optional<uint32_t>> reader_;     ///< by tensor: its last reader in the source graph
    std::vector<uint32_t> readers_;                   ///< by tensor: reads in the source graph
    std::vector<std::optional<uint32_t>> alias_;      ///< by tensor: (c)'s replacement
    std::vector<std::string> replaced_;               ///< float biases the int32 ones replace
    Weights* weights_;
    std::vector<std::string>* notes_;
};

}  // namespace

Graph fold_qdq(const Graph& graph, Weights* weights, std::vector<std::string>* notes) {
    return Folder(graph, weights, notes).run();
}

}  // namespace kpu::compiler
