#include "compiler/onnx_import.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "compiler/compile_error.h"
#include "compiler/const_eval.h"
#include "compiler/ops/op_schema.h"

namespace kpu::compiler {
namespace {

constexpr int64_t kMinOpset = 11, kMaxOpset = 17;
/// Float constants up to this many elements are inline values (a Clip bound, GELU's 0.5);
/// larger ones are weights.
constexpr uint64_t kInlineFloats = 64;
/// uint8 quantization becomes int8 exactly: q - 128 with zero point - 128 stands for the same
/// reals, (q - zp) scale.
constexpr int kUint8Offset = 128;
/// A value known at import: an initializer, a Constant's output, or what the shape
/// computations on such values give (evaluated by const_eval.h up to kFoldLimit elements).
using Const = ConstValue;

/// A node of the model as the importer rewrites it.
struct Node {
    std::string kind, name;
    std::vector<std::string> inputs, outputs;  ///< ONNX value names ("" for an omitted input)
    std::map<std::string, AttrValue> attributes;
    const onnx::NodeProto* proto = nullptr;  ///< for attributes of tensor type (Constant)
    bool alive = true;
};

[[noreturn]] void fail(const std::string& source, const std::string& problem) {
    throw CompileError(source + ": " + problem);
}

bool dtype_of(int32_t onnx_type, DType& out) {
    switch (onnx_type) {
        case onnx::TensorProto::FLOAT: out = DType::Float32; return true;
        case onnx::TensorProto::FLOAT16: out = DType::Float16; return true;
        case onnx::TensorProto::BFLOAT16: out = DType::BFloat16; return true;
        case onnx::TensorProto::INT8: out = DType::Int8; return true;
        case onnx::TensorProto::INT32: out = DType::Int32; return true;
        case onnx::TensorProto::INT64: out = DType::Int64; return true;
        case onnx::TensorProto::BOOL: out = DType::Int8; return true;  // only folded
        case onnx::TensorProto::DOUBLE: out = DType::Float32; return true;  // only folded
        default: return false;
    }
}

/// The values of an initializer or a Constant's tensor attribute.
Const read_tensor(const onnx::TensorProto& t, const std::string& source) {
    Const c;
    const bool uint8 = t.data_type() == onnx::TensorProto::UINT8;  // read as int8: q - 128 (kUint8Offset)
    if (uint8) c.dtype = DType::Int8;
    else if (!dtype_of(t.data_type(), c.dtype))
        fail(source, "tensor '" + t.name() + "' has ONNX data type " + std::to_string(t.data_type()) + ", not imported");
    if (t.data_location() == onnx::TensorProto::EXTERNAL)
        fail(source, "tensor '" + t.name() + "' keeps its data in an external file, not imported (save the model "
                     "with its weights inside)");
    for (int64_t d : t.dims()) c.shape.push_back(uint64_t(d));
    const uint64_t n = c.elements();
    const std::string& raw = t.raw_data();
    auto from_raw = [&](auto sample) {
        using T = decltype(sample);
        if (raw.size() != n * sizeof(T))
            fail(source, "tensor '" + t.name() + "' has " + std::to_string(raw.size()) + " bytes of data for " +
                             std::to_string(n) + " elements");
        c.values.resize(n);
        for (uint64_t i = 0; i < n; ++i) {
            T v;
            std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));
            c.values[i] = double(v);
        }
    };
    switch (t.data_type()) {
        case onnx::TensorProto::FLOAT:
            if (!raw.empty()) from_raw(float());
            else c.values.assign(t.float_data().begin(), t.float_data().end());
            break;
        case onnx::TensorProto::DOUBLE:
            if (!raw.empty()) from_raw(double());
            else c.values.assign(t.double_data().begin(), t.double_data().end());
            break;
        case onnx::TensorProto::INT64:
            if (!raw.empty()) from_raw(int64_t());
            else c.values.assign(t.int64_data().begin(), t.int64_data().end());
            break;
        case onnx::TensorProto::INT32:
            if (!raw.empty()) from_raw(int32_t());
            else c.values.assign(t.int32_data().begin(), t.int32_data().end());
            break;
        case onnx::TensorProto::INT8:
            if (!raw.empty()) from_raw(int8_t());
            else c.values.assign(t.int32_data().begin(), t.int32_data().end());
            break;
        case onnx::TensorProto::BOOL:
            if (!raw.empty()) from_raw(uint8_t());
            else c.values.assign(t.int32_data().begin(), t.int32_data().end());
            break;
        case onnx::TensorProto::UINT8:
            if (!raw.empty()) from_raw(uint8_t());
            else c.values.assign(t.int32_data().begin(), t.int32_data().end());
            for (double& v : c.values) v -= kUint8Offset;
            break;
        default:
            fail(source, "tensor '" + t.name() + "' is " + to_string(c.dtype) + ", whose values are not imported yet");
    }
    if (c.values.size() != n)
        fail(source, "tensor '" + t.name() + "' has " + std::to_string(c.values.size()) + " values for shape of " +
                         std::to_string(n) + " elements");
    return c;
}

/// "INT32": an ONNX element type's name, or its number when it has none.
std::string onnx_type_name(int32_t type) {
    if (!onnx::TensorProto_DataType_IsValid(type)) return std::to_string(type);
    return onnx::TensorProto_DataType_Name(onnx::TensorProto_DataType(type));
}

/// A value as a message shows it ("0", "-0.5", "nan").
std::string format_number(double v) {
    std::ostringstream out;
    out << v;
    return out.str();
}

AttrValue attribute_value(const onnx::AttributeProto& a) {
    switch (a.type()) {
        case onnx::AttributeProto::INT: return int64_t(a.i());
        case onnx::AttributeProto::FLOAT: return double(a.f());
        case onnx::AttributeProto::STRING: return a.s();
        case onnx::AttributeProto::INTS: return std::vector<int64_t>(a.ints().begin(), a.ints().end());
        case onnx::AttributeProto::FLOATS: return std::vector<double>(a.floats().begin(), a.floats().end());
        default: return std::string("<tensor or graph>");
    }
}

