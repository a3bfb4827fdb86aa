#include "compiler/layout_pass.h"

#include <map>
#include <set>

#include "compiler/copy_op.h"
#include "compiler/ops/op_schema.h"
#include "compiler/vector_op.h"

namespace kpu::compiler {
namespace {

/// A constant int64 tensor holding `shape` (a Reshape's shape input), added to `g`.
uint32_t shape_tensor(Graph& g, const std::string& name, const std::vector<uint64_t>& shape) {
    Tensor t(name, {uint64_t(shape.size())}, DType::Int64, TensorRole::Constant);
    t.value = std::vector<int64_t>(shape.begin(), shape.end());
    return g.add_tensor(std::move(t));
}

/// A view of `in` as tensor `out` (same elements, in the same order).
Op view(Graph& g, const std::string& name, uint32_t in, uint32_t out) {
    Op op;
    op.name = name;
    op.kind = "Reshape";
    op.inputs = {in, shape_tensor(g, derived_tensor_name(g, name, "shape"), g.tensor(out).shape)};
    op.outputs = {out};
    return op;
}

/// `shape` (of rank <= perm's, aligned to the right) as seen in the layout before
/// Transpose(perm): dim k is `shape`'s dim d with perm[d] = k. Empty when that is not a view
/// of `shape` (its dims other than 1 would change order).
std::vector<uint64_t> before_transpose(const std::vector<uint64_t>& shape, const std::vector<int64_t>& perm) {
    const size_t rank = perm.size();
    std::vector<uint64_t> padded(rank - shape.size(), 1);
    padded.insert(padded.end(), shape.begin(), shape.end());
    std::vector<uint64_t> out(rank);
    for (size_t d = 0; d < rank; ++d) out[size_t(perm[d])] = padded[d];
    std::vector<uint64_t> a, b;  // the dims other than 1, in order, before and after
    for (uint64_t x : padded)
        if (x != 1) a.push_back(x);
    for (uint64_t x : out)
        if (x != 1) b.push_back(x);
    if (a != b) return {};
    return out;
}

class Sinker {
public:
    explicit Sinker(const Graph& graph) : g_(graph) {}

    /// One rewrite; false when none applies.
    bool step() {
        index();
        for (uint32_t i = 0; i < g_.ops().size(); ++i)
            if (cancel(i) || drop(i) || sink(i)) return true;
        return false;
    }
    const Graph& graph() const { return g_; }

private:
    void index() {
        producer_.clear();
        readers_.clear();
        for (uint32_t i = 0; i < g_.ops().size(); ++i) {
            for (uint32_t t : g_.ops()[i].outputs) producer_[t] = i;
            for (uint32_t t : g_.ops()[i].inputs)
                if (t != kNoTensor) ++readers_[t];
        }
    }
    bool is_output(uint32_t t) const { return g_.tensor(t).role == TensorRole::Output; }
    const Op* transpose_producing(uint32_t t) const {
        const auto it = producer_.find(t);
        return it != producer_.end() && g_.ops()[it->second].kind == "Transpose" ? &g_.ops()[it->second] : nullptr;
    }
    void replace(std::vector<Op> ops, Graph& scratch) { g_ = used_part(scratch, std::move(ops), "layout"); }

    /// Transpose(q) of Transpose(p) with q after p the identity: a view of p's input.
    bool cancel(uint32_t i) {
        const Op& op = g_.ops()[i];
        if (op.kind != "Transpose") return false;
        const Op* first = transpose_producing(op.inputs[0]);
        if (!first) return false;
        const std::vector<int64_t> p = transpose_perm(g_, *first), q = transpose_perm(g_, op);
        for (size_t d = 0; d < q.size(); ++d)
            if (p[size_t(q[d])] != int64_t(d)) return false;
        Graph scratch = g_;
        std::vector<Op> ops = g_.ops();
        ops[i] = view(scratch, op.name + ".cancelled", first->inputs[0], op.outputs[0]);
        const uint32_t between = op.inputs[0];
        if (readers_.at(between) == 1 && !is_output(between))  // the first goes too: nothing else reads it
            ops.erase(ops.begin() + producer_.at(between));
        replace(std::move(ops), scratch);
        return true;
    }

