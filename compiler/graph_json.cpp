#include "compiler/graph_json.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "compiler/compile_error.h"
#include "compiler/ops/matmul.h"
#include "compiler/ops/op_schema.h"
#include "hardware/input_file.h"
#include "hardware/json_reader.h"

namespace kpu::compiler {
namespace {

using json = nlohmann::json;
using hw::JsonReader;

/// The tensor's "shape" ([] is a scalar).
void read_shape(JsonReader& fields, Tensor& x) {
    const json& shape = fields.array("shape");
    for (size_t i = 0; i < shape.size(); ++i) {
        std::string path = fields.path_of("shape", i);
        x.shape.push_back(fields.as_uint(shape[i], path));
        if (x.shape.back() == 0) fields.fail(path, "dimension is 0");
    }
    x.rank0 = x.shape.empty();
}

/// The tensor's inline "value": a list (row-major) or, for a scalar, a number; integers for
/// an integer dtype. Without a shape, a list is rank 1 and a number rank 0.
void read_value(JsonReader& fields, Tensor& x) {
    const json* value = fields.optional("value");
    if (!value) return;
    const std::string path = fields.path_of("value");
    const bool list = value->is_array();
    const json items = list ? *value : json::array({*value});
    std::vector<int64_t> ints;
    std::vector<double> doubles;
    for (size_t i = 0; i < items.size(); ++i) {
        const std::string at = list ? path + "[" + std::to_string(i) + "]" : path;
        if (is_integer(x.dtype)) {
            if (!items[i].is_number_integer())
                fields.fail(at, "expected an integer (the tensor is " + std::string(to_string(x.dtype)) + "), got " +
                                    hw::show(items[i]));
            ints.push_back(items[i].is_number_unsigned() && items[i].get<uint64_t>() > uint64_t(INT64_MAX)
                               ? (fields.fail(at, "integer out of int64's range"), 0)
                               : items[i].get<int64_t>());
        } else {
            doubles.push_back(fields.as_number(items[i], at));
        }
    }
    if (is_integer(x.dtype)) x.value = std::move(ints);
    else x.value = std::move(doubles);
    if (!x.has_shape()) {
        if (list) x.shape = {uint64_t(items.size())};
        else x.rank0 = true;
    }
}

/// An optional enumerated field: `fallback` when absent, `problem(name)` when unknown.
template <typename T, typename Parse, typename Problem>
T read_choice(JsonReader& fields, const std::string& key, T fallback, Parse parse, Problem problem) {
    T out = fallback;
    if (const json* value = fields.optional(key)) {
        const std::string name = fields.as_string(*value, fields.path_of(key));
        if (!parse(name, out)) fields.fail(fields.path_of(key), problem(name));
    }
    return out;
}

/// The tensor's "quant": {"scale": [..], "zero_point": [..], "axis": a} (axis for per-channel).
void read_quantization(JsonReader& fields, Tensor& x) {
    if (!fields.has("quant")) return;
    JsonReader q = fields.object("quant");
    Quantization quant;
    const json& scales = q.array("scale");
    for (size_t i = 0; i < scales.size(); ++i) quant.scale.push_back(float(q.as_number(scales[i], q.path_of("scale", i))));
    const json& zeros = q.array("zero_point");
    for (size_t i = 0; i < zeros.size(); ++i) {
        const std::string at = q.path_of("zero_point", i);
        const double z = q.as_number(zeros[i], at);
        if (z != std::floor(z) || std::fabs(z) > 2147483647.0) q.fail(at, "expected an int32 zero point, got " + zeros[i].dump());
        quant.zero_point.push_back(int32_t(z));
    }
    if (q.has("axis")) quant.axis = uint32_t(q.number("axis", 0, double(kMaxRank - 1)));
    q.finish();
    x.quant = std::move(quant);
}

DType read_dtype(JsonReader& fields) {
    return read_choice(fields, "dtype", DType::Float32, parse_dtype, [](const std::string& name) {
        return "unknown dtype '" + name + "' (" + hw::names_in(kDTypeNames) + ")";
    });
}

Activation read_activation(JsonReader& fields) {
    return read_choice(fields, "activation", Activation::None, parse_activation, [](const std::string& name) {
        return "unknown activation '" + name + "' (" + hw::names_in(hw::kActivationNames) + ")";
    });
}

/// The single-op form has the fused matmul only.
void read_single_op_kind(JsonReader& fields) {
    const std::string kind = fields.string("op");
    if (kind != "matmul") fields.fail(fields.path_of("op"), "unknown op '" + kind + "' (supported: matmul)");
}

/// One attribute's JSON value as `spec`'s type; fails at `path` naming the op.
AttrValue read_attribute(JsonReader& o, const std::string& path, const std::string& op, const AttrSpec& spec,
                         const json& value) {
    const auto wrong = [&]() {
        o.fail(path, op + ": attribute '" + spec.name + "' expects " + to_string(spec.type) + ", got " + hw::show(value));
    };
    const auto integer = [&](const json& v) {
        if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))) wrong();
        return v.get<int64_t>();
    };
    const auto number = [&](const json& v) {
        if (!v.is_number()) wrong();
        return v.get<double>();
    };
    switch (spec.type) {
        case AttrType::Int: return integer(value);
        case AttrType::Float: return number(value);
        case AttrType::String:
            if (!value.is_string()) wrong();
            return value.get<std::string>();
        case AttrType::Ints: {
            if (!value.is_array()) wrong();
            std::vector<int64_t> out;
            for (const json& v : value) out.push_back(integer(v));
            return out;
        }
        case AttrType::Floats: {
            if (!value.is_array()) wrong();
            std::vector<double> out;
            for (const json& v : value) out.push_back(number(v));
            return out;
        }
    }
    wrong();
    return {};
}

