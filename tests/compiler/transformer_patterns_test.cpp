// Transformers as exported ONNX spells them: the attention chain MatMul(Q, K^T) -> scale ->
// mask -> Softmax -> MatMul(., V) made one flash_attention op (compiler/attention_pattern.h),
// and 3-D linear MatMuls made matrix products between views (compiler/passes/flatten_linear.h)
// that fuse-epilogue then takes. What does not match stays as it was.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "compiler/attention_pattern.h"
#include "compiler/ops/op_schema.h"
#include "compiler/passes/flatten_linear.h"
#include "compiler/passes/fuse_epilogue.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

std::vector<std::string> kinds(const Graph& g) {
    std::vector<std::string> out;
    for (const Op& op : g.ops()) out.push_back(op.kind);
    return out;
}

const Op& only_flash(const Graph& g) {
    static const Op none;
    for (const Op& op : g.ops())
        if (op.kind == "flash_attention") return op;
    ADD_FAILURE() << "no flash_attention";
    return none;
}

/// The names of op's inputs, then of its outputs.
std::vector<std::string> tensor_names(const Graph& g, const Op& op) {
    std::vector<std::string> out;
    for (uint32_t t : op.inputs) out.push_back(g.tensor(t).name);
    for (uint32_t t : op.outputs) out.push_back(g.tensor(t).name);
    return out;
}

// Q, K, V [1, 2, 16, 8]: K^T by Transpose [0, 1, 3, 2], scores / 4, an input mask added.
std::string four_d_json(const std::string& scale_op, const std::string& mask_role) {
    return R"({"tensors": [
        {"name": "q", "shape": [1, 2, 16, 8], "role": "input"}, {"name": "k", "shape": [1, 2, 16, 8], "role": "input"},
        {"name": "v", "shape": [1, 2, 16, 8], "role": "input"}, {"name": "mask", "shape": [16, 16], "role": ")" +
           mask_role + R"("},
        {"name": "c", "shape": [], "role": "constant", "value": [4.0]},
        {"name": "kt"}, {"name": "s"}, {"name": "s2"}, {"name": "s3"}, {"name": "p"}, {"name": "y", "role": "output"}],
        "ops": [{"op": "Transpose", "name": "kt", "inputs": ["k"], "outputs": ["kt"], "attributes": {"perm": [0, 1, 3, 2]}},
                {"op": "MatMul", "name": "qk", "inputs": ["q", "kt"], "outputs": ["s"]},
                {"op": ")" + scale_op + R"(", "name": "scale", "inputs": ["s", "c"], "outputs": ["s2"]},
                {"op": "Add", "name": "add", "inputs": ["s2", "mask"], "outputs": ["s3"]},
                {"op": "Softmax", "name": "sm", "inputs": ["s3"], "outputs": ["p"]},
                {"op": "MatMul", "name": "pv", "inputs": ["p", "v"], "outputs": ["y"]}]})";
}

// The whole chain is one flash_attention reading K itself (the Transpose only swapped the last
// two axes), with the Div's reciprocal as its scale and the mask as attn_mask; it compiles to one
// kernel whose stream moves the DRAM bytes of its hints.
TEST(AttentionPattern, ASpelledOutChainBecomesOneFlashOp) {
    const Graph g = parse_graph(four_d_json("Div", "input"), "a.json");
    const Graph out = fuse_attention_patterns(g, test::config("edge"), nullptr);
    ASSERT_EQ(kinds(out), std::vector<std::string>{"flash_attention"});
    const Op& f = out.ops()[0];
    EXPECT_EQ(f.name, "qk");
    EXPECT_EQ(f.fused_with, (std::vector<std::string>{"kt", "scale", "add", "sm", "pv"}));
    EXPECT_EQ(tensor_names(out, f), (std::vector<std::string>{"q", "k", "v", "mask", "y"}));
    EXPECT_EQ(std::get<double>(f.attributes.at("scale")), 0.25);
    EXPECT_EQ(std::get<int64_t>(f.attributes.at("is_causal")), 0);
    const Program p = compile(g, test::config("edge"));
    ASSERT_EQ(p.kernels.size(), 1u);
    EXPECT_EQ(p.graph.ops()[p.kernels[0].op].kind, "flash_attention");
    test::expect_consistent(p, test::config("edge"));
}

// A Mul by the scale takes either operand order.
TEST(AttentionPattern, AMulScalesLikeItsConstant) {
    const Graph out = fuse_attention_patterns(parse_graph(four_d_json("Mul", "input"), "a.json"),
                                              test::config("edge"), nullptr);
    EXPECT_EQ(std::get<double>(only_flash(out).attributes.at("scale")), 4.0);
}

