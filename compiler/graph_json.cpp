#include "compiler/graph_json.h"

#include <fstream>
#include <sstream>

#include "compiler/compile_error.h"
#include "hardware/input_file.h"
#include "hardware/json_reader.h"

namespace kpu::compiler {
namespace {

using json = nlohmann::json;
using hw::JsonReader;

std::vector<uint64_t> read_shape(JsonReader& fields) {
    const json& shape = fields.array("shape");
    std::vector<uint64_t> out;
    for (size_t i = 0; i < shape.size(); ++i) {
        std::string path = fields.path_of("shape", i);
        out.push_back(fields.as_uint(shape[i], path));
        if (out.back() == 0) fields.fail(path, "dimension is 0");
    }
    if (out.empty()) fields.fail(fields.path_of("shape"), "a shape needs at least one dimension");
    return out;
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

DType read_dtype(JsonReader& fields) {
    return read_choice(fields, "dtype", DType::Float32, parse_dtype, [](const std::string& name) {
        return "dtype '" + name + "' is not supported (only " + hw::names_in(kDTypeNames) + " for now)";
    });
}

Activation read_activation(JsonReader& fields) {
    return read_choice(fields, "activation", Activation::None, parse_activation, [](const std::string& name) {
        return "unknown activation '" + name + "' (" + hw::names_in(hw::kActivationNames) + ")";
    });
}

void read_op_kind(JsonReader& fields) {
    const std::string kind = fields.string("op");
    OpKind parsed;
    if (!parse_op_kind(kind, parsed))
        fields.fail(fields.path_of("op"), "unknown op '" + kind + "' (supported: " + hw::names_in(kOpKindNames) + ")");
}

/// {"op": "matmul", "A": {...}, "B": {...}, "C": {...}, "bias": {...}, "activation": ...}
Graph single_op(const json& root, const std::string& source) {
    JsonReader fields(root, "", source, hw::throw_as<CompileError>);
    read_op_kind(fields);
    Graph graph;
    Op op;
    op.name = fields.has("name") ? fields.string("name") : to_string(OpKind::Matmul);
    auto tensor = [&](const char* key, TensorRole role) {
        JsonReader t = fields.object(key);
        Tensor x;
        x.name = key;
        x.shape = read_shape(t);
        x.dtype = read_dtype(t);
        x.role = role;
        t.finish();
        return graph.add_tensor(std::move(x));
    };
    op.a = tensor("A", TensorRole::Input);
    op.b = tensor("B", TensorRole::Input);
    if (fields.has("bias")) op.bias = tensor("bias", TensorRole::Input);
    op.c = tensor("C", TensorRole::Output);
    op.activation = read_activation(fields);
    fields.finish();
    graph.add_op(std::move(op));
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
        if (t.has("shape")) x.shape = read_shape(t);
        x.dtype = read_dtype(t);
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
    for (size_t i = 0; i < ops.size(); ++i) {
        JsonReader o = fields.child(ops[i], fields.path_of("ops", i));
        read_op_kind(o);
        Op op;
        if (o.has("name")) op.name = o.string("name");  // else Graph::add_op names it matmul<i>
        auto ref = [&](const char* key) {
            std::string name = o.string(key);
            auto index = graph.find_tensor(name);
            if (!index) o.fail(o.path_of(key), "unknown tensor '" + name + "'");
            return *index;
        };
        op.a = ref("A");
        op.b = ref("B");
        op.c = ref("C");
        if (o.has("bias")) op.bias = ref("bias");
        op.activation = read_activation(o);
        o.finish();
        try {
            graph.add_op(std::move(op));
        } catch (const CompileError& e) {  // a name declared twice: say where
            o.fail(o.path_of("name"), e.what());
        }
    }
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
    for (const Tensor& t : graph.tensors())
        tensors.push_back({{"name", t.name},
                           {"shape", t.shape},
                           {"dtype", to_string(t.dtype)},
                           {"role", to_string(t.role.value_or(TensorRole::Input))}});
    json ops = json::array();
    for (const Op& op : graph.ops()) {
        json o = {{"op", to_string(op.kind)},
                  {"name", op.name},
                  {"A", graph.tensor(op.a).name},
                  {"B", graph.tensor(op.b).name},
                  {"C", graph.tensor(op.c).name}};
        if (op.bias) o["bias"] = graph.tensor(*op.bias).name;
        if (op.activation != Activation::None) o["activation"] = to_string(op.activation);
        ops.push_back(std::move(o));
    }
    return {{"tensors", std::move(tensors)}, {"ops", std::move(ops)}};
}

}  // namespace kpu::compiler
