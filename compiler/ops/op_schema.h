// The op registry: what each op kind takes (inputs, outputs, attributes with ONNX's names,
// types and defaults), how it infers and validates its outputs' shapes and dtypes, and
// whether it lowers yet. One file per op kind or small family (compiler/ops/<kind>.cpp)
// defines its schemas and a register_<family>() that op_registry.cpp calls: adding an op is
// adding a file and one registration line (docs/compiler.md).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compiler/compile_error.h"
#include "compiler/graph.h"

namespace kpu::compiler {

enum class AttrType : uint8_t { Int, Float, String, Ints, Floats };
inline constexpr EnumName<AttrType> kAttrTypeNames[] = {{AttrType::Int, "an int"},
                                                        {AttrType::Float, "a float"},
                                                        {AttrType::String, "a string"},
                                                        {AttrType::Ints, "a list of ints"},
                                                        {AttrType::Floats, "a list of floats"}};
inline const char* to_string(AttrType type) { return hw::name_in(kAttrTypeNames, type); }
/// The type an AttrValue holds (the variant's alternatives are in AttrType's order).
inline AttrType type_of(const AttrValue& value) { return AttrType(value.index()); }
/// "-1", "0.5", "'tanh'", "[1, 2]": an attribute value as messages and docs show it.
std::string attr_string(const AttrValue& value);
/// A float attribute's value: an int is a valid float (JSON's 1 for 1.0).
inline double attr_number(const AttrValue& value) {
    return std::holds_alternative<int64_t>(value) ? double(std::get<int64_t>(value)) : std::get<double>(value);
}

struct AttrSpec {
    std::string name;                    ///< ONNX's name
    AttrType type = AttrType::Int;
    std::optional<AttrValue> default_value;  ///< ONNX's default; none: optional without one
};

class InferContext;

struct OpSchema {
    std::string kind;                  ///< ONNX's operator name ("matmul": our fused form)
    std::vector<std::string> inputs;   ///< names in ONNX's order (messages say "input 'X'")
    size_t min_inputs = 1;             ///< the rest are optional
    bool variadic = false;             ///< the last input repeats (Concat)
    std::vector<std::string> outputs;  ///< names in ONNX's order
    size_t min_outputs = 1;
    bool variadic_outputs = false;     ///< the last output repeats (Split)
    std::vector<AttrSpec> attributes;
    /// Infers the outputs' shapes and dtypes (InferContext::output) and validates the inputs
    /// and attributes, failing with the op, the tensor or attribute and the numbers.
    void (*infer)(InferContext& context) = nullptr;
    /// Why the op does not lower yet ("" when it does); nullptr: the kind does not lower yet.
    std::string (*lowering_problem)(const Graph& graph, const Op& op) = nullptr;
    /// Inputs the compiler reads as values at compile time (ReduceSum's axes, Clip's min and
    /// max), never moved to the device: their lowering hook refuses them without inline values.
    std::vector<size_t> compile_time_inputs;
    /// A view (Reshape, Flatten, Squeeze, Unsqueeze): output 0 has input 0's row-major bytes
    /// in the same order, so it lowers as an alias of input 0's DRAM buffer (no kernel, no
    /// DFX ops, no DRAM traffic; docs/compiler.md, "Views").
    bool view = false;
    /// A composite (Attention, a Softmax or a reduction over other axes than the last): when
    /// it returns true the op lowers as the ops it appended to `ops` (producers first), with
    /// the tensors between them added to `graph` (compiler/ops/expansion.h). nullptr, or
    /// false (nothing appended): the op lowers as itself.
    bool (*expand)(Graph& graph, const Op& op, std::vector<Op>& ops) = nullptr;

