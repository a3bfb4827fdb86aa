#include "compiler/passes/flatten_linear.h"

#include <algorithm>
#include <map>
#include <set>

#include "compiler/ops/expansion.h"
#include "compiler/ops/op_schema.h"

namespace kpu::compiler {
namespace {

/// Whether `op` is a float32 MatMul of a [..., K] tensor (rank 3 or more) by a [K, N] matrix.
bool flattens(const Graph& g, const Op& op) {
    if (op.kind != "MatMul") return false;
    const Tensor &a = g.tensor(op.inputs[0]), &b = g.tensor(op.inputs[1]);
    return a.shape.size() >= 3 && b.shape.size() == 2 && a.dtype == DType::Float32 && b.dtype == DType::Float32;
}

/// Whether the drain computes `op` as its activation (fuse-epilogue's functions).
bool drain_function(const Op& op) {
    return op.inputs.size() == 1 && (op.kind == "Relu" || op.kind == "Gelu" || op.kind == "Sigmoid" ||
                                     op.kind == "Silu" || op.kind == "Tanh");
}

}  // namespace

Graph flatten_linear(const Graph& graph) {
    std::vector<std::vector<uint32_t>> readers(graph.tensors().size());
    for (uint32_t i = 0; i < graph.ops().size(); ++i)
        for (uint32_t t : graph.ops()[i].inputs)
            if (t != kNoTensor) readers[t].push_back(i);
    Graph g = graph;
    std::vector<Op> ops;
    std::set<uint32_t> moved;  ///< ops moved onto a 2-D result with their MatMul
    /// A flattened linear's result -> its matrix and the matrix's shape.
    std::map<uint32_t, std::pair<uint32_t, std::vector<uint64_t>>> flat_of;
    bool changed = false;
    for (uint32_t i = 0; i < graph.ops().size(); ++i) {
        const Op& op = graph.ops()[i];
        if (moved.count(i)) continue;
        if (!flattens(graph, op)) {
            ops.push_back(op);
            continue;
        }
        changed = true;
        const std::vector<uint64_t> shape = graph.tensor(op.outputs[0]).shape;
        const uint64_t k = graph.tensor(op.inputs[1]).shape[0], n = shape.back();
        Expansion x(g, op, ops);
        const std::vector<uint64_t> matrix{graph.tensor(op.inputs[0]).elements() / k, k};
        const auto earlier = flat_of.find(op.inputs[0]);  // a flattened linear's result: its matrix
        const uint32_t rows = earlier != flat_of.end() && earlier->second.second == matrix
                                  ? earlier->second.first
                                  : x.reshape("rows", op.inputs[0], matrix);
        Op mm = op;
        mm.inputs[0] = rows;
        mm.outputs = {x.tensor("matrix")};
        ops.push_back(mm);
        // The bias Add and the activations that read only their predecessor follow onto the matrix.
        uint32_t t = op.outputs[0], flat = mm.outputs[0];
        bool bias = false, activated = false;
        while (readers[t].size() == 1 && graph.tensor(t).role != TensorRole::Output) {
            const Op& next = graph.ops()[readers[t][0]];
            if (next.outputs.size() != 1 || graph.tensor(next.outputs[0]).shape != shape) break;
            Op o = next;
            if (next.kind == "Add" && !bias && !activated && next.inputs.size() == 2) {
                const uint32_t other = next.inputs[0] == t ? next.inputs[1] : next.inputs[0];
                if (other == t || graph.tensor(other).shape != std::vector<uint64_t>{n} ||
                    graph.tensor(other).dtype != DType::Float32)
                    break;
                bias = true;
                o.inputs[next.inputs[0] == t ? 0 : 1] = flat;
            } else if (drain_function(next)) {
                activated = true;
                o.inputs[0] = flat;
            } else {
                break;
            }
            o.outputs = {g.add_tensor(Tensor(derived_tensor_name(g, next.name, "matrix"), {}))};
            flat = o.outputs[0];
            ops.push_back(std::move(o));
            moved.insert(readers[t][0]);
            t = next.outputs[0];
        }
        // The view back, unless only linears that take the matrix read it.
        flat_of[t] = {flat, {matrix[0], n}};
        const bool only_linears = graph.tensor(t).role != TensorRole::Output &&
                                  std::all_of(readers[t].begin(), readers[t].end(), [&](uint32_t r) {
                                      const Op& o = graph.ops()[r];
                                      return flattens(graph, o) && o.inputs[1] != t &&
                                             graph.tensor(o.inputs[1]).shape[0] == shape.back();
                                  });
        if (!only_linears || readers[t].empty()) x.reshape("back", flat, shape, t);
    }
    return changed ? used_part(g, std::move(ops), "graph") : graph;
}

}  // namespace kpu::compiler
