#include "sc_main/host_budget.h"

#include "compiler/bound_program.h"
#include "compiler/generate.h"
#include "compiler/ops/op_schema.h"

namespace kpu::cli {

uint64_t run_host_bytes(const compiler::Program& program, bool check) {
    const compiler::Graph& graph = program.graph;
    const std::vector<uint32_t> roots = compiler::alias_roots(graph);
    uint64_t total = 0;
    for (uint32_t t = 0; t < graph.tensors().size(); ++t) {
        const compiler::Tensor& tensor = graph.tensor(t);
        const uint64_t bytes = tensor.bytes(), floats = tensor.elements() * sizeof(float);
        const compiler::TensorRole role = tensor.role.value_or(compiler::TensorRole::Intermediate);
        if (roots[t] == t) total += bytes;  // the device's DRAM pages
        if (role == compiler::TensorRole::Input || role == compiler::TensorRole::Constant) total += bytes + floats;
        else if (role == compiler::TensorRole::Output || check) total += bytes + floats;
        if (check) total += floats;  // the reference's copy
    }
    return total + compiler::count_ops(program).total * sizeof(compiler::BoundOp);
}

}  // namespace kpu::cli
