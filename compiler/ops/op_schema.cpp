#include "compiler/ops/op_schema.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>

#include "compiler/compile_error.h"
#include "compiler/requantize.h"
#include "hardware/json_reader.h"

namespace kpu::compiler {

std::string attr_string(const AttrValue& value) {
    std::ostringstream out;
    const auto list = [&](const auto& values) {
        out << "[";
        for (size_t i = 0; i < values.size(); ++i) out << (i ? ", " : "") << values[i];
        out << "]";
    };
    switch (type_of(value)) {
        case AttrType::Int: out << std::get<int64_t>(value); break;
        case AttrType::Float: out << std::get<double>(value); break;
        case AttrType::String: out << "'" << std::get<std::string>(value) << "'"; break;
        case AttrType::Ints: list(std::get<std::vector<int64_t>>(value)); break;
        case AttrType::Floats: list(std::get<std::vector<double>>(value)); break;
    }
    return out.str();
}

const AttrSpec* OpSchema::attribute(const std::string& name) const {
    for (const AttrSpec& spec : attributes)
        if (spec.name == name) return &spec;
    return nullptr;
}

namespace {

std::string nth_name(const std::vector<std::string>& names, bool variadic, size_t i) {
    if (i < names.size() && !(variadic && i + 1 == names.size())) return names[i];
    if (variadic && !names.empty()) return names.back() + "[" + std::to_string(i + 1 - names.size()) + "]";
    return "#" + std::to_string(i);
}

std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

}  // namespace

std::string OpSchema::input_name(size_t i) const { return nth_name(inputs, variadic, i); }
std::string OpSchema::output_name(size_t i) const { return nth_name(outputs, variadic_outputs, i); }

void OpRegistry::add(OpSchema schema) {
    const std::string kind = schema.kind;
    schemas_.emplace(kind, std::move(schema));
}

const OpSchema* OpRegistry::find(const std::string& kind) const {
    const auto it = schemas_.find(kind);
    return it == schemas_.end() ? nullptr : &it->second;
}

std::vector<std::string> OpRegistry::kinds() const {
    std::vector<std::string> out;
    for (const auto& entry : schemas_) out.push_back(entry.first);
    return out;
}

std::string OpRegistry::suggest(const std::string& kind) const {
    std::string best;
    size_t best_distance = 3;  // at most 2 edits, as JsonReader suggests field names
    for (const auto& entry : schemas_) {
        const size_t d = hw::edit_distance(lower(kind), lower(entry.first));
        if (d < best_distance) best_distance = d, best = entry.first;
    }
    return best;
}

const OpSchema& schema_of(const Op& op) {
    const OpSchema* schema = op_registry().find(op.kind);
    if (!schema) throw CompileError("op '" + op.name + "': unknown op kind '" + op.kind + "'");
    return *schema;
}

std::optional<AttrValue> attribute_of(const Op& op, const OpSchema& schema, const std::string& name) {
    if (const auto it = op.attributes.find(name); it != op.attributes.end()) return it->second;
    if (const AttrSpec* spec = schema.attribute(name)) return spec->default_value;
    return std::nullopt;
}

std::string attr_type_problem(const AttrSpec& spec, const AttrValue& value) {
    const AttrType got = type_of(value);
    if (got == spec.type || (spec.type == AttrType::Float && got == AttrType::Int)) return "";
    return std::string("is ") + to_string(got) + ", expected " + to_string(spec.type);
}

std::string unknown_attribute(const OpSchema& schema, const std::string& name) {
    std::string best, names;
    size_t best_distance = 3;
    for (const AttrSpec& spec : schema.attributes) {
        names += (names.empty() ? "" : ", ") + spec.name;
        const size_t d = hw::edit_distance(name, spec.name);
        if (d < best_distance) best_distance = d, best = spec.name;
    }
    return "unknown attribute '" + name + "' of " + schema.kind +
           (best.empty() ? " (it has " + (names.empty() ? std::string("none") : names) + ")"
                         : " (did you mean '" + best + "'?)");
}

void check_op(std::vector<Tensor>& tensors, const Op& op, const OpSchema& schema, const std::string& source) {
    InferContext context(tensors, op, schema, source);
    const auto count = [](size_t lo, size_t hi, bool variadic, const char* what) {
        std::string s = std::to_string(lo) + (variadic ? " or more" : lo == hi ? "" : " to " + std::to_string(hi));
        return s + " " + what + ((lo == 1 && hi == 1 && !variadic) ? "" : "s");
    };
    const auto names = [](const std::vector<std::string>& list) {
        std::string s;
        for (const std::string& n : list) s += (s.empty() ? "" : ", ") + n;
        return s;
    };
    if (op.inputs.size() < schema.min_inputs || (!schema.variadic && op.inputs.size() > schema.inputs.size()))
        context.fail("takes " + count(schema.min_inputs, schema.inputs.size(), schema.variadic, "input") + " (" +
                     names(schema.inputs) + "), got " + std::to_string(op.inputs.size()));
    if (op.outputs.size() < schema.min_outputs ||
        (!schema.variadic_outputs && op.outputs.size() > schema.outputs.size()))
        context.fail("has " + count(schema.min_outputs, schema.outputs.size(), schema.variadic_outputs, "output") +
                     " (" + names(schema.outputs) + "), got " + std::to_string(op.outputs.size()));
    for (size_t i = 0; i < op.inputs.size(); ++i)
        if (op.inputs[i] == kNoTensor && (i < schema.min_inputs || schema.variadic))
            context.fail("input '" + schema.input_name(i) + "' is required");
    for (size_t i = 0; i < std::min(op.outputs.size(), schema.min_outputs); ++i)
        if (op.outputs[i] == kNoTensor) context.fail("output '" + schema.output_name(i) + "' is required");
    for (const auto& [name, value] : op.attributes) {
        const AttrSpec* spec = schema.attribute(name);
        if (!spec) context.fail(unknown_attribute(schema, name));
        if (const std::string problem = attr_type_problem(*spec, value); !problem.empty())
            context.fail("attribute '" + name + "' " + problem);
    }
    for (uint32_t t : op.inputs)
        if (t != kNoTensor && !tensors[t].has_shape())
            context.fail("input '" + tensors[t].name + "' has no shape yet");  // unreachable after ordering
    schema.infer(context);
}

void require_lowerable(const Graph& graph, const std::string& source) {
    std::string list;
    for (const Op& op : graph.ops()) {
        const OpSchema& schema = schema_of(op);
        std::string problem = schema.lowering_problem ? schema.lowering_problem(graph, op) : "not yet lowered";
        // The element types the op's lowering takes (a compile-time input, an int64 axes
        // list, is read by the compiler, not computed on).
        if (problem.empty()) problem = element_type_problem(graph, op);
        if (problem.empty()) continue;
        list += (list.empty() ? "" : ", ") + op.kind + " (" + op.name +
                (problem == "not yet lowered" ? "" : ": " + problem) + ")";
    }
    if (!list.empty()) throw CompileError(source + ": Unsupported operators: " + list);
}

Graph used_part(const Graph& scratch, std::vector<Op> ops, const std::string& source, bool alone) {
    std::vector<uint32_t> index(scratch.tensors().size(), kNoTensor);
    for (const Op& op : ops)
        for (const std::vector<uint32_t>* list : {&op.inputs, &op.outputs})
            for (uint32_t t : *list)
                if (t != kNoTensor) index[t] = 0;
    Graph out;
    for (uint32_t t = 0; t < index.size(); ++t) {
        if (index[t] != 0) continue;
        Tensor copy = scratch.tensor(t);
        if (alone) copy.role.reset();
        index[t] = out.add_tensor(std::move(copy));
    }
    for (Op& op : ops) {
        for (std::vector<uint32_t>* list : {&op.inputs, &op.outputs})
            for (uint32_t& t : *list)
                if (t != kNoTensor) t = index[t];
        out.add_op(std::move(op));
    }
    out.check(source);
    return out;
}

Graph rewrite_ops(const Graph& graph, const std::function<bool(Graph&, const Op&, std::vector<Op>&)>& rewrite,
                  const std::string& source) {
    Graph scratch = graph;  // the graph's tensors and the rewrites' new ones
    std::vector<Op> ops;
    bool rewritten = false;
    for (const Op& op : graph.ops()) {
        if (rewrite(scratch, op, ops))
            rewritten = true;
        else
            ops.push_back(op);
    }
    return rewritten ? used_part(scratch, std::move(ops), source) : graph;
}

Graph expand_composites(const Graph& graph, const std::string& source) {
    return rewrite_ops(
        graph,
        [](Graph& g, const Op& op, std::vector<Op>& ops) {
            const OpSchema& schema = schema_of(op);
            const size_t first = ops.size();
            if (!schema.expand || !schema.expand(g, op, ops)) return false;
            // What a fusion folded into the op (fused_with) goes with its computing parts,
            // not with the layout changes around them.
            for (size_t i = first; i < ops.size() && !op.fused_with.empty(); ++i)
                if (ops[i].kind != "Transpose" && !is_view_op(ops[i])) ops[i].fused_with = op.fused_with;
            return true;
        },
        source);
}

std::optional<std::string> expansion_problem(const Graph& graph, const Op& op) {
    if (!schema_of(op).expand) return std::nullopt;
    Graph scratch = graph;
    std::vector<Op> ops;
    if (!schema_of(op).expand(scratch, op, ops)) return std::nullopt;
    try {
        require_lowerable(used_part(scratch, std::move(ops), "expansion", true), "expansion");
    } catch (const CompileError& e) {
        const std::string what = e.what(), marker = "Unsupported operators: ";
        const size_t at = what.find(marker);
        return at == std::string::npos ? what : what.substr(at + marker.size());
    }
    return std::string();
}

bool is_compile_time_value(const Graph& graph, uint32_t t) {
    if (std::holds_alternative<std::monostate>(graph.tensor(t).value)) return false;
    bool read = false;
    for (const Op& op : graph.ops()) {
        for (uint32_t out : op.outputs)
            if (out == t) return false;
        const std::vector<size_t>& c = schema_of(op).compile_time_inputs;
        for (size_t i = 0; i < op.inputs.size(); ++i) {
            if (op.inputs[i] != t) continue;
            if (std::find(c.begin(), c.end(), i) == c.end()) return false;
            read = true;
        }
    }
    return read;
}

bool is_view_op(const Op& op) { return schema_of(op).view; }

std::vector<uint32_t> alias_roots(const Graph& graph) {
    std::vector<uint32_t> root(graph.tensors().size());
    for (uint32_t t = 0; t < root.size(); ++t) root[t] = t;
    for (const Op& op : graph.ops())
        if (!op.outputs.empty() && is_view_op(op)) root[op.outputs[0]] = op.inputs.at(0);
    // Follow each chain to its end, then point every tensor on the way there (the checked
    // graph has no cycle), so a long chain is walked once.
    std::vector<uint32_t> path;
    for (uint32_t t = 0; t < root.size(); ++t) {
        uint32_t r = t;
        while (root[r] != r) path.push_back(r), r = root[r];
        for (uint32_t on : path) root[on] = r;
        path.clear();
    }
    return root;
}

InferContext::InferContext(std::vector<Tensor>& tensors, const Op& op, const OpSchema& schema, std::string source)
    : tensors_(tensors), op_(op), schema_(schema), prefix_(source + ": op '" + op.name + "' (" + op.kind + "): ") {}

std::string InferContext::describe(size_t i) const {
    return "input '" + schema_.input_name(i) + "' ('" + input(i).name + "', " + shape_string(shape(i)) + ")";
}

void InferContext::fail(const std::string& problem) const { throw CompileError(prefix_ + problem); }

namespace {

template <typename T>
T get_attr(const InferContext& c, const Op& op, const OpSchema& schema, const std::string& name) {
    const std::optional<AttrValue> value = attribute_of(op, schema, name);
    if (!value) c.fail("attribute '" + name + "' is required");
    if (const T* v = std::get_if<T>(&*value)) return *v;
    if constexpr (std::is_same_v<T, double>)  // an int where a float is expected is that float
        if (const int64_t* i = std::get_if<int64_t>(&*value)) return double(*i);
    c.fail("attribute '" + name + "' is " + to_string(type_of(*value)));
}

}  // namespace

int64_t InferContext::int_attr(const std::string& name) const { return get_attr<int64_t>(*this, op_, schema_, name); }
double InferContext::float_attr(const std::string& name) const { return get_attr<double>(*this, op_, schema_, name); }
std::string InferContext::string_attr(const std::string& name) const {
    return get_attr<std::string>(*this, op_, schema_, name);
}
std::vector<int64_t> InferContext::ints_attr(const std::string& name) const {
    return get_attr<std::vector<int64_t>>(*this, op_, schema_, name);
}
bool InferContext::has_attr(const std::string& name) const { return attribute_of(op_, schema_, name).has_value(); }

const std::vector<int64_t>& InferContext::int_values(size_t i) const {
    const auto* values = std::get_if<std::vector<int64_t>>(&input(i).value);
    if (!values)
        fail("input '" + schema_.input_name(i) + "' ('" + input(i).name +
             "') needs inline integer values (\"value\": [...]) for its shape to be known");
    return *values;
}

size_t InferContext::axis(const std::string& what, int64_t value, size_t rank) const {
    const int64_t r = int64_t(rank);
    if (value < -r || value >= r || rank == 0)
        fail(what + " is " + std::to_string(value) + " but the rank is " + std::to_string(rank) + " (valid: " +
             (rank == 0 ? std::string("none") : std::to_string(-r) + " to " + std::to_string(r - 1)) + ")");
    return size_t(value < 0 ? value + r : value);
}

void InferContext::same_dtype(size_t a, size_t b) const {
    if (dtype(a) != dtype(b))
        fail("input '" + schema_.input_name(b) + "' ('" + input(b).name + "') is " + to_string(dtype(b)) +
             " but input '" + schema_.input_name(a) + "' ('" + input(a).name + "') is " + to_string(dtype(a)));
}

void InferContext::need_dtype(size_t i, std::initializer_list<DType> allowed) const {
    if (std::find(allowed.begin(), allowed.end(), dtype(i)) != allowed.end()) return;
    std::string names;
    for (DType d : allowed) names += (names.empty() ? "" : ", ") + std::string(to_string(d));
    fail("input '" + schema_.input_name(i) + "' ('" + input(i).name + "') is " + to_string(dtype(i)) + ", expected " +
         names);
}

void InferContext::need_rank(size_t i, size_t lo, size_t hi) const {
    if (rank(i) < lo || rank(i) > hi)
        fail(describe(i) + " has rank " + std::to_string(rank(i)) + ", expected " +
             (lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi)));
}

