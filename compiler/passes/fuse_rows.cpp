#include "compiler/passes/fuse_rows.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "compiler/ops/op_schema.h"
#include "compiler/vector_op.h"

namespace kpu::compiler {
namespace {

constexpr int64_t kPrevious = -1;  ///< sources: the previous step's result
constexpr int64_t kOmitted = -2;   ///< sources: an omitted optional input

/// The kinds a chain may hold: the row ops and the elementwise functions without attributes
/// but the norms' epsilon and Gelu's approximate (what the chain's attributes carry).
bool is_row_kind(const std::string& kind) {
    return kind == "LayerNormalization" || kind == "RMSNormalization" || kind == "Softmax";
}
bool is_chain_kind(const std::string& kind) {
    static const std::set<std::string> kinds = {"Add",  "Sub",  "Mul",     "Div",  "Max",        "Min",
                                                "Pow",  "Relu", "Sigmoid", "Silu", "Tanh",       "Exp",
                                                "Erf",  "Sqrt", "Reciprocal", "Neg", "Abs",      "HardSwish",
                                                "Gelu"};
    return kinds.count(kind) != 0 || is_row_kind(kind);
}

std::vector<std::string> split(const std::string& text) {
    std::vector<std::string> out(1);
    for (char ch : text)
        if (ch == ',') out.emplace_back();
        else out.back() += ch;
    return out;
}

std::string join(const std::vector<std::string>& parts) {
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? "," : "") + parts[i];
    return out;
}

template <class T>
const T* attr(const Op& op, const char* name) {
    const auto it = op.attributes.find(name);
    return it == op.attributes.end() ? nullptr : std::get_if<T>(&it->second);
}

void infer_vector_chain(InferContext& c) {
    std::string problem;
    chain_steps(c.op(), problem);
    if (!problem.empty()) c.fail(problem);
    for (size_t i = 0; i < c.input_count(); ++i)
        if (c.has_input(i)) c.need_dtype(i, {DType::Float32});
    c.output(0, c.shape(0), c.dtype(0));
}

/// Whether op `i` of `g` may be a step of a chain: a kind of the list whose operands lower
/// on the vector engine as one command per row tile, its other operand a same-shape tensor, a
/// row or a scalar.
bool chainable(const Graph& g, uint32_t i) {
    const Op& op = g.ops()[i];
    if (!is_chain_kind(op.kind) || op.outputs.size() != 1 || !vector_lowering_problem(g, op).empty()) return false;
    for (const std::vector<uint32_t>* list : {&op.inputs, &op.outputs})  // a chain is float32 only
        for (uint32_t t : *list)
            if (t != kNoTensor && g.tensor(t).dtype != DType::Float32) return false;
    const VectorOperands v = vector_operands(g, i);
    if (v.period || v.transpose || v.reduces() || v.windowed()) return false;
    if (op.kind == "Softmax" && v.b) return false;
    return !v.b || v.b_broadcast == hw::Broadcast::None || v.b_broadcast == hw::Broadcast::Row ||
           v.b_broadcast == hw::Broadcast::Scalar;
}

/// The vector_chain of ops `chain` of `g` (in order, each reading the previous one's output).
Op make_chain(const Graph& g, const std::vector<uint32_t>& chain) {
    const std::vector<Op>& ops = g.ops();
    const uint32_t row = *std::find_if(chain.begin(), chain.end(), [&](uint32_t i) { return is_row_kind(ops[i].kind); });
    Op out;
    out.name = ops[row].name;
    out.kind = "vector_chain";
    out.outputs = {ops[chain.back()].outputs[0]};
    out.inputs = {vector_operands(g, chain.front()).a};
    std::vector<std::string> kinds, approximate;
    std::vector<int64_t> arity, sources;
    std::vector<double> epsilon;
    for (size_t s = 0; s < chain.size(); ++s) {
        const Op& op = ops[chain[s]];
        const OpSchema& schema = schema_of(op);
        kinds.push_back(op.kind);
        arity.push_back(int64_t(op.inputs.size()));
        for (uint32_t t : op.inputs) {
            if (s > 0 && t == ops[chain[s - 1]].outputs[0]) {
                sources.push_back(kPrevious);
            } else if (t == kNoTensor) {
                sources.push_back(kOmitted);
            } else {
                auto at = std::find(out.inputs.begin(), out.inputs.end(), t);
                if (at == out.inputs.end()) at = out.inputs.insert(out.inputs.end(), t);
                sources.push_back(int64_t(at - out.inputs.begin()));
            }
        }
        epsilon.push_back(schema.attribute("epsilon") ? attr_number(*attribute_of(op, schema, "epsilon")) : 0.0);
        approximate.push_back(op.kind == "Gelu" ? std::get<std::string>(*attribute_of(op, schema, "approximate")) : "");
        out.fused_with.insert(out.fused_with.end(), op.fused_with.begin(), op.fused_with.end());
        if (chain[s] != row) out.fused_with.push_back(op.name);
    }
    out.attributes = {{"kinds", join(kinds)},   {"arity", arity},   {"sources", sources},
                      {"epsilon", epsilon},     {"approximate", join(approximate)}};
    return out;
}

}  // namespace