json attribute_json(const AttrValue& value) {
    return std::visit([](const auto& v) { return json(v); }, value);
}

/// {"op": "matmul", "A": {...}, "B": {...}, "C": {...}, "bias": {...}, "activation": ...}
Graph single_op(const json& root, const std::string& source) {
    JsonReader fields(root, "", source, hw::throw_as<CompileError>);
    read_single_op_kind(fields);
    Graph graph;
    const std::string name = fields.has("name") ? fields.string("name") : "matmul";
    auto tensor = [&](const char* key, TensorRole role) {
        JsonReader t = fields.object(key);
        Tensor x;
        x.name = key;
        read_shape(t, x);
        x.dtype = read_dtype(t);
        x.role = role;
        t.finish();
        return graph.add_tensor(std::move(x));
    };
    const uint32_t a = tensor("A", TensorRole::Input);
    const uint32_t b = tensor("B", TensorRole::Input);
    std::optional<uint32_t> bias;
    if (fields.has("bias")) bias = tensor("bias", TensorRole::Input);
    const uint32_t c = tensor("C", TensorRole::Output);
    const Activation activation = read_activation(fields);
    fields.finish();
    graph.add_op(make_matmul(name, a, b, c, bias, activation));
    graph.check(source);
    return graph;
}

}  // namespace

Graph graph_from_json(const json& value, const std::string& path, const std::string& source) {
    JsonReader fields(value, path, source, hw::throw_as<CompileError>);
    Graph graph;
    const json& tensors = fields.array("tensors");
    for (size_t i = 0; i < tensors.size(); ++i) {
        JsonReader t = fields.child(tensors[i], fields.path_of("tensors", i));
        Tensor x;
        x.name = t.string("name");
        if (const std::string problem = tensor_name_problem(x.name); !problem.empty()) t.fail(t.path_of("name"), problem);
        if (graph.find_tensor(x.name)) t.fail(t.path_of("name"), "tensor '" + x.name + "' is declared twice");
        if (t.has("shape")) read_shape(t, x);
        x.dtype = read_dtype(t);
        read_value(t, x);
        read_quantization(t, x);
        if (const json* role = t.optional("role")) {
            std::string name = t.as_string(*role, t.path_of("role"));
            TensorRole r;
            if (!parse_role(name, r))
                t.fail(t.path_of("role"), "unknown role '" + name + "' (input, constant, intermediate, output)");
            x.role = r;
        }
        t.finish();
        graph.add_tensor(std::move(x));
    }
    const json& ops = fields.array("ops");
    std::string unknown;  // every op of an unknown kind, reported at once
    for (size_t i = 0; i < ops.size(); ++i) {
        JsonReader o = fields.child(ops[i], fields.path_of("ops", i));
        const std::string kind = o.string("op");
        const OpSchema* schema = op_registry().find(kind);
        if (!schema) {
            const std::string near = op_registry().suggest(kind);
            const json* name = ops[i].is_object() && ops[i].contains("name") ? &ops[i]["name"] : nullptr;
            unknown += (unknown.empty() ? "" : ", ") + kind + " (" +
                       (name && name->is_string() ? name->get<std::string>() : fields.path_of("ops", i)) +
                       (near.empty() ? "" : "; did you mean '" + near + "'?") + ")";
            continue;
        }
        Op op;
        op.kind = kind;
        if (o.has("name")) op.name = o.string("name");  // else Graph::add_op names it <kind><i>
        auto ref = [&](const std::string& name, const std::string& path) {
            auto index = graph.find_tensor(name);
            if (!index) o.fail(path, "unknown tensor '" + name + "'");
            return *index;
        };
        if (kind == "matmul") {  // the fused form's own keys
            const uint32_t a = ref(o.string("A"), o.path_of("A"));
            const uint32_t b = ref(o.string("B"), o.path_of("B"));
            const uint32_t c = ref(o.string("C"), o.path_of("C"));
            std::optional<uint32_t> bias, scale, residual;
            if (o.has("bias")) bias = ref(o.string("bias"), o.path_of("bias"));
            if (o.has("scale")) scale = ref(o.string("scale"), o.path_of("scale"));
            if (o.has("residual")) residual = ref(o.string("residual"), o.path_of("residual"));
            op = make_matmul(op.name, a, b, c, bias, read_activation(o), scale, residual);
        } else {
            const std::string label = "op " + (op.name.empty() ? std::string() : "'" + op.name + "' ") + "(" + kind + ")";
            for (const char* key : {"inputs", "outputs"}) {
                const std::vector<std::string> names = o.strings(key);
                for (size_t j = 0; j < names.size(); ++j)
                    (key[0] == 'i' ? op.inputs : op.outputs)
                        .push_back(names[j].empty() ? kNoTensor : ref(names[j], o.path_of(key, j)));
            }
            if (const json* attributes = o.optional("attributes")) {
                if (!attributes->is_object()) o.fail(o.path_of("attributes"), "expected an object");
                for (const auto& [key, value] : attributes->items()) {
                    const std::string path = o.path_of("attributes") + "." + key;
                    const AttrSpec* spec = schema->attribute(key);
                    if (!spec) o.fail(path, label + ": " + unknown_attribute(*schema, key));
                    op.attributes[key] = read_attribute(o, path, label, *spec, value);
                }
            }
        }
        if (o.has("fused_with")) op.fused_with = o.strings("fused_with");
        o.finish();
        try {
            graph.add_op(std::move(op));
        } catch (const CompileError& e) {  // a name declared twice: say where
            o.fail(o.path_of("name"), e.what());
        }
    }
    if (!unknown.empty())
        fields.fail(fields.path_of("ops"), "unknown operators: " + unknown + " (docs/graph-format.md lists every op)");
    fields.finish();
    graph.check(source);
    return graph;
}

