// The folding passes on graphs built in C++: which values they compute (against plain loops),
// where the results go (inline values or weights), and the pass selection.
#include <gtest/gtest.h>

#include <cmath>

#include "compiler/generate.h"
#include "compiler/graph_json.h"
#include "compiler/passes/fold_batchnorm.h"
#include "compiler/passes/fold_constants.h"
#include "tests/support/config.h"

namespace kpu::compiler {
namespace {

// Conv [4, 2, 1, 1] then BatchNormalization, every parameter a weight: W and B folded as the
// formula says (a loop in double), the BN gone, its parameters' weights dropped.
TEST(FoldBatchnorm, FoldsKnownParametersIntoTheConvsWeights) {
    Graph g = parse_graph(R"({"tensors": [{"name": "x", "shape": [1, 2, 3, 3], "role": "input"},
        {"name": "W", "shape": [4, 2, 1, 1], "role": "constant"}, {"name": "scale", "shape": [4], "role": "constant"},
        {"name": "B", "shape": [4], "role": "constant"}, {"name": "mean", "shape": [4], "role": "constant"},
        {"name": "var", "shape": [4], "role": "constant"}, {"name": "t"}, {"name": "y", "role": "output"}],
        "ops": [{"op": "Conv", "name": "conv", "inputs": ["x", "W"], "outputs": ["t"]},
                {"op": "BatchNormalization", "name": "bn", "inputs": ["t", "scale", "B", "mean", "var"],
                 "outputs": ["y"], "attributes": {"epsilon": 0.01}}]})", "bn.json");
    Weights w;
    w["W"] = {{4, 2, 1, 1}, {1, -2, 3, 0.5f, -1, 2, 0.25f, 4}};
    w["scale"] = {{4}, {2, 0.5f, -1, 3}};
    w["B"] = {{4}, {0.1f, 0.2f, -0.3f, 0}};
    w["mean"] = {{4}, {1, -1, 0.5f, 2}};
    w["var"] = {{4}, {4, 1, 0.25f, 9}};
    const Weights given = w;
    const Graph out = fold_batchnorm(g, &w);
    ASSERT_EQ(out.ops().size(), 1u);
    const Op& conv = out.ops()[0];
    EXPECT_EQ(conv.fused_with, std::vector<std::string>{"bn"});
    EXPECT_EQ(out.tensor(conv.outputs[0]).name, "y");
    EXPECT_EQ(out.tensor(conv.inputs[1]).name, "conv.folded_W");
    EXPECT_EQ(out.tensor(conv.inputs[2]).name, "conv.folded_B");
    for (const char* gone : {"W", "scale", "B", "mean", "var"}) EXPECT_EQ(w.count(gone), 0u) << gone;
    ASSERT_EQ(w.count("conv.folded_W"), 1u);
    const double eps = double(0.01f);
    for (int c = 0; c < 4; ++c) {
        const double s = double(given.at("scale").values[c]) / std::sqrt(double(given.at("var").values[c]) + eps);
        for (int j = 0; j < 2; ++j)
            EXPECT_EQ(w.at("conv.folded_W").values[c * 2 + j], float(double(given.at("W").values[c * 2 + j]) * s));
        EXPECT_EQ(w.at("conv.folded_B").values[c],
                  float((0.0 - given.at("mean").values[c]) * s + given.at("B").values[c]));
    }
}

// Unknown parameters (graph inputs): nothing folds.
TEST(FoldBatchnorm, LeavesUnknownParameters) {
    const Graph g = parse_graph(R"({"tensors": [{"name": "x", "shape": [1, 2, 3, 3], "role": "input"},
        {"name": "W", "shape": [4, 2, 1, 1], "role": "constant"}, {"name": "p", "shape": [4], "role": "input"},
        {"name": "t"}, {"name": "y", "role": "output"}],
        "ops": [{"op": "Conv", "name": "conv", "inputs": ["x", "W"], "outputs": ["t"]},
                {"op": "BatchNormalization", "name": "bn", "inputs": ["t", "p", "p", "p", "p"], "outputs": ["y"]}]})",
                                "bn.json");
    Weights w;
    w["W"] = {{4, 2, 1, 1}, std::vector<float>(8, 1.0f)};
    EXPECT_EQ(fold_batchnorm(g, &w), g);
    EXPECT_EQ(w.size(), 1u);
}

// Without a weights map a small float result is an inline value, an integer one always; a
// result for a graph output stays an op.
TEST(FoldConstants, InlineResultsWithoutWeights) {
    const Graph g = parse_graph(R"({"tensors": [{"name": "x", "shape": [2, 3], "role": "input"},
        {"name": "a", "shape": [3], "role": "constant", "value": [0.1, 0.2, 0.3]},
        {"name": "b", "shape": [3], "role": "constant", "value": [3, 2, 1]},
        {"name": "i", "shape": [2], "dtype": "int64", "role": "constant", "value": [2, 0]},
        {"name": "ab"}, {"name": "g"}, {"name": "y", "role": "output"}, {"name": "z", "role": "output"}],
        "ops": [{"op": "Mul", "name": "mul", "inputs": ["a", "b"], "outputs": ["ab"]},
                {"op": "Gather", "name": "gather", "inputs": ["ab", "i"], "outputs": ["g"]},
                {"op": "Add", "name": "add", "inputs": ["x", "ab"], "outputs": ["y"]},
                {"op": "Mul", "name": "out", "inputs": ["a", "b"], "outputs": ["z"]}]})", "c.json");
    const Graph out = fold_constants(g, nullptr);
    std::vector<std::string> kinds;
    for (const Op& op : out.ops()) kinds.push_back(op.name);
    EXPECT_EQ(kinds, (std::vector<std::string>{"gather", "add", "out"}));  // g (read by nothing) and z are outputs
    const Tensor& ab = out.tensor(*out.find_tensor("ab"));
    const std::vector<double> want = {double(0.1f * 3.0f), double(0.2f * 2.0f), double(0.3f * 1.0f)};
    EXPECT_EQ(std::get<std::vector<double>>(ab.value), want);
    EXPECT_EQ(ab.role, TensorRole::Constant);
}

// -O0 runs no pass; the default runs every pass in pipeline order and records them.
TEST(FoldConstants, PassSelectionIsRecorded) {
    const Graph g = parse_graph(R"({"tensors": [{"name": "x", "shape": [4, 8], "role": "input"},
        {"name": "w", "shape": [8, 4], "role": "constant"}, {"name": "h"}, {"name": "y", "role": "output"}],
        "ops": [{"op": "MatMul", "name": "mm", "inputs": ["x", "w"], "outputs": ["h"]},
                {"op": "Relu", "name": "relu", "inputs": ["h"], "outputs": ["y"]}]})", "m.json");
    CompileOptions o0;
    o0.passes.level = 0;
    EXPECT_TRUE(compile(g, test::config("edge"), o0).passes.empty());
    const Program p = compile(g, test::config("edge"));
    EXPECT_EQ(p.passes, (std::vector<Pass>{Pass::FoldConstants, Pass::FoldBatchnorm, Pass::FuseAttention,
                                           Pass::FuseEpilogue, Pass::FuseFfn, Pass::FuseRows, Pass::PlanMemory}));
    ASSERT_EQ(p.graph.ops().size(), 1u);
    EXPECT_EQ(p.graph.ops()[0].fused_with, std::vector<std::string>{"relu"});
    CompileOptions off;
    off.passes.disabled = {Pass::FuseEpilogue};
    EXPECT_EQ(compile(g, test::config("edge"), off).graph, compile(g, test::config("edge"), o0).graph);
}

}  // namespace
}  // namespace kpu::compiler
