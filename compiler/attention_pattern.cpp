#include "compiler/attention_pattern.h"

#include <algorithm>
#include <optional>
#include <set>

#include "compiler/const_eval.h"
#include "compiler/flash_attention.h"
#include "compiler/ops/op_schema.h"

namespace kpu::compiler {
namespace {

/// One attention chain and the flash_attention op that replaces it.
struct Match {
    std::vector<uint32_t> absorbed;  ///< ops the flash op replaces (first: the scores MatMul)
    std::vector<uint32_t> views;     ///< Q, K, V's head splits and K's Transpose: gone when nothing else reads them
    uint32_t at = 0;                 ///< the op whose place the flash op takes (the P V MatMul)
    uint32_t q = 0, k = 0, v = 0, y = 0;
    std::optional<uint32_t> mask;
    /// K is this tensor transposed by `k_perm` (a new Transpose) when k_perm is not empty.
    uint32_t k_source = 0;
    std::vector<int64_t> k_perm;
    std::vector<uint64_t> k_shape;  ///< the new K's shape
    uint64_t sq = 0, skv = 0;       ///< queries and keys per matrix
    double scale = 1;
    bool causal = false;
    int64_t heads = 0;                ///< the 3-D form's head count (0: the 4-D form)
    std::optional<uint32_t> dropped;  ///< the constant mask the causal flag replaces
};

bool identity(const std::vector<int64_t>& perm) {
    for (size_t i = 0; i < perm.size(); ++i)
        if (perm[i] != int64_t(i)) return false;
    return true;
}

class Matcher {
public:
    Matcher(const Graph& g, const Weights* weights) : g_(g), weights_(weights) {
        producer_.assign(g.tensors().size(), kNoTensor);
        readers_.resize(g.tensors().size());
        for (uint32_t i = 0; i < g.ops().size(); ++i) {
            for (uint32_t t : g.ops()[i].outputs)
                if (t != kNoTensor) producer_[t] = i;
            for (uint32_t t : g.ops()[i].inputs)
                if (t != kNoTensor) readers_[t].push_back(i);
        }
    }

    const std::vector<uint32_t>& readers(uint32_t t) const { return readers_[t]; }

    /// The chain around Softmax or masked_softmax op `s`; nullopt with `why` empty when it is no
    /// Softmax between two MatMuls, with `why` set when it is one that does not match.
    std::optional<Match> match(uint32_t s, std::string& why) const {
        const Op& sm = g_.ops()[s];
        if (sm.kind != "Softmax" && sm.kind != "masked_softmax") return std::nullopt;
        const uint32_t mm2 = sole_reader(sm.outputs[0]);
        if (mm2 == kNoTensor || g_.ops()[mm2].kind != "MatMul" || g_.ops()[mm2].inputs[0] != sm.outputs[0])
            return std::nullopt;
        Match m;
        m.at = mm2;
        std::vector<uint32_t> chain{s, mm2};
        uint32_t x = sm.inputs[0], reader = s;  // the chain's tensor so far and the op reading it
        if (sm.kind == "masked_softmax") {
            m.scale = attr_number(*attr(sm, "scale"));
            m.causal = std::get<int64_t>(*attr(sm, "is_causal")) != 0;
            if (sm.inputs.size() > 1 && sm.inputs[1] != kNoTensor) m.mask = sm.inputs[1];
        } else {
            const int64_t axis = std::get<int64_t>(*attr(sm, "axis"));
            const int64_t rank = int64_t(g_.tensor(x).shape.size());
            if (axis != -1 && axis != rank - 1) return std::nullopt;
            const uint32_t add = producer(x, "Add", s);
            if (add != kNoTensor) {
                const Op& a = g_.ops()[add];
                // The scores: the operand of the result's shape that comes from a scale or a MatMul.
                const auto scores = [&](uint32_t t) {
                    const uint32_t p = producer_[t];
                    return g_.tensor(t).shape == g_.tensor(x).shape && p != kNoTensor &&
                           (g_.ops()[p].kind == "MatMul" || g_.ops()[p].kind == "Mul" || g_.ops()[p].kind == "Div");
                };
                const int side = scores(a.inputs[0]) ? 0 : scores(a.inputs[1]) ? 1 : -1;
                if (side < 0) return std::nullopt;
                m.mask = a.inputs[1 - side];
                x = a.inputs[side], reader = add;
                chain.push_back(add);
            }
        }
        for (const char* kind : {"Mul", "Div"}) {
            const uint32_t op = producer(x, kind, reader);
            if (op == kNoTensor) continue;
            const Op& o = g_.ops()[op];
            const int side = scalar(o.inputs[1]) ? 0 : kind[0] == 'M' && scalar(o.inputs[0]) ? 1 : -1;
            if (side < 0) break;
            const double c = *scalar(o.inputs[1 - side]);
            if (c == 0) break;
            m.scale *= kind[0] == 'D' ? 1 / c : c;
            x = o.inputs[side];
            chain.push_back(op);
            break;
        }
        const uint32_t mm1 = producer_[x];
        if (mm1 == kNoTensor || g_.ops()[mm1].kind != "MatMul") return std::nullopt;
        if (!single_reader(x)) {
            why = "the scores '" + g_.tensor(x).name + "' have other readers";
            return std::nullopt;
        }
        chain.push_back(mm1);
        if (!operands(m, g_.ops()[mm1], g_.ops()[mm2], why) ||
            !mask_flags(m, g_.tensor(x).shape.size(), why))
            return std::nullopt;
        chain.insert(chain.end(), m.absorbed.begin(), m.absorbed.end());  // the heads' merge back
        std::sort(chain.begin(), chain.end());
        m.absorbed = {mm1};
        for (uint32_t op : chain)
            if (op != mm1) m.absorbed.push_back(op);
        return m;
    }

private:
    std::optional<AttrValue> attr(const Op& op, const char* name) const { return attribute_of(op, schema_of(op), name); }

