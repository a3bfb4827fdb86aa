// What a composite op's expand hook (OpSchema::expand) builds its ops and tensors with: each
// named "<op>.<part>", intermediate shapes left to inference, constant inputs (a Reshape's
// shape, a Reduce's axes) as inline int64 tensors.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compiler/ops/op_schema.h"

namespace kpu::compiler {

class Expansion {
public:
    Expansion(Graph& graph, const Op& op, std::vector<Op>& ops) : graph_(graph), op_(op), ops_(ops) {}

    /// A new intermediate tensor "<op>.<part>" (shape inferred).
    uint32_t tensor(const std::string& part);
    /// A new constant "<op>.<part>" holding `values` (int64, shape [values.size()]).
    uint32_t ints(const std::string& part, const std::vector<int64_t>& values);
    /// An op "<op>.<part>" writing `out` (a new tensor "<op>.<part>" when kNoTensor); returns `out`.
    uint32_t add(const std::string& kind, const std::string& part, std::vector<uint32_t> inputs, uint32_t out,
                 std::map<std::string, AttrValue> attributes = {});
    /// x viewed as `shape` (a Reshape), into `out` or a new tensor.
    /// (`shape` by value: a caller may pass a tensor's shape, which adding tensors moves.)
    uint32_t reshape(const std::string& part, uint32_t x, std::vector<uint64_t> shape, uint32_t out = kNoTensor);
    /// x's axes permuted (a Transpose), into `out` or a new tensor.
    uint32_t transpose(const std::string& part, uint32_t x, std::vector<int64_t> perm, uint32_t out = kNoTensor);

private:
    Graph& graph_;
    const Op& op_;
    std::vector<Op>& ops_;
};

/// A lowering_problem for an op whose expand hook expands some instances (an axis other than
/// the last): its expansion's problems when it expands, else the vector engine's.
std::string expanded_or_vector_problem(const Graph& graph, const Op& op);

}  // namespace kpu::compiler
