// The op registry: ONNX shape inference of every registered op on odd shapes (one element,
// primes, broadcasting corners, scalars, negative axes, keepdims both ways), one-line errors
// naming the op, the attribute or tensor and the numbers, and the JSON round trip.
#include "compiler/ops/op_schema.h"

#include <gtest/gtest.h>

#include "compiler/generate.h"
#include "compiler/graph_json.h"
#include "compiler/ops/matmul.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

using Shape = std::vector<uint64_t>;

/// An input of the op under test: "" as name is an omitted optional input.
struct In {
    In(std::string name_, std::string shape_, std::string dtype_ = "float32", std::string value_ = "")
        : name(std::move(name_)), shape(std::move(shape_)), dtype(std::move(dtype_)), value(std::move(value_)) {}
    std::string name;
    std::string shape;  ///< JSON, e.g. "[5, 1, 7]"
    std::string dtype;
    std::string value;  ///< JSON inline values, "" for none
};

std::string one_op_json(const std::string& kind, const std::vector<In>& inputs, size_t outputs,
                        const std::string& attributes) {
    std::string tensors, in_names, out_names;
    for (const In& in : inputs) {
        in_names += std::string(in_names.empty() ? "" : ", ") + "\"" + in.name + "\"";
        if (in.name.empty()) continue;
        tensors += "{\"name\": \"" + in.name + "\"" + (in.shape.empty() ? "" : ", \"shape\": " + in.shape) +
                   ", \"dtype\": \"" + in.dtype + "\"" +
                   (in.value.empty() ? "" : ", \"value\": " + in.value) + "}, ";
    }
    for (size_t i = 0; i < outputs; ++i) {
        tensors += std::string(i ? ", " : "") + "{\"name\": \"y" + std::to_string(i) + "\"}";
        out_names += std::string(i ? ", " : "") + "\"y" + std::to_string(i) + "\"";
    }
    return "{\"tensors\": [" + tensors + "], \"ops\": [{\"op\": \"" + kind + "\", \"name\": \"op1\", \"inputs\": [" +
           in_names + "], \"outputs\": [" + out_names + "], \"attributes\": " + attributes + "}]}";
}

/// The inferred shapes of the op's outputs.
std::vector<Shape> infer(const std::string& kind, const std::vector<In>& inputs, size_t outputs = 1,
                         const std::string& attributes = "{}") {
    const Graph g = parse_graph(one_op_json(kind, inputs, outputs, attributes), "t.json");
    std::vector<Shape> out;
    for (size_t i = 0; i < outputs; ++i) out.push_back(g.tensor(*g.find_tensor("y" + std::to_string(i))).shape);
    return out;
}

Shape infer1(const std::string& kind, const std::vector<In>& inputs, const std::string& attributes = "{}") {
    return infer(kind, inputs, 1, attributes)[0];
}

std::string error(const std::string& kind, const std::vector<In>& inputs, const std::string& attributes = "{}",
                  size_t outputs = 1) {
    return test::error_of([&] { parse_graph(one_op_json(kind, inputs, outputs, attributes), "t.json"); });
}

In ints(const std::string& name, const std::string& values) { return {name, "", "int64", values}; }