Weights mask_weights(double above, double at_or_below) {
    Weights w;
    std::vector<float> m(16 * 16);
    for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 16; ++j) m[size_t(i * 16 + j)] = float(j > i ? above : at_or_below);
    w["mask"] = {{16, 16}, m};
    return w;
}

// A constant mask of -inf (or torch.finfo.min) above the diagonal and 0 elsewhere is the causal
// flag: the mask goes, and with it its weight.
TEST(AttentionPattern, AnExactlyCausalConstantMaskBecomesTheCausalFlag) {
    const Graph g = parse_graph(four_d_json("Div", "constant"), "a.json");
    for (double above : {-std::numeric_limits<double>::infinity(), double(std::numeric_limits<float>::lowest())}) {
        Weights w = mask_weights(above, 0);
        const Graph out = fuse_attention_patterns(g, test::config("edge"), &w);
        const Op& f = only_flash(out);
        EXPECT_EQ(f.inputs.size(), 3u);
        EXPECT_EQ(std::get<int64_t>(f.attributes.at("is_causal")), 1);
        EXPECT_FALSE(out.find_tensor("mask"));
        EXPECT_EQ(w.count("mask"), 0u);
    }
}

// A mask that is not exactly causal, finite or not, stays a mask (-1e9 is no masked value, an
// -inf on the diagonal is no causal mask).
TEST(AttentionPattern, OtherConstantMasksStayMasks) {
    const Graph g = parse_graph(four_d_json("Div", "constant"), "a.json");
    for (Weights w : {mask_weights(-1e9, 0), mask_weights(0, -std::numeric_limits<double>::infinity())}) {
        const Graph out = fuse_attention_patterns(g, test::config("edge"), &w);
        const Op& f = only_flash(out);
        EXPECT_EQ(tensor_names(out, f), (std::vector<std::string>{"q", "k", "v", "mask", "y"}));
        EXPECT_EQ(std::get<int64_t>(f.attributes.at("is_causal")), 0);
        EXPECT_EQ(w.count("mask"), 1u);
    }
}

// 3-D scores with a mask per batch: the 3-D form would read it per head; refused, -v says why.
TEST(AttentionPattern, APerBatchMaskOfThreeDScoresIsRefused) {
    const auto graph = [](const std::string& mask) {
        return parse_graph(R"({"tensors": [
        {"name": "q", "shape": [2, 16, 8], "role": "input"}, {"name": "k", "shape": [2, 16, 8], "role": "input"},
        {"name": "v", "shape": [2, 16, 8], "role": "input"}, {"name": "mask", "shape": )" + mask + R"(, "role": "input"},
        {"name": "kt"}, {"name": "s"}, {"name": "s2"}, {"name": "p"}, {"name": "y", "role": "output"}],
        "ops": [{"op": "Transpose", "name": "kt", "inputs": ["k"], "outputs": ["kt"], "attributes": {"perm": [0, 2, 1]}},
                {"op": "MatMul", "name": "qk", "inputs": ["q", "kt"], "outputs": ["s"]},
                {"op": "Add", "name": "add", "inputs": ["s", "mask"], "outputs": ["s2"]},
                {"op": "Softmax", "name": "sm", "inputs": ["s2"], "outputs": ["p"]},
                {"op": "MatMul", "name": "pv", "inputs": ["p", "v"], "outputs": ["y"]}]})", "b.json");
    };
    const Graph g = graph("[2, 16, 16]");
    std::vector<std::string> notes;
    EXPECT_EQ(fuse_attention_patterns(g, test::config("edge"), nullptr, &notes), g);
    EXPECT_EQ(notes, std::vector<std::string>{"fuse-attention: 'sm' not fused as attention: mask 'mask' of shape "
                                              "[2, 16, 16] varies along the batch of 3-D scores"});
    // Without the batch dim the same chain is a single-head 3-D flash_attention.
    const Graph out = fuse_attention_patterns(graph("[16, 16]"), test::config("edge"), nullptr);
    EXPECT_EQ(std::get<int64_t>(only_flash(out).attributes.at("q_num_heads")), 1);
}

