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
    s.infer = infer_attention;
    registry.add(std::move(s));
}

}  // namespace kpu::compiler