TEST(OpInference, BinaryOpsBroadcastMultidirectionally) {
    for (const char* kind : {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"}) {
        SCOPED_TRACE(kind);
        EXPECT_EQ(infer1(kind, {{"a", "[5, 1, 7]"}, {"b", "[4, 1]"}}), (Shape{5, 4, 7}));
        EXPECT_EQ(infer1(kind, {{"a", "[]"}, {"b", "[3]"}}), (Shape{3}));
        EXPECT_EQ(infer1(kind, {{"a", "[1]"}, {"b", "[1]"}}), (Shape{1}));
        EXPECT_EQ(infer1(kind, {{"a", "[13, 1]"}, {"b", "[1, 1, 11]"}}), (Shape{1, 13, 11}));
    }
    const Graph g = parse_graph(one_op_json("Add", {{"a", "[]"}, {"b", "[]"}}, 1, "{}"), "t.json");
    EXPECT_TRUE(g.tensor(*g.find_tensor("y0")).rank0);
    EXPECT_EQ(g.tensor(*g.find_tensor("y0")).elements(), 1u);
    EXPECT_EQ(error("Add", {{"a", "[5, 3]"}, {"b", "[4, 3]"}}),
              "t.json: op 'op1' (Add): input 'A' ('a') [5, 3] and input 'B' ('b') [4, 3] do not broadcast "
              "(dimension 0 of the result: 5 vs 4)");
    EXPECT_EQ(error("Mul", {{"a", "[2]", "float32"}, {"b", "[2]", "float16"}}),
              "t.json: op 'op1' (Mul): input 'B' ('b') is float16 but input 'A' ('a') is float32");
}

TEST(OpInference, UnaryOpsKeepTheShape) {
    for (const char* kind : {"Relu", "LeakyRelu", "Gelu", "Sigmoid", "Tanh", "Exp", "Sqrt", "Reciprocal", "Neg", "Abs",
                             "Erf", "Clip", "HardSwish", "HardSigmoid", "Silu"}) {
        SCOPED_TRACE(kind);
        EXPECT_EQ(infer1(kind, {{"x", "[1]"}}), (Shape{1}));
        EXPECT_EQ(infer1(kind, {{"x", "[2, 3, 5, 7]"}}), (Shape{2, 3, 5, 7}));
    }
    EXPECT_EQ(infer1("Gelu", {{"x", "[3]"}}, R"({"approximate": "tanh"})"), (Shape{3}));
    EXPECT_EQ(error("Gelu", {{"x", "[3]"}}, R"({"approximate": "fast"})"),
              "t.json: op 'op1' (Gelu): attribute 'approximate' is 'fast', expected 'none' or 'tanh'");
    EXPECT_EQ(infer1("Clip", {{"x", "[3]"}, {"lo", "[]", "float32", "[0]"}, {"", ""}}), (Shape{3}));
    EXPECT_EQ(error("Clip", {{"x", "[3]"}, {"lo", "[2]"}}), "t.json: op 'op1' (Clip): input 'min' ('lo', [2]) must be a scalar");
    EXPECT_EQ(error("Exp", {{"x", "[3]", "int32"}}),
              "t.json: op 'op1' (Exp): input 'X' ('x') is int32, expected float32, float16, bfloat16");
}

TEST(OpInference, MatMulBroadcastsBatchesAndGemmTransposes) {
    EXPECT_EQ(infer1("MatMul", {{"a", "[2, 3]"}, {"b", "[3, 5]"}}), (Shape{2, 5}));
    EXPECT_EQ(infer1("MatMul", {{"a", "[7, 1, 2, 3]"}, {"b", "[5, 3, 11]"}}), (Shape{7, 5, 2, 11}));
    EXPECT_EQ(infer1("MatMul", {{"a", "[3]"}, {"b", "[3]"}}), (Shape{}));
    EXPECT_EQ(infer1("MatMul", {{"a", "[3]"}, {"b", "[2, 3, 5]"}}), (Shape{2, 5}));
    EXPECT_EQ(infer1("MatMul", {{"a", "[4, 3]"}, {"b", "[3]"}}), (Shape{4}));
    EXPECT_EQ(error("MatMul", {{"a", "[2, 3]"}, {"b", "[4, 5]"}}),
              "t.json: op 'op1' (MatMul): input 'A' ('a', [2, 3]) dimension 1 is 3 but input 'B' ('b', [4, 5]) "
              "dimension 0 is 4");
    EXPECT_EQ(infer1("Gemm", {{"a", "[3, 2]"}, {"b", "[5, 3]"}, {"c", "[1]"}}, R"({"transA": 1, "transB": 1})"),
              (Shape{2, 5}));
    EXPECT_EQ(error("Gemm", {{"a", "[2, 3]"}, {"b", "[3, 5]"}, {"c", "[2, 4]"}}),
              "t.json: op 'op1' (Gemm): input 'C' [2, 4] and A' @ B' [2, 5] do not broadcast (dimension 1 of the "
              "result: 4 vs 5)");
}

TEST(OpInference, ReductionsTakeNegativeAxesAndKeepdimsBothWays) {
    for (const char* kind : {"ReduceSum", "ReduceMean", "ReduceMax"}) {
        SCOPED_TRACE(kind);
        EXPECT_EQ(infer1(kind, {{"x", "[2, 3, 5]"}, ints("ax", "[-1]")}), (Shape{2, 3, 1}));
        EXPECT_EQ(infer1(kind, {{"x", "[2, 3, 5]"}, ints("ax", "[0, -1]")}, R"({"keepdims": 0})"), (Shape{3}));
        EXPECT_EQ(infer1(kind, {{"x", "[2, 3, 5]"}}), (Shape{1, 1, 1}));
        EXPECT_EQ(infer1(kind, {{"x", "[7]"}}, R"({"keepdims": 0})"), (Shape{}));
        EXPECT_EQ(infer1(kind, {{"x", "[2, 3]"}}, R"({"noop_with_empty_axes": 1})"), (Shape{2, 3}));
    }
    EXPECT_EQ(error("ReduceSum", {{"x", "[2, 3, 5]"}, ints("ax", "[3]")}),
              "t.json: op 'op1' (ReduceSum): axes[0] is 3 but the rank is 3 (valid: -3 to 2)");
    EXPECT_EQ(error("ReduceMax", {{"x", "[2, 3]"}, ints("ax", "[1, -1]")}),
              "t.json: op 'op1' (ReduceMax): axes[1] repeats axis 1");
}

TEST(OpInference, SoftmaxAndNormalizations) {
    EXPECT_EQ(infer1("Softmax", {{"x", "[13, 1]"}}), (Shape{13, 1}));
    EXPECT_EQ(infer1("Softmax", {{"x", "[2, 3]"}}, R"({"axis": -2})"), (Shape{2, 3}));
    EXPECT_EQ(error("Softmax", {{"x", "[2, 3]"}}, R"({"axis": 2})"),
              "t.json: op 'op1' (Softmax): attribute 'axis' is 2 but the rank is 2 (valid: -2 to 1)");
    EXPECT_EQ(infer("LayerNormalization", {{"x", "[2, 3, 5]"}, {"s", "[5]"}, {"b", "[5]"}}, 3),
              (std::vector<Shape>{{2, 3, 5}, {2, 3, 1}, {2, 3, 1}}));
    EXPECT_EQ(infer("LayerNormalization", {{"x", "[2, 3, 5]"}, {"s", "[3, 5]"}}, 2, R"({"axis": 1})"),
              (std::vector<Shape>{{2, 3, 5}, {2, 1, 1}}));
    EXPECT_EQ(error("LayerNormalization", {{"x", "[2, 3, 5]"}, {"s", "[4]"}}),
              "t.json: op 'op1' (LayerNormalization): input 'Scale' ('s', [4]) [4] and the normalized axes [5] do "
              "not broadcast (dimension 0 of the result: 4 vs 5)");
    EXPECT_EQ(infer1("RMSNormalization", {{"x", "[1, 7]"}, {"s", "[7]"}}, R"({"epsilon": 1e-6})"), (Shape{1, 7}));
}

TEST(OpInference, LayoutOps) {
    EXPECT_EQ(infer1("Reshape", {{"x", "[2, 3, 4]"}, ints("s", "[4, -1]")}), (Shape{4, 6}));
    EXPECT_EQ(infer1("Reshape", {{"x", "[2, 3, 4]"}, ints("s", "[0, -1]")}), (Shape{2, 12}));
    EXPECT_EQ(error("Reshape", {{"x", "[2, 3, 4]"}, ints("s", "[5, -1]")}),
              "t.json: op 'op1' (Reshape): cannot reshape input 'data' ('x', [2, 3, 4]) (24 elements) to [5, -1]");
    EXPECT_EQ(infer1("Flatten", {{"x", "[2, 3, 4]"}}, R"({"axis": 0})"), (Shape{1, 24}));
    EXPECT_EQ(infer1("Flatten", {{"x", "[2, 3, 4]"}}, R"({"axis": -1})"), (Shape{6, 4}));
    EXPECT_EQ(infer1("Flatten", {{"x", "[2, 3, 4]"}}, R"({"axis": 3})"), (Shape{24, 1}));
    EXPECT_EQ(infer1("Transpose", {{"x", "[2, 3, 5]"}}), (Shape{5, 3, 2}));
    EXPECT_EQ(infer1("Transpose", {{"x", "[2, 3, 5]"}}, R"({"perm": [0, 2, 1]})"), (Shape{2, 5, 3}));
    EXPECT_EQ(error("Transpose", {{"x", "[2, 3]"}}, R"({"perm": [0, 0]})"),
              "t.json: op 'op1' (Transpose): attribute 'perm' [0, 0] is not a permutation of the 2 axes of input "
              "'data' ('x', [2, 3])");
    EXPECT_EQ(infer1("Squeeze", {{"x", "[1, 3, 1]"}}), (Shape{3}));
    EXPECT_EQ(infer1("Squeeze", {{"x", "[1, 3, 1]"}, ints("a", "[-1]")}), (Shape{1, 3}));
    EXPECT_EQ(error("Squeeze", {{"x", "[1, 3, 1]"}, ints("a", "[1]")}),
              "t.json: op 'op1' (Squeeze): axis 1 of input 'data' ('x', [1, 3, 1]) is 3, not 1");
    EXPECT_EQ(infer1("Unsqueeze", {{"x", "[3]"}, ints("a", "[0, -1]")}), (Shape{1, 3, 1}));
    EXPECT_EQ(infer1("Concat", {{"a", "[2, 3]"}, {"b", "[2, 5]"}, {"c", "[2, 1]"}}, R"({"axis": -1})"), (Shape{2, 9}));
    EXPECT_EQ(error("Concat", {{"a", "[2, 3]"}, {"b", "[3, 5]"}}, R"({"axis": 1})"),
              "t.json: op 'op1' (Concat): input 'inputs[1]' ('b', [3, 5]) dimension 0 is 3 but input 'inputs[0]' "
              "('a', [2, 3]) dimension 0 is 2");
    EXPECT_EQ(error("Concat", {{"a", "[2, 3]"}}), "t.json: op 'op1' (Concat): attribute 'axis' is required");
    EXPECT_EQ(infer1("Slice", {{"x", "[10, 7]"}, ints("s", "[1]"), ints("e", "[-1]")}), (Shape{8, 7}));
    EXPECT_EQ(infer1("Slice", {{"x", "[10, 7]"}, ints("s", "[0]"), ints("e", "[9223372036854775807]"), ints("a", "[-1]"),
                               ints("st", "[2]")}),
              (Shape{10, 4}));
    EXPECT_EQ(infer1("Slice", {{"x", "[10, 7]"}, ints("s", "[-1]"), ints("e", "[-1000]"), ints("a", "[0]"),
                               ints("st", "[-3]")}),
              (Shape{4, 7}));
    EXPECT_EQ(infer("Split", {{"x", "[7, 4]"}}, 3), (std::vector<Shape>{{3, 4}, {3, 4}, {1, 4}}));
    EXPECT_EQ(infer("Split", {{"x", "[7, 4]"}, ints("s", "[2, 5]")}, 2), (std::vector<Shape>{{2, 4}, {5, 4}}));
    EXPECT_EQ(error("Split", {{"x", "[7, 4]"}, ints("s", "[2, 4]")}, "{}", 2),
              "t.json: op 'op1' (Split): input 'split' [2, 4] sums to 6 but dimension 0 of input 'input' ('x', [7, "
              "4]) is 7");
    EXPECT_EQ(infer1("Gather", {{"e", "[50, 8]"}, {"i", "[3, 5]", "int64"}}), (Shape{3, 5, 8}));
    EXPECT_EQ(infer1("Gather", {{"e", "[50, 8]"}, {"i", "[]", "int32", "[7]"}}, R"({"axis": -1})"), (Shape{50}));
    EXPECT_EQ(error("Gather", {{"e", "[5, 8]"}, {"i", "[2]", "int64", "[1, 5]"}}),
              "t.json: op 'op1' (Gather): indices[1] is 5 but dimension 0 of input 'data' ('e', [5, 8]) is 5");
}

TEST(OpInference, AttentionInBothForms) {
    EXPECT_EQ(infer1("Attention", {{"q", "[2, 8, 13, 16]"}, {"k", "[2, 2, 17, 16]"}, {"v", "[2, 2, 17, 8]"}},
                     R"({"is_causal": 1, "scale": 0.25})"),
              (Shape{2, 8, 13, 8}));
    EXPECT_EQ(infer1("Attention", {{"q", "[1, 13, 64]"}, {"k", "[1, 17, 64]"}, {"v", "[1, 17, 32]"}, {"m", "[13, 17]"}},
                     R"({"q_num_heads": 4, "kv_num_heads": 4})"),
              (Shape{1, 13, 32}));
    EXPECT_EQ(error("Attention", {{"q", "[1, 2, 3, 4]"}, {"k", "[1, 2, 5, 4]"}, {"v", "[1, 2, 5, 4]"}, {"m", "[3, 4]"}}),
              "t.json: op 'op1' (Attention): input 'attn_mask' ('m', [3, 4]) [3, 4] and the scores [B, Hq, Sq, Skv] "
              "[1, 2, 3, 5] do not broadcast (dimension 3 of the result: 4 vs 5)");
    EXPECT_EQ(error("Attention", {{"q", "[1, 3, 8]"}, {"k", "[1, 5, 8]"}, {"v", "[1, 5, 8]"}}),
              "t.json: op 'op1' (Attention): 3-D inputs need attribute 'q_num_heads' (a positive number of heads)");
}

TEST(OpErrors, EachIsOneLineNamingTheOpAndTheNumbers) {
    EXPECT_EQ(error("Softmax", {{"x", "[2]"}}, R"({"axis": "last"})"),
              "t.json: ops[0].attributes.axis: op 'op1' (Softmax): attribute 'axis' expects an int, got \"last\"");
    EXPECT_EQ(error("Softmax", {{"x", "[2]"}}, R"({"axsi": 0})"),
              "t.json: ops[0].attributes.axsi: op 'op1' (Softmax): unknown attribute 'axsi' of Softmax (did you mean "
              "'axis'?)");
    EXPECT_EQ(error("Relu", {{"x", "[1, 1, 1, 1, 1, 1, 1]"}}),
              "t.json: tensor 'x' has rank 7 (shape [1, 1, 1, 1, 1, 1, 1]), more than 6");
    EXPECT_EQ(error("Unsqueeze", {{"x", "[1, 1, 1, 1, 1, 1]"}, ints("a", "[0]")}),
              "t.json: op 'op1' (Unsqueeze): output 'expanded' ('y0') would have rank 7 [1, 1, 1, 1, 1, 1, 1], more "
              "than 6");
    EXPECT_EQ(error("Softmax", {{"x", "[2]"}, {"z", "[2]"}}),
              "t.json: op 'op1' (Softmax): takes 1 input (input), got 2");
    const std::string unknown = R"({"tensors": [{"name": "x", "shape": [2]}, {"name": "y"}, {"name": "z"}],
        "ops": [{"op": "LSTM", "name": "c1", "inputs": ["x"], "outputs": ["y"]},
                {"op": "Sofmax", "name": "s2", "inputs": ["y"], "outputs": ["z"]}]})";
    EXPECT_EQ(test::error_of([&] { parse_graph(unknown, "t.json"); }),
              "t.json: ops: unknown operators: LSTM (c1), Sofmax (s2; did you mean 'Softmax'?) (docs/graph-format.md "
              "lists every op)");
}