Graph parse_graph(const std::string& json_text, const std::string& source) {
    const json root = hw::parse_document(json_text, source, "graph", hw::throw_as<CompileError>);
    if (root.is_object() && root.contains("op") && (root.contains("tensors") || root.contains("ops")))
        throw CompileError(source + ": has both \"op\" (the single-op form) and \"" +
                           (root.contains("tensors") ? "tensors" : "ops") +
                           "\" (the multi-op form): a graph is one or the other (docs/graph-format.md)");
    if (root.is_object() && root.contains("op")) return single_op(root, source);
    return graph_from_json(root, "", source);
}

std::string read_text_file(const std::string& path, const std::string& kind) {
    std::string text, problem;
    if (!hw::read_input_file(path, kind, text, problem)) throw CompileError(path + ": " + problem);
    return text;
}

Graph load_graph(const std::string& path) { return parse_graph(read_text_file(path, "graph"), path); }

json graph_to_json(const Graph& graph) {
    json tensors = json::array();
    for (const Tensor& t : graph.tensors()) {
        json x = {{"name", t.name},
                  {"shape", t.shape},
                  {"dtype", to_string(t.dtype)},
                  {"role", to_string(t.role.value_or(TensorRole::Input))}};
        if (const auto* ints = std::get_if<std::vector<int64_t>>(&t.value)) x["value"] = *ints;
        if (const auto* doubles = std::get_if<std::vector<double>>(&t.value)) x["value"] = *doubles;
        if (t.quant) {
            x["quant"] = {{"scale", t.quant->scale}, {"zero_point", t.quant->zero_point}};
            if (t.quant->per_channel()) x["quant"]["axis"] = t.quant->axis;
        }
        tensors.push_back(std::move(x));
    }
    json ops = json::array();
    for (const Op& op : graph.ops()) {
        json o = {{"op", op.kind}, {"name", op.name}};
        const auto name = [&](uint32_t t) { return t == kNoTensor ? std::string() : graph.tensor(t).name; };
        if (op.kind == "matmul") {  // the fused form's own keys, as .kpu files have always had them
            const MatmulOperands mm = matmul_operands(graph, op);
            o["A"] = name(mm.a), o["B"] = name(mm.b), o["C"] = name(mm.c);
            if (mm.bias) o["bias"] = name(*mm.bias);
            if (mm.scale) o["scale"] = name(*mm.scale);
            if (mm.residual) o["residual"] = name(*mm.residual);
            if (mm.activation != Activation::None) o["activation"] = to_string(mm.activation);
        } else {
            json inputs = json::array(), outputs = json::array();
            for (uint32_t t : op.inputs) inputs.push_back(name(t));
            for (uint32_t t : op.outputs) outputs.push_back(name(t));
            o["inputs"] = std::move(inputs), o["outputs"] = std::move(outputs);
            if (!op.attributes.empty()) {
                json attributes = json::object();
                for (const auto& [key, value] : op.attributes) attributes[key] = attribute_json(value);
                o["attributes"] = std::move(attributes);
            }
        }
        if (!op.fused_with.empty()) o["fused_with"] = op.fused_with;
        ops.push_back(std::move(o));
    }
    return {{"tensors", std::move(tensors)}, {"ops", std::move(ops)}};
}

}  // namespace kpu::compiler