    const AttrSpec* attribute(const std::string& name) const;
    std::string input_name(size_t i) const;  ///< the schema's name, or the variadic one's with its index
    std::string output_name(size_t i) const;
};

/// The registry: every schema by kind. Built once from the register_<family>() lines of
/// op_registry.cpp and read-only after.
class OpRegistry {
public:
    void add(OpSchema schema);
    const OpSchema* find(const std::string& kind) const;
    std::vector<std::string> kinds() const;  ///< sorted
    /// The nearest registered kind to `kind` (edit distance, case ignored), "" if none is near.
    std::string suggest(const std::string& kind) const;

private:
    std::map<std::string, OpSchema> schemas_;
};

const OpRegistry& op_registry();

/// The op's kind's schema; throws CompileError "op 'x': unknown op kind 'Foo'" when none.
const OpSchema& schema_of(const Op& op);

/// The attribute's value: the op's, else the schema's default; nullopt when neither.
std::optional<AttrValue> attribute_of(const Op& op, const OpSchema& schema, const std::string& name);

/// Validates the op against its schema (input and output counts, required inputs, attribute
/// names and types) and runs its inference, which sets or checks its outputs in `tensors`.
void check_op(std::vector<Tensor>& tensors, const Op& op, const OpSchema& schema, const std::string& source);

/// What is wrong with `value` for attribute `spec` ("" if nothing): "is a string, expected an
/// int". An int is a valid float.
std::string attr_type_problem(const AttrSpec& spec, const AttrValue& value);

/// "unknown attribute 'axsi' of Softmax (did you mean 'axis'?)"
std::string unknown_attribute(const OpSchema& schema, const std::string& name);

/// Throws one CompileError listing every op of the checked `graph` that does not lower yet
/// with its name and why ("graph: Unsupported operators: Softmax (sm1), matmul (mm: tensor
/// 'A' is int64, not yet supported)"). Which element types lower: requantize.h element_type_problem.
void require_lowerable(const Graph& graph, const std::string& source);

/// Whether tensor `t` of the checked graph is only a compile-time value: it carries inline
/// values and every op that reads it takes it as one of its schema's compile_time_inputs.
/// Such a tensor is no DRAM tensor of the program (the binder gives it no buffer).
bool is_compile_time_value(const Graph& graph, uint32_t t);

/// Whether the op is a view (OpSchema::view): it lowers as an alias, with no kernel.
bool is_view_op(const Op& op);

/// The graph of `ops` over the tensors of `scratch` they use (a rewrite leaves some unread,
/// such as a composite's compile-time inputs), in their order, checked (`source` prefixes its
/// messages); with `alone` their roles are inferred again (ops taken out of their graph).
Graph used_part(const Graph& scratch, std::vector<Op> ops, const std::string& source, bool alone = false);

/// The checked graph with the ops for which `rewrite` returns true replaced by those it
/// appended (and the tensors it added to the graph it is given), less the tensors no op
/// uses any more, checked again (`source` prefixes its messages); the graph itself when
/// `rewrite` returns false for every op.
Graph rewrite_ops(const Graph& graph, const std::function<bool(Graph&, const Op&, std::vector<Op>&)>& rewrite,
                  const std::string& source);

/// The checked graph with each composite op replaced by its expansion (OpSchema::expand), and
/// checked again (`source` prefixes its messages). What compile() lowers.
Graph expand_composites(const Graph& graph, const std::string& source);

/// Why a composite's expansion does not lower ("MatMul (a.qk: ...)", each op that does not, as
/// require_lowerable lists them), "" when every op of it does; nullopt when `op` does not
/// expand (it lowers as itself).
std::optional<std::string> expansion_problem(const Graph& graph, const Op& op);

/// An op class's operands: `make(graph, op, problem)` fills them, or sets `problem` to why the
/// op does not lower that way. The problem alone ("" when none), for a lowering_problem hook:
template <class Make>
std::string problem_of(const Graph& graph, const Op& op, Make make) {
    std::string problem;
    make(graph, op, problem);
    return problem;
}
/// The operands of op `index`, or a CompileError "op '<name>' (<kind>): <problem>".
template <class Make>
auto operands_of(const Graph& graph, uint32_t index, Make make) {
    const Op& op = graph.ops().at(index);
    std::string problem;
    auto out = make(graph, op, problem);
    if (!problem.empty()) throw CompileError("op '" + op.name + "' (" + op.kind + "): " + problem);
    return out;
}

/// Per tensor of the checked graph, the tensor whose DRAM buffer it uses: itself, or, when a
/// chain of views produces it, the input of the chain's first view. O(ops + tensors).
std::vector<uint32_t> alias_roots(const Graph& graph);

/// The view an op's infer() works through: its inputs, attributes (defaults applied) and
/// the outputs it sets, with messages prefixed "<source>: op '<name>' (<kind>): ".
class InferContext {
public:
    InferContext(std::vector<Tensor>& tensors, const Op& op, const OpSchema& schema, std::string source);

    const Op& op() const { return op_; }
    size_t input_count() const { return op_.inputs.size(); }
    size_t output_count() const { return op_.outputs.size(); }
    bool has_input(size_t i) const { return i < op_.inputs.size() && op_.inputs[i] != kNoTensor; }
    bool has_output(size_t i) const { return i < op_.outputs.size() && op_.outputs[i] != kNoTensor; }
    const Tensor& input(size_t i) const { return tensors_.at(op_.inputs.at(i)); }
    const std::vector<uint64_t>& shape(size_t i) const { return input(i).shape; }
    size_t rank(size_t i) const { return input(i).shape.size(); }
    DType dtype(size_t i) const { return input(i).dtype; }
    /// Output i's tensor (nullptr when omitted): its declared shape, if any, before output().
    const Tensor* output_tensor(size_t i) const { return has_output(i) ? &tensors_.at(op_.outputs[i]) : nullptr; }
    /// "input 'X' ('x', [2, 3])": the schema's name, the tensor's and its shape.
    std::string describe(size_t i) const;

    int64_t int_attr(const std::string& name) const;
    double float_attr(const std::string& name) const;
    std::string string_attr(const std::string& name) const;
    std::vector<int64_t> ints_attr(const std::string& name) const;
    /// Whether the op gives the attribute or the schema has a default for it.
    bool has_attr(const std::string& name) const;

    /// The inline int64 values of input i; fails when it carries none.
    const std::vector<int64_t>& int_values(size_t i) const;

    [[noreturn]] void fail(const std::string& problem) const;
    /// `value` of the axis named `what` (an attribute name, or "axes[1]") in [-rank, rank-1],
    /// made non-negative; fails naming the axis, its value and the rank.
    size_t axis(const std::string& what, int64_t value, size_t rank) const;
    /// Inputs a and b must have the same dtype; fails naming both.
    void same_dtype(size_t a, size_t b) const;
    /// The input's dtype must be one of `allowed`; fails naming the tensor and the dtype.
    void need_dtype(size_t i, std::initializer_list<DType> allowed) const;
    /// The input's rank must be in [lo, hi].
    void need_rank(size_t i, size_t lo, size_t hi) const;
    /// Multidirectional (numpy) broadcasting of two shapes; fails naming both when they do not.
    std::vector<uint64_t> broadcast(const std::vector<uint64_t>& a, const std::string& a_name,
                                    const std::vector<uint64_t>& b, const std::string& b_name) const;
    /// Sets output i (when present) to `shape` and `dtype`, or checks a declared shape and
    /// dtype against them. Fails on rank > kMaxRank.
    void output(size_t i, std::vector<uint64_t> shape, DType dtype);

private:
    std::vector<Tensor>& tensors_;
    const Op& op_;
    const OpSchema& schema_;
    std::string prefix_;  ///< "<source>: op '<name>' (<kind>): "
};

}  // namespace kpu::compiler
