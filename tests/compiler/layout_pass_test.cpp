// The layout pass: elementwise ops move across the Transposes feeding them, inverse
// Transposes cancel into views, and a Transpose nothing reads goes.
#include <gtest/gtest.h>

#include "compiler/layout_pass.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

// Two channel mixes computed in NHWC (MatMul over the last axis) with a Relu and a
// per-channel bias between them in NCHW, as two convolutions' expansions leave them: the
// Relu and the Add move to NHWC, the bias is viewed as [1, 1, 1, 4], and only the input's and
// the output's conversions remain.
TEST(LayoutPass, ElementwiseOpsBetweenTwoNhwcOpsStayInNhwc) {
    const std::string text = R"({"tensors": [{"name": "x", "shape": [1, 3, 5, 7], "role": "input"},
        {"name": "w1", "shape": [3, 4], "role": "constant"}, {"name": "b", "shape": [4, 1, 1], "role": "constant"},
        {"name": "w2", "shape": [4, 2], "role": "constant"}, {"name": "y", "role": "output"}],
        "ops": [{"op": "Transpose", "name": "in", "inputs": ["x"], "outputs": ["xt"], "attributes": {"perm": [0, 2, 3, 1]}},
                {"op": "MatMul", "name": "mm1", "inputs": ["xt", "w1"], "outputs": ["m"]},
                {"op": "Transpose", "name": "out1", "inputs": ["m"], "outputs": ["mc"], "attributes": {"perm": [0, 3, 1, 2]}},
                {"op": "Relu", "name": "relu", "inputs": ["mc"], "outputs": ["r"]},
                {"op": "Add", "name": "bias", "inputs": ["r", "b"], "outputs": ["a"]},
                {"op": "Transpose", "name": "in2", "inputs": ["a"], "outputs": ["at"], "attributes": {"perm": [0, 2, 3, 1]}},
                {"op": "MatMul", "name": "mm2", "inputs": ["at", "w2"], "outputs": ["m2"]},
                {"op": "Transpose", "name": "out2", "inputs": ["m2"], "outputs": ["y"], "attributes": {"perm": [0, 3, 1, 2]}}]})";
    std::string with_names = text;
    for (const char* t : {"xt", "m", "mc", "r", "a", "at", "m2"})  // declare the intermediates
        with_names.insert(with_names.find("{\"name\": \"y\""), std::string("{\"name\": \"") + t + "\"}, ");
    const Graph g = sink_transposes(parse_graph(with_names, "t.json"));
    const std::vector<std::string> expected = {"Transpose [1, 5, 7, 3]", "MatMul [1, 5, 7, 4]", "Relu [1, 5, 7, 4]",
                                               "Reshape [1, 1, 1, 4]",   "Add [1, 5, 7, 4]",    "Reshape [1, 5, 7, 4]",
                                               "MatMul [1, 5, 7, 2]",    "Transpose [1, 2, 5, 7]"};
    EXPECT_EQ(test::op_summary(g), expected);
    test::expect_consistent(compile(g, test::config("edge")), test::config("edge"));
}

// A Transpose whose result another op also reads stays for that reader.
TEST(LayoutPass, ATransposeOthersReadIsKept) {
    const Graph in = parse_graph(R"({"tensors": [{"name": "x", "shape": [2, 3, 4], "role": "input"},
        {"name": "t"}, {"name": "r"}, {"name": "s"}],
        "ops": [{"op": "Transpose", "name": "tr", "inputs": ["x"], "outputs": ["t"], "attributes": {"perm": [0, 2, 1]}},
                {"op": "Relu", "name": "relu", "inputs": ["t"], "outputs": ["r"]},
                {"op": "Softmax", "name": "sm", "inputs": ["t"], "outputs": ["s"]}]})", "t.json");
    EXPECT_EQ(sink_transposes(in), in);
}

}  // namespace
}  // namespace kpu::compiler