TEST(OpLowering, CompileListsEveryOpThatDoesNotLowerYet) {
    const std::string text = R"({"tensors": [{"name": "x", "shape": [4, 8]}, {"name": "w", "shape": [8, 8]},
        {"name": "s", "shape": [8]}, {"name": "lo", "shape": []}, {"name": "h"}, {"name": "p"}, {"name": "y"}],
        "ops": [{"op": "MatMul", "name": "mm", "inputs": ["x", "w"], "outputs": ["h"]},
                {"op": "Clip", "name": "c1", "inputs": ["h", "lo"], "outputs": ["p"]},
                {"op": "LayerNormalization", "name": "ln1", "inputs": ["p", "s"], "outputs": ["y"],
                 "attributes": {"axis": 0}}]})";
    const Graph g = parse_graph(text, "t.json");
    EXPECT_EQ(test::error_of([&] { compile(g, test::config("minimal")); }),
              "graph: Unsupported operators: Clip (c1: input 'min' ('lo') without an inline value not yet supported "
              "(only a constant bound)), LayerNormalization (ln1: axis = 0 not yet supported (only the last axis (1)))");
    const std::string gemm = R"({"tensors": [{"name": "a", "shape": [4, 8]}, {"name": "b", "shape": [8, 8]},
        {"name": "c", "shape": [4, 8]}, {"name": "y"}], "ops": [{"op": "Gemm", "name": "g", "inputs": ["a", "b", "c"],
        "outputs": ["y"], "attributes": {"transB": 1, "alpha": 0.5}}]})";
    EXPECT_EQ(test::error_of([&] { compile(parse_graph(gemm, "t.json"), test::config("minimal")); }),
              "graph: Unsupported operators: Gemm (g: C of shape [4, 8] not yet supported (only [N] = [8]))");
    const std::string int8 = R"({"op": "matmul", "A": {"shape": [2, 2], "dtype": "int8"},
        "B": {"shape": [2, 2], "dtype": "int8"}, "C": {"shape": [2, 2], "dtype": "int8"}})";
    EXPECT_EQ(test::error_of([&] { compile(parse_graph(int8, "t.json"), test::config("minimal")); }),
              "graph: Unsupported operators: matmul (matmul: tensor 'A' is int8, not yet supported)");
}

