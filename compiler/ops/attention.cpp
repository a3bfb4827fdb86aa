// Attention as ONNX opset 23 defines it: Y = softmax(Q @ K^T * scale + mask (+ causal)) @ V.
// 4-D form: Q [B, Hq, Sq, E], K [B, Hkv, Skv, E], V [B, Hkv, Skv, Ev] -> Y [B, Hq, Sq, Ev],
// Hq a multiple of Hkv (grouped queries). 3-D form: Q [B, Sq, Hq*E], K [B, Skv, Hkv*E],
// V [B, Skv, Hkv*Ev] with q_num_heads and kv_num_heads -> Y [B, Sq, Hq*Ev]. The optional
// attn_mask (float, added to the scores) broadcasts to [B, Hq, Sq, Skv]. The past key/value
// inputs and the extra outputs are not taken.
//
// masked_softmax (ours, what Attention lowers to around its two matmuls): Y = softmax(scale X
// (+ mask)) along the last axis of X [.., Sq, Skv], the mask broadcasting to X, with
// is_causal masking element (i, j) of each Sq x Skv matrix where j > i (ONNX's upper-left
// alignment).
#include <cmath>
#include <map>

#include "compiler/flash_attention.h"
#include "compiler/ops/expansion.h"
#include "compiler/ops/op_schema.h"
#include "compiler/vector_op.h"

