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
        const std::vector<uint64_t> shape = graph.tensor(op.outputs[0]).shape;
        const uint64_t k = graph.tensor(op.inputs[1]).shape[0], n = shape.back();
        const std::vector<uint64_t> matrix{graph.tensor(op.inputs[0]).elements() / k, k};
        // The bias Add and the activations that read only their predecessor follow onto the matrix.
        std::vector<uint32_t> follow;
        uint32_t t = op.outputs[0];
        for (bool bias = false, activated = false;
             readers[t].size() == 1 && graph.tensor(t).role != TensorRole::Output; t = graph.ops()[follow.back()].outputs[0]) {
            const Op& next = graph.ops()[readers[t][0]];
            if (next.outputs.size() != 1 || graph.tensor(next.outputs[0]).shape != shape) break;
            if (next.kind == "Add" && !bias && !activated && next.inputs.size() == 2) {
                const uint32_t other = next.inputs[0] == t ? next.inputs[1] : next.inputs[0];
                if (other == t || graph.tensor(other).shape != std::vector<uint64_t>{n} ||
                    graph.tensor(other).dtype != DType::Float32)
                    break;
                bias = true;
            } else if (drain_function(next)) {
                activated = true;
            } else {
                break;
            }
            follow.push_back(readers[t][0]);
        }
        const auto earlier = flat_of.find(op.inputs[0]);  // a flattened linear's result: its matrix
        const bool chained = earlier != flat_of.end() && earlier->second.second == matrix;
        const bool only_linears = !readers[t].empty() && graph.tensor(t).role != TensorRole::Output &&
                                  std::all_of(readers[t].begin(), readers[t].end(), [&](uint32_t r) {
                                      const Op& o = graph.ops()[r];
                                      return flattens(graph, o) && o.inputs[1] != t &&
                                             graph.tensor(o.inputs[1]).shape[0] == n;
                                  });
        if (follow.empty() && !chained && !only_linears) {  // nothing for a fusion to take
            ops.push_back(op);
            continue;
        }
        changed = true;
        Expansion x(g, op, ops);
        Op mm = op;
        mm.inputs[0] = chained ? earlier->second.first : x.reshape("rows", op.inputs[0], matrix);
        mm.outputs = {x.tensor("matrix")};
        uint32_t flat = mm.outputs[0], before = op.outputs[0];  // the matrix and the tensor it stands for
        ops.push_back(std::move(mm));
        for (uint32_t f : follow) {
            Op o = graph.ops()[f];
            for (uint32_t& in : o.inputs)
                if (in == before) in = flat;
            before = graph.ops()[f].outputs[0];
            o.outputs = {g.add_tensor(Tensor(derived_tensor_name(g, o.name, "matrix"), {}))};
            flat = o.outputs[0];
            ops.push_back(std::move(o));
            moved.insert(f);
        }
        // The view back, unless only linears that take the matrix read it.
        flat_of[t] = {flat, {matrix[0], n}};
        if (!only_linears) x.reshape("back", flat, shape, t);
    }
    return changed ? used_part(g, std::move(ops), "graph") : graph;
}

Graph flatten_quantized_linears(const Graph& graph) {
    Graph g = graph;
    std::vector<Op> ops;
    bool changed = false;
    for (const Op& op : graph.ops()) {
        const bool linear = op.kind == "MatMul" && graph.tensor(op.inputs[0]).dtype == DType::Int8 &&
                            graph.tensor(op.inputs[0]).shape.size() >= 3 && graph.tensor(op.inputs[1]).shape.size() == 2;
        if (!linear) {
            ops.push_back(op);
            continue;
        }
        changed = true;
        const Tensor &a = graph.tensor(op.inputs[0]), &c = graph.tensor(op.outputs[0]);
        const uint64_t k = a.shape.back();
        Expansion x(g, op, ops);
        Op mm = op;
        mm.inputs[0] = x.reshape("rows", op.inputs[0], {a.elements() / k, k});
        g.tensor(mm.inputs[0]).dtype = DType::Int8;  // the view holds A's integers, under A's quantization
        g.tensor(mm.inputs[0]).quant = a.quant;
        mm.outputs = {x.tensor("matrix")};
        g.tensor(mm.outputs[0]).quant = c.quant;  // an int8 C's quantization (none: float32)
        const uint32_t matrix = mm.outputs[0];
        ops.push_back(std::move(mm));
        x.reshape("back", matrix, c.shape, op.outputs[0]);
    }
    return changed ? used_part(g, std::move(ops), "graph") : graph;
}

}  // namespace kpu::compiler