    bool single_reader(uint32_t t) const {
        return readers_[t].size() == 1 && g_.tensor(t).role != TensorRole::Output;
    }
    /// The one op reading `t` (an intermediate), else kNoTensor.
    uint32_t sole_reader(uint32_t t) const { return single_reader(t) ? readers_[t][0] : kNoTensor; }
    /// The op of kind `kind` writing `t` when op `reader` is all that reads it, else kNoTensor.
    uint32_t producer(uint32_t t, const char* kind, uint32_t reader) const {
        const uint32_t p = producer_[t];
        if (p == kNoTensor || g_.ops()[p].kind != kind || sole_reader(t) != reader) return kNoTensor;
        return p;
    }
    /// The value of a one-element constant.
    std::optional<double> scalar(uint32_t t) const {
        if (g_.tensor(t).elements() != 1 || g_.tensor(t).dtype != DType::Float32) return std::nullopt;
        const std::optional<ConstValue> c = known_value(g_, t, weights_);
        if (!c) return std::nullopt;
        return c->values.at(0);
    }
    /// `t`'s producer if it is a Transpose of `perm` (of any perm when `perm` is empty), else kNoTensor.
    uint32_t transpose_of(uint32_t t, const std::vector<int64_t>& perm) const {
        const uint32_t p = producer_[t];
        if (p == kNoTensor || g_.ops()[p].kind != "Transpose") return kNoTensor;
        if (!perm.empty() && std::get<std::vector<int64_t>>(*attr(g_.ops()[p], "perm")) != perm) return kNoTensor;
        return p;
    }
    /// X [B, S, H E] when `t` is Transpose(Reshape(X, [B, S, H, E]), `perm`); the two ops to `views`.
    std::optional<uint32_t> unsplit(uint32_t t, const std::vector<int64_t>& perm, std::vector<uint32_t>& views) const {
        const uint32_t tr = transpose_of(t, perm);
        if (tr == kNoTensor) return std::nullopt;
        const uint32_t r = g_.ops()[tr].inputs[0], rs = producer_[r];
        if (rs == kNoTensor || g_.ops()[rs].kind != "Reshape") return std::nullopt;
        const uint32_t x = g_.ops()[rs].inputs[0];
        const std::vector<uint64_t>& xs = g_.tensor(x).shape;
        const std::vector<uint64_t>& split = g_.tensor(r).shape;
        if (xs.size() != 3 || split.size() != 4 || xs[0] != split[0] || xs[1] != split[1] || xs[2] != split[2] * split[3])
            return std::nullopt;
        views.push_back(tr), views.push_back(rs);
        return x;
    }

