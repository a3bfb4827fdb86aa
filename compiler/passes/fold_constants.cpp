#include "compiler/passes/fold_constants.h"

#include <optional>

#include "compiler/const_eval.h"
#include "compiler/ops/op_schema.h"

namespace kpu::compiler {
namespace {

class Folder {
public:
    Folder(const Graph& graph, Weights* weights) : g_(graph), weights_(weights) {}

    Graph run() {
        std::vector<Op> kept;
        bool folded = false;
        for (const Op& op : g_.ops()) {
            if (fold(op)) folded = true;
            else kept.push_back(op);
        }
        if (!folded) return g_;
        Graph out = used_part(g_, std::move(kept), "fold-constants");
        drop_unused_weights(out, read_, weights_);
        return out;
    }

private:
    /// Tensor t's values, or null when they are not known; read once.
    const ConstValue* value(uint32_t t) {
        auto it = cache_.find(t);
        if (it == cache_.end()) it = cache_.emplace(t, known_value(g_, t, weights_)).first;
        return it->second ? &*it->second : nullptr;
    }

    bool fold(const Op& op) {
        if (op.outputs.size() != 1 || g_.tensor(op.outputs[0]).role == TensorRole::Output) return false;
        std::vector<const ConstValue*> inputs;
        for (uint32_t t : op.inputs) {
            inputs.push_back(t == kNoTensor ? nullptr : value(t));
            if (t != kNoTensor && !inputs.back()) return false;
        }
        if (inputs.empty()) return false;
        std::optional<ConstValue> c = evaluate_constant(op.kind, op.attributes, inputs);
        Tensor& out = g_.tensor(op.outputs[0]);
        if (!c || c->elements() != out.elements() || c->values.size() != out.elements()) return false;
        c->dtype = out.dtype, c->shape = out.shape;  // as inference gave them (a scalar's shape is [])
        const bool floats = !is_integer(out.dtype);
        if (floats)
            for (double& v : c->values) v = double(float(v));
        if (!floats || (!weights_ && c->elements() <= kInlineFoldedFloats)) {
            if (floats) out.value = c->values;
            else out.value = std::vector<int64_t>(c->ints());
        } else if (weights_) {
            (*weights_)[out.name] = Weight{out.shape, std::vector<float>(c->values.begin(), c->values.end())};
            read_.push_back(out.name);
        } else {
            return false;
        }
        for (uint32_t t : op.inputs)
            if (t != kNoTensor) read_.push_back(g_.tensor(t).name);
        out.role = TensorRole::Constant;
        cache_[op.outputs[0]] = std::move(c);
        return true;
    }

    Graph g_;
    Weights* weights_;
    std::map<uint32_t, std::optional<ConstValue>> cache_;
    std::vector<std::string> read_;  ///< the folded ops' inputs and the weights this pass added
};

}  // namespace

Graph fold_constants(const Graph& graph, Weights* weights) { return Folder(graph, weights).run(); }

}  // namespace kpu::compiler