bool is_chain_op(const Op& op) { return op.kind == "vector_chain"; }

std::vector<ChainStep> chain_steps(const Op& op, std::string& problem) {
    const std::string* kinds = attr<std::string>(op, "kinds");
    const std::vector<int64_t>* arity = attr<std::vector<int64_t>>(op, "arity");
    const std::vector<int64_t>* sources = attr<std::vector<int64_t>>(op, "sources");
    const std::vector<double>* epsilon = attr<std::vector<double>>(op, "epsilon");
    const std::string* approximate = attr<std::string>(op, "approximate");
    for (const auto& [name, given] : {std::pair<const char*, bool>{"kinds", kinds != nullptr}, {"arity", arity != nullptr},
                                      {"sources", sources != nullptr}, {"epsilon", epsilon != nullptr},
                                      {"approximate", approximate != nullptr}})
        if (!given) {
            problem = std::string("attribute '") + name + "' is required";
            return {};
        }
    const std::vector<std::string> kind = split(*kinds), approx = split(*approximate);
    const size_t n = kind.size();
    const auto count = [&](const char* name, size_t got) {
        if (got == n) return true;
        problem = std::string("attribute '") + name + "' has " + std::to_string(got) + " entries for " +
                  std::to_string(n) + " steps";
        return false;
    };
    if (!count("arity", arity->size()) || !count("epsilon", epsilon->size()) || !count("approximate", approx.size()))
        return {};
    std::vector<ChainStep> steps;
    size_t at = 0;
    for (size_t s = 0; s < n; ++s) {
        const std::string where = "step " + std::to_string(s) + " (" + kind[s] + ")";
        if (!is_chain_kind(kind[s])) {
            problem = where + " is not a kind a chain holds";
            return {};
        }
        if ((*arity)[s] < 1 || (*arity)[s] > 3 || at + size_t((*arity)[s]) > sources->size()) {
            problem = where + ": arity " + std::to_string((*arity)[s]) + " is not in [1, 3] or runs past the " +
                      std::to_string(sources->size()) + " sources";
            return {};
        }
        ChainStep step;
        step.op.name = op.name;
        step.op.kind = kind[s];
        step.op.outputs = op.outputs;
        for (int64_t i = 0; i < (*arity)[s]; ++i, ++at) {
            const int64_t src = (*sources)[at];
            if (src == kPrevious && s > 0 && !step.chained) {
                step.chained = size_t(i);
                step.op.inputs.push_back(kNoTensor);
            } else if (src == kOmitted) {
                step.op.inputs.push_back(kNoTensor);
            } else if (src >= 0 && size_t(src) < op.inputs.size() && op.inputs[size_t(src)] != kNoTensor) {
                step.op.inputs.push_back(op.inputs[size_t(src)]);
            } else {
                problem = where + ": source " + std::to_string(src) + " is not the previous step's result (-1, once, " +
                          "after the first step), omitted (-2) or one of the " + std::to_string(op.inputs.size()) +
                          " inputs";
                return {};
            }
        }
        if (s > 0 && !step.chained) {
            problem = where + " does not read the previous step's result (no source -1)";
            return {};
        }
        if (schema_of(step.op).attribute("epsilon")) step.op.attributes["epsilon"] = (*epsilon)[s];
        if (kind[s] == "Gelu") step.op.attributes["approximate"] = approx[s];
        steps.push_back(std::move(step));
    }
    if (at != sources->size()) {
        problem = "attribute 'sources' has " + std::to_string(sources->size()) + " entries, the steps' arities add up to " +
                  std::to_string(at);
        return {};
    }
    return steps;
}