// A rank-2 MatMul and a Gemm with a bias row lower onto the fused matmul's path: the same
// program as the matmul form.
TEST(OpLowering, MatMulAndGemmLowerLikeTheFusedMatmul) {
    const hw::Config edge = test::config("edge");
    const Program fused = compile(parse_graph(test::matmul_json(37, 29, 53, true), "t.json"), edge);
    const std::string gemm = R"({"tensors": [{"name": "A", "shape": [37, 53]}, {"name": "B", "shape": [53, 29]},
        {"name": "bias", "shape": [29]}, {"name": "C"}],
        "ops": [{"op": "Gemm", "name": "matmul", "inputs": ["A", "B", "bias"], "outputs": ["C"]}]})";
    const Program lowered = compile(parse_graph(gemm, "t.json"), edge);
    EXPECT_EQ(count_ops(lowered), count_ops(fused));
    EXPECT_EQ(lowered.hints.dram_read_bytes, fused.hints.dram_read_bytes);
    const Program plain = compile(parse_graph(test::matmul_json(37, 29, 53), "t.json"), edge);
    const std::string matmul = R"({"tensors": [{"name": "A", "shape": [37, 53]}, {"name": "B", "shape": [53, 29]},
        {"name": "C"}], "ops": [{"op": "MatMul", "name": "matmul", "inputs": ["A", "B"], "outputs": ["C"]}]})";
    EXPECT_EQ(count_ops(compile(parse_graph(matmul, "t.json"), edge)), count_ops(plain));
}