std::vector<uint64_t> InferContext::broadcast(const std::vector<uint64_t>& a, const std::string& a_name,
                                              const std::vector<uint64_t>& b, const std::string& b_name) const {
    const size_t rank = std::max(a.size(), b.size());
    std::vector<uint64_t> out(rank);
    for (size_t d = 0; d < rank; ++d) {
        const uint64_t x = d + a.size() >= rank ? a[d + a.size() - rank] : 1;
        const uint64_t y = d + b.size() >= rank ? b[d + b.size() - rank] : 1;
        if (x != y && x != 1 && y != 1)
            fail(a_name + " " + shape_string(a) + " and " + b_name + " " + shape_string(b) +
                 " do not broadcast (dimension " + std::to_string(d) + " of the result: " + std::to_string(x) +
                 " vs " + std::to_string(y) + ")");
        out[d] = x == 1 ? y : x;
    }
    return out;
}

void InferContext::output(size_t i, std::vector<uint64_t> shape, DType dtype) {
    if (!has_output(i)) return;
    Tensor& y = tensors_.at(op_.outputs[i]);
    const std::string name = "output '" + schema_.output_name(i) + "' ('" + y.name + "')";
    if (shape.size() > kMaxRank)
        fail(name + " would have rank " + std::to_string(shape.size()) + " " + shape_string(shape) + ", more than " +
             std::to_string(kMaxRank));
    for (size_t d = 0; d < shape.size(); ++d)
        if (shape[d] == 0) fail(name + " would have shape " + shape_string(shape) + ": dimension " + std::to_string(d) + " is 0");
    if (y.has_shape()) {
        if (y.shape != shape)
            fail(name + " has shape " + shape_string(y.shape) + " but " + op_.kind + " gives " + shape_string(shape));
        if (y.dtype != dtype)
            fail(name + " is " + to_string(y.dtype) + " but " + op_.kind + " gives " + to_string(dtype));
        return;
    }
    y.shape = std::move(shape);
    y.rank0 = y.shape.empty();
    y.dtype = dtype;
}

}  // namespace kpu::compiler