void register_vector_chain(OpRegistry& registry) {
    OpSchema s;
    s.kind = "vector_chain";
    s.inputs = {"inputs"};
    s.variadic = true;
    s.outputs = {"Y"};
    s.attributes = {{"kinds", AttrType::String, std::nullopt},
                    {"arity", AttrType::Ints, std::nullopt},
                    {"sources", AttrType::Ints, std::nullopt},
                    {"epsilon", AttrType::Floats, std::nullopt},
                    {"approximate", AttrType::String, std::nullopt}};
    s.infer = infer_vector_chain;
    s.lowering_problem = vector_lowering_problem;
    registry.add(std::move(s));
}

Graph fuse_rows(const Graph& graph) {
    const std::vector<Op>& ops = graph.ops();
    const size_t n = ops.size();
    std::vector<uint32_t> readers(graph.tensors().size(), 0), reader(graph.tensors().size(), kNoTensor);
    for (uint32_t i = 0; i < n; ++i)
        for (uint32_t t : ops[i].inputs)
            if (t != kNoTensor) ++readers[t], reader[t] = i;
    std::vector<char> can(n);
    for (uint32_t i = 0; i < n; ++i) can[i] = chainable(graph, i);
    // next[i]: the op that op i's output flows into as a link of a chain.
    std::vector<uint32_t> next(n, kNoTensor), prev(n, kNoTensor);
    for (uint32_t i = 0; i < n; ++i) {
        if (!can[i]) continue;
        const uint32_t t = ops[i].outputs[0];
        if (readers[t] != 1 || graph.tensor(t).role == TensorRole::Output) continue;
        const uint32_t c = reader[t];
        if (!can[c] || std::count(ops[c].inputs.begin(), ops[c].inputs.end(), t) != 1) continue;
        if (vector_operands(graph, c).a != t || graph.tensor(ops[c].outputs[0]).shape != graph.tensor(t).shape) continue;
        next[i] = c, prev[c] = i;
    }
    std::vector<Op> out;
    std::vector<char> absorbed(n, 0);
    std::vector<std::optional<Op>> fused(n);  // at the chain's last op
    bool any = false;
    for (uint32_t i = 0; i < n; ++i) {
        if (prev[i] != kNoTensor || next[i] == kNoTensor) continue;
        std::vector<uint32_t> chain{i};
        while (next[chain.back()] != kNoTensor) chain.push_back(next[chain.back()]);
        if (std::none_of(chain.begin(), chain.end(), [&](uint32_t j) { return is_row_kind(ops[j].kind); })) continue;
        for (uint32_t j : chain) absorbed[j] = 1;
        fused[chain.back()] = make_chain(graph, chain);
        any = true;
    }
    if (!any) return graph;
    for (uint32_t i = 0; i < n; ++i)
        if (fused[i]) out.push_back(*fused[i]);
        else if (!absorbed[i]) out.push_back(ops[i]);
    return used_part(graph, std::move(out), "fuse-rows");
}

}  // namespace kpu::compiler