TEST(OpJson, RoundTripsEveryAttributeTypeValuesAndScalars) {
    const std::string text = R"({"tensors": [
        {"name": "x", "shape": [2, 3, 4]}, {"name": "s", "shape": [2], "dtype": "int64", "value": [6, -1]},
        {"name": "r"}, {"name": "t"}, {"name": "c", "shape": [], "value": 0.5}, {"name": "y"}, {"name": "g"}],
      "ops": [{"op": "Reshape", "name": "rs", "inputs": ["x", "s"], "outputs": ["r"]},
              {"op": "Transpose", "inputs": ["r"], "outputs": ["t"], "attributes": {"perm": [1, 0]}},
              {"op": "Clip", "name": "cl", "inputs": ["t", "c", ""], "outputs": ["y"]},
              {"op": "Gelu", "name": "ge", "inputs": ["y"], "outputs": ["g"], "attributes": {"approximate": "tanh"}}]})";
    const Graph g = parse_graph(text, "t.json");
    EXPECT_EQ(g.tensor(*g.find_tensor("t")).shape, (Shape{4, 6}));
    EXPECT_EQ(g.ops()[1].name, "transpose1");
    EXPECT_EQ(g.ops()[2].inputs[2], kNoTensor);
    EXPECT_EQ(g.tensor(*g.find_tensor("s")).role, TensorRole::Constant);
    const Graph again = graph_from_json(graph_to_json(g), "", "again.json");
    EXPECT_EQ(g, again);
    EXPECT_EQ(graph_to_json(again), graph_to_json(g));
}

}  // namespace
}  // namespace kpu::compiler