// Heads split by Reshape + Transpose as torch exports them and merged back: the 3-D form on the
// unsplit tensors, no Transpose left, K^T's [0, 2, 3, 1] included.
TEST(AttentionPattern, HeadSplitsByViewsTakeTheThreeDForm) {
    const Graph g = parse_graph(R"({"tensors": [
        {"name": "q", "shape": [1, 16, 32], "role": "input"}, {"name": "k", "shape": [1, 16, 32], "role": "input"},
        {"name": "v", "shape": [1, 16, 32], "role": "input"},
        {"name": "split", "shape": [4], "dtype": "int64", "role": "constant", "value": [1, 16, 4, 8]},
        {"name": "merged", "shape": [3], "dtype": "int64", "role": "constant", "value": [1, 16, 32]},
        {"name": "c", "shape": [], "role": "constant", "value": [2.0]},
        {"name": "q4"}, {"name": "k4"}, {"name": "v4"}, {"name": "qh"}, {"name": "kt"}, {"name": "vh"},
        {"name": "s"}, {"name": "s2"}, {"name": "p"}, {"name": "o"}, {"name": "ot"}, {"name": "y", "role": "output"}],
        "ops": [{"op": "Reshape", "name": "rq", "inputs": ["q", "split"], "outputs": ["q4"]},
                {"op": "Reshape", "name": "rk", "inputs": ["k", "split"], "outputs": ["k4"]},
                {"op": "Reshape", "name": "rv", "inputs": ["v", "split"], "outputs": ["v4"]},
                {"op": "Transpose", "name": "tq", "inputs": ["q4"], "outputs": ["qh"], "attributes": {"perm": [0, 2, 1, 3]}},
                {"op": "Transpose", "name": "tk", "inputs": ["k4"], "outputs": ["kt"], "attributes": {"perm": [0, 2, 3, 1]}},
                {"op": "Transpose", "name": "tv", "inputs": ["v4"], "outputs": ["vh"], "attributes": {"perm": [0, 2, 1, 3]}},
                {"op": "MatMul", "name": "qk", "inputs": ["qh", "kt"], "outputs": ["s"]},
                {"op": "Div", "name": "scale", "inputs": ["s", "c"], "outputs": ["s2"]},
                {"op": "Softmax", "name": "sm", "inputs": ["s2"], "outputs": ["p"], "attributes": {"axis": -1}},
                {"op": "MatMul", "name": "pv", "inputs": ["p", "vh"], "outputs": ["o"]},
                {"op": "Transpose", "name": "to", "inputs": ["o"], "outputs": ["ot"], "attributes": {"perm": [0, 2, 1, 3]}},
                {"op": "Reshape", "name": "ro", "inputs": ["ot", "merged"], "outputs": ["y"]}]})", "h.json");
    const Graph out = fuse_attention_patterns(g, test::config("edge"), nullptr);
    ASSERT_EQ(kinds(out), std::vector<std::string>{"flash_attention"});
    const Op& f = out.ops()[0];
    EXPECT_EQ(tensor_names(out, f), (std::vector<std::string>{"q", "k", "v", "y"}));
    EXPECT_EQ(std::get<int64_t>(f.attributes.at("q_num_heads")), 4);
    EXPECT_EQ(std::get<int64_t>(f.attributes.at("kv_num_heads")), 4);
    EXPECT_EQ(f.fused_with, (std::vector<std::string>{"rq", "rk", "rv", "tq", "tk", "tv", "scale", "sm", "pv", "to", "ro"}));
    test::expect_consistent(compile(g, test::config("edge")), test::config("edge"));
}

// K^T by a Transpose that is not a swap of the last two axes, with Q not split by views: the
// 4-D form, K a new Transpose of that Transpose's input.
TEST(AttentionPattern, AnotherKTransposeBecomesATransposeIntoK) {
    const Graph g = parse_graph(R"({"tensors": [
        {"name": "q", "shape": [1, 4, 16, 8], "role": "input"}, {"name": "k", "shape": [1, 16, 4, 8], "role": "input"},
        {"name": "v", "shape": [1, 4, 16, 8], "role": "input"},
        {"name": "kt"}, {"name": "s"}, {"name": "p"}, {"name": "y", "role": "output"}],
        "ops": [{"op": "Transpose", "name": "tk", "inputs": ["k"], "outputs": ["kt"], "attributes": {"perm": [0, 2, 3, 1]}},
                {"op": "MatMul", "name": "qk", "inputs": ["q", "kt"], "outputs": ["s"]},
                {"op": "Softmax", "name": "sm", "inputs": ["s"], "outputs": ["p"]},
                {"op": "MatMul", "name": "pv", "inputs": ["p", "v"], "outputs": ["y"]}]})", "k.json");
    const Graph out = fuse_attention_patterns(g, test::config("edge"), nullptr);
    ASSERT_EQ(kinds(out), (std::vector<std::string>{"Transpose", "flash_attention"}));
    EXPECT_EQ(std::get<std::vector<int64_t>>(out.ops()[0].attributes.at("perm")), (std::vector<int64_t>{0, 2, 1, 3}));
    EXPECT_EQ(out.tensor(out.ops()[0].outputs[0]).shape, (std::vector<uint64_t>{1, 4, 16, 8}));
    EXPECT_EQ(out.ops()[1].inputs[1], out.ops()[0].outputs[0]);
    EXPECT_EQ(std::get<double>(out.ops()[1].attributes.at("scale")), 1.0);  // no scale op: softmax(Q K^T)
}