    bool drop(uint32_t i) {
        const Op& op = g_.ops()[i];
        if (op.kind != "Transpose" || readers_.count(op.outputs[0]) || is_output(op.outputs[0])) return false;
        std::vector<Op> ops = g_.ops();
        ops.erase(ops.begin() + i);
        replace(std::move(ops), g_);
        return true;
    }

    bool sink(uint32_t i) {
        const Op& op = g_.ops()[i];
        if (!is_elementwise_op(op) || kept_.count(op.name)) return false;
        const std::vector<uint64_t>& shape = g_.tensor(op.outputs[0]).shape;
        std::vector<int64_t> perm;
        std::map<uint32_t, uint32_t> reads;  // per transposed input, how often op reads it
        for (uint32_t t : op.inputs)
            if (t != kNoTensor && g_.tensor(t).shape == shape && g_.tensor(t).elements() > 1) ++reads[t];
        if (reads.empty()) return false;
        for (const auto& [t, n] : reads) {
            const Op* tr = transpose_producing(t);
            if (!tr || readers_.at(t) != n || is_output(t)) return false;
            const std::vector<int64_t> p = transpose_perm(g_, *tr);
            if (!perm.empty() && p != perm) return false;
            perm = p;
        }
        Graph scratch = g_;
        Op moved = op;
        moved.name = op.name + ".relaid";
        std::vector<Op> views;  // the broadcast inputs seen in the other layout
        for (uint32_t& t : moved.inputs) {
            if (t == kNoTensor || g_.tensor(t).elements() == 1) continue;  // absent, or a scalar
            if (reads.count(t)) {
                t = transpose_producing(t)->inputs[0];
                continue;
            }
            const std::vector<uint64_t> seen = before_transpose(g_.tensor(t).shape, perm);
            if (seen.empty()) return false;
            const uint32_t v = scratch.add_tensor(Tensor(derived_tensor_name(scratch, moved.name, g_.tensor(t).name), seen));
            scratch.tensor(v).quant = g_.tensor(t).quant;  // the same values (an int8 tensor's steps)
            views.push_back(view(scratch, moved.name + "." + g_.tensor(t).name, t, v));
            t = v;
        }
        const uint32_t y = moved.outputs[0];
        moved.outputs[0] = scratch.add_tensor(Tensor(derived_tensor_name(scratch, op.name, "relaid"), {}));
        scratch.tensor(moved.outputs[0]).quant = g_.tensor(y).quant;  // y's values in the other layout
        Op back;
        back.name = op.name + ".transpose";
        back.kind = "Transpose";
        back.inputs = {moved.outputs[0]};
        back.outputs = {y};
        back.attributes["perm"] = perm;  // as the inputs were: out[d] = in[perm[d]]
        std::vector<Op> ops;
        for (uint32_t j = 0; j < g_.ops().size(); ++j) {
            const bool feeding = reads.count(g_.ops()[j].outputs[0]) != 0;  // read by op alone: goes
            if (j != i) {
                if (!feeding) ops.push_back(g_.ops()[j]);
                continue;
            }
            for (Op& v : views) ops.push_back(std::move(v));
            ops.push_back(moved);
            ops.push_back(back);
        }
        // Only where the op still lowers in the other layout (a per-channel [C, 1, 1] becomes a
        // row there, but a [3, 4, 1] column may become a [3, 1, 4] that is neither).
        const bool lowered = vector_lowering_problem(g_, op).empty();
        Graph before = g_;
        replace(std::move(ops), scratch);
        const std::optional<uint32_t> at = g_.find_op(moved.name);
        if (lowered && at && !vector_lowering_problem(g_, g_.ops()[*at]).empty()) {
            kept_.insert(before.ops()[i].name);
            g_ = std::move(before);
        }
        return true;  // changed, or the op marked to stay: look again
    }

    Graph g_;
    std::map<uint32_t, uint32_t> producer_;  ///< tensor -> the op writing it
    std::map<uint32_t, uint32_t> readers_;   ///< tensor -> how many inputs read it
    std::set<std::string> kept_;             ///< ops that lower only where they are
};

}  // namespace

Graph sink_transposes(const Graph& graph) {
    Sinker s(graph);
    while (s.step()) {
    }
    return s.graph();
}

}  // namespace kpu::compiler
