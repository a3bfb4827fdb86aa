#include "compiler/passes/fold_batchnorm.h"

#include <cmath>
#include <optional>

#include "compiler/const_eval.h"
#include "compiler/ops/op_schema.h"
#include "compiler/passes/fold_constants.h"

namespace kpu::compiler {
namespace {

double number(const AttrValue& v) {
    return std::holds_alternative<int64_t>(v) ? double(std::get<int64_t>(v)) : std::get<double>(v);
}

/// A new float constant "<op>.<part>" of `shape` holding `values`: a weight, or inline.
uint32_t add_constant(Graph& g, Weights* weights, const std::string& op, const std::string& part,
                      const std::vector<uint64_t>& shape, const std::vector<double>& values) {
    Tensor t(derived_tensor_name(g, op, part), shape, DType::Float32, TensorRole::Constant);
    if (weights) (*weights)[t.name] = Weight{shape, std::vector<float>(values.begin(), values.end())};
    else t.value = values;
    return g.add_tensor(std::move(t));
}

}  // namespace

Graph fold_batchnorm(const Graph& graph, Weights* weights) {
    Graph scratch = graph;
    std::vector<uint32_t> readers(graph.tensors().size(), 0);
    for (const Op& op : graph.ops())
        for (uint32_t t : op.inputs)
            if (t != kNoTensor) ++readers[t];
    std::vector<std::optional<uint32_t>> producer(graph.tensors().size());
    for (uint32_t i = 0; i < graph.ops().size(); ++i)
        for (uint32_t t : graph.ops()[i].outputs)
            if (t != kNoTensor) producer[t] = i;
    std::vector<Op> ops = graph.ops();
    std::vector<bool> gone(ops.size(), false);
    bool folded = false;
    std::vector<std::string> read;  // the folded parameters
    for (uint32_t i = 0; i < graph.ops().size(); ++i) {
        const Op& bn = graph.ops()[i];
        if (bn.kind != "BatchNormalization") continue;
        const OpSchema& schema = schema_of(bn);
        if (std::get<int64_t>(*attribute_of(bn, schema, "training_mode")) != 0) continue;
        if (bn.outputs.size() > 1 && (bn.outputs[1] != kNoTensor || (bn.outputs.size() > 2 && bn.outputs[2] != kNoTensor)))
            continue;
        const uint32_t x = bn.inputs[0];
        if (!producer[x] || readers[x] != 1 || graph.tensor(x).role == TensorRole::Output) continue;
        const Op& conv = graph.ops()[*producer[x]];
        if (conv.kind != "Conv" || graph.tensor(conv.inputs[1]).dtype != DType::Float32) continue;
        const bool has_bias = conv.inputs.size() > 2 && conv.inputs[2] != kNoTensor;
        std::vector<std::optional<ConstValue>> p;  // scale, B, mean, var, W, conv B
        for (uint32_t t : {bn.inputs[1], bn.inputs[2], bn.inputs[3], bn.inputs[4], conv.inputs[1]})
            p.push_back(known_value(graph, t, weights));
        if (has_bias) p.push_back(known_value(graph, conv.inputs[2], weights));
        bool all = true;
        for (const auto& v : p) all = all && v.has_value();
        if (!all) continue;
        const std::vector<double>& w = p[4]->values;
        const uint64_t cout = graph.tensor(conv.inputs[1]).shape[0], per = w.size() / cout;
        if (!weights && (w.size() > kInlineFoldedFloats || cout > kInlineFoldedFloats)) continue;
        const double epsilon = double(float(number(*attribute_of(bn, schema, "epsilon"))));
        std::vector<double> wf(w.size()), bf(cout);
        for (uint64_t c = 0; c < cout; ++c) {
            const double s = p[0]->values[c] / std::sqrt(p[3]->values[c] + epsilon);
            for (uint64_t j = 0; j < per; ++j) wf[c * per + j] = double(float(w[c * per + j] * s));
            bf[c] = double(float(((has_bias ? p[5]->values[c] : 0.0) - p[2]->values[c]) * s + p[1]->values[c]));
        }
        for (uint32_t t : {bn.inputs[1], bn.inputs[2], bn.inputs[3], bn.inputs[4], conv.inputs[1]})
            read.push_back(graph.tensor(t).name);
        if (has_bias) read.push_back(graph.tensor(conv.inputs[2]).name);
        Op& fused = ops[*producer[x]];
        fused.inputs.resize(3);
        fused.inputs[1] = add_constant(scratch, weights, conv.name, "folded_W", graph.tensor(conv.inputs[1]).shape, wf);
        fused.inputs[2] = add_constant(scratch, weights, conv.name, "folded_B", {cout}, bf);
        fused.outputs = {bn.outputs[0]};
        fused.fused_with.insert(fused.fused_with.end(), bn.fused_with.begin(), bn.fused_with.end());
        fused.fused_with.push_back(bn.name);
        gone[i] = true;
        folded = true;
    }
    if (!folded) return graph;
    std::vector<Op> kept;
    for (uint32_t i = 0; i < ops.size(); ++i)
        if (!gone[i]) kept.push_back(std::move(ops[i]));
    Graph out = used_part(scratch, std::move(kept), "fold-batchnorm");
    drop_unused_weights(out, read, weights);
    return out;
}

}  // namespace kpu::compiler
