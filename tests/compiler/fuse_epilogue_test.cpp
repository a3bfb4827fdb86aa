// fuse-epilogue's scale and residual stages on graphs built in JSON: which ops it absorbs, in
// the drain's order, where the fused op goes when its residual is computed after it, and what
// it leaves alone.
#include "compiler/passes/fuse_epilogue.h"

#include <gtest/gtest.h>

#include "compiler/graph_json.h"
#include "compiler/ops/matmul.h"

namespace kpu::compiler {
namespace {

/// x[8, 16] @ W[16, 12] = t, then the ops `tail` over `tensors` (besides x, W, t and the output y).
Graph graph_with(const std::string& tensors, const std::string& tail) {
    return parse_graph(R"({"tensors": [{"name": "x", "shape": [8, 16], "role": "input"},
        {"name": "W", "shape": [16, 12], "role": "constant"}, {"name": "t"}, {"name": "y", "role": "output"}, )" +
                           tensors + R"(],
      "ops": [{"op": "MatMul", "name": "mm", "inputs": ["x", "W"], "outputs": ["t"]}, )" + tail + "]}",
                       "g.json");
}

const char* const kS = R"({"name": "s", "shape": [12], "role": "constant"})";
const char* const kR = R"({"name": "r", "shape": [8, 12], "role": "input"})";

const Op* find(const Graph& g, const std::string& name) {
    for (const Op& op : g.ops())
        if (op.name == name) return &op;
    return nullptr;
}

TEST(FuseEpilogue, TakesScaleResidualAndActivationInTheDrainsOrder) {
    const Graph g = fuse_epilogue(graph_with(std::string(kS) + ", " + kR + R"(, {"name": "u"}, {"name": "v"})", R"(
        {"op": "Mul", "name": "scale", "inputs": ["s", "t"], "outputs": ["u"]},
        {"op": "Add", "name": "skip", "inputs": ["r", "u"], "outputs": ["v"]},
        {"op": "Relu", "name": "act", "inputs": ["v"], "outputs": ["y"]})"));
    ASSERT_EQ(g.ops().size(), 1u);
    const MatmulOperands mm = matmul_operands(g, 0);
    EXPECT_EQ(g.ops()[0].fused_with, (std::vector<std::string>{"scale", "skip", "act"}));
    ASSERT_TRUE(mm.scale && mm.residual);
    EXPECT_FALSE(mm.bias);
    EXPECT_EQ(g.tensor(*mm.scale).name, "s");
    EXPECT_EQ(g.tensor(*mm.residual).name, "r");
    EXPECT_EQ(mm.activation, Activation::Relu);
}

TEST(FuseEpilogue, AResidualComputedAfterTheMatmulIsComputedBeforeTheFusedOp) {
    const Graph g = fuse_epilogue(graph_with(R"({"name": "z", "shape": [8, 4], "role": "input"},
        {"name": "V", "shape": [4, 12], "role": "constant"}, {"name": "u"})", R"(
        {"op": "MatMul", "name": "rmm", "inputs": ["z", "V"], "outputs": ["u"]},
        {"op": "Add", "name": "skip", "inputs": ["t", "u"], "outputs": ["y"]})"));
    ASSERT_EQ(g.ops().size(), 2u);
    EXPECT_EQ(g.ops()[0].name, "rmm");
    EXPECT_EQ(g.ops()[1].name, "mm");
    EXPECT_EQ(g.tensor(*matmul_operands(g, 1).residual).name, "u");
}

TEST(FuseEpilogue, AStageOutOfOrderOrAnIntermediateReadTwiceStays) {
    // A Mul after the residual: the drain scales before it adds.
    Graph g = fuse_epilogue(graph_with(std::string(kS) + ", " + kR + R"(, {"name": "u"})", R"(
        {"op": "Add", "name": "skip", "inputs": ["t", "r"], "outputs": ["u"]},
        {"op": "Mul", "name": "scale", "inputs": ["u", "s"], "outputs": ["y"]})"));
    ASSERT_EQ(g.ops().size(), 2u);
    EXPECT_EQ(find(g, "mm")->fused_with, std::vector<std::string>{"skip"});
    EXPECT_NE(find(g, "scale"), nullptr);
    // t read by the Add and by a graph output's Relu: nothing fuses.
    g = fuse_epilogue(graph_with(std::string(kR) + R"(, {"name": "w", "role": "output"})", R"(
        {"op": "Add", "name": "skip", "inputs": ["t", "r"], "outputs": ["y"]},
        {"op": "Relu", "name": "act", "inputs": ["t"], "outputs": ["w"]})"));
    EXPECT_EQ(g.ops().size(), 3u);
    // A residual whose shape only broadcasts to C's is not one.
    g = fuse_epilogue(graph_with(R"({"name": "q", "shape": [1, 12], "role": "input"})", R"(
        {"op": "Add", "name": "skip", "inputs": ["t", "q"], "outputs": ["y"]})"));
    EXPECT_EQ(g.ops().size(), 2u);
}

}  // namespace
}  // namespace kpu::compiler