    /// Q, K, V and Y of the chain MatMul `a` (Q K^T) ... MatMul `b` (P V), in the 3-D form on the
    /// unsplit tensors when the heads are split by views, else as the MatMuls have them.
    bool operands(Match& m, const Op& a, const Op& b, std::string& why) const {
        const uint32_t q = a.inputs[0], kt = a.inputs[1], v = b.inputs[1];
        const std::vector<uint64_t>&qs = g_.tensor(q).shape, &ks = g_.tensor(kt).shape, &vs = g_.tensor(v).shape;
        const size_t rank = qs.size();
        if ((rank != 3 && rank != 4) || ks.size() != rank || vs.size() != rank ||
            !std::equal(qs.begin(), qs.end() - 2, ks.begin()) || !std::equal(qs.begin(), qs.end() - 2, vs.begin())) {
            why = "Q " + shape_string(qs) + ", K^T " + shape_string(ks) + " and V " + shape_string(vs) +
                  " are not [B, H, S, E] or [B, S, E] with the same leading dims";
            return false;
        }
        m.sq = qs[rank - 2], m.skv = ks[rank - 1];
        const uint32_t tk = transpose_of(kt, {});
        if (tk == kNoTensor) {
            why = "K^T '" + g_.tensor(kt).name + "' is no Transpose's result";
            return false;
        }
        // Heads split by views on every side: the 3-D form on the unsplit tensors.
        if (rank == 4) {
            std::vector<uint32_t> views;
            const std::optional<uint32_t> xq = unsplit(q, {0, 2, 1, 3}, views), xk = unsplit(kt, {0, 2, 3, 1}, views),
                                          xv = unsplit(v, {0, 2, 1, 3}, views);
            const uint32_t back = sole_reader(b.outputs[0]);
            const uint32_t merge = back != kNoTensor && transpose_of(g_.ops()[back].outputs[0], {0, 2, 1, 3}) == back
                                       ? sole_reader(g_.ops()[back].outputs[0])
                                       : kNoTensor;
            const std::vector<uint64_t> merged{qs[0], qs[2], qs[1] * vs[3]};
            if (xq && xk && xv && merge != kNoTensor && g_.ops()[merge].kind == "Reshape" &&
                g_.tensor(g_.ops()[merge].outputs[0]).shape == merged) {
                m.q = *xq, m.k = *xk, m.v = *xv, m.y = g_.ops()[merge].outputs[0];
                m.heads = int64_t(qs[1]);
                m.views = views;
                m.absorbed = {back, merge};  // sorted into the chain by match()
                return true;
            }
        }
        m.q = q, m.v = v, m.y = b.outputs[0];
        m.heads = rank == 3 ? 1 : 0;
        m.views = {tk};
        const std::vector<int64_t> perm = std::get<std::vector<int64_t>>(*attr(g_.ops()[tk], "perm"));
        std::vector<int64_t> k_perm(perm);  // K = K^T with its last two axes swapped, from the Transpose's input
        std::swap(k_perm[rank - 2], k_perm[rank - 1]);
        m.k_source = m.k = g_.ops()[tk].inputs[0];
        if (!identity(k_perm)) {
            m.k_perm = k_perm;
            m.k_shape = ks;
            std::swap(m.k_shape[rank - 2], m.k_shape[rank - 1]);
        }
        return true;
    }

    /// The causal flag for an exactly causal constant mask (which then goes); false with `why`
    /// for a mask that varies along the batch of 3-D scores (the 3-D form would align it with
    /// the heads, as Attention does).
    bool mask_flags(Match& m, uint64_t scores_rank, std::string& why) const {
        if (!m.mask) return true;
        const Tensor& mask = g_.tensor(*m.mask);
        const std::vector<uint64_t>& s = mask.shape;
        if (scores_rank == 3 && s.size() == 3 && s[0] != 1) {
            why = "mask '" + mask.name + "' of shape " + shape_string(s) + " varies along the batch of 3-D scores";
            return false;
        }
        const std::optional<ConstValue> c = known_value(g_, *m.mask, weights_);
        if (!c) return true;  // known at run time: flash attention adds it as Attention does
        bool causal = m.sq == m.skv && s.size() >= 2 && s[s.size() - 2] == m.sq && s.back() == m.skv;
        const uint64_t n = m.skv;
        for (uint64_t i = 0; causal && i < c->values.size(); ++i) {
            const uint64_t row = i / n % n, col = i % n;
            causal = col <= row ? c->values[i] == 0 : c->values[i] <= kMaskedValue;
        }
        if (causal) {
            m.causal = true;
            m.dropped = m.mask;
            m.mask.reset();
        }
        return true;
    }