namespace kpu::compiler {
namespace {

constexpr std::initializer_list<DType> kFloats = {DType::Float32, DType::Float16, DType::BFloat16};

void infer_attention(InferContext& c) {
    c.need_dtype(0, kFloats);
    c.same_dtype(0, 1);
    c.same_dtype(0, 2);
    c.need_rank(0, 3, 4);
    for (size_t i : {size_t(1), size_t(2)})
        if (c.rank(i) != c.rank(0))
            c.fail(c.describe(i) + " has rank " + std::to_string(c.rank(i)) + " but " + c.describe(0) + " has rank " +
                   std::to_string(c.rank(0)));
    const auto& q = c.shape(0);
    const auto& k = c.shape(1);
    const auto& v = c.shape(2);
    const bool four = q.size() == 4;
    uint64_t hq, hkv, e, ev;
    if (four) {
        hq = q[1], hkv = k[1], e = q[3], ev = v[3];
        if (k[3] != e) c.fail(c.describe(1) + " head size " + std::to_string(k[3]) + " but " + c.describe(0) + " head size " + std::to_string(e));
        if (v[1] != hkv) c.fail(c.describe(2) + " has " + std::to_string(v[1]) + " heads but " + c.describe(1) + " has " + std::to_string(hkv));
    } else {
        for (const char* name : {"q_num_heads", "kv_num_heads"})
            if (!c.has_attr(name) || c.int_attr(name) <= 0)
                c.fail(std::string("3-D inputs need attribute '") + name + "' (a positive number of heads)");
        hq = uint64_t(c.int_attr("q_num_heads")), hkv = uint64_t(c.int_attr("kv_num_heads"));
        const auto per_head = [&](size_t i, uint64_t heads) {
            if (c.shape(i)[2] % heads != 0)
                c.fail(c.describe(i) + " hidden size " + std::to_string(c.shape(i)[2]) + " is not a multiple of " +
                       std::to_string(heads) + " heads");
            return c.shape(i)[2] / heads;
        };
        e = per_head(0, hq), ev = per_head(2, hkv);
        if (per_head(1, hkv) != e)
            c.fail(c.describe(1) + " head size " + std::to_string(per_head(1, hkv)) + " but " + c.describe(0) +
                   " head size " + std::to_string(e));
    }
    const size_t seq = four ? 2 : 1;
    if (k[0] != q[0] || v[0] != q[0])
        c.fail("batch sizes differ: " + c.describe(0) + ", " + c.describe(1) + ", " + c.describe(2));
    if (v[seq] != k[seq])
        c.fail(c.describe(2) + " sequence " + std::to_string(v[seq]) + " but " + c.describe(1) + " sequence " + std::to_string(k[seq]));
    if (hq % hkv != 0)
        c.fail(std::to_string(hq) + " query heads are not a multiple of " + std::to_string(hkv) + " key/value heads");
    if (c.has_input(3)) {
        c.same_dtype(0, 3);
        const std::vector<uint64_t> scores{q[0], hq, q[seq], k[seq]};
        if (c.broadcast(c.shape(3), c.describe(3), scores, "the scores [B, Hq, Sq, Skv]") != scores)
            c.fail(c.describe(3) + " does not broadcast to the scores " + shape_string(scores));
    }
    if (c.int_attr("qk_matmul_output_mode") != 0)
        c.fail("attribute 'qk_matmul_output_mode' is " + std::to_string(c.int_attr("qk_matmul_output_mode")) + ", only 0 is taken");
    c.output(0, four ? std::vector<uint64_t>{q[0], hq, q[2], ev} : std::vector<uint64_t>{q[0], q[1], hq * ev}, c.dtype(0));
}

void infer_masked_softmax(InferContext& c) {
    c.need_dtype(0, kFloats);
    c.need_rank(0, 2, kMaxRank);
    if (c.has_input(1)) {
        c.same_dtype(0, 1);
        if (c.broadcast(c.shape(1), c.describe(1), c.shape(0), c.describe(0)) != c.shape(0))
            c.fail(c.describe(1) + " does not broadcast to " + c.describe(0));
    }
    c.output(0, c.shape(0), c.dtype(0));
}

/// Attention as Q' = the queries as [B, Hkv, g Sq, E] (g = Hq / Hkv query heads per key/value
/// head), K^T by the movers, S = Q' @ K^T (batched on the fabric), P = masked_softmax(S as
/// [B, Hq, Sq, Skv], scale, mask, causal) on the vector engine, Y = P @ V. The 3-D form
/// splits the heads first (Reshape, Transpose [0, 2, 1, 3]) and merges them after.
bool expand_attention(Graph& g, const Op& op, std::vector<Op>& ops) {
    const OpSchema& schema = schema_of(op);
    const auto attr = [&](const char* name) { return attribute_of(op, schema, name); };
    if (attr_number(*attr("softcap")) != 0) return false;  // not taken: attention_lowering names it
    Expansion x(g, op, ops);
    const std::vector<uint64_t> qs = g.tensor(op.inputs[0]).shape, ks = g.tensor(op.inputs[1]).shape,
                                vs = g.tensor(op.inputs[2]).shape;
    const bool four = qs.size() == 4;
    const uint64_t b = qs[0];
    const uint64_t hq = four ? qs[1] : uint64_t(std::get<int64_t>(*attr("q_num_heads")));
    const uint64_t hkv = four ? ks[1] : uint64_t(std::get<int64_t>(*attr("kv_num_heads")));
    const uint64_t sq = qs[four ? 2 : 1], skv = ks[four ? 2 : 1];
    const uint64_t e = four ? qs[3] : qs[2] / hq, ev = four ? vs[3] : vs[2] / hkv, group = hq / hkv;
    const uint32_t y = op.outputs[0];
    uint32_t q = op.inputs[0], kt, v = op.inputs[2];
    if (four) {
        kt = x.transpose("kt", op.inputs[1], {0, 1, 3, 2});
    } else {  // heads out of the hidden axis: [B, S, H*E] -> [B, S, H, E] -> [B, H, S, E]
        q = x.transpose("q_heads", x.reshape("q_split", q, {b, sq, hq, e}), {0, 2, 1, 3});
        kt = x.transpose("kt", x.reshape("k_split", op.inputs[1], {b, skv, hkv, e}), {0, 2, 3, 1});
        v = x.transpose("v_heads", x.reshape("v_split", v, {b, skv, hkv, ev}), {0, 2, 1, 3});
    }
    if (group > 1) q = x.reshape("q_grouped", q, {b, hkv, group * sq, e});
    uint32_t scores = x.add("MatMul", "qk", {q, kt}, kNoTensor);
    if (group > 1) scores = x.reshape("scores", scores, {b, hq, sq, skv});
    const double scale = attr("scale") ? attr_number(*attr("scale")) : 1 / std::sqrt(double(e));
    const bool mask = op.inputs.size() > 3 && op.inputs[3] != kNoTensor;
    uint32_t probs = x.add("masked_softmax", "softmax", mask ? std::vector<uint32_t>{scores, op.inputs[3]}
                                                             : std::vector<uint32_t>{scores},
                           kNoTensor, {{"scale", scale}, {"is_causal", std::get<int64_t>(*attr("is_causal"))}});
    if (group > 1) probs = x.reshape("probs", probs, {b, hkv, group * sq, skv});
    const bool direct = four && group == 1;  // P @ V is Y itself
    uint32_t out = x.add("MatMul", "pv", {probs, v}, direct ? y : kNoTensor);
    if (direct) return true;
    if (four) {
        x.reshape("y", out, {b, hq, sq, ev}, y);
        return true;
    }
    if (group > 1) out = x.reshape("y_heads", out, {b, hq, sq, ev});
    x.reshape("y", x.transpose("y_merge", out, {0, 2, 1, 3}), {b, sq, hq * ev}, y);
    return true;
}

/// flash_attention lowers as one fused kernel (flash_attention.h) when its operands do.
std::string flash_attention_lowering(const Graph& g, const Op& op) { return flash_problem(g, op); }

std::string attention_lowering(const Graph& g, const Op& op) {
    const std::optional<AttrValue> softcap = attribute_of(op, schema_of(op), "softcap");
    if (softcap && attr_number(*softcap) != 0) return "softcap = " + attr_string(*softcap) + " not yet supported";
    return *expansion_problem(g, op);
}

}  // namespace

void register_attention(OpRegistry& registry) {
    OpSchema m;
    m.kind = "masked_softmax", m.inputs = {"X", "mask"}, m.min_inputs = 1, m.outputs = {"Y"};
    m.attributes = {{"is_causal", AttrType::Int, int64_t(0)}, {"scale", AttrType::Float, 1.0}};
    m.infer = infer_masked_softmax;
    m.lowering_problem = vector_lowering_problem;
    registry.add(std::move(m));

    OpSchema s;
    s.kind = "Attention", s.inputs = {"Q", "K", "V", "attn_mask"}, s.min_inputs = 3, s.outputs = {"Y"};
    s.attributes = {{"is_causal", AttrType::Int, int64_t(0)},
                    {"kv_num_heads", AttrType::Int, std::nullopt},
                    {"q_num_heads", AttrType::Int, std::nullopt},
                    {"qk_matmul_output_mode", AttrType::Int, int64_t(0)},
                    {"scale", AttrType::Float, std::nullopt},
                    {"softcap", AttrType::Float, 0.0},
                    {"softmax_precision", AttrType::Int, std::nullopt}};
    // flash_attention (ours, what the fuse-attention pass makes of an Attention that fits a
    // compute tile): Attention's inputs, output, attributes and semantics, as one kernel.
    OpSchema f = s;
    f.kind = "flash_attention";
    f.infer = infer_attention;
    f.lowering_problem = flash_attention_lowering;
    registry.add(std::move(f));

    s.infer = infer_attention;
    s.expand = expand_attention;
    s.lowering_problem = attention_lowering;
    registry.add(std::move(s));
}

}  // namespace kpu::compiler
