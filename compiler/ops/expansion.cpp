#include "compiler/ops/expansion.h"

#include "compiler/vector_op.h"

namespace kpu::compiler {

uint32_t Expansion::tensor(const std::string& part) {
    return graph_.add_tensor(Tensor(derived_tensor_name(graph_, op_.name, part), {}));
}

uint32_t Expansion::ints(const std::string& part, const std::vector<int64_t>& values) {
    Tensor t(derived_tensor_name(graph_, op_.name, part), {uint64_t(values.size())}, DType::Int64, TensorRole::Constant);
    t.value = values;
    return graph_.add_tensor(std::move(t));
}

uint32_t Expansion::add(const std::string& kind, const std::string& part, std::vector<uint32_t> inputs, uint32_t out,
                        std::map<std::string, AttrValue> attributes) {
    if (out == kNoTensor) out = tensor(part);
    Op o;
    o.name = op_.name + "." + part;
    o.kind = kind;
    o.inputs = std::move(inputs);
    o.outputs = {out};
    o.attributes = std::move(attributes);
    ops_.push_back(std::move(o));
    return out;
}

uint32_t Expansion::reshape(const std::string& part, uint32_t x, std::vector<uint64_t> shape, uint32_t out) {
    return add("Reshape", part, {x, ints(part + "_shape", {shape.begin(), shape.end()})}, out);
}

uint32_t Expansion::transpose(const std::string& part, uint32_t x, std::vector<int64_t> perm, uint32_t out) {
    return add("Transpose", part, {x}, out, {{"perm", std::move(perm)}});
}

std::string expanded_or_vector_problem(const Graph& graph, const Op& op) {
    if (std::optional<std::string> problem = expansion_problem(graph, op)) return *problem;
    return vector_lowering_problem(graph, op);
}

}  // namespace kpu::compiler