// The probabilities also a graph output, or a softmax over another axis: nothing changes.
TEST(AttentionPattern, WhatDoesNotMatchStays) {
    std::string json = four_d_json("Div", "input");
    json.replace(json.find(R"({"name": "p"})"), 13, R"({"name": "p", "role": "output"})");
    const Graph g = parse_graph(json, "a.json");
    EXPECT_EQ(fuse_attention_patterns(g, test::config("edge"), nullptr), g);
    std::string axis = four_d_json("Div", "input");
    axis.replace(axis.find(R"("outputs": ["p"])"), 16, R"("outputs": ["p"], "attributes": {"axis": 2})");
    const Graph h = parse_graph(axis, "a.json");
    EXPECT_EQ(fuse_attention_patterns(h, test::config("edge"), nullptr), h);
}

// A MatMul [2, 5, 24] x [24, 40] with a bias Add and a Relu: Reshape, MatMul [10, 40], Add,
// Relu on the matrix, Reshape back; fuse-epilogue makes it one fused matmul; a second linear
// reads the first's matrix with no view between them.
TEST(FlattenLinear, ThreeDLinearsBecomeMatrixProductsBetweenViews) {
    const Graph g = parse_graph(R"({"tensors": [{"name": "x", "shape": [2, 5, 24], "role": "input"},
        {"name": "W1", "shape": [24, 40], "role": "constant"}, {"name": "b1", "shape": [40], "role": "constant"},
        {"name": "W2", "shape": [40, 16], "role": "constant"},
        {"name": "h"}, {"name": "hb"}, {"name": "a"}, {"name": "y", "role": "output"}],
        "ops": [{"op": "MatMul", "name": "fc1", "inputs": ["x", "W1"], "outputs": ["h"]},
                {"op": "Add", "name": "bias", "inputs": ["b1", "h"], "outputs": ["hb"]},
                {"op": "Relu", "name": "relu", "inputs": ["hb"], "outputs": ["a"]},
                {"op": "MatMul", "name": "fc2", "inputs": ["a", "W2"], "outputs": ["y"]}]})", "l.json");
    const Graph flat = flatten_linear(g);
    EXPECT_EQ(test::op_summary(flat), (std::vector<std::string>{"Reshape [10, 24]", "MatMul [10, 40]", "Add [10, 40]",
                                                                "Relu [10, 40]", "MatMul [10, 16]", "Reshape [2, 5, 16]"}));
    const Graph fused = fuse_epilogue(flat);
    EXPECT_EQ(kinds(fused), (std::vector<std::string>{"Reshape", "matmul", "MatMul", "Reshape"}));
    EXPECT_EQ(fused.ops()[1].fused_with, (std::vector<std::string>{"bias", "relu"}));
    // A product of matrices stays.
    const Graph two = parse_graph(test::matmul_json(8, 8, 8), "m.json");
    EXPECT_EQ(flatten_linear(two), two);
}

// A result that is a graph output stops the move there; with nothing moved onto its matrix and
// no linear next, a linear stays as it is (no fusion would take it).
TEST(FlattenLinear, WhatNoFusionWouldTakeStays) {
    const auto graph = [](const char* h_role) {
        return parse_graph(R"({"tensors": [{"name": "x", "shape": [3, 4, 8], "role": "input"},
        {"name": "W", "shape": [8, 6], "role": "constant"}, {"name": "b", "shape": [6], "role": "constant"},
        {"name": "h", "role": ")" + std::string(h_role) + R"("}, {"name": "hb"}, {"name": "y", "role": "output"}],
        "ops": [{"op": "MatMul", "name": "fc", "inputs": ["x", "W"], "outputs": ["h"]},
                {"op": "Add", "name": "bias", "inputs": ["h", "b"], "outputs": ["hb"]},
                {"op": "Sigmoid", "name": "act", "inputs": ["hb"], "outputs": ["y"]}]})", "o.json");
    };
    EXPECT_EQ(test::op_summary(flatten_linear(graph("intermediate"))),
              (std::vector<std::string>{"Reshape [12, 8]", "MatMul [12, 6]", "Add [12, 6]", "Sigmoid [12, 6]",
                                        "Reshape [3, 4, 6]"}));
    const Graph out = graph("output");
    EXPECT_EQ(flatten_linear(out), out);
}

}  // namespace
}  // namespace kpu::compiler