    const Graph& g_;
    const Weights* weights_;
    std::vector<uint32_t> producer_;              ///< op writing each tensor (kNoTensor: none)
    std::vector<std::vector<uint32_t>> readers_;  ///< ops reading each tensor
};

/// The flash_attention op of match `m`, reading K as `k`.
Op flash_op(const Graph& g, const Match& m, uint32_t k) {
    Op op;
    op.name = g.ops()[m.absorbed[0]].name;
    op.kind = "flash_attention";
    op.inputs = {m.q, k, m.v};
    if (m.mask) op.inputs.push_back(*m.mask);
    op.outputs = {m.y};
    op.attributes["scale"] = m.scale;
    op.attributes["is_causal"] = int64_t(m.causal ? 1 : 0);
    if (m.heads > 0) op.attributes["q_num_heads"] = m.heads, op.attributes["kv_num_heads"] = m.heads;
    return op;
}

}  // namespace

Graph fuse_attention_patterns(const Graph& graph, const hw::Config& config, Weights* weights,
                              std::vector<std::string>* notes) {
    Matcher matcher(graph, weights);
    Graph g = graph;
    std::vector<Match> matches;
    std::vector<Op> made(graph.ops().size());  ///< the ops each kept match puts at its place
    std::vector<std::vector<Op>> before(graph.ops().size());
    std::set<uint32_t> gone;
    std::set<uint32_t> read;  ///< tensors the new ops read
    for (uint32_t s = 0; s < graph.ops().size(); ++s) {
        std::string why;
        std::optional<Match> m = matcher.match(s, why);
        if (!m) {
            if (!why.empty() && notes)
                notes->push_back("fuse-attention: '" + graph.ops()[s].name + "' not fused as attention: " + why);
            continue;
        }
        Graph trial = g;
        uint32_t k = m->k;
        Op transpose;
        if (!m->k_perm.empty()) {
            const std::string name = derived_tensor_name(trial, graph.ops()[m->absorbed[0]].name, "k");
            k = trial.add_tensor(Tensor(name, m->k_shape));
            transpose.name = name, transpose.kind = "Transpose", transpose.inputs = {m->k_source}, transpose.outputs = {k};
            transpose.attributes["perm"] = m->k_perm;
        }
        Op op = flash_op(trial, *m, k);
        const std::string refusal = flash_refusal(trial, op, config);
        if (!refusal.empty()) {
            if (notes) notes->push_back("fuse-attention: '" + graph.ops()[s].name + "' not fused as attention: " + refusal);
            continue;
        }
        g = std::move(trial);
        if (!m->k_perm.empty()) before[m->at].push_back(transpose);
        for (uint32_t t : op.inputs) read.insert(t);
        for (uint32_t t : transpose.inputs) read.insert(t);
        gone.insert(m->absorbed.begin(), m->absorbed.end());
        made[m->at] = std::move(op);
        matches.push_back(std::move(*m));
    }
    if (matches.empty()) return graph;
    // The head splits and K's Transpose go when only the replaced ops read them.
    for (bool more = true; more;) {
        more = false;
        for (const Match& m : matches)
            for (uint32_t v : m.views) {
                if (gone.count(v)) continue;
                const uint32_t out = graph.ops()[v].outputs[0];
                const std::vector<uint32_t>& r = matcher.readers(out);
                const bool unread = std::all_of(r.begin(), r.end(), [&](uint32_t o) { return gone.count(o) > 0; });
                if (unread && !read.count(out) && graph.tensor(out).role != TensorRole::Output) gone.insert(v), more = true;
            }
    }
    std::vector<Op> ops;
    std::vector<std::string> dropped;
    for (const Match& m : matches) {
        Op& op = made[m.at];
        for (uint32_t i : gone)  // std::set: graph order
            if (i != m.absorbed[0] &&
                (std::count(m.absorbed.begin(), m.absorbed.end(), i) || std::count(m.views.begin(), m.views.end(), i)))
                op.fused_with.push_back(graph.ops()[i].name);
        if (m.dropped) dropped.push_back(graph.tensor(*m.dropped).name);
    }
    for (uint32_t i = 0; i < graph.ops().size(); ++i) {
        for (Op& o : before[i]) ops.push_back(std::move(o));
        if (!made[i].name.empty()) ops.push_back(std::move(made[i]));
        else if (!gone.count(i)) ops.push_back(graph.ops()[i]);
    }
    Graph out = used_part(g, std::move(ops), "graph");
    drop_unused_weights(out, dropped, weights);
    return out;
}

}  // namespace kpu::compiler