class Importer {
public:
    Importer(onnx::ModelProto& model, std::string source) : model_(model), source_(std::move(source)) {}

    ImportedModel run() {
        check();
        const onnx::GraphProto& g = model_.graph();
        for (const auto& t : g.initializer()) {
            consts_[t.name()] = read_tensor(t, source_);
            if (t.data_type() == onnx::TensorProto::UINT8) uint8_.insert(t.name());
        }
        for (const auto& v : g.value_info()) note_shape(v);
        for (const auto& v : g.input()) note_shape(v);
        for (const auto& v : g.output()) note_shape(v);
        for (int i = 0; i < g.node_size(); ++i) nodes_.push_back(node_of(g.node(i), i));
        fold();
        forward_identities();
        recognise_gelu();
        recognise_tanh_gelu();
        recognise_layer_norm();
        recognise_masked_softmax();
        recognise_padded_average_pool();
        import_quantization();
        return build();
    }

private:
    // ---- checks ----------------------------------------------------------------------------

    void check() {
        if (!model_.has_graph()) fail(source_, "not an ONNX model (it has no graph)");
        for (const auto& o : model_.opset_import())
            if (o.domain().empty() || o.domain() == "ai.onnx") out_.opset = o.version();
        if (out_.opset < kMinOpset || out_.opset > kMaxOpset)
            fail(source_, "opset " + std::to_string(out_.opset) + " of the default domain is not imported (opsets " +
                              std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset) + ")");
        try {
            onnx::checker::check_model(model_);
            onnx::shape_inference::InferShapes(model_);
        } catch (const std::exception& e) {
            std::string what = e.what();
            std::replace(what.begin(), what.end(), '\n', ' ');
            fail(source_, "the ONNX checker refuses the model: " + what);
        }
    }

    void note_shape(const onnx::ValueInfoProto& v) {
        if (!v.type().has_tensor_type()) return;
        const auto& t = v.type().tensor_type();
        Known k;
        k.known_type = dtype_of(t.elem_type(), k.dtype);
        k.onnx_type = t.elem_type();
        if (t.has_shape()) {
            k.ranked = true;
            for (const auto& d : t.shape().dim()) {
                if (d.has_dim_value() && d.dim_value() > 0) {
                    k.shape.push_back(uint64_t(d.dim_value()));
                } else {
                    k.shape.push_back(0);
                    k.symbolic = d.has_dim_param() ? d.dim_param() : "?";
                }
            }
        }
        known_[v.name()] = k;
    }

    Node node_of(const onnx::NodeProto& n, int index) {
        Node node;
        node.kind = n.domain().empty() || n.domain() == "ai.onnx" ? n.op_type() : n.domain() + "." + n.op_type();
        node.name = n.name().empty() ? n.op_type() + "_" + std::to_string(index) : n.name();
        node.inputs.assign(n.input().begin(), n.input().end());
        node.outputs.assign(n.output().begin(), n.output().end());
        for (const auto& a : n.attribute()) node.attributes[a.name()] = attribute_value(a);
        node.proto = &n;
        return node;
    }

    // ---- evaluation of what is known at import -----------------------------------------------

    bool is_const(const std::string& name) const { return name.empty() || consts_.count(name); }
    int64_t int_attr(const Node& n, const std::string& name, int64_t fallback) const {
        const auto it = n.attributes.find(name);
        return it != n.attributes.end() && std::holds_alternative<int64_t>(it->second) ? std::get<int64_t>(it->second)
                                                                                        : fallback;
    }

    /// Evaluates `n` when every input is known and it is one of the shape computations;
    /// false when it stays an op.
    bool evaluate(const Node& n) {
        const std::string& k = n.kind;
        if (k == "Constant") return constant(n);
        if (k == "Shape") {
            std::vector<uint64_t> shape;
            if (consts_.count(n.inputs[0])) shape = consts_[n.inputs[0]].shape;
            else if (!static_shape(n.inputs[0], shape)) return false;
            const int64_t rank = int64_t(shape.size());
            return set(n, shape_value(shape, int_attr(n, "start", 0), int_attr(n, "end", rank)));
        }
        static const std::set<std::string> kFoldable = {"Gather", "Unsqueeze", "Squeeze", "Concat", "Cast",
                                                        "ConstantOfShape", "Slice", "Reshape", "Range", "Add",
                                                        "Sub", "Mul", "Div", "Equal", "Where", "Identity"};
        if (!kFoldable.count(k)) return false;
        for (const std::string& in : n.inputs)
            if (!is_const(in)) return false;
        const auto in = [&](size_t i) -> const Const& { return consts_.at(n.inputs.at(i)); };
        const bool arithmetic = k == "Add" || k == "Sub" || k == "Mul" || k == "Div" || k == "Equal" || k == "Where";
        if (arithmetic)  // shape arithmetic on integers; float weights stay ops
            for (const std::string& i : n.inputs)
                if (!is_integer(consts_.at(i).dtype) && consts_.at(i).elements() > kInlineFloats) return false;
        if (k == "Cast") {
            Const c = in(0);
            if (!dtype_of(int32_t(int_attr(n, "to", 1)), c.dtype)) return false;
            if (is_integer(c.dtype))
                for (double& v : c.values) v = std::trunc(v);
            return set(n, std::move(c));
        }
        if (k == "ConstantOfShape") {
            Const c{DType::Float32, {}, {}};
            for (int64_t d : in(0).ints()) c.shape.push_back(uint64_t(d));
            if (c.elements() > kFoldLimit) return false;
            double value = 0;
            if (n.proto)
                for (const auto& a : n.proto->attribute())
                    if (a.name() == "value") {
                        const Const v = read_tensor(a.t(), source_);
                        c.dtype = v.dtype;
                        if (!v.values.empty()) value = v.values[0];
                    }
            c.values.assign(c.elements(), value);
            return set(n, std::move(c));
        }
        std::vector<const Const*> ins;
        for (const std::string& i : n.inputs) ins.push_back(i.empty() ? nullptr : &consts_.at(i));
        std::optional<Const> c = evaluate_constant(k, n.attributes, ins);
        return c && set(n, std::move(*c));
    }

    bool constant(const Node& n) {
        Const c;
        for (const auto& a : n.proto->attribute()) {
            if (a.name() == "value") {
                c = read_tensor(a.t(), source_);
                if (a.t().data_type() == onnx::TensorProto::UINT8) uint8_.insert(n.outputs.at(0));
            }
            else if (a.name() == "value_float") c = {DType::Float32, {}, {double(a.f())}};
            else if (a.name() == "value_int") c = {DType::Int64, {}, {double(a.i())}};
            else if (a.name() == "value_floats") c = {DType::Float32, {uint64_t(a.floats_size())}, {a.floats().begin(), a.floats().end()}};
            else if (a.name() == "value_ints") c = {DType::Int64, {uint64_t(a.ints_size())}, {a.ints().begin(), a.ints().end()}};
            else fail(source_, "Constant '" + n.name + "': attribute '" + a.name() + "' is not imported");
        }
        return set(n, std::move(c));
    }

    bool set(const Node& n, Const c) {
        consts_[n.outputs.at(0)] = std::move(c);
        return true;
    }

    bool static_shape(const std::string& name, std::vector<uint64_t>& shape) const {
        const auto it = known_.find(name);
        if (it == known_.end() || !it->second.ranked || !it->second.symbolic.empty()) return false;
        shape = it->second.shape;
        return true;
    }

    void fold() {
        for (Node& n : nodes_)
            if (evaluate(n)) n.alive = false;
    }

    /// A Pad that pads nothing (torch exports AvgPool2d's count_include_pad that way).
    bool pads_nothing(const Node& n) const {
        if (n.kind != "Pad" || n.inputs.size() < 2 || !consts_.count(n.inputs[1])) return false;
        for (double v : consts_.at(n.inputs[1]).values)
            if (v != 0) return false;
        return true;
    }

    /// Identity, inference-mode Dropout and a Pad of nothing: their output is their input.
    void forward_identities() {
        for (Node& n : nodes_) {
            if (!n.alive || (n.kind != "Identity" && n.kind != "Dropout" && !pads_nothing(n))) continue;
            if (n.outputs.size() > 1 && !n.outputs[1].empty() && readers(n.outputs[1]) > 0) continue;  // a used mask
            forward_[n.outputs[0]] = resolve(n.inputs[0]);
            n.alive = false;
        }
        stale_ = true;  // (a Dropout's mask, counted above, is never forwarded: once is enough)
    }
    /// The value `name` stands for: an Identity's output is its input (a chain followed to its
    /// start, without recursion).
    std::string resolve(std::string name) const {
        for (auto it = forward_.find(name); it != forward_.end(); it = forward_.find(name)) name = it->second;
        return name;
    }

    // ---- patterns ------------------------------------------------------------------------------

    /// Who writes and reads a value among the alive nodes (rebuilt after a rewrite, so the
    /// patterns' lookups are by name, not scans of every node).
    struct Uses {
        Node* producer = nullptr;
        std::vector<Node*> readers;  ///< once per input that reads it
        int graph_outputs = 0;       ///< the model's outputs of this name
    };
    const Uses& uses(const std::string& name) {
        if (stale_) {
            uses_.clear();
            for (Node& n : nodes_) {
                if (!n.alive) continue;
                for (const std::string& o : n.outputs) uses_[o].producer = &n;
                for (const std::string& i : n.inputs)
                    if (!i.empty()) uses_[resolve(i)].readers.push_back(&n);
            }
            for (const auto& o : model_.graph().output()) ++uses_[o.name()].graph_outputs;
            stale_ = false;
        }
        static const Uses kNone;
        const auto it = uses_.find(name);
        return it == uses_.end() ? kNone : it->second;
    }
    Node* producer(const std::string& name) { return uses(name).producer; }
    int readers(const std::string& name) {
        const Uses& u = uses(name);
        return int(u.readers.size()) + u.graph_outputs;
    }
    /// The one alive node reading `name`, nullptr when none or several (or a graph output).
    Node* sole_reader(const std::string& name) { return readers(name) == 1 ? uses(name).readers.front() : nullptr; }
    bool scalar_near(const std::string& name, double value, double tolerance = 1e-4) const {
        const auto it = consts_.find(name);
        return it != consts_.end() && it->second.values.size() == 1 &&
               std::fabs(it->second.values[0] - value) <= tolerance * std::max(1.0, std::fabs(value));
    }
    /// For a binary node with a scalar constant `value` on one side: the other input, "" if not.
    std::string other_than_scalar(const Node* n, const std::string& kind, double value) const {
        if (!n || n->kind != kind || n->inputs.size() != 2) return "";
        if (scalar_near(n->inputs[1], value)) return resolve(n->inputs[0]);
        if (scalar_near(n->inputs[0], value)) return resolve(n->inputs[1]);
        return "";
    }
    /// For a binary `kind` node reading `one`: its other input, "" if not.
    std::string other_than(const Node* n, const std::string& kind, const std::string& one) const {
        if (!n || n->kind != kind || n->inputs.size() != 2) return "";
        if (resolve(n->inputs[0]) == one) return resolve(n->inputs[1]);
        if (resolve(n->inputs[1]) == one) return resolve(n->inputs[0]);
        return "";
    }
    /// Replaces the nodes `gone` (all alive) by one node `kind` reading `inputs` and writing `out`.
    void replace(std::vector<Node*> gone, const std::string& kind, std::vector<std::string> inputs,
                 const std::string& out, std::map<std::string, AttrValue> attributes) {
        Node& first = *gone.front();
        Node fused;
        fused.kind = kind;
        fused.name = first.name + "." + kind;
        fused.inputs = std::move(inputs);
        fused.outputs = {out};
        fused.attributes = std::move(attributes);
        for (Node* n : gone) n->alive = false;
        stale_ = true;
        // In the last replaced node's place: every input is computed before it.
        Node* last = gone.front();
        for (Node* n : gone)
            if (n > last) last = n;
        *last = std::move(fused);
    }

    /// 0.5 x (1 + erf(x / sqrt 2)): Div (or Mul by 1/sqrt 2), Erf, Add 1, Mul x, Mul 0.5 (the
    /// halving first or last).
    void recognise_gelu() {
        for (Node& erf : nodes_) {
            if (!erf.alive || erf.kind != "Erf") continue;
            Node* scale = producer(resolve(erf.inputs[0]));
            std::string x = other_than_scalar(scale, "Div", std::sqrt(2.0));
            if (x.empty()) x = other_than_scalar(scale, "Mul", 1 / std::sqrt(2.0));
            if (x.empty() || readers(scale->outputs[0]) != 1) continue;
            Node* plus = sole_reader(erf.outputs[0]);
            if (other_than_scalar(plus, "Add", 1.0) != erf.outputs[0]) continue;
            if (!finish_gelu(x, {scale, &erf, plus}, plus->outputs[0], {})) continue;
        }
    }

    /// After `one_plus` = 1 + f(x): x * one_plus * 0.5 in either order, replaced by Gelu.
    bool finish_gelu(const std::string& x, std::vector<Node*> nodes, const std::string& one_plus,
                     std::map<std::string, AttrValue> attributes) {
        Node* m1 = sole_reader(one_plus);
        const std::string other = other_than(m1, "Mul", one_plus);
        if (other.empty()) return false;
        if (other == x) {  // (x * (1 + f)) * 0.5
            Node* m2 = sole_reader(m1->outputs[0]);
            if (other_than_scalar(m2, "Mul", 0.5) != m1->outputs[0]) return false;
            nodes.push_back(m1);
            nodes.push_back(m2);
            replace(nodes, "Gelu", {x}, m2->outputs[0], attributes);
            return true;
        }
        Node* half = producer(other);  // (0.5 x) * (1 + f) or (x * 0.5) * (1 + f)
        if (other_than_scalar(half, "Mul", 0.5) != x || readers(other) != 1) return false;
        nodes.push_back(half);
        nodes.push_back(m1);
        replace(nodes, "Gelu", {x}, m1->outputs[0], attributes);
        return true;
    }

    /// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), x^3 as Pow(x, 3) or x * (x * x).
    void recognise_tanh_gelu() {
        for (Node& tanh : nodes_) {
            if (!tanh.alive || tanh.kind != "Tanh") continue;
            Node* scale = producer(resolve(tanh.inputs[0]));
            const std::string sum = other_than_scalar(scale, "Mul", std::sqrt(2 / M_PI));
            Node* add = sum.empty() || readers(sum) != 1 ? nullptr : producer(sum);
            if (!add || add->kind != "Add" || add->inputs.size() != 2) continue;
            for (int side = 0; side < 2; ++side) {
                const std::string x = resolve(add->inputs[size_t(side)]), cubic = resolve(add->inputs[size_t(1 - side)]);
                Node* times = readers(cubic) == 1 ? producer(cubic) : nullptr;
                const std::string cube = other_than_scalar(times, "Mul", 0.044715);
                if (cube.empty() || readers(cube) != 1) continue;
                Node* c = producer(cube);
                std::vector<Node*> nodes{c, times, add, scale, &tanh};
                bool is_cube = false;
                if (c && c->kind == "Pow" && resolve(c->inputs[0]) == x && scalar_near(c->inputs[1], 3.0)) {
                    is_cube = true;
                } else if (const std::string sq = other_than(c, "Mul", x); !sq.empty() && readers(sq) == 1) {
                    Node* square = producer(sq);
                    if (square && square->kind == "Mul" && resolve(square->inputs[0]) == x &&
                        resolve(square->inputs[1]) == x) {
                        nodes.insert(nodes.begin(), square);
                        is_cube = true;
                    }
                }
                if (!is_cube) continue;
                Node* plus = sole_reader(tanh.outputs[0]);
                if (other_than_scalar(plus, "Add", 1.0) != tanh.outputs[0]) break;
                nodes.push_back(plus);
                finish_gelu(x, nodes, plus->outputs[0], {{"approximate", std::string("tanh")}});
                break;
            }
        }
    }

    /// The axes a Reduce node reduces (its attribute below opset 18, else its input).
    std::vector<int64_t> reduce_axes(const Node& n) const {
        if (const auto it = n.attributes.find("axes"); it != n.attributes.end())
            return std::get<std::vector<int64_t>>(it->second);
        if (n.inputs.size() > 1 && consts_.count(n.inputs[1])) return consts_.at(n.inputs[1]).ints();
        return {};
    }
    bool reduces_last(const Node* n, const std::string& x) {
        if (!n || n->kind != "ReduceMean" || resolve(n->inputs[0]) != x || int_attr(*n, "keepdims", 1) != 1) return false;
        const std::vector<int64_t> axes = reduce_axes(*n);
        std::vector<uint64_t> shape;
        const bool ranked = static_shape(x, shape);
        return axes.size() == 1 && (axes[0] == -1 || (ranked && axes[0] == int64_t(shape.size()) - 1));
    }

    /// (x - mean) / sqrt(mean((x - mean)^2) + eps) * gamma + beta over the last axis, as
    /// torch.onnx.export spells LayerNorm below opset 17.
    void recognise_layer_norm() {
        for (Node& mean : nodes_) {
            if (!mean.alive || mean.kind != "ReduceMean") continue;
            const std::string x = resolve(mean.inputs[0]);
            if (!reduces_last(&mean, x)) continue;
            Node* sub = sole_reader(mean.outputs[0]);
            if (!sub || sub->kind != "Sub" || resolve(sub->inputs[0]) != x || readers(sub->outputs[0]) != 2) continue;
            Node *pow = nullptr, *div = nullptr;
            for (Node* n : uses(sub->outputs[0]).readers)
                if (resolve(n->inputs[0]) == sub->outputs[0]) {
                    if (n->kind == "Pow" && scalar_near(n->inputs[1], 2.0)) pow = n;
                    if (n->kind == "Div") div = n;
                }
            if (!pow || !div) continue;
            Node* var = sole_reader(pow->outputs[0]);
            if (!reduces_last(var, pow->outputs[0])) continue;
            Node* eps = sole_reader(var->outputs[0]);
            if (!eps || eps->kind != "Add") continue;
            const std::string e_name = other_than(eps, "Add", var->outputs[0]);
            if (e_name.empty() || !consts_.count(e_name) || consts_.at(e_name).values.size() != 1) continue;
            Node* sqrt = sole_reader(eps->outputs[0]);
            if (!sqrt || sqrt->kind != "Sqrt" || sole_reader(sqrt->outputs[0]) != div ||
                resolve(div->inputs[1]) != sqrt->outputs[0])
                continue;
            Node* mul = sole_reader(div->outputs[0]);
            const std::string gamma = other_than(mul, "Mul", div->outputs[0]);
            if (gamma.empty()) continue;
            Node* add = sole_reader(mul->outputs[0]);
            const std::string beta = other_than(add, "Add", mul->outputs[0]);
            if (beta.empty()) continue;
            replace({&mean, sub, pow, var, eps, sqrt, div, mul, add}, "LayerNormalization", {x, gamma, beta},
                    add->outputs[0], {{"axis", int64_t(-1)}, {"epsilon", consts_.at(e_name).values[0]}});
        }
    }

    /// softmax(x / c + mask) or softmax(x * c + mask) over the last axis, the mask broadcasting
    /// (attention's causal or padding mask): one masked_softmax, which takes any mask the
    /// scores' matrices repeat, where an Add takes only a row, a column or a scalar.
    void recognise_masked_softmax() {
        for (Node& softmax : nodes_) {
            if (!softmax.alive || softmax.kind != "Softmax") continue;
            std::vector<uint64_t> shape;
            const int64_t axis = int_attr(softmax, "axis", out_.opset < 13 ? 1 : -1);
            if (!static_shape(softmax.outputs[0], shape) || shape.size() < 2 ||
                (axis != -1 && axis != int64_t(shape.size()) - 1))
                continue;
            Node* add = readers(resolve(softmax.inputs[0])) == 1 ? producer(resolve(softmax.inputs[0])) : nullptr;
            if (!add || add->kind != "Add" || add->inputs.size() != 2) continue;
            std::vector<uint64_t> a, b;
            const std::string x0 = resolve(add->inputs[0]), x1 = resolve(add->inputs[1]);
            if (!static_shape(x0, a) && consts_.count(x0)) a = consts_.at(x0).shape;
            if (!static_shape(x1, b) && consts_.count(x1)) b = consts_.at(x1).shape;
            std::string scores = a == shape ? x0 : b == shape ? x1 : "", mask = a == shape ? x1 : x0;
            if (scores.empty() || (a == shape && b == shape)) continue;  // a same-shape Add lowers as it is
            std::vector<Node*> gone{add};
            double scale = 1;
            if (Node* s = readers(scores) == 1 ? producer(scores) : nullptr; s && (s->kind == "Div" || s->kind == "Mul")) {
                const std::string& c = s->inputs.size() == 2 ? s->inputs[1] : s->inputs[0];
                if (consts_.count(c) && consts_.at(c).values.size() == 1 && consts_.at(c).values[0] != 0) {
                    const double v = consts_.at(c).values[0];
                    scale = s->kind == "Div" ? 1 / v : v;
                    scores = resolve(s->inputs[0]);
                    gone.insert(gone.begin(), s);
                }
            }
            gone.push_back(&softmax);
            replace(gone, "masked_softmax", {scores, mask}, softmax.outputs[0], {{"scale", scale}});
        }
    }

    /// Pad (constant zeros, on H and W only) then AveragePool: torch's AvgPool2d with padding and
    /// count_include_pad, one AveragePool with those pads counting the padding.
    void recognise_padded_average_pool() {
        for (Node& pad : nodes_) {
            if (!pad.alive || pad.kind != "Pad" || pad.inputs.size() < 2 || !consts_.count(pad.inputs[1])) continue;
            if (const auto it = pad.attributes.find("mode");
                it != pad.attributes.end() && std::get<std::string>(it->second) != "constant")
                continue;
            if (pad.inputs.size() > 2 && !pad.inputs[2].empty() && !scalar_near(pad.inputs[2], 0.0, 0.0)) continue;
            const std::vector<int64_t> p = consts_.at(pad.inputs[1]).ints();
            if (p.size() != 8 || p[0] || p[1] || p[4] || p[5]) continue;  // N and C unpadded
            Node* pool = sole_reader(pad.outputs[0]);
            if (!pool || pool->kind != "AveragePool") continue;
            const auto own = pool->attributes.find("pads");
            const std::vector<int64_t> none(4, 0);
            if (own != pool->attributes.end() && std::get<std::vector<int64_t>>(own->second) != none) continue;
            std::map<std::string, AttrValue> attributes = pool->attributes;
            attributes["pads"] = std::vector<int64_t>{p[2], p[3], p[6], p[7]};
            attributes["count_include_pad"] = int64_t(1);
            replace({&pad, pool}, "AveragePool", {resolve(pad.inputs[0])}, pool->outputs[0], attributes);
        }
    }

    // ---- quantization (docs/onnx.md, Quantization) ----------------------------------------------

    /// The ONNX element type of value `name` (0 when unknown): an initializer's, a Constant's
    /// or what shape inference noted.
    int32_t onnx_type(const std::string& name) const {
        if (uint8_.count(name)) return onnx::TensorProto::UINT8;
        if (const auto c = consts_.find(name); c != consts_.end()) {
            if (c->second.dtype == DType::Int8) return onnx::TensorProto::INT8;
            if (c->second.dtype == DType::Int32) return onnx::TensorProto::INT32;
        }
        const auto k = known_.find(name);
        return k == known_.end() ? 0 : k->second.onnx_type;
    }

    /// The shape of value `name` (a constant's or a static one), false when unknown.
    bool shape_of(const std::string& name, std::vector<uint64_t>& shape) const {
        if (const auto c = consts_.find(name); c != consts_.end()) {
            shape = c->second.shape;
            return true;
        }
        return static_shape(name, shape);
    }

    /// The quantization node `n` gives value `q` (int8, uint8 or int32) from its scale and zero
    /// point inputs (`zp` "" when omitted), per tensor or per index of `axis` of q; fails naming
    /// the node on a scale that is not a constant, not finite or not > 0, a zero point out of
    /// the type's range, or a scale count that is not 1 or the axis' size. uint8 becomes int8.
    Quantization quantization(const Node& n, const std::string& q, const std::string& scale_name,
                              const std::string& zp_name, int64_t axis) {
        const std::string where = n.kind + " '" + n.name + "': ";
        const std::string scale = resolve(scale_name), zp = zp_name.empty() ? "" : resolve(zp_name);
        if (!consts_.count(scale))
            fail(source_, where + "scale '" + scale + "' is not a constant (an initializer or a Constant)");
        if (!zp.empty() && !consts_.count(zp))
            fail(source_, where + "zero point '" + zp + "' is not a constant (an initializer or a Constant)");
        const int32_t type = !zp.empty() ? onnx_type(zp) : onnx_type(q) ? onnx_type(q) : onnx::TensorProto::UINT8;
        if (type != onnx::TensorProto::INT8 && type != onnx::TensorProto::UINT8 && type != onnx::TensorProto::INT32)
            fail(source_, where + "quantized type " + std::to_string(type) + " of '" + q +
                              "' not imported (only int8, uint8 and int32)");
        const Const& s = consts_.at(scale);
        Quantization out;
        for (double v : s.values) {
            if (!std::isfinite(v) || v <= 0)
                fail(source_, where + "scale '" + scale + "' holds " + format_number(v) + ", expected finite and > 0");
            out.scale.push_back(float(v));
        }
        if (out.scale.empty()) fail(source_, where + "scale '" + scale + "' is empty");
        const double lo = type == onnx::TensorProto::INT32 ? 0 : -128, hi = type == onnx::TensorProto::INT32 ? 0 : 127;
        if (zp.empty()) {
            out.zero_point.assign(out.scale.size(), type == onnx::TensorProto::UINT8 ? -kUint8Offset : 0);
        } else {
            const Const& z = consts_.at(zp);
            if (z.values.size() != out.scale.size())
                fail(source_, where + "zero point '" + zp + "' has " + std::to_string(z.values.size()) +
                                  " values for " + std::to_string(out.scale.size()) + " scales");
            for (double v : z.values) {
                if (v < lo || v > hi || v != std::trunc(v)) {
                    const double shown = type == onnx::TensorProto::UINT8 ? v + kUint8Offset : v;
                    fail(source_, where + "zero point '" + zp + "' holds " + format_number(shown) +
                                      (type == onnx::TensorProto::INT32 ? std::string(", expected 0 (int32)")
                                       : type == onnx::TensorProto::UINT8 ? ", out of [0, 255] (uint8)"
                                                                          : ", out of [-128, 127] (int8)"));
                }
                out.zero_point.push_back(int32_t(v));
            }
        }
        if (out.scale.size() > 1) {
            std::vector<uint64_t> shape;
            if (!shape_of(q, shape)) fail(source_, where + "'" + q + "' has no static shape for a per-axis scale");
            const int64_t rank = int64_t(shape.size());
            if (axis < -rank || axis >= rank)
                fail(source_, where + "axis " + std::to_string(axis) + " is outside the rank " + std::to_string(rank) +
                                  " of '" + q + "'");
            out.axis = uint32_t(axis < 0 ? axis + rank : axis);
            if (out.scale.size() != shape[out.axis])
                fail(source_, where + "scale '" + scale + "' has " + std::to_string(out.scale.size()) +
                                  " values but axis " + std::to_string(out.axis) + " of '" + q + "' has size " +
                                  std::to_string(shape[out.axis]));
        }
        return out;
    }

    /// Records `quant` for value `q`; fails when another node gave it a different one.
    void set_quant(const Node& n, const std::string& q, const Quantization& quant) {
        const auto [it, added] = quants_.emplace(resolve(q), quant);
        if (!added && !(it->second == quant))
            fail(source_, n.kind + " '" + n.name + "': '" + q + "' has a different scale or zero point at another "
                                                             "node (one quantization per tensor)");
    }

    /// QuantizeLinear and DequantizeLinear keep x (y) only, their scale and zero point becoming
    /// the int8 side's quant; QLinearConv and QLinearMatMul become Conv and MatMul on int8
    /// tensors with quant (the bias int32, scale s_x s_w[c]); Cast's `to` becomes a type name.
    void import_quantization() {
        for (Node& n : nodes_) {
            if (!n.alive) continue;
            auto in = [&](size_t i) { return i < n.inputs.size() ? resolve(n.inputs[i]) : std::string(); };
            const int64_t axis = int_attr(n, "axis", 1);
            if (n.kind == "QuantizeLinear") {
                set_quant(n, n.outputs.at(0), quantization(n, n.outputs.at(0), in(1), in(2), axis));
                n.inputs.resize(1);
                n.attributes.clear();
            } else if (n.kind == "DequantizeLinear") {
                set_quant(n, in(0), quantization(n, in(0), in(1), in(2), axis));
                n.inputs.resize(1);
                n.attributes.clear();
            } else if (n.kind == "QLinearConv" || n.kind == "QLinearMatMul") {
                const bool conv = n.kind == "QLinearConv";
                const std::string x = in(0), w = in(3), y = n.outputs.at(0);
                std::vector<uint64_t> w_shape;
                if (!shape_of(w, w_shape) || w_shape.empty())
                    fail(source_, n.kind + " '" + n.name + "': '" + w + "' has no static shape");
                const Quantization qx = quantization(n, x, in(1), in(2), 1);
                const Quantization qw = quantization(n, w, in(4), in(5), conv ? 0 : int64_t(w_shape.size()) - 1);
                set_quant(n, x, qx);
                set_quant(n, w, qw);
                set_quant(n, y, quantization(n, y, in(6), in(7), 1));
                std::vector<std::string> inputs{x, w};
                if (conv && !in(8).empty()) {
                    Quantization qb;  // the bias' scale s_x s_w[c], zero point 0
                    for (float sw : qw.scale) qb.scale.push_back(qx.scale[0] * sw);
                    qb.zero_point.assign(qb.scale.size(), 0);
                    if (onnx_type(in(8)) != onnx::TensorProto::INT32)
                        fail(source_, n.kind + " '" + n.name + "': bias '" + in(8) + "' is not int32");
                    set_quant(n, in(8), qb);
                    inputs.push_back(in(8));
                }
                n.kind = conv ? "Conv" : "MatMul";
                n.inputs = inputs;
            } else if (n.kind == "Cast") {
                const int64_t to = int_attr(n, "to", 0);
                DType type;
                if (to == onnx::TensorProto::UINT8 || !dtype_of(int32_t(to), type) || is_integer(type) ||
                    to == onnx::TensorProto::DOUBLE)
                    fail(source_, "Cast '" + n.name + "': to = " + onnx_type_name(int32_t(to)) +
                                      " not imported (only float32, float16 and bfloat16)");
                n.attributes["to"] = std::string(to_string(type));
            }
        }
        stale_ = true;
    }

    // ---- the graph -----------------------------------------------------------------------------

    /// The graph's name for ONNX value `name` (a file name: '/', '\\' and ':' become '.').
    std::string tensor_name(const std::string& name) {
        if (const auto it = names_.find(name); it != names_.end()) return it->second;
        std::string out;  // each run of '/', '\\', ':' and control characters becomes one '.'
        const bool utf8 = invalid_utf8_at(name) == std::string::npos;  // else every non-ASCII byte too
        for (const char c : name) {
            const unsigned char u = static_cast<unsigned char>(c);
            const bool bad = c == '/' || c == '\\' || c == ':' || u < 32 || u == 0x7f || (!utf8 && u >= 0x80);
            if (!bad) out += c;
            else if (!out.empty() && out.back() != '.') out += '.';
        }
        if (out.empty() || out == "..") out = "t";
        // Room for a "_<n>" within a name's 200 bytes, cut where a UTF-8 character starts.
        if (out.size() > 190) {
            size_t cut = 190;
            while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xc0) == 0x80) --cut;
            out.resize(cut);
        }
        const std::string base = out;
        for (int i = 1; taken_.count(out) || !tensor_name_problem(out).empty(); ++i) out = base + "_" + std::to_string(i);
        taken_.insert(out);
        names_[name] = out;
        if (out != name) out_.renamed.push_back({name, out});
        return out;
    }

    /// The tensor for ONNX value `name`, declared on first use.
    uint32_t tensor(Graph& g, const std::string& onnx_name) {
        const std::string name = tensor_name(resolve(onnx_name));
        if (const auto t = g.find_tensor(name)) return *t;
        Tensor t(name, {});
        const auto quant = quants_.find(resolve(onnx_name));
        if (uint8_.count(resolve(onnx_name)) && quant == quants_.end())
            fail(source_, "uint8 constant '" + resolve(onnx_name) +
                              "' is read as a value, not imported (uint8 only as quantized data)");
        if (const auto c = consts_.find(resolve(onnx_name)); c != consts_.end() && quant != quants_.end()) {
            // A quantized constant (a weight, a bias): its integers with their quantization.
            if (c->second.dtype != DType::Int8 && c->second.dtype != DType::Int32)
                fail(source_, "quantized constant '" + resolve(onnx_name) + "' is " + to_string(c->second.dtype) +
                                  ", expected int8, uint8 or int32");
            t.dtype = c->second.dtype;
            t.shape = c->second.shape;
            t.rank0 = t.shape.empty();
            t.role = TensorRole::Constant;
            t.quant = quant->second;
            Weight& w = out_.weights[name];
            w.shape = c->second.shape;
            w.dtype = c->second.dtype;
            const double lo = w.dtype == DType::Int8 ? -128 : double(INT32_MIN);
            const double hi = w.dtype == DType::Int8 ? 127 : double(INT32_MAX);
            for (double v : c->second.values) {
                if (v < lo || v > hi)
                    fail(source_, "tensor '" + resolve(onnx_name) + "' holds " + format_number(v) + ", outside " +
                                      to_string(w.dtype));
                w.integers.push_back(int32_t(v));
            }
        } else if (quant != quants_.end()) {  // an int8 tensor computed by an op
            t.dtype = onnx_type(resolve(onnx_name)) == onnx::TensorProto::INT32 ? DType::Int32 : DType::Int8;
            t.quant = quant->second;
        } else if (c != consts_.end()) {
            t.dtype = c->second.dtype == DType::Int8 || c->second.dtype == DType::Int32 ? DType::Int64 : c->second.dtype;
            t.shape = c->second.shape;
            t.rank0 = t.shape.empty();
            t.role = TensorRole::Constant;
            if (is_integer(t.dtype)) {
                t.value = c->second.ints();
            } else if (c->second.elements() <= kInlineFloats &&  // JSON numbers: no NaN or infinity inline
                       std::all_of(c->second.values.begin(), c->second.values.end(),
                                   [](double v) { return std::isfinite(v); })) {
                t.value = c->second.values;
            } else {
                Weight& w = out_.weights[name];
                w.shape = c->second.shape;
                w.values.assign(c->second.values.begin(), c->second.values.end());
            }
        } else if (const auto k = known_.find(resolve(onnx_name)); k != known_.end() && k->second.known_type) {
            t.dtype = k->second.dtype;
        }
        return g.add_tensor(std::move(t));
    }

    /// What an ONNX node of this opset needs to be one of our ops ("" when nothing), and the
    /// op's inputs made from attributes older opsets have.
    std::string adapt(Node& n) {
        const int64_t opset = out_.opset;
        auto attribute_to_input = [&](const std::string& attribute, size_t slot) {
            const auto it = n.attributes.find(attribute);
            if (it == n.attributes.end()) return;
            const std::string name = n.name + "." + attribute;
            std::vector<int64_t> values = std::get<std::vector<int64_t>>(it->second);
            consts_[name] = {DType::Int64, {uint64_t(values.size())}, {values.begin(), values.end()}};
            n.attributes.erase(it);
            if (n.inputs.size() <= slot) n.inputs.resize(slot + 1);
            n.inputs[slot] = name;
        };
        if ((n.kind == "Squeeze" || n.kind == "Unsqueeze") && opset < 13) attribute_to_input("axes", 1);
        if (n.kind == "ReduceSum" && opset < 13) attribute_to_input("axes", 1);
        if ((n.kind == "ReduceMean" || n.kind == "ReduceMax") && opset < 18) attribute_to_input("axes", 1);
        if (n.kind == "Split" && opset < 13) attribute_to_input("split", 1);
        if (n.kind == "Softmax" && opset < 13) {  // coerces to 2D at axis: ours when that is the last
            std::vector<uint64_t> shape;
            const int64_t axis = int_attr(n, "axis", 1);
            if (!static_shape(resolve(n.inputs[0]), shape)) return "input of unknown rank";
            const int64_t rank = int64_t(shape.size());
            if (axis != -1 && axis != rank - 1)
                return "opset " + std::to_string(opset) + " axis = " + std::to_string(axis) +
                       " (the input coerced to 2D there) not yet supported, only the last axis";
            n.attributes["axis"] = int64_t(-1);
        }
        if (n.kind == "BatchNormalization" && int_attr(n, "training_mode", 0) != 0) return "training_mode = 1 not imported";
        return "";
    }

    ImportedModel build() {
        Graph& g = out_.graph;
        const onnx::GraphProto& proto = model_.graph();
        std::set<std::string> initializers;
        for (const auto& t : proto.initializer()) initializers.insert(t.name());
        for (const auto& v : proto.input()) {
            if (initializers.count(v.name())) continue;
            const auto known = known_.find(v.name());  // note_shape() notes dense tensors only
            if (known == known_.end())
                fail(source_, "input '" + v.name() + "' is not a dense tensor (a sparse tensor, a sequence or a map), "
                                                     "not imported");
            const Known& k = known->second;
            if (!k.ranked) fail(source_, "input '" + v.name() + "' has no shape");
            if (!k.symbolic.empty())
                fail(source_, "input '" + v.name() + "' has a dimension that is not a number ('" + k.symbolic +
                                  "'): export the model with fixed shapes (torch.onnx.export without dynamic_axes)");
            if (k.onnx_type == onnx::TensorProto::UINT8)
                fail(source_, "input '" + v.name() + "' is uint8, not imported (quantized inputs are int8: "
                                                     "q - 128 with the zero point - 128 stands for the same reals)");
            if (!k.known_type)
                fail(source_, "input '" + v.name() + "' has ONNX data type " + std::to_string(k.onnx_type) + ", not imported");
            Tensor t(tensor_name(v.name()), k.shape, k.dtype, TensorRole::Input);
            t.rank0 = k.shape.empty();
            if (const auto q = quants_.find(v.name()); q != quants_.end()) t.quant = q->second;
            g.add_tensor(std::move(t));
        }
        std::string unsupported;
        std::vector<Op> ops;
        for (Node& n : nodes_) {
            if (!n.alive) continue;
            std::string problem = op_registry().find(n.kind) ? adapt(n) : "";
            if (!op_registry().find(n.kind) || !problem.empty()) {
                unsupported += (unsupported.empty() ? "" : ", ") + n.kind + " (" + n.name +
                               (problem.empty() ? "" : ": " + problem) + ")";
                continue;
            }
            Op op;
            op.kind = n.kind;
            op.name = n.name;
            if (invalid_utf8_at(op.name) != std::string::npos)  // a graph's names are JSON text: ASCII of it
                for (char& c : op.name)
                    if (static_cast<unsigned char>(c) >= 0x80) c = '.';
            for (const std::string& in : n.inputs) op.inputs.push_back(in.empty() ? kNoTensor : tensor(g, in));
            for (const std::string& o : n.outputs) op.outputs.push_back(o.empty() ? kNoTensor : tensor(g, o));
            op.attributes = n.attributes;
            ops.push_back(std::move(op));
        }
        if (!unsupported.empty()) fail(source_, "Unsupported operators: " + unsupported);
        std::set<std::string> op_names;
        for (Op& op : ops) {
            const std::string base = op.name;
            for (int i = 1; op_names.count(op.name); ++i) op.name = base + "_" + std::to_string(i);
            op_names.insert(op.name);
            g.add_op(std::move(op));
        }
        for (const auto& v : proto.output()) {
            const std::string name = tensor_name(resolve(v.name()));
            const auto t = g.find_tensor(name);
            if (!t) fail(source_, "output '" + v.name() + "' is computed by no imported op (a constant)");
            if (g.tensor(*t).role && *g.tensor(*t).role != TensorRole::Output)
                fail(source_, "output '" + v.name() + "' is also the model's input or a constant, not imported");
            g.tensor(*t).role = TensorRole::Output;
        }
        g.check(source_);
        return std::move(out_);
    }

    struct Known {
        bool known_type = false, ranked = false;
        int32_t onnx_type = 0;
        DType dtype = DType::Float32;
        std::vector<uint64_t> shape;  ///< 0 where symbolic
        std::string symbolic;         ///< a dimension's name when one is not a number
    };

    onnx::ModelProto& model_;
    const std::string source_;
    ImportedModel out_;
    std::map<std::string, Const> consts_;
    std::map<std::string, Known> known_;
    std::vector<Node> nodes_;
    std::map<std::string, std::string> forward_;  ///< an Identity's output -> its input
    std::map<std::string, Uses> uses_;            ///< uses(): by value name
    bool stale_ = true;                           ///< uses_ must be rebuilt
    std::map<std::string, std::string> names_;    ///< ONNX name -> graph name
    std::set<std::string> uint8_;                 ///< uint8 constants (read as int8, q - 128)
    std::map<std::string, Quantization> quants_;  ///< by ONNX value: the int8 / int32 side of a Q, DQ, QLinear*
    std::set<std::string> taken_;
};

}  // namespace

bool is_onnx_path(const std::string& path) {
    return path.size() > 5 && path.compare(path.size() - 5, 5, ".onnx") == 0;
}

ImportedModel import_onnx_bytes(const std::string& bytes, const std::string& source) {
    onnx::ModelProto model;
    if (!model.ParseFromString(bytes)) fail(source, "not an ONNX model (its protobuf does not parse)");
    return Importer(model, source).run();
}

ImportedModel import_onnx(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw CompileError(path + ": cannot open file");
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return import_onnx_bytes(bytes.str(), path);
}

}  // namespace kpu::compiler
